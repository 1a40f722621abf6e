//! The node's configuration: one TOML file, then environment overrides, then flags (which the
//! binary passes as `key=value`). Later sources win.
//!
//! Keys (file key · environment variable · default):
//!
//! | key | environment | default |
//! |---|---|---|
//! | `node_id` | `COFFER_NODE_ID` | required |
//! | `data_dir` | `COFFER_NODE_DATA_DIR` | required |
//! | `listen` | `COFFER_NODE_LISTEN` | `127.0.0.1:2223` (gRPC over TLS, CloudHSM's port) |
//! | `metrics_listen` | `COFFER_NODE_METRICS_LISTEN` | `127.0.0.1:2280` (HTTP `/metrics`, `/health`) |
//! | `peer_listen` | `COFFER_NODE_PEER_LISTEN` | `listen`'s address, port + 1 (`127.0.0.1:2224`; port 0 stays 0): raft and cloning between nodes, mutual TLS |
//! | `join` | `COFFER_NODE_JOIN` | `false`: a node that has never been in a cluster starts a new one-node cluster; `true`: it waits to be added to an existing cluster |
//! | `join_trust_anchor` | `COFFER_NODE_JOIN_TRUST_ANCHOR` | none: a joining node takes the first clone it is given; a path: only a clone of the cluster whose trust anchor (the owner's CA certificate, PEM) is this file |
//! | `allowed_clients` | `COFFER_NODE_ALLOWED_CLIENTS` (comma-separated) | `["127.0.0.0/8", "::1/128"]` |
//! | `pbkdf2_iterations` | `COFFER_NODE_PBKDF2_ITERATIONS` | 600,000 (seal passphrase and new user passwords; at least 1,000, for tests) |
//! | `busy_poll_us` | `COFFER_NODE_BUSY_POLL_US` | 1,000: after answering a client, the workers keep polling this long before they may sleep, so the next request finds the CPUs awake (0 turns it off; at most 10,000; see `busy_poll`) |
//! | `limits.max_message_bytes` | `COFFER_NODE_MAX_MESSAGE_BYTES` | 4 MiB |
//! | `limits.max_connections_per_ip` | `COFFER_NODE_MAX_CONNECTIONS_PER_IP` | 64 |
//! | `limits.max_sessions_per_client` | `COFFER_NODE_MAX_SESSIONS_PER_CLIENT` | 1,024 |
//! | `limits.request_timeout_secs` | `COFFER_NODE_REQUEST_TIMEOUT_SECS` | 30 |
//! | `limits.session_idle_secs` | `COFFER_NODE_SESSION_IDLE_SECS` | 900 |
//! | `audit.checkpoint_every_entries` | `COFFER_NODE_AUDIT_CHECKPOINT_ENTRIES` | 1,000 |
//! | `audit.checkpoint_every_secs` | `COFFER_NODE_AUDIT_CHECKPOINT_SECS` | 60 |
//! | `seal.passphrase_file` | `COFFER_NODE_SEAL_PASSPHRASE_FILE` | one of the two seal keys is required |
//! | `seal.key_file` | `COFFER_NODE_SEAL_KEY_FILE` | |
//!
//! Unknown keys are errors wherever they come from (a typo must not silently fall back to a
//! default), except `COFFER_NODE_CONFIG`, left to the binary to name the file. Every error
//! names where the value came from, the key and the reason, e.g.
//! `cofferd.toml: allowed_clients[1]: '10.0.0.0/33' is not a CIDR: prefix length 33 > 32`.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::allowlist::{AllowList, DEFAULT_ALLOWED_CLIENTS};
use crate::busy_poll::MAX_BUSY_POLL_US;

/// The seal's default PBKDF2 work factor, `coffer-crypto`'s.
const DEFAULT_PBKDF2: u64 = coffer_crypto::DEFAULT_PBKDF2_ITERATIONS as u64;
/// The busy-polling window's default, in microseconds: a little over the gap between one
/// call's answer and the same client's next call on loopback.
const DEFAULT_BUSY_POLL_US: u64 = 1_000;

/// Environment variable the binary reads the configuration file's path from; not a key.
pub const CONFIG_PATH_ENV: &str = "COFFER_NODE_CONFIG";

/// A configuration fault: where the value came from (file, environment variable or flag), the
/// key, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: {key}: {reason}")]
pub struct ConfigError {
    pub origin: String,
    pub key: String,
    pub reason: String,
}

