//! `coffer up`: a local development cluster in one command.
//!
//! In `DIR` (default `./coffer-local`, mode 0700) it keeps:
//!
//! | path | what |
//! |---|---|
//! | `cofferd.toml` | the first node's configuration, rewritten on every run |
//! | `cofferd-node-K.toml` | node K's configuration (K = 2 … `--nodes`) |
//! | `node-K/` | node K's data directory (sealed store, raft log, audit log, audit public key) |
//! | `seal/node-K.key` | node K's seal key file, outside its data directory (mode 0600, made by the node) |
//! | `dev-ca.pem` | the local development CA's certificate: the cluster's trust anchor |
//! | `admin-password` | the generated admin password (mode 0600), unless one was given |
//! | `client.toml` | the client configuration (`COFFER_CONFIG=DIR/client.toml coffer …`) |
//! | `members` | the node ids in the cluster, as the last run left them |
//! | `endpoint` | the first node's client address the last run gave: a cluster of several nodes is always run on the same addresses |
//!
//! The development CA's private key is never written: it signs the cluster certificate once,
//! at initialisation, and is dropped. A second run on the same directory finds the cluster
//! initialised and active and only restarts the node.
//!
//! With `--nodes N` (up to [`MAX_NODES`]) the first node founds the cluster as above; nodes 2
//! to N start with `join = true`, and the admin adds each with AddHsm on the first node, which
//! clones the cluster to it (see coffer-node's `membership` module). Node K (counting from
//! 0) listens on `--listen`'s port + 10·K, with metrics on the port after it and its peer port
//! on the one after that; the first node keeps `--listen` and `--metrics-listen`. The client
//! configuration names every node. A second run finds the nodes in the cluster already and
//! only restarts them.
//!
//! `COFFER_DEV_FAST_KDF=1` (development and tests only) sets the node's PBKDF2 work factor to
//! its minimum (1,000 iterations), so that logins and user creation are quick. Never use it
//! for a cluster that holds real keys.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use coffer_client::{Client, ClientConfig};
use coffer_crypto::Module;
use coffer_node::pki::DevCa;
use coffer_proto::v1::{ClusterInfo, ClusterState};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use zeroize::Zeroizing;

use crate::args::UpArgs;
use crate::commands::{Context, activate};
use crate::error::{CliError, Result};
use crate::password;

mod supervise;
use supervise::Up;

/// The development-only switch for a fast password KDF.
pub const FAST_KDF_ENV: &str = "COFFER_DEV_FAST_KDF";
/// The node's PBKDF2 work factor under [`FAST_KDF_ENV`]: the node's minimum.
const FAST_KDF_ITERATIONS: u32 = 1_000;
/// The most nodes `coffer up` runs.
pub const MAX_NODES: usize = 7;
/// How far apart the nodes' client ports are.
const PORT_STRIDE: u16 = 10;
/// How long the node may take to print `cofferd: ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the node may take to stop after being asked to.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// The files of a local cluster directory.
#[derive(Debug, Clone)]
pub struct Layout {
    pub dir: PathBuf,
}

/// The id of node `index` (counting from 0): `node-1`, `node-2`, …
pub fn node_id(index: usize) -> String {
    format!("node-{}", index + 1)
}

impl Layout {
    /// The first node's configuration.
    pub fn node_config(&self) -> PathBuf {
        self.node_config_of(0)
    }
    pub fn node_config_of(&self, index: usize) -> PathBuf {
        if index == 0 {
            self.dir.join("cofferd.toml")
        } else {
            self.dir.join(format!("cofferd-{}.toml", node_id(index)))
        }
    }
    /// The first node's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir_of(0)
    }
    pub fn data_dir_of(&self, index: usize) -> PathBuf {
        self.dir.join(node_id(index))
    }
    pub fn seal_dir(&self) -> PathBuf {
        self.dir.join("seal")
    }
    /// The first node's seal key file.
    pub fn seal_key(&self) -> PathBuf {
        self.seal_key_of(0)
    }
    pub fn seal_key_of(&self, index: usize) -> PathBuf {
        self.seal_dir().join(format!("{}.key", node_id(index)))
    }
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("dev-ca.pem")
    }
    pub fn admin_password(&self) -> PathBuf {
        self.dir.join("admin-password")
    }
    pub fn client_config(&self) -> PathBuf {
        self.dir.join("client.toml")
    }
    /// The nodes of the local cluster, as the last run left them (a replaced node is gone).
    pub fn members(&self) -> PathBuf {
        self.dir.join("members")
    }
    /// The first node's client endpoint as the run that made the members gave it: nodes know
    /// each other by the addresses `--listen` (and `--advertise-ip`) give.
    pub fn endpoint_record(&self) -> PathBuf {
        self.dir.join("endpoint")
    }
    pub fn audit_log(&self) -> PathBuf {
        coffer_node::node::audit_paths(&self.data_dir()).0
    }
}

