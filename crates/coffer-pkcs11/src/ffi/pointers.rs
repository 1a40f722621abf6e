//! Every read through and write to a caller's pointer, in one place so that it can be tested
//! on its own with real buffers: templates (`CK_ATTRIBUTE` arrays), caller buffers with the
//! length-query / `CKR_BUFFER_TOO_SMALL` protocol, lists, mechanism parameters and
//! `CK_C_INITIALIZE_ARGS`.
//!
//! The contract of every function here is the PKCS#11 one: a non-NULL pointer points to memory
//! of the size the standard says (or the length the caller passed with it), valid for the
//! call. NULL is checked; a length that does not match a parameter structure is refused with
//! `CKR_MECHANISM_PARAM_INVALID` before anything is read.

use std::mem::size_of;

use cryptoki_sys::*;
use zeroize::Zeroizing;

use crate::attributes::{Answer, InAttribute, InValue, OutValue};
use crate::error::{P11Error, Result, fail};
use crate::mechanism::{KbkdfInput, Mechanism, Param, Shape, shape};
use crate::output::Delivered;

/// Attributes nest at most this deep (PKCS#11 allows one level of attribute arrays).
const MAX_DEPTH: usize = 2;
/// Most attributes accepted in one template.
const MAX_TEMPLATE: CK_ULONG = 1024;

/// A byte slice from a pointer and length; NULL is accepted only with length 0.
///
/// # Safety
/// A non-NULL `ptr` must point to `len` readable bytes that stay valid for `'a`.
pub unsafe fn bytes<'a>(ptr: *const u8, len: CK_ULONG) -> Result<&'a [u8]> {
    if ptr.is_null() {
        return if len == 0 { Ok(&[]) } else { Err(P11Error::args("NULL data pointer with a length")) };
    }
    // SAFETY: non-NULL, and the caller guarantees `len` readable bytes for the call.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len as usize) })
}

/// A slice of `T` from a pointer and count; NULL only with count 0.
///
/// # Safety
/// A non-NULL `ptr` must point to `count` initialised, aligned `T`s.
unsafe fn slice<'a, T>(ptr: *const T, count: CK_ULONG) -> Result<&'a [T]> {
    if ptr.is_null() {
        return if count == 0 { Ok(&[]) } else { Err(P11Error::args("NULL array pointer with a count")) };
    }
    // SAFETY: non-NULL, and the caller guarantees `count` valid elements.
    Ok(unsafe { std::slice::from_raw_parts(ptr, count as usize) })
}

/// Reads a template (`CK_ATTRIBUTE` array) for creating, finding or setting objects. Values
/// are copied (into zeroizing buffers: a template may carry a key's `CKA_VALUE`); attribute
/// arrays (`CKF_ARRAY_ATTRIBUTE` types) are read as nested templates.
///
/// # Safety
/// A non-NULL `ptr` must point to `count` `CK_ATTRIBUTE`s whose `pValue`s point to
/// `ulValueLen` readable bytes.
pub unsafe fn read_template(ptr: *const CK_ATTRIBUTE, count: CK_ULONG) -> Result<Vec<InAttribute>> {
    // SAFETY: forwarded contract.
    unsafe { read_template_at(ptr, count, 0) }
}

unsafe fn read_template_at(
    ptr: *const CK_ATTRIBUTE,
    count: CK_ULONG,
    depth: usize,
) -> Result<Vec<InAttribute>> {
    if count > MAX_TEMPLATE {
        return fail(CKR_ARGUMENTS_BAD, format!("a template of {count} attributes"));
    }
    // SAFETY: forwarded contract.
    let raw = unsafe { slice(ptr, count)? };
    let mut out = Vec::with_capacity(raw.len());
    for attribute in raw {
        let value = if attribute.type_ & CKF_ARRAY_ATTRIBUTE != 0 {
            if depth + 1 >= MAX_DEPTH {
                return fail(CKR_ATTRIBUTE_VALUE_INVALID, "attribute arrays nest one level at most");
            }
            let size = size_of::<CK_ATTRIBUTE>() as CK_ULONG;
            if attribute.ulValueLen % size != 0 {
                return fail(
                    CKR_ATTRIBUTE_VALUE_INVALID,
                    "an attribute array's length is not a multiple of CK_ATTRIBUTE",
                );
            }
            let nested = attribute.pValue as *const CK_ATTRIBUTE;
            // SAFETY: for an array attribute, pValue points to ulValueLen bytes of CK_ATTRIBUTEs.
            InValue::Array(unsafe { read_template_at(nested, attribute.ulValueLen / size, depth + 1)? })
        } else {
            // SAFETY: pValue points to ulValueLen readable bytes (the caller's contract).
            let value = unsafe { bytes(attribute.pValue as *const u8, attribute.ulValueLen)? };
            InValue::Bytes(Zeroizing::new(value.to_vec()))
        };
        out.push(InAttribute { ty: attribute.type_, value });
    }
    Ok(out)
}

