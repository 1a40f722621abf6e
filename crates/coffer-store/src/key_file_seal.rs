//! The key-file seal: the KEK is 32 random bytes in a file readable by its owner only.
//!
//! The key file is the seal secret. It must live apart from the data directory (another disk,
//! a secrets mount, removable media): a copy of the data directory alone must not open it. The
//! store refuses a key file inside its data directory.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use coffer_crypto::Module;
use zeroize::Zeroizing;

use crate::error::{Result, StoreError};
use crate::fs_util::sync_parent_dir;
use crate::provider::{KEK_LEN, SealProvider, SealedDomainKey, unwrap_under_kek, wrap_under_kek};
use crate::seal::DomainKey;

/// Seals the domain key under a key held in a file.
pub struct KeyFileSeal {
    path: PathBuf,
    key: Zeroizing<Vec<u8>>,
}

impl KeyFileSeal {
    /// The provider kind recorded in the sealed file.
    pub const KIND: &'static str = "key-file";

    /// Creates a new key file (mode 0600) with 32 random bytes. An existing file is never
    /// overwritten: that would lose the key of the store it seals.
    pub fn create(path: impl AsRef<Path>, module: &Module) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let key = Zeroizing::new(module.random(KEK_LEN)?);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| StoreError::io(&path, e))?;
        file.write_all(&key).and_then(|()| file.sync_all()).map_err(|e| StoreError::io(&path, e))?;
        sync_parent_dir(&path)?;
        Ok(Self { path, key })
    }

    /// Loads an existing key file, refusing one that group or other can access.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let mut file = File::open(&path).map_err(|e| StoreError::io(&path, e))?;
        let meta = file.metadata().map_err(|e| StoreError::io(&path, e))?;
        if !meta.is_file() {
            return Err(StoreError::KeyFileInvalid { path, reason: "not a regular file".into() });
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(StoreError::KeyFilePermissions { path, mode });
        }
        // Read one byte more than a key so that a longer file is noticed without reading it all.
        let mut key = Zeroizing::new(Vec::with_capacity(KEK_LEN + 1));
        (&mut file).take(KEK_LEN as u64 + 1).read_to_end(&mut key).map_err(|e| StoreError::io(&path, e))?;
        if key.len() != KEK_LEN {
            let reason = format!("a seal key file holds exactly {KEK_LEN} bytes");
            return Err(StoreError::KeyFileInvalid { path, reason });
        }
        Ok(Self { path, key })
    }

    /// Where the key file is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl SealProvider for KeyFileSeal {
    fn kind(&self) -> &'static str {
        Self::KIND
    }

    fn wrap_domain_key(&self, module: &Module, key: &DomainKey) -> Result<SealedDomainKey> {
        wrap_under_kek(module, Self::KIND, Vec::new(), &self.key, key)
    }

    fn unwrap_domain_key(&self, module: &Module, sealed: &SealedDomainKey) -> Result<DomainKey> {
        unwrap_under_kek(module, Self::KIND, sealed, &self.key)
    }

    fn secret_path(&self) -> Option<&Path> {
        Some(&self.path)
    }
}

impl fmt::Debug for KeyFileSeal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyFileSeal").field("path", &self.path).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn creates_a_0600_file_and_unwraps_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let module = Module::power_on();
        let path = dir.path().join("seal.key");
        let seal = KeyFileSeal::create(&path, &module).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let key = DomainKey::generate(&module).unwrap();
        let sealed = seal.wrap_domain_key(&module, &key).unwrap();
        let reopened = KeyFileSeal::open(&path).unwrap();
        assert_eq!(reopened.unwrap_domain_key(&module, &sealed).unwrap().expose_bytes(), key.expose_bytes());
    }

    #[test]
    fn refuses_to_overwrite_an_existing_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let module = Module::power_on();
        let path = dir.path().join("seal.key");
        KeyFileSeal::create(&path, &module).unwrap();
        assert!(matches!(KeyFileSeal::create(&path, &module), Err(StoreError::Io { .. })));
    }

    #[test]
    fn refuses_a_group_readable_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let module = Module::power_on();
        let path = dir.path().join("seal.key");
        KeyFileSeal::create(&path, &module).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let err = KeyFileSeal::open(&path).unwrap_err();
        assert!(matches!(err, StoreError::KeyFilePermissions { mode: 0o640, .. }), "{err}");
        assert!(err.to_string().contains("0600"), "{err}");
    }

    #[test]
    fn refuses_a_key_file_of_the_wrong_length() {
        let dir = tempfile::tempdir().unwrap();
        for len in [0usize, 31, 33, 4096] {
            let path = dir.path().join(format!("k{len}"));
            let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path).unwrap();
            file.write_all(&vec![7u8; len]).unwrap();
            assert!(matches!(KeyFileSeal::open(&path), Err(StoreError::KeyFileInvalid { .. })), "{len}");
        }
    }

    #[test]
    fn another_key_file_is_a_wrong_seal_secret() {
        let dir = tempfile::tempdir().unwrap();
        let module = Module::power_on();
        let one = KeyFileSeal::create(dir.path().join("one"), &module).unwrap();
        let two = KeyFileSeal::create(dir.path().join("two"), &module).unwrap();
        let sealed = one.wrap_domain_key(&module, &DomainKey::generate(&module).unwrap()).unwrap();
        let err = two.unwrap_domain_key(&module, &sealed).unwrap_err();
        assert!(matches!(err, StoreError::WrongSealSecret { provider: "key-file" }), "{err}");
    }
}
