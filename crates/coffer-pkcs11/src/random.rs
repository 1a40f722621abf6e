//! `C_GenerateRandom` (through the node's `GenerateRandom`, in bounded pieces).

use coffer_client::v1;
use cryptoki_sys::*;

use crate::error::{Result, fail};
use crate::state::{Library, Repeat};

/// Bytes asked of the node per call, well inside one gRPC message.
const PIECE: usize = 1 << 20;

/// `C_GenerateRandom`.
pub fn generate(lib: &Library, session: CK_SESSION_HANDLE, len: usize) -> Result<Vec<u8>> {
    let s = lib.session(session)?;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let piece = (len - out.len()).min(PIECE);
        let request = v1::GenerateRandomRequest { session: Vec::new(), length: piece as u32 };
        let data = lib.on_node(&s, Repeat::Safe, |n| n.generate_random(request.clone()))?.data;
        if data.is_empty() {
            return fail(CKR_DEVICE_ERROR, "the node returned no random bytes");
        }
        out.extend(data);
    }
    out.truncate(len);
    Ok(out)
}