/// The attribute types a `C_GetAttributeValue` template asks for.
///
/// # Safety
/// A non-NULL `ptr` must point to `count` `CK_ATTRIBUTE`s.
pub unsafe fn read_types(ptr: *const CK_ATTRIBUTE, count: CK_ULONG) -> Result<Vec<CK_ATTRIBUTE_TYPE>> {
    if count > MAX_TEMPLATE {
        return fail(CKR_ARGUMENTS_BAD, format!("a template of {count} attributes"));
    }
    // SAFETY: forwarded contract.
    Ok(unsafe { slice(ptr, count)? }.iter().map(|a| a.type_).collect())
}

/// Writes `C_GetAttributeValue` answers into the caller's template, one per entry, with the
/// standard's rules: a sensitive or unknown attribute gets `CK_UNAVAILABLE_INFORMATION` as
/// its length and the call returns `CKR_ATTRIBUTE_SENSITIVE` / `CKR_ATTRIBUTE_TYPE_INVALID`;
/// a NULL `pValue` gets the length only; a buffer too short gets `CK_UNAVAILABLE_INFORMATION`
/// and `CKR_BUFFER_TOO_SMALL`. Every entry is processed whatever happens to the others.
///
/// # Safety
/// `ptr` must point to `answers.len()` writable `CK_ATTRIBUTE`s whose non-NULL `pValue`s point
/// to `ulValueLen` writable bytes.
pub unsafe fn write_answers(ptr: *mut CK_ATTRIBUTE, answers: &[Answer]) -> CK_RV {
    if ptr.is_null() {
        return CKR_ARGUMENTS_BAD;
    }
    let mut rv = CKR_OK;
    for (i, answer) in answers.iter().enumerate() {
        // SAFETY: `ptr` points to `answers.len()` CK_ATTRIBUTEs (the caller's count).
        let attribute = unsafe { &mut *ptr.add(i) };
        let this = match answer {
            Answer::Sensitive => {
                attribute.ulValueLen = CK_UNAVAILABLE_INFORMATION;
                CKR_ATTRIBUTE_SENSITIVE
            }
            Answer::TypeInvalid => {
                attribute.ulValueLen = CK_UNAVAILABLE_INFORMATION;
                CKR_ATTRIBUTE_TYPE_INVALID
            }
            // SAFETY: the attribute's pValue/ulValueLen are the caller's buffer.
            Answer::Value(value) => unsafe { write_value(attribute, value, 0) },
        };
        rv = worse(rv, this);
    }
    rv
}

/// Which of two results to report: sensitive beats type-invalid beats buffer-too-small.
fn worse(current: CK_RV, new: CK_RV) -> CK_RV {
    let rank = |rv| match rv {
        CKR_OK => 0,
        CKR_BUFFER_TOO_SMALL => 1,
        CKR_ATTRIBUTE_TYPE_INVALID => 2,
        CKR_ATTRIBUTE_SENSITIVE => 3,
        _ => 4,
    };
    if rank(new) > rank(current) { new } else { current }
}

