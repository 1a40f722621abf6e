//! Shared test fixture: one node's HSM with an in-memory journal, and the log of every
//! command it applied (for replay).
#![allow(dead_code)]

use coffer_crypto::Module;
use coffer_hsm::attribute::{Attribute, AttributeType, Template};
use coffer_hsm::journal::Journal;
use coffer_hsm::{
    Command, Hsm, HsmError, HsmState, Limits, MemoryJournal, ObjectHandle, Outcome, Prepared, Result, Role,
    SessionLimits,
};
use coffer_store::DomainKey;

/// Low on purpose: tests hash many passwords.
pub const TEST_ITERATIONS: u32 = 1_000;
pub const CERT: &str = "-----BEGIN CERTIFICATE-----\nTUlJQg==\n-----END CERTIFICATE-----\n";
pub const ANCHOR: &str = "-----BEGIN CERTIFICATE-----\nQU5DSE9S\n-----END CERTIFICATE-----\n";
pub const ADMIN_PASSWORD: &[u8] = b"admin-secret-1";

pub fn test_limits() -> Limits {
    Limits { pbkdf2_iterations: TEST_ITERATIONS, ..Limits::default() }
}

/// One node with a memory journal and a command log.
pub struct Node {
    pub hsm: Hsm,
    pub journal: MemoryJournal,
    pub log: Vec<Command>,
}

impl Node {
    /// An UNINITIALIZED cluster.
    pub fn uninitialized(limits: Limits) -> Node {
        let module = Module::power_on();
        let domain = DomainKey::generate(&module).expect("domain key");
        let state = HsmState::new(limits).expect("state");
        Node {
            hsm: Hsm::new(state, module, domain, SessionLimits::default()),
            journal: MemoryJournal::new(),
            log: vec![],
        }
    }

    /// An ACTIVE cluster; returns the node and a session logged in as the admin.
    pub fn active() -> (Node, u64) {
        Self::active_with(test_limits())
    }

    pub fn active_with(limits: Limits) -> (Node, u64) {
        let mut node = Self::uninitialized(limits);
        let p = node.hsm.prepare_initialize(CERT, ANCHOR);
        node.run(p).expect("initialize");
        let admin = node.login("admin", b"password").expect("PRECO login");
        let p = node.hsm.prepare_change_password(admin, "admin", ADMIN_PASSWORD);
        node.run(p).expect("activation");
        (node, admin)
    }

    /// Submits a prepared change with this node's journal, logging any command.
    pub fn run(&mut self, prepared: Result<Prepared>) -> Result<Outcome> {
        let prepared = prepared?;
        if let Prepared::Command(cmd) = &prepared {
            self.log.push(cmd.clone());
        }
        self.hsm.submit(prepared, &mut self.journal)
    }

    /// Submits with another journal (e.g. a failing one).
    pub fn run_with(&mut self, prepared: Result<Prepared>, journal: &mut dyn Journal) -> Result<Outcome> {
        self.hsm.submit(prepared?, journal)
    }

    /// Opens a session and logs in.
    pub fn login(&mut self, name: &str, password: &[u8]) -> Result<u64> {
        let session = self.hsm.open_session(1)?;
        let p = self.hsm.prepare_login(session, name, password);
        self.run(p)?;
        Ok(session)
    }

    /// Logs in on an existing session.
    pub fn login_on(&mut self, session: u64, name: &str, password: &[u8]) -> Result<Outcome> {
        let p = self.hsm.prepare_login(session, name, password);
        self.run(p)
    }

    /// Creates a user as the admin on `admin` and logs them in on a new session.
    pub fn user(&mut self, admin: u64, name: &str, role: Role, password: &[u8]) -> u64 {
        let p = self.hsm.prepare_create_user(admin, name, role, password);
        self.run(p).expect("create user");
        self.login(name, password).expect("login")
    }

    /// Generates a token AES key as the user on `session`.
    pub fn aes_key(&mut self, session: u64, label: &str) -> ObjectHandle {
        let template = token_template(label)
            .with(Attribute::bool(AttributeType::Encrypt, true))
            .with(Attribute::bool(AttributeType::Decrypt, true))
            .with(Attribute::bool(AttributeType::Wrap, true))
            .with(Attribute::bool(AttributeType::Unwrap, true));
        let p =
            self.hsm.prepare_generate_key(session, &coffer_crypto::KeySpec::Aes { len_bytes: 32 }, &template);
        match self.run(p) {
            Ok(Outcome::ObjectsCreated { handles }) => handles[0],
            other => panic!("generate failed: {other:?}"),
        }
    }

    /// Generates a token Ed25519 key pair; returns (public, private).
    pub fn ed25519_pair(&mut self, session: u64, label: &str) -> (ObjectHandle, ObjectHandle) {
        let public = token_template(label).with(Attribute::bool(AttributeType::Verify, true));
        let private = Template::new()
            .with(Attribute::bool(AttributeType::Token, true))
            .with(Attribute::bool(AttributeType::Sign, true));
        let p =
            self.hsm.prepare_generate_key_pair(session, &coffer_crypto::KeySpec::Ed25519, &public, &private);
        match self.run(p) {
            Ok(Outcome::ObjectsCreated { handles }) => (handles[0], handles[1]),
            other => panic!("generate pair failed: {other:?}"),
        }
    }

    pub fn digest(&self) -> Vec<u8> {
        self.hsm.state().state_digest(self.hsm.module()).expect("digest")
    }

    pub fn snapshot(&self) -> Vec<u8> {
        self.hsm.state().snapshot_bytes().expect("snapshot")
    }
}

/// A template for a token object with a label.
pub fn token_template(label: &str) -> Template {
    Template::new()
        .with(Attribute::bool(AttributeType::Token, true))
        .with(Attribute::bytes(AttributeType::Label, label.as_bytes().to_vec()))
}

/// Asserts an error variant without caring about its message.
#[track_caller]
pub fn assert_err<T: std::fmt::Debug>(result: Result<T>, expected: fn(&HsmError) -> bool) {
    match result {
        Err(e) if expected(&e) => {}
        other => panic!("unexpected result: {other:?}"),
    }
}

pub fn role_of(node: &Node, name: &str) -> Option<Role> {
    node.hsm.state().user(name).map(|u| u.role)
}
