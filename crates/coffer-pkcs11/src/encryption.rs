//! `C_Encrypt*` and `C_Decrypt*`. AES-GCM uses the caller's IV from `CK_GCM_PARAMS`.

use std::sync::Arc;

use coffer_client::v1;
use cryptoki_sys::*;

use crate::error::{Result, fail};
use crate::mechanism::{self, Mechanism};
use crate::operation::{MAX_CIPHER_INPUT, Multipart, Operations, STREAM_ABOVE};
use crate::output::{Delivered, offer};
use crate::state::{Library, P11Session, Repeat};

/// Encrypt or decrypt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Encrypt,
    Decrypt,
}

type Slot = fn(&mut Operations) -> &mut Option<Multipart<v1::CipherMechanism>>;

fn slot(direction: Direction) -> Slot {
    match direction {
        Direction::Encrypt => |ops| &mut ops.encrypt,
        Direction::Decrypt => |ops| &mut ops.decrypt,
    }
}

/// `C_EncryptInit` / `C_DecryptInit`.
pub fn init(
    lib: &Library,
    session: CK_SESSION_HANDLE,
    direction: Direction,
    m: &Mechanism,
    key: CK_OBJECT_HANDLE,
) -> Result<()> {
    let s = lib.session(session)?;
    let flag = if direction == Direction::Encrypt { CKF_ENCRYPT } else { CKF_DECRYPT };
    mechanism::require(m.ty, flag)?;
    let wire = mechanism::cipher_mechanism(m)?;
    if slot(direction)(&mut s.ops()).is_some() {
        return fail(CKR_OPERATION_ACTIVE, "an operation of this kind is active");
    }
    crate::object::check_key(lib, &s, key)?;
    *slot(direction)(&mut s.ops()) = Some(Multipart::new(key, wire, MAX_CIPHER_INPUT));
    Ok(())
}

/// Runs `step` on the active operation; an error or a handed-over output ends it.
fn with_op(
    lib: &Library,
    session: CK_SESSION_HANDLE,
    direction: Direction,
    step: impl FnOnce(&Arc<P11Session>, &mut Multipart<v1::CipherMechanism>) -> Result<Delivered>,
) -> Result<Delivered> {
    let s = lib.session(session)?;
    let mut ops = s.ops();
    let Some(op) = slot(direction)(&mut ops).as_mut() else {
        return fail(CKR_OPERATION_NOT_INITIALIZED, "no operation was initialised");
    };
    let result = step(&s, op);
    if result.as_ref().map_or(true, Delivered::is_final) {
        *slot(direction)(&mut ops) = None;
    }
    result
}

/// `C_Encrypt` / `C_Decrypt`.
pub fn single(
    lib: &Library,
    session: CK_SESSION_HANDLE,
    direction: Direction,
    data: &[u8],
    capacity: Option<usize>,
) -> Result<Delivered> {
    with_op(lib, session, direction, |s, op| {
        if op.pending.is_none() {
            op.single(data)?;
        }
        let (key, mechanism) = (op.key, op.mechanism.clone());
        offer(&mut op.pending, capacity, || run(lib, s, direction, key, mechanism, data))
    })
}

/// `C_EncryptUpdate` / `C_DecryptUpdate`: buffers the part and returns no output yet.
pub fn update(
    lib: &Library,
    session: CK_SESSION_HANDLE,
    direction: Direction,
    part: &[u8],
) -> Result<Delivered> {
    with_op(lib, session, direction, |_, op| {
        op.update(part)?;
        // Zero bytes of output, and not final: the operation goes on.
        Ok(Delivered::Length(0))
    })
}

/// `C_EncryptFinal` / `C_DecryptFinal`: all the output.
pub fn finish(
    lib: &Library,
    session: CK_SESSION_HANDLE,
    direction: Direction,
    capacity: Option<usize>,
) -> Result<Delivered> {
    with_op(lib, session, direction, |s, op| {
        let (key, mechanism) = (op.key, op.mechanism.clone());
        let input = op.input.clone();
        offer(&mut op.pending, capacity, || run(lib, s, direction, key, mechanism, &input))
    })
}

/// One call to the node (streamed for large input).
fn run(
    lib: &Library,
    s: &Arc<P11Session>,
    direction: Direction,
    key: CK_OBJECT_HANDLE,
    mechanism: v1::CipherMechanism,
    data: &[u8],
) -> Result<Vec<u8>> {
    let owner = lib.session_for(s, key);
    // Encrypting or decrypting again changes nothing: every form is safe to repeat.
    if data.len() > STREAM_ABOVE {
        return lib.on_node(&owner, Repeat::Safe, |node| {
            let mut out = Vec::with_capacity(data.len() + 32);
            let input = std::io::Cursor::new(data.to_vec());
            match direction {
                Direction::Encrypt => node.encrypt_stream(key, mechanism.clone(), input, &mut out)?,
                Direction::Decrypt => node.decrypt_stream(key, mechanism.clone(), input, &mut out)?,
            };
            Ok(out)
        });
    }
    let request =
        v1::CipherRequest { session: Vec::new(), key, mechanism: Some(mechanism), data: data.to_vec() };
    let response = lib.on_node(&owner, Repeat::Safe, |node| match direction {
        Direction::Encrypt => node.encrypt(request.clone()),
        Direction::Decrypt => node.decrypt(request.clone()),
    })?;
    Ok(response.data)
}