/// Runs `coffer up` until Ctrl-C or SIGTERM. Returns the JSON printed at the end.
pub async fn run(args: &UpArgs) -> Result<Value> {
    let count = usize::try_from(args.nodes).unwrap_or(usize::MAX);
    if !(1..=MAX_NODES).contains(&count) {
        return Err(CliError::Up(format!("--nodes takes 1 to {MAX_NODES}, not {}", args.nodes)));
    }
    let cofferd = cofferd_path()?;
    let layout = Layout { dir: absolute(&args.dir)? };
    prepare_dir(&layout)?;
    let members = read_members(&layout)?;
    let endpoint = node_ports(args, 0)?.endpoint();
    check_endpoint(&layout, &members, count, &endpoint)?;
    let indexes = node_indexes(members, count);
    let mut up = Up::new(layout.clone(), args, cofferd);
    let result = up.bring_up(&indexes).await;
    let summary = match result {
        Ok(summary) => summary,
        Err(e) => {
            up.stop_all().await;
            return Err(e);
        }
    };
    let record = layout.endpoint_record();
    std::fs::write(&record, format!("{endpoint}\n")).map_err(|e| CliError::io("write", &record, e))?;
    announce(&summary);
    let outcome = up.supervise(summary).await;
    up.stop_all().await;
    outcome.map(
        |reason| json!({ "message": format!("stopped ({reason})"), "dir": layout.dir.display().to_string() }),
    )
}

/// Refuses to move a cluster of several nodes (or one about to get more) to other addresses:
/// the replication group records each member's peer and client address, so nodes started on
/// other ports would not find each other. A lone node may move.
fn check_endpoint(layout: &Layout, members: &[usize], count: usize, endpoint: &str) -> Result<()> {
    let path = layout.endpoint_record();
    let recorded = match std::fs::read_to_string(&path) {
        Ok(text) => text.trim().to_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(CliError::io("read", &path, e)),
    };
    if recorded == endpoint || members.is_empty() || (members.len() == 1 && count == 1) {
        return Ok(());
    }
    Err(CliError::Up(format!(
        "{} holds a cluster of {} node(s) whose members know each other at the addresses that put \
         the first node on {recorded}; run with the --listen (and --advertise-ip) that give {recorded} \
         again, not {endpoint}, or use another --dir",
        layout.dir.display(),
        members.len()
    )))
}

/// The nodes to run: the members recorded by the last run, then new ones up to `count`.
fn node_indexes(mut members: Vec<usize>, count: usize) -> Vec<usize> {
    if members.is_empty() {
        return (0..count).collect();
    }
    let mut next = members.iter().max().map_or(0, |m| m + 1);
    while members.len() < count {
        members.push(next);
        next += 1;
    }
    members
}

/// The node indexes `DIR/members` lists (one node id per line), empty before the first run.
fn read_members(layout: &Layout) -> Result<Vec<usize>> {
    let path = layout.members();
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(CliError::io("read", &path, e)),
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            line.trim()
                .strip_prefix("node-")
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|n| *n >= 1)
                .map(|n| n - 1)
                .ok_or_else(|| CliError::Up(format!("{}: {line:?} is not a node id", path.display())))
        })
        .collect()
}

