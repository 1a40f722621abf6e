//! Real processes for the CLI's tests: `coffer up` on loopback in a temp dir, `coffer` in
//! single-command mode, and scripts piped into `coffer interactive`. Everything is bounded in
//! time; a process left behind by a failed test is killed when its guard drops.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long `coffer up` may take to print its ready line.
const UP_TIMEOUT: Duration = Duration::from_secs(120);
/// How long any single `coffer` command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

pub fn coffer_bin() -> PathBuf {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_coffer"));
    let cofferd = bin.with_file_name("cofferd");
    assert!(
        cofferd.is_file(),
        "cofferd is missing at {}: these tests need the node binary beside coffer \
         (run `cargo build -p coffer-node` or test the workspace)",
        cofferd.display()
    );
    bin
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// A running `coffer up`.
pub struct Up {
    child: Option<Child>,
    pub dir: PathBuf,
    pub ready: Value,
    /// The first node's client and metrics addresses.
    pub listen: String,
    pub metrics: String,
    pub stderr_log: PathBuf,
}

impl Up {
    /// Starts `coffer up` on `dir` with the admin password in `password_file`, and waits for
    /// its ready line.
    pub fn start(dir: &Path, password_file: &Path) -> Up {
        Self::start_with(dir, Some(password_file))
    }

    /// Starts `coffer up` on `dir`, with or without an admin password file.
    pub fn start_with(dir: &Path, password_file: Option<&Path>) -> Up {
        Self::start_nodes(dir, password_file, 1)
    }

    /// Starts `coffer up --nodes nodes` on `dir`. The other nodes' ports follow the first's
    /// (+10, +20, …), which were free a moment ago as far as anyone can tell.
    pub fn start_nodes(dir: &Path, password_file: Option<&Path>, nodes: u32) -> Up {
        let listen = format!("127.0.0.1:{}", free_port());
        let metrics = format!("127.0.0.1:{}", free_port());
        Self::start_on(dir, password_file, nodes, listen, metrics, &[])
    }

    /// Starts `coffer up` on these addresses: again where it ran before, since a cluster's
    /// nodes keep their addresses.
    pub fn start_on(
        dir: &Path,
        password_file: Option<&Path>,
        nodes: u32,
        listen: String,
        metrics: String,
        extra: &[&str],
    ) -> Up {
        let stderr_log = dir.with_extension("up-stderr.log");
        let stderr = std::fs::File::create(&stderr_log).expect("stderr log");
        let mut command = Command::new(coffer_bin());
        command.args(["up", "--dir"]).arg(dir).args(["--listen", &listen, "--metrics-listen", &metrics]);
        command.args(["--nodes", &nodes.to_string()]).args(extra);
        if let Some(file) = password_file {
            command.arg("--admin-password-file").arg(file);
        }
        let mut child = command
            .env("COFFER_DEV_FAST_KDF", "1")
            .env_remove("COFFER_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start coffer up");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut up = Up {
            child: Some(child),
            dir: dir.to_path_buf(),
            ready: Value::Null,
            stderr_log,
            listen,
            metrics,
        };
        let deadline = Instant::now() + UP_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.starts_with('{') => {
                    let json: Value = serde_json::from_str(&line).expect("JSON ready line");
                    assert_eq!(json["error_code"], 0, "coffer up failed: {json}\n{}", up.stderr());
                    up.ready = json["data"].clone();
                    // Keep draining stdout so coffer up never blocks on a full pipe.
                    std::thread::spawn(move || while rx.recv().is_ok() {});
                    return up;
                }
                Ok(_) => {}
                Err(_) => panic!("coffer up printed no ready line in time\n{}", up.stderr()),
            }
        }
    }

    pub fn client_config(&self) -> PathBuf {
        PathBuf::from(self.ready["client_config"].as_str().expect("client_config"))
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    /// Stops `coffer up` with SIGTERM (through the `kill` command) and waits for it.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("coffer up did not stop after SIGTERM\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            std::thread::sleep(Duration::from_millis(500));
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Credentials for single-command mode.
pub struct As<'a> {
    pub role: &'a str,
    pub user: &'a str,
    pub password: &'a str,
}

/// Runs one `coffer` command; returns its JSON output and exit status.
pub fn coffer(config: &Path, login: Option<As<'_>>, args: &[&str]) -> (Value, i32) {
    let mut command = Command::new(coffer_bin());
    command.args(args).env("COFFER_CONFIG", config).env_remove("COFFER_ROLE").env_remove("COFFER_PIN");
    if let Some(login) = login {
        command
            .env("COFFER_ROLE", login.role)
            .env("COFFER_PIN", format!("{}:{}", login.user, login.password));
    }
    let output = run_bounded(command.stdin(Stdio::null()), None);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    let json: Value = serde_json::from_str(line).unwrap_or_else(|e| {
        panic!("coffer {args:?}: not JSON ({e}): {stdout}\n{}", String::from_utf8_lossy(&output.stderr))
    });
    (json, output.status.code().unwrap_or(-1))
}

/// Runs `coffer`, asserting success; returns `data`.
pub fn ok(config: &Path, login: Option<As<'_>>, args: &[&str]) -> Value {
    let (json, status) = coffer(config, login, args);
    assert_eq!((json["error_code"].as_u64(), status), (Some(0), 0), "coffer {args:?}: {json}");
    json["data"].clone()
}

/// Runs `coffer`, asserting failure; returns the JSON.
pub fn fails(config: &Path, login: Option<As<'_>>, args: &[&str]) -> Value {
    let (json, status) = coffer(config, login, args);
    assert_ne!(status, 0, "coffer {args:?} should fail: {json}");
    assert_ne!(json["error_code"], 0, "coffer {args:?} should fail: {json}");
    assert!(json["data"].is_string(), "{json}");
    json
}

/// Pipes `script` into `coffer interactive`; returns one JSON value per output line.
pub fn shell(config: &Path, script: &str) -> Vec<Value> {
    let mut command = Command::new(coffer_bin());
    command
        .arg("interactive")
        .env("COFFER_CONFIG", config)
        .env_remove("COFFER_ROLE")
        .env_remove("COFFER_PIN");
    let output = run_bounded(&mut command, Some(script));
    assert!(output.status.success(), "coffer interactive: {:?}", output.status);
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn run_bounded(command: &mut Command, input: Option<&str>) -> std::process::Output {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    if input.is_some() {
        command.stdin(Stdio::piped());
    }
    let mut child = command.spawn().expect("start coffer");
    if let Some(input) = input {
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(input.as_bytes()).expect("write script");
    }
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(COMMAND_TIMEOUT) {
        Ok(output) => output.expect("coffer output"),
        Err(_) => {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            panic!("coffer did not finish within {COMMAND_TIMEOUT:?}");
        }
    }
}
