//! `cofferd`: the Coffer HSM node daemon.
//!
//! ```text
//! cofferd --config FILE [--set key=value ...]
//! ```
//!
//! The configuration is the TOML file (or `$COFFER_NODE_CONFIG`), then `COFFER_NODE_*`
//! environment variables, then `--set` flags; see `cofferd.example.toml`. At start-up the
//! daemon prints one line per fact on stdout, `cofferd: ready` last:
//!
//! ```text
//! cofferd: node node-1, cluster cluster-0123456789abcdef, state UNINITIALIZED
//! cofferd: listening on 127.0.0.1:2223
//! cofferd: metrics on 127.0.0.1:2280
//! cofferd: audit log /var/lib/coffer/audit.log, public key /var/lib/coffer/audit-public.pem
//! cofferd: bootstrap certificate fingerprint SHA256:AB:CD:...
//! cofferd: ready
//! ```
//!
//! (an initialised node prints `cofferd: server certificate fingerprint SHA256:…` instead of
//! the bootstrap line). It runs until SIGINT or SIGTERM, then closes its sessions and its
//! audit log cleanly.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use coffer_hsm::ClusterState;
use coffer_node::Node;
use coffer_node::config::{CONFIG_PATH_ENV, NodeConfig, environment_variables};

const USAGE: &str = "usage: cofferd --config FILE [--set key=value ...]";

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cofferd: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The command line: the configuration file and the overrides.
struct Args {
    config: PathBuf,
    overrides: Vec<String>,
}

fn parse_args() -> anyhow::Result<Option<Args>> {
    let mut config = std::env::var_os(CONFIG_PATH_ENV).map(PathBuf::from);
    let mut overrides = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" | "-c" => config = Some(args.next().context("--config needs a file")?.into()),
            "--set" => overrides.push(args.next().context("--set needs key=value")?),
            "--help" | "-h" => {
                println!("{USAGE}\n\nConfiguration keys and their environment variables:");
                for (key, env) in environment_variables() {
                    println!("  {key:<34} {env}");
                }
                return Ok(None);
            }
            "--version" => {
                println!("cofferd {}", env!("CARGO_PKG_VERSION"));
                return Ok(None);
            }
            other => match other.strip_prefix("--set=") {
                Some(kv) => overrides.push(kv.to_owned()),
                None => bail!("unknown argument {other:?}\n{USAGE}"),
            },
        }
    }
    let config = config.with_context(|| format!("no configuration file given\n{USAGE}"))?;
    Ok(Some(Args { config, overrides }))
}

fn run() -> anyhow::Result<()> {
    let Some(args) = parse_args()? else {
        return Ok(());
    };
    let config = NodeConfig::load(&args.config, std::env::vars(), &args.overrides)?;
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("tokio runtime")?;
    runtime.block_on(serve(config))
}

async fn serve(config: NodeConfig) -> anyhow::Result<()> {
    let mut running = Node::start(config).await?;
    let node = running.node().clone();
    let state = node.cluster_state();
    let (audit_log, audit_key) = node.audit_files();
    let (_, presented) = node.presented();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "cofferd: node {}, cluster {}, state {}",
        node.config().node_id,
        node.keys().cluster_id,
        state.name()
    )?;
    writeln!(out, "cofferd: listening on {}", running.local_addr())?;
    writeln!(out, "cofferd: metrics on {}", running.metrics_addr())?;
    writeln!(out, "cofferd: audit log {}, public key {}", audit_log.display(), audit_key.display())?;
    if state == ClusterState::Uninitialized {
        writeln!(out, "cofferd: bootstrap certificate fingerprint SHA256:{}", node.bootstrap_fingerprint())?;
    } else {
        writeln!(out, "cofferd: server certificate fingerprint SHA256:{presented}")?;
    }
    writeln!(out, "cofferd: ready")?;
    out.flush()?;
    drop(out);

    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("SIGTERM handler")?;
    let failed = tokio::select! {
        _ = tokio::signal::ctrl_c() => false,
        _ = terminate.recv() => false,
        () = running.failed() => true,
    };
    let health = node.metrics().health();
    drop(node);
    running.shutdown().await?;
    println!("cofferd: stopped");
    if failed {
        bail!("a server task ended: {}", health.err().unwrap_or_else(|| "unknown reason".into()));
    }
    Ok(())
}