fn write_members(layout: &Layout, indexes: &[usize]) -> Result<()> {
    let path = layout.members();
    let text: String = indexes.iter().map(|i| format!("{}\n", node_id(*i))).collect();
    std::fs::write(&path, text).map_err(|e| CliError::io("write", &path, e))
}

/// Node `index`'s addresses (see the module documentation).
fn node_ports(args: &UpArgs, index: usize) -> Result<NodePorts> {
    if index == 0 {
        let metrics = args.metrics_listen.unwrap_or_else(|| default_metrics(args.listen));
        let peer = default_peer(args.listen)?;
        return Ok(NodePorts { listen: args.listen, metrics, peer, advertise_ip: args.advertise_ip });
    }
    let stride = u16::try_from(index).ok().and_then(|i| i.checked_mul(PORT_STRIDE));
    let listen = stride.map_or(Err(()), |s| offset_port(args.listen.port(), s).map_err(drop));
    let listen = listen
        .map_err(|()| CliError::Up(format!("--listen's port leaves no room for {}", node_id(index))))?;
    let at = |port: u16| SocketAddr::new(args.listen.ip(), port);
    Ok(NodePorts {
        listen: at(listen),
        metrics: at(offset_port(listen, 1)?),
        peer: at(offset_port(listen, 2)?),
        advertise_ip: args.advertise_ip,
    })
}

fn offset_port(port: u16, by: u16) -> Result<u16> {
    port.checked_add(by).ok_or_else(|| CliError::Up(format!("port {port} + {by} is past 65535")))
}

/// `cofferd` beside this executable.
fn cofferd_path() -> Result<PathBuf> {
    let exe =
        std::env::current_exe().map_err(|e| CliError::Up(format!("cannot find this executable: {e}")))?;
    let path = exe.with_file_name("cofferd");
    if !path.is_file() {
        return Err(CliError::Up(format!(
            "cofferd not found at {} (it is looked for next to coffer; build it with `cargo build -p coffer-node`)",
            path.display()
        )));
    }
    Ok(path)
}

fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).map_err(|e| CliError::io("resolve", path, e))
}

/// The metrics port when none is given: CloudHSM's 2223 gets cofferd's default 2280; any
/// other port the one after it.
fn default_metrics(listen: SocketAddr) -> SocketAddr {
    let port = if listen.port() == coffer_proto::DEFAULT_PORT { 2280 } else { listen.port().wrapping_add(1) };
    SocketAddr::new(listen.ip(), port)
}

/// The first node's peer (raft) port: CloudHSM's 2223 gets cofferd's default 2224; any other
/// port the second after it (the first is the metrics port). It is fixed even for a lone node:
/// the cluster records the address peers dial, and nodes may be added on a later run.
fn default_peer(listen: SocketAddr) -> Result<SocketAddr> {
    let port = if listen.port() == coffer_proto::DEFAULT_PORT {
        coffer_proto::DEFAULT_PEER_PORT
    } else {
        offset_port(listen.port(), 2)?
    };
    Ok(SocketAddr::new(listen.ip(), port))
}

/// The three addresses a node listens on, and the IP it gives others when it listens on
/// every address.
#[derive(Debug, Clone, Copy)]
pub struct NodePorts {
    pub listen: SocketAddr,
    pub metrics: SocketAddr,
    pub peer: SocketAddr,
    pub advertise_ip: Option<IpAddr>,
}

impl NodePorts {
    /// Where clients reach the node, as cofferd advertises it (and names it in its
    /// certificate): `listen`, or on 0.0.0.0 or :: the advertised IP (loopback by default).
    pub fn endpoint(&self) -> String {
        coffer_node::server::advertised(self.listen, self.advertise_ip).to_string()
    }
}

/// Makes `DIR` and `DIR/seal` private to the user.
fn prepare_dir(layout: &Layout) -> Result<()> {
    for dir in [&layout.dir, &layout.seal_dir()] {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| CliError::io("create directory", dir, e))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| CliError::io("restrict", dir, e))?;
    }
    Ok(())
}

