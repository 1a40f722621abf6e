//! [`ClientError`], and the one place where a gRPC status becomes one.

use std::path::{Path, PathBuf};

use tonic::{Code, Status};

/// Everything a Coffer client call can fail with. Messages never contain passwords or key
/// bytes: they come from the node (which keeps the same rule) or name an endpoint, a file or a
/// configuration key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The node refused the operation with a PKCS#11 return value (`CKR_*`), taken from the
    /// status metadata `coffer-ckr` / `coffer-ckr-name`.
    #[error("{ckr_name} (0x{ckr:08X}): {message}")]
    Hsm {
        /// The `CK_RV`.
        ckr: u64,
        /// Its name, e.g. `CKR_PIN_INCORRECT`.
        ckr_name: String,
        /// What the node said was wrong.
        message: String,
    },
    /// No answer: the node (or, for a call that may go to any node, every node tried) could not
    /// be reached, or the connection broke.
    #[error("unavailable: {endpoint}: {message}")]
    Unavailable {
        /// The endpoint, or a comma-separated list of every endpoint tried.
        endpoint: String,
        /// What went wrong, per endpoint.
        message: String,
    },
    /// A request got no answer within `request_timeout_ms`. It may have been applied.
    #[error("timeout: {operation} on {endpoint} got no answer within {after_ms} ms")]
    Timeout {
        /// The node.
        endpoint: String,
        /// The RPC, e.g. `Sign`.
        operation: &'static str,
        /// The timeout that expired.
        after_ms: u64,
    },
    /// The TLS handshake failed: the node's certificate did not verify against the trust
    /// anchor or the pinned fingerprint, or the node refused ours.
    #[error("TLS with {endpoint}: {message}")]
    Tls {
        /// The node.
        endpoint: String,
        /// rustls' reason.
        message: String,
    },
    /// The configuration is wrong: the file, the key and why. `path` is empty for a
    /// configuration built in code, `key` empty for a file that cannot be read or parsed.
    #[error("{}", config_message(path, key, reason))]
    Config {
        /// The configuration file.
        path: PathBuf,
        /// The key at fault.
        key: String,
        /// Why.
        reason: String,
    },
    /// A certificate or key file named by the configuration cannot be used.
    #[error("{}: {reason}", path.display())]
    Credentials {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The node answered with a gRPC status that carries no PKCS#11 code (for example
    /// `UNIMPLEMENTED` from an older node, or `INVALID_ARGUMENT` for a malformed request).
    #[error("{endpoint} answered {code:?}: {message}")]
    Rpc {
        /// The node.
        endpoint: String,
        /// The gRPC status code.
        code: Code,
        /// The status message.
        message: String,
    },
    /// The node's answer does not follow the protocol (bad metadata, a missing field).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// Reading the input or writing the output of a streamed call failed; the call was
    /// cancelled.
    #[error("stream I/O: {0}")]
    Io(String),
    /// The caller used the API in a way it cannot serve (e.g. the blocking API from inside an
    /// async runtime).
    #[error("invalid use: {0}")]
    InvalidUse(String),
}

fn config_message(path: &Path, key: &str, reason: &str) -> String {
    match (path.as_os_str().is_empty(), key.is_empty()) {
        (true, true) => format!("client configuration: {reason}"),
        (true, false) => format!("{key} {reason}"),
        (false, true) => format!("{}: {reason}", path.display()),
        (false, false) => format!("{}: {key}: {reason}", path.display()),
    }
}

impl ClientError {
    /// The PKCS#11 return value the node gave, if the error came from one.
    pub fn ckr(&self) -> Option<u64> {
        match self {
            ClientError::Hsm { ckr, .. } => Some(*ckr),
            _ => None,
        }
    }

    /// Whether trying again (later, or on another node for calls that may go to any node) may
    /// succeed: the node could not be reached or did not answer in time. A refusal by the HSM,
    /// a TLS failure or a configuration error will not go away by retrying.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ClientError::Unavailable { .. } | ClientError::Timeout { .. })
    }
}

/// How far a failed attempt got, which decides whether it may be sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reach {
    /// The request never left this process (connecting failed): always safe to send again.
    NotSent,
    /// The request may have reached the node and been applied (the connection broke or the
    /// answer timed out): only idempotent calls are sent again.
    MaybeApplied,
    /// The node answered with a refusal: final.
    Answered,
}

/// A failed attempt: the error to report and how far the request got.
#[derive(Debug)]
pub(crate) struct Failure {
    pub error: ClientError,
    pub reach: Reach,
}

impl Failure {
    pub fn new(error: ClientError, reach: Reach) -> Self {
        Failure { error, reach }
    }
}

/// Maps a status from a call to `endpoint` to the error to report and how far the request got.
///
/// A status that tonic made locally carries its cause as `source`; one that came from the node
/// has none. A local status whose cause chain holds tonic's `ConnectError` means the channel
/// could not (re)connect, so nothing was sent.
pub(crate) fn from_status(status: &Status, endpoint: &str) -> Failure {
    if let Some(source) = std::error::Error::source(status) {
        return from_transport(status, source, endpoint);
    }
    match hsm_code(status) {
        Ok(Some((ckr, ckr_name))) => Failure::new(
            ClientError::Hsm { ckr, ckr_name, message: status.message().to_owned() },
            Reach::Answered,
        ),
        Ok(None) => from_plain_status(status, endpoint),
        Err(reason) => Failure::new(ClientError::Protocol(format!("{endpoint}: {reason}")), Reach::Answered),
    }
}

