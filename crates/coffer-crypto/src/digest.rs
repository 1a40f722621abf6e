//! SHA-1 and SHA-2 digests, one-shot and incremental.

use aws_lc_rs::digest;

use crate::error::Result;
use crate::mechanism::HashAlg;
use crate::module::Module;

pub(crate) fn algorithm(hash: HashAlg) -> &'static digest::Algorithm {
    match hash {
        HashAlg::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
        HashAlg::Sha224 => &digest::SHA224,
        HashAlg::Sha256 => &digest::SHA256,
        HashAlg::Sha384 => &digest::SHA384,
        HashAlg::Sha512 => &digest::SHA512,
    }
}

/// An incremental digest (`C_DigestUpdate` / `C_DigestFinal`).
pub struct Digester {
    ctx: digest::Context,
    hash: HashAlg,
}

impl std::fmt::Debug for Digester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Digester").field("hash", &self.hash).finish_non_exhaustive()
    }
}

impl Digester {
    /// Feeds more data.
    pub fn update(&mut self, data: &[u8]) {
        self.ctx.update(data);
    }
    /// Finishes and returns the digest.
    pub fn finish(self) -> Vec<u8> {
        self.ctx.finish().as_ref().to_vec()
    }
    /// The hash being computed.
    pub fn hash(&self) -> HashAlg {
        self.hash
    }
}

impl Module {
    /// One-shot digest.
    pub fn digest(&self, hash: HashAlg, data: &[u8]) -> Result<Vec<u8>> {
        self.check()?;
        Ok(digest::digest(algorithm(hash), data).as_ref().to_vec())
    }

    /// Starts an incremental digest.
    pub fn digest_init(&self, hash: HashAlg) -> Result<Digester> {
        self.check()?;
        Ok(Digester { ctx: digest::Context::new(algorithm(hash)), hash })
    }
}
