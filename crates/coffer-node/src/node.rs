//! One node's state: the HSM behind a read-write lock, its journal, the session tokens, its
//! keys and its TLS identity; and how requests reach the HSM.
//!
//! Concurrency follows `coffer_hsm::ops` ("How a node drives it"):
//! - reads and crypto run under the read lock, concurrently;
//! - a change is prepared under the read lock (permission checks, key generation, password
//!   hashing: the slow parts), then submitted under the write lock with the journal, which
//!   audits and persists it before memory changes. A refused prepare is audited with
//!   `record_refusal`.
//!
//! Locks are always taken in the order HSM, then journal, then tokens is never held across
//! either. All HSM work runs on tokio's blocking pool ([`Node::blocking`]), so a slow PBKDF2
//! or RSA operation never stalls the reactor that serves other clients.
//!
//! Sessions: `OpenSession` opens an HSM session on this node and hands back a random 128-bit
//! token, the capability the client presents on every call. Tokens are node-local (session
//! objects live here and are never replicated). Sessions count against a limit per client
//! address (the HSM's per-application limit, the application being the address), and one idle
//! for longer than `limits.session_idle_secs` is closed by a timer.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use coffer_audit::{AuditConfig as LogConfig, AuditLog, Opcode};
use coffer_crypto::{CryptoError, Module};
use coffer_hsm::{
    ClusterState, Command, Hsm, HsmError, HsmState, Limits as HsmLimits, Outcome, Prepared, SessionLimits,
};
use coffer_store::{KeyFileSeal, PassphraseSeal, SealProvider, Store, Table};
use rustls::ServerConfig;
use zeroize::Zeroizing;

use crate::config::{NodeConfig, SealConfig};
use crate::journal::NodeJournal;
use crate::metrics::{Gauge, Metrics};
use crate::node_keys::{self, NODE_META_PREFIX, NodeKeys};
use crate::pki::{self, PkiError, SubjectAltName};
use crate::raft::log_store::LogStore;
use crate::raft::network::{PeerError, Peers};
use crate::raft::state_machine::Replica;
use crate::raft::{Proposal, Raft, RaftCell};
use crate::tls::{self, ClientTrustAnchors, PeerTls, TlsError};

/// Length of a session token.
pub const TOKEN_LEN: usize = 16;

