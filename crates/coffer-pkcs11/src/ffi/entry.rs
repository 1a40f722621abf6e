//! The `extern "C"` entry points. Each one turns its pointers into Rust values through
//! [`super::pointers`], calls the safe layer, and writes the results back; a panic becomes
//! `CKR_GENERAL_ERROR` instead of unwinding into C.
//!
//! Every function's safety contract is the PKCS#11 one: pointers are NULL or valid for the
//! sizes the standard gives (or the lengths passed with them).

use std::panic::{AssertUnwindSafe, catch_unwind};

use cryptoki_sys::*;

use super::pointers::{self as p, bytes, capacity, deliver, put, read_mechanism, read_template, write_list};
use crate::encryption::{self, Direction};
use crate::error::Result;
use crate::output::Delivered;
use crate::state::{self, Library};
use crate::{digest, general, keys, object, random, session, signing};

/// Runs an entry point's body, turning a panic into `CKR_GENERAL_ERROR`.
fn guard(body: impl FnOnce() -> CK_RV) -> CK_RV {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(CKR_GENERAL_ERROR)
}

/// The code of a result.
fn rv(result: Result<()>) -> CK_RV {
    match result {
        Ok(()) => CKR_OK,
        Err(e) => e.rv,
    }
}

/// Runs `body` with the library, or returns `CKR_CRYPTOKI_NOT_INITIALIZED`.
fn with_lib(body: impl FnOnce(&Library) -> Result<()>) -> CK_RV {
    guard(|| rv(state::library().and_then(|lib| body(&lib))))
}

/// Runs `body` that delivers output into `(buf, len_ptr)`.
///
/// # Safety
/// `buf`/`len_ptr` follow the output-buffer contract of [`p::capacity`] and [`p::deliver`].
unsafe fn with_output(
    buf: CK_BYTE_PTR,
    len_ptr: CK_ULONG_PTR,
    body: impl FnOnce(&Library, Option<usize>) -> Result<Delivered>,
) -> CK_RV {
    guard(|| {
        let result = state::library().and_then(|lib| {
            // SAFETY: the caller's buffer contract.
            let room = unsafe { capacity(buf, len_ptr)? };
            body(&lib, room)
        });
        match result {
            // SAFETY: the caller's buffer contract; the safe layer checked the room.
            Ok(delivered) => unsafe { deliver(buf, len_ptr, &delivered) },
            Err(e) => e.rv,
        }
    })
}

// ------------------------------------------------------------------- general

/// `C_Initialize`.
///
/// # Safety
/// `p_init_args` is NULL or points to a `CK_C_INITIALIZE_ARGS`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_Initialize(p_init_args: *mut std::ffi::c_void) -> CK_RV {
    guard(|| {
        // SAFETY: the caller's contract.
        let args = unsafe { p::read_init_args(p_init_args) };
        rv(args.and_then(general::initialize))
    })
}

/// `C_Finalize`.
///
/// # Safety
/// Any pointer (it must be NULL).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_Finalize(p_reserved: *mut std::ffi::c_void) -> CK_RV {
    guard(|| if p_reserved.is_null() { rv(general::finalize()) } else { CKR_ARGUMENTS_BAD })
}

/// `C_GetInfo`.
///
/// # Safety
/// `p_info` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetInfo(p_info: *mut CK_INFO) -> CK_RV {
    guard(|| match general::info() {
        // SAFETY: the caller's contract.
        Ok(info) => unsafe { put(p_info, info) },
        Err(e) => e.rv,
    })
}

/// `C_GetSlotList`.
///
/// # Safety
/// `p_slot_list` NULL or room for `*pul_count` ids; `pul_count` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetSlotList(
    _token_present: CK_BBOOL,
    p_slot_list: *mut CK_SLOT_ID,
    pul_count: *mut CK_ULONG,
) -> CK_RV {
    guard(|| match general::slot_list() {
        // SAFETY: the caller's contract.
        Ok(slots) => unsafe { write_list(p_slot_list, pul_count, &slots) },
        Err(e) => e.rv,
    })
}

/// `C_GetSlotInfo`.
///
/// # Safety
/// `p_info` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetSlotInfo(slot_id: CK_SLOT_ID, p_info: *mut CK_SLOT_INFO) -> CK_RV {
    guard(|| match general::slot_info(slot_id) {
        // SAFETY: the caller's contract.
        Ok(info) => unsafe { put(p_info, info) },
        Err(e) => e.rv,
    })
}

/// `C_GetTokenInfo`.
///
/// # Safety
/// `p_info` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetTokenInfo(slot_id: CK_SLOT_ID, p_info: *mut CK_TOKEN_INFO) -> CK_RV {
    guard(|| match general::token_info(slot_id) {
        // SAFETY: the caller's contract.
        Ok(info) => unsafe { put(p_info, info) },
        Err(e) => e.rv,
    })
}

