//! The request side: one node's view of the HSM, and the API a node serves.
//!
//! [`Hsm`] holds the applied replicated state ([`HsmState`]), this node's sessions, the crypto
//! module, the domain key, and a cache of opened keys. It answers three kinds of request:
//!
//! - **Changes to the replicated state** go through a *prepare* step (`prepare_*`): it reads
//!   the state, checks the permission table and ownership (failing fast), produces everything
//!   random (key material sealed under the domain key, salted password hashes, object
//!   handles), and returns [`Prepared::Command`]. The node proposes the command to the
//!   cluster; every node applies it with [`Hsm::apply`] (which calls [`HsmState::apply`], so
//!   the state machine re-checks everything against the state it applies to); the node that
//!   took the request then calls [`Hsm::finish`] with the outcome (binding a session after a
//!   login). [`Hsm::submit`] does all of that on one node, for tests and a single-node HSM.
//! - **Session objects** (`CKA_TOKEN` false) never become commands: the same `prepare_*`
//!   returns [`Prepared::Local`], which [`Hsm::apply_local`] audits through the journal and
//!   applies to this node's sessions only.
//! - **Reads and crypto** (find, get attribute, sign, verify, encrypt, decrypt, digest,
//!   random, wrap) run here on the applied state. Wrap is audited (`CN_WRAP_KEY`) and fails
//!   closed like a command; sign and encrypt are not audited (CloudHSM does not either).
//!
//! A prepare step that refuses a request has proposed nothing; the node audits the refusal
//! with [`Hsm::record_refusal`] so that a refused request leaves a trace like a refused
//! command.
//!
//! Opened keys are cached by handle (`Arc<Key>`) so a signature does not unseal the blob
//! every time. Handles are never reused, and [`Hsm::apply`] drops the cached key when its
//! object is destroyed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use coffer_audit::{Event, Opcode};
use coffer_crypto::{
    CipherMechanism, CipherStream, DecryptStream, DeriveMechanism, Encrypted, HashAlg, Key, KeySpec, KeyType,
    Module, SignMechanism, WrapMechanism,
};
use coffer_store::DomainKey;
use zeroize::Zeroizing;

use crate::attribute::{AttributeType, AttributeValue, Template};
use crate::command::{Actor, Command, CreateKind, LoginCheck};
use crate::error::{HsmError, Result};
use crate::journal::Journal;
use crate::limits::SessionLimits;
use crate::machine::{ClusterState, HsmState, Outcome, SESSION_HANDLE_BIT, is_session_handle};
use crate::material::{attach_material, duplicate_key, key_facts, public_facts};
use crate::mtls::{MtlsSettings, TrustAnchor, normalize_fingerprint};
use crate::object::{KeyFacts, Object, ObjectClass, ObjectHandle, Origin, Usage, key_type_from_code};
use crate::permission::{self, Operation};
use crate::role::{Role, user_type_of};
use crate::session::{Session, SessionObject, Sessions, random_u64};
use crate::template::{
    AttrRead, apply_unwrap_template, check_copy, check_destroy, check_modify, check_usage, check_wrap,
    new_object_attributes, read_attributes,
};
use crate::user::{
    APPLIANCE_NAME, PRECO_DEFAULT_PASSWORD, User, UserSummary, hash_new_password, hash_password,
    normalize_name, random_password,
};

/// Opened keys kept at most; past it the lowest handle is dropped (a later use reopens it).
pub const KEY_CACHE_CAPACITY: usize = 10_000;

/// What a prepare step produced.
#[derive(Debug)]
pub enum Prepared {
    /// Propose this to the cluster; apply it on every node.
    Command(Command),
    /// A change to this node's session objects; apply it here only.
    Local(LocalChange),
    /// A command that changes no replicated record (a correct login of a user with no failed
    /// attempts to reset): apply it here only, with [`Hsm::apply`] and [`Hsm::finish`]. It
    /// needs no quorum, so a node cut off from the others still lets users in to the keys it
    /// holds, as a lone CloudHSM does.
    Here(Command),
}

/// A change to session objects (node-local; never replicated or stored).
#[derive(Debug)]
pub enum LocalChange {
    /// New session objects (generate, import, unwrap, derive).
    Add { session: u64, opcode: Opcode, objects: Vec<SessionObject> },
    /// New attributes for a session object.
    Replace { session: u64, object: Object },
    /// Destroy a session object (`CN_DESTROY_OBJECT`).
    Remove { session: u64, handle: ObjectHandle },
}

