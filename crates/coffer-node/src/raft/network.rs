//! openraft's RPCs to the other nodes, and forwarded writes, over the peer port.
//!
//! One lazily connected gRPC channel per peer address, over mutual TLS with this node's
//! certificate ([`PeerTls`]): it connects on first use and reconnects after a failure by
//! itself. Until the node has a certificate from the cluster key (before initialisation) it
//! has no peer credentials and every peer is unreachable.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use coffer_proto::peer::peer_client::PeerClient;
use coffer_proto::peer::{ProposeRequest, RaftMessage};
use openraft::AnyError;
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::transport::{Channel, Endpoint};

use super::{Endpoints, MembershipChange, NodeId, Proposal, TypeConfig, decode, encode};
use crate::tls::PeerTls;

/// How long connecting to a peer may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a peer call failed.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("this node has no peer certificate yet (the cluster is not initialised)")]
    NoCredentials,
    #[error("peer {addr}: {reason}")]
    Unreachable { addr: String, reason: String },
    #[error("peer {addr} answered: {status}")]
    Status { addr: String, status: String, code: tonic::Code },
    #[error("peer {addr}: message does not decode: {reason}")]
    Codec { addr: String, reason: String },
}

/// The peer credentials and one channel per peer address; shared by raft's network and the
/// write forwarding.
#[derive(Debug, Default)]
pub struct Peers {
    tls: RwLock<Option<PeerTls>>,
    channels: Mutex<HashMap<String, Channel>>,
    /// Per peer address: since when every raft call to it has failed to reach it.
    failing_since: Mutex<HashMap<String, Instant>>,
}

impl Peers {
    /// Peers with no credentials yet.
    pub fn new() -> Arc<Peers> {
        Arc::new(Peers::default())
    }

    /// Sets this node's peer credentials (at start-up or initialisation); open channels are
    /// dropped so the next call connects with them.
    pub fn set_tls(&self, tls: PeerTls) {
        *self.tls.write().unwrap_or_else(PoisonError::into_inner) = Some(tls);
        self.channels.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }

    /// How long every raft call to `addr` has failed to reach it; `None` while the last call
    /// reached it, or before any call (only a leader, or a candidate, calls its peers).
    pub fn unreachable_for(&self, addr: &str) -> Option<Duration> {
        self.failing_since.lock().unwrap_or_else(PoisonError::into_inner).get(addr).map(Instant::elapsed)
    }

    fn record_contact(&self, addr: &str, reached: bool) {
        let mut failing = self.failing_since.lock().unwrap_or_else(PoisonError::into_inner);
        if reached {
            failing.remove(addr);
        } else {
            failing.entry(addr.to_owned()).or_insert_with(Instant::now);
        }
    }

    /// The server side of the peer credentials, if the node has them.
    pub fn server_tls(&self) -> Option<Arc<rustls::ServerConfig>> {
        self.tls.read().unwrap_or_else(PoisonError::into_inner).as_ref().map(|t| t.server.clone())
    }

    fn client(&self, addr: &str) -> Result<PeerClient<Channel>, PeerError> {
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(channel) = channels.get(addr) {
            return Ok(PeerClient::new(channel.clone()));
        }
        let tls = self.tls.read().unwrap_or_else(PoisonError::into_inner).clone();
        let tls = tls.ok_or(PeerError::NoCredentials)?;
        let unreachable = |reason: String| PeerError::Unreachable { addr: addr.to_owned(), reason };
        let (host, port) = addr.rsplit_once(':').ok_or_else(|| unreachable("not host:port".into()))?;
        let port: u16 = port.parse().map_err(|_| unreachable(format!("bad port {port:?}")))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let connector = coffer_client::NodeConnector::new(host, port, tls.client)
            .map_err(|e| unreachable(e.to_string()))?;
        // `http`: the connector does TLS itself.
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| unreachable(e.to_string()))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true);
        let channel = endpoint.connect_with_connector_lazy(connector);
        channels.insert(addr.to_owned(), channel.clone());
        Ok(PeerClient::new(channel))
    }

    /// Hands a write to the leader at `addr`; returns the log index it was committed at.
    pub async fn propose(
        &self,
        addr: &str,
        proposal: &Proposal,
        timeout: Duration,
    ) -> Result<u64, PeerError> {
        let mut client = self.client(addr)?;
        let entry = encode(proposal).map_err(|e| codec(addr, e))?;
        let mut request = tonic::Request::new(ProposeRequest { entry });
        request.set_timeout(timeout);
        let reply = client.propose(request).await.map_err(|s| status(addr, &s))?;
        Ok(reply.into_inner().index)
    }

    /// Hands a membership change to the leader at `addr`; `Ok(Err(reason))` if it refused.
    pub async fn change_membership(
        &self,
        addr: &str,
        change: &MembershipChange,
        timeout: Duration,
    ) -> Result<Result<(), String>, PeerError> {
        let mut client = self.client(addr)?;
        let payload = encode(change).map_err(|e| codec(addr, e))?;
        let mut request = tonic::Request::new(RaftMessage { payload });
        request.set_timeout(timeout);
        let reply = client.change_membership(request).await.map_err(|s| status(addr, &s))?;
        decode(&reply.into_inner().payload).map_err(|e| codec(addr, e))
    }

    async fn raft_call<Req, Resp, E>(
        &self,
        addr: &str,
        which: RaftRpc,
        req: &Req,
        timeout: Duration,
    ) -> Result<Result<Resp, E>, PeerError>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: DeserializeOwned,
    {
        let mut client = self.client(addr)?;
        let payload = encode(req).map_err(|e| codec(addr, e))?;
        let mut request = tonic::Request::new(RaftMessage { payload });
        request.set_timeout(timeout);
        let reply = match which {
            RaftRpc::AppendEntries => client.append_entries(request).await,
            RaftRpc::Vote => client.vote(request).await,
            RaftRpc::InstallSnapshot => client.install_snapshot(request).await,
        }
        .map_err(|s| status(addr, &s));
        self.record_contact(addr, !matches!(reply, Err(PeerError::Unreachable { .. })));
        let reply = reply?;
        decode(&reply.into_inner().payload).map_err(|e| codec(addr, e))
    }
}

