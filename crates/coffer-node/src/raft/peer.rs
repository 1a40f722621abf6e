//! The peer port's server: openraft's RPCs from the other nodes and the writes followers
//! forward to the leader. Only nodes presenting a certificate issued by the cluster key get
//! past the TLS handshake ([`crate::tls::PeerTls`]); before the node has its own certificate
//! it accepts no peer connection at all.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use coffer_proto::peer::peer_server::{Peer, PeerServer};
use coffer_proto::peer::{ProposeReply, ProposeRequest, RaftMessage};
use openraft::error::{ClientWriteError, RaftError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::{Connected, TcpConnectInfo};
use tonic::{Request, Response, Status};

use super::network::Peers;
use super::{MembershipChange, MembershipError, Proposal, Raft, decode, encode};

/// How long a peer has to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest peer message (a snapshot chunk, a batch of entries).
const MAX_PEER_MESSAGE: usize = 64 << 20;

/// The peer service over this node's raft.
#[derive(Clone)]
pub struct PeerService {
    raft: Raft,
}

impl std::fmt::Debug for PeerService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerService").finish_non_exhaustive()
    }
}

impl PeerService {
    /// The service answering for `raft`.
    pub fn new(raft: Raft) -> PeerService {
        PeerService { raft }
    }
}

fn bad_message(e: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("peer message does not decode: {e}"))
}

fn reply<T: Serialize>(value: &T) -> Result<Response<RaftMessage>, Status> {
    let payload = encode(value).map_err(|e| Status::internal(format!("encoding the reply: {e}")))?;
    Ok(Response::new(RaftMessage { payload }))
}

fn request<T: DeserializeOwned>(request: Request<RaftMessage>) -> Result<T, Status> {
    decode(&request.into_inner().payload).map_err(bad_message)
}

#[tonic::async_trait]
impl Peer for PeerService {
    async fn append_entries(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        reply(&self.raft.append_entries(request(req)?).await)
    }

    async fn vote(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        reply(&self.raft.vote(request(req)?).await)
    }

    async fn install_snapshot(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        reply(&self.raft.install_snapshot(request(req)?).await)
    }

    async fn propose(&self, req: Request<ProposeRequest>) -> Result<Response<ProposeReply>, Status> {
        let proposal: Proposal = decode(&req.into_inner().entry).map_err(bad_message)?;
        match self.raft.client_write(proposal).await {
            Ok(written) => Ok(Response::new(ProposeReply { index: written.log_id.index })),
            // The asking follower looks up the leader again and retries.
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
                Err(Status::failed_precondition("this node is not the leader"))
            }
            Err(e) => Err(Status::unavailable(format!("the write was not committed: {e}"))),
        }
    }

    async fn change_membership(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let change: MembershipChange = request(req)?;
        match super::change_membership(&self.raft, &change).await {
            Err(MembershipError::NotLeader) => {
                Err(Status::failed_precondition("this node is not the leader"))
            }
            result => reply(&result.map_err(|e| e.to_string())),
        }
    }
}

/// Serves the peer port until `stop` turns true.
pub async fn serve(listener: TcpListener, raft: Raft, peers: Arc<Peers>, stop: watch::Receiver<bool>) {
    let (tx, rx) = mpsc::channel::<Result<PeerConn, io::Error>>(16);
    let accept = tokio::spawn(accept_loop(listener, peers, tx));
    let service = PeerServer::new(PeerService::new(raft))
        .max_decoding_message_size(MAX_PEER_MESSAGE)
        .max_encoding_message_size(MAX_PEER_MESSAGE);
    let mut stop = stop;
    let _ = tonic::transport::Server::builder()
        .add_service(service)
        .serve_with_incoming_shutdown(ReceiverStream::new(rx), async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        })
        .await;
    accept.abort();
}

async fn accept_loop(
    listener: TcpListener,
    peers: Arc<Peers>,
    tx: mpsc::Sender<Result<PeerConn, io::Error>>,
) {
    loop {
        let Ok((tcp, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        // No certificate of our own yet: nobody can be a peer.
        let Some(tls) = peers.server_tls() else { continue };
        let tx = tx.clone();
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let local = tcp.local_addr().ok();
            let handshake = TlsAcceptor::from(tls).accept(tcp);
            if let Ok(Ok(tls)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
                let info = TcpConnectInfo { local_addr: local, remote_addr: Some(peer) };
                let _ = tx.send(Ok(PeerConn { tls, info })).await;
            }
        });
    }
}

/// An accepted peer connection.
struct PeerConn {
    tls: TlsStream<TcpStream>,
    info: TcpConnectInfo,
}

impl Connected for PeerConn {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.info.clone()
    }
}

impl AsyncRead for PeerConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tls).poll_read(cx, buf)
    }
}

impl AsyncWrite for PeerConn {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tls).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tls).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tls).poll_shutdown(cx)
    }
}
