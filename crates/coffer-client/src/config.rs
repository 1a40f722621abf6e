//! The client configuration file (`client.toml`), shared by the SDK, the CLI and the PKCS#11
//! library. `COFFER_CONFIG` names it.
//!
//! ```toml
//! endpoints = ["127.0.0.1:2223", "10.0.0.2:2223"]
//! trust_anchor = "customerCA.crt"          # relative to this file's directory
//! # server_fingerprint = "SHA256:AB:CD:…"  # only before the cluster is initialised
//! # client_cert = "client.crt"
//! # client_key = "client.key"
//! connect_timeout_ms = 5000
//! request_timeout_ms = 30000
//! retries = 2
//! discover = true                          # also use the nodes the cluster lists
//! spin_wait_us = 0                         # see ClientConfig::spin_wait_us
//! ```
//!
//! The file is read key by key rather than through a derived deserializer so that every error
//! names the key it is about (an unknown key, a wrong type, a value out of range).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::ClientError;

/// The environment variable that names the client configuration file.
pub const CONFIG_ENV: &str = "COFFER_CONFIG";
/// Default time to open a TCP connection and finish the TLS handshake.
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 5_000;
/// Default time for one request, from sending it to its response.
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 30_000;
/// Default number of extra attempts for a call that failed transiently.
pub const DEFAULT_RETRIES: u32 = 2;
/// Largest accepted timeout: one hour. Longer values are almost certainly a unit mistake.
const MAX_TIMEOUT_MS: u64 = 3_600_000;
/// Largest accepted retry count; more only delays the error a user has to see.
const MAX_RETRIES: u32 = 20;
/// Largest accepted busy-wait: 10 ms. Past that a call is slow enough that sleeping on the
/// socket costs nothing worth a core.
pub const MAX_SPIN_WAIT_US: u64 = 10_000;

/// Where the client finds the cluster and how it trusts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Node addresses, `host:port` (`127.0.0.1:2223`, `[::1]:2223`, `hsm1.example:2223`); a
    /// missing port means 2223.
    pub endpoints: Vec<String>,
    /// The customer CA certificate (`customerCA.crt`, PEM): every node's chain is verified
    /// against it.
    pub trust_anchor: Option<PathBuf>,
    /// `SHA256:AB:CD:…`: accept exactly this server certificate. Meant for a node that is not
    /// initialised yet (its bootstrap certificate); used only when `trust_anchor` is unset.
    pub server_fingerprint: Option<String>,
    /// Client certificate chain (PEM) for mutual TLS; needs `client_key`.
    pub client_cert: Option<PathBuf>,
    /// Private key (PKCS#8, PKCS#1 or SEC1 PEM) of `client_cert`.
    pub client_key: Option<PathBuf>,
    /// Time to connect and finish the TLS handshake with one node.
    pub connect_timeout_ms: u64,
    /// Time for one request.
    pub request_timeout_ms: u64,
    /// Extra attempts for a call that failed transiently (see the crate docs for which calls).
    pub retries: u32,
    /// Also use the nodes the cluster lists (`GetClusterInfo`), looked up on connecting and
    /// again every minute as sessions open. Only with `trust_anchor`: a `server_fingerprint`
    /// pins one node's certificate and cannot vouch for another. Default true; false keeps the
    /// client on `endpoints` exactly (to talk to one particular node).
    pub discover: bool,
    /// Microseconds the blocking API ([`crate::blocking`], and so the PKCS#11 library) may
    /// busy-wait for an answer before sleeping on the socket, while it is the process's only
    /// call in flight on the client (and none overlapped another in the last 10 ms). Waking
    /// a thread that sleeps costs tens of microseconds (on a virtual machine, up to half the
    /// time of a small call on loopback); polling instead spends a core on waiting. Default
    /// 0: never spin. About 1000 covers an RSA-2048 signature on a near node; at most
    /// [`MAX_SPIN_WAIT_US`].
    pub spin_wait_us: u64,
}

impl ClientConfig {
    /// A configuration for these endpoints with default timeouts and retries and no trust
    /// settings yet (set `trust_anchor` or `server_fingerprint` before connecting).
    pub fn new(endpoints: Vec<String>) -> Self {
        ClientConfig {
            endpoints,
            trust_anchor: None,
            server_fingerprint: None,
            client_cert: None,
            client_key: None,
            connect_timeout_ms: DEFAULT_CONNECT_TIMEOUT_MS,
            request_timeout_ms: DEFAULT_REQUEST_TIMEOUT_MS,
            retries: DEFAULT_RETRIES,
            discover: true,
            spin_wait_us: 0,
        }
    }

