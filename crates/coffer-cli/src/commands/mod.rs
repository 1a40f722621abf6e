//! Running commands against the cluster: the connection, the session and its login, and one
//! module per command group. Every command returns the JSON `data` of its output;
//! [`crate::error::report`] turns that (or the error) into what is printed.

pub mod audit;
mod cluster;
mod crypto;

pub use cluster::activate;
mod key;
mod user;

use std::path::PathBuf;

use coffer_client::{Client, ClientConfig, ClientError, Session};
use coffer_proto::v1::{LoginRequest, Role};
use serde_json::Value;
use zeroize::Zeroizing;

use crate::args::{ClusterCommand, Command, RoleArg, UserCommand};
use crate::error::{CliError, Result};
use crate::password::EnvCredentials;

impl From<ClientError> for CliError {
    fn from(e: ClientError) -> Self {
        CliError::Hsm { ckr: e.ckr(), message: e.to_string() }
    }
}

impl RoleArg {
    pub fn wire(self) -> Role {
        match self {
            RoleArg::Admin => Role::Admin,
            RoleArg::CryptoUser => Role::CryptoUser,
        }
    }
}

/// cloudhsm-cli's name of a role.
pub fn role_name(role: i32) -> &'static str {
    match Role::try_from(role) {
        Ok(Role::UnactivatedAdmin) => "unactivated-admin",
        Ok(Role::Admin) => "admin",
        Ok(Role::CryptoUser) => "crypto-user",
        Ok(Role::Appliance) => "internal(APPLIANCE_USER)",
        Ok(Role::Unspecified) | Err(_) => "unknown",
    }
}

/// Who the session is logged in as.
#[derive(Debug, Clone)]
pub struct LoggedIn {
    pub username: String,
    pub role: Role,
}

/// One connection to the cluster and one session on it, opened when a command first needs
/// them and kept until [`Context::close`]: across commands in the shell, for one command in
/// single-command mode.
#[derive(Debug)]
pub struct Context {
    config: Option<PathBuf>,
    client: Option<Client>,
    session: Option<Session>,
    logged_in: Option<LoggedIn>,
    /// Single-command mode: log in with these when a session opens.
    env_login: Option<EnvCredentials>,
}

impl Context {
    /// A context for the client configuration file `config` (from `--config` or
    /// `COFFER_CONFIG`).
    pub fn new(config: Option<PathBuf>) -> Self {
        Self { config, client: None, session: None, logged_in: None, env_login: None }
    }

    /// A context on an open connection (for `coffer up`).
    pub fn with_client(client: Client) -> Self {
        Self { config: None, client: Some(client), session: None, logged_in: None, env_login: None }
    }

    /// Single-command mode: log in with `COFFER_ROLE` / `COFFER_PIN` once a session opens.
    pub fn with_env_login(mut self, credentials: Option<EnvCredentials>) -> Self {
        self.env_login = credentials;
        self
    }

    /// Runs one command.
    pub async fn run(&mut self, command: &Command) -> Result<Value> {
        if needs_login(command) && self.logged_in.is_none() && self.env_login.is_none() {
            return Err(CliError::NotLoggedIn(
                "this command needs a login: run `login --username U --role admin|crypto-user` in \
                 `coffer interactive`, or set COFFER_ROLE and COFFER_PIN=username:password"
                    .into(),
            ));
        }
        match command {
            Command::Cluster(c) => cluster::run(self, c).await,
            Command::Login(args) => user::login(self, args).await,
            Command::Logout => user::logout(self).await,
            Command::User(c) => user::run(self, c).await,
            Command::Key(c) => key::run(self, c).await,
            Command::Crypto(c) => crypto::run(self, c).await,
            Command::Random(args) => crypto::random(self, args).await,
            Command::Audit(c) => audit::run(c),
            Command::Up(_) | Command::Interactive => {
                Err(CliError::Usage("this command cannot run here".into()))
            }
        }
    }

    /// The connection, opened on first use.
    pub async fn client(&mut self) -> Result<&Client> {
        if self.client.is_none() {
            let config = self.load_config()?;
            self.client = Some(Client::connect(&config).await?);
        }
        self.client.as_ref().ok_or_else(|| CliError::Config("no connection".into()))
    }

    fn load_config(&self) -> Result<ClientConfig> {
        let path = self.config.as_ref().ok_or_else(|| {
            CliError::Config(
                "no client configuration: give --config FILE or set COFFER_CONFIG \
                 (`coffer up` prints it)"
                    .into(),
            )
        })?;
        Ok(ClientConfig::load(path)?)
    }

    /// The session, opened on first use; in single-command mode it is logged in from
    /// `COFFER_ROLE` / `COFFER_PIN` first.
    pub async fn session(&mut self) -> Result<&Session> {
        if self.session.is_none() {
            let session = self.client().await?.open_session().await?;
            self.session = Some(session);
            if let Some(creds) = self.env_login.take() {
                let password = Zeroizing::new(creds.password.as_bytes().to_vec());
                self.login(&creds.username, creds.role.wire(), password).await?;
            }
        }
        self.session.as_ref().ok_or_else(|| CliError::Config("no session".into()))
    }

    /// Logs the session in.
    pub async fn login(&mut self, username: &str, role: Role, password: Zeroizing<Vec<u8>>) -> Result<Value> {
        let request = LoginRequest {
            session: Vec::new(),
            username: username.to_owned(),
            role: role as i32,
            password: password.to_vec(),
        };
        let session = self.session_without_env_login().await?;
        let response = session.login(request).await?;
        self.logged_in = Some(LoggedIn { username: response.username.clone(), role });
        Ok(serde_json::json!({
            "username": response.username,
            "role": role_name(response.role),
            "password_change_required": response.password_change_required,
        }))
    }

    /// The session, without consuming the single-command credentials (for `login` itself).
    async fn session_without_env_login(&mut self) -> Result<&Session> {
        if self.session.is_none() {
            let session = self.client().await?.open_session().await?;
            self.session = Some(session);
        }
        self.session.as_ref().ok_or_else(|| CliError::Config("no session".into()))
    }

    /// Forgets the login after a logout.
    pub fn logged_out(&mut self) {
        self.logged_in = None;
    }

    pub fn logged_in(&self) -> Option<&LoggedIn> {
        self.logged_in.as_ref()
    }

    /// Closes the session (best effort: the node drops it anyway when the connection ends).
    pub async fn close(&mut self) {
        if let Some(session) = self.session.take() {
            let _closed = session.close().await;
        }
        self.logged_in = None;
    }
}

/// Whether a command is refused by the HSM without a login (so the CLI says so first).
fn needs_login(command: &Command) -> bool {
    matches!(
        command,
        Command::Cluster(ClusterCommand::Mtls(_))
            | Command::User(
                UserCommand::Create { .. } | UserCommand::Delete { .. } | UserCommand::ChangePassword { .. }
            )
            | Command::Key(_)
            | Command::Crypto(_)
    )
}
