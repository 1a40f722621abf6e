//! [`Client`]: the nodes of a cluster, the choice of node per call, timeouts and retries.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use coffer_proto::HsmClient;
use coffer_proto::v1;
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status};

use crate::config::{ClientConfig, parse_endpoint};
use crate::error::{ClientError, Failure, Reach, find_in_chain, from_status, hsm_code};
use crate::node::Node;
use crate::session::Session;
use crate::tls::{NodeConnector, rustls_config};

/// Whether a call may be sent again after a failure that left its fate unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Reads and crypto operations: doing them twice changes nothing, so any transient
    /// failure (unreachable, connection lost, timeout) is retried.
    Idempotent,
    /// Writes (and Login, whose failures count toward lockout): retried only when the request
    /// certainly never left this process.
    IfNotSent,
}

/// First pause before trying a node again; doubled each time, capped at [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_millis(800);

fn backoff(round: u32) -> Duration {
    FIRST_BACKOFF.saturating_mul(1 << round.min(8)).min(MAX_BACKOFF)
}

/// Whether a failed attempt may be sent again under a retry policy.
pub(crate) fn may_retry(failure: &Failure, retry: Retry) -> bool {
    if matches!(failure.error, ClientError::Tls { .. }) {
        // A certificate that does not verify is not transient, and retrying could hide an
        // attack from the logs.
        return false;
    }
    match failure.reach {
        Reach::NotSent => true,
        Reach::MaybeApplied => retry == Retry::Idempotent,
        Reach::Answered => false,
    }
}

/// A connection to a Coffer cluster. Cheap to clone (clones share the nodes' connections);
/// `Send + Sync`.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    nodes: Vec<Arc<Node>>,
    /// Round-robin cursor for new sessions.
    next: AtomicUsize,
    request_timeout: Duration,
    retries: u32,
}

impl Client {
    /// Checks the configuration, loads its certificates and connects to the first node that
    /// answers (in the configured order). Other nodes are connected when first used.
    pub async fn connect(config: &ClientConfig) -> Result<Client, ClientError> {
        let client = Client::new(config)?;
        client
            .call_any(
                "Connect",
                Retry::Idempotent,
                false,
                |node| async move { node.channel().await.map(|_| ()) },
            )
            .await?;
        Ok(client)
    }

    /// Builds the client without connecting.
    fn new(config: &ClientConfig) -> Result<Client, ClientError> {
        config.validate()?;
        let tls = rustls_config(config)?;
        let connect_timeout = Duration::from_millis(config.connect_timeout_ms);
        let mut nodes = Vec::with_capacity(config.endpoints.len());
        for endpoint in &config.endpoints {
            let (host, port) = parse_endpoint(endpoint).map_err(|reason| ClientError::Config {
                path: Default::default(),
                key: "endpoints".into(),
                reason,
            })?;
            let connector = NodeConnector::new(&host, port, tls.clone())?;
            nodes.push(Node::new(endpoint.clone(), connector, connect_timeout));
        }
        Ok(Client {
            inner: Arc::new(Inner {
                nodes,
                next: AtomicUsize::new(0),
                request_timeout: Duration::from_millis(config.request_timeout_ms),
                retries: config.retries,
            }),
        })
    }

    /// The configured endpoints, in order.
    pub fn endpoints(&self) -> Vec<String> {
        self.inner.nodes.iter().map(|n| n.endpoint().to_owned()).collect()
    }

    /// A client that talks to one of this client's endpoints only, sharing its connection
    /// (for per-node operations such as reading each node's info or initialising a node).
    pub fn for_endpoint(&self, endpoint: &str) -> Result<Client, ClientError> {
        let node = self.inner.nodes.iter().find(|n| n.endpoint() == endpoint).ok_or_else(|| {
            ClientError::InvalidUse(format!("{endpoint:?} is not one of the configured endpoints"))
        })?;
        Ok(Client {
            inner: Arc::new(Inner {
                nodes: vec![node.clone()],
                next: AtomicUsize::new(0),
                request_timeout: self.inner.request_timeout,
                retries: self.inner.retries,
            }),
        })
    }