/// The first node's configuration file.
pub fn node_config(layout: &Layout, ports: &NodePorts, fast_kdf: bool) -> String {
    node_config_of(layout, 0, ports, fast_kdf)
}

/// Node `index`'s configuration file: the first founds the cluster, the others join it.
pub fn node_config_of(layout: &Layout, index: usize, ports: &NodePorts, fast_kdf: bool) -> String {
    let mut table = toml::Table::new();
    let path = |p: PathBuf| toml::Value::String(p.to_string_lossy().into_owned());
    table.insert("node_id".into(), node_id(index).into());
    table.insert("data_dir".into(), path(layout.data_dir_of(index)));
    if index > 0 {
        // A joining node takes a clone only from the cluster of the local development CA.
        table.insert("join".into(), true.into());
        table.insert("join_trust_anchor".into(), path(layout.ca_cert()));
    }
    table.insert("listen".into(), ports.listen.to_string().into());
    table.insert("metrics_listen".into(), ports.metrics.to_string().into());
    table.insert("peer_listen".into(), ports.peer.to_string().into());
    if let Some(ip) = ports.advertise_ip {
        table.insert("advertise_ip".into(), ip.to_string().into());
    }
    if fast_kdf {
        table.insert("pbkdf2_iterations".into(), i64::from(FAST_KDF_ITERATIONS).into());
    }
    let mut seal = toml::Table::new();
    seal.insert("key_file".into(), path(layout.seal_key_of(index)));
    table.insert("seal".into(), seal.into());
    let header = "# Written by `coffer up` on every run: a local development node. Edit and run cofferd\n\
                  # yourself for anything else.\n";
    format!("{header}{}", toml::to_string(&table).unwrap_or_default())
}

/// What `coffer up` reports once the cluster is ready.
#[derive(Debug)]
struct Summary {
    layout: Layout,
    endpoints: Vec<String>,
    admin_password: Option<PathBuf>,
    reused: bool,
    info: ClusterInfo,
}

/// Brings the first node up: initialised and active.
async fn bring_up_first(
    layout: &Layout,
    args: &UpArgs,
    node: &mut NodeProcess,
    endpoint: String,
) -> Result<Summary> {
    let ready = node.wait_ready().await?;
    let (client, info) = connect(layout, &endpoint, ready.fingerprint.as_deref()).await?;
    let mut info = info;
    let reused = info.state == ClusterState::Active as i32;
    if info.state == ClusterState::Uninitialized as i32 {
        initialize(layout, &client).await?;
    }
    let client = Client::connect(&one_node_config(layout, &endpoint)).await?;
    let admin_password = if info.state == ClusterState::Active as i32 {
        // Already activated: report the password file if there is one, never make a new one.
        let given = args.admin_password_file.as_deref().map(absolute).transpose()?;
        given.or_else(|| Some(layout.admin_password()).filter(|p| p.is_file()))
    } else {
        let path = admin_password_file(layout, args.admin_password_file.as_deref())?;
        let password = password::from_file(&path)?;
        let mut ctx = Context::with_client(client.clone());
        activate(&mut ctx, Zeroizing::new(password.as_bytes().to_vec())).await?;
        ctx.close().await;
        Some(path)
    };
    info = client.cluster_info().await?;
    write_client_config(layout, std::slice::from_ref(&endpoint))?;
    Ok(Summary { layout: layout.clone(), endpoints: vec![endpoint], admin_password, reused, info })
}

/// The client configuration `coffer up` writes: the nodes, trusted through the dev CA.
fn anchored_config(layout: &Layout, endpoints: &[String]) -> ClientConfig {
    let mut config = ClientConfig::new(endpoints.to_vec());
    config.trust_anchor = Some(layout.ca_cert());
    config
}

/// A configuration for the one node at `endpoint`: what is asked of it is about that node, so
/// the client does not go on to the members it lists.
pub(crate) fn one_node_config(layout: &Layout, endpoint: &str) -> ClientConfig {
    let mut config = anchored_config(layout, &[endpoint.to_owned()]);
    config.discover = false;
    config
}

