//! The replicated HSM state and the one function that changes it.
//!
//! [`HsmState`] holds what every node must agree on: the cluster's lifecycle state with its
//! certificate and trust anchor, the limits, the users and the token objects. It changes only
//! through [`HsmState::apply`], which is deterministic: it reads nothing but the state and the
//! [`Command`] (randomness was produced before the command), so every node applying the same
//! log reaches byte-identical state ([`HsmState::snapshot_bytes`]).
//!
//! `apply` works in three steps:
//! 1. *Plan*: re-validate everything that depends on state (the command may be applied later,
//!    on another node: the caller may have been deleted, the key destroyed, the limit reached),
//!    check the permission table and ownership, and compute the audit events and the list of
//!    mutations. Planning touches nothing.
//! 2. *Journal*: hand the events and the record changes to [`Journal::record`]. If that fails
//!    (the audit log or the store cannot write), `apply` returns `JournalFailed` and memory is
//!    untouched: the HSM fails closed.
//! 3. *Commit*: perform the mutations in memory. They were all checked in step 1.
//!
//! A refused command records its audit event (the response is the `CKR_*`) and changes
//! nothing, except a failed login, which counts the failure: that is a state change like any
//! other, and it is what makes the lockout cluster-wide.

use std::collections::BTreeMap;

use coffer_audit::{Event, Opcode};
use coffer_crypto::{HashAlg, Module, PasswordHash};
use serde::{Deserialize, Serialize};

use crate::attribute::AttributeType;
use crate::command::{Actor, Command, CreateKind, LoginCheck};
use crate::error::{HsmError, Result};
use crate::journal::{Change, Journal, RecordKey};
use crate::limits::{Limits, MIN_PBKDF2_ITERATIONS};
use crate::mtls::{MtlsSettings, check_new_anchor, normalize_fingerprint};
use crate::object::{Object, ObjectHandle};
use crate::objects::Objects;
use crate::permission::{self, Operation};
use crate::role::{Role, user_type_of};
use crate::template::{check_destroy, check_modify, check_usage};
use crate::user::{APPLIANCE_NAME, PRECO_NAME, SALT_LEN, User, UserSummary, normalize_name};

/// Names of the meta records.
pub mod meta {
    /// The cluster's lifecycle state and certificates ([`super::Cluster`]).
    pub const CLUSTER: &str = "cluster";
    /// The limits ([`crate::Limits`]).
    pub const LIMITS: &str = "limits";
    /// The object table's next handle (handles are never reused).
    pub const NEXT_HANDLE: &str = "next_handle";
    /// The client mutual-TLS settings ([`crate::MtlsSettings`]).
    pub const MTLS: &str = "mtls";
}

/// Handles with this bit set name session objects; token objects never have it.
pub const SESSION_HANDLE_BIT: u64 = 1 << 63;

/// Whether a handle is in the session-object range.
pub fn is_session_handle(handle: ObjectHandle) -> bool {
    handle.0 & SESSION_HANDLE_BIT != 0
}

/// The cluster's lifecycle state, as CloudHSM names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClusterState {
    /// Created; no certificate yet.
    Uninitialized,
    /// Certificate and trust anchor stored; the unactivated admin must change its password.
    Initialized,
    /// Activated: in use.
    Active,
}

impl ClusterState {
    /// The CloudHSMv2 API name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Uninitialized => "UNINITIALIZED",
            Self::Initialized => "INITIALIZED",
            Self::Active => "ACTIVE",
        }
    }
}

/// The cluster's lifecycle state and the certificates handed back at initialisation (PEM,
/// opaque here: the node and the clients parse and verify them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cluster {
    pub state: ClusterState,
    pub certificate_pem: Option<String>,
    pub trust_anchor_pem: Option<String>,
}

/// What a successful command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    ClusterInitialized,
    /// The password was right: the node that took the request binds the session to the user.
    LoggedIn {
        session: u64,
        user: String,
        role: Role,
    },
    UserCreated {
        name: String,
        role: Role,
    },
    UserDeleted {
        name: String,
    },
    /// `activated`: the unactivated admin became an admin and the cluster is ACTIVE.
    PasswordChanged {
        name: String,
        activated: bool,
    },
    ObjectsCreated {
        handles: Vec<ObjectHandle>,
    },
    AttributesChanged {
        handle: ObjectHandle,
        changed: usize,
    },
    ShareChanged {
        handle: ObjectHandle,
        user: String,
        changed: bool,
    },
    /// Nodes drop any opened copy of the key they cache.
    ObjectDestroyed {
        handle: ObjectHandle,
    },
    /// The client mTLS settings changed: every node reloads its TLS client verifier.
    MtlsChanged,
}

/// One in-memory change, checked during planning.
#[derive(Debug)]
enum Mutation {
    PutCluster(Cluster),
    PutLimits(Limits),
    PutMtls(MtlsSettings),
    PutUser(User),
    DeleteUser(String),
    InsertObject(Object),
    ReplaceObject(Object),
    RemoveObject(ObjectHandle),
}

