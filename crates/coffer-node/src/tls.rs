//! TLS 1.3 configurations for the node's gRPC port and for clients, on rustls with the
//! aws-lc-rs provider (the project's one crypto provider).
//!
//! * The server presents its chain (node cert → cluster cert) and, when client trust anchors
//!   are registered, asks for a client certificate. [`ClientTrustAnchors`] is the live set of
//!   anchors an admin manages with `cluster mtls register-trust-anchor | deregister-trust-anchor
//!   | set-enforcement`; changes apply to the next handshake without a restart.
//! * Clients (the SDK, and this crate's tests through it) build their side with
//!   `coffer_client::rustls_client_config`: the customer's trust anchor, or the pinned
//!   fingerprint of a node's bootstrap certificate.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};

use coffer_crypto::Module;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};

use crate::pki::{self, IdentityKey, PkiError};

/// The ALPN protocol gRPC runs over.
pub const ALPN_H2: &[u8] = b"h2";

/// At most this many client trust anchors may be registered at once (a bound on the work of
/// each handshake and on what an admin can accumulate by mistake).
pub const MAX_CLIENT_TRUST_ANCHORS: usize = 16;

/// Why a TLS configuration or an anchor change was refused.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("no certificate was given")]
    NoCertificate,
    #[error("the trust anchor {0} is already registered")]
    AnchorAlreadyRegistered(String),
    #[error("no trust anchor with fingerprint {0} is registered")]
    UnknownAnchor(String),
    #[error("at most {MAX_CLIENT_TRUST_ANCHORS} client trust anchors can be registered")]
    TooManyAnchors,
    #[error("{0:?} is not a SHA-256 fingerprint (64 hex digits, colons optional)")]
    BadFingerprint(String),
    #[error("the client trust anchors cannot be used: {0}")]
    Verifier(String),
}

/// Result of this module.
pub type Result<T> = std::result::Result<T, TlsError>;

/// The aws-lc-rs provider every configuration here uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Every certificate in a PEM text, in order (a chain: leaf first).
pub fn certificates_from_pem(pem: &str) -> Result<Vec<CertificateDer<'static>>> {
    let mut rest = pem.as_bytes();
    let mut certs = Vec::new();
    while !rest.iter().all(u8::is_ascii_whitespace) {
        let (next, block) = x509_parser::pem::parse_x509_pem(rest)
            .map_err(|_| PkiError::NotPem { what: "the certificate chain" })?;
        if block.label != "CERTIFICATE" {
            return Err(PkiError::NotPem { what: "the certificate chain" }.into());
        }
        certs.push(CertificateDer::from(block.contents));
        rest = next;
    }
    if certs.is_empty() {
        return Err(TlsError::NoCertificate);
    }
    Ok(certs)
}

/// The private key in rustls' form. rustls parses it into aws-lc at once; our own copy stays
/// in `Zeroizing` (the DER rustls is handed is its to drop).
fn rustls_key(key: &IdentityKey) -> PrivateKeyDer<'static> {
    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.pkcs8_der().to_vec()))
}

