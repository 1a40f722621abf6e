//! The network side of `cofferd`: TCP accept with the allow-list checked before TLS, TLS 1.3
//! handshakes, and the gRPC service served on the resulting streams; the HTTP endpoint for
//! metrics and health; and the node's start and shutdown.
//!
//! Accepting a connection:
//! 1. the peer address must be in `allowed_clients` (the security group), else the socket is
//!    closed at once, before any TLS byte: a refused address costs a `close()`;
//! 2. the address may hold at most `limits.max_connections_per_ip` connections;
//! 3. the handshake runs in its own task under a timeout, so a client that connects and sends
//!    nothing is dropped after a few seconds without delaying anyone else's accept;
//! 4. the handshake uses the TLS configuration current at that moment: the bootstrap
//!    certificate before initialisation, the node certificate after, and the client trust
//!    anchors as they are now;
//! 5. the TLS stream joins the gRPC server (tonic, HTTP/2 only) through a channel.
//!
//! Between requests: after each write to a client, the workers keep polling for
//! `busy_poll_us` before they may sleep ([`crate::busy_poll`]).
//!
//! Per request: at most `limits.max_message_bytes` per message each way, and
//! `limits.request_timeout_secs` per call; HTTP/2 keepalive pings detect dead peers.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use coffer_proto::HsmServer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::busy_poll::BusyPoll;
use crate::config::NodeConfig;
use crate::metrics::{Gauge, Metrics};
use crate::node::{Node, StartError, housekeeping_interval};
use crate::service::NodeService;

/// How long a client has to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// HTTP/2 keepalive: ping an idle connection this often, drop it if the ping goes unanswered.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Concurrent calls on one connection.
const MAX_CONCURRENT_STREAMS: u32 = 256;
/// How long shutdown waits for calls in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Settings that are not in the configuration file (tests shorten them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerOptions {
    pub handshake_timeout: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self { handshake_timeout: HANDSHAKE_TIMEOUT }
    }
}

/// A started node: its addresses, and the handle that stops it.
#[derive(Debug)]
pub struct RunningNode {
    node: Arc<Node>,
    local_addr: SocketAddr,
    metrics_addr: SocketAddr,
    peer_addr: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Node {
    /// Opens the node and starts serving: gRPC on `listen`, metrics and health on
    /// `metrics_listen`, and the housekeeping timer.
    pub async fn start(config: NodeConfig) -> Result<RunningNode, StartError> {
        Self::start_with(config, ServerOptions::default()).await
    }

    /// As [`Node::start`], with server options.
    pub async fn start_with(config: NodeConfig, options: ServerOptions) -> Result<RunningNode, StartError> {
        let metrics = Metrics::new();
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|e| StartError::new(format!("listen {}", config.listen), e))?;
        let metrics_listener = TcpListener::bind(config.metrics_listen)
            .await
            .map_err(|e| StartError::new(format!("metrics_listen {}", config.metrics_listen), e))?;
        let local_addr = listener.local_addr().map_err(|e| StartError::new("listen", e))?;
        let metrics_addr = metrics_listener.local_addr().map_err(|e| StartError::new("metrics_listen", e))?;
        let peer_listener = TcpListener::bind(config.peer_listen)
            .await
            .map_err(|e| StartError::new(format!("peer_listen {}", config.peer_listen), e))?;
        let peer_addr = peer_listener.local_addr().map_err(|e| StartError::new("peer_listen", e))?;
        let advertise_ip = config.advertise_ip;
        let node = {
            let metrics = metrics.clone();
            tokio::task::spawn_blocking(move || Node::open(config, metrics))
                .await
                .map_err(|e| StartError::new("start-up", e))??
        };
        let node = Arc::new(node);
        let endpoints = crate::raft::Endpoints {
            peer_addr: advertised(peer_addr, advertise_ip).to_string(),
            client_addr: advertised(local_addr, advertise_ip).to_string(),
        };
        let raft = start_raft(&node, endpoints).await?;
        let (stop, stopped) = watch::channel(false);
        let tasks = vec![
            tokio::spawn(crate::raft::peer::serve(
                peer_listener,
                raft,
                node.peers().clone(),
                stopped.clone(),
            )),
            tokio::spawn(serve_grpc(node.clone(), listener, options, stopped.clone())),
            tokio::spawn(serve_http(metrics_listener, metrics, stopped.clone())),
            tokio::spawn(housekeeping(node.clone(), stopped)),
        ];
        Ok(RunningNode { node, local_addr, metrics_addr, peer_addr, stop, tasks })
    }
}

