//! The library's state between `C_Initialize` and `C_Finalize`: the client, the open
//! sessions, the application's login, and which session owns each session object.
//!
//! Locks: the global slot is held only to clone or replace the `Arc<Library>`; the session
//! table is an `RwLock` held only to look up, insert or remove; each session's operations
//! have their own `Mutex`, so threads working on different sessions never wait for each other
//! (PKCS#11 asks applications not to use one session from two threads at once).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use coffer_client::{blocking, v1};
use cryptoki_sys::*;
use zeroize::Zeroizing;

use crate::error::{P11Error, Result, fail};
use crate::operation::Operations;

/// The one slot (one configured cluster).
pub const SLOT_ID: CK_SLOT_ID = 0;

/// Node object handles with this bit are session objects (`coffer-hsm`'s session range).
const SESSION_OBJECT_BIT: u64 = 1 << 63;

/// The initialised library of this process.
static GLOBAL: Mutex<Option<Global>> = Mutex::new(None);

#[derive(Debug)]
struct Global {
    /// The process that initialised; a forked child sees another pid and must initialise again.
    pid: u32,
    library: Arc<Library>,
}

fn global() -> MutexGuard<'static, Option<Global>> {
    GLOBAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The library, or `CKR_CRYPTOKI_NOT_INITIALIZED` (also in a forked child that has not
/// called `C_Initialize` again).
pub fn library() -> Result<Arc<Library>> {
    match global().as_ref() {
        Some(g) if g.pid == std::process::id() => Ok(g.library.clone()),
        _ => fail(CKR_CRYPTOKI_NOT_INITIALIZED, "C_Initialize has not been called"),
    }
}

/// Installs a freshly initialised library. A state inherited over `fork()` is forgotten, not
/// dropped: its connections and runtime threads belong to the parent, and closing them from
/// the child would act on the parent's sessions.
pub fn install(make: impl FnOnce() -> Result<Library>) -> Result<()> {
    let mut slot = global();
    if let Some(existing) = slot.take() {
        if existing.pid == std::process::id() {
            *slot = Some(existing);
            return fail(CKR_CRYPTOKI_ALREADY_INITIALIZED, "C_Initialize was already called");
        }
        std::mem::forget(existing);
    }
    let library = make()?;
    *slot = Some(Global { pid: std::process::id(), library: Arc::new(library) });
    Ok(())
}

/// Removes the library (`C_Finalize`).
pub fn uninstall() -> Result<Arc<Library>> {
    let mut slot = global();
    match slot.take() {
        Some(g) if g.pid == std::process::id() => Ok(g.library),
        Some(g) => {
            std::mem::forget(g);
            fail(CKR_CRYPTOKI_NOT_INITIALIZED, "C_Initialize has not been called in this process")
        }
        None => fail(CKR_CRYPTOKI_NOT_INITIALIZED, "C_Initialize has not been called"),
    }
}

/// The application's login, shared by all its sessions (PKCS#11 logs in per application).
#[derive(Debug)]
pub struct Login {
    /// `CKU_USER` or `CKU_SO`.
    pub user_type: CK_USER_TYPE,
    pub username: String,
    pub role: v1::Role,
    /// Kept so that sessions opened later are logged in too.
    pub password: Zeroizing<Vec<u8>>,
}

impl Login {
    /// Logs one node session in.
    pub fn apply(&self, session: &blocking::Session) -> Result<()> {
        session.login_as(&self.username, self.role, &self.password)?;
        Ok(())
    }
}

/// What is known of the cluster (for the slot and token information).
#[derive(Debug, Clone)]
pub struct ClusterFacts {
    pub cluster_id: String,
    pub active: bool,
    pub version: String,
}

/// One PKCS#11 session: its own node session and its operations in progress.
#[derive(Debug)]
pub struct P11Session {
    pub handle: CK_SESSION_HANDLE,
    pub read_write: bool,
    pub node: blocking::Session,
    pub ops: Mutex<Operations>,
}

impl P11Session {
    /// The operations in progress, locked.
    pub fn ops(&self) -> MutexGuard<'_, Operations> {
        self.ops.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The initialised library.
#[derive(Debug)]
pub struct Library {
    pub client: blocking::Client,
    pub cluster: ClusterFacts,
    sessions: RwLock<HashMap<CK_SESSION_HANDLE, Arc<P11Session>>>,
    next_handle: AtomicU64,
    login: Mutex<Option<Login>>,
    /// Session object -> the session that created it (PKCS#11 session objects are visible to
    /// all the application's sessions; on the node they live in one node session).
    session_objects: Mutex<HashMap<u64, CK_SESSION_HANDLE>>,
}

impl Library {
    pub fn new(client: blocking::Client, cluster: ClusterFacts) -> Self {
        Library {
            client,
            cluster,
            sessions: RwLock::new(HashMap::new()),
            next_handle: AtomicU64::new(1),
            login: Mutex::new(None),
            session_objects: Mutex::new(HashMap::new()),
        }
    }

    /// The login, locked (held while sessions are opened, so that none misses a login).
    pub fn login(&self) -> MutexGuard<'_, Option<Login>> {
        self.login.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A session by handle, or `CKR_SESSION_HANDLE_INVALID`.
    pub fn session(&self, handle: CK_SESSION_HANDLE) -> Result<Arc<P11Session>> {
        let sessions = self.sessions.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        sessions
            .get(&handle)
            .cloned()
            .ok_or_else(|| P11Error::new(CKR_SESSION_HANDLE_INVALID, format!("no session {handle}")))
    }

    /// All open sessions.
    pub fn sessions(&self) -> Vec<Arc<P11Session>> {
        let sessions = self.sessions.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        sessions.values().cloned().collect()
    }

    /// Adds a session and returns its handle.
    pub fn add_session(&self, read_write: bool, node: blocking::Session) -> CK_SESSION_HANDLE {
        let handle = self.next_handle.fetch_add(1, Ordering::Relaxed);
        let session =
            Arc::new(P11Session { handle, read_write, node, ops: Mutex::new(Operations::default()) });
        let mut sessions = self.sessions.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        sessions.insert(handle, session);
        handle
    }

    /// Removes a session (its node session is closed by the caller).
    pub fn remove_session(&self, handle: CK_SESSION_HANDLE) -> Result<Arc<P11Session>> {
        let removed = {
            let mut sessions = self.sessions.write().unwrap_or_else(|poisoned| poisoned.into_inner());
            sessions.remove(&handle)
        };
        let session = removed
            .ok_or_else(|| P11Error::new(CKR_SESSION_HANDLE_INVALID, format!("no session {handle}")))?;
        self.objects().retain(|_, owner| *owner != handle);
        Ok(session)
    }

    fn objects(&self) -> MutexGuard<'_, HashMap<u64, CK_SESSION_HANDLE>> {
        self.session_objects.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Notes the session objects among newly created handles.
    pub fn created(&self, session: CK_SESSION_HANDLE, handles: &[u64]) {
        let mut objects = self.objects();
        for handle in handles.iter().filter(|h| *h & SESSION_OBJECT_BIT != 0) {
            objects.insert(*handle, session);
        }
    }

    /// Forgets a destroyed object.
    pub fn destroyed(&self, handle: u64) {
        self.objects().remove(&handle);
    }

    /// The session whose node session holds an object: the session object's creator, or
    /// the calling session itself (token objects are everywhere).
    pub fn session_for(&self, caller: &Arc<P11Session>, object: CK_OBJECT_HANDLE) -> Arc<P11Session> {
        if object & SESSION_OBJECT_BIT == 0 {
            return caller.clone();
        }
        let owner = self.objects().get(&object).copied();
        match owner {
            Some(owner) if owner != caller.handle => self.session(owner).unwrap_or_else(|_| caller.clone()),
            _ => caller.clone(),
        }
    }

    /// `CKS_*` of a session, from its kind and the application's login.
    pub fn session_state(&self, session: &P11Session) -> CK_STATE {
        let login = self.login();
        match (login.as_ref().map(|l| l.user_type), session.read_write) {
            (Some(CKU_SO), _) => CKS_RW_SO_FUNCTIONS,
            (Some(_), true) => CKS_RW_USER_FUNCTIONS,
            (Some(_), false) => CKS_RO_USER_FUNCTIONS,
            (None, true) => CKS_RW_PUBLIC_SESSION,
            (None, false) => CKS_RO_PUBLIC_SESSION,
        }
    }
}