/// Limits that keep one client from exhausting a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub max_message_bytes: usize,
    pub max_connections_per_ip: u32,
    pub max_sessions_per_client: u32,
    pub request_timeout: Duration,
    /// A session unused for this long is closed.
    pub session_idle: Duration,
}

/// When the audit log writes a signed checkpoint: after N entries or T, whichever is first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditConfig {
    pub checkpoint_every_entries: u64,
    pub checkpoint_every: Duration,
}

/// What seals the node's keys on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SealConfig {
    /// A file holding the passphrase (PBKDF2 derives the sealing key from it).
    PassphraseFile(PathBuf),
    /// A file holding a random sealing key, kept apart from the data directory.
    KeyFile(PathBuf),
}

/// The validated configuration of one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    pub node_id: String,
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub metrics_listen: SocketAddr,
    pub peer_listen: SocketAddr,
    /// The IP address other nodes and clients reach this node at, when it listens on an
    /// unspecified address (0.0.0.0 or ::): advertised to the cluster with the two ports and
    /// written into the node certificate. Without it such a node advertises loopback, which
    /// only a cluster on one machine can use.
    pub advertise_ip: Option<IpAddr>,
    pub join: bool,
    /// The owner's CA certificate a joining node requires of the cluster that clones it.
    pub join_trust_anchor: Option<PathBuf>,
    pub allowed_clients: AllowList,
    pub limits: Limits,
    pub audit: AuditConfig,
    pub seal: SealConfig,
    pub pbkdf2_iterations: u32,
    /// How long the workers keep polling after an answer before they may sleep
    /// ([`crate::busy_poll`]); zero turns busy-polling off.
    pub busy_poll: Duration,
}

/// The file as written, every field optional so that overrides can fill it in.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    node_id: Option<String>,
    data_dir: Option<PathBuf>,
    listen: Option<String>,
    metrics_listen: Option<String>,
    peer_listen: Option<String>,
    advertise_ip: Option<String>,
    join: Option<bool>,
    join_trust_anchor: Option<PathBuf>,
    allowed_clients: Option<Vec<String>>,
    pbkdf2_iterations: Option<u64>,
    busy_poll_us: Option<u64>,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    audit: RawAudit,
    #[serde(default)]
    seal: RawSeal,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_message_bytes: Option<u64>,
    max_connections_per_ip: Option<u64>,
    max_sessions_per_client: Option<u64>,
    request_timeout_secs: Option<u64>,
    session_idle_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    checkpoint_every_entries: Option<u64>,
    checkpoint_every_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSeal {
    passphrase_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
}

/// Every key, with its environment variable.
const KEYS: [(&str, &str); 20] = [
    ("node_id", "COFFER_NODE_ID"),
    ("data_dir", "COFFER_NODE_DATA_DIR"),
    ("listen", "COFFER_NODE_LISTEN"),
    ("metrics_listen", "COFFER_NODE_METRICS_LISTEN"),
    ("peer_listen", "COFFER_NODE_PEER_LISTEN"),
    ("advertise_ip", "COFFER_NODE_ADVERTISE_IP"),
    ("join", "COFFER_NODE_JOIN"),
    ("join_trust_anchor", "COFFER_NODE_JOIN_TRUST_ANCHOR"),
    ("allowed_clients", "COFFER_NODE_ALLOWED_CLIENTS"),
    ("pbkdf2_iterations", "COFFER_NODE_PBKDF2_ITERATIONS"),
    ("busy_poll_us", "COFFER_NODE_BUSY_POLL_US"),
    ("limits.max_message_bytes", "COFFER_NODE_MAX_MESSAGE_BYTES"),
    ("limits.max_connections_per_ip", "COFFER_NODE_MAX_CONNECTIONS_PER_IP"),
    ("limits.max_sessions_per_client", "COFFER_NODE_MAX_SESSIONS_PER_CLIENT"),
    ("limits.request_timeout_secs", "COFFER_NODE_REQUEST_TIMEOUT_SECS"),
    ("limits.session_idle_secs", "COFFER_NODE_SESSION_IDLE_SECS"),
    ("audit.checkpoint_every_entries", "COFFER_NODE_AUDIT_CHECKPOINT_ENTRIES"),
    ("audit.checkpoint_every_secs", "COFFER_NODE_AUDIT_CHECKPOINT_SECS"),
    ("seal.passphrase_file", "COFFER_NODE_SEAL_PASSPHRASE_FILE"),
    ("seal.key_file", "COFFER_NODE_SEAL_KEY_FILE"),
];