/// The node's server configuration: TLS 1.3 only, ALPN `h2`, the given chain (node
/// certificate first, then the cluster certificate) and key, and client authentication as
/// `client_anchors` says at the time of each handshake (resumption is off, see below).
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: &IdentityKey,
    client_anchors: Arc<ClientTrustAnchors>,
) -> Result<Arc<ServerConfig>> {
    if chain.is_empty() {
        return Err(TlsError::NoCertificate);
    }
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(client_anchors)
        .with_single_cert(chain, rustls_key(key))?;
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    // No session resumption: a resumed session skips client-certificate verification, so a
    // deregistered anchor or newly enforced mTLS would not apply to clients holding a ticket.
    // gRPC connections are long-lived, so full handshakes cost little.
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// The TLS configurations of the peer port, both ways: each node presents its chain (node
/// certificate, cluster certificate) and trusts only certificates issued by the cluster key,
/// so a certificate the owner's CA issued to anyone else does not open the peer port.
#[derive(Debug, Clone)]
pub struct PeerTls {
    pub server: Arc<ServerConfig>,
    pub client: Arc<rustls::ClientConfig>,
}

impl PeerTls {
    /// The peer configurations for `chain` (node certificate first) and `key`, trusting
    /// `cluster_cert`.
    pub fn new(
        chain: Vec<CertificateDer<'static>>,
        key: &IdentityKey,
        cluster_cert: CertificateDer<'static>,
    ) -> Result<PeerTls> {
        let mut roots = RootCertStore::empty();
        roots.add(cluster_cert).map_err(|e| TlsError::Verifier(e.to_string()))?;
        let roots = Arc::new(roots);
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
            .build()
            .map_err(|e| TlsError::Verifier(e.to_string()))?;
        let mut server = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), rustls_key(key))?;
        server.alpn_protocols = vec![ALPN_H2.to_vec()];
        let mut client = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, rustls_key(key))?;
        client.alpn_protocols = vec![ALPN_H2.to_vec()];
        Ok(PeerTls { server: Arc::new(server), client: Arc::new(client) })
    }
}

/// Normalises a fingerprint to 64 upper-case hex digits, whatever colons and case it came in.
fn normalise_fingerprint(fp: &str) -> Result<String> {
    let hex: String = fp.chars().filter(|c| *c != ':').collect::<String>().to_ascii_uppercase();
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(TlsError::BadFingerprint(fp.to_owned()));
    }
    Ok(hex)
}

/// The registered client trust anchors and the enforcement flag, shared by every handshake.
#[derive(Debug, Default)]
struct AnchorState {
    /// Fingerprint → anchor DER.
    anchors: BTreeMap<String, CertificateDer<'static>>,
    enforce: bool,
    /// rustls' own WebPKI verifier over the current anchors; rebuilt on every change so that a
    /// handshake only clones an `Arc`.
    verifier: Option<Arc<dyn ClientCertVerifier>>,
}

/// The client trust anchors of mutual TLS, changeable at runtime, and the server's
/// [`ClientCertVerifier`]:
///
/// * enforcement off, no anchors: no client certificate is asked for;
/// * enforcement off, anchors registered: a certificate is asked for but optional; one that
///   is offered must chain to a registered anchor;
/// * enforcement on: a certificate chaining to a registered anchor is required (with no
///   anchor registered, every client is refused).
///
/// Verification itself is rustls' `WebPkiClientVerifier`.
#[derive(Debug)]
pub struct ClientTrustAnchors {
    module: Module,
    provider: Arc<CryptoProvider>,
    state: RwLock<AnchorState>,
}

impl ClientTrustAnchors {
    /// An empty set with enforcement off.
    pub fn new(module: &Module) -> Arc<Self> {
        Arc::new(Self { module: module.clone(), provider: provider(), state: RwLock::default() })
    }

    /// Registers a CA certificate (PEM) as a client trust anchor; returns its fingerprint,
    /// the name it is deregistered by.
    pub fn register(&self, anchor_pem: &str) -> Result<String> {
        let what = "the client trust anchor";
        let der = pki::pem_certificate(what, anchor_pem, Some(pki::MAX_INIT_PEM_CHARS))?;
        let cert = pki::parse_certificate(what, &der)?;
        if !cert.is_ca() {
            return Err(PkiError::AnchorNotCa.into());
        }
        pki::check_validity(what, &cert)?;
        let fp = pki::fingerprint(&self.module, &der)?;
        let mut state = self.write();
        let key = fp.replace(':', "");
        if state.anchors.contains_key(&key) {
            return Err(TlsError::AnchorAlreadyRegistered(fp));
        }
        if state.anchors.len() >= MAX_CLIENT_TRUST_ANCHORS {
            return Err(TlsError::TooManyAnchors);
        }
        let mut anchors = state.anchors.clone();
        anchors.insert(key, CertificateDer::from(der));
        state.verifier = self.build_verifier(&anchors)?;
        state.anchors = anchors;
        Ok(fp)
    }