/// `C_GetMechanismList`.
///
/// # Safety
/// As `C_GetSlotList`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetMechanismList(
    slot_id: CK_SLOT_ID,
    p_list: *mut CK_MECHANISM_TYPE,
    pul_count: *mut CK_ULONG,
) -> CK_RV {
    guard(|| match general::mechanism_list(slot_id) {
        // SAFETY: the caller's contract.
        Ok(list) => unsafe { write_list(p_list, pul_count, &list) },
        Err(e) => e.rv,
    })
}

/// `C_GetMechanismInfo`.
///
/// # Safety
/// `p_info` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetMechanismInfo(
    slot_id: CK_SLOT_ID,
    ty: CK_MECHANISM_TYPE,
    p_info: *mut CK_MECHANISM_INFO,
) -> CK_RV {
    guard(|| match general::mechanism_info(slot_id, ty) {
        // SAFETY: the caller's contract.
        Ok(info) => unsafe { put(p_info, info) },
        Err(e) => e.rv,
    })
}

// ------------------------------------------------------------------- sessions

/// `C_OpenSession`.
///
/// # Safety
/// `ph_session` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_OpenSession(
    slot_id: CK_SLOT_ID,
    flags: CK_FLAGS,
    _application: *mut std::ffi::c_void,
    _notify: CK_NOTIFY,
    ph_session: *mut CK_SESSION_HANDLE,
) -> CK_RV {
    if ph_session.is_null() {
        return CKR_ARGUMENTS_BAD;
    }
    with_lib(|lib| {
        let handle = session::open(lib, slot_id, flags)?;
        // SAFETY: checked non-NULL; the caller's contract.
        unsafe { put(ph_session, handle) };
        Ok(())
    })
}

/// `C_CloseSession`.
#[unsafe(no_mangle)]
pub extern "C" fn C_CloseSession(h_session: CK_SESSION_HANDLE) -> CK_RV {
    with_lib(|lib| session::close(lib, h_session))
}

/// `C_CloseAllSessions`.
#[unsafe(no_mangle)]
pub extern "C" fn C_CloseAllSessions(slot_id: CK_SLOT_ID) -> CK_RV {
    with_lib(|lib| session::close_all(lib, slot_id))
}

/// `C_GetSessionInfo`.
///
/// # Safety
/// `p_info` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetSessionInfo(
    h_session: CK_SESSION_HANDLE,
    p_info: *mut CK_SESSION_INFO,
) -> CK_RV {
    if p_info.is_null() {
        return CKR_ARGUMENTS_BAD;
    }
    with_lib(|lib| {
        let info = session::info(lib, h_session)?;
        // SAFETY: checked non-NULL; the caller's contract.
        unsafe { put(p_info, info) };
        Ok(())
    })
}

/// `C_Login`.
///
/// # Safety
/// `p_pin` points to `ul_pin_len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_Login(
    h_session: CK_SESSION_HANDLE,
    user_type: CK_USER_TYPE,
    p_pin: *mut CK_UTF8CHAR,
    ul_pin_len: CK_ULONG,
) -> CK_RV {
    with_lib(|lib| {
        if p_pin.is_null() {
            return Err(crate::error::P11Error::args("NULL PIN (there is no protected authentication path)"));
        }
        // SAFETY: the caller's contract.
        let pin = unsafe { bytes(p_pin, ul_pin_len)? };
        session::login(lib, h_session, user_type, pin)
    })
}

/// `C_Logout`.
#[unsafe(no_mangle)]
pub extern "C" fn C_Logout(h_session: CK_SESSION_HANDLE) -> CK_RV {
    with_lib(|lib| session::logout(lib, h_session))
}

// ------------------------------------------------------------------- objects

/// `C_CreateObject`.
///
/// # Safety
/// `p_template` holds `ul_count` attributes; `ph_object` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_CreateObject(
    h_session: CK_SESSION_HANDLE,
    p_template: *mut CK_ATTRIBUTE,
    ul_count: CK_ULONG,
    ph_object: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    if ph_object.is_null() {
        return CKR_ARGUMENTS_BAD;
    }
    with_lib(|lib| {
        // SAFETY: the caller's contract.
        let template = unsafe { read_template(p_template, ul_count)? };
        let handle = object::create(lib, h_session, &template)?;
        // SAFETY: checked non-NULL.
        unsafe { put(ph_object, handle) };
        Ok(())
    })
}

/// `C_CopyObject`.
///
/// # Safety
/// `p_template` holds `ul_count` attributes; `ph_new_object` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_CopyObject(
    h_session: CK_SESSION_HANDLE,
    h_object: CK_OBJECT_HANDLE,
    p_template: *mut CK_ATTRIBUTE,
    ul_count: CK_ULONG,
    ph_new_object: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    if ph_new_object.is_null() {
        return CKR_ARGUMENTS_BAD;
    }
    with_lib(|lib| {
        // SAFETY: the caller's contract.
        let template = unsafe { read_template(p_template, ul_count)? };
        let handle = object::copy(lib, h_session, h_object, &template)?;
        // SAFETY: checked non-NULL.
        unsafe { put(ph_new_object, handle) };
        Ok(())
    })
}

