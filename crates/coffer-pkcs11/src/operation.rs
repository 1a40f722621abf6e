//! Operations in progress in one session, and the input buffering of multi-part operations.
//!
//! Multi-part input (`C_*Update`) is buffered here and sent to the node in one call at
//! `C_*Final`: the node's single-part RPCs are what every mechanism has, and one round trip per
//! operation is cheaper than one per part. The bounds: [`MAX_CIPHER_INPUT`] for ciphers (over
//! [`STREAM_ABOVE`] bytes the node's `EncryptStream`/`DecryptStream` carry it), and
//! [`MAX_SINGLE_CALL`] for signing, verifying and digesting, which must fit one gRPC message
//! (the node's default limit is 4 MiB). More gives `CKR_DATA_LEN_RANGE`. As a consequence,
//! `C_EncryptUpdate`/`C_DecryptUpdate` return no output and `C_*Final` returns all of it, which
//! the standard allows.

use std::collections::VecDeque;
use std::fmt;

use coffer_client::v1;
use cryptoki_sys::*;
use zeroize::Zeroizing;

use crate::error::{Result, fail};

/// Most input a multi-part encryption or decryption may buffer.
pub const MAX_CIPHER_INPUT: usize = 64 << 20;
/// Cipher input larger than this goes through the streaming RPCs.
pub const STREAM_ABOVE: usize = 1 << 20;
/// Most input a signature, verification or digest may carry (one gRPC message).
pub const MAX_SINGLE_CALL: usize = 3 << 20;

/// The operations of one session. `Debug` shows only which are active: buffers hold
/// plaintext.
#[derive(Default)]
pub struct Operations {
    pub find: Option<VecDeque<u64>>,
    pub encrypt: Option<Multipart<v1::CipherMechanism>>,
    pub decrypt: Option<Multipart<v1::CipherMechanism>>,
    pub sign: Option<Multipart<v1::SignMechanism>>,
    pub verify: Option<Multipart<v1::SignMechanism>>,
    pub digest: Option<Multipart<v1::HashAlg>>,
    /// The last key handle found valid by a `C_*Init` in this session.
    pub checked_key: Option<u64>,
}

impl fmt::Debug for Operations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Operations")
            .field("find", &self.find.is_some())
            .field("encrypt", &self.encrypt.is_some())
            .field("decrypt", &self.decrypt.is_some())
            .field("sign", &self.sign.is_some())
            .field("verify", &self.verify.is_some())
            .field("digest", &self.digest.is_some())
            .finish()
    }
}

/// One operation: its key and mechanism, the buffered input, and an output computed but not
/// yet handed over (see [`crate::output`]).
pub struct Multipart<M> {
    pub key: CK_OBJECT_HANDLE,
    pub mechanism: M,
    pub input: Zeroizing<Vec<u8>>,
    pub pending: Option<Zeroizing<Vec<u8>>>,
    /// `C_*Update` was called: the single-part call is no longer allowed.
    pub multipart: bool,
    limit: usize,
}

impl<M> fmt::Debug for Multipart<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Multipart").field("key", &self.key).field("buffered", &self.input.len()).finish()
    }
}

impl<M> Multipart<M> {
    pub fn new(key: CK_OBJECT_HANDLE, mechanism: M, limit: usize) -> Self {
        Multipart {
            key,
            mechanism,
            input: Zeroizing::new(Vec::new()),
            pending: None,
            multipart: false,
            limit,
        }
    }

    /// Buffers one part.
    pub fn update(&mut self, part: &[u8]) -> Result<()> {
        if self.pending.is_some() {
            return fail(CKR_OPERATION_ACTIVE, "the operation's output is waiting to be read");
        }
        if self.input.len() + part.len() > self.limit {
            return fail(CKR_DATA_LEN_RANGE, format!("multi-part input over {} bytes", self.limit));
        }
        self.multipart = true;
        self.input.extend_from_slice(part);
        Ok(())
    }

    /// Checks a single-part call is allowed and its input within bounds.
    pub fn single(&self, data: &[u8]) -> Result<()> {
        if self.multipart {
            return fail(CKR_OPERATION_ACTIVE, "a multi-part operation is in progress");
        }
        if data.len() > self.limit {
            return fail(CKR_DATA_LEN_RANGE, format!("input over {} bytes", self.limit));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_input_is_bounded_and_excludes_single_part() {
        let mut op = Multipart::new(1, (), 8);
        op.single(b"12345678").unwrap();
        op.update(b"1234").unwrap();
        assert_eq!(op.single(b"x").unwrap_err().rv, CKR_OPERATION_ACTIVE);
        assert_eq!(op.update(b"12345").unwrap_err().rv, CKR_DATA_LEN_RANGE);
        op.update(b"5678").unwrap();
        assert_eq!(op.input.as_slice(), b"12345678");
        assert!(format!("{:?}", Operations::default()).contains("encrypt: false"));
    }
}