/// A status the node sent without PKCS#11 metadata.
fn from_plain_status(status: &Status, endpoint: &str) -> Failure {
    let message = status.message().to_owned();
    match status.code() {
        // gRPC's meaning: the service is not serving now. The node may be starting or
        // shutting down; whether it applied anything is unknown, so treat it as maybe applied.
        Code::Unavailable => Failure::new(
            ClientError::Unavailable { endpoint: endpoint.to_owned(), message },
            Reach::MaybeApplied,
        ),
        code => {
            Failure::new(ClientError::Rpc { endpoint: endpoint.to_owned(), code, message }, Reach::Answered)
        }
    }
}

/// A status tonic made locally from a transport failure.
fn from_transport(status: &Status, source: &(dyn std::error::Error + 'static), endpoint: &str) -> Failure {
    let chain = error_chain(source);
    if let Some(message) = tls_failure(source) {
        return Failure::new(ClientError::Tls { endpoint: endpoint.to_owned(), message }, Reach::NotSent);
    }
    let reach = if find_in_chain::<tonic::ConnectError>(source).is_some() {
        Reach::NotSent
    } else {
        Reach::MaybeApplied
    };
    let what = if reach == Reach::NotSent { "cannot connect" } else { "connection lost" };
    let message = if chain.is_empty() { status.message().to_owned() } else { chain };
    Failure::new(
        ClientError::Unavailable { endpoint: endpoint.to_owned(), message: format!("{what}: {message}") },
        reach,
    )
}

/// The PKCS#11 code and name in a status' metadata: `Ok(None)` when absent, an error when
/// present but unreadable (a node bug worth reporting rather than hiding).
pub(crate) fn hsm_code(status: &Status) -> Result<Option<(u64, String)>, String> {
    let metadata = status.metadata();
    let Some(value) = metadata.get(coffer_proto::CKR_METADATA_KEY) else {
        return Ok(None);
    };
    let text =
        value.to_str().map_err(|_| format!("metadata {} is not text", coffer_proto::CKR_METADATA_KEY))?;
    let ckr: u64 = text.trim().parse().map_err(|_| {
        format!("metadata {} = {text:?} is not a decimal CK_RV", coffer_proto::CKR_METADATA_KEY)
    })?;
    let name = metadata
        .get(coffer_proto::CKR_NAME_METADATA_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_else(|| format!("CKR_0x{ckr:08X}"));
    Ok(Some((ckr, name)))
}

/// The TLS failure in a cause chain, if there is one: a `rustls::Error`, or an I/O error of
/// kind `InvalidData`, which is how tokio-rustls reports every TLS failure and which nothing
/// else on these connections produces. The second form matters for a connection that broke
/// after the handshake (TLS 1.3 reports a refused client certificate by an alert then): HTTP/2
/// keeps only the kind and text of the I/O error that ended the connection, not the rustls
/// error inside it.
pub(crate) fn tls_failure(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    if let Some(tls) = find_in_chain::<rustls::Error>(err) {
        return Some(tls.to_string());
    }
    let mut current = Some(err);
    while let Some(e) = current {
        let io = e
            .downcast_ref::<std::io::Error>()
            .or_else(|| e.downcast_ref::<h2::Error>().and_then(h2::Error::get_io));
        if let Some(io) = io
            && io.kind() == std::io::ErrorKind::InvalidData
        {
            return Some(io.to_string());
        }
        current = e.source();
    }
    None
}

/// Finds an error of type `E` in a cause chain, looking through `io::Error` wrappers too
/// (tokio-rustls reports rustls errors inside an `io::Error`).
pub(crate) fn find_in_chain<'a, E: std::error::Error + 'static>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a E> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<E>() {
            return Some(found);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(found) = find_in_chain::<E>(inner)
        {
            return Some(found);
        }
        current = e.source();
    }
    None
}

/// The messages of a cause chain joined with `: `, skipping repeats (wrappers often print
/// their cause's message verbatim).
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(err);
    while let Some(e) = current {
        let text = e.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::metadata::MetadataValue;

    fn status_with(code: Code, ckr: Option<&'static str>, name: Option<&'static str>) -> Status {
        let mut status = Status::new(code, "the PIN is wrong");
        if let Some(ckr) = ckr {
            status.metadata_mut().insert(coffer_proto::CKR_METADATA_KEY, MetadataValue::from_static(ckr));
        }
        if let Some(name) = name {
            status
                .metadata_mut()
                .insert(coffer_proto::CKR_NAME_METADATA_KEY, MetadataValue::from_static(name));
        }
        status
    }

    #[test]
    fn ckr_metadata_becomes_an_hsm_error() {
        let failure =
            from_status(&status_with(Code::PermissionDenied, Some("160"), Some("CKR_PIN_INCORRECT")), "n1");
        assert_eq!(failure.reach, Reach::Answered);
        assert_eq!(failure.error.ckr(), Some(0xA0));
        assert!(!failure.error.is_retryable());
        match &failure.error {
            ClientError::Hsm { ckr_name, message, .. } => {
                assert_eq!(ckr_name, "CKR_PIN_INCORRECT");
                assert_eq!(message, "the PIN is wrong");
            }
            other => panic!("expected Hsm, got {other:?}"),
        }
        assert_eq!(failure.error.to_string(), "CKR_PIN_INCORRECT (0x000000A0): the PIN is wrong");
    }

    #[test]
    fn ckr_without_name_still_maps() {
        let failure = from_status(&status_with(Code::InvalidArgument, Some("7"), None), "n1");
        match failure.error {
            ClientError::Hsm { ckr: 7, ckr_name, .. } => assert_eq!(ckr_name, "CKR_0x00000007"),
            other => panic!("expected Hsm, got {other:?}"),
        }
    }

    #[test]
    fn unreadable_ckr_metadata_is_a_protocol_error() {
        let failure = from_status(&status_with(Code::Internal, Some("CKR_OOPS"), None), "n1");
        assert!(
            matches!(&failure.error, ClientError::Protocol(m) if m.contains("not a decimal")),
            "{:?}",
            failure.error
        );
        assert_eq!(failure.error.ckr(), None);
    }

    #[test]
    fn missing_metadata_keeps_the_grpc_code() {
        let failure = from_status(&status_with(Code::Unimplemented, None, None), "10.0.0.1:2223");
        match &failure.error {
            ClientError::Rpc { endpoint, code, message } => {
                assert_eq!(
                    (endpoint.as_str(), *code, message.as_str()),
                    ("10.0.0.1:2223", Code::Unimplemented, "the PIN is wrong")
                );
            }
            other => panic!("expected Rpc, got {other:?}"),
        }
        assert_eq!(failure.reach, Reach::Answered);
        assert!(!failure.error.is_retryable());
    }

    #[test]
    fn unavailable_from_the_node_is_retryable_but_maybe_applied() {
        let failure = from_status(&Status::unavailable("shutting down"), "n2");
        assert!(failure.error.is_retryable());
        assert_eq!(failure.reach, Reach::MaybeApplied);
    }

    #[test]
    fn local_connect_failures_were_not_sent() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let status = Status::from_error(Box::new(tonic::ConnectError(Box::new(refused))));
        let failure = from_status(&status, "127.0.0.1:1");
        assert_eq!(failure.reach, Reach::NotSent);
        match &failure.error {
            ClientError::Unavailable { endpoint, message } => {
                assert_eq!(endpoint, "127.0.0.1:1");
                assert!(message.contains("connection refused"), "{message}");
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }

    #[test]
    fn tls_failures_inside_io_errors_are_found() {
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, tls);
        let status = Status::from_error(Box::new(tonic::ConnectError(Box::new(io))));
        let failure = from_status(&status, "n3");
        assert!(
            matches!(&failure.error, ClientError::Tls { endpoint, .. } if endpoint == "n3"),
            "{:?}",
            failure.error
        );
        assert!(!failure.error.is_retryable());
    }

    #[test]
    fn a_tls_alert_after_the_handshake_is_a_tls_error() {
        // How hyper reports a connection the node closed with an alert (its text only).
        let io =
            std::io::Error::new(std::io::ErrorKind::InvalidData, "received fatal alert: CertificateRequired");
        let failure = from_status(&Status::from_error(Box::new(Wrapper(io))), "n5");
        match &failure.error {
            ClientError::Tls { endpoint, message } => {
                assert_eq!(endpoint, "n5");
                assert!(message.contains("CertificateRequired"), "{message}");
            }
            other => panic!("expected Tls, got {other:?}"),
        }
    }

    #[test]
    fn broken_connections_may_have_been_applied() {
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "connection reset");
        // tonic keeps an error it does not recognise as the local status' source.
        let status = Status::from_error(Box::new(Wrapper(reset)));
        let failure = from_status(&status, "n4");
        assert_eq!(failure.reach, Reach::MaybeApplied);
        assert!(failure.error.is_retryable());
        assert!(failure.error.to_string().contains("connection lost"), "{}", failure.error);
    }

    /// An error tonic does not recognise, so `Status::from_error` keeps it as the source.
    #[derive(Debug)]
    struct Wrapper(std::io::Error);
    impl std::fmt::Display for Wrapper {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "transport error")
        }
    }
    impl std::error::Error for Wrapper {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn config_errors_read_well() {
        let e =
            ClientError::Config { path: "/c.toml".into(), key: "retries".into(), reason: "too many".into() };
        assert_eq!(e.to_string(), "/c.toml: retries: too many");
        let e = ClientError::Config {
            path: PathBuf::new(),
            key: "COFFER_CONFIG".into(),
            reason: "is not set".into(),
        };
        assert_eq!(e.to_string(), "COFFER_CONFIG is not set");
    }
}