/// Writes one value into one attribute.
///
/// # Safety
/// `attribute.pValue`, when non-NULL, points to `ulValueLen` writable bytes (for an array:
/// `CK_ATTRIBUTE`s).
unsafe fn write_value(attribute: &mut CK_ATTRIBUTE, value: &OutValue, depth: usize) -> CK_RV {
    match value {
        OutValue::Bytes(data) => {
            let len = data.len() as CK_ULONG;
            if attribute.pValue.is_null() {
                attribute.ulValueLen = len;
                CKR_OK
            } else if attribute.ulValueLen < len {
                attribute.ulValueLen = CK_UNAVAILABLE_INFORMATION;
                CKR_BUFFER_TOO_SMALL
            } else {
                // SAFETY: pValue has room for ulValueLen >= len bytes; the regions are distinct
                // (ours is a Rust allocation).
                unsafe {
                    std::ptr::copy_nonoverlapping(data.as_ptr(), attribute.pValue as *mut u8, data.len())
                };
                attribute.ulValueLen = len;
                CKR_OK
            }
        }
        OutValue::Array(entries) => {
            let size = size_of::<CK_ATTRIBUTE>() as CK_ULONG;
            let needed = entries.len() as CK_ULONG * size;
            if attribute.pValue.is_null() {
                attribute.ulValueLen = needed;
                return CKR_OK;
            }
            if attribute.ulValueLen < needed || depth + 1 >= MAX_DEPTH {
                attribute.ulValueLen = CK_UNAVAILABLE_INFORMATION;
                return CKR_BUFFER_TOO_SMALL;
            }
            let nested = attribute.pValue as *mut CK_ATTRIBUTE;
            let mut rv = CKR_OK;
            for i in 0..entries.len() {
                // SAFETY: the caller's array holds ulValueLen / size >= entries.len() entries.
                let inner = unsafe { &mut *nested.add(i) };
                // The caller names the types it wants in the nested array; an entry of a type
                // the array does not hold is answered as an unknown type.
                let found = entries.iter().find(|(ty, _)| *ty == inner.type_);
                let this = match found {
                    // SAFETY: the nested entry's pValue/ulValueLen are the caller's buffer.
                    Some((_, value)) => unsafe { write_value(inner, value, depth + 1) },
                    None => {
                        inner.ulValueLen = CK_UNAVAILABLE_INFORMATION;
                        CKR_ATTRIBUTE_TYPE_INVALID
                    }
                };
                rv = worse(rv, this);
            }
            attribute.ulValueLen = needed;
            rv
        }
    }
}

/// The room in a caller's output buffer: `None` for a NULL buffer (a length query).
///
/// # Safety
/// `len_ptr`, when non-NULL, points to a readable `CK_ULONG`.
pub unsafe fn capacity(buf: *const u8, len_ptr: *const CK_ULONG) -> Result<Option<usize>> {
    if len_ptr.is_null() {
        return Err(P11Error::args("NULL length pointer"));
    }
    if buf.is_null() {
        return Ok(None);
    }
    // SAFETY: non-NULL, points to a CK_ULONG (the caller's contract).
    Ok(Some(unsafe { *len_ptr } as usize))
}

/// Writes what an operation delivered: a length, a too-small notice, or the data.
///
/// # Safety
/// `len_ptr` points to a writable `CK_ULONG`; for [`Delivered::Data`], `buf` has room for the
/// data (checked by the safe layer against [`capacity`]).
pub unsafe fn deliver(buf: *mut u8, len_ptr: *mut CK_ULONG, delivered: &Delivered) -> CK_RV {
    if len_ptr.is_null() {
        return CKR_ARGUMENTS_BAD;
    }
    let (len, rv) = match delivered {
        Delivered::Length(n) => (*n, CKR_OK),
        Delivered::TooSmall(n) => (*n, CKR_BUFFER_TOO_SMALL),
        Delivered::Data(data) => {
            if !data.is_empty() {
                if buf.is_null() {
                    return CKR_ARGUMENTS_BAD;
                }
                // SAFETY: the safe layer checked the capacity the caller gave for `buf`.
                unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), buf, data.len()) };
            }
            (data.len(), CKR_OK)
        }
    };
    // SAFETY: non-NULL, points to a writable CK_ULONG.
    unsafe { *len_ptr = len as CK_ULONG };
    rv
}