/// The environment variable of each key (for `--help` and documentation).
pub fn environment_variables() -> impl Iterator<Item = (&'static str, &'static str)> {
    KEYS.iter().copied()
}

impl NodeConfig {
    /// Reads `path`, applies `env` (e.g. `std::env::vars()`; only `COFFER_NODE_*` variables
    /// are looked at) and then `flags` (`key=value`), and validates the result.
    pub fn load<E, F>(path: &Path, env: E, flags: &[F]) -> Result<Self, ConfigError>
    where
        E: IntoIterator<Item = (String, String)>,
        F: AsRef<str>,
    {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            origin: origin.clone(),
            key: "(file)".into(),
            reason: e.to_string(),
        })?;
        Self::from_sources(&origin, &text, env, flags)
    }

    /// As [`NodeConfig::load`], with the file's text given (`origin` names it in errors).
    pub fn from_sources<E, F>(origin: &str, text: &str, env: E, flags: &[F]) -> Result<Self, ConfigError>
    where
        E: IntoIterator<Item = (String, String)>,
        F: AsRef<str>,
    {
        let mut raw: RawConfig = toml::from_str(text).map_err(|e| file_error(origin, text, &e))?;
        let mut origins = BTreeMap::new();
        let mut env: Vec<_> = env.into_iter().filter(|(k, _)| k.starts_with("COFFER_NODE_")).collect();
        env.sort();
        for (var, value) in env.into_iter().filter(|(k, _)| k != CONFIG_PATH_ENV) {
            let key = KEYS.iter().find(|(_, v)| *v == var).map(|(k, _)| *k);
            let source = format!("environment {var}");
            let key = key.ok_or_else(|| err(&source, &var, "unknown environment variable"))?;
            raw.set(key, &value).map_err(|reason| err(&source, key, &reason))?;
            origins.insert(key, source);
        }
        for flag in flags {
            let flag = flag.as_ref();
            let source = format!("flag '{flag}'");
            let (key, value) =
                flag.split_once('=').ok_or_else(|| err(&source, flag, "expected key=value"))?;
            let key = KEYS.iter().find(|(k, _)| *k == key.trim()).map(|(k, _)| *k);
            let key = key.ok_or_else(|| err(&source, flag, "unknown key"))?;
            raw.set(key, value.trim()).map_err(|reason| err(&source, key, &reason))?;
            origins.insert(key, source);
        }
        raw.validate(&Origins { file: origin, by_key: origins })
    }
}

fn err(origin: &str, key: &str, reason: &str) -> ConfigError {
    ConfigError { origin: origin.to_owned(), key: key.to_owned(), reason: reason.to_owned() }
}

/// A parse error of the file, located: the key is read from the line the error points at
/// (with its `[table]`), the reason is toml's message without its code excerpt.
fn file_error(origin: &str, text: &str, e: &toml::de::Error) -> ConfigError {
    let start = e.span().map_or(0, |s| s.start).min(text.len());
    let line_no = text[..start].matches('\n').count() + 1;
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("");
    let table = text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_owned());
    let key = match line.split_once('=') {
        Some((k, _)) if !line.trim_start().starts_with('[') => {
            let k = k.trim().trim_matches('"');
            table.map_or_else(|| k.to_owned(), |t| format!("{t}.{k}"))
        }
        _ => format!("line {line_no}"),
    };
    ConfigError { origin: format!("{origin} (line {line_no})"), key, reason: e.message().trim().to_owned() }
}

/// Where each key's value came from, for error messages.
struct Origins<'a> {
    file: &'a str,
    by_key: BTreeMap<&'static str, String>,
}

impl Origins<'_> {
    fn error(&self, key: &str, reason: impl Into<String>) -> ConfigError {
        let base = key.split('[').next().unwrap_or(key);
        let origin = self.by_key.get(base).map_or(self.file, String::as_str);
        ConfigError { origin: origin.to_owned(), key: key.to_owned(), reason: reason.into() }
    }
}