/// Largest input of a one-shot crypto call run inline by [`Node::quick`]: a few
/// microseconds of symmetric work; larger inputs go to the blocking pool.
pub const INLINE_MAX_BYTES: usize = 16 * 1024;
/// Directory of the store inside the data directory.
pub const STORE_DIR: &str = "store";
/// The audit log inside the data directory.
pub const AUDIT_LOG_FILE: &str = "audit.log";
/// The audit public key (PEM) beside the audit log, for `coffer audit verify --key`.
pub const AUDIT_PUBLIC_KEY_FILE: &str = "audit-public.pem";
/// The raft log inside the data directory.
pub const RAFT_LOG_FILE: &str = "raft.redb";
/// How long a write waits to be committed by a majority and applied here.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a request failed. [`crate::convert::status`] turns it into a gRPC status.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Hsm(#[from] HsmError),
    #[error("{0}")]
    Pki(#[from] PkiError),
    #[error("{0}")]
    Tls(#[from] TlsError),
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The write could not be committed by a majority of the cluster in time.
    #[error("no quorum: {0}")]
    NoQuorum(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<CryptoError> for NodeError {
    fn from(e: CryptoError) -> Self {
        Self::Hsm(HsmError::Crypto(e))
    }
}

/// Why the node could not start: what failed, and why.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {reason}")]
pub struct StartError {
    pub what: String,
    pub reason: String,
}

impl StartError {
    pub(crate) fn new(what: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Self { what: what.into(), reason: reason.to_string() }
    }
}

/// One live session token.
#[derive(Debug)]
struct TokenEntry {
    session: u64,
    last_used: Instant,
}

/// The certificate the node presents, switched at initialisation.
#[derive(Debug)]
pub(crate) struct Presented {
    config: Arc<ServerConfig>,
    fingerprint: String,
}

/// One node.
#[derive(Debug)]
pub struct Node {
    config: NodeConfig,
    module: Module,
    replica: Arc<Replica>,
    log_store: LogStore,
    /// Set once the node has started its raft (right after opening).
    raft: RaftCell,
    peers: Arc<Peers>,
    tokens: Mutex<HashMap<[u8; TOKEN_LEN], TokenEntry>>,
    /// Replaced once, when the node is cloned into a cluster (the cluster's key and id).
    keys: RwLock<Arc<NodeKeys>>,
    /// What seals the domain key: kept to seal the cluster's when the node is cloned.
    seal: Box<dyn SealProvider + Send + Sync>,
    /// The peer and client ports' addresses as others reach them, set when the node starts
    /// serving.
    endpoints: OnceLock<crate::raft::Endpoints>,
    anchors: Arc<ClientTrustAnchors>,
    presented: RwLock<Presented>,
    bootstrap_fingerprint: String,
    metrics: Arc<Metrics>,
    audit_log: PathBuf,
    audit_public_key: PathBuf,
}

/// The node's files in `data_dir`.
pub fn audit_paths(data_dir: &Path) -> (PathBuf, PathBuf) {
    (data_dir.join(AUDIT_LOG_FILE), data_dir.join(AUDIT_PUBLIC_KEY_FILE))
}

impl Node {
    /// Opens (or on the first start creates) the node's store, keys and audit log, and
    /// rebuilds the HSM state from the store.
    pub fn open(config: NodeConfig, metrics: Arc<Metrics>) -> Result<Node, StartError> {
        let module = Module::power_on();
        module.status().map_err(|e| StartError::new("crypto module self-test", e))?;
        make_private_dir(&config.data_dir)?;
        let store_dir = config.data_dir.join(STORE_DIR);
        let first_start = !store_dir.join(coffer_store::SEALED_KEY_FILE).exists();
        let seal = seal_provider(&config, &module, first_start)?;
        let (store, domain) = if first_start {
            Store::create(&store_dir, seal.as_ref(), &module)
        } else {
            Store::open(&store_dir, seal.as_ref(), &module)
        }
        .map_err(|e| StartError::new(format!("store {}", store_dir.display()), e))?;
        let (keys, audit_key) = NodeKeys::load_or_create(&store, &domain, &module)
            .map_err(|e| StartError::new("node keys", e))?;
        let state = load_state(&store, &config)?;
        let (audit_log, audit_public_key) = audit_paths(&config.data_dir);
        write_public_key(&audit_public_key, &audit_key.public_key().to_pem())?;
        let log_config = LogConfig {
            checkpoint_every: config.audit.checkpoint_every_entries,
            checkpoint_interval: config.audit.checkpoint_every,
        };
        let audit = AuditLog::open(&audit_log, &config.node_id, &module, audit_key, log_config)
            .map_err(|e| StartError::new(format!("audit log {}", audit_log.display()), e))?;
        let sessions = SessionLimits {
            max_sessions_per_application: config.limits.max_sessions_per_client,
            ..SessionLimits::default()
        };
        let hsm = Hsm::new(state, module.clone(), domain, sessions);
        let anchors = ClientTrustAnchors::new(&module);
        let raft_log = config.data_dir.join(RAFT_LOG_FILE);
        let log_store = LogStore::open(&raft_log)
            .map_err(|e| StartError::new(format!("raft log {}", raft_log.display()), e))?;
        let peers = Peers::new();
        let (bootstrap_der, bootstrap_fingerprint) =
            pki::bootstrap_certificate(&keys.identity, &config.node_id)
                .map_err(|e| StartError::new("bootstrap certificate", e))?;
        let joined_cert =
            node_keys::joined_cluster_certificate(&store).map_err(|e| StartError::new("node keys", e))?;
        let presented =
            if let (ClusterState::Uninitialized, None) = (hsm.state().cluster().state, &joined_cert) {
                let config = tls::server_config(vec![bootstrap_der.into()], &keys.identity, anchors.clone())
                    .map_err(|e| StartError::new("TLS configuration", e))?;
                Presented { config, fingerprint: bootstrap_fingerprint.clone() }
            } else {
                // A node cloned into a cluster but not yet caught up has the certificate it was
                // given; afterwards the state holds it.
                let cluster_pem =
                    hsm.state().cluster().certificate_pem.clone().or(joined_cert).unwrap_or_default();
                let (presented, peer_tls) = node_presented(&keys, &config, &cluster_pem, &anchors)
                    .map_err(|e| StartError::new("node certificate", e))?;
                peers.set_tls(peer_tls);
                presented
            };
        let journal = NodeJournal::new(audit, store, metrics.clone());
        let replica = Replica::new(keys.raft_id, hsm, journal, anchors.clone(), metrics.clone())
            .map_err(|e| StartError::new("replication state", e))?;
        let node = Node {
            replica: Arc::new(replica),
            log_store,
            raft: RaftCell::default(),
            peers,
            tokens: Mutex::default(),
            keys: RwLock::new(Arc::new(keys)),
            seal,
            endpoints: OnceLock::new(),
            anchors,
            presented: RwLock::new(presented),
            bootstrap_fingerprint,
            metrics,
            audit_log,
            audit_public_key,
            module,
            config,
        };
        node.refresh_gauges();
        Ok(node)
    }

    // ---- accessors ---------------------------------------------------------------------------

    /// The node's configuration.
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// The crypto module.
    pub fn module(&self) -> &Module {
        &self.module
    }

    /// The node's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The fingerprint of the self-signed certificate presented before initialisation.
    pub fn bootstrap_fingerprint(&self) -> &str {
        &self.bootstrap_fingerprint
    }

    /// The TLS configuration for the next handshake, and the fingerprint of its certificate.
    pub fn presented(&self) -> (Arc<ServerConfig>, String) {
        let presented = self.presented.read().unwrap_or_else(PoisonError::into_inner);
        (presented.config.clone(), presented.fingerprint.clone())
    }

    /// The audit log and its public key (PEM).
    pub fn audit_files(&self) -> (&Path, &Path) {
        (&self.audit_log, &self.audit_public_key)
    }

    /// The node's keys and cluster id.
    pub fn keys(&self) -> Arc<NodeKeys> {
        self.keys.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The registered client trust anchors.
    pub(crate) fn anchors(&self) -> &Arc<ClientTrustAnchors> {
        &self.anchors
    }

    /// The seal provider of the domain key.
    pub(crate) fn seal(&self) -> &dyn SealProvider {
        self.seal.as_ref()
    }

    /// The peer port's address as other nodes reach it (empty before the node serves).
    pub fn peer_addr(&self) -> &str {
        self.endpoints.get().map_or("", |e| e.peer_addr.as_str())
    }

    /// The client port's address as clients reach it (empty before the node serves).
    pub fn client_addr(&self) -> &str {
        self.endpoints.get().map_or("", |e| e.client_addr.as_str())
    }

    /// Records the advertised addresses (once, when the node starts serving).
    pub(crate) fn set_endpoints(&self, endpoints: crate::raft::Endpoints) {
        let _ = self.endpoints.set(endpoints);
    }

    /// Takes the keys of a cloned node, and presents its node certificate from the next
    /// handshake on, to clients and peers.
    pub(crate) fn switch_identity(&self, keys: NodeKeys, presented: Presented, peer_tls: PeerTls) {
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(keys);
        *self.presented.write().unwrap_or_else(PoisonError::into_inner) = presented;
        self.peers.set_tls(peer_tls);
    }

    /// Whether this node was started to be added to an existing cluster and has not been yet.
    pub(crate) fn awaiting_clone(&self) -> Result<bool, NodeError> {
        if !self.config.join || self.cluster_state() != ClusterState::Uninitialized {
            return Ok(false);
        }
        let journal = self.journal();
        let store = journal
            .as_ref()
            .ok_or_else(|| HsmError::JournalFailed("the node is shutting down".into()))?
            .store();
        let joined =
            node_keys::joined_cluster_certificate(store).map_err(|e| NodeError::Internal(e.to_string()))?;
        Ok(joined.is_none())
    }

    /// The cluster's lifecycle state.
    pub fn cluster_state(&self) -> ClusterState {
        self.hsm().state().cluster().state
    }

    // ---- running work ------------------------------------------------------------------------

    /// Runs `f` on the blocking pool: HSM work is CPU-bound (PBKDF2, RSA) and takes locks.
    pub async fn blocking<T, F>(self: &Arc<Self>, f: F) -> Result<T, NodeError>
    where
        T: Send + 'static,
        F: FnOnce(&Node) -> Result<T, NodeError> + Send + 'static,
    {
        let node = Arc::clone(self);
        tokio::task::spawn_blocking(move || f(&node))
            .await
            .map_err(|e| NodeError::Internal(format!("the request task failed: {e}")))?
    }

    /// Runs a short read of the HSM (a one-shot crypto operation on a small input) inline on
    /// the calling task when the HSM's read lock is free at once, else as [`Node::blocking`]
    /// does. Handing a sub-millisecond operation to the blocking pool costs two thread
    /// wake-ups per call, more than an AES-GCM or ECDSA operation itself; the lock is only
    /// *tried* here because writers hold it across the journal's fsync, which must never
    /// stall a runtime worker. The caller bounds the input (see [`INLINE_MAX_BYTES`]), so the
    /// longest inline run is one private-key operation, the same order of work the workers
    /// already do in TLS handshakes.
    pub async fn quick<T, F>(self: &Arc<Self>, inline: bool, f: F) -> Result<T, NodeError>
    where
        T: Send + 'static,
        F: FnOnce(&Node, &Hsm) -> Result<T, NodeError> + Send + 'static,
    {
        if inline && let Some(hsm) = self.replica.try_hsm() {
            return f(self, &hsm);
        }
        self.blocking(move |node| f(node, &node.hsm())).await
    }

    /// Called before [`Node::quick`] runs an RSA private-key operation inline (a few hundred
    /// microseconds): wakes an idle worker to keep polling the sockets meanwhile. Tokio runs
    /// a task a worker has just spawned or woken from that worker's LIFO slot, which no other
    /// worker may take, and wakes no other worker for it; so while this worker signs, nobody
    /// polls the sockets, and the next request on any connection waits for the signature to
    /// end (measured: two client threads got one core's worth of RSA). A spawned task that
    /// pushes another out of the LIFO slot lands in the run queue, and that does wake an idle
    /// worker: hence two empty tasks. The woken worker finds them, runs them, and parks on the
    /// sockets; this task keeps its worker and signs at once. (Yielding instead also wakes a
    /// worker, but that one may steal this very task, and the signature then starts only once
    /// it is awake: a cost to every lone call.)
    pub fn make_way_for_long_work() {
        tokio::spawn(async {});
        tokio::spawn(async {});
    }

    /// The HSM for reading (concurrent with other readers).
    pub fn hsm(&self) -> RwLockReadGuard<'_, Hsm> {
        self.replica.hsm()
    }

    pub(crate) fn hsm_mut(&self) -> RwLockWriteGuard<'_, Hsm> {
        self.replica.hsm_mut()
    }

    pub(crate) fn journal(&self) -> MutexGuard<'_, Option<NodeJournal>> {
        self.replica.journal()
    }

    /// The replica: the HSM, the journal and the applied raft position.
    pub fn replica(&self) -> &Arc<Replica> {
        &self.replica
    }

    /// The raft log store (handed to raft when the node starts).
    pub fn log_store(&self) -> &LogStore {
        &self.log_store
    }

    /// The peer credentials and channels.
    pub fn peers(&self) -> &Arc<Peers> {
        &self.peers
    }

    /// The node's raft; `None` only between opening and starting.
    pub fn raft(&self) -> Option<&Raft> {
        self.raft.get()
    }

    /// Hands the node its started raft.
    pub fn set_raft(&self, raft: Raft) {
        self.raft.set(raft);
    }

    fn tokens(&self) -> MutexGuard<'_, HashMap<[u8; TOKEN_LEN], TokenEntry>> {
        self.tokens.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` with the journal; fails closed once the node has shut down.
    fn with_journal<T>(
        &self,
        f: impl FnOnce(&mut NodeJournal) -> coffer_hsm::Result<T>,
    ) -> Result<T, NodeError> {
        let mut journal = self.journal();
        let journal =
            journal.as_mut().ok_or_else(|| HsmError::JournalFailed("the node is shutting down".into()))?;
        Ok(f(journal)?)
    }

    /// A change: `prepare` under the read lock, then submitted under the write lock with the
    /// journal. A refused prepare is audited under `opcode`.
    pub fn change(
        &self,
        session: u64,
        opcode: Opcode,
        prepare: impl FnOnce(&Hsm) -> coffer_hsm::Result<Prepared>,
    ) -> Result<Outcome, NodeError> {
        let prepared = prepare(&self.hsm());
        let prepared = match prepared {
            Ok(prepared) => prepared,
            Err(refused) => return Err(self.refused(session, opcode, refused)),
        };
        let outcome = match prepared {
            Prepared::Local(change) => {
                let mut hsm = self.hsm_mut();
                self.with_journal(|journal| hsm.apply_local(change, journal))
            }
            // Applied here alone, as `Hsm::submit` applies it.
            here @ Prepared::Here(_) => {
                let mut hsm = self.hsm_mut();
                self.with_journal(|journal| hsm.submit(here, journal))
            }
            Prepared::Command(command) => self.replicate(command).and_then(|outcome| {
                self.hsm_mut().finish(&outcome)?;
                Ok(outcome)
            }),
        };
        self.refresh_gauges();
        outcome
    }

    /// Replicates a command and returns the outcome of applying it here. Called on a
    /// blocking thread (as every change is), it drives the asynchronous proposal there.
    fn replicate(&self, command: Command) -> Result<Outcome, NodeError> {
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|_| NodeError::Internal("a write outside the node's runtime".into()))?;
        handle.block_on(self.propose(command))
    }

    /// Proposes a command: to raft here when this node leads, else forwarded to the leader;
    /// then waits until this node has applied the entry and returns the outcome its own
    /// apply produced. Bounded by [`WRITE_TIMEOUT`].
    pub async fn propose(&self, command: Command) -> Result<Outcome, NodeError> {
        let raft = self.raft().ok_or_else(|| NodeError::Internal("replication has not started".into()))?;
        let proposal = Proposal { origin: self.keys().raft_id, command };
        let deadline = tokio::time::Instant::now() + WRITE_TIMEOUT;
        let index =
            tokio::time::timeout_at(deadline, self.commit(raft, &proposal)).await.map_err(|_| {
                NodeError::NoQuorum(format!(
                    "the write was not committed by a majority of the cluster's nodes within {} s \
                 (it may still be applied once they are back)",
                    WRITE_TIMEOUT.as_secs()
                ))
            })??;
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if !self.replica.wait_applied(index, left).await {
            return Err(NodeError::NoQuorum(format!(
                "the write was committed at index {index} but this node has not applied it within {} s",
                WRITE_TIMEOUT.as_secs()
            )));
        }
        let outcome = self.replica.outcome(index).ok_or_else(|| {
            NodeError::Internal(format!("the outcome of the write at index {index} is not known here"))
        })?;
        Ok(outcome?)
    }

    /// Gets `proposal` committed; returns its log index. Retries while there is no leader or
    /// the leader changes under it.
    async fn commit(&self, raft: &Raft, proposal: &Proposal) -> Result<u64, NodeError> {
        use openraft::error::{ClientWriteError, RaftError};
        loop {
            let leader = match raft.client_write(proposal.clone()).await {
                Ok(written) => return Ok(written.log_id.index),
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => forward.leader_node,
                Err(e) => return Err(NodeError::NoQuorum(format!("the write cannot be replicated: {e}"))),
            };
            if let Some(leader) = leader {
                match self.peers.propose(&leader.peer_addr, proposal, WRITE_TIMEOUT).await {
                    Ok(index) => return Ok(index),
                    // The leader moved on, or cannot be reached: look again after a pause.
                    Err(PeerError::Status { code: tonic::Code::FailedPrecondition, .. })
                    | Err(PeerError::Unreachable { .. }) => {}
                    Err(e) => return Err(NodeError::NoQuorum(format!("the leader refused the write: {e}"))),
                }
            }
            // No leader known (an election is on): ask again shortly.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Audits a refused request; the refusal is the answer unless the audit itself failed.
    pub fn refused(&self, session: u64, opcode: Opcode, refused: HsmError) -> NodeError {
        let hsm = self.hsm();
        match self.with_journal(|journal| hsm.record_refusal(journal, session, opcode, &refused)) {
            Ok(()) => NodeError::Hsm(refused),
            Err(audit_failed) => audit_failed,
        }
    }

    /// Runs a journaled operation that is not a command (wrap, logout, close).
    pub fn journaled<T>(
        &self,
        f: impl FnOnce(&mut Hsm, &mut NodeJournal) -> coffer_hsm::Result<T>,
    ) -> Result<T, NodeError> {
        let result = {
            let mut hsm = self.hsm_mut();
            self.with_journal(|journal| f(&mut hsm, journal))
        };
        self.refresh_gauges();
        result
    }

    /// Runs a journaled read (wrap: audited, but it changes nothing) under the read lock.
    pub fn read_journaled<T>(
        &self,
        f: impl FnOnce(&Hsm, &mut NodeJournal) -> coffer_hsm::Result<T>,
    ) -> Result<T, NodeError> {
        let hsm = self.hsm();
        self.with_journal(|journal| f(&hsm, journal))
    }

    /// Updates the HSM gauges (sessions, keys, users).
    pub fn refresh_gauges(&self) {
        self.replica.refresh_gauges();
    }

    // ---- sessions ----------------------------------------------------------------------------

    /// Opens a session for a client at `peer`; returns its token.
    pub fn open_session(&self, peer: IpAddr) -> Result<[u8; TOKEN_LEN], NodeError> {
        let mut token = [0u8; TOKEN_LEN];
        self.module.fill_random(&mut token)?;
        let session = self.hsm_mut().open_session(application_of(peer))?;
        self.tokens().insert(token, TokenEntry { session, last_used: Instant::now() });
        self.refresh_gauges();
        Ok(token)
    }

    /// The session a token names (and marks it used).
    pub fn session(&self, token: &[u8]) -> Result<u64, NodeError> {
        let token: [u8; TOKEN_LEN] = token.try_into().map_err(|_| HsmError::SessionHandleInvalid(0))?;
        let mut tokens = self.tokens();
        let entry = tokens.get_mut(&token).ok_or(HsmError::SessionHandleInvalid(0))?;
        entry.last_used = Instant::now();
        Ok(entry.session)
    }

    /// Closes the session a token names; the token stops working at once.
    pub fn close_session(&self, token: &[u8]) -> Result<(), NodeError> {
        let key: [u8; TOKEN_LEN] = token.try_into().map_err(|_| HsmError::SessionHandleInvalid(0))?;
        let entry = self.tokens().remove(&key).ok_or(HsmError::SessionHandleInvalid(0))?;
        self.journaled(|hsm, journal| hsm.close_session(entry.session, journal))
    }

    /// Closes every session idle for longer than the configured time; returns how many.
    pub fn expire_idle_sessions(&self) -> usize {
        let idle = self.config.limits.session_idle;
        let expired: Vec<u64> = {
            let mut tokens = self.tokens();
            let now = Instant::now();
            let mut gone = Vec::new();
            tokens.retain(|_, entry| {
                let keep = now.duration_since(entry.last_used) < idle;
                if !keep {
                    gone.push(entry.session);
                }
                keep
            });
            gone
        };
        for session in &expired {
            // A session the HSM already dropped (a deleted user's) is simply gone.
            let _ = self.journaled(|hsm, journal| hsm.close_session(*session, journal));
        }
        expired.len()
    }

    /// The user logged in on a session, if any.
    pub fn session_user(&self, session: u64) -> Result<Option<String>, NodeError> {
        Ok(self.hsm().sessions().get(session)?.user().map(str::to_owned))
    }

    // ---- lifecycle ---------------------------------------------------------------------------

    /// The cluster CSR (PEM), while UNINITIALIZED.
    pub fn cluster_csr(&self) -> Result<String, NodeError> {
        let state = self.cluster_state();
        if state != ClusterState::Uninitialized {
            return Err(HsmError::ClusterState(format!(
                "the cluster is {}; its CSR is handed out only while UNINITIALIZED",
                state.name()
            ))
            .into());
        }
        let keys = self.keys();
        Ok(pki::cluster_csr(&keys.cluster, &keys.cluster_id)?)
    }

    /// InitializeCluster: checks the signed certificate and the anchor, issues this node's
    /// certificate from the cluster key, records the initialisation, and presents the new
    /// certificate from the next handshake on.
    pub fn initialize(&self, signed_cert_pem: &str, trust_anchor_pem: &str) -> Result<(), NodeError> {
        let state = self.cluster_state();
        if state != ClusterState::Uninitialized {
            let refused = HsmError::ClusterState(format!("the cluster is {} already", state.name()));
            return Err(self.refused(0, Opcode::CN_INIT_TOKEN, refused));
        }
        let keys = self.keys();
        let csr_key = keys.cluster.public_key().spki_der().to_vec();
        let valid = pki::validate_initialization(&csr_key, signed_cert_pem, trust_anchor_pem)?;
        // Everything that can fail for want of a good certificate fails before the state
        // changes, so a refused initialisation leaves the node UNINITIALIZED.
        let (presented, peer_tls) =
            node_presented(&keys, &self.config, &valid.cluster_cert_pem, &self.anchors)?;
        self.change(0, Opcode::CN_INIT_TOKEN, |hsm| {
            hsm.prepare_initialize(&valid.cluster_cert_pem, &valid.trust_anchor_pem)
        })?;
        *self.presented.write().unwrap_or_else(PoisonError::into_inner) = presented;
        self.peers.set_tls(peer_tls);
        Ok(())
    }

    // ---- background ------------------------------------------------------------------------

    /// The periodic housekeeping: idle sessions, the audit checkpoint timer, health.
    pub fn housekeeping(&self) {
        self.expire_idle_sessions();
        let unreachable = self
            .members()
            .iter()
            .filter(|m| m.unreachable_for.is_some_and(|d| d >= crate::membership::UNREACHABLE_AFTER))
            .count();
        self.metrics.set(Gauge::UnreachableHsms, i64::try_from(unreachable).unwrap_or(i64::MAX));
        let audit = self.with_journal(|journal| {
            journal.checkpoint_if_due().map_err(|e| HsmError::JournalFailed(e.0))?;
            Ok(journal.audit_usable())
        });
        match (self.module.status(), audit) {
            (Err(e), _) => self.metrics.set_unhealthy(format!("the crypto module is in error: {e}")),
            (_, Err(e)) => self.metrics.set_unhealthy(e.to_string()),
            (_, Ok(false)) => self.metrics.set_unhealthy("the audit log cannot be written"),
            (Ok(()), Ok(true)) => self.metrics.set_healthy(),
        }
    }

    /// Shuts the node down: closes every session (audited), writes the audit log's closing
    /// checkpoint and closes the store. Later requests fail closed.
    pub fn close(&self) -> Result<(), StartError> {
        let sessions: Vec<u64> = self.tokens().drain().map(|(_, e)| e.session).collect();
        for session in sessions {
            let _ = self.journaled(|hsm, journal| hsm.close_session(session, journal));
        }
        let journal = self.journal().take();
        match journal {
            Some(journal) => journal.close().map_err(|e| StartError::new("audit log", e.0)),
            None => Ok(()),
        }
    }
}

/// The per-client-address application id the HSM counts sessions by. An IPv4-mapped IPv6
/// address counts as the IPv4 address it carries.
fn application_of(ip: IpAddr) -> u64 {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) => u64::from(v4.to_bits()),
        // Fold the address; two addresses sharing a fold share one limit, which is harmless.
        IpAddr::V6(v6) => {
            let bits = v6.to_bits();
            ((bits >> 64) as u64 ^ bits as u64) | (1 << 63)
        }
    }
}

/// This node's certificate issued by the cluster key, as the client port's TLS configuration
/// (chain: node certificate, cluster certificate) and the peer port's.
pub(crate) fn node_presented(
    keys: &NodeKeys,
    config: &NodeConfig,
    cluster_cert_pem: &str,
    anchors: &Arc<ClientTrustAnchors>,
) -> Result<(Presented, PeerTls), NodeError> {
    let ip = crate::server::advertised_ip(config.listen.ip(), config.advertise_ip);
    let peer_ip = crate::server::advertised_ip(config.peer_listen.ip(), config.advertise_ip);
    let mut sans = vec![SubjectAltName::Ip(ip), SubjectAltName::Dns("localhost".into())];
    if peer_ip != ip {
        sans.push(SubjectAltName::Ip(peer_ip));
    }
    let node_pem = pki::issue_node_certificate(
        &keys.cluster,
        cluster_cert_pem,
        keys.identity.public_key(),
        &config.node_id,
        &sans,
    )?;
    let mut chain = tls::certificates_from_pem(&node_pem)?;
    chain.extend(tls::certificates_from_pem(cluster_cert_pem)?);
    let fingerprint = pki::fingerprint(keys.identity.module(), &chain[0])?;
    let cluster_der = chain.get(1).cloned().ok_or(TlsError::NoCertificate)?;
    let peer = PeerTls::new(chain.clone(), &keys.identity, cluster_der)?;
    let config = tls::server_config(chain, &keys.identity, anchors.clone())?;
    Ok((Presented { config, fingerprint }, peer))
}

/// The seal provider the configuration names. A key file is made on the first start if it
/// does not exist yet; later, a missing key file is an error (it is the only way in).
fn seal_provider(
    config: &NodeConfig,
    module: &Module,
    first_start: bool,
) -> Result<Box<dyn SealProvider + Send + Sync>, StartError> {
    match &config.seal {
        SealConfig::PassphraseFile(path) => {
            let what = || format!("seal.passphrase_file {}", path.display());
            let text = Zeroizing::new(std::fs::read(path).map_err(|e| StartError::new(what(), e))?);
            // A trailing newline is the editor's, not the passphrase's.
            let end = text.iter().rposition(|b| *b != b'\n' && *b != b'\r').map_or(0, |i| i + 1);
            let seal = PassphraseSeal::new(&text[..end])
                .and_then(|s| s.with_iterations(config.pbkdf2_iterations))
                .map_err(|e| StartError::new(what(), e))?;
            Ok(Box::new(seal))
        }
        SealConfig::KeyFile(path) => {
            let what = || format!("seal.key_file {}", path.display());
            let seal = if first_start && !path.exists() {
                KeyFileSeal::create(path, module)
            } else {
                KeyFileSeal::open(path)
            };
            Ok(Box::new(seal.map_err(|e| StartError::new(what(), e))?))
        }
    }
}

/// The HSM state rebuilt from the store's records (the node's own records left out).
fn load_state(store: &Store, config: &NodeConfig) -> Result<HsmState, StartError> {
    let read = |table| store.iter(table).map_err(|e| StartError::new("store", e));
    let mut users = Vec::new();
    let mut objects = Vec::new();
    let mut meta = Vec::new();
    for (key, bytes) in read(Table::Users)?.into_iter().chain(read(Table::Objects)?).chain(read(Table::Meta)?)
    {
        match key {
            coffer_hsm::RecordKey::User(name) => users.push((name, bytes)),
            coffer_hsm::RecordKey::Object(handle) => objects.push((handle, bytes)),
            coffer_hsm::RecordKey::Meta(name) if name.starts_with(NODE_META_PREFIX) => {}
            coffer_hsm::RecordKey::Meta(name) => meta.push((name, bytes)),
        }
    }
    let limits = HsmLimits {
        pbkdf2_iterations: config.pbkdf2_iterations.max(coffer_hsm::limits::MIN_PBKDF2_ITERATIONS),
        ..HsmLimits::default()
    };
    HsmState::from_records(&users, &objects, &meta, limits)
        .map_err(|e| StartError::new("stored HSM state", e))
}

/// Creates the data directory (mode 0700) if needed.
fn make_private_dir(dir: &Path) -> Result<(), StartError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let what = || format!("data_dir {}", dir.display());
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| StartError::new(what(), e))?;
    }
    let meta = std::fs::metadata(dir).map_err(|e| StartError::new(what(), e))?;
    if !meta.is_dir() {
        return Err(StartError::new(what(), "not a directory"));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| StartError::new(what(), e))?;
    }
    Ok(())
}

/// Writes the audit public key (public: readable by the operator who verifies the log).
fn write_public_key(path: &Path, pem: &str) -> Result<(), StartError> {
    let tmp = path.with_extension("pem.tmp");
    std::fs::write(&tmp, pem)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| StartError::new(format!("audit public key {}", path.display()), e))
}

/// How often housekeeping runs.
pub fn housekeeping_interval(config: &NodeConfig) -> Duration {
    (config.limits.session_idle / 4).clamp(Duration::from_millis(200), Duration::from_secs(5))
}