/// Writes a list with the length-query protocol (`C_GetSlotList`, `C_GetMechanismList`,
/// `C_GetInterfaceList`, `C_FindObjects`-like fixed capacity is done by the caller).
///
/// # Safety
/// `count_ptr` points to a readable and writable `CK_ULONG`; a non-NULL `out` points to that
/// many writable `T`s.
pub unsafe fn write_list<T: Copy>(out: *mut T, count_ptr: *mut CK_ULONG, items: &[T]) -> CK_RV {
    if count_ptr.is_null() {
        return CKR_ARGUMENTS_BAD;
    }
    let needed = items.len() as CK_ULONG;
    if out.is_null() {
        // SAFETY: non-NULL CK_ULONG.
        unsafe { *count_ptr = needed };
        return CKR_OK;
    }
    // SAFETY: non-NULL CK_ULONG.
    let room = unsafe { *count_ptr };
    // SAFETY: non-NULL CK_ULONG.
    unsafe { *count_ptr = needed };
    if room < needed {
        return CKR_BUFFER_TOO_SMALL;
    }
    // SAFETY: `out` has room for `room >= items.len()` elements.
    unsafe { std::ptr::copy_nonoverlapping(items.as_ptr(), out, items.len()) };
    CKR_OK
}

/// Writes one value through an out-pointer; NULL gives `CKR_ARGUMENTS_BAD`.
///
/// # Safety
/// A non-NULL `ptr` points to a writable `T`.
pub unsafe fn put<T>(ptr: *mut T, value: T) -> CK_RV {
    if ptr.is_null() {
        return CKR_ARGUMENTS_BAD;
    }
    // SAFETY: non-NULL and writable (the caller's contract).
    unsafe { ptr.write(value) };
    CKR_OK
}

/// A parameter structure from `pParameter`, which must be exactly its size.
///
/// # Safety
/// A non-NULL `ptr` points to `len` readable bytes.
unsafe fn param_struct<T: Copy>(ptr: *const std::ffi::c_void, len: CK_ULONG) -> Result<T> {
    if ptr.is_null() || len as usize != size_of::<T>() {
        return fail(
            CKR_MECHANISM_PARAM_INVALID,
            format!("the parameter must be a {}-byte structure", size_of::<T>()),
        );
    }
    // SAFETY: `len` bytes are readable and equal the size of T; read_unaligned because a
    // caller's buffer may be a byte array.
    Ok(unsafe { (ptr as *const T).read_unaligned() })
}

/// The 2.40 header's `CK_GCM_PARAMS` had no `ulIvBits`; some applications still pass it.
#[repr(C)]
#[derive(Clone, Copy)]
struct GcmParamsV240 {
    p_iv: *mut CK_BYTE,
    ul_iv_len: CK_ULONG,
    p_aad: *mut CK_BYTE,
    ul_aad_len: CK_ULONG,
    ul_tag_bits: CK_ULONG,
}