/// Starts the node's raft over its log store and replica. A node that has never been in a
/// cluster and is not told to wait for one (`join`) founds a one-node cluster of its own,
/// advertising its addresses; more nodes join it later.
async fn start_raft(
    node: &Arc<Node>,
    endpoints: crate::raft::Endpoints,
) -> Result<crate::raft::Raft, StartError> {
    use crate::raft::network::PeerNetwork;
    use crate::raft::state_machine::StateMachine;
    let config = crate::raft::config(SNAPSHOT_EVERY).map_err(|e| StartError::new("raft configuration", e))?;
    let log = node.log_store().clone();
    let pristine = log.is_pristine().map_err(|e| StartError::new("raft log", e))?;
    let network = PeerNetwork::new(node.peers().clone());
    let machine = StateMachine::new(node.replica().clone(), log.clone());
    node.set_endpoints(endpoints.clone());
    let raft_id = node.keys().raft_id;
    let raft = crate::raft::Raft::new(raft_id, Arc::new(config), network, log, machine)
        .await
        .map_err(|e| StartError::new("raft", e))?;
    if pristine && !node.config().join {
        raft.initialize(std::collections::BTreeMap::from([(raft_id, endpoints)]))
            .await
            .map_err(|e| StartError::new("founding the cluster", e))?;
    }
    node.set_raft(raft.clone());
    Ok(raft)
}

/// The address peers and clients reach a listener at: an unspecified IP is advertised as the
/// configured `advertise_ip`, else as loopback.
pub fn advertised(addr: SocketAddr, advertise_ip: Option<IpAddr>) -> SocketAddr {
    SocketAddr::new(advertised_ip(addr.ip(), advertise_ip), addr.port())
}

/// See [`advertised`].
pub(crate) fn advertised_ip(ip: IpAddr, advertise_ip: Option<IpAddr>) -> IpAddr {
    if ip.is_unspecified() { advertise_ip.unwrap_or(IpAddr::from([127, 0, 0, 1])) } else { ip }
}

/// A snapshot every this many log entries (raft then purges the log before it).
const SNAPSHOT_EVERY: u64 = 5000;

impl RunningNode {
    /// The gRPC address (with the port the system chose for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The peer address (raft and cloning).
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer_addr
    }

    /// The metrics and health address.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr
    }

    /// The node.
    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// Resolves when any serving task has ended (they run until shutdown, so this means a
    /// failure: the binary exits).
    pub async fn failed(&mut self) {
        let tasks = &mut self.tasks;
        std::future::poll_fn(|cx| {
            // The ended task leaves the list: a finished JoinHandle must not be polled again.
            match tasks.iter_mut().position(|task| Pin::new(task).poll(cx).is_ready()) {
                Some(ended) => {
                    tasks.swap_remove(ended);
                    Poll::Ready(())
                }
                None => Poll::Pending,
            }
        })
        .await;
    }

    /// Stops serving, waits (boundedly) for calls in flight, closes every session and the
    /// audit log (with its closing checkpoint) and releases the store.
    pub async fn shutdown(self) -> Result<(), StartError> {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout(SHUTDOWN_GRACE, task).await.is_err() {
                abort.abort();
            }
        }
        let node = self.node;
        if let Some(raft) = node.raft() {
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, raft.shutdown()).await;
        }
        tokio::task::spawn_blocking(move || node.close()).await.map_err(|e| StartError::new("shutdown", e))?
    }
}

/// Resolves once shutdown is signalled (or the signal is gone).
async fn stopped(mut stop: watch::Receiver<bool>) {
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

/// The housekeeping timer: idle sessions, audit checkpoints, health.
async fn housekeeping(node: Arc<Node>, stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(housekeeping_interval(node.config()));
    let stop = stopped(stop);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let node = node.clone();
                let _ = tokio::task::spawn_blocking(move || node.housekeeping()).await;
            }
            () = &mut stop => return,
        }
    }
}

async fn serve_http(listener: TcpListener, metrics: Arc<Metrics>, stop: watch::Receiver<bool>) {
    if let Err(e) = crate::http::serve(listener, metrics.clone(), stopped(stop)).await {
        metrics.set_unhealthy(format!("the metrics endpoint failed: {e}"));
    }
}

