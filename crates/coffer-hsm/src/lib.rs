//! # coffer-hsm
//!
//! The HSM as a deterministic state machine: objects with PKCS#11 attribute rules, users and
//! roles, the permission table, login lockout, and the audit events every management
//! operation emits. It does no I/O of its own.
#![forbid(unsafe_code)]

pub mod error;

pub use error::{HsmError, Result};