/// What applying a command will do.
#[derive(Debug)]
struct Plan {
    events: Vec<Event>,
    mutations: Vec<Mutation>,
    result: Result<Outcome>,
}

/// The audit context of one command: who asked and the main opcode.
struct Audit<'a> {
    opcode: Opcode,
    session: u64,
    user: Option<&'a str>,
    role: Option<Role>,
    target: Option<&'a str>,
    objects: Vec<u64>,
}

impl Audit<'_> {
    fn event(&self, opcode: Opcode, response: Result<(), &HsmError>) -> Event {
        let (code, text) = match response {
            Ok(()) => (0, "SUCCESS".to_owned()),
            Err(e) => (e.ck_rv(), e.ck_rv_name().to_owned()),
        };
        Event {
            opcode,
            session: self.session,
            user: self.user.map(str::to_owned),
            user_type: user_type_of(self.role),
            target_user: self.target.map(str::to_owned),
            objects: self.objects.clone(),
            response: code,
            response_text: text,
        }
    }

    fn success(&self, mutations: Vec<Mutation>, outcome: Outcome) -> Plan {
        Plan { events: vec![self.event(self.opcode, Ok(()))], mutations, result: Ok(outcome) }
    }
}

/// The replicated state of the HSM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HsmState {
    cluster: Cluster,
    limits: Limits,
    users: BTreeMap<String, User>,
    objects: Objects,
    mtls: MtlsSettings,
}

impl HsmState {
    /// A new, UNINITIALIZED cluster with these limits.
    pub fn new(limits: Limits) -> Result<HsmState> {
        limits.validate()?;
        Ok(HsmState {
            cluster: Cluster {
                state: ClusterState::Uninitialized,
                certificate_pem: None,
                trust_anchor_pem: None,
            },
            limits,
            users: BTreeMap::new(),
            objects: Objects::with_max_objects(limits.max_objects as usize),
            mtls: MtlsSettings::default(),
        })
    }