impl RawConfig {
    /// Sets one key from override text.
    fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let number = || value.parse::<u64>().map_err(|_| format!("'{value}' is not a whole number"));
        match key {
            "node_id" => self.node_id = Some(value.to_owned()),
            "data_dir" => self.data_dir = Some(value.into()),
            "listen" => self.listen = Some(value.to_owned()),
            "metrics_listen" => self.metrics_listen = Some(value.to_owned()),
            "peer_listen" => self.peer_listen = Some(value.to_owned()),
            "advertise_ip" => self.advertise_ip = Some(value.to_owned()),
            "join" => {
                self.join = Some(match value {
                    "true" => true,
                    "false" => false,
                    other => return Err(format!("'{other}' is not true or false")),
                })
            }
            "join_trust_anchor" => self.join_trust_anchor = Some(value.into()),
            "allowed_clients" => {
                let list = value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from);
                self.allowed_clients = Some(list.collect());
            }
            "pbkdf2_iterations" => self.pbkdf2_iterations = Some(number()?),
            "busy_poll_us" => self.busy_poll_us = Some(number()?),
            "limits.max_message_bytes" => self.limits.max_message_bytes = Some(number()?),
            "limits.max_connections_per_ip" => self.limits.max_connections_per_ip = Some(number()?),
            "limits.max_sessions_per_client" => self.limits.max_sessions_per_client = Some(number()?),
            "limits.request_timeout_secs" => self.limits.request_timeout_secs = Some(number()?),
            "limits.session_idle_secs" => self.limits.session_idle_secs = Some(number()?),
            "audit.checkpoint_every_entries" => self.audit.checkpoint_every_entries = Some(number()?),
            "audit.checkpoint_every_secs" => self.audit.checkpoint_every_secs = Some(number()?),
            "seal.passphrase_file" => self.seal.passphrase_file = Some(value.into()),
            "seal.key_file" => self.seal.key_file = Some(value.into()),
            _ => return Err("unknown key".into()),
        }
        Ok(())
    }

    fn validate(self, o: &Origins<'_>) -> Result<NodeConfig, ConfigError> {
        let node_id = self.node_id.ok_or_else(|| o.error("node_id", "is required"))?;
        check_node_id(&node_id).map_err(|reason| o.error("node_id", reason))?;
        let data_dir = self.data_dir.filter(|d| !d.as_os_str().is_empty());
        let data_dir = data_dir.ok_or_else(|| o.error("data_dir", "is required"))?;
        let listen = socket(o, "listen", self.listen.as_deref().unwrap_or("127.0.0.1:2223"))?;
        let metrics_listen =
            socket(o, "metrics_listen", self.metrics_listen.as_deref().unwrap_or("127.0.0.1:2280"))?;
        // Port 0 asks the system for a free port, so two port-0 addresses do not collide.
        if listen == metrics_listen && listen.port() != 0 {
            return Err(o.error("metrics_listen", format!("is the same address as listen ({listen})")));
        }
        let peer_default = SocketAddr::new(
            listen.ip(),
            listen.port().checked_add(u16::from(listen.port() != 0)).unwrap_or(0),
        );
        let peer_listen = match self.peer_listen.as_deref() {
            Some(text) => socket(o, "peer_listen", text)?,
            None => peer_default,
        };
        for (other, key) in [(listen, "listen"), (metrics_listen, "metrics_listen")] {
            if peer_listen == other && other.port() != 0 {
                return Err(o.error("peer_listen", format!("is the same address as {key} ({other})")));
            }
        }
        let advertise_ip = match self.advertise_ip.as_deref() {
            None => None,
            Some(text) => Some(advertise(o, text)?),
        };
        let default_clients = || DEFAULT_ALLOWED_CLIENTS.iter().map(|s| (*s).to_owned()).collect();
        let allowed_clients = allow_list(o, &self.allowed_clients.unwrap_or_else(default_clients))?;
        let pbkdf2 =
            ranged(o, "pbkdf2_iterations", self.pbkdf2_iterations, DEFAULT_PBKDF2, 1_000, 20_000_000)?;
        let busy_poll =
            ranged(o, "busy_poll_us", self.busy_poll_us, DEFAULT_BUSY_POLL_US, 0, MAX_BUSY_POLL_US)?;
        Ok(NodeConfig {
            node_id,
            data_dir,
            listen,
            metrics_listen,
            peer_listen,
            advertise_ip,
            join: self.join.unwrap_or(false),
            join_trust_anchor: self.join_trust_anchor,
            allowed_clients,
            limits: self.limits.validate(o)?,
            audit: self.audit.validate(o)?,
            seal: self.seal.validate(o)?,
            pbkdf2_iterations: u32::try_from(pbkdf2).unwrap_or(u32::MAX),
            busy_poll: Duration::from_micros(busy_poll),
        })
    }
}

