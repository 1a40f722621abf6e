//! General-purpose functions, slots and tokens: `C_Initialize`, `C_Finalize`, `C_GetInfo`,
//! `C_GetSlotList`, `C_GetSlotInfo`, `C_GetTokenInfo`, `C_GetMechanismList`,
//! `C_GetMechanismInfo`. (`C_GetFunctionList` and the interfaces are in `ffi`.)
//!
//! Configuration: the file `COFFER_CONFIG` names, else [`DEFAULT_CONFIG`]. A missing or bad
//! file is logged on stderr and `C_Initialize` fails with `CKR_GENERAL_ERROR`; a cluster that
//! cannot be reached, with `CKR_DEVICE_ERROR`.

use std::path::PathBuf;

use coffer_client::{ClientConfig, blocking, v1};
use cryptoki_sys::*;

use crate::error::{P11Error, Result, fail};
use crate::ffi::pointers::{InitArgs, pad};
use crate::mechanism::{self, MECHANISMS};
use crate::state::{self, ClusterFacts, Library, SLOT_ID};

/// Where the client configuration is when `COFFER_CONFIG` is not set.
pub const DEFAULT_CONFIG: &str = "/etc/coffer/client.toml";
/// The library's own version.
const LIBRARY_VERSION: CK_VERSION = CK_VERSION { major: 0, minor: 1 };

fn config_path() -> PathBuf {
    match std::env::var_os(coffer_client::CONFIG_ENV) {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => PathBuf::from(DEFAULT_CONFIG),
    }
}

/// `C_Initialize`. Every locking mode is accepted: the library's own locks are OS locks, which
/// are correct for the application's threads whatever mutex functions it offers.
///
/// `CKF_LIBRARY_CANT_CREATE_OS_THREADS` is accepted too, although the client runs its
/// connections on threads of its own: those threads never call into the application, and
/// refusing (`CKR_NEED_TO_CREATE_THREADS`) would shut out GnuTLS/p11-kit, which sets the flag.
pub fn initialize(args: InitArgs) -> Result<()> {
    let _threads_are_internal = args.no_threads;
    state::install(connect)
}

fn connect() -> Result<Library> {
    let path = config_path();
    let config = ClientConfig::load(&path).map_err(|e| {
        crate::log(&format!("cannot use the client configuration: {e}"));
        P11Error::new(CKR_GENERAL_ERROR, e.to_string())
    })?;
    let client = blocking::Client::connect(&config).map_err(|e| {
        crate::log(&format!("cannot reach the cluster in {}: {e}", path.display()));
        P11Error::new(CKR_DEVICE_ERROR, e.to_string())
    })?;
    let info = client.cluster_info().map_err(|e| {
        crate::log(&format!("cannot read the cluster's information: {e}"));
        P11Error::from(e)
    })?;
    let cluster = ClusterFacts {
        cluster_id: info.cluster_id,
        active: info.state == v1::ClusterState::Active as i32,
        version: info.version,
    };
    Ok(Library::new(client, cluster))
}

/// `C_Finalize`: closes every session.
pub fn finalize() -> Result<()> {
    let lib = state::uninstall()?;
    for s in lib.sessions() {
        let _closed = crate::session::close(&lib, s.handle);
    }
    Ok(())
}

/// `C_GetInfo`.
pub fn info() -> Result<CK_INFO> {
    state::library()?;
    Ok(CK_INFO {
        cryptokiVersion: CK_VERSION { major: 2, minor: 40 },
        manufacturerID: pad("Coffer"),
        flags: 0,
        libraryDescription: pad("Coffer PKCS#11 library"),
        libraryVersion: LIBRARY_VERSION,
    })
}

/// `C_GetSlotList`: one slot, always with its token.
pub fn slot_list() -> Result<Vec<CK_SLOT_ID>> {
    state::library()?;
    Ok(vec![SLOT_ID])
}

fn check_slot(slot: CK_SLOT_ID) -> Result<std::sync::Arc<Library>> {
    let lib = state::library()?;
    if slot != SLOT_ID {
        return fail(CKR_SLOT_ID_INVALID, format!("no slot {slot}"));
    }
    Ok(lib)
}

