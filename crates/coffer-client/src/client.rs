//! [`Client`]: the nodes of a cluster, the choice of node per call, timeouts and retries.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

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

/// How long a discovered node list is used before new sessions look it up again.
const REFRESH_EVERY: Duration = Duration::from_secs(60);
/// The most a look-up adds to opening a session; a slow one is given up, not waited for.
const REFRESH_BUDGET: Duration = Duration::from_secs(2);

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
    /// The configured nodes, in order, then the ones the cluster listed.
    nodes: RwLock<Vec<Arc<Node>>>,
    /// How many of `nodes` come from the configuration (those are always kept).
    configured: usize,
    /// Set when the client also uses the nodes the cluster lists.
    discovery: Option<Discovery>,
    /// Round-robin cursor for new sessions.
    next: AtomicUsize,
    request_timeout: Duration,
    retries: u32,
}

/// What the client needs to add the nodes the cluster lists.
#[derive(Debug)]
struct Discovery {
    tls: Arc<rustls::ClientConfig>,
    connect_timeout: Duration,
    /// When the list was last looked up (set as a look-up starts, so that one runs at a time).
    looked_up: Mutex<Option<Instant>>,
}

impl Client {
    /// Checks the configuration, loads its certificates and connects to the first node that
    /// answers (in the configured order). Other nodes are connected when first used. With
    /// `discover`, the nodes the cluster lists are added (see [`refresh_nodes`](Self::refresh_nodes)).
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
        client.refresh_if_due().await;
        Ok(client)
    }

    /// Builds the client without connecting.
    fn new(config: &ClientConfig) -> Result<Client, ClientError> {
        config.validate()?;
        let tls = rustls_config(config)?;
        let connect_timeout = Duration::from_millis(config.connect_timeout_ms);
        let mut nodes = Vec::with_capacity(config.endpoints.len());
        for endpoint in &config.endpoints {
            nodes.push(new_node(endpoint, &tls, connect_timeout)?);
        }
        // A fingerprint vouches for one certificate only: other nodes could not be verified.
        let discovery = (config.discover && config.trust_anchor.is_some()).then(|| Discovery {
            tls,
            connect_timeout,
            looked_up: Mutex::new(None),
        });
        Ok(Client {
            inner: Arc::new(Inner {
                configured: nodes.len(),
                nodes: RwLock::new(nodes),
                discovery,
                next: AtomicUsize::new(0),
                request_timeout: Duration::from_millis(config.request_timeout_ms),
                retries: config.retries,
            }),
        })
    }

    /// The endpoints in use: the configured ones, in order, then those the cluster listed.
    pub fn endpoints(&self) -> Vec<String> {
        self.nodes().iter().map(|n| n.endpoint().to_owned()).collect()
    }

    /// The nodes in use, as they are now.
    fn nodes(&self) -> Vec<Arc<Node>> {
        self.inner.nodes.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// A client that talks to one of this client's endpoints only, sharing its connection
    /// (for per-node operations such as reading each node's info or initialising a node).
    pub fn for_endpoint(&self, endpoint: &str) -> Result<Client, ClientError> {
        let node = self.nodes().into_iter().find(|n| n.endpoint() == endpoint).ok_or_else(|| {
            ClientError::InvalidUse(format!("{endpoint:?} is not one of the client's endpoints"))
        })?;
        Ok(Client {
            inner: Arc::new(Inner {
                nodes: RwLock::new(vec![node]),
                configured: 1,
                discovery: None,
                next: AtomicUsize::new(0),
                request_timeout: self.inner.request_timeout,
                retries: self.inner.retries,
            }),
        })
    }

    /// Looks up the cluster's members (`GetClusterInfo`) and uses their client endpoints
    /// besides the configured ones: members new to the client are added, discovered nodes the
    /// cluster no longer lists are dropped (sessions open on them keep their node), and the
    /// configured endpoints always stay, first. Returns the endpoints now in use. Without
    /// `discover` (or without `trust_anchor`) the list is the configured one and nothing is
    /// asked.
    pub async fn refresh_nodes(&self) -> Result<Vec<String>, ClientError> {
        let Some(discovery) = &self.inner.discovery else { return Ok(self.endpoints()) };
        *discovery.looked_up.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        let info = self.cluster_info().await?;
        let listed: Vec<&str> =
            info.hsms.iter().map(|m| m.client_address.as_str()).filter(|a| !a.is_empty()).collect();
        if listed.is_empty() {
            // A node that has not started replicating lists nobody: keep what we have.
            return Ok(self.endpoints());
        }
        let mut nodes = self.inner.nodes.write().unwrap_or_else(PoisonError::into_inner);
        let mut next: Vec<Arc<Node>> = nodes[..self.inner.configured].to_vec();
        for address in listed {
            if next.iter().any(|n| n.is_at(address)) {
                continue;
            }
            if let Some(known) = nodes.iter().find(|n| n.is_at(address)) {
                next.push(known.clone());
            } else if let Ok(node) = new_node(address, &discovery.tls, discovery.connect_timeout) {
                // An address the client cannot use (not host:port) is passed over, not fatal.
                next.push(node);
            }
        }
        *nodes = next;
        Ok(nodes.iter().map(|n| n.endpoint().to_owned()).collect())
    }

    /// Refreshes the node list when discovery is on and the last look-up is older than a
    /// minute, within a short budget. A failed look-up keeps the list as it is: it is a hint,
    /// and the call that follows reports any real trouble itself.
    async fn refresh_if_due(&self) {
        let Some(discovery) = &self.inner.discovery else { return };
        let due = discovery
            .looked_up
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none_or(|t| t.elapsed() >= REFRESH_EVERY);
        if due {
            let _ = tokio::time::timeout(REFRESH_BUDGET, self.refresh_nodes()).await;
        }
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

    /// Opens a session on the node with the least of this client's load (its sessions and
    /// waiting requests there), taking nodes in round-robin order among equals and passing over
    /// nodes that failed in the last few seconds. The session, its login and its session
    /// objects live on that node.
    pub async fn open_session(&self) -> Result<Session, ClientError> {
        self.refresh_if_due().await;
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
        spread: bool,
        attempt: F,
    ) -> Result<T, ClientError>
    where
        F: Fn(Arc<Node>) -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let order = self.order(spread);
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

    /// The nodes in the order to try them: for cluster calls, configured order (then the
    /// discovered nodes); for sessions, least load first, round-robin among equals.
    /// Quarantined nodes go last either way.
    fn order(&self, spread: bool) -> Vec<Arc<Node>> {
        let nodes = self.nodes();
        let start =
            if spread { self.inner.next.fetch_add(1, Ordering::Relaxed) % nodes.len().max(1) } else { 0 };
        let rotated = nodes.iter().cycle().skip(start).take(nodes.len());
        let (mut healthy, quarantined): (Vec<_>, Vec<_>) =
            rotated.cloned().partition(|n| !n.is_quarantined());
        if spread {
            // Stable: equal loads keep their round-robin order.
            healthy.sort_by_key(|n| n.load());
        }
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
        let _busy = node.busy();
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

/// A node for `endpoint` (`host:port`), not yet connected.
fn new_node(
    endpoint: &str,
    tls: &Arc<rustls::ClientConfig>,
    connect_timeout: Duration,
) -> Result<Arc<Node>, ClientError> {
    let (host, port) = parse_endpoint(endpoint).map_err(|reason| ClientError::Config {
        path: Default::default(),
        key: "endpoints".into(),
        reason,
    })?;
    let connector = NodeConnector::new(&host, port, tls.clone())?;
    Ok(Node::new(endpoint.to_owned(), connector, connect_timeout))
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

    /// A client of three loopback endpoints, trusted by a made-up fingerprint (never connected).
    fn three_endpoints() -> Client {
        Client::new(&pinned_config()).expect("client")
    }

    fn pinned_config() -> ClientConfig {
        let endpoints = (1..=3).map(|p| format!("127.0.0.1:{p}")).collect();
        let mut config = ClientConfig::new(endpoints);
        config.server_fingerprint = Some(format!("SHA256:{}", ["00"; 32].join(":")));
        config
    }

    fn first_choice(client: &Client) -> String {
        client.order(true)[0].endpoint().to_owned()
    }

    #[test]
    fn sessions_go_to_the_least_loaded_node_and_round_robin_among_equals() {
        let client = three_endpoints();
        let nodes = client.nodes();
        let mut firsts: Vec<String> = (0..3).map(|_| first_choice(&client)).collect();
        firsts.sort();
        assert_eq!(firsts, client.endpoints(), "equal loads: each node first in turn");

        // Two sessions on node 1 and one on node 2: node 3 is chosen, every time.
        let held = [nodes[0].hold(), nodes[0].hold(), nodes[1].hold()];
        for _ in 0..4 {
            assert_eq!(first_choice(&client), "127.0.0.1:3");
        }
        let order: Vec<String> = client.order(true).iter().map(|n| n.endpoint().to_owned()).collect();
        assert_eq!(order, ["127.0.0.1:3", "127.0.0.1:2", "127.0.0.1:1"]);
        // A waiting request counts too; a closed session does not.
        let busy = nodes[2].busy();
        let _ = nodes[2].busy();
        held[2].release();
        held[2].release();
        assert_eq!(nodes[1].load(), 0);
        assert_eq!(first_choice(&client), "127.0.0.1:2");
        drop(busy);
        // A node that just failed goes last whatever its load.
        nodes[2].record(Err(&failure(unavailable("127.0.0.1:3"), Reach::NotSent)));
        let order: Vec<String> = client.order(true).iter().map(|n| n.endpoint().to_owned()).collect();
        assert_eq!(order.last().map(String::as_str), Some("127.0.0.1:3"));
        drop(held);
        assert!(nodes.iter().all(|n| n.load() == 0));
        // Cluster calls keep the configured order (after the quarantined node moves back).
        let order: Vec<String> = client.order(false).iter().map(|n| n.endpoint().to_owned()).collect();
        assert_eq!(order, ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]);
    }

    #[test]
    fn a_fingerprint_client_does_not_discover_and_endpoints_compare_by_host_and_port() {
        let client = three_endpoints();
        assert!(client.inner.discovery.is_none(), "a pinned certificate vouches for one node only");
        let node = &client.nodes()[0];
        assert!(node.is_at("127.0.0.1:1"));
        assert!(!node.is_at("127.0.0.1:2"));
        assert!(!node.is_at("127.0.0.2:1"));
        let tls = rustls_config(&pinned_config()).expect("tls");
        let localhost = new_node("LocalHost:2223", &tls, Duration::from_secs(1));
        assert!(localhost.expect("node").is_at("localhost"), "the default port is 2223");
    }

    #[test]
    fn a_lost_session_node_is_named_with_the_reason() {
        let e = bound_to_node(unavailable("10.0.0.3:2223"));
        assert!(e.to_string().contains("10.0.0.3:2223"), "{e}");
        assert!(e.to_string().contains("not moved to another"), "{e}");
    }
}