impl RawLimits {
    fn validate(self, o: &Origins<'_>) -> Result<Limits, ConfigError> {
        let msg = ranged(o, "limits.max_message_bytes", self.max_message_bytes, 4 << 20, 1024, 64 << 20)?;
        let conns = ranged(o, "limits.max_connections_per_ip", self.max_connections_per_ip, 64, 1, 65_535)?;
        let sessions =
            ranged(o, "limits.max_sessions_per_client", self.max_sessions_per_client, 1024, 1, 2048)?;
        let timeout = ranged(o, "limits.request_timeout_secs", self.request_timeout_secs, 30, 1, 3600)?;
        let idle = ranged(o, "limits.session_idle_secs", self.session_idle_secs, 900, 1, 86_400)?;
        Ok(Limits {
            max_message_bytes: usize::try_from(msg).unwrap_or(usize::MAX),
            max_connections_per_ip: u32::try_from(conns).unwrap_or(u32::MAX),
            max_sessions_per_client: u32::try_from(sessions).unwrap_or(u32::MAX),
            request_timeout: Duration::from_secs(timeout),
            session_idle: Duration::from_secs(idle),
        })
    }
}

impl RawAudit {
    fn validate(self, o: &Origins<'_>) -> Result<AuditConfig, ConfigError> {
        let n =
            ranged(o, "audit.checkpoint_every_entries", self.checkpoint_every_entries, 1000, 1, 1_000_000)?;
        let secs = ranged(o, "audit.checkpoint_every_secs", self.checkpoint_every_secs, 60, 1, 86_400)?;
        Ok(AuditConfig { checkpoint_every_entries: n, checkpoint_every: Duration::from_secs(secs) })
    }
}

impl RawSeal {
    fn validate(self, o: &Origins<'_>) -> Result<SealConfig, ConfigError> {
        match (self.passphrase_file, self.key_file) {
            (Some(p), None) => Ok(SealConfig::PassphraseFile(p)),
            (None, Some(k)) => Ok(SealConfig::KeyFile(k)),
            (Some(_), Some(_)) => Err(o.error("seal", "give passphrase_file or key_file, not both")),
            (None, None) => Err(o.error("seal", "one of seal.passphrase_file or seal.key_file is required")),
        }
    }
}

/// Node ids go into certificate subjects, file names and logs: a short, plain alphabet.
fn check_node_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > 64 {
        return Err(format!("'{id}' must be 1 to 64 characters"));
    }
    if !id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')) {
        return Err(format!("'{id}' may hold only letters, digits, '-', '.' and '_'"));
    }
    Ok(())
}

fn socket(o: &Origins<'_>, key: &str, text: &str) -> Result<SocketAddr, ConfigError> {
    text.parse().map_err(|_| o.error(key, format!("'{text}' is not an address:port (e.g. 127.0.0.1:2223)")))
}

/// An address to advertise: a specific IP, since others must be able to reach it.
fn advertise(o: &Origins<'_>, text: &str) -> Result<IpAddr, ConfigError> {
    let ip: IpAddr =
        text.parse().map_err(|_| o.error("advertise_ip", format!("'{text}' is not an IP address")))?;
    if ip.is_unspecified() || ip.is_multicast() {
        return Err(o.error("advertise_ip", format!("{ip} cannot be reached: name this node's own address")));
    }
    Ok(ip)
}

fn allow_list(o: &Origins<'_>, cidrs: &[String]) -> Result<AllowList, ConfigError> {
    for (i, cidr) in cidrs.iter().enumerate() {
        AllowList::parse(&[cidr]).map_err(|e| o.error(&format!("allowed_clients[{i}]"), e.to_string()))?;
    }
    AllowList::parse(cidrs).map_err(|e| o.error("allowed_clients", e.to_string()))
}