/// `C_DestroyObject`.
#[unsafe(no_mangle)]
pub extern "C" fn C_DestroyObject(h_session: CK_SESSION_HANDLE, h_object: CK_OBJECT_HANDLE) -> CK_RV {
    with_lib(|lib| object::destroy(lib, h_session, h_object))
}

/// `C_GetAttributeValue`.
///
/// # Safety
/// `p_template` holds `ul_count` writable attributes with their buffers.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetAttributeValue(
    h_session: CK_SESSION_HANDLE,
    h_object: CK_OBJECT_HANDLE,
    p_template: *mut CK_ATTRIBUTE,
    ul_count: CK_ULONG,
) -> CK_RV {
    guard(|| {
        let result = state::library().and_then(|lib| {
            if p_template.is_null() && ul_count > 0 {
                return Err(crate::error::P11Error::args("NULL template"));
            }
            // SAFETY: the caller's contract.
            let types = unsafe { p::read_types(p_template, ul_count)? };
            object::get_attributes(&lib, h_session, h_object, &types)
        });
        match result {
            Ok(answers) if answers.is_empty() => CKR_OK,
            // SAFETY: the caller's contract: ul_count attributes, as many as answers.
            Ok(answers) => unsafe { p::write_answers(p_template, &answers) },
            Err(e) => e.rv,
        }
    })
}

/// `C_SetAttributeValue`.
///
/// # Safety
/// `p_template` holds `ul_count` attributes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_SetAttributeValue(
    h_session: CK_SESSION_HANDLE,
    h_object: CK_OBJECT_HANDLE,
    p_template: *mut CK_ATTRIBUTE,
    ul_count: CK_ULONG,
) -> CK_RV {
    with_lib(|lib| {
        // SAFETY: the caller's contract.
        let template = unsafe { read_template(p_template, ul_count)? };
        object::set_attributes(lib, h_session, h_object, &template)
    })
}

/// `C_FindObjectsInit`.
///
/// # Safety
/// `p_template` holds `ul_count` attributes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_FindObjectsInit(
    h_session: CK_SESSION_HANDLE,
    p_template: *mut CK_ATTRIBUTE,
    ul_count: CK_ULONG,
) -> CK_RV {
    with_lib(|lib| {
        // SAFETY: the caller's contract.
        let template = unsafe { read_template(p_template, ul_count)? };
        object::find_init(lib, h_session, &template)
    })
}

/// `C_FindObjects`.
///
/// # Safety
/// `ph_object` has room for `ul_max` handles; `pul_count` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_FindObjects(
    h_session: CK_SESSION_HANDLE,
    ph_object: *mut CK_OBJECT_HANDLE,
    ul_max: CK_ULONG,
    pul_count: *mut CK_ULONG,
) -> CK_RV {
    if pul_count.is_null() || (ph_object.is_null() && ul_max > 0) {
        return CKR_ARGUMENTS_BAD;
    }
    with_lib(|lib| {
        let found = object::find_next(lib, h_session, ul_max as usize)?;
        if !found.is_empty() {
            // SAFETY: room for ul_max >= found.len() handles.
            unsafe { std::ptr::copy_nonoverlapping(found.as_ptr(), ph_object, found.len()) };
        }
        // SAFETY: checked non-NULL.
        unsafe { put(pul_count, found.len() as CK_ULONG) };
        Ok(())
    })
}

/// `C_FindObjectsFinal`.
#[unsafe(no_mangle)]
pub extern "C" fn C_FindObjectsFinal(h_session: CK_SESSION_HANDLE) -> CK_RV {
    with_lib(|lib| object::find_final(lib, h_session))
}

// ------------------------------------------------------------------- encryption

/// # Safety
/// `p_mechanism` points to a valid `CK_MECHANISM`.
unsafe fn cipher_init(
    h_session: CK_SESSION_HANDLE,
    direction: Direction,
    p_mechanism: *mut CK_MECHANISM,
    h_key: CK_OBJECT_HANDLE,
) -> CK_RV {
    with_lib(|lib| {
        // SAFETY: the caller's contract.
        let m = unsafe { read_mechanism(p_mechanism)? };
        encryption::init(lib, h_session, direction, &m, h_key)
    })
}

/// # Safety
/// Input `(data, len)` and output `(out, out_len)` follow the buffer contracts.
unsafe fn cipher_single(
    h: CK_SESSION_HANDLE,
    d: Direction,
    data: CK_BYTE_PTR,
    len: CK_ULONG,
    out: CK_BYTE_PTR,
    out_len: CK_ULONG_PTR,
) -> CK_RV {
    // SAFETY: the caller's contract.
    unsafe {
        with_output(out, out_len, |lib, room| {
            let input = bytes(data, len)?;
            encryption::single(lib, h, d, input, room)
        })
    }
}