    /// The cluster's lifecycle state and certificates.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// The limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// A user by name (any case).
    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.get(&name.to_ascii_lowercase())
    }

    /// Every user, in name order.
    pub fn users(&self) -> impl Iterator<Item = &User> {
        self.users.values()
    }

    /// `user list`: names, roles and lock state, never hashes.
    pub fn list_users(&self) -> Vec<UserSummary> {
        self.users.values().map(User::summary).collect()
    }

    /// The token objects.
    pub fn objects(&self) -> &Objects {
        &self.objects
    }

    /// The client mutual-TLS settings.
    pub fn mtls(&self) -> &MtlsSettings {
        &self.mtls
    }

    /// The current role of a user, if they exist.
    pub fn role_of(&self, user: &str) -> Option<Role> {
        self.users.get(user).map(|u| u.role)
    }

    /// The whole state, postcard-encoded. Deterministic: equal states give equal bytes.
    pub fn snapshot_bytes(&self) -> Result<Vec<u8>> {
        postcard::to_allocvec(self).map_err(|e| HsmError::SealedObjectInvalid(format!("state encoding: {e}")))
    }

    /// The state from [`snapshot_bytes`](Self::snapshot_bytes); malformed input is refused.
    pub fn from_snapshot(bytes: &[u8]) -> Result<HsmState> {
        let mut state: HsmState = postcard::from_bytes(bytes)
            .map_err(|e| HsmError::SealedObjectInvalid(format!("state snapshot does not decode: {e}")))?;
        state.limits.validate()?;
        state.objects.set_max_objects(state.limits.max_objects as usize);
        Ok(state)
    }

    /// SHA-256 of the snapshot: two nodes with equal digests hold equal state.
    pub fn state_digest(&self, module: &Module) -> Result<Vec<u8>> {
        Ok(module.digest(HashAlg::Sha256, &self.snapshot_bytes()?)?)
    }

    /// Rebuilds the state from the records a store holds (what [`Journal::record`] was given).
    /// Without a cluster record the state is a fresh UNINITIALIZED one with `default_limits`.
    pub fn from_records(
        users: &[(String, Vec<u8>)],
        objects: &[(u64, Vec<u8>)],
        meta: &[(String, Vec<u8>)],
        default_limits: Limits,
    ) -> Result<HsmState> {
        let mut state = HsmState::new(default_limits)?;
        let mut next_handle = 1u64;
        for (key, bytes) in meta {
            match key.as_str() {
                meta::CLUSTER => state.cluster = decode(bytes, "cluster record")?,
                meta::LIMITS => state.limits = decode(bytes, "limits record")?,
                meta::NEXT_HANDLE => next_handle = decode(bytes, "next-handle record")?,
                meta::MTLS => state.mtls = decode(bytes, "mtls record")?,
                other => return Err(HsmError::SealedObjectInvalid(format!("unknown meta record {other:?}"))),
            }
        }
        state.limits.validate()?;
        for (name, bytes) in users {
            let user: User = decode(bytes, "user record")?;
            if &user.name != name {
                return Err(HsmError::SealedObjectInvalid(format!(
                    "user record {name:?} holds another user"
                )));
            }
            state.users.insert(user.name.clone(), user);
        }
        let mut list = Vec::with_capacity(objects.len());
        for (handle, bytes) in objects {
            let object: Object = decode(bytes, "object record")?;
            if object.handle().0 != *handle {
                return Err(HsmError::SealedObjectInvalid(format!(
                    "object record {handle:#x} holds another object"
                )));
            }
            list.push(object);
        }
        state.objects = objects_with_next_handle(list, next_handle)?;
        state.objects.set_max_objects(state.limits.max_objects as usize);
        Ok(state)
    }

    /// Every record a store holding this state keeps, as puts: what [`from_records`] reads back
    /// (cluster, limits, next handle, mTLS settings, users, objects). A node that installs a
    /// replicated snapshot rewrites its store with these.
    ///
    /// [`from_records`]: Self::from_records
    pub fn records(&self) -> Result<Vec<Change>> {
        let mut out = Vec::with_capacity(4 + self.users.len() + self.objects.len());
        let meta = |name: &str, bytes| Change::Put(RecordKey::Meta(name.into()), bytes);
        out.push(meta(meta::CLUSTER, encode(&self.cluster)?));
        out.push(meta(meta::LIMITS, encode(&self.limits)?));
        out.push(meta(meta::NEXT_HANDLE, encode(&self.objects.next_handle().0)?));
        out.push(meta(meta::MTLS, encode(&self.mtls)?));
        for user in self.users.values() {
            out.push(Change::Put(RecordKey::User(user.name.clone()), encode(user)?));
        }
        for object in self.objects.iter() {
            out.push(Change::Put(RecordKey::Object(object.handle().0), encode(object)?));
        }
        Ok(out)
    }

    /// Applies a command: plan, journal, commit (see the module documentation).
    pub fn apply(&mut self, cmd: &Command, journal: &mut dyn Journal) -> Result<Outcome> {
        let plan = self.plan(cmd);
        let changes = self.changes_for(&plan.mutations)?;
        journal.record(&plan.events, &changes).map_err(|e| HsmError::JournalFailed(e.0))?;
        for mutation in plan.mutations {
            self.commit(mutation);
        }
        plan.result
    }

    fn plan(&self, cmd: &Command) -> Plan {
        let audit = self.audit_context(cmd);
        match self.plan_command(cmd, &audit) {
            Ok(plan) => plan,
            Err(e) => Plan {
                events: vec![audit.event(audit.opcode, Err(&e))],
                mutations: Vec::new(),
                result: Err(e),
            },
        }
    }

    fn audit_context<'a>(&self, cmd: &'a Command) -> Audit<'a> {
        let actor_audit =
            |actor: &'a Actor, opcode: Opcode, target: Option<&'a str>, objects: Vec<u64>| Audit {
                opcode,
                session: actor.session,
                user: Some(actor.user.as_str()),
                role: self.role_of(&actor.user),
                target,
                objects,
            };
        match cmd {
            Command::InitializeCluster { .. } => Audit {
                opcode: Opcode::CN_INIT_TOKEN,
                session: 0,
                user: None,
                role: None,
                target: None,
                objects: vec![],
            },
            Command::Login { session, user, .. } => Audit {
                opcode: Opcode::CN_LOGIN,
                session: *session,
                user: Some(user.as_str()),
                role: self.role_of(user),
                target: None,
                objects: vec![],
            },
            Command::CreateUser { actor, name, role, .. } => {
                let opcode = if *role == Role::Admin { Opcode::CN_CREATE_CO } else { Opcode::CN_CREATE_USER };
                actor_audit(actor, opcode, Some(name), vec![])
            }
            Command::DeleteUser { actor, name } => {
                actor_audit(actor, Opcode::CN_DELETE_USER, Some(name), vec![])
            }
            Command::ChangePassword { actor, name, .. } => {
                actor_audit(actor, Opcode::CN_CHANGE_PSWD, Some(name), vec![])
            }
            Command::CreateObjects { actor, kind, objects } => {
                let handles = objects.iter().map(|o| o.handle().0).collect();
                actor_audit(actor, create_opcode(*kind), None, handles)
            }
            Command::SetAttributes { actor, handle, .. } => {
                actor_audit(actor, Opcode::CN_MODIFY_OBJECT, None, vec![handle.0])
            }
            Command::Share { actor, handle, user, .. } => {
                actor_audit(actor, Opcode::CN_SHARE_OBJECT, Some(user), vec![handle.0])
            }
            Command::DestroyObject { actor, handle } => {
                actor_audit(actor, Opcode::CN_TOMBSTONE_OBJECT, None, vec![handle.0])
            }
            Command::RegisterTrustAnchor { actor, .. }
            | Command::DeregisterTrustAnchor { actor, .. }
            | Command::SetMtlsEnforcement { actor, .. } => {
                actor_audit(actor, Opcode::CN_CERT_AUTH_STORE_CERT, None, vec![])
            }
        }
    }

    fn plan_command(&self, cmd: &Command, audit: &Audit<'_>) -> Result<Plan> {
        match cmd {
            Command::InitializeCluster {
                certificate_pem,
                trust_anchor_pem,
                preco_password,
                appliance_password,
            } => self.plan_initialize(
                audit,
                certificate_pem,
                trust_anchor_pem,
                preco_password,
                appliance_password,
            ),
            Command::Login { session, user, check } => self.plan_login(audit, *session, user, *check),
            Command::CreateUser { actor, name, role, password } => {
                self.plan_create_user(audit, actor, name, *role, password)
            }
            Command::DeleteUser { actor, name } => self.plan_delete_user(audit, actor, name),
            Command::ChangePassword { actor, name, password } => {
                self.plan_change_password(audit, actor, name, password)
            }
            Command::CreateObjects { actor, kind, objects } => {
                self.plan_create_objects(audit, actor, *kind, objects)
            }
            Command::SetAttributes { actor, handle, template } => {
                self.plan_set_attributes(audit, actor, *handle, template)
            }
            Command::Share { actor, handle, user, share } => {
                self.plan_share(audit, actor, *handle, user, *share)
            }
            Command::DestroyObject { actor, handle } => self.plan_destroy(audit, actor, *handle),
            Command::RegisterTrustAnchor { actor, anchor } => self.plan_mtls(audit, actor, |mtls| {
                check_new_anchor(mtls, anchor)?;
                mtls.anchors.push(anchor.clone());
                Ok(())
            }),
            Command::DeregisterTrustAnchor { actor, fingerprint } => self.plan_mtls(audit, actor, |mtls| {
                let wanted = normalize_fingerprint(fingerprint)?;
                let before = mtls.anchors.len();
                mtls.anchors.retain(|a| a.fingerprint != wanted);
                if mtls.anchors.len() == before {
                    return Err(HsmError::AttributeValueInvalid(format!(
                        "no client trust anchor with fingerprint {wanted} is registered"
                    )));
                }
                if mtls.enforce && mtls.anchors.is_empty() {
                    return Err(HsmError::ActionProhibited(
                        "mutual TLS is enforced: the last trust anchor cannot be removed \
                             (turn enforcement off first)"
                            .into(),
                    ));
                }
                Ok(())
            }),
            Command::SetMtlsEnforcement { actor, enforce } => self.plan_mtls(audit, actor, |mtls| {
                if *enforce && mtls.anchors.is_empty() {
                    return Err(HsmError::ActionProhibited(
                        "register a client trust anchor before enforcing mutual TLS, \
                         or every client would be refused"
                            .into(),
                    ));
                }
                mtls.enforce = *enforce;
                Ok(())
            }),
        }
    }

    // ---- checks shared by the plans -------------------------------------------------------

    fn require_cluster(&self, allowed: &[ClusterState]) -> Result<()> {
        if allowed.contains(&self.cluster.state) {
            Ok(())
        } else {
            Err(HsmError::ClusterState(format!("the cluster is {}", self.cluster.state.name())))
        }
    }

    /// The caller's current role: the user must still exist.
    fn actor_role(&self, actor: &Actor) -> Result<Role> {
        self.role_of(&actor.user).ok_or(HsmError::NotLoggedIn)
    }

    /// Permission table, then the actor's role.
    fn authorize(&self, actor: &Actor, op: Operation) -> Result<Role> {
        let role = self.actor_role(actor)?;
        permission::check(Some(role), op)?;
        Ok(role)
    }

    /// A token object the actor owns (`ObjectHandleInvalid` if invisible, `NotPermitted` if
    /// only shared with them).
    fn owned_object(&self, actor: &Actor, handle: ObjectHandle) -> Result<&Object> {
        let object = self.objects.visible_to(handle, &actor.user)?;
        if object.owner() != actor.user {
            return Err(HsmError::NotPermitted(format!(
                "key {handle} is shared with {}; only its owner may manage it",
                actor.user
            )));
        }
        Ok(object)
    }

    // ---- cluster and users ----------------------------------------------------------------

    fn plan_initialize(
        &self,
        audit: &Audit<'_>,
        certificate_pem: &str,
        trust_anchor_pem: &str,
        preco_password: &PasswordHash,
        appliance_password: &PasswordHash,
    ) -> Result<Plan> {
        self.require_cluster(&[ClusterState::Uninitialized])?;
        for (what, pem) in [("cluster certificate", certificate_pem), ("trust anchor", trust_anchor_pem)] {
            if !pem.trim_start().starts_with("-----BEGIN CERTIFICATE-----") {
                return Err(HsmError::AttributeValueInvalid(format!("the {what} is not a PEM certificate")));
            }
        }
        check_password_hash(preco_password)?;
        check_password_hash(appliance_password)?;
        let cluster = Cluster {
            state: ClusterState::Initialized,
            certificate_pem: Some(certificate_pem.to_owned()),
            trust_anchor_pem: Some(trust_anchor_pem.to_owned()),
        };
        let preco = User::new(PRECO_NAME.into(), Role::UnactivatedAdmin, preco_password.clone());
        let appliance = User::new(APPLIANCE_NAME.into(), Role::Appliance, appliance_password.clone());
        let appliance_audit = Audit { target: Some(APPLIANCE_NAME), ..self.audit_clone(audit) };
        let mut plan = audit.success(
            // The limits get their record here, so a node rebuilt from its store uses the
            // cluster's limits, not its own configuration.
            vec![
                Mutation::PutCluster(cluster),
                Mutation::PutLimits(self.limits),
                Mutation::PutUser(preco),
                Mutation::PutUser(appliance),
            ],
            Outcome::ClusterInitialized,
        );
        plan.events.push(appliance_audit.event(Opcode::CN_CREATE_APPLIANCE_USER, Ok(())));
        Ok(plan)
    }

    fn audit_clone<'a>(&self, audit: &Audit<'a>) -> Audit<'a> {
        Audit {
            opcode: audit.opcode,
            session: audit.session,
            user: audit.user,
            role: audit.role,
            target: audit.target,
            objects: audit.objects.clone(),
        }
    }

    fn plan_login(&self, audit: &Audit<'_>, session: u64, name: &str, check: LoginCheck) -> Result<Plan> {
        self.require_cluster(&[ClusterState::Initialized, ClusterState::Active])?;
        // An unknown or malformed name answers like a wrong password: existence is not revealed.
        let user = self.users.get(name).ok_or(HsmError::PinIncorrect)?;
        if user.locked {
            return Err(HsmError::PinLocked(user.name.clone()));
        }
        match check {
            LoginCheck::Correct { password_generation }
                if password_generation == user.password_generation =>
            {
                let mutations = if user.failed_logins > 0 {
                    let mut updated = user.clone();
                    updated.record_success();
                    vec![Mutation::PutUser(updated)]
                } else {
                    Vec::new()
                };
                let outcome = Outcome::LoggedIn { session, user: user.name.clone(), role: user.role };
                Ok(audit.success(mutations, outcome))
            }
            // The password was changed between the check and this command: not a guess, so not
            // counted, but not a login either.
            LoginCheck::Correct { .. } => Err(HsmError::PinIncorrect),
            LoginCheck::Incorrect => {
                let mut updated = user.clone();
                updated.record_failure(self.limits.lockout_threshold);
                let error = HsmError::PinIncorrect;
                Ok(Plan {
                    events: vec![audit.event(Opcode::CN_LOGIN, Err(&error))],
                    mutations: vec![Mutation::PutUser(updated)],
                    result: Err(error),
                })
            }
        }
    }

    fn plan_create_user(
        &self,
        audit: &Audit<'_>,
        actor: &Actor,
        name: &str,
        role: Role,
        password: &PasswordHash,
    ) -> Result<Plan> {
        self.require_cluster(&[ClusterState::Active])?;
        self.authorize(actor, Operation::CreateUser)?;
        if normalize_name(name)? != name {
            return Err(HsmError::UserNameInvalid("a user name is stored in lowercase".into()));
        }
        if !role.is_creatable() {
            return Err(HsmError::UserTypeInvalid(format!("users with the {role} role cannot be created")));
        }
        if self.users.contains_key(name) {
            return Err(HsmError::UserExists(name.to_owned()));
        }
        if self.users.len() >= self.limits.max_users as usize {
            return Err(HsmError::LimitReached(format!(
                "the cluster holds its maximum of {} users",
                self.limits.max_users
            )));
        }
        check_password_hash(password)?;
        let user = User::new(name.to_owned(), role, password.clone());
        Ok(audit.success(vec![Mutation::PutUser(user)], Outcome::UserCreated { name: name.to_owned(), role }))
    }

    fn plan_delete_user(&self, audit: &Audit<'_>, actor: &Actor, name: &str) -> Result<Plan> {
        self.require_cluster(&[ClusterState::Active])?;
        self.authorize(actor, Operation::DeleteUser)?;
        let user = self.users.get(name).ok_or_else(|| HsmError::UserNotFound(name.to_owned()))?;
        if user.name == actor.user {
            return Err(HsmError::NotPermitted("an admin cannot delete itself".into()));
        }
        if user.role == Role::Appliance {
            return Err(HsmError::NotPermitted("the appliance user cannot be deleted".into()));
        }
        let owned = self.objects.count_owned_by(name);
        if owned > 0 {
            return Err(HsmError::ActionProhibited(format!(
                "user {name} owns {owned} key(s); delete them before the user"
            )));
        }
        // Keys shared with the user stop being shared: no record may name a user who is gone.
        let mut mutations: Vec<Mutation> = Vec::new();
        for handle in self.objects.shared_with_user(name) {
            if let Some(object) = self.objects.get(handle) {
                let mut updated = object.clone();
                updated.shared_with_mut().remove(name);
                mutations.push(Mutation::ReplaceObject(updated));
            }
        }
        mutations.push(Mutation::DeleteUser(name.to_owned()));
        Ok(audit.success(mutations, Outcome::UserDeleted { name: name.to_owned() }))
    }

    fn plan_change_password(
        &self,
        audit: &Audit<'_>,
        actor: &Actor,
        name: &str,
        password: &PasswordHash,
    ) -> Result<Plan> {
        self.require_cluster(&[ClusterState::Initialized, ClusterState::Active])?;
        let own = actor.user == name;
        let role = self.authorize(
            actor,
            if own { Operation::ChangeOwnPassword } else { Operation::ChangeAnyPassword },
        )?;
        let user = self.users.get(name).ok_or_else(|| HsmError::UserNotFound(name.to_owned()))?;
        check_password_hash(password)?;
        let mut updated = user.clone();
        updated.set_password(password.clone());
        let activated = own && role == Role::UnactivatedAdmin;
        let mut mutations = Vec::new();
        if activated {
            updated.role = Role::Admin;
            mutations
                .push(Mutation::PutCluster(Cluster { state: ClusterState::Active, ..self.cluster.clone() }));
        }
        mutations.push(Mutation::PutUser(updated));
        let mut plan =
            audit.success(mutations, Outcome::PasswordChanged { name: name.to_owned(), activated });
        if activated {
            let done = Audit { role: Some(Role::Admin), ..self.audit_clone(audit) };
            plan.events.push(done.event(Opcode::CN_INIT_DONE, Ok(())));
        }
        Ok(plan)
    }

    // ---- token objects --------------------------------------------------------------------

    fn plan_create_objects(
        &self,
        audit: &Audit<'_>,
        actor: &Actor,
        kind: CreateKind,
        objects: &[Object],
    ) -> Result<Plan> {
        self.require_cluster(&[ClusterState::Active])?;
        let op = match kind {
            CreateKind::Generate | CreateKind::GenerateKeyPair => Operation::GenerateKey,
            CreateKind::Import | CreateKind::Copy { .. } => Operation::CreateObject,
            CreateKind::Unwrap { .. } => Operation::UnwrapKey,
            CreateKind::Derive { .. } => Operation::DeriveKey,
        };
        self.authorize(actor, op)?;
        let expected = if kind == CreateKind::GenerateKeyPair { 2 } else { 1 };
        if objects.len() != expected {
            return Err(HsmError::TemplateInconsistent(format!("{kind:?} creates {expected} object(s)")));
        }
        self.check_source_key(actor, kind)?;
        for (i, object) in objects.iter().enumerate() {
            self.check_new_object(actor, object)?;
            if objects[..i].iter().any(|o| o.handle() == object.handle()) {
                return Err(HsmError::ObjectHandleInvalid(object.handle().0));
            }
        }
        if self.objects.len() + objects.len() > self.limits.max_objects as usize {
            return Err(HsmError::LimitReached(format!(
                "the cluster holds its maximum of {} objects",
                self.limits.max_objects
            )));
        }
        let handles = objects.iter().map(Object::handle).collect();
        let mutations = objects.iter().cloned().map(Mutation::InsertObject).collect();
        Ok(audit.success(mutations, Outcome::ObjectsCreated { handles }))
    }

    /// The unwrapping or base key must still be there and usable when the command is applied,
    /// and a copy's source still the actor's and copyable. A session key (node-local) was
    /// checked by the node that prepared the command.
    fn check_source_key(&self, actor: &Actor, kind: CreateKind) -> Result<()> {
        if let CreateKind::Copy { source } = kind {
            if is_session_handle(source) {
                return Ok(());
            }
            let object = self.objects.visible_to(source, &actor.user)?;
            if object.owner() != actor.user {
                return Err(HsmError::NotPermitted(format!("only the owner of {source} may copy it")));
            }
            return crate::template::check_copyable(object);
        }
        let (handle, usage) = match kind {
            CreateKind::Unwrap { unwrapping_key } => (unwrapping_key, crate::object::Usage::Unwrap),
            CreateKind::Derive { base_key } => (base_key, crate::object::Usage::Derive),
            CreateKind::Generate
            | CreateKind::GenerateKeyPair
            | CreateKind::Import
            | CreateKind::Copy { .. } => return Ok(()),
        };
        if is_session_handle(handle) {
            return Ok(());
        }
        let key = self.objects.visible_to(handle, &actor.user)?;
        check_usage(key, usage)
    }

    fn check_new_object(&self, actor: &Actor, object: &Object) -> Result<()> {
        let handle = object.handle();
        if handle.0 == 0 || is_session_handle(handle) || self.objects.get(handle).is_some() {
            return Err(HsmError::ObjectHandleInvalid(handle.0));
        }
        if object.owner() != actor.user {
            return Err(HsmError::NotPermitted("a new key is owned by the user who creates it".into()));
        }
        if !object.is_token() {
            return Err(HsmError::TemplateInconsistent("a session object is never replicated".into()));
        }
        if object.attrs().flag(AttributeType::Trusted) {
            return Err(HsmError::AttributeReadOnly("CKA_TRUSTED can only be set by an admin".into()));
        }
        if object.class().has_secret() != object.sealed_secret().is_some() {
            return Err(HsmError::SealedObjectInvalid(format!(
                "a {} must carry sealed material exactly when it has a secret",
                object.class()
            )));
        }
        for user in object.shared_with() {
            self.check_sharee(user)?;
        }
        Ok(())
    }

    fn check_sharee(&self, name: &str) -> Result<()> {
        match self.users.get(name) {
            None => Err(HsmError::UserNotFound(name.to_owned())),
            Some(user) if user.role != Role::CryptoUser => Err(HsmError::UserTypeInvalid(format!(
                "keys are shared only with crypto users; {name} is {}",
                user.role
            ))),
            Some(_) => Ok(()),
        }
    }

    fn plan_set_attributes(
        &self,
        audit: &Audit<'_>,
        actor: &Actor,
        handle: ObjectHandle,
        template: &crate::attribute::Template,
    ) -> Result<Plan> {
        self.require_cluster(&[ClusterState::Active])?;
        let role = self.actor_role(actor)?;
        let (object, is_admin) = if role == Role::Admin {
            // An admin's one key-management power: CKA_TRUSTED, on any token key by handle.
            permission::check(Some(role), Operation::SetTrusted)?;
            if template.iter().any(|a| a.ty != AttributeType::Trusted) {
                return Err(HsmError::NotPermitted("an admin may change only CKA_TRUSTED".into()));
            }
            let object = self.objects.get(handle).ok_or(HsmError::ObjectHandleInvalid(handle.0))?;
            if !object.class().is_key() {
                return Err(HsmError::ObjectHandleInvalid(handle.0));
            }
            (object, true)
        } else {
            permission::check(Some(role), Operation::ModifyAttributes)?;
            (self.owned_object(actor, handle)?, false)
        };
        let changes = check_modify(object, template, is_admin)?;
        let changed = changes.len();
        let mut mutations = Vec::new();
        if changed > 0 {
            let mut updated = object.clone();
            for change in changes {
                updated.attrs_mut().set(change.ty, change.value.clone());
            }
            mutations.push(Mutation::ReplaceObject(updated));
        }
        Ok(audit.success(mutations, Outcome::AttributesChanged { handle, changed }))
    }

    fn plan_share(
        &self,
        audit: &Audit<'_>,
        actor: &Actor,
        handle: ObjectHandle,
        user: &str,
        share: bool,
    ) -> Result<Plan> {
        self.require_cluster(&[ClusterState::Active])?;
        self.authorize(actor, Operation::ShareKey)?;
        let object = self.owned_object(actor, handle)?;
        if user == actor.user {
            return Err(HsmError::NotPermitted("the owner of a key cannot share it with itself".into()));
        }
        self.check_sharee(user)?;
        let mut updated = object.clone();
        let changed = if share {
            updated.shared_with_mut().insert(user.to_owned())
        } else {
            updated.shared_with_mut().remove(user)
        };
        let mutations = if changed { vec![Mutation::ReplaceObject(updated)] } else { Vec::new() };
        Ok(audit.success(mutations, Outcome::ShareChanged { handle, user: user.to_owned(), changed }))
    }

    fn plan_destroy(&self, audit: &Audit<'_>, actor: &Actor, handle: ObjectHandle) -> Result<Plan> {
        self.require_cluster(&[ClusterState::Active])?;
        self.authorize(actor, Operation::DestroyObject)?;
        let object = self.owned_object(actor, handle)?;
        check_destroy(object)?;
        Ok(audit.success(vec![Mutation::RemoveObject(handle)], Outcome::ObjectDestroyed { handle }))
    }

    // ---- client mutual TLS -----------------------------------------------------------------

    /// An admin changes the mTLS settings with `change`, on an ACTIVE cluster.
    fn plan_mtls(
        &self,
        audit: &Audit<'_>,
        actor: &Actor,
        change: impl FnOnce(&mut MtlsSettings) -> Result<()>,
    ) -> Result<Plan> {
        self.require_cluster(&[ClusterState::Active])?;
        self.authorize(actor, Operation::SetClusterSettings)?;
        let mut mtls = self.mtls.clone();
        change(&mut mtls)?;
        Ok(audit.success(vec![Mutation::PutMtls(mtls)], Outcome::MtlsChanged))
    }

    // ---- journal records and commit --------------------------------------------------------

    fn changes_for(&self, mutations: &[Mutation]) -> Result<Vec<Change>> {
        let mut changes = Vec::with_capacity(mutations.len() + 1);
        let mut next_handle = self.objects.next_handle().0;
        for mutation in mutations {
            changes.push(match mutation {
                Mutation::PutCluster(cluster) => {
                    Change::Put(RecordKey::Meta(meta::CLUSTER.into()), encode(cluster)?)
                }
                Mutation::PutLimits(limits) => {
                    Change::Put(RecordKey::Meta(meta::LIMITS.into()), encode(limits)?)
                }
                Mutation::PutMtls(mtls) => Change::Put(RecordKey::Meta(meta::MTLS.into()), encode(mtls)?),
                Mutation::PutUser(user) => Change::Put(RecordKey::User(user.name.clone()), encode(user)?),
                Mutation::DeleteUser(name) => Change::Delete(RecordKey::User(name.clone())),
                Mutation::InsertObject(object) => {
                    next_handle = next_handle.max(object.handle().0.saturating_add(1));
                    Change::Put(RecordKey::Object(object.handle().0), encode(object)?)
                }
                Mutation::ReplaceObject(object) => {
                    Change::Put(RecordKey::Object(object.handle().0), encode(object)?)
                }
                Mutation::RemoveObject(handle) => Change::Delete(RecordKey::Object(handle.0)),
            });
        }
        if next_handle != self.objects.next_handle().0 {
            changes.push(Change::Put(RecordKey::Meta(meta::NEXT_HANDLE.into()), encode(&next_handle)?));
        }
        Ok(changes)
    }

    /// Performs one planned mutation. Planning checked every condition these calls test, so
    /// they cannot fail here; the `Result`s they return are for other callers.
    fn commit(&mut self, mutation: Mutation) {
        match mutation {
            Mutation::PutCluster(cluster) => self.cluster = cluster,
            Mutation::PutLimits(limits) => {
                self.limits = limits;
                self.objects.set_max_objects(limits.max_objects as usize);
            }
            Mutation::PutMtls(mtls) => self.mtls = mtls,
            Mutation::PutUser(user) => {
                self.users.insert(user.name.clone(), user);
            }
            Mutation::DeleteUser(name) => {
                self.users.remove(&name);
            }
            Mutation::InsertObject(object) => {
                let _ = self.objects.insert(object);
            }
            Mutation::ReplaceObject(object) => {
                self.objects.remove(object.handle());
                let _ = self.objects.insert(object);
            }
            Mutation::RemoveObject(handle) => {
                self.objects.remove(handle);
            }
        }
    }
}