fn ranged(
    o: &Origins<'_>,
    key: &str,
    value: Option<u64>,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, ConfigError> {
    let value = value.unwrap_or(default);
    if !(min..=max).contains(&value) {
        return Err(o.error(key, format!("{value} is outside {min}..={max}")));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str =
        "node_id = \"node-1\"\ndata_dir = \"/var/lib/coffer\"\n[seal]\nkey_file = \"/etc/coffer/seal.key\"\n";

    fn load(text: &str, env: &[(&str, &str)], flags: &[&str]) -> Result<NodeConfig, ConfigError> {
        let env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
        NodeConfig::from_sources("cofferd.toml", text, env, flags)
    }

    fn error(text: &str, env: &[(&str, &str)], flags: &[&str]) -> String {
        load(text, env, flags).unwrap_err().to_string()
    }

    #[test]
    fn a_minimal_file_gets_the_documented_defaults() {
        let c = load(MINIMAL, &[], &[]).unwrap();
        assert_eq!(c.node_id, "node-1");
        assert_eq!(c.listen, "127.0.0.1:2223".parse().unwrap());
        assert_eq!(c.metrics_listen, "127.0.0.1:2280".parse().unwrap());
        assert_eq!(c.allowed_clients, AllowList::default());
        assert_eq!(c.limits.max_message_bytes, 4 << 20);
        assert_eq!(c.limits.request_timeout, Duration::from_secs(30));
        assert_eq!(c.audit.checkpoint_every_entries, 1000);
        assert_eq!(c.seal, SealConfig::KeyFile("/etc/coffer/seal.key".into()));
        assert_eq!(c.pbkdf2_iterations, coffer_crypto::DEFAULT_PBKDF2_ITERATIONS);
        assert_eq!(c.busy_poll, Duration::from_millis(1));
    }

    #[test]
    fn busy_polling_can_be_set_or_turned_off_within_its_bound() {
        let c = load(MINIMAL, &[("COFFER_NODE_BUSY_POLL_US", "0")], &[]).unwrap();
        assert_eq!(c.busy_poll, Duration::ZERO);
        let c = load(&format!("busy_poll_us = 250\n{MINIMAL}"), &[], &[]).unwrap();
        assert_eq!(c.busy_poll, Duration::from_micros(250));
        assert_eq!(
            error(MINIMAL, &[], &["busy_poll_us=10001"]),
            "flag 'busy_poll_us=10001': busy_poll_us: 10001 is outside 0..=10000"
        );
        assert!(error(MINIMAL, &[], &["busy_poll_us=-1"]).contains("'-1' is not a whole number"));
    }

    #[test]
    fn load_reads_a_file_and_names_a_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cofferd.toml");
        std::fs::write(&path, MINIMAL).unwrap();
        let c = NodeConfig::load(&path, Vec::new(), &["listen=127.0.0.1:9999"]).unwrap();
        assert_eq!(c.listen.port(), 9999);
        let missing =
            NodeConfig::load(&dir.path().join("nope.toml"), Vec::new(), &[] as &[&str]).unwrap_err();
        assert!(missing.origin.ends_with("nope.toml") && missing.key == "(file)", "{missing}");
    }

    #[test]
    fn a_bad_cidr_names_file_index_and_reason() {
        // Top-level keys go before MINIMAL's [seal] table.
        let text = format!("allowed_clients = [\"127.0.0.0/8\", \"10.0.0.0/33\"]\n{MINIMAL}");
        assert_eq!(
            error(&text, &[], &[]),
            "cofferd.toml: allowed_clients[1]: '10.0.0.0/33' is not a CIDR: prefix length 33 > 32"
        );
    }

    #[test]
    fn unknown_keys_and_wrong_types_in_the_file_are_located() {
        let e = load(&format!("nodeid = \"x\"\n{MINIMAL}"), &[], &[]).unwrap_err();
        assert_eq!((e.origin.as_str(), e.key.as_str()), ("cofferd.toml (line 1)", "nodeid"));
        assert!(e.reason.contains("unknown field"), "{e}");
        let e = load(&format!("{MINIMAL}[limits]\nmax_message_bytes = \"big\"\n"), &[], &[]).unwrap_err();
        assert_eq!(e.key, "limits.max_message_bytes", "{e}");
        let e = load(&format!("{MINIMAL}[limits]\nmax_sesions_per_client = 3\n"), &[], &[]).unwrap_err();
        assert_eq!(e.key, "limits.max_sesions_per_client", "{e}");
        let e = load("node_id = \n", &[], &[]).unwrap_err();
        assert!(e.origin.starts_with("cofferd.toml (line 1)"), "{e}");
    }

    #[test]
    fn semantic_errors_name_the_key() {
        let no_seal = "node_id = \"n\"\ndata_dir = \"/d\"\n";
        assert!(error(no_seal, &[], &[]).starts_with("cofferd.toml: seal: one of"));
        let both = format!("{MINIMAL}passphrase_file = \"/p\"\n");
        assert_eq!(error(&both, &[], &[]), "cofferd.toml: seal: give passphrase_file or key_file, not both");
        let no_id = "data_dir = \"/d\"\n[seal]\nkey_file = \"/k\"\n";
        assert_eq!(error(no_id, &[], &[]), "cofferd.toml: node_id: is required");
        assert!(error(MINIMAL, &[], &["node_id=a/b"]).contains("node_id: 'a/b' may hold only"));
        assert!(
            error(MINIMAL, &[], &["listen=nowhere"]).contains("listen: 'nowhere' is not an address:port")
        );
        let same = error(MINIMAL, &[], &["metrics_listen=127.0.0.1:2223"]);
        assert!(same.contains("metrics_listen: is the same address as listen"), "{same}");
        let e = error(MINIMAL, &[], &["limits.request_timeout_secs=0"]);
        assert_eq!(
            e,
            "flag 'limits.request_timeout_secs=0': limits.request_timeout_secs: 0 is outside 1..=3600"
        );
        assert!(error(MINIMAL, &[], &["pbkdf2_iterations=10"]).contains("10 is outside 1000..=20000000"));
    }

    #[test]
    fn environment_then_flags_override_the_file() {
        let env = [
            ("COFFER_NODE_LISTEN", "0.0.0.0:3223"),
            ("COFFER_NODE_ALLOWED_CLIENTS", "10.0.0.0/8, ::1/128"),
            ("COFFER_NODE_MAX_SESSIONS_PER_CLIENT", "7"),
            ("COFFER_NODE_CONFIG", "/etc/coffer/cofferd.toml"),
            ("PATH", "/usr/bin"),
        ];
        let c = load(MINIMAL, &env, &["listen = 0.0.0.0:4223", "seal.key_file=/k2"]).unwrap();
        assert_eq!(c.listen, "0.0.0.0:4223".parse().unwrap());
        assert!(c.allowed_clients.allows("10.1.2.3".parse().unwrap()));
        assert!(!c.allowed_clients.allows("127.0.0.1".parse().unwrap()));
        assert_eq!(c.limits.max_sessions_per_client, 7);
        assert_eq!(c.seal, SealConfig::KeyFile("/k2".into()));
    }

    #[test]
    fn advertise_ip_is_a_reachable_address() {
        let c = load(MINIMAL, &[("COFFER_NODE_ADVERTISE_IP", "10.0.0.5")], &[]).unwrap();
        assert_eq!(c.advertise_ip, Some("10.0.0.5".parse().unwrap()));
        assert_eq!(load(MINIMAL, &[], &[]).unwrap().advertise_ip, None);
        assert!(
            error(MINIMAL, &[], &["advertise_ip=0.0.0.0"])
                .contains("advertise_ip: 0.0.0.0 cannot be reached")
        );
        assert!(error(MINIMAL, &[], &["advertise_ip=host:1"]).contains("'host:1' is not an IP address"));
    }

    #[test]
    fn bad_overrides_name_their_source() {
        let e = error(MINIMAL, &[("COFFER_NODE_MAX_MESSAGE_BYTES", "lots")], &[]);
        assert_eq!(
            e,
            "environment COFFER_NODE_MAX_MESSAGE_BYTES: limits.max_message_bytes: 'lots' is not a whole number"
        );
        let e = error(MINIMAL, &[("COFFER_NODE_ALLOWED_CLIENTS", "1.2.3.4/40")], &[]);
        assert_eq!(
            e,
            "environment COFFER_NODE_ALLOWED_CLIENTS: allowed_clients[0]: '1.2.3.4/40' is not a CIDR: prefix length 40 > 32"
        );
        let e = error(MINIMAL, &[("COFFER_NODE_LISTN", "x")], &[]);
        assert_eq!(e, "environment COFFER_NODE_LISTN: COFFER_NODE_LISTN: unknown environment variable");
        assert_eq!(error(MINIMAL, &[], &["bogus=1"]), "flag 'bogus=1': bogus=1: unknown key");
        assert_eq!(error(MINIMAL, &[], &["listen"]), "flag 'listen': listen: expected key=value");
        assert_eq!(environment_variables().count(), KEYS.len());
    }
}