/// # Safety
/// As [`cipher_single`].
unsafe fn cipher_update(
    h: CK_SESSION_HANDLE,
    d: Direction,
    data: CK_BYTE_PTR,
    len: CK_ULONG,
    out: CK_BYTE_PTR,
    out_len: CK_ULONG_PTR,
) -> CK_RV {
    // SAFETY: the caller's contract.
    unsafe {
        with_output(out, out_len, |lib, room| {
            // A length query (NULL output) does not consume the input: the same part comes
            // again with a buffer.
            if room.is_none() {
                return Ok(Delivered::Length(0));
            }
            let input = bytes(data, len)?;
            encryption::update(lib, h, d, input)
        })
    }
}

/// `C_EncryptInit`.
///
/// # Safety
/// `p_mechanism` points to a valid `CK_MECHANISM`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_EncryptInit(
    h_session: CK_SESSION_HANDLE,
    p_mechanism: *mut CK_MECHANISM,
    h_key: CK_OBJECT_HANDLE,
) -> CK_RV {
    // SAFETY: forwarded.
    unsafe { cipher_init(h_session, Direction::Encrypt, p_mechanism, h_key) }
}

/// `C_Encrypt`.
///
/// # Safety
/// Buffer contracts.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_Encrypt(
    h: CK_SESSION_HANDLE,
    data: CK_BYTE_PTR,
    len: CK_ULONG,
    out: CK_BYTE_PTR,
    out_len: CK_ULONG_PTR,
) -> CK_RV {
    // SAFETY: forwarded.
    unsafe { cipher_single(h, Direction::Encrypt, data, len, out, out_len) }
}

/// `C_EncryptUpdate`.
///
/// # Safety
/// Buffer contracts.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_EncryptUpdate(
    h: CK_SESSION_HANDLE,
    data: CK_BYTE_PTR,
    len: CK_ULONG,
    out: CK_BYTE_PTR,
    out_len: CK_ULONG_PTR,
) -> CK_RV {
    // SAFETY: forwarded.
    unsafe { cipher_update(h, Direction::Encrypt, data, len, out, out_len) }
}

/// `C_EncryptFinal`.
///
/// # Safety
/// Buffer contracts.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_EncryptFinal(
    h: CK_SESSION_HANDLE,
    out: CK_BYTE_PTR,
    out_len: CK_ULONG_PTR,
) -> CK_RV {
    // SAFETY: the caller's contract.
    unsafe { with_output(out, out_len, |lib, room| encryption::finish(lib, h, Direction::Encrypt, room)) }
}

/// `C_DecryptInit`.
///
/// # Safety
/// `p_mechanism` points to a valid `CK_MECHANISM`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_DecryptInit(
    h_session: CK_SESSION_HANDLE,
    p_mechanism: *mut CK_MECHANISM,
    h_key: CK_OBJECT_HANDLE,
) -> CK_RV {
    // SAFETY: forwarded.
    unsafe { cipher_init(h_session, Direction::Decrypt, p_mechanism, h_key) }
}

/// `C_Decrypt`.
///
/// # Safety
/// Buffer contracts.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_Decrypt(
    h: CK_SESSION_HANDLE,
    data: CK_BYTE_PTR,
    len: CK_ULONG,
    out: CK_BYTE_PTR,
    out_len: CK_ULONG_PTR,
) -> CK_RV {
    // SAFETY: forwarded.
    unsafe { cipher_single(h, Direction::Decrypt, data, len, out, out_len) }
}

/// `C_DecryptUpdate`.
///
/// # Safety
/// Buffer contracts.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_DecryptUpdate(
    h: CK_SESSION_HANDLE,
    data: CK_BYTE_PTR,
    len: CK_ULONG,
    out: CK_BYTE_PTR,
    out_len: CK_ULONG_PTR,
) -> CK_RV {
    // SAFETY: forwarded.
    unsafe { cipher_update(h, Direction::Decrypt, data, len, out, out_len) }
}

/// `C_DecryptFinal`.
///
/// # Safety
/// Buffer contracts.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_DecryptFinal(
    h: CK_SESSION_HANDLE,
    out: CK_BYTE_PTR,
    out_len: CK_ULONG_PTR,
) -> CK_RV {
    // SAFETY: the caller's contract.
    unsafe { with_output(out, out_len, |lib, room| encryption::finish(lib, h, Direction::Decrypt, room)) }
}

// ------------------------------------------------------------------- digest

/// `C_DigestInit`.
///
/// # Safety
/// `p_mechanism` points to a valid `CK_MECHANISM`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_DigestInit(h: CK_SESSION_HANDLE, p_mechanism: *mut CK_MECHANISM) -> CK_RV {
    with_lib(|lib| {
        // SAFETY: the caller's contract.
        let m = unsafe { read_mechanism(p_mechanism)? };
        digest::init(lib, h, &m)
    })
}

