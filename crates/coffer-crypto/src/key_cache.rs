//! Parsed aws-lc-rs key objects, built from a private key's PKCS#8 on first use.
//!
//! Parsing an RSA key costs as much as several signatures, so each parsed form is kept in a
//! `OnceLock` beside the PKCS#8 bytes. aws-lc frees (and cleanses) the key memory on drop.

use std::sync::OnceLock;

use aws_lc_rs::signature::Ed25519KeyPair;

/// Cached parsed forms of one private key. Each field is filled at most once.
#[derive(Default)]
pub(crate) struct PrivateCache {
    pub(crate) ed25519: OnceLock<Ed25519KeyPair>,
}

impl std::fmt::Debug for PrivateCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivateCache")
    }
}
