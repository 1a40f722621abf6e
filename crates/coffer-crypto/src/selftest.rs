//! Power-on self-tests: one known-answer test per algorithm family.
//!
//! Each test computes a published vector and compares it with the expected answer. With the
//! `fault-injection` feature a chosen test is fed a corrupted input, so that the module's
//! error state can be tested.

use crate::mechanism::HashAlg;
use crate::module::{Module, SelfTest};

/// A known-answer test: `corrupt` says whether to feed it a corrupted input.
type Kat = fn(&Module, bool) -> bool;

/// Runs every known-answer test; the first failure is returned.
pub(crate) fn run_all(module: &Module, fault: Option<SelfTest>) -> Result<(), SelfTest> {
    let tests: [(SelfTest, Kat); 1] = [(SelfTest::Digest, kat_digest)];
    for (test, run) in tests {
        if !run(module, fault == Some(test)) {
            return Err(test);
        }
    }
    Ok(())
}

/// Flips a bit of the input when the test is the one made to fail.
fn input(data: &[u8], corrupt: bool) -> Vec<u8> {
    let mut v = data.to_vec();
    if corrupt {
        match v.first_mut() {
            Some(b) => *b ^= 1,
            None => v.push(1),
        }
    }
    v
}

/// SHA-256 of "abc" (FIPS 180-2, appendix B.1).
fn kat_digest(module: &Module, corrupt: bool) -> bool {
    const EXPECTED: [u8; 32] = [
        0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0,
        0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad,
    ];
    module.digest(HashAlg::Sha256, &input(b"abc", corrupt)).map(|d| d == EXPECTED).unwrap_or(false)
}