/// The gRPC server over the accepted TLS streams.
async fn serve_grpc(
    node: Arc<Node>,
    listener: TcpListener,
    options: ServerOptions,
    stop: watch::Receiver<bool>,
) {
    let limits = node.config().limits.clone();
    let (tx, rx) = mpsc::channel::<Result<Conn, io::Error>>(64);
    let poll = BusyPoll::new(node.config().busy_poll, node.metrics().clone());
    // One poller per worker: a CPU left to halt is where the next wake-up lands.
    let workers = tokio::runtime::Handle::current().metrics().num_workers();
    let polling: Vec<_> =
        (0..workers).map(|_| tokio::spawn(poll.clone().run(stopped(stop.clone())))).collect();
    let accept = tokio::spawn(accept_loop(node.clone(), listener, options, poll, tx, stop.clone()));
    let service = HsmServer::new(NodeService::new(node.clone()))
        .max_decoding_message_size(limits.max_message_bytes)
        .max_encoding_message_size(limits.max_message_bytes);
    let served = tonic::transport::Server::builder()
        .timeout(limits.request_timeout)
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .max_concurrent_streams(Some(MAX_CONCURRENT_STREAMS))
        .add_service(service)
        .serve_with_incoming_shutdown(ReceiverStream::new(rx), stopped(stop))
        .await;
    accept.abort();
    polling.iter().for_each(JoinHandle::abort);
    if let Err(e) = served {
        node.metrics().set_unhealthy(format!("the gRPC server failed: {e}"));
    }
}

/// Accepts connections until shutdown; each handshake runs in its own task.
async fn accept_loop(
    node: Arc<Node>,
    listener: TcpListener,
    options: ServerOptions,
    poll: Arc<BusyPoll>,
    tx: mpsc::Sender<Result<Conn, io::Error>>,
    stop: watch::Receiver<bool>,
) {
    let limiter = Arc::new(ConnLimiter::new(node.config().limits.max_connections_per_ip));
    let stop = stopped(stop);
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stop => return,
        };
        let Ok((tcp, peer)) = accepted else {
            // Out of file descriptors and the like: back off instead of spinning.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        // The security group: refused before any TLS work.
        if !node.config().allowed_clients.allows(peer.ip()) {
            drop(tcp);
            continue;
        }
        let Some(guard) = limiter.acquire(peer.ip(), node.metrics().clone()) else {
            drop(tcp);
            continue;
        };
        let (tls_config, _) = node.presented();
        let tx = tx.clone();
        let timeout = options.handshake_timeout;
        let metrics = node.metrics().clone();
        let poll = poll.clone();
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let local = tcp.local_addr().ok();
            let handshake = TlsAcceptor::from(tls_config).accept(tcp);
            if let Ok(Ok(tls)) = tokio::time::timeout(timeout, handshake).await {
                let conn = Conn {
                    tls,
                    info: TcpConnectInfo { local_addr: local, remote_addr: Some(peer) },
                    metrics,
                    poll,
                    _guard: guard,
                };
                let _ = tx.send(Ok(conn)).await;
            }
        });
    }
}

/// Connections per client address.
#[derive(Debug)]
struct ConnLimiter {
    max: u32,
    counts: Mutex<HashMap<IpAddr, u32>>,
}

impl ConnLimiter {
    fn new(max: u32) -> Self {
        Self { max, counts: Mutex::default() }
    }

    /// A slot for one more connection from `ip`, or `None` at the limit.
    fn acquire(self: &Arc<Self>, ip: IpAddr, metrics: Arc<Metrics>) -> Option<ConnGuard> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let count = counts.entry(ip).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        metrics.add(Gauge::SslCtxsOccupied, 1);
        Some(ConnGuard { limiter: self.clone(), ip, metrics })
    }
}

/// Frees a connection slot when the connection ends (or its handshake fails).
#[derive(Debug)]
struct ConnGuard {
    limiter: Arc<ConnLimiter>,
    ip: IpAddr,
    metrics: Arc<Metrics>,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.metrics.add(Gauge::SslCtxsOccupied, -1);
        let mut counts = self.limiter.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// An accepted TLS connection: counts bytes in and out, starts the busy-polling window with
/// each write, and frees its slot when dropped.
struct Conn {
    tls: TlsStream<TcpStream>,
    info: TcpConnectInfo,
    metrics: Arc<Metrics>,
    poll: Arc<BusyPoll>,
    _guard: ConnGuard,
}

impl Connected for Conn {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.info.clone()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.tls).poll_read(cx, buf);
        let read = buf.filled().len().saturating_sub(before);
        self.metrics.add_bytes_in(read as u64);
        polled
    }
}

impl Conn {
    fn wrote(&self, bytes: usize) {
        self.metrics.add_bytes_out(bytes as u64);
        self.poll.answered();
    }
}

impl AsyncWrite for Conn {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.tls).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = &polled {
            self.wrote(*n);
        }
        polled
    }

    /// Passed through so that h2 hands a frame's header and a large payload over in one
    /// call: one TLS record and one `writev`, where separate writes made two of each.
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.tls).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = &polled {
            self.wrote(*n);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.tls.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tls).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tls).poll_shutdown(cx)
    }
}