    /// The cluster as the first node that answers sees it (`GetClusterInfo`, no login).
    pub async fn cluster_info(&self) -> Result<v1::ClusterInfo, ClientError> {
        self.unary_any(
            "GetClusterInfo",
            Retry::Idempotent,
            v1::GetClusterInfoRequest {},
            |mut c, r| async move { c.get_cluster_info(r).await },
        )
        .await
    }

    /// The cluster CSR (PEM) of the first node that answers, while it is UNINITIALIZED.
    pub async fn cluster_csr(&self) -> Result<String, ClientError> {
        let response = self
            .unary_any(
                "GetClusterCsr",
                Retry::Idempotent,
                v1::GetClusterCsrRequest {},
                |mut c, r| async move { c.get_cluster_csr(r).await },
            )
            .await?;
        Ok(response.csr_pem)
    }

    /// Initialises the cluster with the owner's signed cluster certificate and trust anchor
    /// (PEM). Goes to the first node that answers, as [`cluster_csr`](Self::cluster_csr) does,
    /// so that the certificate returns to the node whose CSR was signed; with several nodes,
    /// use [`for_endpoint`](Self::for_endpoint) to be explicit.
    pub async fn initialize_cluster(
        &self,
        signed_cert_pem: &str,
        trust_anchor_pem: &str,
    ) -> Result<v1::ClusterInfo, ClientError> {
        let request = v1::InitializeClusterRequest {
            signed_cert_pem: signed_cert_pem.to_owned(),
            trust_anchor_pem: trust_anchor_pem.to_owned(),
        };
        self.unary_any("InitializeCluster", Retry::IfNotSent, request, |mut c, r| async move {
            c.initialize_cluster(r).await
        })
        .await
    }

    /// Opens a session on the next node in round-robin order, passing over nodes that failed in
    /// the last few seconds. The session, its login and its session objects live on that node.
    pub async fn open_session(&self) -> Result<Session, ClientError> {
        let (node, response) = self
            .call_any("OpenSession", Retry::Idempotent, true, |node| async move {
                let response = self
                    .attempt(&node, "OpenSession", v1::OpenSessionRequest {}, |mut c, r| async move {
                        c.open_session(r).await
                    })
                    .await?;
                Ok((node, response))
            })
            .await?;
        if response.session.is_empty() {
            return Err(ClientError::Protocol(format!(
                "{}: OpenSession returned an empty session",
                node.endpoint()
            )));
        }
        Ok(Session::new(self.clone(), node, response.session))
    }

    /// A unary call to any node, with failover.
    async fn unary_any<Req, Resp, F, Fut>(
        &self,
        operation: &'static str,
        retry: Retry,
        request: Req,
        call: F,
    ) -> Result<Resp, ClientError>
    where
        Req: Clone,
        F: Fn(HsmClient<Channel>, Request<Req>) -> Fut,
        Fut: Future<Output = Result<Response<Resp>, Status>>,
    {
        let (request, call) = (&request, &call);
        self.call_any(operation, retry, false, |node| async move {
            self.attempt(&node, operation, request.clone(), call).await
        })
        .await
    }

