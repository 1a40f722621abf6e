//! The function lists: `C_GetFunctionList` (2.40) and the 3.0 interfaces
//! (`C_GetInterfaceList`, `C_GetInterface`), both named "PKCS 11".

use cryptoki_sys::*;

use super::entry::*;
use super::pointers::{put, write_list};

macro_rules! function_list {
    ($ty:ident, $major:literal, $minor:literal, { $($extra:ident),* }) => {
        $ty {
            version: CK_VERSION { major: $major, minor: $minor },
            C_Initialize: Some(C_Initialize),
            C_Finalize: Some(C_Finalize),
            C_GetInfo: Some(C_GetInfo),
            C_GetFunctionList: Some(C_GetFunctionList),
            C_GetSlotList: Some(C_GetSlotList),
            C_GetSlotInfo: Some(C_GetSlotInfo),
            C_GetTokenInfo: Some(C_GetTokenInfo),
            C_GetMechanismList: Some(C_GetMechanismList),
            C_GetMechanismInfo: Some(C_GetMechanismInfo),
            C_InitToken: Some(C_InitToken),
            C_InitPIN: Some(C_InitPIN),
            C_SetPIN: Some(C_SetPIN),
            C_OpenSession: Some(C_OpenSession),
            C_CloseSession: Some(C_CloseSession),
            C_CloseAllSessions: Some(C_CloseAllSessions),
            C_GetSessionInfo: Some(C_GetSessionInfo),
            C_GetOperationState: Some(C_GetOperationState),
            C_SetOperationState: Some(C_SetOperationState),
            C_Login: Some(C_Login),
            C_Logout: Some(C_Logout),
            C_CreateObject: Some(C_CreateObject),
            C_CopyObject: Some(C_CopyObject),
            C_DestroyObject: Some(C_DestroyObject),
            C_GetObjectSize: Some(C_GetObjectSize),
            C_GetAttributeValue: Some(C_GetAttributeValue),
            C_SetAttributeValue: Some(C_SetAttributeValue),
            C_FindObjectsInit: Some(C_FindObjectsInit),
            C_FindObjects: Some(C_FindObjects),
            C_FindObjectsFinal: Some(C_FindObjectsFinal),
            C_EncryptInit: Some(C_EncryptInit),
            C_Encrypt: Some(C_Encrypt),
            C_EncryptUpdate: Some(C_EncryptUpdate),
            C_EncryptFinal: Some(C_EncryptFinal),
            C_DecryptInit: Some(C_DecryptInit),
            C_Decrypt: Some(C_Decrypt),
            C_DecryptUpdate: Some(C_DecryptUpdate),
            C_DecryptFinal: Some(C_DecryptFinal),
            C_DigestInit: Some(C_DigestInit),
            C_Digest: Some(C_Digest),
            C_DigestUpdate: Some(C_DigestUpdate),
            C_DigestKey: Some(C_DigestKey),
            C_DigestFinal: Some(C_DigestFinal),
            C_SignInit: Some(C_SignInit),
            C_Sign: Some(C_Sign),
            C_SignUpdate: Some(C_SignUpdate),
            C_SignFinal: Some(C_SignFinal),
            C_SignRecoverInit: Some(C_SignRecoverInit),
            C_SignRecover: Some(C_SignRecover),
            C_VerifyInit: Some(C_VerifyInit),
            C_Verify: Some(C_Verify),
            C_VerifyUpdate: Some(C_VerifyUpdate),
            C_VerifyFinal: Some(C_VerifyFinal),
            C_VerifyRecoverInit: Some(C_VerifyRecoverInit),
            C_VerifyRecover: Some(C_VerifyRecover),
            C_DigestEncryptUpdate: Some(C_DigestEncryptUpdate),
            C_DecryptDigestUpdate: Some(C_DecryptDigestUpdate),
            C_SignEncryptUpdate: Some(C_SignEncryptUpdate),
            C_DecryptVerifyUpdate: Some(C_DecryptVerifyUpdate),
            C_GenerateKey: Some(C_GenerateKey),
            C_GenerateKeyPair: Some(C_GenerateKeyPair),
            C_WrapKey: Some(C_WrapKey),
            C_UnwrapKey: Some(C_UnwrapKey),
            C_DeriveKey: Some(C_DeriveKey),
            C_SeedRandom: Some(C_SeedRandom),
            C_GenerateRandom: Some(C_GenerateRandom),
            C_GetFunctionStatus: Some(C_GetFunctionStatus),
            C_CancelFunction: Some(C_CancelFunction),
            C_WaitForSlotEvent: Some(C_WaitForSlotEvent),
            $($extra: Some($extra),)*
        }
    };
}

/// The 2.40 function list.
static FUNCTIONS_2_40: CK_FUNCTION_LIST = function_list!(CK_FUNCTION_LIST, 2, 40, {});

