//! TLS 1.3 to the nodes with rustls on aws-lc-rs: how the client trusts a node (its trust
//! anchor, or a pinned certificate before the cluster is initialised), the client certificate
//! it presents, and the connector that gives tonic an established TLS stream.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use coffer_crypto::{HashAlg, Module};
use hyper_util::rt::TokioIo;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tonic::transport::Uri;
use zeroize::Zeroizing;

use crate::batched_write::Batched;
use crate::config::{ClientConfig, parse_fingerprint};
use crate::error::ClientError;

/// The ALPN protocol of gRPC.
const ALPN_H2: &[u8] = b"h2";

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// How a client decides to trust a node.
#[derive(Debug, Clone, Copy)]
pub enum ServerTrust<'a> {
    /// Verify the node's chain against the trust anchor(s) in this PEM text (`customerCA.crt`).
    AnchorPem(&'a [u8]),
    /// Accept exactly the certificate with this SHA-256 fingerprint (the bootstrap certificate
    /// an uninitialised node prints), `SHA256:` prefix and colons optional.
    Fingerprint(&'a str),
    /// Accept the certificate with this fingerprint, or else a chain to the anchor(s) in this
    /// PEM text: a joining node is reached by its bootstrap certificate until it has been
    /// cloned, and by the certificate the cluster key gave it after (an interrupted AddHsm,
    /// run again).
    FingerprintOrAnchorPem { fingerprint: &'a str, anchor_pem: &'a [u8] },
}

/// A client certificate chain and its private key, both PEM, for mutual TLS.
#[derive(Clone, Copy)]
pub struct ClientCertPem<'a> {
    pub chain: &'a [u8],
    pub key: &'a [u8],
}

impl std::fmt::Debug for ClientCertPem<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCertPem").finish_non_exhaustive()
    }
}

/// The rustls client configuration the client configuration describes: the files it names are
/// read and handed to [`rustls_client_config`].
pub(crate) fn rustls_config(config: &ClientConfig) -> Result<Arc<rustls::ClientConfig>, ClientError> {
    let anchor = config.trust_anchor.as_deref().map(read_pem).transpose()?;
    let trust = match (&anchor, &config.server_fingerprint) {
        (Some(pem), _) => ServerTrust::AnchorPem(pem),
        (None, Some(fingerprint)) => ServerTrust::Fingerprint(fingerprint),
        (None, None) => {
            return Err(ClientError::Config {
                path: Default::default(),
                key: "trust_anchor".into(),
                reason: "missing: a node is never trusted unverified; set trust_anchor or server_fingerprint"
                    .into(),
            });
        }
    };
    let credentials = match (&config.client_cert, &config.client_key) {
        (Some(cert), Some(key)) => Some((read_pem(cert)?, Zeroizing::new(read_pem(key)?), cert, key)),
        _ => None,
    };
    let client_cert = credentials.as_ref().map(|(chain, key, _, _)| ClientCertPem { chain, key });
    // Errors name the files the configuration gave.
    let anchor_path = config.trust_anchor.as_deref().unwrap_or(Path::new(""));
    rustls_client_config(trust, client_cert).map_err(|e| match e {
        ClientError::Credentials { path, reason } => {
            let path = match path.to_str() {
                Some(ANCHOR_ORIGIN) => anchor_path.to_path_buf(),
                Some(CHAIN_ORIGIN) => credentials.as_ref().map_or(path.clone(), |c| c.2.clone()),
                Some(KEY_ORIGIN) => credentials.as_ref().map_or(path.clone(), |c| c.3.clone()),
                _ => path,
            };
            ClientError::Credentials { path, reason }
        }
        other => other,
    })
}

/// Names the in-memory inputs in errors; [`rustls_config`] replaces them with file paths.
const ANCHOR_ORIGIN: &str = "trust anchor";
const CHAIN_ORIGIN: &str = "client certificate";
const KEY_ORIGIN: &str = "client key";

/// A rustls client configuration: TLS 1.3 only, ALPN `h2`, the node trusted as `trust` says,
/// and `client_cert` presented when given. The SDK builds its connections with it, and the
/// node's tests use it to reach a node exactly as a client would.
pub fn rustls_client_config(
    trust: ServerTrust<'_>,
    client_cert: Option<ClientCertPem<'_>>,
) -> Result<Arc<rustls::ClientConfig>, ClientError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| ClientError::Protocol(format!("TLS 1.3 with aws-lc-rs: {e}")))?;
    let builder = match trust {
        ServerTrust::AnchorPem(pem) => builder.with_root_certificates(root_store(pem)?),
        ServerTrust::Fingerprint(fingerprint) => {
            let verifier = PinnedServerVerifier::new(fingerprint, None)?;
            builder.dangerous().with_custom_certificate_verifier(Arc::new(verifier))
        }
        ServerTrust::FingerprintOrAnchorPem { fingerprint, anchor_pem } => {
            let anchored =
                WebPkiServerVerifier::builder_with_provider(Arc::new(root_store(anchor_pem)?), provider())
                    .build()
                    .map_err(|e| ClientError::Credentials {
                        path: ANCHOR_ORIGIN.into(),
                        reason: format!("not usable as a trust anchor: {e}"),
                    })?;
            let verifier = PinnedServerVerifier::new(fingerprint, Some(anchored))?;
            builder.dangerous().with_custom_certificate_verifier(Arc::new(verifier))
        }
    };
    let mut tls = match client_cert {
        Some(ClientCertPem { chain, key }) => {
            let chain = certificates(chain, CHAIN_ORIGIN)?;
            let key_der = private_key(key)?;
            builder.with_client_auth_cert(chain, key_der).map_err(|e| ClientError::Credentials {
                path: KEY_ORIGIN.into(),
                reason: format!("does not go with the client certificate: {e}"),
            })?
        }
        None => builder.with_no_client_auth(),
    };
    tls.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(Arc::new(tls))
}

