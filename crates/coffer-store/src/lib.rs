//! # coffer-store
//!
//! Sealed persistence for a Coffer HSM node. The store seals bytes and persists records; it
//! does not interpret HSM objects. `coffer-hsm` decides what a record holds and which of its
//! bytes are secret, and seals those with [`DomainKey::seal`] before they reach a [`Batch`].
//!
//! ## On-disk layout
//!
//! ```text
//! <data dir>/              mode 0700
//!   domain-key.sealed      mode 0600: the domain key sealed by a seal provider
//!   state.redb             mode 0600: the redb database
//! ```
//!
//! `domain-key.sealed` is `"CFDK" || version (1) || postcard(SealedDomainKey)`. The record
//! names the provider kind (`passphrase`, `key-file`), its public parameters (PBKDF2 salt and
//! iteration count) and its output: `check (32) || IV (12) || AES-256-GCM(domain key) || tag`,
//! where `check` = SHA-256(label || KEK) tells a wrong seal secret
//! ([`StoreError::WrongSealSecret`]) from an altered file ([`StoreError::SealedKeyCorrupt`]).
//! The wrap's associated data binds the file version, provider kind and parameters.
//!
//! `state.redb` holds the tables [`Table::Objects`] (u64 keys), [`Table::Users`] and
//! [`Table::Meta`] (string keys), whose values are opaque bytes, and a private table with the
//! store format version ([`STORE_FORMAT_VERSION`], checked on open) and a blob sealed under the
//! domain key at creation (so a domain key from another store is refused with
//! [`StoreError::DomainKeyMismatch`]). Every [`Store::commit`] is one redb transaction with
//! immediate durability: a batch is on disk when `commit` returns, and a crash leaves all of it
//! or none of it.
//!
//! The key file of [`KeyFileSeal`] is the seal secret and must live apart from the data
//! directory (another disk, a secrets mount): a copy of the data directory alone must not be
//! enough to open it. The store refuses a key file inside its data directory.
//!
//! No key byte is on disk in plaintext: object secrets are sealed blobs inside records, and the
//! domain key is only in `domain-key.sealed`, wrapped. `tests/plaintext_scan.rs` checks it.
//!
//! ## Blob format
//!
//! ```text
//! version (1 byte, = 1) || IV (12 bytes, random) || AES-256-GCM ciphertext || tag (16 bytes)
//! ```
//!
//! The associated data is
//!
//! ```text
//! "coffer-store/blob" || version (u8) || object_id (u64 BE) || class (CKO_* as u64 BE)
//!   || key_type (CKK_* as u64 BE) || len(owner) (u64 BE) || owner (UTF-8)
//! ```
//!
//! ### Why the associated data binds those fields
//!
//! GCM authenticates the ciphertext *and* the associated data, so a blob opens only for the
//! record it was sealed for. Without the binding, anyone able to write the database (a
//! restored old backup, a tampered file, a bug) could copy one object's sealed secret into
//! another record: move a key to another owner (stealing it), give a key another id (swapping
//! it under a handle an application trusts), or relabel its class or type (using private-key
//! bytes as an AES key). With the binding each of these fails with [`StoreError::BlobInvalid`].
//! The fields are fixed-width or length-prefixed, so two different contexts never encode to
//! the same bytes; the class and type use PKCS#11's stable numeric codes, not Rust enum order.
//! The version is bound too, so a future format cannot be confused with this one.
#![forbid(unsafe_code)]

mod batch;
mod database;
pub mod error;
mod fs_util;
mod key_file_seal;
mod passphrase_seal;
pub mod provider;
pub mod seal;
mod store;

pub use batch::{Batch, BatchOp, RecordKey, Table};
pub use error::{Result, StoreError};
pub use key_file_seal::KeyFileSeal;
pub use passphrase_seal::{MAX_PBKDF2_ITERATIONS, PassphraseSeal};
pub use provider::{SEALED_KEY_FILE_VERSION, SealProvider, SealedDomainKey};
pub use seal::{BLOB_MIN_LEN, BLOB_VERSION, BlobContext, DOMAIN_KEY_LEN, DomainKey};
pub use store::{DATABASE_FILE, NEXT_SEALED_KEY_FILE, SEALED_KEY_FILE, STORE_FORMAT_VERSION, Store};

#[cfg(test)]
mod tests {
    /// A node shares its store and domain key across threads (an `Arc` in the server).
    #[test]
    fn store_and_domain_key_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<crate::Store>();
        assert_send_sync::<crate::DomainKey>();
        assert_send_sync::<crate::PassphraseSeal>();
        assert_send_sync::<crate::KeyFileSeal>();
    }
}
