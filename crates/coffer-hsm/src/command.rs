//! Commands: every change to the replicated state, as data.
//!
//! A command carries everything random the change needs (salted password hashes, object
//! handles, sealed key material with its IV), produced on the request side by the prepare
//! step ([`crate::ops`]). Applying it ([`crate::HsmState::apply`]) is then a pure function of
//! the state and the command, so every node that applies the same log reaches the same state.
//!
//! A command names its caller ([`Actor`]: the session on the node that took the request and
//! the user logged in there), never a role: the role is read from the state when the command
//! is applied, because it may have changed since (the user deleted, the unactivated admin
//! activated). Session objects never appear in a command; they are node-local.
//!
//! Commands serialise with serde; [`Command::to_bytes`] and [`Command::from_bytes`] use
//! postcard, the encoding of the replication log.

use coffer_crypto::PasswordHash;
use serde::{Deserialize, Serialize};

use crate::attribute::Template;
use crate::error::{HsmError, Result};
use crate::mtls::TrustAnchor;
use crate::object::{Object, ObjectHandle};
use crate::role::Role;

/// Who asked: the session (on the node that took the request) and the user logged in on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub session: u64,
    pub user: String,
}

/// What a password check found on the request side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LoginCheck {
    /// The password matched the hash of this password generation.
    Correct { password_generation: u64 },
    /// The password did not match (or the user does not exist).
    Incorrect,
}

/// How new token objects came to be; it decides the audit opcode and what is re-checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CreateKind {
    /// `C_GenerateKey` (`CN_GENERATE_KEY`).
    Generate,
    /// `C_GenerateKeyPair` (`CN_GENERATE_KEY_PAIR`).
    GenerateKeyPair,
    /// `C_CreateObject`, import (`CN_CREATE_OBJECT`).
    Import,
    /// `C_UnwrapKey` with this unwrapping key (`CN_UNWRAP_KEY`).
    Unwrap { unwrapping_key: ObjectHandle },
    /// `C_DeriveKey` from this base key (`CN_DERIVE_KEY`).
    Derive { base_key: ObjectHandle },
    /// `C_CopyObject` of this source object (`CN_CREATE_OBJECT`: CloudHSM has no copy opcode).
    Copy { source: ObjectHandle },
}

/// A change to the replicated state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// InitializeCluster: stores the signed cluster certificate and the trust anchor, and
    /// creates the unactivated admin (`admin`/`password`) and the appliance user.
    /// UNINITIALIZED → INITIALIZED.
    InitializeCluster {
        certificate_pem: String,
        trust_anchor_pem: String,
        preco_password: PasswordHash,
        appliance_password: PasswordHash,
    },
    /// The result of a login attempt: resets the failed-login counter or counts a failure.
    Login { session: u64, user: String, check: LoginCheck },
    /// An admin creates a user.
    CreateUser { actor: Actor, name: String, role: Role, password: PasswordHash },
    /// An admin deletes a user.
    DeleteUser { actor: Actor, name: String },
    /// A user changes their own password, or an admin anyone's (which also unlocks). For the
    /// unactivated admin changing its own password, this is activation.
    ChangePassword { actor: Actor, name: String, password: PasswordHash },
    /// New token objects, fully built, secrets sealed under the domain key.
    CreateObjects { actor: Actor, kind: CreateKind, objects: Vec<Object> },
    /// `C_SetAttributeValue` on a token object.
    SetAttributes { actor: Actor, handle: ObjectHandle, template: Template },
    /// The owner shares a key with a crypto user (`share: true`) or stops sharing it.
    Share { actor: Actor, handle: ObjectHandle, user: String, share: bool },
    /// The owner deletes a token object (`CN_TOMBSTONE_OBJECT`).
    DestroyObject { actor: Actor, handle: ObjectHandle },
    /// An admin registers a client trust anchor for mutual TLS (`CN_CERT_AUTH_STORE_CERT`).
    /// The node checked the certificate and computed its fingerprint.
    RegisterTrustAnchor { actor: Actor, anchor: TrustAnchor },
    /// An admin removes a client trust anchor, named by its fingerprint.
    DeregisterTrustAnchor { actor: Actor, fingerprint: String },
    /// An admin turns mandatory client certificates on or off.
    SetMtlsEnforcement { actor: Actor, enforce: bool },
}

impl Command {
    /// The postcard encoding (the replication log's).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        postcard::to_allocvec(self)
            .map_err(|e| HsmError::AttributeValueInvalid(format!("command encoding: {e}")))
    }

    /// Decodes a command; malformed bytes are refused, never panicked on.
    pub fn from_bytes(bytes: &[u8]) -> Result<Command> {
        postcard::from_bytes(bytes)
            .map_err(|e| HsmError::AttributeValueInvalid(format!("command decoding: {e}")))
    }

    /// The session the command came from (0 for cluster initialisation).
    pub fn session(&self) -> u64 {
        match self {
            Self::InitializeCluster { .. } => 0,
            Self::Login { session, .. } => *session,
            Self::CreateUser { actor, .. }
            | Self::DeleteUser { actor, .. }
            | Self::ChangePassword { actor, .. }
            | Self::CreateObjects { actor, .. }
            | Self::SetAttributes { actor, .. }
            | Self::Share { actor, .. }
            | Self::DestroyObject { actor, .. }
            | Self::RegisterTrustAnchor { actor, .. }
            | Self::DeregisterTrustAnchor { actor, .. }
            | Self::SetMtlsEnforcement { actor, .. } => actor.session,
        }
    }
}
