//! `C_Digest*`, through the node's `Digest` RPC (every mechanism goes through Coffer);
//! multi-part input is buffered (see [`crate::operation`]).

use cryptoki_sys::*;

use crate::error::{Result, fail};
use crate::mechanism::{self, Mechanism};
use crate::operation::{MAX_SINGLE_CALL, Multipart};
use crate::output::{Delivered, offer};
use crate::state::{Library, P11Session, Repeat};
use coffer_client::v1;

/// `C_DigestInit`.
pub fn init(lib: &Library, session: CK_SESSION_HANDLE, m: &Mechanism) -> Result<()> {
    let s = lib.session(session)?;
    mechanism::require(m.ty, CKF_DIGEST)?;
    let Some(hash) = mechanism::hash_of(m.ty) else {
        return fail(CKR_MECHANISM_INVALID, "not a digest mechanism");
    };
    let mut ops = s.ops();
    if ops.digest.is_some() {
        return fail(CKR_OPERATION_ACTIVE, "a digest is active");
    }
    ops.digest = Some(Multipart::new(CK_INVALID_HANDLE, hash, MAX_SINGLE_CALL));
    Ok(())
}

fn call(lib: &Library, s: &P11Session, hash: v1::HashAlg, data: &[u8]) -> Result<Vec<u8>> {
    let request = v1::DigestRequest { session: Vec::new(), hash: hash as i32, data: data.to_vec() };
    Ok(lib.on_node(s, Repeat::Safe, |n| n.digest(request.clone()))?.digest)
}

fn with_op<T>(
    lib: &Library,
    session: CK_SESSION_HANDLE,
    step: impl FnOnce(&P11Session, &mut Multipart<v1::HashAlg>) -> Result<(T, bool)>,
) -> Result<T> {
    let s = lib.session(session)?;
    let mut ops = s.ops();
    let Some(op) = ops.digest.as_mut() else {
        return fail(CKR_OPERATION_NOT_INITIALIZED, "no digest was initialised");
    };
    match step(&s, op) {
        Ok((value, done)) => {
            if done {
                ops.digest = None;
            }
            Ok(value)
        }
        Err(e) => {
            ops.digest = None;
            Err(e)
        }
    }
}

/// `C_Digest`.
pub fn digest(
    lib: &Library,
    session: CK_SESSION_HANDLE,
    data: &[u8],
    capacity: Option<usize>,
) -> Result<Delivered> {
    with_op(lib, session, |s, op| {
        if op.pending.is_none() {
            op.single(data)?;
        }
        let hash = op.mechanism;
        let delivered = offer(&mut op.pending, capacity, || call(lib, s, hash, data))?;
        let done = delivered.is_final();
        Ok((delivered, done))
    })
}

/// `C_DigestUpdate`.
pub fn update(lib: &Library, session: CK_SESSION_HANDLE, part: &[u8]) -> Result<()> {
    with_op(lib, session, |_, op| op.update(part).map(|()| ((), false)))
}

/// `C_DigestFinal`.
pub fn finish(lib: &Library, session: CK_SESSION_HANDLE, capacity: Option<usize>) -> Result<Delivered> {
    with_op(lib, session, |s, op| {
        let (hash, input) = (op.mechanism, op.input.clone());
        let delivered = offer(&mut op.pending, capacity, || call(lib, s, hash, &input))?;
        let done = delivered.is_final();
        Ok((delivered, done))
    })
}