/// `C_GetSlotInfo`.
pub fn slot_info(slot: CK_SLOT_ID) -> Result<CK_SLOT_INFO> {
    let lib = check_slot(slot)?;
    Ok(CK_SLOT_INFO {
        slotDescription: pad(&format!("Coffer cluster {}", lib.cluster.cluster_id)),
        manufacturerID: pad("Coffer"),
        flags: CKF_TOKEN_PRESENT,
        hardwareVersion: CK_VERSION { major: 1, minor: 0 },
        firmwareVersion: version(&lib.cluster.version),
    })
}

/// `major.minor` of a version string.
fn version(text: &str) -> CK_VERSION {
    let mut parts = text.split('.').map(|p| p.parse::<u8>().unwrap_or(0));
    CK_VERSION { major: parts.next().unwrap_or(0), minor: parts.next().unwrap_or(0) }
}

/// The token serial: the last 16 characters of the cluster id.
fn serial(cluster_id: &str) -> [CK_CHAR; 16] {
    let chars: Vec<char> = cluster_id.chars().filter(char::is_ascii_alphanumeric).collect();
    let tail: String = chars[chars.len().saturating_sub(16)..].iter().collect();
    pad(&tail)
}

/// `C_GetTokenInfo`.
pub fn token_info(slot: CK_SLOT_ID) -> Result<CK_TOKEN_INFO> {
    let lib = check_slot(slot)?;
    let sessions = lib.sessions();
    let rw = sessions.iter().filter(|s| s.read_write).count() as CK_ULONG;
    let mut flags = CKF_RNG | CKF_LOGIN_REQUIRED | CKF_USER_PIN_INITIALIZED;
    if lib.cluster.active {
        flags |= CKF_TOKEN_INITIALIZED;
    }
    Ok(CK_TOKEN_INFO {
        label: pad(&format!("Coffer {}", lib.cluster.cluster_id)),
        manufacturerID: pad("Coffer"),
        model: pad("cofferd"),
        serialNumber: serial(&lib.cluster.cluster_id),
        flags,
        ulMaxSessionCount: CK_EFFECTIVELY_INFINITE,
        ulSessionCount: sessions.len() as CK_ULONG,
        ulMaxRwSessionCount: CK_EFFECTIVELY_INFINITE,
        ulRwSessionCount: rw,
        // `user:password`: a name of 1-31 characters and a password of 7-32 (CloudHSM's).
        ulMaxPinLen: 64,
        ulMinPinLen: 3,
        ulTotalPublicMemory: CK_UNAVAILABLE_INFORMATION,
        ulFreePublicMemory: CK_UNAVAILABLE_INFORMATION,
        ulTotalPrivateMemory: CK_UNAVAILABLE_INFORMATION,
        ulFreePrivateMemory: CK_UNAVAILABLE_INFORMATION,
        hardwareVersion: CK_VERSION { major: 1, minor: 0 },
        firmwareVersion: version(&lib.cluster.version),
        utcTime: [b' '; 16],
    })
}

/// `C_GetMechanismList`.
pub fn mechanism_list(slot: CK_SLOT_ID) -> Result<Vec<CK_MECHANISM_TYPE>> {
    check_slot(slot)?;
    Ok(MECHANISMS.iter().map(|(ty, ..)| *ty).collect())
}

/// `C_GetMechanismInfo`.
pub fn mechanism_info(slot: CK_SLOT_ID, ty: CK_MECHANISM_TYPE) -> Result<CK_MECHANISM_INFO> {
    check_slot(slot)?;
    mechanism::info(ty)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_and_versions() {
        assert_eq!(&serial("cluster-0123456789abcdefXY"), b"23456789abcdefXY");
        assert_eq!(&serial("c-1"), b"c1              ");
        let v = version("0.1.0");
        assert_eq!((v.major, v.minor), (0, 1));
    }

    #[test]
    fn not_initialised_is_reported() {
        assert_eq!(slot_list().unwrap_err().rv, CKR_CRYPTOKI_NOT_INITIALIZED);
    }
}
