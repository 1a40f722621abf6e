//! # coffer-proto
//!
//! The gRPC protocol a Coffer HSM node serves (package `coffer.hsm.v1`), generated from
//! `proto/coffer/hsm/v1/hsm.proto` at build time by protox and tonic-prost-build.
//!
//! Errors travel as gRPC statuses whose metadata carries the PKCS#11 return value:
//! [`CKR_METADATA_KEY`] (decimal `CK_RV`) and [`CKR_NAME_METADATA_KEY`] (`CKR_*` name).
#![forbid(unsafe_code)]

/// Metadata key of a failed call's PKCS#11 return value, as a decimal number.
pub const CKR_METADATA_KEY: &str = "coffer-ckr";
/// Metadata key of a failed call's PKCS#11 return value name (`CKR_PIN_INCORRECT`).
pub const CKR_NAME_METADATA_KEY: &str = "coffer-ckr-name";
/// The default port of the node API, as CloudHSM's client SDK 5 uses.
pub const DEFAULT_PORT: u16 = 2223;

/// Generated messages and service stubs of `coffer.hsm.v1`.
#[allow(missing_docs, missing_debug_implementations, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("coffer.hsm.v1");
}

/// Generated messages and service stubs of `coffer.peer.v1`, the protocol between the nodes
/// of one cluster (raft replication, forwarded writes, cloning).
#[allow(missing_docs, missing_debug_implementations, clippy::all, clippy::pedantic)]
pub mod peer {
    tonic::include_proto!("coffer.peer.v1");
}

/// The default peer port (raft replication and cloning between nodes).
pub const DEFAULT_PEER_PORT: u16 = 2224;

pub use v1::hsm_client::HsmClient;
pub use v1::hsm_server::{Hsm, HsmServer};