    /// Reads a TOML configuration file. Relative paths in it resolve against the file's
    /// directory; an unknown key, a value of the wrong type or out of range is an error naming
    /// the key.
    pub fn load(path: &Path) -> Result<Self, ClientError> {
        let text = std::fs::read_to_string(path).map_err(|e| ClientError::Config {
            path: path.to_path_buf(),
            key: String::new(),
            reason: format!("cannot read the file: {e}"),
        })?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        Self::parse(&text, base, path)
    }

    /// Reads the file that `COFFER_CONFIG` names.
    pub fn from_env() -> Result<Self, ClientError> {
        Self::from_env_value(std::env::var_os(CONFIG_ENV))
    }

    /// [`from_env`](Self::from_env) with the variable's value passed in (tests cannot set
    /// environment variables safely in Rust 2024: `set_var` may only be called in an unchecked block there).
    fn from_env_value(value: Option<OsString>) -> Result<Self, ClientError> {
        match value {
            Some(v) if !v.is_empty() => Self::load(Path::new(&v)),
            _ => Err(ClientError::Config {
                path: PathBuf::new(),
                key: CONFIG_ENV.to_owned(),
                reason: "is not set; point it at the client configuration file \
                         (e.g. COFFER_CONFIG=DIR/client.toml, as `coffer up` prints)"
                    .to_owned(),
            }),
        }
    }