/// Connects to the new node: through the dev CA if the cluster was initialised before,
/// otherwise pinning the bootstrap certificate's fingerprint the node printed.
async fn connect(
    layout: &Layout,
    endpoint: &str,
    fingerprint: Option<&str>,
) -> Result<(Client, ClusterInfo)> {
    let mut first_error = None;
    if layout.ca_cert().is_file() {
        match probe(&one_node_config(layout, endpoint)).await {
            Ok(found) => return Ok(found),
            Err(e) => first_error = Some(e),
        }
    }
    if let Some(fingerprint) = fingerprint {
        let mut config = ClientConfig::new(vec![endpoint.to_owned()]);
        config.server_fingerprint = Some(fingerprint.to_owned());
        return probe(&config).await;
    }
    Err(first_error.unwrap_or_else(|| {
        CliError::Up("the node printed no bootstrap fingerprint and DIR has no dev-ca.pem".into())
    }))
}

async fn probe(config: &ClientConfig) -> Result<(Client, ClusterInfo)> {
    let client = Client::connect(config).await?;
    let info = client.cluster_info().await?;
    Ok((client, info))
}

/// Makes a development CA, signs the cluster CSR with it and initialises the cluster. Only
/// the CA's certificate is kept.
async fn initialize(layout: &Layout, client: &Client) -> Result<()> {
    let module = Module::power_on();
    module.status()?;
    let name = ca_name(&layout.dir);
    let ca = DevCa::create(&module, &name).map_err(|e| CliError::Up(format!("development CA: {e}")))?;
    let csr = client.cluster_csr().await?;
    let cert = ca.sign_csr(&csr).map_err(|e| CliError::Up(format!("signing the cluster CSR: {e}")))?;
    std::fs::write(layout.ca_cert(), ca.cert_pem())
        .map_err(|e| CliError::io("write", &layout.ca_cert(), e))?;
    client.initialize_cluster(&cert, ca.cert_pem()).await?;
    Ok(())
}

/// The development CA's name: `coffer-local` and the directory's name, in the characters a
/// certificate name takes here.
fn ca_name(dir: &Path) -> String {
    let base = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let clean: String = base
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_') { c } else { '_' })
        .take(40)
        .collect();
    if clean.is_empty() { "coffer-local".to_owned() } else { format!("coffer-local {clean}") }
}

/// The admin password's file: the one given, or DIR/admin-password, generated (mode 0600)
/// if it does not exist yet.
fn admin_password_file(layout: &Layout, given: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = given {
        return absolute(path);
    }
    let path = layout.admin_password();
    if path.exists() {
        return Ok(path);
    }
    let module = Module::power_on();
    module.status()?;
    // 18 random bytes: 24 base64 characters, inside the 8-32 character password range.
    let bytes = Zeroizing::new(module.random(18)?);
    let text = Zeroizing::new(base64_url(&bytes));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| CliError::io("create", &path, e))?;
    file.write_all(format!("{}\n", text.as_str()).as_bytes()).map_err(|e| CliError::io("write", &path, e))?;
    Ok(path)
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn write_client_config(layout: &Layout, endpoints: &[String]) -> Result<()> {
    let path = layout.client_config();
    let text = format!(
        "# Written by `coffer up`: the local development cluster in {}.\n{}",
        layout.dir.display(),
        anchored_config(layout, endpoints).to_toml()
    );
    std::fs::write(&path, text).map_err(|e| CliError::io("write", &path, e))
}

