//! Replication: every change to the HSM's replicated state goes through openraft.
//!
//! The split follows openraft's own: openraft is the protocol engine, and this module gives it
//! the three things it asks of a runtime:
//! - [`log_store::LogStore`]: the raft log, vote and committed index in a redb file beside the
//!   node's store (`raft.redb`). An entry holds a [`Proposal`]: a `coffer_hsm::Command`, whose
//!   key material is sealed under the domain key, so the log holds only ciphertext of keys;
//! - [`state_machine::StateMachine`]: applies committed entries to the node's HSM through the
//!   node's journal (audit log and store), recording the applied log id in the same store
//!   batch as the command's changes, so a restart neither loses nor repeats a command; builds
//!   and installs snapshots (the postcard-encoded `HsmState`);
//! - [`network::PeerNetwork`]: openraft's RPCs to the other nodes over the peer port, mutual
//!   TLS with node certificates issued by the cluster key ([`peer`] serves them).
//!
//! A write on any node: the request side prepares a command (`coffer_hsm::Hsm::prepare_*`),
//! the node proposes it (on the leader directly, on a follower forwarded to the leader with
//! `Propose`), and the proposer waits until its own state machine has applied the entry's
//! index; the outcome it hands its client is the one its own apply produced. Apply is
//! deterministic, so every node computes the same outcome; a write is acknowledged only once
//! a majority has committed it, and the node that answered has applied it (read-your-writes
//! on that node).

// openraft's error types (StorageError, ConfigError) are large, and its traits fix them as
// the error of every storage call; boxing them here would only be undone at each trait edge.
#![allow(clippy::result_large_err)]

pub mod log_store;
pub mod network;
pub mod peer;
pub mod state_machine;

use std::io::Cursor;

use coffer_hsm::Command;
use serde::{Deserialize, Serialize};

/// A change to the replication group. It runs on the leader: a node that does not lead hands
/// it over with the peer RPC `ChangeMembership`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MembershipChange {
    /// Add a node cloned into the cluster: as a learner until it has caught up, then a voter.
    Add { raft_id: NodeId, endpoints: Endpoints },
    /// Remove a member (voter or learner) from the group entirely.
    Remove { raft_id: NodeId },
}

/// Where a member is reached: the raft node data of each member, so that every node (and
/// through `GetClusterInfo` every client) knows the others' addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoints {
    /// The peer port, for replication.
    pub peer_addr: String,
    /// The client port (gRPC), which the SDK adds to the nodes it spreads sessions over.
    pub client_addr: String,
}

impl std::fmt::Display for Endpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "peer {}, client {}", self.peer_addr, self.client_addr)
    }
}

/// Why a membership change did not run.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    /// This node does not lead; ask the leader.
    #[error("this node does not lead the cluster")]
    NotLeader,
    #[error("{0}")]
    Failed(String),
}

/// Runs `change` on this node's raft, which must lead.
pub async fn change_membership(raft: &Raft, change: &MembershipChange) -> Result<(), MembershipError> {
    use openraft::error::{ClientWriteError, RaftError};
    let not_leader = |e: &RaftError<NodeId, ClientWriteError<NodeId, Endpoints>>| {
        matches!(e, RaftError::APIError(ClientWriteError::ForwardToLeader(_)))
    };
    let failed = |what: &str, e: RaftError<NodeId, ClientWriteError<NodeId, Endpoints>>| {
        if not_leader(&e) {
            MembershipError::NotLeader
        } else {
            MembershipError::Failed(format!("{what}: {e}"))
        }
    };
    match change {
        MembershipChange::Add { raft_id, endpoints } => {
            raft.add_learner(*raft_id, endpoints.clone(), true)
                .await
                .map_err(|e| failed("adding a learner", e))?;
            let voters = std::collections::BTreeSet::from([*raft_id]);
            raft.change_membership(openraft::ChangeMembers::AddVoterIds(voters), false)
                .await
                .map_err(|e| failed("making it a voter", e))?;
        }
        MembershipChange::Remove { raft_id } => {
            let ids = std::collections::BTreeSet::from([*raft_id]);
            let voter =
                raft.metrics().borrow().membership_config.membership().voter_ids().any(|v| v == *raft_id);
            let change = if voter {
                openraft::ChangeMembers::RemoveVoters(ids)
            } else {
                openraft::ChangeMembers::RemoveNodes(ids)
            };
            // `retain: false`: a removed voter leaves the group entirely, not as a learner.
            raft.change_membership(change, false).await.map_err(|e| failed("removing it", e))?;
        }
    }
    Ok(())
}

/// One entry of the replication log: a command and the raft id of the node that proposed it
/// (which alone binds the session of a login and answers the client).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    pub origin: u64,
    pub command: Command,
}

impl std::fmt::Display for Proposal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "proposal from {:016x}", self.origin)
    }
}

openraft::declare_raft_types!(
    /// Coffer's raft types: log entries carry a [`Proposal`]; the state machine answers
    /// nothing through openraft (each proposer reads its own apply's outcome).
    pub TypeConfig:
        D = Proposal,
        R = (),
        NodeId = u64,
        Node = Endpoints,
        SnapshotData = Cursor<Vec<u8>>,
);

/// The raft handle of a node.
pub type Raft = openraft::Raft<TypeConfig>;
/// The node's raft, set once right after the node opens (openraft's handle has no `Debug`).
#[derive(Default)]
pub struct RaftCell(std::sync::OnceLock<Raft>);

impl RaftCell {
    /// The raft, once set.
    pub fn get(&self) -> Option<&Raft> {
        self.0.get()
    }

    /// Sets the raft (a second call changes nothing).
    pub fn set(&self, raft: Raft) {
        let _ = self.0.set(raft);
    }
}

impl std::fmt::Debug for RaftCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() { "RaftCell(started)" } else { "RaftCell(not started)" })
    }
}

/// A raft node id.
pub type NodeId = u64;
/// A log id.
pub type LogId = openraft::LogId<NodeId>;
/// A storage error as openraft takes it.
pub type StorageError = openraft::StorageError<NodeId>;
/// The membership as the state machine stores it.
pub type StoredMembership = openraft::StoredMembership<NodeId, Endpoints>;
/// What a snapshot says of itself: the last log id and membership it holds.
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, Endpoints>;

/// Encodes a value the way the log, the snapshots and the peer protocol carry it.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, postcard::Error> {
    postcard::to_allocvec(value)
}

/// Decodes what [`encode`] produced.
pub fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, postcard::Error> {
    postcard::from_bytes(bytes)
}

/// The raft configuration of a Coffer cluster: elections within a few hundred milliseconds
/// of a leader's loss (the clients' failover budget is a few seconds), a snapshot every
/// `snapshot_every` entries.
pub fn config(snapshot_every: u64) -> Result<openraft::Config, openraft::ConfigError> {
    openraft::Config {
        cluster_name: "coffer".into(),
        heartbeat_interval: 100,
        election_timeout_min: 400,
        election_timeout_max: 800,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(snapshot_every),
        max_in_snapshot_log_to_keep: 1000,
        ..Default::default()
    }
    .validate()
}