    /// Runs `attempt` on one node after another until it succeeds, fails for good, or the retry
    /// budget is spent. Nodes that could not be connected to do not use the budget on the
    /// first pass over the list, so a down node costs a fast failover, not a retry.
    async fn call_any<T, F, Fut>(
        &self,
        operation: &'static str,
        retry: Retry,
        round_robin: bool,
        attempt: F,
    ) -> Result<T, ClientError>
    where
        F: Fn(Arc<Node>) -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let order = self.order(round_robin);
        let mut budget = self.inner.retries;
        let mut errors: Vec<(String, ClientError)> = Vec::new();
        let mut round = 0;
        for (i, node) in order.iter().cycle().enumerate() {
            if i > 0 && i % order.len() == 0 {
                tokio::time::sleep(backoff(round)).await;
                round += 1;
            }
            let failure = match attempt(node.clone()).await {
                Ok(value) => {
                    node.record(Ok(()));
                    return Ok(value);
                }
                Err(failure) => failure,
            };
            node.record(Err(&failure));
            let retryable = may_retry(&failure, retry);
            let free = failure.reach == Reach::NotSent && i < order.len() - 1;
            errors.push((node.endpoint().to_owned(), failure.error));
            if !retryable {
                break;
            }
            if !free {
                if budget == 0 {
                    break;
                }
                budget -= 1;
            }
        }
        Err(combine(operation, errors))
    }

    /// The nodes in the order to try them: configured order for cluster calls, round-robin for
    /// sessions; quarantined nodes go last either way.
    fn order(&self, round_robin: bool) -> Vec<Arc<Node>> {
        let nodes = &self.inner.nodes;
        let start = if round_robin {
            self.inner.next.fetch_add(1, Ordering::Relaxed) % nodes.len().max(1)
        } else {
            0
        };
        let rotated = nodes.iter().cycle().skip(start).take(nodes.len());
        let (healthy, quarantined): (Vec<_>, Vec<_>) = rotated.cloned().partition(|n| !n.is_quarantined());
        healthy.into_iter().chain(quarantined).collect()
    }

    /// A unary call to one node, retried there (never moved: its session lives there).
    pub(crate) async fn unary_on<Req, Resp, F, Fut>(
        &self,
        node: &Arc<Node>,
        operation: &'static str,
        retry: Retry,
        request: &Req,
        call: F,
    ) -> Result<Resp, ClientError>
    where
        Req: Clone,
        F: Fn(HsmClient<Channel>, Request<Req>) -> Fut,
        Fut: Future<Output = Result<Response<Resp>, Status>>,
    {
        let mut round = 0;
        loop {
            let failure = match self.attempt(node, operation, request.clone(), &call).await {
                Ok(response) => {
                    node.record(Ok(()));
                    return Ok(response);
                }
                Err(failure) => failure,
            };
            node.record(Err(&failure));
            if !may_retry(&failure, retry) || round >= self.inner.retries {
                return Err(bound_to_node(failure.error));
            }
            tokio::time::sleep(backoff(round)).await;
            round += 1;
        }
    }

    /// One attempt of a unary call on one node, within the request timeout.
    pub(crate) async fn attempt<Req, Resp, F, Fut>(
        &self,
        node: &Node,
        operation: &'static str,
        request: Req,
        call: F,
    ) -> Result<Resp, Failure>
    where
        F: Fn(HsmClient<Channel>, Request<Req>) -> Fut,
        Fut: Future<Output = Result<Response<Resp>, Status>>,
    {
        let channel = node.channel().await?;
        let timeout = self.inner.request_timeout;
        let mut request = Request::new(request);
        // Tell the node too, so that it stops working on an answer nobody waits for.
        request.set_timeout(timeout);
        match tokio::time::timeout(timeout, call(HsmClient::new(channel), request)).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(self.status_failure(&status, node, operation)),
            Err(_) => Err(self.timeout_failure(node, operation)),
        }
    }

    /// Maps a status. The request timeout is enforced by tonic (from the deadline the request
    /// carries) and by the node (`DEADLINE_EXCEEDED`); either way it is a timeout.
    pub(crate) fn status_failure(&self, status: &Status, node: &Node, operation: &'static str) -> Failure {
        let local_deadline = find_in_chain::<tonic::TimeoutExpired>(status).is_some();
        let node_deadline = status.code() == Code::DeadlineExceeded && matches!(hsm_code(status), Ok(None));
        if local_deadline || node_deadline {
            return self.timeout_failure(node, operation);
        }
        from_status(status, node.endpoint())
    }

    pub(crate) fn timeout_failure(&self, node: &Node, operation: &'static str) -> Failure {
        let after_ms = u64::try_from(self.inner.request_timeout.as_millis()).unwrap_or(u64::MAX);
        Failure::new(
            ClientError::Timeout { endpoint: node.endpoint().to_owned(), operation, after_ms },
            Reach::MaybeApplied,
        )
    }

    pub(crate) fn request_timeout(&self) -> Duration {
        self.inner.request_timeout
    }
}

/// Says, for a session's node that cannot be reached, that the session is not moved.
fn bound_to_node(error: ClientError) -> ClientError {
    match error {
        ClientError::Unavailable { endpoint, message } => ClientError::Unavailable {
            endpoint,
            message: format!(
                "{message} (the session lives on this node and is not moved to another: open a new session)"
            ),
        },
        other => other,
    }
}