/// Prints the ready line (JSON, for scripts) and how to use the cluster.
fn announce(summary: &Summary) {
    let client = summary.layout.client_config();
    let line = json!({
        "error_code": 0,
        "data": {
            "message": if summary.reused { "local cluster restarted" } else { "local cluster created" },
            "client_config": client.display().to_string(),
            "endpoint": summary.endpoints[0],
            "endpoints": summary.endpoints,
            "admin_password_file": summary.admin_password.as_ref().map(|p| p.display().to_string()),
            "audit_log": summary.layout.audit_log().display().to_string(),
            "nodes": summary.endpoints.len(),
            "cluster_id": summary.info.cluster_id,
            "dev_ca": summary.layout.ca_cert().display().to_string(),
        }
    });
    println!("{line}");
    let count = summary.endpoints.len();
    let nodes = if count == 1 { "1 node".to_owned() } else { format!("{count} nodes") };
    println!(
        "coffer up: a local DEVELOPMENT cluster ({nodes}) is running on {}",
        summary.endpoints.join(", ")
    );
    println!("  client configuration: {}", client.display());
    let password_file = summary.admin_password.as_ref().map(|p| p.display().to_string());
    let password_file = password_file.unwrap_or_else(|| "ADMIN_PASSWORD_FILE".to_owned());
    println!("  admin password:       {password_file} (user admin)");
    println!(
        "  trust anchor:         {} (a local development CA, not for production)",
        summary.layout.ca_cert().display()
    );
    println!("Use it from another terminal:");
    println!("  export COFFER_CONFIG={}", client.display());
    println!("  coffer cluster hsm-info");
    println!("  coffer login --username admin --role admin --password-file {password_file}");
    println!("Press Ctrl-C to stop the {}.", if count == 1 { "node" } else { "nodes" });
    let _flushed = std::io::stdout().flush();
}

/// What the node said when it became ready.
#[derive(Debug, Default)]
struct Ready {
    fingerprint: Option<String>,
}

/// The running `cofferd` and the lines it prints.
#[derive(Debug)]
struct NodeProcess {
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
}

impl NodeProcess {
    async fn start(cofferd: &Path, config: &Path) -> Result<Self> {
        let mut child = Command::new(cofferd)
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group: a Ctrl-C in the terminal reaches `coffer up`, which then
            // stops the node in order, instead of reaching both at once.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| CliError::Up(format!("cannot start {}: {e}", cofferd.display())))?;
        let (tx, lines) = mpsc::unbounded_channel();
        if let Some(out) = child.stdout.take() {
            tokio::spawn(forward(out, Some(tx)));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(forward(err, None));
        }
        Ok(Self { child, lines })
    }

    /// Reads the node's stdout until `cofferd: ready`, remembering the bootstrap fingerprint.
    async fn wait_ready(&mut self) -> Result<Ready> {
        let mut ready = Ready::default();
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        loop {
            let line = tokio::time::timeout_at(deadline, self.lines.recv()).await.map_err(|_| {
                CliError::Up(format!(
                    "cofferd did not print `cofferd: ready` within {}s",
                    READY_TIMEOUT.as_secs()
                ))
            })?;
            let Some(line) = line else {
                let status = self.child.wait().await.map_or_else(|e| e.to_string(), |s| s.to_string());
                return Err(CliError::Up(format!(
                    "cofferd exited before it was ready ({status}); see its output above"
                )));
            };
            if let Some(fp) = line.strip_prefix("cofferd: bootstrap certificate fingerprint ") {
                ready.fingerprint = Some(fp.trim().to_owned());
            }
            if line.trim() == "cofferd: ready" {
                return Ok(ready);
            }
        }
    }

    /// Stops the node: first the graceful way cofferd supports, SIGTERM (sent with the
    /// `kill` command, since a direct `kill(2)` call needs FFI, which this crate forbids), on which
    /// it closes its sessions and writes its audit log's closing checkpoint; then, if it has
    /// not exited after [`STOP_TIMEOUT`], by killing it.
    async fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let asked = match self.child.id() {
            Some(pid) => std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .is_ok_and(|s| s.success()),
            None => false,
        };
        if asked {
            if let Ok(Ok(status)) = tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await {
                eprintln!("coffer up: cofferd stopped ({status})");
                return;
            }
            eprintln!("coffer up: cofferd did not stop within {}s; killing it", STOP_TIMEOUT.as_secs());
        } else {
            eprintln!("coffer up: could not send SIGTERM to cofferd; killing it");
        }
        let _killed = self.child.kill().await;
    }
}