    /// Removes the anchor with this fingerprint; clients it vouched for are refused from the
    /// next handshake on.
    pub fn deregister(&self, fingerprint: &str) -> Result<()> {
        let key = normalise_fingerprint(fingerprint)?;
        let mut state = self.write();
        let mut anchors = state.anchors.clone();
        if anchors.remove(&key).is_none() {
            return Err(TlsError::UnknownAnchor(fingerprint.to_owned()));
        }
        state.verifier = self.build_verifier(&anchors)?;
        state.anchors = anchors;
        Ok(())
    }

    /// Turns mandatory client certificates on or off.
    pub fn set_enforcement(&self, enforce: bool) {
        self.write().enforce = enforce;
    }

    /// Whether client certificates are mandatory.
    pub fn enforcement(&self) -> bool {
        self.read().enforce
    }

    /// Fingerprints (colon-separated) of the registered anchors.
    pub fn fingerprints(&self) -> Vec<String> {
        let state = self.read();
        let colon = |hex: &String| {
            hex.as_bytes().chunks(2).map(String::from_utf8_lossy).collect::<Vec<_>>().join(":")
        };
        state.anchors.keys().map(colon).collect()
    }

    fn build_verifier(
        &self,
        anchors: &BTreeMap<String, CertificateDer<'static>>,
    ) -> Result<Option<Arc<dyn ClientCertVerifier>>> {
        if anchors.is_empty() {
            return Ok(None);
        }
        let mut roots = RootCertStore::empty();
        for der in anchors.values() {
            roots.add(der.clone())?;
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
            .build()
            .map_err(|e| TlsError::Verifier(e.to_string()))?;
        Ok(Some(verifier))
    }

    // A poisoned lock only means a writer panicked between two assignments of whole values;
    // the state is still consistent, so keep serving rather than panic every handshake.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, AnchorState> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, AnchorState> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ClientCertVerifier for ClientTrustAnchors {
    fn offer_client_auth(&self) -> bool {
        let state = self.read();
        state.enforce || !state.anchors.is_empty()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.read().enforce
    }

    /// No hints: the anchors can change under us, and hints are optional in TLS 1.3.
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> std::result::Result<ClientCertVerified, rustls::Error> {
        let verifier = self.read().verifier.clone();
        match verifier {
            Some(v) => v.verify_client_cert(end_entity, intermediates, now),
            None => Err(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio_rustls::{TlsAcceptor, TlsConnector};

    use coffer_client::{ClientCertPem, ServerTrust};
    use coffer_crypto::encoding::pem;
    use zeroize::Zeroizing;

    use rustls::ClientConfig;
    use rustls::pki_types::ServerName;

    use super::*;
    use crate::pki::tests::initialised_cluster;
    use crate::pki::{DevCa, SubjectAltName, bootstrap_certificate, certificate_pem, issue_node_certificate};

    /// A node with its chain, and the CA clients trust.
    struct Fixture {
        module: Module,
        ca: DevCa,
        node_key: IdentityKey,
        chain: Vec<CertificateDer<'static>>,
    }

    fn fixture() -> Fixture {
        let (module, ca, cluster_key, cluster_cert) = initialised_cluster();
        let node_key = IdentityKey::generate(&module).unwrap();
        let sans = [SubjectAltName::Ip("127.0.0.1".parse().unwrap())];
        let node_cert =
            issue_node_certificate(&cluster_key, &cluster_cert, node_key.public_key(), "node-1", &sans);
        let chain = certificates_from_pem(&format!("{}{cluster_cert}", node_cert.unwrap())).unwrap();
        assert_eq!(chain.len(), 2);
        Fixture { module, ca, node_key, chain }
    }

    /// A client certificate issued by `ca` (a leaf with clientAuth), and its key, both PEM.
    fn client_identity(module: &Module, ca: &DevCa) -> (String, Zeroizing<String>) {
        let key = IdentityKey::generate(module).unwrap();
        let pem = issue_node_certificate(ca.key(), ca.cert_pem(), key.public_key(), "client-1", &[]).unwrap();
        (pem, Zeroizing::new(pem::encode(pem::PRIVATE_KEY_LABEL, &key.pkcs8_der())))
    }

    /// The client side as the SDK builds it.
    fn client(trust: ServerTrust<'_>, cert: Option<ClientCertPem<'_>>) -> Arc<ClientConfig> {
        coffer_client::rustls_client_config(trust, cert).unwrap()
    }

    /// Which side refused a handshake.
    #[derive(Debug, PartialEq)]
    enum Refused {
        ByClient,
        ByServer,
    }

    /// One handshake on loopback; Ok only if both sides complete it and a byte crosses.
    async fn handshake(
        server: Arc<ServerConfig>,
        client: Arc<ClientConfig>,
    ) -> std::result::Result<(), Refused> {
        let (client_result, server_result) = exchange(server, client).await;
        match (client_result, server_result) {
            (Ok(()), Ok(())) => Ok(()),
            (_, Err(e)) if e.contains("received fatal alert") => Err(Refused::ByClient),
            (_, Err(_)) => Err(Refused::ByServer),
            (Err(e), Ok(())) => panic!("server accepted but client failed: {e}"),
        }
    }

    async fn exchange(
        server: Arc<ServerConfig>,
        client: Arc<ClientConfig>,
    ) -> (std::result::Result<(), String>, std::result::Result<(), String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server_side = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.map_err(|e| e.to_string())?;
            let mut tls = TlsAcceptor::from(server).accept(tcp).await.map_err(|e| format!("server: {e}"))?;
            tls.write_all(b"!").await.map_err(|e| e.to_string())?;
            tls.shutdown().await.map_err(|e| e.to_string())
        });
        let client_side = async move {
            let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
            let name = ServerName::IpAddress(addr.ip().into());
            let mut tls =
                TlsConnector::from(client).connect(name, tcp).await.map_err(|e| format!("client: {e}"))?;
            let mut byte = [0u8; 1];
            tls.read_exact(&mut byte).await.map_err(|e| format!("client read: {e}"))?;
            Ok::<(), String>(())
        };
        let run = async {
            let client_result = client_side.await;
            let server_result = server_side.await.map_err(|e| e.to_string()).and_then(|r| r);
            (client_result, server_result)
        };
        let timed_out = || (Err("timed out".to_string()), Err("timed out".to_string()));
        tokio::time::timeout(Duration::from_secs(10), run).await.unwrap_or_else(|_| timed_out())
    }

    #[tokio::test]
    async fn a_client_trusting_the_anchor_connects_and_another_ca_is_refused() {
        let f = fixture();
        let server = server_config(f.chain.clone(), &f.node_key, ClientTrustAnchors::new(&f.module)).unwrap();
        let good = client(ServerTrust::AnchorPem(f.ca.cert_pem().as_bytes()), None);
        handshake(server.clone(), good).await.unwrap();
        let other = DevCa::create(&f.module, "other").unwrap();
        let bad = client(ServerTrust::AnchorPem(other.cert_pem().as_bytes()), None);
        assert_eq!(handshake(server, bad).await, Err(Refused::ByClient));
    }

    #[tokio::test]
    async fn enforced_mtls_requires_a_registered_anchor_and_deregistration_refuses() {
        let f = fixture();
        let anchors = ClientTrustAnchors::new(&f.module);
        let server = server_config(f.chain.clone(), &f.node_key, anchors.clone()).unwrap();
        let trust = ServerTrust::AnchorPem(f.ca.cert_pem().as_bytes());
        let client_ca = DevCa::create(&f.module, "clients").unwrap();
        let (client_chain, client_key) = client_identity(&f.module, &client_ca);
        let cert = ClientCertPem { chain: client_chain.as_bytes(), key: client_key.as_bytes() };
        let with_cert = client(trust, Some(cert));
        let without_cert = client(trust, None);

        let fp = anchors.register(client_ca.cert_pem()).unwrap();
        assert_eq!(anchors.fingerprints(), vec![fp.clone()]);
        anchors.set_enforcement(true);
        assert!(anchors.enforcement());
        handshake(server.clone(), with_cert.clone()).await.unwrap();
        assert_eq!(handshake(server.clone(), without_cert.clone()).await, Err(Refused::ByServer));

        anchors.deregister(&fp.to_lowercase()).unwrap();
        assert!(anchors.fingerprints().is_empty());
        assert_eq!(handshake(server.clone(), with_cert.clone()).await, Err(Refused::ByServer));

        // Enforcement off, no anchors: client certificates are not asked for.
        anchors.set_enforcement(false);
        handshake(server.clone(), without_cert.clone()).await.unwrap();
        handshake(server.clone(), with_cert.clone()).await.unwrap();
        // Enforcement off, an anchor registered: optional, but an offered certificate must verify.
        let stranger_ca = DevCa::create(&f.module, "strangers").unwrap();
        anchors.register(stranger_ca.cert_pem()).unwrap();
        handshake(server.clone(), without_cert).await.unwrap();
        assert_eq!(handshake(server, with_cert).await, Err(Refused::ByServer));
    }

    #[tokio::test]
    async fn a_pinned_client_accepts_only_the_bootstrap_certificate() {
        let f = fixture();
        let (boot_der, fp) = bootstrap_certificate(&f.node_key, "node-1").unwrap();
        let boot_chain = vec![CertificateDer::from(boot_der)];
        let server = server_config(boot_chain, &f.node_key, ClientTrustAnchors::new(&f.module)).unwrap();
        let pinned = client(ServerTrust::Fingerprint(&fp), None);
        handshake(server.clone(), pinned).await.unwrap();

        let other_key = IdentityKey::generate(&f.module).unwrap();
        let (_, other_fp) = bootstrap_certificate(&other_key, "node-2").unwrap();
        let wrong = client(ServerTrust::Fingerprint(&other_fp), None);
        assert_eq!(handshake(server, wrong).await, Err(Refused::ByClient));
    }

    #[test]
    fn anchor_registry_refuses_bad_input() {
        let f = fixture();
        let anchors = ClientTrustAnchors::new(&f.module);
        assert!(matches!(anchors.register("junk"), Err(TlsError::Pki(PkiError::NotPem { .. }))));
        let leaf = certificate_pem(&f.chain[0]);
        assert!(matches!(anchors.register(&leaf), Err(TlsError::Pki(PkiError::AnchorNotCa))));
        anchors.register(f.ca.cert_pem()).unwrap();
        assert!(matches!(anchors.register(f.ca.cert_pem()), Err(TlsError::AnchorAlreadyRegistered(_))));
        assert!(matches!(anchors.deregister("00:11"), Err(TlsError::BadFingerprint(_))));
        assert!(matches!(anchors.deregister(&"AB".repeat(32)), Err(TlsError::UnknownAnchor(_))));
        for i in 1..MAX_CLIENT_TRUST_ANCHORS {
            anchors.register(DevCa::create(&f.module, &format!("ca{i}")).unwrap().cert_pem()).unwrap();
        }
        let one_more = DevCa::create(&f.module, "one-more").unwrap();
        assert!(matches!(anchors.register(one_more.cert_pem()), Err(TlsError::TooManyAnchors)));
        assert!(matches!(server_config(Vec::new(), &f.node_key, anchors), Err(TlsError::NoCertificate)));
    }
}