/// Key material to import (`C_CreateObject` of a key; certificates and data objects, which
/// carry no material, go through [`Hsm::prepare_create_object`]).
#[derive(Debug, Clone, Copy)]
pub enum KeyMaterial<'a> {
    /// A secret key's raw value.
    Secret { key_type: KeyType, value: &'a [u8] },
    /// A private key as unencrypted PKCS#8 DER.
    Pkcs8(&'a [u8]),
    /// A public key as SubjectPublicKeyInfo DER.
    Spki(&'a [u8]),
}

/// An object the caller can see: replicated, or in the caller's session.
enum Visible<'a> {
    Token(&'a Object),
    Session(&'a SessionObject),
}

impl Visible<'_> {
    fn object(&self) -> &Object {
        match self {
            Self::Token(o) => o,
            Self::Session(s) => &s.object,
        }
    }
}

/// Public cluster information (`cluster info`): open to everyone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterInfo {
    pub state: ClusterState,
    pub certificate_pem: Option<String>,
    pub trust_anchor_pem: Option<String>,
    pub users: usize,
    pub objects: usize,
}

/// The most random bytes one `generate_random` call returns (1 MiB).
pub const MAX_RANDOM_LEN: usize = 1 << 20;

/// One node's HSM: applied state, sessions, module, domain key, key cache.
#[derive(Debug)]
pub struct Hsm {
    state: HsmState,
    sessions: Sessions,
    module: Module,
    domain_key: DomainKey,
    cache: Mutex<BTreeMap<ObjectHandle, Arc<Key>>>,
}

impl Hsm {
    /// A node over `state` (fresh, from a snapshot, or from the store's records).
    pub fn new(state: HsmState, module: Module, domain_key: DomainKey, session_limits: SessionLimits) -> Hsm {
        Hsm { state, sessions: Sessions::new(session_limits), module, domain_key, cache: Mutex::default() }
    }

    /// The applied replicated state.
    pub fn state(&self) -> &HsmState {
        &self.state
    }

    /// This node's sessions.
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// The crypto module.
    pub fn module(&self) -> &Module {
        &self.module
    }

    /// Number of opened keys in the cache.
    pub fn cached_keys(&self) -> usize {
        self.cache_lock().len()
    }

    // ---- applying ------------------------------------------------------------------------

    /// Applies a replicated command on this node (every node calls this for every command),
    /// then keeps the node-local parts in step: a destroyed key leaves the cache, a deleted
    /// user's sessions are logged out.
    pub fn apply(&mut self, cmd: &Command, journal: &mut dyn Journal) -> Result<Outcome> {
        let outcome = self.state.apply(cmd, journal)?;
        match &outcome {
            Outcome::ObjectDestroyed { handle } => {
                self.cache_lock().remove(handle);
            }
            Outcome::UserDeleted { name } => self.sessions.logout_user(name),
            _ => {}
        }
        Ok(outcome)
    }

    /// Replaces the applied state with a replicated snapshot's. Every opened key leaves the
    /// cache (a key destroyed in the entries the snapshot covers must not stay usable), and
    /// sessions of users the new state no longer has are logged out.
    pub fn replace_state(&mut self, state: HsmState) {
        self.state = state;
        self.cache_lock().clear();
        let gone: Vec<String> = self
            .sessions
            .logged_in_users()
            .into_iter()
            .filter(|user| self.state.user(user).is_none())
            .collect();
        for user in gone {
            self.sessions.logout_user(&user);
        }
    }

    /// The domain key, for cloning: a node wraps it to a new member's identity key, and
    /// re-seals its own node keys when it takes the cluster's.
    pub fn domain_key(&self) -> &DomainKey {
        &self.domain_key
    }

    /// The digest of the replicated state (`SyncStatus`): an admin or crypto user compares
    /// nodes with it.
    pub fn sync_status(&self, session: u64) -> Result<Vec<u8>> {
        let (_, role) = self.caller(session)?;
        permission::check(Some(role), Operation::SyncStatus)?;
        self.state.state_digest(&self.module)
    }

    /// Checks that `session` may change the cluster's membership (add or remove an HSM): an
    /// admin's, on an active cluster. Nothing is proposed; the node runs the change.
    pub fn check_membership_change(&self, session: u64) -> Result<()> {
        let (_, role) = self.caller(session)?;
        permission::check(Some(role), Operation::SetClusterSettings)?;
        self.require_cluster(&[ClusterState::Active])
    }

    /// Audits one step of cloning. The appliance user performs it (as in CloudHSM), on
    /// behalf of the request on `session` (0 on the node being cloned to).
    pub fn record_clone_step(
        &self,
        journal: &mut dyn Journal,
        session: u64,
        opcode: Opcode,
        response: std::result::Result<(), &HsmError>,
    ) -> Result<()> {
        let mut event = self.event(session, opcode, Vec::new(), None, response);
        event.user = Some(APPLIANCE_NAME.to_owned());
        event.user_type = Role::Appliance.user_type();
        journal.record(&[event], &[]).map_err(|e| HsmError::JournalFailed(e.0))
    }

    /// Takes the cluster's domain key on a node cloned into the cluster. Only a node that
    /// holds no token object may switch (its objects would no longer open); opened keys
    /// leave the cache all the same.
    pub fn replace_domain_key(&mut self, domain_key: DomainKey) -> Result<()> {
        if !self.state.objects().is_empty() {
            return Err(HsmError::ClusterState(format!(
                "this node holds {} token objects; only an empty node can take another domain key",
                self.state.objects().len()
            )));
        }
        self.domain_key = domain_key;
        self.cache_lock().clear();
        Ok(())
    }

    /// On the node that took the request, after its command was applied: binds the session
    /// of a successful login.
    pub fn finish(&mut self, outcome: &Outcome) -> Result<()> {
        if let Outcome::LoggedIn { session, user, .. } = outcome {
            self.sessions.bind_login(*session, user)?;
        }
        Ok(())
    }

    /// Applies a change to session objects: audited first, fail closed.
    pub fn apply_local(&mut self, change: LocalChange, journal: &mut dyn Journal) -> Result<Outcome> {
        let mut changed = 0;
        let (session, opcode, handles) = match &change {
            LocalChange::Add { session, opcode, objects } => {
                self.sessions.check_add(*session, objects)?;
                (*session, *opcode, objects.iter().map(|o| o.object.handle()).collect::<Vec<_>>())
            }
            LocalChange::Replace { session, object } => {
                let old = &self.sessions.get(*session)?.object(object.handle())?.object;
                changed =
                    object.attrs().iter().filter(|(ty, value)| old.attrs().get(*ty) != Some(*value)).count();
                (*session, Opcode::CN_MODIFY_OBJECT, vec![object.handle()])
            }
            LocalChange::Remove { session, handle } => {
                self.sessions.get(*session)?.object(*handle)?;
                (*session, Opcode::CN_DESTROY_OBJECT, vec![*handle])
            }
        };
        let event = self.event(session, opcode, handles.iter().map(|h| h.0).collect(), None, Ok(()));
        journal.record(&[event], &[]).map_err(|e| HsmError::JournalFailed(e.0))?;
        match change {
            LocalChange::Add { session, objects, .. } => {
                self.sessions.add_objects(session, objects)?;
                Ok(Outcome::ObjectsCreated { handles })
            }
            LocalChange::Replace { session, object } => {
                self.sessions.replace_object(session, object)?;
                Ok(Outcome::AttributesChanged { handle: handles[0], changed })
            }
            LocalChange::Remove { session, handle } => {
                self.sessions.remove_object(session, handle)?;
                Ok(Outcome::ObjectDestroyed { handle })
            }
        }
    }

    /// Applies what a prepare step produced, on this node alone: a command through
    /// [`apply`](Self::apply) and [`finish`](Self::finish), a local change through
    /// [`apply_local`](Self::apply_local).
    pub fn submit(&mut self, prepared: Prepared, journal: &mut dyn Journal) -> Result<Outcome> {
        match prepared {
            Prepared::Command(cmd) => {
                let outcome = self.apply(&cmd, journal)?;
                self.finish(&outcome)?;
                Ok(outcome)
            }
            Prepared::Local(change) => self.apply_local(change, journal),
            Prepared::Here(cmd) => {
                let outcome = self.apply(&cmd, journal)?;
                self.finish(&outcome)?;
                Ok(outcome)
            }
        }
    }

    /// Audits a request the prepare step refused (nothing was proposed).
    pub fn record_refusal(
        &self,
        journal: &mut dyn Journal,
        session: u64,
        opcode: Opcode,
        error: &HsmError,
    ) -> Result<()> {
        let event = self.event(session, opcode, Vec::new(), None, Err(error));
        journal.record(&[event], &[]).map_err(|e| HsmError::JournalFailed(e.0))
    }

    fn event(
        &self,
        session: u64,
        opcode: Opcode,
        objects: Vec<u64>,
        target: Option<&str>,
        response: std::result::Result<(), &HsmError>,
    ) -> Event {
        let user = self.sessions.get(session).ok().and_then(Session::user).map(str::to_owned);
        let role = user.as_deref().and_then(|u| self.state.role_of(u));
        let (code, text) = match response {
            Ok(()) => (0, "SUCCESS".to_owned()),
            Err(e) => (e.ck_rv(), e.ck_rv_name().to_owned()),
        };
        Event {
            opcode,
            session,
            user,
            user_type: user_type_of(role),
            target_user: target.map(str::to_owned),
            objects,
            response: code,
            response_text: text,
        }
    }

    // ---- sessions and login ---------------------------------------------------------------

    /// Opens a session for an application (`C_OpenSession`).
    pub fn open_session(&mut self, application: u64) -> Result<u64> {
        self.sessions.open(application)
    }

    /// Closes a session (`C_CloseSession`), audited; its session objects are wiped.
    pub fn close_session(&mut self, session: u64, journal: &mut dyn Journal) -> Result<()> {
        self.sessions.get(session)?;
        let event = self.event(session, Opcode::CN_CLOSE_SESSION, Vec::new(), None, Ok(()));
        journal.record(&[event], &[]).map_err(|e| HsmError::JournalFailed(e.0))?;
        self.sessions.close(session)
    }

    /// Logs a session out (`C_Logout`), audited; its session objects are wiped.
    pub fn logout(&mut self, session: u64, journal: &mut dyn Journal) -> Result<()> {
        if self.sessions.get(session)?.user().is_none() {
            return Err(HsmError::NotLoggedIn);
        }
        let event = self.event(session, Opcode::CN_LOGOUT, Vec::new(), None, Ok(()));
        journal.record(&[event], &[]).map_err(|e| HsmError::JournalFailed(e.0))?;
        self.sessions.logout(session).map(drop)
    }

    /// Checks a password and prepares the login command that records the result (a failure is
    /// counted cluster-wide; a success resets the counter). An unknown user gets the same
    /// answer as a wrong password.
    pub fn prepare_login(&self, session: u64, name: &str, password: &[u8]) -> Result<Prepared> {
        if self.sessions.get(session)?.user().is_some() {
            return Err(HsmError::AlreadyLoggedIn);
        }
        self.require_cluster(&[ClusterState::Initialized, ClusterState::Active])?;
        let name = name.to_ascii_lowercase();
        let mut nothing_to_reset = false;
        let check = match self.state.user(&name) {
            Some(user) if !user.locked => {
                if self.module.verify_password(&user.password, password)? {
                    nothing_to_reset = user.failed_logins == 0;
                    LoginCheck::Correct { password_generation: user.password_generation }
                } else {
                    LoginCheck::Incorrect
                }
            }
            // A locked user is refused when applied, before the check is looked at.
            Some(_) | None => LoginCheck::Incorrect,
        };
        let command = Command::Login { session, user: name, check };
        // Failures always replicate (lockout is cluster-wide), and so does a success that
        // resets a counter; a success that changes nothing stays on this node.
        Ok(if nothing_to_reset { Prepared::Here(command) } else { Prepared::Command(command) })
    }

    // ---- cluster and users ----------------------------------------------------------------

    /// Cluster information; everyone may read it.
    pub fn cluster_info(&self) -> ClusterInfo {
        let cluster = self.state.cluster();
        ClusterInfo {
            state: cluster.state,
            certificate_pem: cluster.certificate_pem.clone(),
            trust_anchor_pem: cluster.trust_anchor_pem.clone(),
            users: self.state.users().count(),
            objects: self.state.objects().len(),
        }
    }

    /// `user list`: everyone may read it, logged in or not.
    pub fn list_users(&self, session: u64) -> Result<Vec<UserSummary>> {
        let role = self.session_role(session)?;
        permission::check(role, Operation::ListUsers)?;
        Ok(self.state.list_users())
    }

    /// InitializeCluster (control plane): stores the certificates and creates the unactivated
    /// admin with the default password and the appliance user with a random one.
    pub fn prepare_initialize(&self, certificate_pem: &str, trust_anchor_pem: &str) -> Result<Prepared> {
        self.require_cluster(&[ClusterState::Uninitialized])?;
        let iterations = self.state.limits().pbkdf2_iterations;
        let appliance_secret = random_password(&self.module)?;
        Ok(Prepared::Command(Command::InitializeCluster {
            certificate_pem: certificate_pem.to_owned(),
            trust_anchor_pem: trust_anchor_pem.to_owned(),
            preco_password: hash_password(&self.module, PRECO_DEFAULT_PASSWORD, iterations)?,
            appliance_password: hash_password(&self.module, &appliance_secret, iterations)?,
        }))
    }

    /// An admin creates a user (`user create`).
    pub fn prepare_create_user(
        &self,
        session: u64,
        name: &str,
        role: Role,
        password: &[u8],
    ) -> Result<Prepared> {
        let (actor, caller_role) = self.caller(session)?;
        permission::check(Some(caller_role), Operation::CreateUser)?;
        self.require_cluster(&[ClusterState::Active])?;
        let name = normalize_name(name)?;
        if !role.is_creatable() {
            return Err(HsmError::UserTypeInvalid(format!("users with the {role} role cannot be created")));
        }
        if self.state.user(&name).is_some() {
            return Err(HsmError::UserExists(name));
        }
        let password = hash_new_password(&self.module, password, self.state.limits().pbkdf2_iterations)?;
        Ok(Prepared::Command(Command::CreateUser { actor, name, role, password }))
    }

    /// An admin deletes a user (`user delete`).
    pub fn prepare_delete_user(&self, session: u64, name: &str) -> Result<Prepared> {
        let (actor, role) = self.caller(session)?;
        permission::check(Some(role), Operation::DeleteUser)?;
        let name = normalize_name(name)?;
        self.state.user(&name).ok_or_else(|| HsmError::UserNotFound(name.clone()))?;
        Ok(Prepared::Command(Command::DeleteUser { actor, name }))
    }

    /// Changes a password: one's own (everyone; the unactivated admin's activates the
    /// cluster), or another user's (admins; it also unlocks the user).
    pub fn prepare_change_password(&self, session: u64, name: &str, password: &[u8]) -> Result<Prepared> {
        let (actor, role) = self.caller(session)?;
        let name = normalize_name(name)?;
        let own = name == actor.user;
        permission::check(
            Some(role),
            if own { Operation::ChangeOwnPassword } else { Operation::ChangeAnyPassword },
        )?;
        let user: &User = self.state.user(&name).ok_or_else(|| HsmError::UserNotFound(name.clone()))?;
        if user.role == Role::UnactivatedAdmin && password == PRECO_DEFAULT_PASSWORD {
            return Err(HsmError::PasswordInvalid(
                "the new password must differ from the default one".into(),
            ));
        }
        let password = hash_new_password(&self.module, password, self.state.limits().pbkdf2_iterations)?;
        Ok(Prepared::Command(Command::ChangePassword { actor, name, password }))
    }

    // ---- creating keys --------------------------------------------------------------------

    /// Generates a secret key (`C_GenerateKey`): AES or generic secret.
    pub fn prepare_generate_key(
        &self,
        session: u64,
        spec: &KeySpec,
        template: &Template,
    ) -> Result<Prepared> {
        let (actor, role) = self.caller(session)?;
        permission::check(Some(role), Operation::GenerateKey)?;
        self.require_cluster(&[ClusterState::Active])?;
        let key_type = match spec {
            KeySpec::Aes { .. } => KeyType::Aes,
            KeySpec::GenericSecret { .. } => KeyType::GenericSecret,
            KeySpec::Rsa { .. } | KeySpec::Ec(_) | KeySpec::Ed25519 => {
                return Err(HsmError::TemplateInconsistent(
                    "a key pair is generated with C_GenerateKeyPair".into(),
                ));
            }
        };
        let key = self.module.generate(spec)?;
        let facts = key_facts(&self.module, &key)?;
        let attrs = new_object_attributes(
            ObjectClass::SecretKey,
            Some(key_type),
            template,
            Origin::Generated,
            &facts,
            false,
        )?;
        let token = attrs.flag(AttributeType::Token);
        let object = Object::new(self.new_handle(session, token, &[])?, actor.user.clone(), attrs)?;
        self.created(actor, CreateKind::Generate, vec![(object, key)])
    }

    /// Generates a key pair (`C_GenerateKeyPair`). The halves share `CKA_ID` and `CKA_LABEL`
    /// unless the templates say otherwise, and must agree on `CKA_TOKEN` (a pair lives in
    /// one place: replicated, or in one session).
    pub fn prepare_generate_key_pair(
        &self,
        session: u64,
        spec: &KeySpec,
        public_template: &Template,
        private_template: &Template,
    ) -> Result<Prepared> {
        let (actor, role) = self.caller(session)?;
        permission::check(Some(role), Operation::GenerateKey)?;
        self.require_cluster(&[ClusterState::Active])?;
        let key_type = match spec {
            KeySpec::Rsa { .. } => KeyType::Rsa,
            KeySpec::Ec(_) => KeyType::Ec,
            KeySpec::Ed25519 => KeyType::Ed25519,
            KeySpec::Aes { .. } | KeySpec::GenericSecret { .. } => {
                return Err(HsmError::TemplateInconsistent(
                    "a secret key is generated with C_GenerateKey".into(),
                ));
            }
        };
        let (public_template, private_template) = pair_templates(public_template, private_template);
        let pair = self.module.generate_key_pair(spec)?;
        let facts = public_facts(&pair.public)?;
        let origin = Origin::GeneratedPair;
        let public_attrs = new_object_attributes(
            ObjectClass::PublicKey,
            Some(key_type),
            &public_template,
            origin,
            &facts,
            false,
        )?;
        let private_attrs = new_object_attributes(
            ObjectClass::PrivateKey,
            Some(key_type),
            &private_template,
            origin,
            &facts,
            false,
        )?;
        let token = private_attrs.flag(AttributeType::Token);
        if public_attrs.flag(AttributeType::Token) != token {
            return Err(HsmError::TemplateInconsistent(
                "both halves of a key pair must have the same CKA_TOKEN".into(),
            ));
        }
        let public_handle = self.new_handle(session, token, &[])?;
        let private_handle = self.new_handle(session, token, &[public_handle])?;
        let public = Object::new(public_handle, actor.user.clone(), public_attrs)?;
        let private = Object::new(private_handle, actor.user.clone(), private_attrs)?;
        let keys = vec![(public, Key::Public(pair.public)), (private, Key::Private(pair.private))];
        self.created(actor, CreateKind::GenerateKeyPair, keys)
    }

    /// Imports a key (`C_CreateObject`): a raw secret, a PKCS#8 private key or an SPKI public key.
    pub fn prepare_import(
        &self,
        session: u64,
        material: KeyMaterial<'_>,
        template: &Template,
    ) -> Result<Prepared> {
        let (actor, role) = self.caller(session)?;
        permission::check(Some(role), Operation::CreateObject)?;
        self.require_cluster(&[ClusterState::Active])?;
        let key = match material {
            KeyMaterial::Secret { key_type, value } => {
                Key::Secret(coffer_crypto::SecretKey::from_bytes(key_type, value)?)
            }
            KeyMaterial::Pkcs8(der) => Key::Private(self.module.private_key_from_pkcs8(der)?.private),
            KeyMaterial::Spki(der) => Key::Public(self.module.public_key_from_spki(der)?),
        };
        let class = ObjectClass::from_key_class(key.class());
        let facts = key_facts(&self.module, &key)?;
        let attrs =
            new_object_attributes(class, Some(key.key_type()), template, Origin::Created, &facts, false)?;
        let token = attrs.flag(AttributeType::Token);
        let object = Object::new(self.new_handle(session, token, &[])?, actor.user.clone(), attrs)?;
        self.created(actor, CreateKind::Import, vec![(object, key)])
    }

    /// Creates a certificate or data object (`C_CreateObject` of `CKO_CERTIFICATE` or
    /// `CKO_DATA`). Such objects hold no secret: their `CKA_VALUE` is kept in their attributes
    /// and read back as it is. Keys carry material and come through
    /// [`prepare_import`](Self::prepare_import) (or generate, unwrap, derive) instead.
    /// Audited as `CN_CREATE_OBJECT`; a session object (`CKA_TOKEN` false) stays on this node.
    pub fn prepare_create_object(&self, session: u64, template: &Template) -> Result<Prepared> {
        let (actor, role) = self.caller(session)?;
        permission::check(Some(role), Operation::CreateObject)?;
        self.require_cluster(&[ClusterState::Active])?;
        let class = template
            .get(AttributeType::Class)
            .ok_or_else(|| HsmError::TemplateIncomplete("a new object needs CKA_CLASS".into()))?
            .as_ulong(AttributeType::Class)?;
        let class = ObjectClass::try_from(class)?;
        if class.is_key() {
            return Err(HsmError::TemplateInconsistent(format!(
                "a {class} is created from its key material (import, generate, unwrap or derive)"
            )));
        }
        let attrs =
            new_object_attributes(class, None, template, Origin::Created, &KeyFacts::default(), false)?;
        let token = attrs.flag(AttributeType::Token);
        let object = Object::new(self.new_handle(session, token, &[])?, actor.user.clone(), attrs)?;
        if token {
            return Ok(Prepared::Command(Command::CreateObjects {
                actor,
                kind: CreateKind::Import,
                objects: vec![object],
            }));
        }
        let objects = vec![SessionObject { object, key: None }];
        Ok(Prepared::Local(LocalChange::Add { session, opcode: Opcode::CN_CREATE_OBJECT, objects }))
    }

    /// Unwraps a key (`C_UnwrapKey`). The template must name `CKA_CLASS` and `CKA_KEY_TYPE`;
    /// the unwrapping key's `CKA_UNWRAP_TEMPLATE` is merged in (a conflict is refused).
    pub fn prepare_unwrap(
        &self,
        session: u64,
        unwrapping_key: ObjectHandle,
        mechanism: &WrapMechanism,
        wrapped: &[u8],
        template: &Template,
    ) -> Result<Prepared> {
        let (actor, role) = self.caller(session)?;
        permission::check(Some(role), Operation::UnwrapKey)?;
        self.require_cluster(&[ClusterState::Active])?;
        let (unwrapping, unwrap_key) = self.usable(session, &actor.user, unwrapping_key, Usage::Unwrap)?;
        let template = apply_unwrap_template(unwrapping.object(), template)?;
        let (class, key_type) = class_and_key_type(&template)?;
        let key = self.module.unwrap(&unwrap_key, mechanism, wrapped, key_type)?;
        if ObjectClass::from_key_class(key.class()) != class {
            return Err(HsmError::TemplateInconsistent(format!("the wrapped key is not a {class}")));
        }
        let facts = key_facts(&self.module, &key)?;
        let attrs =
            new_object_attributes(class, Some(key_type), &template, Origin::Unwrapped, &facts, false)?;
        let token = attrs.flag(AttributeType::Token);
        let object = Object::new(self.new_handle(session, token, &[])?, actor.user.clone(), attrs)?;
        self.created(actor, CreateKind::Unwrap { unwrapping_key }, vec![(object, key)])
    }

    /// Derives a secret key (`C_DeriveKey`). The template must name `CKA_KEY_TYPE` and
    /// `CKA_VALUE_LEN`.
    pub fn prepare_derive(
        &self,
        session: u64,
        base_key: ObjectHandle,
        mechanism: &DeriveMechanism,
        template: &Template,
    ) -> Result<Prepared> {
        let (actor, role) = self.caller(session)?;
        permission::check(Some(role), Operation::DeriveKey)?;
        self.require_cluster(&[ClusterState::Active])?;
        let (base, base_secret) = self.usable(session, &actor.user, base_key, Usage::Derive)?;
        let key_type = template
            .get(AttributeType::KeyType)
            .map(|v| v.as_ulong(AttributeType::KeyType))
            .transpose()?
            .and_then(key_type_from_code)
            .filter(|kt| kt.is_secret())
            .ok_or_else(|| {
                HsmError::TemplateIncomplete("a derived key needs a secret CKA_KEY_TYPE".into())
            })?;
        let len = template
            .get(AttributeType::ValueLen)
            .map(|v| v.as_ulong(AttributeType::ValueLen))
            .transpose()?
            .ok_or_else(|| HsmError::TemplateIncomplete("a derived key needs CKA_VALUE_LEN".into()))?;
        let len = usize::try_from(len)
            .map_err(|_| HsmError::AttributeValueInvalid("CKA_VALUE_LEN too large".into()))?;
        let key = Key::Secret(self.module.derive(&base_secret, mechanism, key_type, len)?);
        let origin = Origin::derived_from(base.object());
        let facts = key_facts(&self.module, &key)?;
        let attrs =
            new_object_attributes(ObjectClass::SecretKey, Some(key_type), template, origin, &facts, false)?;
        let token = attrs.flag(AttributeType::Token);
        let object = Object::new(self.new_handle(session, token, &[])?, actor.user.clone(), attrs)?;
        self.created(actor, CreateKind::Derive { base_key }, vec![(object, key)])
    }

    /// Copies an object (`C_CopyObject`): the owner makes a new object with the source's
    /// attributes, changed as `template` asks ([`check_copy`]) and its key material; a
    /// session key copied with `CKA_TOKEN` true becomes a token key (sealed under the domain
    /// key, replicated), a token key copied with it false a session key of this session.
    /// Audited as `CN_CREATE_OBJECT`.
    pub fn prepare_copy(&self, session: u64, handle: ObjectHandle, template: &Template) -> Result<Prepared> {
        let (actor, role) = self.caller(session)?;
        permission::check(Some(role), Operation::CreateObject)?;
        self.require_cluster(&[ClusterState::Active])?;
        let source = self.owned(session, &actor.user, handle)?;
        let changes = check_copy(source.object(), template)?;
        let mut attrs = source.object().attrs().clone();
        for change in &changes {
            attrs.set(change.ty, change.value.clone());
        }
        if attrs.flag(AttributeType::Trusted) {
            // An admin trusts one object; its copy is a new object the admin has not vouched for.
            attrs.set(AttributeType::Trusted, AttributeValue::Bool(false));
        }
        let token = attrs.flag(AttributeType::Token);
        let object = Object::new(self.new_handle(session, token, &[])?, actor.user.clone(), attrs)?;
        let kind = CreateKind::Copy { source: handle };
        if !source.object().class().is_key() {
            // Certificates and data objects carry no material: their attributes are all.
            if token {
                return Ok(Prepared::Command(Command::CreateObjects { actor, kind, objects: vec![object] }));
            }
            let objects = vec![SessionObject { object, key: None }];
            return Ok(Prepared::Local(LocalChange::Add {
                session,
                opcode: Opcode::CN_CREATE_OBJECT,
                objects,
            }));
        }
        let key = duplicate_key(&self.module, &*self.open(&source)?)?;
        self.created(actor, kind, vec![(object, key)])
    }

    /// New objects as a command (token) or a local change (session), with their material.
    fn created(&self, actor: Actor, kind: CreateKind, keys: Vec<(Object, Key)>) -> Result<Prepared> {
        let token = keys.first().is_some_and(|(o, _)| o.is_token());
        if token {
            let objects = keys
                .into_iter()
                .map(|(object, key)| attach_material(&self.module, &self.domain_key, object, &key))
                .collect::<Result<Vec<_>>>()?;
            return Ok(Prepared::Command(Command::CreateObjects { actor, kind, objects }));
        }
        let opcode = match kind {
            CreateKind::Generate => Opcode::CN_GENERATE_KEY,
            CreateKind::GenerateKeyPair => Opcode::CN_GENERATE_KEY_PAIR,
            CreateKind::Import => Opcode::CN_CREATE_OBJECT,
            CreateKind::Unwrap { .. } => Opcode::CN_UNWRAP_KEY,
            CreateKind::Derive { .. } => Opcode::CN_DERIVE_KEY,
            CreateKind::Copy { .. } => Opcode::CN_CREATE_OBJECT,
        };
        let objects = keys
            .into_iter()
            .map(|(object, key)| {
                let object = match &key {
                    Key::Private(p) => object.with_public_der(p.public_key().spki_der().to_vec()),
                    Key::Public(p) => object.with_public_der(p.spki_der().to_vec()),
                    Key::Secret(_) => object,
                };
                SessionObject { object, key: Some(Arc::new(key)) }
            })
            .collect();
        Ok(Prepared::Local(LocalChange::Add { session: actor.session, opcode, objects }))
    }

    /// A fresh handle: random, in the token range (unused in the state) or the session range
    /// (unused in the session), and not in `taken`.
    fn new_handle(&self, session: u64, token: bool, taken: &[ObjectHandle]) -> Result<ObjectHandle> {
        loop {
            let handle = if token {
                ObjectHandle(random_u64(&self.module)? & !SESSION_HANDLE_BIT)
            } else {
                self.sessions.new_object_handle(&self.module, session)?
            };
            if handle.0 != 0 && self.state.objects().get(handle).is_none() && !taken.contains(&handle) {
                return Ok(handle);
            }
        }
    }

    // ---- managing keys --------------------------------------------------------------------

    /// `C_SetAttributeValue`. The owner changes what PKCS#11 lets change; an admin changes only
    /// `CKA_TRUSTED`, on any token key.
    pub fn prepare_set_attributes(
        &self,
        session: u64,
        handle: ObjectHandle,
        template: &Template,
    ) -> Result<Prepared> {
        let (actor, role) = self.caller(session)?;
        if role == Role::Admin {
            permission::check(Some(role), Operation::SetTrusted)?;
            if template.iter().any(|a| a.ty != AttributeType::Trusted) {
                return Err(HsmError::NotPermitted("an admin may change only CKA_TRUSTED".into()));
            }
            let object = self.state.objects().get(handle).ok_or(HsmError::ObjectHandleInvalid(handle.0))?;
            check_modify(object, template, true)?;
            return Ok(Prepared::Command(Command::SetAttributes {
                actor,
                handle,
                template: template.clone(),
            }));
        }
        permission::check(Some(role), Operation::ModifyAttributes)?;
        match self.owned(session, &actor.user, handle)? {
            Visible::Token(object) => {
                check_modify(object, template, false)?;
                Ok(Prepared::Command(Command::SetAttributes { actor, handle, template: template.clone() }))
            }
            Visible::Session(so) => {
                let changes = check_modify(&so.object, template, false)?;
                if changes.iter().any(|c| c.ty == AttributeType::Token) {
                    return Err(HsmError::AttributeReadOnly(
                        "CKA_TOKEN: a session key cannot be made a token key here; unwrap or import it as a token key"
                            .into(),
                    ));
                }
                let mut object = so.object.clone();
                for change in changes {
                    object.attrs_mut().set(change.ty, change.value.clone());
                }
                Ok(Prepared::Local(LocalChange::Replace { session, object }))
            }
        }
    }

    /// The owner shares (`share: true`) or unshares a token key with a crypto user.
    pub fn prepare_share(
        &self,
        session: u64,
        handle: ObjectHandle,
        user: &str,
        share: bool,
    ) -> Result<Prepared> {
        let (actor, role) = self.caller(session)?;
        permission::check(Some(role), Operation::ShareKey)?;
        let user = normalize_name(user)?;
        match self.owned(session, &actor.user, handle)? {
            Visible::Token(_) => Ok(Prepared::Command(Command::Share { actor, handle, user, share })),
            Visible::Session(_) => Err(HsmError::NotPermitted("a session object cannot be shared".into())),
        }
    }

    /// The owner destroys a key: `CN_TOMBSTONE_OBJECT` for a token key (a command),
    /// `CN_DESTROY_OBJECT` for a session key (local).
    pub fn prepare_destroy(&self, session: u64, handle: ObjectHandle) -> Result<Prepared> {
        let (actor, role) = self.caller(session)?;
        permission::check(Some(role), Operation::DestroyObject)?;
        match self.owned(session, &actor.user, handle)? {
            Visible::Token(object) => {
                check_destroy(object)?;
                Ok(Prepared::Command(Command::DestroyObject { actor, handle }))
            }
            Visible::Session(so) => {
                check_destroy(&so.object)?;
                Ok(Prepared::Local(LocalChange::Remove { session, handle }))
            }
        }
    }

    // ---- reads ----------------------------------------------------------------------------

    /// `C_FindObjects`: token objects visible to the caller and the session's own objects.
    pub fn find_objects(&self, session: u64, template: &Template) -> Result<Vec<ObjectHandle>> {
        let (actor, role) = self.caller(session)?;
        permission::check(Some(role), Operation::FindObjects)?;
        template.validate()?;
        let mut found = self.state.objects().find(template, &actor.user);
        found.extend(self.sessions.get(session)?.find(template));
        Ok(found)
    }

    /// `C_GetAttributeValue` on a visible object.
    pub fn get_attributes(
        &self,
        session: u64,
        handle: ObjectHandle,
        types: &[AttributeType],
    ) -> Result<Vec<AttrRead>> {
        let (actor, role) = self.caller(session)?;
        permission::check(Some(role), Operation::GetAttributes)?;
        let visible = self.visible(session, &actor.user, handle)?;
        Ok(read_attributes(visible.object(), types))
    }

    /// The owner and sharees of a visible token key.
    pub fn key_users(&self, session: u64, handle: ObjectHandle) -> Result<(String, Vec<String>)> {
        let (actor, role) = self.caller(session)?;
        permission::check(Some(role), Operation::GetAttributes)?;
        let object = self.visible(session, &actor.user, handle)?;
        let object = object.object();
        Ok((object.owner().to_owned(), object.shared_with().iter().cloned().collect()))
    }

    // ---- crypto ---------------------------------------------------------------------------

    /// `C_Sign` (signatures and MACs).
    pub fn sign(
        &self,
        session: u64,
        handle: ObjectHandle,
        mechanism: &SignMechanism,
        data: &[u8],
    ) -> Result<Vec<u8>> {
        let key = self.key_for(session, Operation::Sign, handle, Usage::Sign)?;
        Ok(self.module.sign(&key, mechanism, data)?)
    }

    /// `C_Verify`.
    pub fn verify(
        &self,
        session: u64,
        handle: ObjectHandle,
        mechanism: &SignMechanism,
        data: &[u8],
        signature: &[u8],
    ) -> Result<()> {
        let key = self.key_for(session, Operation::Verify, handle, Usage::Verify)?;
        Ok(self.module.verify(&key, mechanism, data, signature)?)
    }

    /// `C_Encrypt`.
    pub fn encrypt(
        &self,
        session: u64,
        handle: ObjectHandle,
        mechanism: &CipherMechanism,
        data: &[u8],
    ) -> Result<Encrypted> {
        let key = self.key_for(session, Operation::Encrypt, handle, Usage::Encrypt)?;
        Ok(self.module.encrypt(&key, mechanism, data)?)
    }

    /// `C_Decrypt`. The plaintext is returned in a zeroizing buffer.
    pub fn decrypt(
        &self,
        session: u64,
        handle: ObjectHandle,
        mechanism: &CipherMechanism,
        data: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        let key = self.key_for(session, Operation::Decrypt, handle, Usage::Decrypt)?;
        Ok(Zeroizing::new(self.module.decrypt(&key, mechanism, data)?))
    }

    /// `C_Digest`.
    pub fn digest(&self, session: u64, hash: HashAlg, data: &[u8]) -> Result<Vec<u8>> {
        let role = self.session_role(session)?;
        permission::check(role, Operation::Digest)?;
        Ok(self.module.digest(hash, data)?)
    }

    /// `C_GenerateRandom`: needs a session, not a login. At most [`MAX_RANDOM_LEN`] bytes a
    /// call, so that one request cannot make the node allocate without bound.
    pub fn generate_random(&self, session: u64, len: usize) -> Result<Vec<u8>> {
        let role = self.session_role(session)?;
        permission::check(role, Operation::GenerateRandom)?;
        if len > MAX_RANDOM_LEN {
            return Err(HsmError::Crypto(coffer_crypto::CryptoError::DataLenRange(format!(
                "at most {MAX_RANDOM_LEN} random bytes a call, not {len}"
            ))));
        }
        Ok(self.module.random(len)?)
    }

    /// `C_WrapKey`: only the key's owner exports it; the wrapping key may be shared. Audited
    /// as `CN_WRAP_KEY`, success or failure, and fail closed: no wrapped bytes leave unless
    /// the journal recorded the event.
    pub fn wrap_key(
        &self,
        session: u64,
        wrapping_key: ObjectHandle,
        mechanism: &WrapMechanism,
        key: ObjectHandle,
        journal: &mut dyn Journal,
    ) -> Result<Encrypted> {
        let result = self.wrap_inner(session, wrapping_key, mechanism, key);
        let event = self.event(
            session,
            Opcode::CN_WRAP_KEY,
            vec![wrapping_key.0, key.0],
            None,
            result.as_ref().map(drop),
        );
        journal.record(&[event], &[]).map_err(|e| HsmError::JournalFailed(e.0))?;
        result
    }

    fn wrap_inner(
        &self,
        session: u64,
        wrapping_key: ObjectHandle,
        mechanism: &WrapMechanism,
        key: ObjectHandle,
    ) -> Result<Encrypted> {
        let (actor, role) = self.caller(session)?;
        permission::check(Some(role), Operation::WrapKey)?;
        let (wrapping, wrap_key) = self.usable(session, &actor.user, wrapping_key, Usage::Wrap)?;
        let target = self.owned(session, &actor.user, key)?;
        check_wrap(wrapping.object(), target.object())?;
        let target_key = self.open(&target)?;
        Ok(self.module.wrap(&wrap_key, mechanism, &target_key)?)
    }

    /// `C_EncryptInit` for a multi-part encryption (AES mechanisms): the stream of a visible
    /// key whose `CKA_ENCRYPT` allows it. The caller drives it with `update` and `finish`
    /// without holding the HSM: a long stream does not block other requests.
    pub fn encrypt_init(
        &self,
        session: u64,
        handle: ObjectHandle,
        mechanism: &CipherMechanism,
    ) -> Result<CipherStream> {
        let key = self.key_for(session, Operation::Encrypt, handle, Usage::Encrypt)?;
        Ok(self.module.encrypt_init(&key, mechanism)?)
    }

    /// `C_DecryptInit` for a multi-part decryption (AES mechanisms), as
    /// [`encrypt_init`](Self::encrypt_init) with `CKA_DECRYPT`.
    pub fn decrypt_init(
        &self,
        session: u64,
        handle: ObjectHandle,
        mechanism: &CipherMechanism,
    ) -> Result<DecryptStream> {
        let key = self.key_for(session, Operation::Decrypt, handle, Usage::Decrypt)?;
        Ok(self.module.decrypt_init(&key, mechanism)?)
    }

    // ---- client mutual TLS ------------------------------------------------------------------

    /// `cluster mtls register-trust-anchor`: an admin registers a client trust anchor. The
    /// node has parsed and checked the certificate and computed `fingerprint`.
    pub fn prepare_register_trust_anchor(
        &self,
        session: u64,
        fingerprint: &str,
        certificate_pem: &str,
    ) -> Result<Prepared> {
        let actor = self.cluster_admin(session)?;
        let anchor = TrustAnchor {
            fingerprint: normalize_fingerprint(fingerprint)?,
            certificate_pem: certificate_pem.to_owned(),
        };
        crate::mtls::check_new_anchor(self.state.mtls(), &anchor)?;
        Ok(Prepared::Command(Command::RegisterTrustAnchor { actor, anchor }))
    }

    /// `cluster mtls deregister-trust-anchor`: an admin removes an anchor by fingerprint.
    pub fn prepare_deregister_trust_anchor(&self, session: u64, fingerprint: &str) -> Result<Prepared> {
        let actor = self.cluster_admin(session)?;
        let fingerprint = normalize_fingerprint(fingerprint)?;
        if self.state.mtls().anchor(&fingerprint).is_none() {
            return Err(HsmError::AttributeValueInvalid(format!(
                "no client trust anchor with fingerprint {fingerprint} is registered"
            )));
        }
        Ok(Prepared::Command(Command::DeregisterTrustAnchor { actor, fingerprint }))
    }

    /// `cluster mtls set-enforcement`: an admin makes client certificates mandatory or not.
    pub fn prepare_set_mtls_enforcement(&self, session: u64, enforce: bool) -> Result<Prepared> {
        let actor = self.cluster_admin(session)?;
        if enforce && self.state.mtls().anchors.is_empty() {
            return Err(HsmError::ActionProhibited(
                "register a client trust anchor before enforcing mutual TLS, or every client would be refused"
                    .into(),
            ));
        }
        Ok(Prepared::Command(Command::SetMtlsEnforcement { actor, enforce }))
    }

    /// The client mTLS settings: public certificates, readable on any session (as cluster
    /// information is).
    pub fn trust_anchors(&self, session: u64) -> Result<&MtlsSettings> {
        let role = self.session_role(session)?;
        permission::check(role, Operation::ClusterInfo)?;
        Ok(self.state.mtls())
    }

    /// The caller of a cluster-settings change: an admin, on an ACTIVE cluster.
    fn cluster_admin(&self, session: u64) -> Result<Actor> {
        let (actor, role) = self.caller(session)?;
        permission::check(Some(role), Operation::SetClusterSettings)?;
        self.require_cluster(&[ClusterState::Active])?;
        Ok(actor)
    }

    // ---- lookups --------------------------------------------------------------------------

    fn require_cluster(&self, allowed: &[ClusterState]) -> Result<()> {
        let state = self.state.cluster().state;
        if allowed.contains(&state) {
            Ok(())
        } else {
            Err(HsmError::ClusterState(format!("the cluster is {}", state.name())))
        }
    }

    /// The logged-in caller of a session and their current role.
    fn caller(&self, session: u64) -> Result<(Actor, Role)> {
        let user = self.sessions.get(session)?.user().ok_or(HsmError::NotLoggedIn)?;
        let role = self.state.role_of(user).ok_or(HsmError::NotLoggedIn)?;
        Ok((Actor { session, user: user.to_owned() }, role))
    }

    /// The role on a session, `None` if nobody is logged in (the session must exist).
    fn session_role(&self, session: u64) -> Result<Option<Role>> {
        Ok(self.sessions.get(session)?.user().and_then(|u| self.state.role_of(u)))
    }

    /// An object the user can see: a token object they own or share, or an object of this
    /// session. Anything else is `ObjectHandleInvalid`, as if it did not exist.
    fn visible(&self, session: u64, user: &str, handle: ObjectHandle) -> Result<Visible<'_>> {
        if is_session_handle(handle) {
            return Ok(Visible::Session(self.sessions.get(session)?.object(handle)?));
        }
        Ok(Visible::Token(self.state.objects().visible_to(handle, user)?))
    }

    /// An object the user owns (`NotPermitted` if merely shared with them).
    fn owned(&self, session: u64, user: &str, handle: ObjectHandle) -> Result<Visible<'_>> {
        let visible = self.visible(session, user, handle)?;
        if visible.object().owner() != user {
            return Err(HsmError::NotPermitted(format!(
                "key {handle} is shared with {user}; only its owner may manage it"
            )));
        }
        Ok(visible)
    }

    /// A visible key whose attributes allow `usage`, opened.
    fn usable(
        &self,
        session: u64,
        user: &str,
        handle: ObjectHandle,
        usage: Usage,
    ) -> Result<(Visible<'_>, Arc<Key>)> {
        let visible = self.visible(session, user, handle)?;
        if !visible.object().class().is_key() {
            return Err(HsmError::KeyHandleInvalid(handle.0));
        }
        check_usage(visible.object(), usage)?;
        let key = self.open(&visible)?;
        Ok((visible, key))
    }

    fn key_for(&self, session: u64, op: Operation, handle: ObjectHandle, usage: Usage) -> Result<Arc<Key>> {
        let (actor, role) = self.caller(session)?;
        permission::check(Some(role), op)?;
        self.usable(session, &actor.user, handle, usage).map(|(_, key)| key)
    }

    /// The opened key of a visible object: a session object's own, or a token object's from
    /// the cache (unsealed on first use).
    fn open(&self, visible: &Visible<'_>) -> Result<Arc<Key>> {
        match visible {
            Visible::Session(so) => so.key.clone().ok_or(HsmError::KeyHandleInvalid(so.object.handle().0)),
            Visible::Token(object) => {
                if let Some(key) = self.cache_lock().get(&object.handle()) {
                    return Ok(key.clone());
                }
                let key = Arc::new(crate::material::open_key(&self.module, &self.domain_key, object)?);
                let mut cache = self.cache_lock();
                if cache.len() >= KEY_CACHE_CAPACITY {
                    cache.pop_first();
                }
                cache.insert(object.handle(), key.clone());
                Ok(key)
            }
        }
    }

    fn cache_lock(&self) -> MutexGuard<'_, BTreeMap<ObjectHandle, Arc<Key>>> {
        // A panic while holding the lock cannot leave the map half-changed (every change is
        // one call), so a poisoned lock is still usable.
        self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The two templates of a key pair, each given the other's `CKA_ID` and `CKA_LABEL` where it