/// `C_Digest`.
///
/// # Safety
/// Buffer contracts.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_Digest(
    h: CK_SESSION_HANDLE,
    data: CK_BYTE_PTR,
    len: CK_ULONG,
    out: CK_BYTE_PTR,
    out_len: CK_ULONG_PTR,
) -> CK_RV {
    // SAFETY: the caller's contract.
    unsafe {
        with_output(out, out_len, |lib, room| {
            let input = bytes(data, len)?;
            digest::digest(lib, h, input, room)
        })
    }
}

/// `C_DigestUpdate`.
///
/// # Safety
/// `data` holds `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_DigestUpdate(h: CK_SESSION_HANDLE, data: CK_BYTE_PTR, len: CK_ULONG) -> CK_RV {
    with_lib(|lib| {
        // SAFETY: the caller's contract.
        let input = unsafe { bytes(data, len)? };
        digest::update(lib, h, input)
    })
}

/// `C_DigestFinal`.
///
/// # Safety
/// Buffer contracts.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_DigestFinal(
    h: CK_SESSION_HANDLE,
    out: CK_BYTE_PTR,
    out_len: CK_ULONG_PTR,
) -> CK_RV {
    // SAFETY: the caller's contract.
    unsafe { with_output(out, out_len, |lib, room| digest::finish(lib, h, room)) }
}

// ------------------------------------------------------------------- signing

/// `C_SignInit`.
///
/// # Safety
/// `p_mechanism` points to a valid `CK_MECHANISM`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_SignInit(
    h: CK_SESSION_HANDLE,
    p_mechanism: *mut CK_MECHANISM,
    h_key: CK_OBJECT_HANDLE,
) -> CK_RV {
    with_lib(|lib| {
        // SAFETY: the caller's contract.
        let m = unsafe { read_mechanism(p_mechanism)? };
        signing::sign_init(lib, h, &m, h_key)
    })
}

/// `C_Sign`.
///
/// # Safety
/// Buffer contracts.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_Sign(
    h: CK_SESSION_HANDLE,
    data: CK_BYTE_PTR,
    len: CK_ULONG,
    sig: CK_BYTE_PTR,
    sig_len: CK_ULONG_PTR,
) -> CK_RV {
    // SAFETY: the caller's contract.
    unsafe {
        with_output(sig, sig_len, |lib, room| {
            let input = bytes(data, len)?;
            signing::sign(lib, h, input, room)
        })
    }
}

/// `C_SignUpdate`.
///
/// # Safety
/// `data` holds `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_SignUpdate(h: CK_SESSION_HANDLE, data: CK_BYTE_PTR, len: CK_ULONG) -> CK_RV {
    with_lib(|lib| {
        // SAFETY: the caller's contract.
        let input = unsafe { bytes(data, len)? };
        signing::sign_update(lib, h, input)
    })
}

/// `C_SignFinal`.
///
/// # Safety
/// Buffer contracts.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_SignFinal(h: CK_SESSION_HANDLE, sig: CK_BYTE_PTR, sig_len: CK_ULONG_PTR) -> CK_RV {
    // SAFETY: the caller's contract.
    unsafe { with_output(sig, sig_len, |lib, room| signing::sign_final(lib, h, room)) }
}

/// `C_VerifyInit`.
///
/// # Safety
/// `p_mechanism` points to a valid `CK_MECHANISM`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_VerifyInit(
    h: CK_SESSION_HANDLE,
    p_mechanism: *mut CK_MECHANISM,
    h_key: CK_OBJECT_HANDLE,
) -> CK_RV {
    with_lib(|lib| {
        // SAFETY: the caller's contract.
        let m = unsafe { read_mechanism(p_mechanism)? };
        signing::verify_init(lib, h, &m, h_key)
    })
}

/// `C_Verify`.
///
/// # Safety
/// `data` and `sig` hold their lengths.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_Verify(
    h: CK_SESSION_HANDLE,
    data: CK_BYTE_PTR,
    len: CK_ULONG,
    sig: CK_BYTE_PTR,
    sig_len: CK_ULONG,
) -> CK_RV {
    with_lib(|lib| {
        // SAFETY: the caller's contract.
        let (input, signature) = unsafe { (bytes(data, len)?, bytes(sig, sig_len)?) };
        signing::verify(lib, h, input, signature)
    })
}

/// `C_VerifyUpdate`.
///
/// # Safety
/// `data` holds `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_VerifyUpdate(h: CK_SESSION_HANDLE, data: CK_BYTE_PTR, len: CK_ULONG) -> CK_RV {
    with_lib(|lib| {
        // SAFETY: the caller's contract.
        let input = unsafe { bytes(data, len)? };
        signing::verify_update(lib, h, input)
    })
}

/// `C_VerifyFinal`.
///
/// # Safety
/// `sig` holds `sig_len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_VerifyFinal(h: CK_SESSION_HANDLE, sig: CK_BYTE_PTR, sig_len: CK_ULONG) -> CK_RV {
    with_lib(|lib| {
        // SAFETY: the caller's contract.
        let signature = unsafe { bytes(sig, sig_len)? };
        signing::verify_final(lib, h, signature)
    })
}