fn codec(addr: &str, e: impl std::fmt::Display) -> PeerError {
    PeerError::Codec { addr: addr.to_owned(), reason: e.to_string() }
}

fn status(addr: &str, s: &tonic::Status) -> PeerError {
    match s.code() {
        // "transport error", "Connection refused", "connect error": the peer was not reached.
        tonic::Code::Unavailable | tonic::Code::Unknown
            if ["transport", "connect"].iter().any(|w| s.message().to_ascii_lowercase().contains(w)) =>
        {
            PeerError::Unreachable { addr: addr.to_owned(), reason: s.message().to_owned() }
        }
        code => PeerError::Status { addr: addr.to_owned(), status: s.message().to_owned(), code },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_that_cannot_be_reached_is_told_from_one_that_answered() {
        for message in ["transport error", "Connection refused (os error 111)", "tcp connect error"] {
            let e = status("p:1", &tonic::Status::unavailable(message));
            assert!(matches!(e, PeerError::Unreachable { .. }), "{message}: {e:?}");
        }
        let e = status("p:1", &tonic::Status::failed_precondition("not the leader"));
        assert!(matches!(e, PeerError::Status { code: tonic::Code::FailedPrecondition, .. }), "{e:?}");
    }

    #[test]
    fn a_peer_is_unreachable_from_its_first_failed_call_until_one_reaches_it() {
        let peers = Peers::new();
        assert_eq!(peers.unreachable_for("p:1"), None, "never called");
        peers.record_contact("p:1", false);
        std::thread::sleep(Duration::from_millis(20));
        peers.record_contact("p:1", false);
        let failing = peers.unreachable_for("p:1").expect("failing");
        assert!(failing >= Duration::from_millis(20), "counted from the first failure: {failing:?}");
        peers.record_contact("p:1", true);
        assert_eq!(peers.unreachable_for("p:1"), None);
    }
}

#[derive(Debug, Clone, Copy)]
enum RaftRpc {
    AppendEntries,
    Vote,
    InstallSnapshot,
}

/// openraft's network factory over [`Peers`].
#[derive(Debug, Clone)]
pub struct PeerNetwork {
    peers: Arc<Peers>,
}

impl PeerNetwork {
    /// The factory over `peers`.
    pub fn new(peers: Arc<Peers>) -> PeerNetwork {
        PeerNetwork { peers }
    }
}

/// The connection to one peer, as openraft holds it.
#[derive(Debug)]
pub struct PeerConnection {
    target: NodeId,
    addr: String,
    peers: Arc<Peers>,
}

impl RaftNetworkFactory<TypeConfig> for PeerNetwork {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, node: &Endpoints) -> PeerConnection {
        PeerConnection { target, addr: node.peer_addr.clone(), peers: self.peers.clone() }
    }
}

impl PeerConnection {
    async fn call<Req, Resp, E>(
        &self,
        which: RaftRpc,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, Endpoints, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        match self
            .peers
            .raft_call::<Req, Resp, RaftError<NodeId, E>>(&self.addr, which, req, option.hard_ttl())
            .await
        {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(remote)) => Err(RPCError::RemoteError(RemoteError::new(self.target, remote))),
            Err(e @ (PeerError::Unreachable { .. } | PeerError::NoCredentials)) => {
                Err(RPCError::Unreachable(Unreachable::new(&AnyError::new(&e))))
            }
            Err(e) => Err(RPCError::Network(NetworkError::new(&AnyError::new(&e)))),
        }
    }
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Endpoints, RaftError<NodeId>>> {
        self.call(RaftRpc::AppendEntries, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, Endpoints, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.call(RaftRpc::InstallSnapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Endpoints, RaftError<NodeId>>> {
        self.call(RaftRpc::Vote, &rpc, &option).await
    }
}