/// The bytes of a PEM file.
fn read_pem(path: &Path) -> Result<Vec<u8>, ClientError> {
    std::fs::read(path).map_err(|e| ClientError::Credentials {
        path: path.to_path_buf(),
        reason: format!("cannot read: {e}"),
    })
}

/// A root store of every certificate in the trust anchor PEM.
fn root_store(pem: &[u8]) -> Result<RootCertStore, ClientError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(pem, ANCHOR_ORIGIN)? {
        roots.add(cert).map_err(|e| ClientError::Credentials {
            path: ANCHOR_ORIGIN.into(),
            reason: format!("not usable as a trust anchor: {e}"),
        })?;
    }
    Ok(roots)
}

/// The certificates of a PEM text; an error when it has none.
fn certificates(pem: &[u8], origin: &str) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let bad = |reason: String| ClientError::Credentials { path: origin.into(), reason };
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(bad("holds no PEM certificate".into()));
    }
    Ok(certs)
}

/// The private key of a PEM text (the caller keeps the text in a wiping buffer).
fn private_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, ClientError> {
    // The parser's error names the PEM section, never the key bytes.
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| ClientError::Credentials {
        path: KEY_ORIGIN.into(),
        reason: format!("holds no usable PEM private key: {e}"),
    })
}

/// Accepts exactly one server certificate, named by its SHA-256 fingerprint: the bootstrap
/// certificate of a node that is not initialised yet. The handshake signature is still checked
/// against that certificate's key by the provider, so pinning replaces only the chain of trust,
/// not the proof that the node holds the key. With `otherwise`, a certificate that is not the
/// pinned one may still pass that verifier.
#[derive(Debug)]
struct PinnedServerVerifier {
    module: Module,
    fingerprint: [u8; 32],
    otherwise: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl PinnedServerVerifier {
    fn new(fingerprint: &str, otherwise: Option<Arc<WebPkiServerVerifier>>) -> Result<Self, ClientError> {
        let fingerprint = parse_fingerprint(fingerprint).map_err(|reason| ClientError::Config {
            path: Default::default(),
            key: "server_fingerprint".into(),
            reason,
        })?;
        Ok(PinnedServerVerifier { module: Module::power_on(), fingerprint, otherwise, provider: provider() })
    }
}

impl ServerCertVerifier for PinnedServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let seen = self
            .module
            .digest(HashAlg::Sha256, end_entity.as_ref())
            .map_err(|e| rustls::Error::General(format!("cannot fingerprint the certificate: {e}")))?;
        if seen.as_slice() == self.fingerprint.as_slice() {
            return Ok(ServerCertVerified::assertion());
        }
        match &self.otherwise {
            Some(anchored) => {
                anchored.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            }
            None => Err(rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure)),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// Opens TCP to one node and runs the TLS handshake, for tonic's channel (which calls it
/// again to reconnect). The URI tonic passes is ignored: the address and the name the
/// certificate must carry are fixed per node.
#[derive(Clone)]
pub struct NodeConnector {
    host: String,
    port: u16,
    server_name: ServerName<'static>,
    tls: tokio_rustls::TlsConnector,
}

impl std::fmt::Debug for NodeConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeConnector")
            .field("host", &self.host)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl NodeConnector {
    /// A connector to `host:port` that checks the node's certificate for `host` (an IP address
    /// or a DNS name).
    pub fn new(host: &str, port: u16, tls: Arc<rustls::ClientConfig>) -> Result<Self, ClientError> {
        let server_name = ServerName::try_from(host.to_owned()).map_err(|e| ClientError::Config {
            path: Default::default(),
            key: "endpoints".into(),
            reason: format!("{host:?} is not a valid IP address or DNS name: {e}"),
        })?;
        Ok(NodeConnector {
            host: host.to_owned(),
            port,
            server_name,
            tls: tokio_rustls::TlsConnector::from(tls),
        })
    }
}

type ConnectFuture =
    Pin<Box<dyn Future<Output = std::io::Result<TokioIo<Batched<TlsStream<TcpStream>>>>> + Send>>;

impl tower_service::Service<Uri> for NodeConnector {
    type Response = TokioIo<Batched<TlsStream<TcpStream>>>;
    type Error = std::io::Error;
    type Future = ConnectFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let tcp = TcpStream::connect((this.host.as_str(), this.port)).await?;
            // Small request/response messages: do not wait to coalesce them.
            tcp.set_nodelay(true)?;
            let tls = this.tls.connect(this.server_name.clone(), tcp).await?;
            Ok(TokioIo::new(Batched::new(tls)))
        })
    }
}