/// Reads a `CK_MECHANISM` and its parameter, in the shape its type calls for.
///
/// # Safety
/// A non-NULL `ptr` points to a `CK_MECHANISM` whose `pParameter` points to
/// `ulParameterLen` readable bytes, and whose nested pointers are valid likewise.
pub unsafe fn read_mechanism(ptr: *const CK_MECHANISM) -> Result<Mechanism> {
    if ptr.is_null() {
        return Err(P11Error::args("NULL mechanism"));
    }
    // SAFETY: non-NULL CK_MECHANISM (the caller's contract).
    let raw = unsafe { ptr.read_unaligned() };
    let (p, len) = (raw.pParameter as *const std::ffi::c_void, raw.ulParameterLen);
    let param = match shape(raw.mechanism) {
        Shape::None => Param::None,
        // SAFETY: pParameter points to ulParameterLen readable bytes (this function's contract); `bytes` refuses NULL with a non-zero length.
        Shape::Bytes => Param::Bytes(unsafe { bytes(p as *const u8, len)? }.to_vec()),
        // SAFETY: as above; `read_gcm` checks the length against both CK_GCM_PARAMS layouts before reading.
        Shape::Gcm => unsafe { read_gcm(p, len)? },
        Shape::Oaep => {
            // SAFETY: pParameter points to ulParameterLen bytes; `param_struct` reads only when that is the struct's size.
            let o: CK_RSA_PKCS_OAEP_PARAMS = unsafe { param_struct(p, len)? };
            // SAFETY: the label pointer and length come from the caller's parameter struct, valid by contract.
            let label = unsafe { bytes(o.pSourceData as *const u8, o.ulSourceDataLen)? }.to_vec();
            Param::Oaep { hash: o.hashAlg, mgf: o.mgf, source: o.source, label }
        }
        Shape::Pss => {
            // SAFETY: pParameter points to ulParameterLen bytes; `param_struct` reads only when that is the struct's size.
            let s: CK_RSA_PKCS_PSS_PARAMS = unsafe { param_struct(p, len)? };
            Param::Pss { hash: s.hashAlg, mgf: s.mgf, salt_len: s.sLen }
        }
        Shape::Ctr => {
            // SAFETY: pParameter points to ulParameterLen bytes; `param_struct` reads only when that is the struct's size.
            let c: CK_AES_CTR_PARAMS = unsafe { param_struct(p, len)? };
            Param::Ctr { counter_bits: c.ulCounterBits, block: c.cb }
        }
        Shape::Ecdh => {
            // SAFETY: pParameter points to ulParameterLen bytes; `param_struct` reads only when that is the struct's size.
            let e: CK_ECDH1_DERIVE_PARAMS = unsafe { param_struct(p, len)? };
            Param::Ecdh {
                kdf: e.kdf,
                // SAFETY: pointer and length from the caller's CK_ECDH1_DERIVE_PARAMS, valid by contract.
                shared: unsafe { bytes(e.pSharedData, e.ulSharedDataLen)? }.to_vec(),
                // SAFETY: pointer and length from the caller's CK_ECDH1_DERIVE_PARAMS, valid by contract.
                public: unsafe { bytes(e.pPublicData, e.ulPublicDataLen)? }.to_vec(),
            }
        }
        Shape::Hkdf => {
            // SAFETY: pParameter points to ulParameterLen bytes; `param_struct` reads only when that is the struct's size.
            let h: CK_HKDF_PARAMS = unsafe { param_struct(p, len)? };
            Param::Hkdf {
                extract: h.bExtract != 0,
                expand: h.bExpand != 0,
                prf: h.prfHashMechanism,
                salt_type: h.ulSaltType,
                // SAFETY: pointer and length from the caller's CK_HKDF_PARAMS, valid by contract.
                salt: unsafe { bytes(h.pSalt, h.ulSaltLen)? }.to_vec(),
                // SAFETY: pointer and length from the caller's CK_HKDF_PARAMS, valid by contract.
                info: unsafe { bytes(h.pInfo, h.ulInfoLen)? }.to_vec(),
            }
        }
        Shape::Kbkdf => {
            // SAFETY: pParameter points to ulParameterLen bytes; `param_struct` reads only when that is the struct's size.
            let k: CK_SP800_108_KDF_PARAMS = unsafe { param_struct(p, len)? };
            if k.ulNumberOfDataParams > KBKDF_MAX_DATA_PARAMS {
                return fail(
                    CKR_MECHANISM_PARAM_INVALID,
                    "more SP 800-108 data parameters than any layout has",
                );
            }
            // SAFETY: the caller's array of ulNumberOfDataParams CK_PRF_DATA_PARAM, valid by contract.
            let list = unsafe { slice(k.pDataParams.cast_const(), k.ulNumberOfDataParams)? };
            // SAFETY: each entry's pointer and length are the caller's, valid by contract.
            let inputs = list.iter().map(|d| unsafe { kbkdf_input(d) }).collect::<Result<_>>()?;
            Param::Kbkdf { prf: k.prfType, inputs, additional_keys: k.ulAdditionalDerivedKeys }
        }
    };
    Ok(Mechanism { ty: raw.mechanism, param })
}

/// More `CK_PRF_DATA_PARAM`s than this is a caller's mistake, not a layout.
const KBKDF_MAX_DATA_PARAMS: CK_ULONG = 64;

