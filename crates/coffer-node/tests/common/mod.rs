//! Shared fixture: a node started in-process on loopback, and gRPC clients over real TLS.
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use coffer_client::{ClientCertPem, ServerTrust};
use coffer_crypto::encoding::pem;
use coffer_node::config::NodeConfig;
use coffer_node::pki;
use coffer_node::pki::IdentityKey;
use coffer_node::{Node, RunningNode, ServerOptions};
use coffer_proto::HsmClient;
use coffer_proto::v1;
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tonic::Code;
use tonic::transport::{Channel, Endpoint, Uri};

pub type Client = HsmClient<Channel>;

/// Every test step is bounded by this.
pub const STEP: Duration = Duration::from_secs(30);

/// A node's directories: `data` (its data dir) and the seal key file beside it.
pub struct Dirs {
    pub root: tempfile::TempDir,
}

impl Dirs {
    pub fn new() -> Dirs {
        Dirs { root: tempfile::tempdir().expect("temp dir") }
    }

    pub fn data(&self) -> PathBuf {
        self.root.path().join("data")
    }

    pub fn config(&self, extra: &str, flags: &[&str]) -> NodeConfig {
        self.config_for("node-1", extra, flags)
    }

    /// As [`Dirs::config`], for a node with another id.
    pub fn config_for(&self, node_id: &str, extra: &str, flags: &[&str]) -> NodeConfig {
        let text = format!(
            "node_id = \"{node_id}\"\ndata_dir = \"{}\"\nlisten = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\n\
             pbkdf2_iterations = 1000\n{extra}\n[seal]\nkey_file = \"{}\"\n",
            self.data().display(),
            self.root.path().join("seal.key").display()
        );
        NodeConfig::from_sources("test.toml", &text, Vec::new(), flags).expect("config")
    }
}

/// Starts a node with a short handshake timeout.
pub async fn start(config: NodeConfig) -> RunningNode {
    let options = ServerOptions { handshake_timeout: Duration::from_secs(1) };
    tokio::time::timeout(STEP, Node::start_with(config, options))
        .await
        .expect("start in time")
        .expect("start")
}

/// A connector that opens TCP to one address and runs a TLS 1.3 handshake on it.
#[derive(Clone)]
pub struct TlsConnector {
    addr: SocketAddr,
    config: Arc<ClientConfig>,
}

impl tower_service::Service<Uri> for TlsConnector {
    type Response = TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        let (addr, config) = (self.addr, self.config.clone());
        Box::pin(async move {
            let tcp = TcpStream::connect(addr).await?;
            let name = ServerName::try_from("localhost").map_err(std::io::Error::other)?;
            let tls = tokio_rustls::TlsConnector::from(config).connect(name, tcp).await?;
            Ok(TokioIo::new(tls))
        })
    }
}

/// A client over TLS with this configuration.
pub async fn connect_with(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
) -> Result<Client, tonic::transport::Error> {
    let endpoint = Endpoint::from_static("http://localhost").connect_timeout(Duration::from_secs(5));
    let channel = endpoint.connect_with_connector(TlsConnector { addr, config }).await?;
    Ok(HsmClient::new(channel).max_decoding_message_size(8 << 20))
}

/// A TLS configuration pinning the node's bootstrap certificate, as the SDK builds it.
pub fn pinned_config(node: &RunningNode) -> Arc<ClientConfig> {
    let fingerprint = node.node().bootstrap_fingerprint();
    coffer_client::rustls_client_config(ServerTrust::Fingerprint(fingerprint), None).expect("client config")
}

/// A client pinning the bootstrap certificate.
pub async fn connect_pinned(node: &RunningNode) -> Client {
    let config = pinned_config(node);
    connect_with(node.local_addr(), config).await.expect("connect")
}

