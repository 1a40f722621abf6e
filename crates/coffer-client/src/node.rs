//! One node of the cluster as the client sees it: its address, its gRPC channel (opened on
//! first use and kept), whether it failed recently, and how much of this client's work it
//! holds (its load).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tonic::transport::{Channel, Endpoint};

use crate::error::{ClientError, Failure, Reach, error_chain, find_in_chain, tls_failure};
use crate::tls::NodeConnector;

/// How long a node that could not be reached is passed over when choosing a node for a new
/// session (it is still tried when every node is in that state).
const QUARANTINE: Duration = Duration::from_secs(5);

/// A node: address, connector and cached channel.
#[derive(Debug)]
pub(crate) struct Node {
    endpoint: String,
    connector: NodeConnector,
    connect_timeout: Duration,
    channel: Mutex<Option<Channel>>,
    failed_at: Mutex<Option<Instant>>,
    /// This client's sessions on the node.
    sessions: AtomicUsize,
    /// This client's requests waiting for the node's answer.
    in_flight: AtomicUsize,
}

/// A session's claim on its node, counted in the node's load until it is released (the
/// session is closed) or dropped.
#[derive(Debug)]
pub(crate) struct Held {
    node: Arc<Node>,
    released: AtomicBool,
}

impl Held {
    /// Stops counting the session (once; later calls do nothing).
    pub(crate) fn release(&self) {
        if !self.released.swap(true, Ordering::Relaxed) {
            self.node.sessions.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.release();
    }
}

/// A request waiting for the node, counted in its load while it waits.
pub(crate) struct Busy<'a>(&'a Node);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Locks a mutex whose data stays valid even if a holder panicked (it only caches values).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Node {
    pub(crate) fn new(endpoint: String, connector: NodeConnector, connect_timeout: Duration) -> Arc<Self> {
        Arc::new(Node {
            endpoint,
            connector,
            connect_timeout,
            channel: Mutex::new(None),
            failed_at: Mutex::new(None),
            sessions: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
        })
    }

    /// This client's load on the node: its sessions there and its requests waiting there.
    pub(crate) fn load(&self) -> usize {
        self.sessions.load(Ordering::Relaxed) + self.in_flight.load(Ordering::Relaxed)
    }

    /// Counts a session on the node until the returned claim is dropped.
    pub(crate) fn hold(self: &Arc<Self>) -> Held {
        self.sessions.fetch_add(1, Ordering::Relaxed);
        Held { node: self.clone(), released: AtomicBool::new(false) }
    }

    /// Counts a request on the node until the returned guard is dropped.
    pub(crate) fn busy(&self) -> Busy<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Busy(self)
    }

    /// Whether `endpoint` names this node's address (the same host, any case, and port).
    pub(crate) fn is_at(&self, endpoint: &str) -> bool {
        let ours = crate::config::parse_endpoint(&self.endpoint);
        match (ours, crate::config::parse_endpoint(endpoint)) {
            (Ok((h1, p1)), Ok((h2, p2))) => p1 == p2 && h1.eq_ignore_ascii_case(&h2),
            _ => self.endpoint == endpoint,
        }
    }

    /// The address as configured.
    pub(crate) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Whether the node failed to answer within the last few seconds.
    pub(crate) fn is_quarantined(&self) -> bool {
        lock(&self.failed_at).is_some_and(|t| t.elapsed() < QUARANTINE)
    }

    /// Records the outcome of an attempt: a transport failure quarantines the node and drops its
    /// channel (the next call connects afresh and so reports a precise error), any answer clears
    /// the quarantine.
    pub(crate) fn record(&self, outcome: Result<(), &Failure>) {
        match outcome {
            Ok(()) => *lock(&self.failed_at) = None,
            Err(failure) => match failure.error {
                ClientError::Unavailable { .. } | ClientError::Timeout { .. } | ClientError::Tls { .. } => {
                    *lock(&self.failed_at) = Some(Instant::now());
                    if failure.reach != Reach::Answered {
                        *lock(&self.channel) = None;
                    }
                }
                _ => *lock(&self.failed_at) = None,
            },
        }
    }

    /// The node's channel, connecting (TCP and the TLS handshake, within the connect timeout)
    /// when there is none yet. A failure here means nothing was sent.
    pub(crate) async fn channel(&self) -> Result<Channel, Failure> {
        if let Some(channel) = lock(&self.channel).clone() {
            return Ok(channel);
        }
        let channel = self.connect().await.map_err(|error| Failure::new(error, Reach::NotSent))?;
        // Two calls may have connected at once; keep the first channel stored, drop ours.
        let mut slot = lock(&self.channel);
        Ok(slot.get_or_insert(channel).clone())
    }

    async fn connect(&self) -> Result<Channel, ClientError> {
        // The scheme is `http` on purpose: the connector does TLS itself, and tonic, when
        // built with its own TLS feature elsewhere in a workspace, would refuse `https`
        // without its own TLS configuration.
        let uri = format!("http://{}", self.authority());
        let endpoint = Endpoint::from_shared(uri).map_err(|e| ClientError::Config {
            path: Default::default(),
            key: "endpoints".into(),
            reason: format!("{:?}: {e}", self.endpoint),
        })?;
        let endpoint = endpoint.connect_timeout(self.connect_timeout).tcp_nodelay(true);
        let connecting = endpoint.connect_with_connector(self.connector.clone());
        match tokio::time::timeout(self.connect_timeout, connecting).await {
            Ok(Ok(channel)) => Ok(channel),
            Ok(Err(e)) => Err(self.connect_error(&e)),
            Err(_) => Err(self.connect_timed_out()),
        }
    }

    fn connect_timed_out(&self) -> ClientError {
        ClientError::Unavailable {
            endpoint: self.endpoint.clone(),
            message: format!(
                "cannot connect: no TLS connection within {} ms",
                self.connect_timeout.as_millis()
            ),
        }
    }

    fn connect_error(&self, e: &tonic::transport::Error) -> ClientError {
        if let Some(message) = tls_failure(e) {
            return ClientError::Tls { endpoint: self.endpoint.clone(), message };
        }
        // tonic's own connect timeout (the same duration as ours) may fire first.
        if find_in_chain::<tokio::time::error::Elapsed>(e).is_some() {
            return self.connect_timed_out();
        }
        ClientError::Unavailable {
            endpoint: self.endpoint.clone(),
            message: format!("cannot connect: {}", error_chain(e)),
        }
    }

    /// `host:port` for the channel's URI (IPv6 in brackets).
    fn authority(&self) -> String {
        match crate::config::parse_endpoint(&self.endpoint) {
            Ok((host, port)) if host.contains(':') => format!("[{host}]:{port}"),
            Ok((host, port)) => format!("{host}:{port}"),
            Err(_) => self.endpoint.clone(),
        }
    }
}
