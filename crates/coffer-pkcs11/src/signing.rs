//! `C_Sign*` and `C_Verify*`, single- and multi-part (buffered, see [`crate::operation`]).

use std::sync::Arc;

use coffer_client::v1;
use cryptoki_sys::*;

use crate::error::{Result, fail};
use crate::mechanism::{self, Mechanism};
use crate::operation::{MAX_SINGLE_CALL, Multipart, Operations};
use crate::output::{Delivered, offer};
use crate::state::{Library, P11Session, Repeat};

type Slot = fn(&mut Operations) -> &mut Option<Multipart<v1::SignMechanism>>;

fn sign_slot(ops: &mut Operations) -> &mut Option<Multipart<v1::SignMechanism>> {
    &mut ops.sign
}

fn verify_slot(ops: &mut Operations) -> &mut Option<Multipart<v1::SignMechanism>> {
    &mut ops.verify
}

fn init(
    lib: &Library,
    session: CK_SESSION_HANDLE,
    slot: Slot,
    flag: CK_FLAGS,
    m: &Mechanism,
    key: CK_OBJECT_HANDLE,
) -> Result<()> {
    let s = lib.session(session)?;
    mechanism::require(m.ty, flag)?;
    let wire = mechanism::sign_mechanism(m)?;
    if slot(&mut s.ops()).is_some() {
        return fail(CKR_OPERATION_ACTIVE, "an operation of this kind is active");
    }
    crate::object::check_key(lib, &s, key)?;
    *slot(&mut s.ops()) = Some(Multipart::new(key, wire, MAX_SINGLE_CALL));
    Ok(())
}

/// Runs `step` on the active operation; an error or a finished operation ends it.
fn with_op<T>(
    lib: &Library,
    session: CK_SESSION_HANDLE,
    slot: Slot,
    step: impl FnOnce(&Arc<P11Session>, &mut Multipart<v1::SignMechanism>) -> Result<(T, bool)>,
) -> Result<T> {
    let s = lib.session(session)?;
    let mut ops = s.ops();
    let Some(op) = slot(&mut ops).as_mut() else {
        return fail(CKR_OPERATION_NOT_INITIALIZED, "no operation was initialised");
    };
    match step(&s, op) {
        Ok((value, done)) => {
            if done {
                *slot(&mut ops) = None;
            }
            Ok(value)
        }
        Err(e) => {
            *slot(&mut ops) = None;
            Err(e)
        }
    }
}

/// `CKM_RSA_PKCS`, `CKM_RSA_PKCS_PSS`, `CKM_ECDSA` and `CKM_EDDSA` are single-part in
/// PKCS#11: `C_SignUpdate` / `C_VerifyUpdate` end the operation with
/// `CKR_FUNCTION_NOT_SUPPORTED`, as SoftHSM does, and callers such as `pkcs11-tool --test`
/// then fall back to the single-part call.
fn multipart_allowed(mechanism: &v1::SignMechanism) -> Result<()> {
    use v1::sign_mechanism::Mechanism as M;
    match mechanism.mechanism {
        Some(M::RsaPkcs(_) | M::RsaPkcsPss(_) | M::Ecdsa(_) | M::Eddsa(_)) => {
            fail(CKR_FUNCTION_NOT_SUPPORTED, "this mechanism is single-part: use C_Sign / C_Verify")
        }
        _ => Ok(()),
    }
}

fn sign_call(
    lib: &Library,
    s: &Arc<P11Session>,
    key: CK_OBJECT_HANDLE,
    mechanism: v1::SignMechanism,
    data: &[u8],
) -> Result<Vec<u8>> {
    let owner = lib.session_for(s, key);
    let request =
        v1::SignRequest { session: Vec::new(), key, mechanism: Some(mechanism), data: data.to_vec() };
    Ok(lib.on_node(&owner, Repeat::Safe, |n| n.sign(request.clone()))?.signature)
}

fn verify_call(
    lib: &Library,
    s: &Arc<P11Session>,
    key: CK_OBJECT_HANDLE,
    mechanism: v1::SignMechanism,
    data: &[u8],
    signature: &[u8],
) -> Result<()> {
    let owner = lib.session_for(s, key);
    let request = v1::VerifyRequest {
        session: Vec::new(),
        key,
        mechanism: Some(mechanism),
        data: data.to_vec(),
        signature: signature.to_vec(),
    };
    lib.on_node(&owner, Repeat::Safe, |n| n.verify(request.clone()))?;
    Ok(())
}

/// `C_SignInit`.
pub fn sign_init(
    lib: &Library,
    session: CK_SESSION_HANDLE,
    m: &Mechanism,
    key: CK_OBJECT_HANDLE,
) -> Result<()> {
    init(lib, session, sign_slot, CKF_SIGN, m, key)
}

/// `C_Sign`.
pub fn sign(
    lib: &Library,
    session: CK_SESSION_HANDLE,
    data: &[u8],
    capacity: Option<usize>,
) -> Result<Delivered> {
    with_op(lib, session, sign_slot, |s, op| {
        if op.pending.is_none() {
            op.single(data)?;
        }
        let (key, mechanism) = (op.key, op.mechanism);
        let delivered = offer(&mut op.pending, capacity, || sign_call(lib, s, key, mechanism, data))?;
        let done = delivered.is_final();
        Ok((delivered, done))
    })
}

/// `C_SignUpdate`.
pub fn sign_update(lib: &Library, session: CK_SESSION_HANDLE, part: &[u8]) -> Result<()> {
    with_op(lib, session, sign_slot, |_, op| {
        multipart_allowed(&op.mechanism)?;
        op.update(part).map(|()| ((), false))
    })
}

/// `C_SignFinal`.
pub fn sign_final(lib: &Library, session: CK_SESSION_HANDLE, capacity: Option<usize>) -> Result<Delivered> {
    with_op(lib, session, sign_slot, |s, op| {
        let (key, mechanism, input) = (op.key, op.mechanism, op.input.clone());
        let delivered = offer(&mut op.pending, capacity, || sign_call(lib, s, key, mechanism, &input))?;
        let done = delivered.is_final();
        Ok((delivered, done))
    })
}

/// `C_VerifyInit`.
pub fn verify_init(
    lib: &Library,
    session: CK_SESSION_HANDLE,
    m: &Mechanism,
    key: CK_OBJECT_HANDLE,
) -> Result<()> {
    init(lib, session, verify_slot, CKF_VERIFY, m, key)
}

/// `C_Verify`: always ends the operation.
pub fn verify(lib: &Library, session: CK_SESSION_HANDLE, data: &[u8], signature: &[u8]) -> Result<()> {
    with_op(lib, session, verify_slot, |s, op| {
        op.single(data)?;
        verify_call(lib, s, op.key, op.mechanism, data, signature).map(|()| ((), true))
    })
}

/// `C_VerifyUpdate`.
pub fn verify_update(lib: &Library, session: CK_SESSION_HANDLE, part: &[u8]) -> Result<()> {
    with_op(lib, session, verify_slot, |_, op| {
        multipart_allowed(&op.mechanism)?;
        op.update(part).map(|()| ((), false))
    })
}

/// `C_VerifyFinal`: always ends the operation.
pub fn verify_final(lib: &Library, session: CK_SESSION_HANDLE, signature: &[u8]) -> Result<()> {
    with_op(lib, session, verify_slot, |s, op| {
        verify_call(lib, s, op.key, op.mechanism, &op.input, signature).map(|()| ((), true))
    })
}
