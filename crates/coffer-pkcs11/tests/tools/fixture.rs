//! The token the tools are pointed at, and a bounded way to run them.
//!
//! [`Token::under_test`] is Coffer's library (`libcoffer_pkcs11.so`, built beside this test)
//! over a node started in this process on loopback, initialised with a throwaway development
//! CA, activated, with one crypto-user whose `user:password` is the PIN. With
//! `COFFER_TOOLS_REFERENCE=softhsm` it is SoftHSM2's library over a token initialised in a
//! temp dir instead: the same tests then show what the tools do against a reference module
//! (where SoftHSM 2.6.1 lacks something Coffer has, the test names it through
//! [`Kind::SoftHsm`]).
//!
//! Every tool runs as a child process with the token's configuration in its environment
//! (`COFFER_CONFIG` or `SOFTHSM2_CONF`), in the token's temp dir, and is killed if it has not
//! finished within its limit.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use coffer_client::{ClientConfig, blocking, v1};
use coffer_crypto::Module;
use coffer_node::config::NodeConfig;
use coffer_node::pki::DevCa;
use coffer_node::{Node, RunningNode};

/// The crypto-user the tools log in as, and its password (throwaway, for this test only).
const USER: &str = "tools_user";
const USER_PASSWORD: &str = "tools-user-pw-1";
/// The factory credentials of a new cluster's pre-crypto-officer, and the admin password
/// the test gives it.
const PRECO: &str = "admin";
const PRECO_PASSWORD: &[u8] = b"password";
const ADMIN_PASSWORD: &[u8] = b"tools-admin-pw-1";
/// SoftHSM's reference token.
pub const SOFTHSM_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const SOFTHSM_LABEL: &str = "tools";
const SOFTHSM_PIN: &str = "tools-user-pin-1";
/// How long bringing the node up may take.
const NODE_LIMIT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Coffer,
    SoftHsm,
}

/// A PKCS#11 module with a token to log in to, its configuration, and a temp dir for the
/// files the tools read and write.
pub struct Token {
    pub kind: Kind,
    pub module: PathBuf,
    /// The PIN: `user:password` for Coffer.
    pub pin: String,
    /// The token's slot ID.
    pub slot: u64,
    /// The tools' working directory.
    pub dir: tempfile::TempDir,
    env: Vec<(&'static str, PathBuf)>,
    node: Option<LocalNode>,
}

impl Token {
    /// Coffer's token, or SoftHSM's with `COFFER_TOOLS_REFERENCE=softhsm`.
    pub fn under_test() -> Token {
        match std::env::var("COFFER_TOOLS_REFERENCE").as_deref() {
            Ok("softhsm") => Token::softhsm(),
            _ => Token::coffer(),
        }
    }

    fn coffer() -> Token {
        let module = coffer_module();
        let dir = tempfile::tempdir().expect("temp dir");
        let node = LocalNode::start(dir.path());
        let config = node.bring_up(dir.path());
        let client_toml = dir.path().join("client.toml");
        std::fs::write(&client_toml, config.to_toml()).expect("write client.toml");
        Token {
            kind: Kind::Coffer,
            module,
            pin: format!("{USER}:{USER_PASSWORD}"),
            slot: 0,
            dir,
            env: vec![("COFFER_CONFIG", client_toml)],
            node: Some(node),
        }
    }

    fn softhsm() -> Token {
        require("softhsm2-util", "softhsm2");
        let dir = tempfile::tempdir().expect("temp dir");
        let tokens = dir.path().join("softhsm-tokens");
        std::fs::create_dir(&tokens).expect("token dir");
        let config = dir.path().join("softhsm2.conf");
        let text = format!("directories.tokendir = {}\nobjectstore.backend = file\n", tokens.display());
        std::fs::write(&config, text).expect("write softhsm2.conf");
        let mut token = Token {
            kind: Kind::SoftHsm,
            module: PathBuf::from(SOFTHSM_MODULE),
            pin: SOFTHSM_PIN.to_owned(),
            slot: 0,
            dir,
            env: vec![("SOFTHSM2_CONF", config)],
            node: None,
        };
        let out = token.run(
            "softhsm2-util",
            [
                "--init-token",
                "--free",
                "--label",
                SOFTHSM_LABEL,
                "--so-pin",
                "tools-so-pin-1",
                "--pin",
                SOFTHSM_PIN,
            ],
        );
        out.assert_success();
        // "The token has been initialized and is reassigned to slot N"
        let slot = out.stdout.rsplit(' ').next().and_then(|n| n.trim().parse().ok());
        token.slot = slot.unwrap_or_else(|| panic!("no slot number in {:?}", out.stdout));
        token
    }