    /// Parses TOML text. `base` is the directory relative paths resolve against; `path` names
    /// the file in errors.
    pub fn parse(text: &str, base: &Path, path: &Path) -> Result<Self, ClientError> {
        let err = |key: &str, reason: String| ClientError::Config {
            path: path.to_path_buf(),
            key: key.to_owned(),
            reason,
        };
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| err("", format!("not valid TOML: {}", e.message().trim())))?;
        let mut config = ClientConfig::new(Vec::new());
        let mut have_endpoints = false;
        for (key, value) in &table {
            match key.as_str() {
                "endpoints" => {
                    config.endpoints = string_list(value).map_err(|r| err(key, r))?;
                    have_endpoints = true;
                }
                "trust_anchor" => {
                    config.trust_anchor = Some(file_path(value, base).map_err(|r| err(key, r))?)
                }
                "server_fingerprint" => {
                    let fp = string(value).map_err(|r| err(key, r))?;
                    parse_fingerprint(&fp).map_err(|r| err(key, r))?;
                    config.server_fingerprint = Some(fp);
                }
                "client_cert" => config.client_cert = Some(file_path(value, base).map_err(|r| err(key, r))?),
                "client_key" => config.client_key = Some(file_path(value, base).map_err(|r| err(key, r))?),
                "connect_timeout_ms" => {
                    config.connect_timeout_ms = millis(value).map_err(|r| err(key, r))?;
                }
                "request_timeout_ms" => {
                    config.request_timeout_ms = millis(value).map_err(|r| err(key, r))?;
                }
                "retries" => config.retries = retries(value).map_err(|r| err(key, r))?,
                "spin_wait_us" => config.spin_wait_us = spin_wait(value).map_err(|r| err(key, r))?,
                "discover" => {
                    config.discover = value.as_bool().ok_or_else(|| {
                        err(key, format!("expected true or false, found {}", value.type_str()))
                    })?;
                }
                other => {
                    return Err(err(
                        other,
                        "unknown key (known: endpoints, trust_anchor, server_fingerprint, client_cert, \
                         client_key, connect_timeout_ms, request_timeout_ms, retries, discover, \
                         spin_wait_us)"
                            .to_owned(),
                    ));
                }
            }
        }
        if !have_endpoints {
            return Err(err(
                "endpoints",
                "missing: list the node addresses, e.g. [\"127.0.0.1:2223\"]".into(),
            ));
        }
        config.validate().map_err(|e| match e {
            ClientError::Config { key, reason, .. } => err(&key, reason),
            other => other,
        })?;
        Ok(config)
    }

    /// Checks what [`parse`](Self::parse) checks, for a configuration built in code. Errors
    /// have an empty `path`.
    pub fn validate(&self) -> Result<(), ClientError> {
        let err =
            |key: &str, reason: String| ClientError::Config { path: PathBuf::new(), key: key.into(), reason };
        if self.endpoints.is_empty() {
            return Err(err("endpoints", "is empty: list at least one node address".into()));
        }
        for endpoint in &self.endpoints {
            parse_endpoint(endpoint).map_err(|r| err("endpoints", r))?;
        }
        if let Some(fp) = &self.server_fingerprint {
            parse_fingerprint(fp).map_err(|r| err("server_fingerprint", r))?;
        }
        if self.trust_anchor.is_none() && self.server_fingerprint.is_none() {
            return Err(err(
                "trust_anchor",
                "missing: set trust_anchor (the customer CA certificate), or server_fingerprint \
                 for a node that is not initialised yet"
                    .into(),
            ));
        }
        match (&self.client_cert, &self.client_key) {
            (Some(_), None) => {
                return Err(err("client_key", "missing: client_cert is set, so is its key".into()));
            }
            (None, Some(_)) => {
                return Err(err("client_cert", "missing: client_key is set without its certificate".into()));
            }
            _ => {}
        }
        check_millis(self.connect_timeout_ms).map_err(|r| err("connect_timeout_ms", r))?;
        check_millis(self.request_timeout_ms).map_err(|r| err("request_timeout_ms", r))?;
        if self.retries > MAX_RETRIES {
            return Err(err("retries", format!("{} is more than the maximum {MAX_RETRIES}", self.retries)));
        }
        if self.spin_wait_us > MAX_SPIN_WAIT_US {
            return Err(err(
                "spin_wait_us",
                format!("{} is more than the maximum {MAX_SPIN_WAIT_US} (10 ms)", self.spin_wait_us),
            ));
        }
        Ok(())
    }

    /// The configuration as TOML, in the form [`load`](Self::load) reads (`coffer up` writes it
    /// to `DIR/client.toml`). Paths are written as they are held; a path that is not UTF-8 is
    /// written lossily.
    pub fn to_toml(&self) -> String {
        #[derive(Serialize)]
        struct File<'a> {
            endpoints: &'a [String],
            #[serde(skip_serializing_if = "Option::is_none")]
            trust_anchor: Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            server_fingerprint: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            client_cert: Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            client_key: Option<String>,
            connect_timeout_ms: u64,
            request_timeout_ms: u64,
            retries: u32,
            discover: bool,
            spin_wait_us: u64,
        }
        let lossy = |p: &Option<PathBuf>| p.as_ref().map(|p| p.to_string_lossy().into_owned());
        let file = File {
            endpoints: &self.endpoints,
            trust_anchor: lossy(&self.trust_anchor),
            server_fingerprint: self.server_fingerprint.as_deref(),
            client_cert: lossy(&self.client_cert),
            client_key: lossy(&self.client_key),
            connect_timeout_ms: self.connect_timeout_ms,
            request_timeout_ms: self.request_timeout_ms,
            retries: self.retries,
            discover: self.discover,
            spin_wait_us: self.spin_wait_us,
        };
        // Serialising a struct of strings and integers cannot fail; fall back to a comment
        // rather than panic if the toml crate ever disagrees.
        toml::to_string(&file).unwrap_or_else(|e| format!("# cannot write the configuration: {e}\n"))
    }
}

fn string(value: &toml::Value) -> Result<String, String> {
    value.as_str().map(str::to_owned).ok_or_else(|| format!("expected a string, found {}", value.type_str()))
}

fn string_list(value: &toml::Value) -> Result<Vec<String>, String> {
    let items = value
        .as_array()
        .ok_or_else(|| format!("expected an array of strings, found {}", value.type_str()))?;
    items
        .iter()
        .map(|v| {
            v.as_str().map(str::to_owned).ok_or_else(|| format!("expected strings, found {}", v.type_str()))
        })
        .collect()
}

fn file_path(value: &toml::Value, base: &Path) -> Result<PathBuf, String> {
    let text = string(value)?;
    if text.is_empty() {
        return Err("is empty: give a file path".into());
    }
    let path = PathBuf::from(text);
    Ok(if path.is_relative() { base.join(path) } else { path })
}