/// names none.
fn pair_templates(public: &Template, private: &Template) -> (Template, Template) {
    let mut public_out = public.clone();
    let mut private_out = private.clone();
    for ty in [AttributeType::Id, AttributeType::Label] {
        match (public.get(ty), private.get(ty)) {
            (Some(value), None) => private_out.push(crate::attribute::Attribute { ty, value: value.clone() }),
            (None, Some(value)) => public_out.push(crate::attribute::Attribute { ty, value: value.clone() }),
            _ => {}
        }
    }
    (public_out, private_out)
}

/// `CKA_CLASS` and `CKA_KEY_TYPE` from an unwrap template.
fn class_and_key_type(template: &Template) -> Result<(ObjectClass, KeyType)> {
    let class = template
        .get(AttributeType::Class)
        .ok_or_else(|| HsmError::TemplateIncomplete("an unwrapped key needs CKA_CLASS".into()))?
        .as_ulong(AttributeType::Class)?;
    let class = ObjectClass::try_from(class)?;
    let key_type = template
        .get(AttributeType::KeyType)
        .ok_or_else(|| HsmError::TemplateIncomplete("an unwrapped key needs CKA_KEY_TYPE".into()))?
        .as_ulong(AttributeType::KeyType)?;
    let key_type = key_type_from_code(key_type).ok_or_else(|| {
        HsmError::AttributeValueInvalid(format!("CKA_KEY_TYPE {key_type:#x} is not supported"))
    })?;
    Ok((class, key_type))
}
