//! # coffer-hsm
//!
//! The HSM as a deterministic state machine: objects with PKCS#11 attribute rules, users and
//! roles, the permission table, login lockout, and the audit events every management
//! operation emits. It does no I/O of its own.
#![forbid(unsafe_code)]

pub mod error;

pub use error::{HsmError, Result};
pub mod journal;
pub mod limits;
pub mod permission;
pub mod role;
pub mod user;

pub use journal::{Change, Journal, JournalError, MemoryJournal, RecordKey};
pub use limits::{Limits, SessionLimits};
pub use permission::Operation;
pub use role::Role;
pub use user::User;

pub mod attribute;
mod index;
pub mod object;
pub mod objects;
pub mod template;

pub use attribute::{Attribute, AttributeType, AttributeValue, Attributes, Template};
pub use object::{KeyFacts, Object, ObjectClass, ObjectHandle, Origin, Usage};
pub use objects::Objects;
pub use template::{
    AttrRead, apply_unwrap_template, check_destroy, check_modify, check_usage, check_wrap,
    new_object_attributes, read_attributes,
};

pub mod command;
pub mod machine;

pub use command::{Actor, Command, CreateKind, LoginCheck};
pub use machine::{Cluster, ClusterState, HsmState, Outcome};
pub mod session;
pub use session::{Session, SessionObject, Sessions};
pub mod material;
pub mod mtls;
pub use mtls::{MtlsSettings, TrustAnchor};
pub mod ops;
pub use ops::{Hsm, KeyMaterial, LocalChange, Prepared};