/// A client trusting the cluster's trust anchor, optionally with a client certificate.
pub async fn connect_anchored(
    addr: SocketAddr,
    anchor_pem: &str,
    client: Option<(Vec<CertificateDer<'static>>, &IdentityKey)>,
) -> Result<Client, tonic::transport::Error> {
    let chain: Option<String> =
        client.as_ref().map(|(chain, _)| chain.iter().map(|der| pki::certificate_pem(der)).collect());
    let key =
        client.map(|(_, key)| zeroize::Zeroizing::new(pem::encode(pem::PRIVATE_KEY_LABEL, &key.pkcs8_der())));
    let cert = chain
        .as_ref()
        .zip(key.as_ref())
        .map(|(chain, key)| ClientCertPem { chain: chain.as_bytes(), key: key.as_bytes() });
    let config = coffer_client::rustls_client_config(ServerTrust::AnchorPem(anchor_pem.as_bytes()), cert)
        .expect("config");
    connect_with(addr, config).await
}

/// The `CKR_*` name of a failed call.
pub fn ckr(status: &tonic::Status) -> String {
    status
        .metadata()
        .get(coffer_proto::CKR_NAME_METADATA_KEY)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

/// Asserts a call failed with this gRPC code and `CKR_*`.
#[track_caller]
pub fn assert_refused<T: std::fmt::Debug>(result: Result<T, tonic::Status>, code: Code, name: &str) {
    match result {
        Err(status) => {
            assert_eq!((status.code(), ckr(&status).as_str()), (code, name), "{status:?}");
        }
        Ok(value) => panic!("expected {name}, got {value:?}"),
    }
}

pub async fn open(client: &mut Client) -> Vec<u8> {
    client.open_session(v1::OpenSessionRequest {}).await.expect("open session").into_inner().session
}

pub async fn login(client: &mut Client, user: &str, role: v1::Role, password: &[u8]) -> Vec<u8> {
    let session = open(client).await;
    let request = v1::LoginRequest {
        session: session.clone(),
        username: user.into(),
        role: role as i32,
        password: password.to_vec(),
    };
    client.login(request).await.expect("login");
    session
}

// ---- templates -----------------------------------------------------------------------------

pub const CKA_CLASS: u64 = 0x00;
pub const CKA_TOKEN: u64 = 0x01;
pub const CKA_LABEL: u64 = 0x03;
pub const CKA_KEY_TYPE: u64 = 0x100;
pub const CKA_ENCRYPT: u64 = 0x104;
pub const CKA_DECRYPT: u64 = 0x105;
pub const CKA_WRAP: u64 = 0x106;
pub const CKA_UNWRAP: u64 = 0x107;
pub const CKA_SIGN: u64 = 0x108;
pub const CKA_VERIFY: u64 = 0x10A;
pub const CKA_EXTRACTABLE: u64 = 0x162;
pub const CKO_SECRET_KEY: u64 = 4;
pub const CKK_AES: u64 = 0x1F;

pub fn flag(ty: u64, value: bool) -> v1::Attribute {
    v1::Attribute { r#type: ty, value: Some(v1::attribute::Value::BoolValue(value)) }
}

pub fn ulong(ty: u64, value: u64) -> v1::Attribute {
    v1::Attribute { r#type: ty, value: Some(v1::attribute::Value::UlongValue(value)) }
}

pub fn label(text: &str) -> v1::Attribute {
    v1::Attribute {
        r#type: CKA_LABEL,
        value: Some(v1::attribute::Value::BytesValue(text.as_bytes().to_vec())),
    }
}

pub fn template(attributes: Vec<v1::Attribute>) -> Option<v1::Template> {
    Some(v1::Template { attributes })
}

/// A request for a token AES-256 key labelled `name` that encrypts and decrypts.
pub fn aes_key_request(session: &[u8], name: &str) -> v1::GenerateKeyRequest {
    v1::GenerateKeyRequest {
        session: session.to_vec(),
        key_type: v1::KeyType::Aes as i32,
        length_bytes: 32,
        template: template(vec![
            flag(CKA_TOKEN, true),
            label(name),
            flag(CKA_ENCRYPT, true),
            flag(CKA_DECRYPT, true),
        ]),
    }
}

/// A loopback port free at the moment of the call.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port()
}

/// Reads one HTTP path from the metrics endpoint: (status, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = TcpStream::connect(addr).await.expect("connect metrics");
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.expect("write");
    let mut raw = String::new();
    tcp.read_to_string(&mut raw).await.expect("read");
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, body.to_owned())
}

pub fn exists(path: &Path) -> bool {
    path.exists()
}