    /// A file in the tools' working directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs a tool to completion within [`TOOL_LIMIT`], without input.
    pub fn run<I, S>(&self, program: &str, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.run_with(program, args, &[], TOOL_LIMIT)
    }

    /// Runs a tool to completion within `limit`, with `extra` in its environment.
    pub fn run_with<I, S>(&self, program: &str, args: I, extra: &[(&str, &OsStr)], limit: Duration) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let n = RUNS.fetch_add(1, Ordering::Relaxed);
        let (out_path, err_path) = (self.path(&format!(".run{n}.out")), self.path(&format!(".run{n}.err")));
        let mut command = self.command(program);
        command
            .args(args)
            .envs(extra.iter().copied())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out_path).expect("stdout file"))
            .stderr(std::fs::File::create(&err_path).expect("stderr file"));
        let described = format!("{command:?}");
        let mut child = command.spawn().unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
        let status = wait_bounded(&mut child, limit);
        let read = |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned();
        let output = Output { command: described, status, stdout: read(&out_path), stderr: read(&err_path) };
        if output.status.is_none() {
            panic!("{} did not finish within {}s\n{output}", program, limit.as_secs());
        }
        output
    }

    /// A command for `program` in the working directory with the token's configuration in
    /// its environment.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command.current_dir(self.dir.path()).envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    /// Starts a long-running tool, with `extra` in its environment, whose output lines
    /// (stdout and stderr) are read as they come.
    pub fn spawn_with_env<I, S>(&self, program: &str, args: I, extra: &[(&str, &OsStr)]) -> Background
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut child = self
            .command(program)
            .args(args)
            .envs(extra.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
        let (tx, lines) = mpsc::channel();
        for stream in [
            child.stdout.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child.stderr.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Background { name: program.to_owned(), child, lines, seen: Vec::new() }
    }
}

impl Drop for Token {
    fn drop(&mut self) {
        if let Some(node) = self.node.take() {
            node.stop();
        }
    }
}

/// Coffer's library as cargo built it with this test: in `deps/` beside the test executable
/// (a test run builds it there; the copy in `target/<profile>/` is refreshed only by
/// `cargo build`, and a fresh clone under `cargo nextest run` has none), else in that root.
fn coffer_module() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let deps = exe.parent().expect("target/<profile>/deps");
    let candidates = [deps.join("libcoffer_pkcs11.so"), deps.join("..").join("libcoffer_pkcs11.so")];
    match candidates.iter().find(|p| p.is_file()) {
        Some(module) => module.clone(),
        None => panic!(
            "libcoffer_pkcs11.so is missing (looked at {} and {}): build it with `cargo build -p coffer-pkcs11`",
            candidates[0].display(),
            candidates[1].display()
        ),
    }
}

/// Every tool run is bounded by this unless it says otherwise.
pub const TOOL_LIMIT: Duration = Duration::from_secs(60);
static RUNS: AtomicUsize = AtomicUsize::new(0);

/// Waits for the child until `limit`; kills it (and returns `None`) if it is still running.
fn wait_bounded(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _killed = child.kill();
                let _reaped = child.wait();
                return None;
            }
        }
    }
}

/// Fails the test, naming the Debian package, if `tool` is not on the PATH.
pub fn require(tool: &str, package: &str) {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path).any(|dir| dir.join(tool).is_file());
    assert!(
        found,
        "{tool} is not installed: install the Debian package {package} (scripts/test.sh installs it)"
    );
}

/// What a finished tool printed, and how it exited.
pub struct Output {
    pub command: String,
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }

    /// Both streams, as the tools mix their messages between them.
    pub fn text(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        assert_eq!(self.code(), Some(0), "{self}");
        self
    }

    #[track_caller]
    pub fn assert_contains(&self, needle: &str) -> &Self {
        assert!(self.text().contains(needle), "{needle:?} not in the output of\n{self}");
        self
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "$ {}\nexit: {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.command, self.status, self.stdout, self.stderr
        )
    }
}

