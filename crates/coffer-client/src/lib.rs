//! # coffer-client
//!
//! The Rust SDK of Coffer, used by the `coffer` CLI and the PKCS#11 library: one client
//! configuration file ([`ClientConfig`], named by `COFFER_CONFIG`), TLS 1.3 to the nodes, an
//! async [`Client`] and [`Session`], and a [`blocking`] wrapper for code without a runtime.
//!
//! ```no_run
//! # async fn example() -> Result<(), coffer_client::ClientError> {
//! use coffer_client::{Client, ClientConfig, v1};
//! let config = ClientConfig::from_env()?;
//! let client = Client::connect(&config).await?;
//! let session = client.open_session().await?;
//! session.login_as("alice", v1::Role::CryptoUser, b"a password read from a prompt").await?;
//! let random = session.random_bytes(32).await?;
//! # let _ = random; Ok(()) }
//! ```
//!
//! ## Trust
//!
//! Every node is verified: against `trust_anchor` (the customer CA; the node's certificate
//! must name the endpoint's IP address or host), or, when no anchor is configured, by
//! `server_fingerprint`, the SHA-256 of one exact certificate (a node's bootstrap certificate
//! before the cluster is initialised). There is no unverified mode. `client_cert` and
//! `client_key` are presented for mutual TLS.
//!
//! ## Choice of node, timeouts and retries
//!
//! - The nodes are the configured `endpoints` and, with `discover` (the default, with a
//!   `trust_anchor`), the client endpoints of the members the cluster lists
//!   (`GetClusterInfo`): looked up on connecting and again, as sessions open, once the list
//!   is a minute old ([`Client::refresh_nodes`] does it at once). One configured node is
//!   enough to reach them all; members that leave the cluster are dropped from the list.
//! - A new session goes to the node with the least of this client's load (its open sessions
//!   and waiting requests there), round-robin among equals, passing over nodes that failed in
//!   the last few seconds. Writes may go to any node: a follower hands them to the leader, and
//!   answers once the cluster has committed them and it has applied them itself.
//! - A session lives on the node that opened it (its login and session objects are there):
//!   its calls always go to that node and are never moved; when the node is lost they fail
//!   with [`ClientError::Unavailable`] naming it, and the caller opens a new session.
//! - Cluster calls ([`Client::cluster_info`], [`Client::cluster_csr`],
//!   [`Client::initialize_cluster`]) go to the first node that answers, configured nodes
//!   first, in order; set `discover = false` to ask one particular node.
//! - Connecting (TCP and TLS) is bounded by `connect_timeout_ms`; every request by
//!   `request_timeout_ms` (also sent to the node as the gRPC deadline).
//! - A failure is retried, after a short backoff (50 ms doubling to 800 ms), up to `retries`
//!   extra times, only when that is safe:
//!   - *nothing was sent* (the connection could not be made): every call is retried; calls
//!     that may go to any node move to the next node, and a node that cannot be connected to
//!     on the first pass over the list does not use up a retry;
//!   - *the request may have been applied* (the connection broke, the answer timed out, the
//!     node said `UNAVAILABLE`): only calls that are safe to repeat are retried: reads
//!     (`GetClusterInfo`, `GetClusterCsr`, `ListUsers`, `FindObjects`, `GetAttributes`,
//!     `GetKeyUsers`, `ExportPublicKey`, `ListTrustAnchors`), crypto operations (`Sign`,
//!     `Verify`, `Encrypt`, `Decrypt`, `WrapKey`, `Digest`, `GenerateRandom`) and
//!     `OpenSession` (a fresh session; at worst an unused one is left to the node's idle
//!     timeout). Writes (user, key and trust-anchor changes, `InitializeCluster`,
//!     `CloseSession`, `Logout`) are not, and neither is `Login`, because a failed attempt
//!     counts toward the account's lockout. Their error says the outcome is unknown
//!     ([`ClientError::Timeout`] or [`ClientError::Unavailable`]).
//!   - the HSM refused ([`ClientError::Hsm`]), TLS failed, or the node answered another gRPC
//!     error: never retried.
//! - Streamed ciphers are not retried (their input is consumed as it is sent).
//!
//! ## Errors
//!
//! [`ClientError::Hsm`] carries the node's own PKCS#11 code (`ckr`, `ckr_name`) from the status
//! metadata `coffer-ckr` / `coffer-ckr-name`. No error message contains a password, a session
//! token or key bytes.
#![forbid(unsafe_code)]

mod batched_write;
pub mod blocking;
mod client;
mod config;
mod error;
mod node;
mod session;
mod tls;

pub use batched_write::Batched;
pub use client::Client;
pub use coffer_proto::v1;
pub use config::{
    CONFIG_ENV, ClientConfig, DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_REQUEST_TIMEOUT_MS, DEFAULT_RETRIES,
    MAX_SPIN_WAIT_US,
};
pub use error::ClientError;
pub use session::{CipherOutput, CipherStream, STREAM_CHUNK, Session};
pub use tls::{ClientCertPem, NodeConnector, ServerTrust, rustls_client_config};

#[cfg(test)]
mod tests {
    fn shareable<T: Send + Sync + 'static>() {}
    fn cheap_clone<T: Clone>() {}

    #[test]
    fn clients_and_sessions_can_be_shared_between_threads() {
        shareable::<crate::Client>();
        shareable::<crate::Session>();
        shareable::<crate::CipherStream>();
        shareable::<crate::blocking::Client>();
        shareable::<crate::blocking::Session>();
        shareable::<crate::ClientError>();
        cheap_clone::<crate::Client>();
        cheap_clone::<crate::blocking::Client>();
    }
}