fn millis(value: &toml::Value) -> Result<u64, String> {
    let n = value
        .as_integer()
        .ok_or_else(|| format!("expected milliseconds (an integer), found {}", value.type_str()))?;
    let n = u64::try_from(n).map_err(|_| format!("{n} is negative"))?;
    check_millis(n)?;
    Ok(n)
}

fn check_millis(n: u64) -> Result<(), String> {
    if n == 0 {
        Err("must be more than 0".into())
    } else if n > MAX_TIMEOUT_MS {
        Err(format!("{n} is more than the maximum {MAX_TIMEOUT_MS} (one hour)"))
    } else {
        Ok(())
    }
}

fn retries(value: &toml::Value) -> Result<u32, String> {
    let n = integer_up_to(value, MAX_RETRIES.into(), "an integer")?;
    Ok(u32::try_from(n).unwrap_or(MAX_RETRIES))
}

fn spin_wait(value: &toml::Value) -> Result<u64, String> {
    integer_up_to(value, MAX_SPIN_WAIT_US, "microseconds (an integer)")
}

/// A whole number from 0 to `max`; `expected` says what it is in the error for another type.
fn integer_up_to(value: &toml::Value, max: u64, expected: &str) -> Result<u64, String> {
    let n = value.as_integer().ok_or_else(|| format!("expected {expected}, found {}", value.type_str()))?;
    match u64::try_from(n) {
        Ok(n) if n <= max => Ok(n),
        Ok(n) => Err(format!("{n} is more than the maximum {max}")),
        Err(_) => Err(format!("{n} is negative")),
    }
}

/// Splits `host:port` (or `[v6]:port`, or a bare host meaning port 2223) into host and port.
pub(crate) fn parse_endpoint(endpoint: &str) -> Result<(String, u16), String> {
    let bad = |why: &str| format!("{endpoint:?} is not host:port: {why}");
    let endpoint = endpoint.trim();
    if endpoint.is_empty() {
        return Err(bad("empty"));
    }
    if endpoint.contains("://") || endpoint.contains('/') {
        return Err(bad("give host:port without a scheme or path"));
    }
    let (host, port) = if let Some(rest) = endpoint.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad("not an IPv6 address inside [ ]"));
        }
        match after {
            "" => (host, None),
            p => (host, Some(p.strip_prefix(':').ok_or_else(|| bad("expected ':' after ']'"))?)),
        }
    } else if endpoint.matches(':').count() > 1 {
        return Err(bad("write an IPv6 address as [addr]:port"));
    } else {
        match endpoint.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (endpoint, None),
        }
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    let port = match port {
        None => coffer_proto::DEFAULT_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(0) | Err(_) => return Err(bad("the port is not a number from 1 to 65535")),
            Ok(n) => n,
        },
    };
    Ok((host.to_owned(), port))
}