/// The error of a call that failed on every attempt: when every attempt found its node
/// unavailable, one `Unavailable` naming them all; otherwise the last error.
fn combine(operation: &'static str, mut errors: Vec<(String, ClientError)>) -> ClientError {
    let all_unavailable = errors.iter().all(|(_, e)| matches!(e, ClientError::Unavailable { .. }));
    if errors.len() > 1 && all_unavailable {
        let mut endpoints: Vec<&str> = Vec::new();
        for (endpoint, _) in &errors {
            if !endpoints.contains(&endpoint.as_str()) {
                endpoints.push(endpoint);
            }
        }
        let messages: Vec<String> = errors
            .iter()
            .map(|(_, e)| match e {
                ClientError::Unavailable { endpoint, message } => format!("{endpoint}: {message}"),
                other => other.to_string(),
            })
            .collect();
        return ClientError::Unavailable {
            endpoint: endpoints.join(", "),
            message: format!("{operation} failed on every node tried: {}", messages.join("; ")),
        };
    }
    match errors.pop() {
        Some((_, error)) => error,
        None => ClientError::InvalidUse(format!("{operation}: no endpoint configured")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(error: ClientError, reach: Reach) -> Failure {
        Failure::new(error, reach)
    }

    fn unavailable(endpoint: &str) -> ClientError {
        ClientError::Unavailable { endpoint: endpoint.into(), message: "connection refused".into() }
    }

    #[test]
    fn retry_classification() {
        let hsm =
            || ClientError::Hsm { ckr: 0xA0, ckr_name: "CKR_PIN_INCORRECT".into(), message: String::new() };
        let timeout = || ClientError::Timeout { endpoint: "n".into(), operation: "Sign", after_ms: 10 };
        let tls = || ClientError::Tls { endpoint: "n".into(), message: "UnknownIssuer".into() };
        for retry in [Retry::Idempotent, Retry::IfNotSent] {
            // Never sent: always safe.
            assert!(may_retry(&failure(unavailable("n"), Reach::NotSent), retry));
            // Answered by the HSM: final.
            assert!(!may_retry(&failure(hsm(), Reach::Answered), retry));
            // TLS failures are not transient.
            assert!(!may_retry(&failure(tls(), Reach::NotSent), retry));
        }
        // Maybe applied: only reads and crypto operations go again.
        assert!(may_retry(&failure(timeout(), Reach::MaybeApplied), Retry::Idempotent));
        assert!(!may_retry(&failure(timeout(), Reach::MaybeApplied), Retry::IfNotSent));
        assert!(may_retry(&failure(unavailable("n"), Reach::MaybeApplied), Retry::Idempotent));
        assert!(!may_retry(&failure(unavailable("n"), Reach::MaybeApplied), Retry::IfNotSent));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(0), FIRST_BACKOFF);
        assert_eq!(backoff(1), FIRST_BACKOFF * 2);
        assert_eq!(backoff(30), MAX_BACKOFF);
    }

    #[test]
    fn every_unavailable_node_is_named_once() {
        let e = combine(
            "OpenSession",
            vec![
                ("a:1".into(), unavailable("a:1")),
                ("b:2".into(), unavailable("b:2")),
                ("a:1".into(), unavailable("a:1")),
            ],
        );
        match e {
            ClientError::Unavailable { endpoint, message } => {
                assert_eq!(endpoint, "a:1, b:2");
                assert!(message.contains("OpenSession failed on every node tried"), "{message}");
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
        let single = combine("Sign", vec![("a:1".into(), unavailable("a:1"))]);
        assert!(matches!(single, ClientError::Unavailable { endpoint, .. } if endpoint == "a:1"));
        let last = combine(
            "Sign",
            vec![("a:1".into(), unavailable("a:1")), ("b:2".into(), ClientError::Protocol("x".into()))],
        );
        assert!(matches!(last, ClientError::Protocol(_)));
    }

    #[test]
    fn a_lost_session_node_is_named_with_the_reason() {
        let e = bound_to_node(unavailable("10.0.0.3:2223"));
        assert!(e.to_string().contains("10.0.0.3:2223"), "{e}");
        assert!(e.to_string().contains("not moved to another"), "{e}");
    }
}