/// One `CK_PRF_DATA_PARAM`, its value copied.
///
/// # Safety
/// `d.pValue` must point to `d.ulValueLen` readable bytes (or be NULL).
unsafe fn kbkdf_input(d: &CK_PRF_DATA_PARAM) -> Result<KbkdfInput> {
    let value = d.pValue.cast_const();
    Ok(match d.type_ {
        CK_SP800_108_ITERATION_VARIABLE => {
            // SAFETY: as the function's contract; `param_struct` checks the length.
            let f: CK_SP800_108_COUNTER_FORMAT = unsafe { param_struct(value, d.ulValueLen)? };
            KbkdfInput::Iteration { little_endian: f.bLittleEndian != 0, width_bits: f.ulWidthInBits }
        }
        CK_SP800_108_OPTIONAL_COUNTER => KbkdfInput::Counter,
        CK_SP800_108_DKM_LENGTH => {
            // SAFETY: as the function's contract; `param_struct` checks the length.
            let f: CK_SP800_108_DKM_LENGTH_FORMAT = unsafe { param_struct(value, d.ulValueLen)? };
            KbkdfInput::DkmLength {
                method: f.dkmLengthMethod,
                little_endian: f.bLittleEndian != 0,
                width_bits: f.ulWidthInBits,
            }
        }
        // SAFETY: as the function's contract.
        CK_SP800_108_BYTE_ARRAY => KbkdfInput::Bytes(unsafe { bytes(value.cast(), d.ulValueLen)? }.to_vec()),
        other => {
            return fail(CKR_MECHANISM_PARAM_INVALID, format!("SP 800-108 data parameter type {other:#x}"));
        }
    })
}

/// `CK_GCM_PARAMS` in the 3.0 layout, or the 2.40 one (told apart by the length).
///
/// # Safety
/// As [`read_mechanism`].
unsafe fn read_gcm(p: *const std::ffi::c_void, len: CK_ULONG) -> Result<Param> {
    let (iv, iv_len, aad, aad_len, tag_bits) = if len as usize == size_of::<GcmParamsV240>() {
        // SAFETY: the length is that structure's.
        let g: GcmParamsV240 = unsafe { param_struct(p, len)? };
        (g.p_iv, g.ul_iv_len, g.p_aad, g.ul_aad_len, g.ul_tag_bits)
    } else {
        // SAFETY: param_struct checks the length.
        let g: CK_GCM_PARAMS = unsafe { param_struct(p, len)? };
        (g.pIv, g.ulIvLen, g.pAAD, g.ulAADLen, g.ulTagBits)
    };
    Ok(Param::Gcm {
        // SAFETY: the caller's pointers with their lengths.
        iv: unsafe { bytes(iv, iv_len)? }.to_vec(),
        // SAFETY: as above.
        aad: unsafe { bytes(aad, aad_len)? }.to_vec(),
        tag_bits,
    })
}

/// What `C_Initialize`'s argument asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InitArgs {
    /// The application gave mutex functions.
    pub mutex_functions: bool,
    /// `CKF_OS_LOCKING_OK`.
    pub os_locking: bool,
    /// `CKF_LIBRARY_CANT_CREATE_OS_THREADS`.
    pub no_threads: bool,
}

/// Reads `CK_C_INITIALIZE_ARGS` (NULL: no arguments). Mutex functions must be all given or
/// all NULL, and `pReserved` must be NULL: else `CKR_ARGUMENTS_BAD`.
///
/// # Safety
/// A non-NULL `ptr` points to a `CK_C_INITIALIZE_ARGS`.
pub unsafe fn read_init_args(ptr: *const std::ffi::c_void) -> Result<InitArgs> {
    if ptr.is_null() {
        return Ok(InitArgs::default());
    }
    // SAFETY: non-NULL CK_C_INITIALIZE_ARGS (the caller's contract).
    let args = unsafe { (ptr as *const CK_C_INITIALIZE_ARGS).read_unaligned() };
    if !args.pReserved.is_null() {
        return Err(P11Error::args("CK_C_INITIALIZE_ARGS.pReserved must be NULL"));
    }
    let given = [
        args.CreateMutex.is_some(),
        args.DestroyMutex.is_some(),
        args.LockMutex.is_some(),
        args.UnlockMutex.is_some(),
    ];
    if given.iter().any(|g| *g) && !given.iter().all(|g| *g) {
        return Err(P11Error::args("the mutex functions must be given all together or not at all"));
    }
    Ok(InitArgs {
        mutex_functions: given[0],
        os_locking: args.flags & CKF_OS_LOCKING_OK != 0,
        no_threads: args.flags & CKF_LIBRARY_CANT_CREATE_OS_THREADS != 0,
    })
}