/// Parses `SHA256:AB:CD:…` (the prefix optional, colons optional, any case) into the 32
/// bytes of a SHA-256 digest.
pub(crate) fn parse_fingerprint(text: &str) -> Result<[u8; 32], String> {
    let trimmed = text.trim();
    let body = match trimmed.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case("sha256:") => &trimmed[7..],
        _ => trimmed,
    };
    let hex: Vec<u8> = body.bytes().filter(|b| *b != b':').collect();
    let bad =
        || format!("{text:?} is not a SHA-256 fingerprint (\"SHA256:\" and 32 hex bytes, colons optional)");
    if hex.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(hex.chunks(2)) {
        let pair = std::str::from_utf8(pair).map_err(|_| bad())?;
        *byte = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP: &str = "SHA256:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF";

    fn parse(text: &str) -> Result<ClientConfig, ClientError> {
        ClientConfig::parse(text, Path::new("/etc/coffer"), Path::new("/etc/coffer/client.toml"))
    }

    /// The key and reason of a configuration error; fails the test for any other result.
    fn config_error(text: &str) -> (String, String) {
        match parse(text) {
            Err(ClientError::Config { key, reason, path }) => {
                assert_eq!(path, Path::new("/etc/coffer/client.toml"));
                (key, reason)
            }
            other => panic!("expected a config error for {text:?}, got {other:?}"),
        }
    }

    #[test]
    fn good_file_parses_with_relative_paths_resolved() {
        let config = parse(
            r#"
            endpoints = ["127.0.0.1:2223", "[::1]:2300", "hsm.example"]
            trust_anchor = "customerCA.crt"
            client_cert = "/abs/client.crt"
            client_key = "keys/client.key"
            connect_timeout_ms = 1500
            request_timeout_ms = 9000
            retries = 4
            spin_wait_us = 800
            "#,
        )
        .unwrap();
        assert_eq!(config.endpoints, ["127.0.0.1:2223", "[::1]:2300", "hsm.example"]);
        assert_eq!(config.trust_anchor.as_deref(), Some(Path::new("/etc/coffer/customerCA.crt")));
        assert_eq!(config.client_cert.as_deref(), Some(Path::new("/abs/client.crt")));
        assert_eq!(config.client_key.as_deref(), Some(Path::new("/etc/coffer/keys/client.key")));
        assert_eq!((config.connect_timeout_ms, config.request_timeout_ms, config.retries), (1500, 9000, 4));
        assert_eq!(config.spin_wait_us, 800);
        assert_eq!(config.server_fingerprint, None);
    }

    #[test]
    fn defaults_apply_and_fingerprint_alone_is_enough() {
        let config =
            parse(&format!("endpoints = [\"127.0.0.1:2223\"]\nserver_fingerprint = \"{FP}\"")).unwrap();
        assert_eq!(config.connect_timeout_ms, DEFAULT_CONNECT_TIMEOUT_MS);
        assert_eq!(config.request_timeout_ms, DEFAULT_REQUEST_TIMEOUT_MS);
        assert_eq!(config.retries, DEFAULT_RETRIES);
        assert_eq!(config.spin_wait_us, 0, "no busy-waiting unless asked for");
        assert_eq!(config.server_fingerprint.as_deref(), Some(FP));
    }

    #[test]
    fn each_bad_key_or_value_names_the_key() {
        let base = "endpoints = [\"127.0.0.1:2223\"]\ntrust_anchor = \"ca.crt\"\n";
        let cases: &[(&str, &str, &str)] = &[
            ("colour = \"blue\"", "colour", "unknown key"),
            ("connect_timeout_ms = \"5s\"", "connect_timeout_ms", "expected milliseconds"),
            ("connect_timeout_ms = 0", "connect_timeout_ms", "more than 0"),
            ("request_timeout_ms = -4", "request_timeout_ms", "negative"),
            ("request_timeout_ms = 99999999999", "request_timeout_ms", "maximum"),
            ("retries = 1000", "retries", "maximum"),
            ("retries = -1", "retries", "negative"),
            ("spin_wait_us = 10001", "spin_wait_us", "maximum"),
            ("spin_wait_us = -1", "spin_wait_us", "negative"),
            ("spin_wait_us = \"1ms\"", "spin_wait_us", "expected microseconds"),
            ("retries = 1.5", "retries", "expected an integer"),
            ("server_fingerprint = \"SHA256:12:34\"", "server_fingerprint", "not a SHA-256 fingerprint"),
            ("server_fingerprint = 7", "server_fingerprint", "expected a string"),
            ("client_cert = \"c.crt\"", "client_key", "missing"),
            ("client_key = \"c.key\"", "client_cert", "missing"),
            ("client_key = \"\"", "client_key", "empty"),
        ];
        for (extra, key, reason) in cases {
            let (k, r) = config_error(&format!("{base}{extra}\n"));
            assert_eq!(&k, key, "for {extra:?}");
            assert!(r.contains(reason), "for {extra:?}: reason {r:?} lacks {reason:?}");
        }
    }

    #[test]
    fn bad_endpoints_and_missing_trust_are_named() {
        let cases: &[(&str, &str, &str)] = &[
            ("trust_anchor = \"ca.crt\"", "endpoints", "missing"),
            ("endpoints = []\ntrust_anchor = \"ca.crt\"", "endpoints", "empty"),
            ("endpoints = \"127.0.0.1:2223\"\ntrust_anchor = \"ca.crt\"", "endpoints", "array"),
            ("endpoints = [1]\ntrust_anchor = \"ca.crt\"", "endpoints", "strings"),
            ("endpoints = [\"127.0.0.1:0\"]\ntrust_anchor = \"ca.crt\"", "endpoints", "port"),
            ("endpoints = [\"127.0.0.1:99999\"]\ntrust_anchor = \"ca.crt\"", "endpoints", "port"),
            ("endpoints = [\"https://h:1\"]\ntrust_anchor = \"ca.crt\"", "endpoints", "scheme"),
            ("endpoints = [\"::1:2223\"]\ntrust_anchor = \"ca.crt\"", "endpoints", "IPv6"),
            ("endpoints = [\"127.0.0.1:2223\"]", "trust_anchor", "missing"),
        ];
        for (text, key, reason) in cases {
            let (k, r) = config_error(text);
            assert_eq!(&k, key, "for {text:?}");
            assert!(r.contains(reason), "for {text:?}: reason {r:?} lacks {reason:?}");
        }
        let (k, r) = config_error("endpoints = [");
        assert_eq!(k, "");
        assert!(r.contains("not valid TOML"), "{r}");
    }

    #[test]
    fn load_reads_a_file_and_resolves_against_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("client.toml");
        std::fs::write(&path, "endpoints = [\"127.0.0.1:2223\"]\ntrust_anchor = \"customerCA.crt\"\n")
            .unwrap();
        let config = ClientConfig::load(&path).unwrap();
        assert_eq!(config.trust_anchor, Some(dir.path().join("customerCA.crt")));

        let missing = dir.path().join("absent.toml");
        match ClientConfig::load(&missing) {
            Err(ClientError::Config { path, reason, .. }) => {
                assert_eq!(path, missing);
                assert!(reason.contains("cannot read"), "{reason}");
            }
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn coffer_config_unset_or_empty_is_a_clear_error() {
        for value in [None, Some(OsString::new())] {
            let err = ClientConfig::from_env_value(value).unwrap_err();
            match &err {
                ClientError::Config { key, .. } => assert_eq!(key, CONFIG_ENV),
                other => panic!("expected a config error, got {other:?}"),
            }
            assert!(err.to_string().contains("COFFER_CONFIG is not set"), "{err}");
        }
    }

    #[test]
    fn coffer_config_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, format!("endpoints = [\"127.0.0.1:2223\"]\nserver_fingerprint = \"{FP}\"\n"))
            .unwrap();
        let config = ClientConfig::from_env_value(Some(path.into_os_string())).unwrap();
        assert_eq!(config.endpoints, ["127.0.0.1:2223"]);
    }

    #[test]
    fn to_toml_round_trips() {
        let mut config = ClientConfig::new(vec!["127.0.0.1:2223".into(), "127.0.0.1:2225".into()]);
        config.trust_anchor = Some("/d/customerCA.crt".into());
        config.server_fingerprint = Some(FP.into());
        config.client_cert = Some("/d/c.crt".into());
        config.client_key = Some("/d/c.key".into());
        config.retries = 5;
        config.discover = false;
        config.spin_wait_us = 1000;
        let text = config.to_toml();
        assert_eq!(parse(&text).unwrap(), config);
    }

    #[test]
    fn discover_is_on_by_default_and_must_be_a_boolean() {
        let base = format!("endpoints = [\"127.0.0.1:2223\"]\nserver_fingerprint = \"{FP}\"\n");
        assert!(parse(&base).unwrap().discover);
        assert!(!parse(&format!("{base}discover = false\n")).unwrap().discover);
        match parse(&format!("{base}discover = \"no\"\n")) {
            Err(ClientError::Config { key, reason, .. }) => {
                assert_eq!(key, "discover");
                assert!(reason.contains("expected true or false"), "{reason}");
            }
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn endpoints_and_fingerprints_parse() {
        assert_eq!(parse_endpoint("127.0.0.1:2223").unwrap(), ("127.0.0.1".into(), 2223));
        assert_eq!(parse_endpoint("[::1]:9").unwrap(), ("::1".into(), 9));
        assert_eq!(parse_endpoint("[::1]").unwrap(), ("::1".into(), 2223));
        assert_eq!(parse_endpoint("localhost").unwrap(), ("localhost".into(), 2223));
        assert!(parse_endpoint(":2223").is_err());
        assert!(parse_endpoint("[::1").is_err());
        let fp = parse_fingerprint(FP).unwrap();
        assert_eq!(fp[..3], [0x00, 0x11, 0x22]);
        let plain: String = FP[7..].chars().filter(|c| *c != ':').collect::<String>().to_lowercase();
        assert_eq!(parse_fingerprint(&plain).unwrap(), fp);
        assert!(parse_fingerprint("SHA256:zz").is_err());
        assert!(parse_fingerprint(&format!("{}G", &plain[..63])).is_err());
    }
}
