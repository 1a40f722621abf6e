//! # coffer-audit
//!
//! The HSM audit log: append-only, one per node, hash-chained and signed.
#![forbid(unsafe_code)]

pub mod event;

pub use event::{Event, Opcode, UserType};