// ------------------------------------------------------------------- keys

/// `C_GenerateKey`.
///
/// # Safety
/// Mechanism, template and out-pointer contracts.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GenerateKey(
    h: CK_SESSION_HANDLE,
    p_mechanism: *mut CK_MECHANISM,
    p_template: *mut CK_ATTRIBUTE,
    ul_count: CK_ULONG,
    ph_key: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    if ph_key.is_null() {
        return CKR_ARGUMENTS_BAD;
    }
    with_lib(|lib| {
        // SAFETY: the caller's contract.
        let (m, template) = unsafe { (read_mechanism(p_mechanism)?, read_template(p_template, ul_count)?) };
        let key = keys::generate_key(lib, h, &m, &template)?;
        // SAFETY: checked non-NULL.
        unsafe { put(ph_key, key) };
        Ok(())
    })
}

/// `C_GenerateKeyPair`.
///
/// # Safety
/// Mechanism, template and out-pointer contracts.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GenerateKeyPair(
    h: CK_SESSION_HANDLE,
    p_mechanism: *mut CK_MECHANISM,
    p_public: *mut CK_ATTRIBUTE,
    ul_public: CK_ULONG,
    p_private: *mut CK_ATTRIBUTE,
    ul_private: CK_ULONG,
    ph_public: *mut CK_OBJECT_HANDLE,
    ph_private: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    if ph_public.is_null() || ph_private.is_null() {
        return CKR_ARGUMENTS_BAD;
    }
    with_lib(|lib| {
        // SAFETY: the caller's contract.
        let (m, public, private) = unsafe {
            (
                read_mechanism(p_mechanism)?,
                read_template(p_public, ul_public)?,
                read_template(p_private, ul_private)?,
            )
        };
        let (pub_key, priv_key) = keys::generate_key_pair(lib, h, &m, &public, &private)?;
        // SAFETY: checked non-NULL.
        unsafe {
            put(ph_public, pub_key);
            put(ph_private, priv_key);
        }
        Ok(())
    })
}

/// `C_WrapKey`.
///
/// # Safety
/// Mechanism and buffer contracts.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_WrapKey(
    h: CK_SESSION_HANDLE,
    p_mechanism: *mut CK_MECHANISM,
    h_wrapping: CK_OBJECT_HANDLE,
    h_key: CK_OBJECT_HANDLE,
    p_wrapped: CK_BYTE_PTR,
    pul_wrapped_len: CK_ULONG_PTR,
) -> CK_RV {
    // SAFETY: the caller's contract.
    unsafe {
        with_output(p_wrapped, pul_wrapped_len, |lib, room| {
            let m = read_mechanism(p_mechanism)?;
            keys::wrap(lib, h, &m, h_wrapping, h_key, room)
        })
    }
}

/// `C_UnwrapKey`.
///
/// # Safety
/// Mechanism, buffer, template and out-pointer contracts.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_UnwrapKey(
    h: CK_SESSION_HANDLE,
    p_mechanism: *mut CK_MECHANISM,
    h_unwrapping: CK_OBJECT_HANDLE,
    p_wrapped: CK_BYTE_PTR,
    ul_wrapped_len: CK_ULONG,
    p_template: *mut CK_ATTRIBUTE,
    ul_count: CK_ULONG,
    ph_key: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    if ph_key.is_null() {
        return CKR_ARGUMENTS_BAD;
    }
    with_lib(|lib| {
        // SAFETY: the caller's contract.
        let (m, wrapped, template) = unsafe {
            (
                read_mechanism(p_mechanism)?,
                bytes(p_wrapped, ul_wrapped_len)?,
                read_template(p_template, ul_count)?,
            )
        };
        let key = keys::unwrap(lib, h, &m, h_unwrapping, wrapped, &template)?;
        // SAFETY: checked non-NULL.
        unsafe { put(ph_key, key) };
        Ok(())
    })
}

/// `C_DeriveKey`.
///
/// # Safety
/// Mechanism, template and out-pointer contracts.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_DeriveKey(
    h: CK_SESSION_HANDLE,
    p_mechanism: *mut CK_MECHANISM,
    h_base: CK_OBJECT_HANDLE,
    p_template: *mut CK_ATTRIBUTE,
    ul_count: CK_ULONG,
    ph_key: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    if ph_key.is_null() {
        return CKR_ARGUMENTS_BAD;
    }
    with_lib(|lib| {
        // SAFETY: the caller's contract.
        let (m, template) = unsafe { (read_mechanism(p_mechanism)?, read_template(p_template, ul_count)?) };
        let key = keys::derive(lib, h, &m, h_base, &template)?;
        // SAFETY: checked non-NULL.
        unsafe { put(ph_key, key) };
        Ok(())
    })
}

// ------------------------------------------------------------------- random