fn create_opcode(kind: CreateKind) -> Opcode {
    match kind {
        CreateKind::Generate => Opcode::CN_GENERATE_KEY,
        CreateKind::GenerateKeyPair => Opcode::CN_GENERATE_KEY_PAIR,
        CreateKind::Import | CreateKind::Copy { .. } => Opcode::CN_CREATE_OBJECT,
        CreateKind::Unwrap { .. } => Opcode::CN_UNWRAP_KEY,
        CreateKind::Derive { .. } => Opcode::CN_DERIVE_KEY,
    }
}

/// A stored password hash must look like one this crate makes: the state machine cannot see
/// the password, but it can refuse a hash no prepare step would produce.
fn check_password_hash(hash: &PasswordHash) -> Result<()> {
    if hash.salt.len() < SALT_LEN
        || hash.hash.len() != coffer_crypto::password::PASSWORD_HASH_LEN
        || hash.iterations < MIN_PBKDF2_ITERATIONS
    {
        return Err(HsmError::PasswordInvalid("the password hash is malformed".into()));
    }
    Ok(())
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    postcard::to_allocvec(value).map_err(|e| HsmError::SealedObjectInvalid(format!("record encoding: {e}")))
}

fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8], what: &str) -> Result<T> {
    postcard::from_bytes(bytes)
        .map_err(|e| HsmError::SealedObjectInvalid(format!("{what} does not decode: {e}")))
}

/// An object table holding `objects` whose next handle is `next_handle`. The table's
/// serialised form is the only way to set the next handle, so the table is built through it.
fn objects_with_next_handle(objects: Vec<Object>, next_handle: u64) -> Result<Objects> {
    #[derive(Serialize)]
    struct ObjectsData {
        next_handle: u64,
        objects: Vec<Object>,
    }
    let mut objects = objects;
    objects.sort_by_key(Object::handle);
    let next_handle = objects.last().map_or(next_handle, |o| next_handle.max(o.handle().0.saturating_add(1)));
    let bytes = encode(&ObjectsData { next_handle, objects })?;
    decode(&bytes, "object table")
}
