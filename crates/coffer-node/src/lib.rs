//! # coffer-node
//!
//! The infrastructure of `cofferd`, the HSM node daemon: the cluster's certificates
//! ([`pki`]), TLS 1.3 configurations with runtime-managed client trust anchors ([`tls`]),
//! the network allow-list checked before TLS ([`allowlist`]), the node's configuration
//! ([`config`]), Prometheus metrics ([`metrics`]) and the HTTP health and metrics endpoint
//! ([`http`]); and the daemon itself: the node's state and its HSM ([`node`], [`node_keys`],
//! [`journal`]), the gRPC service ([`service`], [`convert`]) and the server ([`server`],
//! which keeps a worker awake between a client's calls: [`busy_poll`]).
//!
//! Transports only translate: no policy and no cryptography of its own lives here. Keys come
//! from `coffer-crypto`; TLS and certificate signatures run on aws-lc-rs, the project's one
//! provider.
#![forbid(unsafe_code)]

pub mod allowlist;
pub mod busy_poll;
pub mod clone;
pub mod config;
pub mod convert;
pub mod http;
pub mod journal;
pub mod membership;
pub mod metrics;
pub mod node;
pub mod node_keys;
pub mod pki;
pub mod raft;
pub mod server;
pub mod service;
pub mod tls;

pub use node::{Node, NodeError, StartError};
pub use server::{RunningNode, ServerOptions};