/// `C_SeedRandom`: the node's generator takes no seed.
#[unsafe(no_mangle)]
pub extern "C" fn C_SeedRandom(h: CK_SESSION_HANDLE, _seed: CK_BYTE_PTR, _len: CK_ULONG) -> CK_RV {
    with_lib(|lib| {
        lib.session(h)?;
        crate::error::fail(CKR_RANDOM_SEED_NOT_SUPPORTED, "the HSM's generator takes no seed")
    })
}

/// `C_GenerateRandom`.
///
/// # Safety
/// `p_random` has room for `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GenerateRandom(
    h: CK_SESSION_HANDLE,
    p_random: CK_BYTE_PTR,
    len: CK_ULONG,
) -> CK_RV {
    if p_random.is_null() && len > 0 {
        return CKR_ARGUMENTS_BAD;
    }
    with_lib(|lib| {
        let data = zeroize::Zeroizing::new(random::generate(lib, h, len as usize)?);
        if !data.is_empty() {
            // SAFETY: room for `len` bytes, and data.len() == len.
            unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), p_random, data.len()) };
        }
        Ok(())
    })
}

// ------------------------------------------------------------------- not offered

/// Entry points Coffer does not offer: they check that the library is initialised and
/// return `CKR_FUNCTION_NOT_SUPPORTED`.
macro_rules! not_supported {
    ($($name:ident($($arg:ident: $ty:ty),*);)*) => {
        $(
            #[doc = concat!("`", stringify!($name), "`: not offered (`CKR_FUNCTION_NOT_SUPPORTED`).")]
            #[unsafe(no_mangle)]
            pub extern "C" fn $name($($arg: $ty),*) -> CK_RV {
                $(let _ = $arg;)*
                with_lib(|_| crate::error::fail(CKR_FUNCTION_NOT_SUPPORTED, stringify!($name)))
            }
        )*
    };
}