/// Copies `text` into a fixed, blank-padded `CK_UTF8CHAR` field (cut at a character boundary).
pub fn pad<const N: usize>(text: &str) -> [CK_UTF8CHAR; N] {
    let mut out = [b' '; N];
    let mut end = text.len().min(N);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    out[..end].copy_from_slice(&text.as_bytes()[..end]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attribute(ty: CK_ATTRIBUTE_TYPE, buf: &mut [u8]) -> CK_ATTRIBUTE {
        CK_ATTRIBUTE { type_: ty, pValue: buf.as_mut_ptr() as *mut _, ulValueLen: buf.len() as CK_ULONG }
    }

    #[test]
    fn templates_are_copied_with_nested_arrays() {
        let mut label = *b"key";
        let mut flag = [CK_TRUE];
        let mut nested = [attribute(CKA_ENCRYPT, &mut flag)];
        let template = [
            attribute(CKA_LABEL, &mut label),
            CK_ATTRIBUTE {
                type_: CKA_WRAP_TEMPLATE,
                pValue: nested.as_mut_ptr() as *mut _,
                ulValueLen: size_of::<CK_ATTRIBUTE>() as CK_ULONG,
            },
        ];
        // SAFETY: real buffers of the lengths given.
        let read = unsafe { read_template(template.as_ptr(), 2) }.unwrap();
        assert_eq!(read[0].raw(), Some(&b"key"[..]));
        match &read[1].value {
            InValue::Array(inner) => {
                assert_eq!((inner[0].ty, inner[0].raw()), (CKA_ENCRYPT, Some(&[CK_TRUE][..])))
            }
            other => panic!("{other:?}"),
        }
        // SAFETY: NULL with a count is refused before any read.
        assert_eq!(unsafe { read_template(std::ptr::null(), 1) }.unwrap_err().rv, CKR_ARGUMENTS_BAD);
        // SAFETY: NULL with count 0 is an empty template.
        assert!(unsafe { read_template(std::ptr::null(), 0) }.unwrap().is_empty());
    }

    #[test]
    fn answers_follow_the_get_attribute_rules() {
        let mut small = [0u8; 2];
        let mut big = [0u8; 8];
        let mut template = [
            attribute(CKA_LABEL, &mut small),
            attribute(CKA_ID, &mut big),
            CK_ATTRIBUTE { type_: CKA_MODULUS, pValue: std::ptr::null_mut(), ulValueLen: 0 },
            attribute(CKA_VALUE, &mut []),
            attribute(0x8000_0000, &mut []),
        ];
        let value = |b: &[u8]| Answer::Value(OutValue::Bytes(Zeroizing::new(b.to_vec())));
        let answers =
            [value(b"long"), value(b"id"), value(&[1; 256]), Answer::Sensitive, Answer::TypeInvalid];
        // SAFETY: five attributes with real buffers of their lengths.
        let rv = unsafe { write_answers(template.as_mut_ptr(), &answers) };
        assert_eq!(rv, CKR_ATTRIBUTE_SENSITIVE);
        assert_eq!(template[0].ulValueLen, CK_UNAVAILABLE_INFORMATION);
        assert_eq!(template[1].ulValueLen, 2);
        assert_eq!(&big[..2], b"id");
        assert_eq!(template[2].ulValueLen, 256);
        assert_eq!(template[3].ulValueLen, CK_UNAVAILABLE_INFORMATION);
        assert_eq!(template[4].ulValueLen, CK_UNAVAILABLE_INFORMATION);

        let mut only_small = [attribute(CKA_LABEL, &mut small)];
        // SAFETY: as above.
        let rv = unsafe { write_answers(only_small.as_mut_ptr(), &[value(b"long")]) };
        assert_eq!(rv, CKR_BUFFER_TOO_SMALL);
    }

    #[test]
    fn output_buffers_follow_the_length_protocol() {
        let mut len: CK_ULONG = 0;
        // SAFETY: NULL buffer with a real length variable.
        assert_eq!(unsafe { capacity(std::ptr::null(), &len) }.unwrap(), None);
        assert_eq!(
            // SAFETY: a NULL length pointer is refused before anything is read.
            unsafe { capacity(std::ptr::null(), std::ptr::null()) }.unwrap_err().rv,
            CKR_ARGUMENTS_BAD
        );
        // SAFETY: a real length variable.
        assert_eq!(unsafe { deliver(std::ptr::null_mut(), &mut len, &Delivered::Length(32)) }, CKR_OK);
        assert_eq!(len, 32);
        assert_eq!(
            // SAFETY: a NULL buffer and a real length variable.
            unsafe { deliver(std::ptr::null_mut(), &mut len, &Delivered::TooSmall(40)) },
            CKR_BUFFER_TOO_SMALL
        );
        assert_eq!(len, 40);
        let mut buf = [0u8; 4];
        let data = Delivered::Data(Zeroizing::new(vec![1, 2, 3]));
        // SAFETY: `buf` has room for the 3 bytes.
        assert_eq!(unsafe { deliver(buf.as_mut_ptr(), &mut len, &data) }, CKR_OK);
        assert_eq!((len, &buf[..3]), (3, &[1u8, 2, 3][..]));
    }

    #[test]
    fn lists_follow_the_length_protocol() {
        let items = [5 as CK_ULONG, 6, 7];
        let mut count: CK_ULONG = 0;
        // SAFETY: NULL list, real count.
        assert_eq!(unsafe { write_list(std::ptr::null_mut(), &mut count, &items) }, CKR_OK);
        assert_eq!(count, 3);
        let mut out = [0 as CK_ULONG; 3];
        count = 2;
        // SAFETY: room for 2 (the count says so).
        assert_eq!(unsafe { write_list(out.as_mut_ptr(), &mut count, &items) }, CKR_BUFFER_TOO_SMALL);
        assert_eq!(count, 3);
        count = 3;
        // SAFETY: room for 3.
        assert_eq!(unsafe { write_list(out.as_mut_ptr(), &mut count, &items) }, CKR_OK);
        assert_eq!(out, items);
    }

    #[test]
    fn mechanism_parameters_are_read_by_shape() {
        let mut iv = [7u8; 12];
        let mut aad = *b"aad";
        let params = CK_GCM_PARAMS {
            pIv: iv.as_mut_ptr(),
            ulIvLen: 12,
            ulIvBits: 96,
            pAAD: aad.as_mut_ptr(),
            ulAADLen: 3,
            ulTagBits: 128,
        };
        let m = CK_MECHANISM {
            mechanism: CKM_AES_GCM,
            pParameter: &params as *const _ as *mut _,
            ulParameterLen: size_of::<CK_GCM_PARAMS>() as CK_ULONG,
        };
        // SAFETY: a real mechanism with its real parameter.
        let read = unsafe { read_mechanism(&m) }.unwrap();
        assert_eq!(read.param, Param::Gcm { iv: vec![7; 12], aad: b"aad".to_vec(), tag_bits: 128 });
        let short = CK_MECHANISM { ulParameterLen: 8, ..m };
        // SAFETY: the length is checked before reading.
        assert_eq!(unsafe { read_mechanism(&short) }.unwrap_err().rv, CKR_MECHANISM_PARAM_INVALID);
        // SAFETY: NULL is refused.
        assert_eq!(unsafe { read_mechanism(std::ptr::null()) }.unwrap_err().rv, CKR_ARGUMENTS_BAD);
    }

    #[test]
    fn init_args_are_checked() {
        // SAFETY: NULL is "no arguments".
        assert_eq!(unsafe { read_init_args(std::ptr::null()) }.unwrap(), InitArgs::default());
        let args = CK_C_INITIALIZE_ARGS { flags: CKF_OS_LOCKING_OK, ..Default::default() };
        // SAFETY: a real structure.
        let read = unsafe { read_init_args(&args as *const _ as *const _) }.unwrap();
        assert!(read.os_locking && !read.mutex_functions);
        unsafe extern "C" fn create(_: *mut *mut std::ffi::c_void) -> CK_RV {
            CKR_OK
        }
        let partial = CK_C_INITIALIZE_ARGS { CreateMutex: Some(create), ..Default::default() };
        assert_eq!(
            // SAFETY: a real, live CK_C_INITIALIZE_ARGS.
            unsafe { read_init_args(&partial as *const _ as *const _) }.unwrap_err().rv,
            CKR_ARGUMENTS_BAD
        );
    }

    #[test]
    fn fixed_fields_are_blank_padded() {
        assert_eq!(&pad::<8>("Coffer"), b"Coffer  ");
        assert_eq!(&pad::<4>("Coffer"), b"Coff");
    }
}