/// Copies the node's output to our stderr, line by line, and (for stdout) hands each line
/// to `tx` for [`NodeProcess::wait_ready`].
async fn forward(stream: impl AsyncRead + Unpin, tx: Option<mpsc::UnboundedSender<String>>) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        eprintln!("[cofferd] {line}");
        if let Some(tx) = &tx {
            let _receiver_gone = tx.send(line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_config_is_valid_for_cofferd() {
        let layout = Layout { dir: PathBuf::from("/tmp/coffer local \"x\"") };
        let listen = "127.0.0.1:4000".parse().unwrap();
        let ports = NodePorts {
            listen,
            metrics: "127.0.0.1:4001".parse().unwrap(),
            peer: default_peer(listen).unwrap(),
            advertise_ip: None,
        };
        let text = node_config(&layout, &ports, true);
        let config =
            coffer_node::config::NodeConfig::from_sources("cofferd.toml", &text, Vec::new(), &[] as &[&str])
                .unwrap();
        assert_eq!(config.data_dir, layout.data_dir());
        assert_eq!(config.listen.port(), 4000);
        assert_eq!(config.peer_listen.port(), 4002);
        assert_eq!(config.pbkdf2_iterations, FAST_KDF_ITERATIONS);
        assert_eq!(config.seal, coffer_node::config::SealConfig::KeyFile(layout.seal_key()));
        assert!(!layout.seal_key().starts_with(layout.data_dir()));
        let slow = node_config(&layout, &ports, false);
        assert!(!slow.contains("pbkdf2"));
    }

    #[test]
    fn the_dev_ca_is_named_after_the_directory() {
        assert_eq!(ca_name(Path::new("/tmp/my dir/coffer-local")), "coffer-local coffer-local");
        assert_eq!(ca_name(Path::new("/tmp/a b:c")), "coffer-local a_b_c");
        assert_eq!(ca_name(Path::new("/")), "coffer-local");
        let module = Module::power_on();
        assert!(DevCa::create(&module, &ca_name(Path::new("/x/é y"))).is_ok());
    }

    #[test]
    fn metrics_default_beside_the_listen_port() {
        assert_eq!(default_metrics("127.0.0.1:2223".parse().unwrap()).port(), 2280);
        assert_eq!(default_metrics("127.0.0.1:5000".parse().unwrap()).port(), 5001);
        assert_eq!(default_peer("127.0.0.1:2223".parse().unwrap()).unwrap().port(), 2224);
        assert_eq!(default_peer("127.0.0.1:5000".parse().unwrap()).unwrap().port(), 5002);
    }

    #[test]
    fn a_generated_admin_password_is_private_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout { dir: dir.path().to_path_buf() };
        let path = admin_password_file(&layout, None).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let password = password::from_file(&path).unwrap();
        assert_eq!(password.len(), 24);
        assert_eq!(admin_password_file(&layout, None).unwrap(), path);
        assert_eq!(password::from_file(&path).unwrap(), password);
    }

    fn args(listen: &str, metrics: Option<&str>, nodes: u32) -> UpArgs {
        UpArgs {
            dir: PathBuf::from("unused"),
            nodes,
            admin_password_file: None,
            listen: listen.parse().unwrap(),
            metrics_listen: metrics.map(|m| m.parse().unwrap()),
            advertise_ip: None,
            replace_after: 30,
        }
    }

    #[test]
    fn members_are_kept_and_topped_up() {
        assert_eq!(node_indexes(Vec::new(), 3), [0, 1, 2]);
        assert_eq!(node_indexes(vec![0, 2, 3], 3), [0, 2, 3]);
        assert_eq!(node_indexes(vec![0, 3], 3), [0, 3, 4]);
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout { dir: dir.path().to_path_buf() };
        assert!(read_members(&layout).unwrap().is_empty());
        write_members(&layout, &[0, 3, 4]).unwrap();
        assert_eq!(read_members(&layout).unwrap(), [0, 3, 4]);
        std::fs::write(layout.members(), "node-1\nnode-x\n").unwrap();
        assert!(read_members(&layout).unwrap_err().to_string().contains("node-x"));
    }

    #[test]
    fn a_cluster_of_several_nodes_is_not_moved_to_other_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout { dir: dir.path().to_path_buf() };
        // Nothing recorded yet: anything goes.
        check_endpoint(&layout, &[0, 1, 2], 3, "127.0.0.1:5000").unwrap();
        std::fs::write(layout.endpoint_record(), "127.0.0.1:4000\n").unwrap();
        check_endpoint(&layout, &[0, 1, 2], 3, "127.0.0.1:4000").unwrap();
        check_endpoint(&layout, &[], 3, "127.0.0.1:5000").unwrap();
        check_endpoint(&layout, &[0], 1, "127.0.0.1:5000").unwrap();
        for (members, count) in [(&[0, 1, 2][..], 3), (&[0][..], 3), (&[0, 4][..], 1)] {
            let e = check_endpoint(&layout, members, count, "127.0.0.1:5000").unwrap_err().to_string();
            assert!(e.contains("127.0.0.1:4000") && e.contains("not 127.0.0.1:5000"), "{e}");
        }
    }

    #[test]
    fn a_node_on_every_address_is_reached_at_its_advertised_ip() {
        let mut up = args("0.0.0.0:4000", None, 2);
        assert_eq!(node_ports(&up, 1).unwrap().endpoint(), "127.0.0.1:4010");
        up.advertise_ip = Some("127.0.0.7".parse().unwrap());
        let ports = node_ports(&up, 1).unwrap();
        assert_eq!(ports.endpoint(), "127.0.0.7:4010");
        assert_eq!(ports.listen.to_string(), "0.0.0.0:4010");
        let text = node_config_of(&Layout { dir: PathBuf::from("/tmp/c") }, 1, &ports, true);
        let config =
            coffer_node::config::NodeConfig::from_sources("c.toml", &text, Vec::new(), &[] as &[&str])
                .unwrap();
        assert_eq!(config.advertise_ip, up.advertise_ip);
        // A node on one address is reached there.
        up.listen = "127.0.0.3:4000".parse().unwrap();
        assert_eq!(node_ports(&up, 0).unwrap().endpoint(), "127.0.0.3:4000");
    }

    #[test]
    fn nodes_get_ports_apart_and_fixed_peer_ports() {
        let up = args("127.0.0.1:2223", None, 3);
        let ports: Vec<NodePorts> = (0..3).map(|i| node_ports(&up, i).unwrap()).collect();
        let p = |n: &NodePorts| (n.listen.port(), n.metrics.port(), n.peer.port());
        assert_eq!(
            ports.iter().map(p).collect::<Vec<_>>(),
            [(2223, 2280, 2224), (2233, 2234, 2235), (2243, 2244, 2245)]
        );
        // Off the default port, the peer port is fixed too, past the metrics port.
        let up = args("127.0.0.1:5000", Some("127.0.0.1:6000"), 2);
        assert_eq!(p(&node_ports(&up, 0).unwrap()), (5000, 6000, 5002));
        let up = args("127.0.0.1:65530", None, 2);
        assert!(node_ports(&up, 1).is_err());
        // Joining nodes say so in their configuration.
        let layout = Layout { dir: PathBuf::from("/tmp/c") };
        let text = node_config_of(&layout, 1, &ports[1], true);
        let config =
            coffer_node::config::NodeConfig::from_sources("c.toml", &text, Vec::new(), &[] as &[&str])
                .unwrap();
        assert!(config.join);
        assert_eq!(config.join_trust_anchor, Some(layout.ca_cert()));
        assert_eq!(config.node_id, "node-2");
        assert_eq!(config.data_dir, layout.data_dir_of(1));
        assert!(
            !coffer_node::config::NodeConfig::from_sources(
                "c.toml",
                &node_config(&layout, &ports[0], true),
                Vec::new(),
                &[] as &[&str]
            )
            .unwrap()
            .join
        );
    }

    #[tokio::test]
    async fn a_node_count_out_of_range_is_refused() {
        for nodes in [0, 8] {
            let e = run(&args("127.0.0.1:1", None, nodes)).await.unwrap_err();
            assert_eq!(e.to_string(), format!("coffer up: --nodes takes 1 to 7, not {nodes}"));
        }
    }
}
