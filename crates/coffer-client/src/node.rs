//! One node of the cluster as the client sees it: its address, its gRPC channel (opened on
//! first use and kept), and whether it failed recently.

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
        })
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