/// A tool left running (a server, a client waiting for input), killed on drop.
pub struct Background {
    name: String,
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Every line read so far, for failure messages.
    pub seen: Vec<String>,
}

impl Background {
    /// Reads lines until one contains `needle`; panics with what was read after `limit`.
    pub fn wait_for(&mut self, needle: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let hit = line.contains(needle);
                    self.seen.push(line);
                    if hit {
                        return;
                    }
                }
                Err(_) => panic!(
                    "{} did not print {needle:?} within {}s; it printed:\n{}",
                    self.name,
                    limit.as_secs(),
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Writes to the tool's stdin.
    pub fn send(&mut self, text: &str) {
        let stdin = self.child.stdin.as_mut().expect("stdin is piped");
        stdin.write_all(text.as_bytes()).and_then(|()| stdin.flush()).expect("write to the tool");
    }

    /// Waits for the tool to exit by itself within `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        wait_bounded(&mut self.child, limit)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _killed = self.child.kill();
        }
        let _reaped = self.child.wait();
    }
}

// ---- the node ----------------------------------------------------------------------------

/// A node served by its own runtime in this process.
struct LocalNode {
    runtime: tokio::runtime::Runtime,
    running: RunningNode,
}

impl LocalNode {
    /// A node on 127.0.0.1 (a port the system picks), its data and seal key under `dir`,
    /// with the node's minimum PBKDF2 work factor so that logins are quick.
    fn start(dir: &Path) -> LocalNode {
        let path = |name: &str| dir.join(name).to_str().expect("UTF-8 temp dir").to_owned();
        // Paths go in as overrides, so that no path needs quoting as TOML.
        let flags =
            [format!("data_dir={}", path("node-data")), format!("seal.key_file={}", path("seal.key"))];
        let text = "node_id = \"tools-node\"\nlisten = \"127.0.0.1:0\"\n\
                    metrics_listen = \"127.0.0.1:0\"\npbkdf2_iterations = 1000\n";
        let config = NodeConfig::from_sources("tools node", text, Vec::<(String, String)>::new(), &flags)
            .expect("config");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tools-node")
            .enable_all()
            .build()
            .expect("runtime");
        let running = runtime
            .block_on(async { tokio::time::timeout(NODE_LIMIT, Node::start(config)).await })
            .expect("the node started in time")
            .expect("the node started");
        LocalNode { runtime, running }
    }

    /// Initialises the cluster with a new development CA (its certificate written to `dir`),
    /// activates it and creates the crypto-user. Returns the client configuration that
    /// trusts the CA.
    fn bring_up(&self, dir: &Path) -> ClientConfig {
        let module = Module::power_on();
        let mut config = ClientConfig::new(vec![self.running.local_addr().to_string()]);
        config.server_fingerprint = Some(self.running.node().bootstrap_fingerprint().to_owned());
        let boot = blocking::Client::connect(&config).expect("connect pinned");
        let ca = DevCa::create(&module, "coffer-pkcs11-tools").expect("dev CA");
        let cert = ca.sign_csr(&boot.cluster_csr().expect("cluster CSR")).expect("sign the CSR");
        boot.initialize_cluster(&cert, ca.cert_pem()).expect("initialise");
        drop(boot);

        let anchor = dir.join("dev-ca.pem");
        std::fs::write(&anchor, ca.cert_pem()).expect("write the CA certificate");
        config.server_fingerprint = None;
        config.trust_anchor = Some(anchor);
        let client = blocking::Client::connect(&config).expect("connect through the CA");
        let admin = client.open_session().expect("session");
        admin.login_as(PRECO, v1::Role::UnactivatedAdmin, PRECO_PASSWORD).expect("PRECO login");
        admin.change_password_of(PRECO, ADMIN_PASSWORD).expect("activate");
        admin.create_user_as(USER, v1::Role::CryptoUser, USER_PASSWORD.as_bytes()).expect("create the user");
        admin.close().expect("close");
        config
    }

    fn stop(self) {
        let LocalNode { runtime, running } = self;
        let stopped = runtime.block_on(async { tokio::time::timeout(NODE_LIMIT, running.shutdown()).await });
        // A test that already failed should show its own failure, not the shutdown's.
        if !std::thread::panicking() {
            stopped.expect("the node stopped in time").expect("the node stopped");
        }
    }
}