not_supported! {
    C_InitToken(slot: CK_SLOT_ID, pin: *mut CK_UTF8CHAR, pin_len: CK_ULONG, label: *mut CK_UTF8CHAR);
    C_InitPIN(h: CK_SESSION_HANDLE, pin: *mut CK_UTF8CHAR, pin_len: CK_ULONG);
    C_SetPIN(h: CK_SESSION_HANDLE, old: *mut CK_UTF8CHAR, old_len: CK_ULONG, new: *mut CK_UTF8CHAR, new_len: CK_ULONG);
    C_GetOperationState(h: CK_SESSION_HANDLE, state: CK_BYTE_PTR, len: CK_ULONG_PTR);
    C_SetOperationState(h: CK_SESSION_HANDLE, state: CK_BYTE_PTR, len: CK_ULONG, enc: CK_OBJECT_HANDLE, auth: CK_OBJECT_HANDLE);
    C_GetObjectSize(h: CK_SESSION_HANDLE, object: CK_OBJECT_HANDLE, size: CK_ULONG_PTR);
    C_DigestKey(h: CK_SESSION_HANDLE, key: CK_OBJECT_HANDLE);
    C_SignRecoverInit(h: CK_SESSION_HANDLE, mechanism: *mut CK_MECHANISM, key: CK_OBJECT_HANDLE);
    C_SignRecover(h: CK_SESSION_HANDLE, data: CK_BYTE_PTR, len: CK_ULONG, sig: CK_BYTE_PTR, sig_len: CK_ULONG_PTR);
    C_VerifyRecoverInit(h: CK_SESSION_HANDLE, mechanism: *mut CK_MECHANISM, key: CK_OBJECT_HANDLE);
    C_VerifyRecover(h: CK_SESSION_HANDLE, sig: CK_BYTE_PTR, sig_len: CK_ULONG, data: CK_BYTE_PTR, len: CK_ULONG_PTR);
    C_DigestEncryptUpdate(h: CK_SESSION_HANDLE, part: CK_BYTE_PTR, len: CK_ULONG, out: CK_BYTE_PTR, out_len: CK_ULONG_PTR);
    C_DecryptDigestUpdate(h: CK_SESSION_HANDLE, part: CK_BYTE_PTR, len: CK_ULONG, out: CK_BYTE_PTR, out_len: CK_ULONG_PTR);
    C_SignEncryptUpdate(h: CK_SESSION_HANDLE, part: CK_BYTE_PTR, len: CK_ULONG, out: CK_BYTE_PTR, out_len: CK_ULONG_PTR);
    C_DecryptVerifyUpdate(h: CK_SESSION_HANDLE, part: CK_BYTE_PTR, len: CK_ULONG, out: CK_BYTE_PTR, out_len: CK_ULONG_PTR);
    C_WaitForSlotEvent(flags: CK_FLAGS, slot: *mut CK_SLOT_ID, reserved: *mut std::ffi::c_void);
    C_LoginUser(h: CK_SESSION_HANDLE, user_type: CK_USER_TYPE, pin: *mut CK_UTF8CHAR, pin_len: CK_ULONG, name: *mut CK_UTF8CHAR, name_len: CK_ULONG);
    C_SessionCancel(h: CK_SESSION_HANDLE, flags: CK_FLAGS);
    C_MessageEncryptInit(h: CK_SESSION_HANDLE, mechanism: *mut CK_MECHANISM, key: CK_OBJECT_HANDLE);
    C_EncryptMessage(h: CK_SESSION_HANDLE, param: *mut std::ffi::c_void, param_len: CK_ULONG, aad: CK_BYTE_PTR, aad_len: CK_ULONG, data: CK_BYTE_PTR, len: CK_ULONG, out: CK_BYTE_PTR, out_len: CK_ULONG_PTR);
    C_EncryptMessageBegin(h: CK_SESSION_HANDLE, param: *mut std::ffi::c_void, param_len: CK_ULONG, aad: CK_BYTE_PTR, aad_len: CK_ULONG);
    C_EncryptMessageNext(h: CK_SESSION_HANDLE, param: *mut std::ffi::c_void, param_len: CK_ULONG, data: CK_BYTE_PTR, len: CK_ULONG, out: CK_BYTE_PTR, out_len: CK_ULONG_PTR, flags: CK_FLAGS);
    C_MessageEncryptFinal(h: CK_SESSION_HANDLE);
    C_MessageDecryptInit(h: CK_SESSION_HANDLE, mechanism: *mut CK_MECHANISM, key: CK_OBJECT_HANDLE);
    C_DecryptMessage(h: CK_SESSION_HANDLE, param: *mut std::ffi::c_void, param_len: CK_ULONG, aad: CK_BYTE_PTR, aad_len: CK_ULONG, data: CK_BYTE_PTR, len: CK_ULONG, out: CK_BYTE_PTR, out_len: CK_ULONG_PTR);
    C_DecryptMessageBegin(h: CK_SESSION_HANDLE, param: *mut std::ffi::c_void, param_len: CK_ULONG, aad: CK_BYTE_PTR, aad_len: CK_ULONG);
    C_DecryptMessageNext(h: CK_SESSION_HANDLE, param: *mut std::ffi::c_void, param_len: CK_ULONG, data: CK_BYTE_PTR, len: CK_ULONG, out: CK_BYTE_PTR, out_len: CK_ULONG_PTR, flags: CK_FLAGS);
    C_MessageDecryptFinal(h: CK_SESSION_HANDLE);
    C_MessageSignInit(h: CK_SESSION_HANDLE, mechanism: *mut CK_MECHANISM, key: CK_OBJECT_HANDLE);
    C_SignMessage(h: CK_SESSION_HANDLE, param: *mut std::ffi::c_void, param_len: CK_ULONG, data: CK_BYTE_PTR, len: CK_ULONG, sig: CK_BYTE_PTR, sig_len: CK_ULONG_PTR);
    C_SignMessageBegin(h: CK_SESSION_HANDLE, param: *mut std::ffi::c_void, param_len: CK_ULONG);
    C_SignMessageNext(h: CK_SESSION_HANDLE, param: *mut std::ffi::c_void, param_len: CK_ULONG, data: CK_BYTE_PTR, len: CK_ULONG, sig: CK_BYTE_PTR, sig_len: CK_ULONG_PTR);
    C_MessageSignFinal(h: CK_SESSION_HANDLE);
    C_MessageVerifyInit(h: CK_SESSION_HANDLE, mechanism: *mut CK_MECHANISM, key: CK_OBJECT_HANDLE);
    C_VerifyMessage(h: CK_SESSION_HANDLE, param: *mut std::ffi::c_void, param_len: CK_ULONG, data: CK_BYTE_PTR, len: CK_ULONG, sig: CK_BYTE_PTR, sig_len: CK_ULONG);
    C_VerifyMessageBegin(h: CK_SESSION_HANDLE, param: *mut std::ffi::c_void, param_len: CK_ULONG);
    C_VerifyMessageNext(h: CK_SESSION_HANDLE, param: *mut std::ffi::c_void, param_len: CK_ULONG, data: CK_BYTE_PTR, len: CK_ULONG, sig: CK_BYTE_PTR, sig_len: CK_ULONG);
    C_MessageVerifyFinal(h: CK_SESSION_HANDLE);
}

/// `C_GetFunctionStatus` (legacy): `CKR_FUNCTION_NOT_PARALLEL`, as the standard says.
#[unsafe(no_mangle)]
pub extern "C" fn C_GetFunctionStatus(h: CK_SESSION_HANDLE) -> CK_RV {
    with_lib(|lib| {
        lib.session(h)?;
        crate::error::fail(CKR_FUNCTION_NOT_PARALLEL, "legacy function")
    })
}

/// `C_CancelFunction` (legacy): `CKR_FUNCTION_NOT_PARALLEL`.
#[unsafe(no_mangle)]
pub extern "C" fn C_CancelFunction(h: CK_SESSION_HANDLE) -> CK_RV {
    with_lib(|lib| {
        lib.session(h)?;
        crate::error::fail(CKR_FUNCTION_NOT_PARALLEL, "legacy function")
    })
}