/// The 3.0 function list.
static FUNCTIONS_3_0: CK_FUNCTION_LIST_3_0 = function_list!(CK_FUNCTION_LIST_3_0, 3, 0, {
    C_GetInterfaceList, C_GetInterface, C_LoginUser, C_SessionCancel, C_MessageEncryptInit,
    C_EncryptMessage, C_EncryptMessageBegin, C_EncryptMessageNext, C_MessageEncryptFinal,
    C_MessageDecryptInit, C_DecryptMessage, C_DecryptMessageBegin, C_DecryptMessageNext,
    C_MessageDecryptFinal, C_MessageSignInit, C_SignMessage, C_SignMessageBegin,
    C_SignMessageNext, C_MessageSignFinal, C_MessageVerifyInit, C_VerifyMessage,
    C_VerifyMessageBegin, C_VerifyMessageNext, C_MessageVerifyFinal
});

/// The interfaces, 3.0 first (the default).
fn interfaces() -> [CK_INTERFACE; 2] {
    [INTERFACE_3_0.0, INTERFACE_2_40.0]
}

/// The interface returned by `C_GetInterface`, which hands out a pointer that must outlive
/// the call: one static per interface. `CK_INTERFACE` holds raw pointers, so it needs this
/// wrapper to be shared; the pointers are to immutable statics.
struct SharedInterface(CK_INTERFACE);
// SAFETY: the wrapped pointers point to immutable statics (the name and the function lists),
// which are valid and never written for the life of the process.
unsafe impl Sync for SharedInterface {}

static INTERFACE_3_0: SharedInterface = SharedInterface(CK_INTERFACE {
    pInterfaceName: INTERFACE_NAME_BYTES.as_ptr() as *mut CK_UTF8CHAR,
    pFunctionList: &FUNCTIONS_3_0 as *const CK_FUNCTION_LIST_3_0 as *mut std::ffi::c_void,
    flags: 0,
});
static INTERFACE_2_40: SharedInterface = SharedInterface(CK_INTERFACE {
    pInterfaceName: INTERFACE_NAME_BYTES.as_ptr() as *mut CK_UTF8CHAR,
    pFunctionList: &FUNCTIONS_2_40 as *const CK_FUNCTION_LIST as *mut std::ffi::c_void,
    flags: 0,
});
static INTERFACE_NAME_BYTES: [u8; 8] = *b"PKCS 11\0";

/// `C_GetFunctionList`: the 2.40 list. May be called before `C_Initialize`.
///
/// # Safety
/// `pp_function_list` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetFunctionList(pp_function_list: *mut *mut CK_FUNCTION_LIST) -> CK_RV {
    let list = &FUNCTIONS_2_40 as *const CK_FUNCTION_LIST as *mut CK_FUNCTION_LIST;
    // SAFETY: the caller's contract (NULL is refused by `put`).
    unsafe { put(pp_function_list, list) }
}

/// `C_GetInterfaceList`, with the length-query protocol. May be called before `C_Initialize`.
///
/// # Safety
/// `p_list` NULL or room for `*pul_count` interfaces; `pul_count` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetInterfaceList(p_list: *mut CK_INTERFACE, pul_count: *mut CK_ULONG) -> CK_RV {
    // SAFETY: the caller's contract.
    unsafe { write_list(p_list, pul_count, &interfaces()) }
}

/// `C_GetInterface`: "PKCS 11" (or NULL) at version 3.0 (or NULL: the default) or 2.40.
///
/// # Safety
/// `p_name` NULL or a NUL-terminated string; `p_version` NULL or readable; `pp_interface`
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetInterface(
    p_name: *mut CK_UTF8CHAR,
    p_version: *mut CK_VERSION,
    pp_interface: *mut *mut CK_INTERFACE,
    flags: CK_FLAGS,
) -> CK_RV {
    if pp_interface.is_null() {
        return CKR_ARGUMENTS_BAD;
    }
    if !p_name.is_null() {
        // SAFETY: a NUL-terminated string (the caller's contract).
        let name = unsafe { std::ffi::CStr::from_ptr(p_name as *const std::ffi::c_char) };
        if name.to_bytes() != b"PKCS 11" {
            return CKR_ARGUMENTS_BAD;
        }
    }
    // No interface claims fork safety: a child initialises again.
    if flags != 0 {
        return CKR_ARGUMENTS_BAD;
    }
    let interface = if p_version.is_null() {
        &INTERFACE_3_0
    } else {
        // SAFETY: non-NULL, readable (the caller's contract).
        match unsafe { p_version.read_unaligned() } {
            CK_VERSION { major: 3, minor: 0 } => &INTERFACE_3_0,
            CK_VERSION { major: 2, minor: 40 } => &INTERFACE_2_40,
            _ => return CKR_ARGUMENTS_BAD,
        }
    };
    let pointer = &interface.0 as *const CK_INTERFACE as *mut CK_INTERFACE;
    // SAFETY: checked non-NULL; the caller's contract.
    unsafe { put(pp_interface, pointer) }
}
