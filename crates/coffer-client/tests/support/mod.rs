//! Test scaffolding: certificates made with rcgen, and a tiny node that serves a few RPCs of
//! `coffer.hsm.v1` over TLS 1.3 (tokio-rustls) on 127.0.0.1, answering `UNIMPLEMENTED` to the
//! rest. It stands in for cofferd so that the client's TLS, error mapping, retries and
//! failover are tested against a real gRPC server.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use coffer_client::v1;
use coffer_proto::{CKR_METADATA_KEY, CKR_NAME_METADATA_KEY, Hsm, HsmServer};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataValue;
use tonic::{Code, Request, Response, Status, Streaming};

/// A certificate authority for tests.
pub struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pub pem: String,
    pub der: CertificateDer<'static>,
}

/// A certificate and its key.
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl Leaf {
    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        let cert = params.self_signed(&key).unwrap();
        Ca { pem: cert.pem(), der: cert.der().clone(), params, key }
    }

    /// A node certificate naming 127.0.0.1 and localhost, as cofferd's does.
    pub fn node_cert(&self) -> Leaf {
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.subject_alt_names.push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        params.distinguished_name.push(DnType::CommonName, "node");
        self.sign(params)
    }

    /// A client certificate.
    pub fn client_cert(&self, name: &str) -> Leaf {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        self.sign(params)
    }

    fn sign(&self, params: CertificateParams) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
            key_der: key.serialize_der(),
        }
    }
}

/// A self-signed certificate, as a node not yet initialised presents.
pub fn bootstrap_cert() -> Leaf {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.subject_alt_names.push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let cert = params.self_signed(&key).unwrap();
    Leaf {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        der: cert.der().clone(),
        key_der: key.serialize_der(),
    }
}

/// `SHA256:AB:…` of a certificate.
pub fn fingerprint(der: &CertificateDer<'_>) -> String {
    let module = coffer_crypto::Module::power_on();
    let digest = module.digest(coffer_crypto::HashAlg::Sha256, der.as_ref()).unwrap();
    let hex: Vec<String> = digest.iter().map(|b| format!("{b:02X}")).collect();
    format!("SHA256:{}", hex.join(":"))
}

/// How the test node authenticates clients.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// No certificate asked for.
    None,
    /// A certificate from this CA is accepted but not required.
    Optional,
    /// A certificate from this CA is required.
    Required,
}

/// What the test node observed.
#[derive(Default)]
pub struct State {
    pub name: String,
    sessions: Mutex<HashSet<Vec<u8>>>,
    next: AtomicU64,
    calls: Mutex<HashMap<&'static str, usize>>,
    /// Whether the client of the latest TLS handshake presented a certificate.
    client_cert: AtomicBool,
}

impl State {
    fn count(&self, op: &'static str) {
        *self.calls.lock().unwrap().entry(op).or_default() += 1;
    }

    /// How many times the RPC reached the node.
    pub fn calls(&self, op: &'static str) -> usize {
        self.calls.lock().unwrap().get(op).copied().unwrap_or(0)
    }

    fn check_session(&self, token: &[u8]) -> std::result::Result<(), Status> {
        if self.sessions.lock().unwrap().contains(token) {
            Ok(())
        } else {
            Err(ckr_status(Code::InvalidArgument, 0xB3, "CKR_SESSION_HANDLE_INVALID", "no such session"))
        }
    }
}

/// A status carrying a PKCS#11 code as cofferd sends it.
pub fn ckr_status(code: Code, ckr: u64, name: &'static str, message: &str) -> Status {
    let mut status = Status::new(code, message);
    status.metadata_mut().insert(CKR_METADATA_KEY, ckr.to_string().parse().unwrap());
    status.metadata_mut().insert(CKR_NAME_METADATA_KEY, MetadataValue::from_static(name));
    status
}

/// A running test node.
pub struct TestServer {
    pub endpoint: String,
    pub state: Arc<State>,
    shutdown: Option<oneshot::Sender<()>>,
    accept: JoinHandle<()>,
    serve: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Starts a node presenting `chain`/`key` on 127.0.0.1 (an ephemeral port).
    pub async fn start(
        name: &str,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        client_ca: Option<(&Ca, ClientAuth)>,
    ) -> TestServer {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap();
        let builder = match client_ca {
            Some((ca, auth)) if auth != ClientAuth::None => {
                let mut roots = rustls::RootCertStore::empty();
                roots.add(ca.der.clone()).unwrap();
                let verifier =
                    rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
                let verifier =
                    if auth == ClientAuth::Optional { verifier.allow_unauthenticated() } else { verifier };
                builder.with_client_cert_verifier(verifier.build().unwrap())
            }
            _ => builder.with_no_client_auth(),
        };
        let mut config = builder.with_single_cert(chain, key).unwrap();
        config.alpn_protocols = vec![b"h2".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));

        let state = Arc::new(State { name: name.to_string(), ..Default::default() });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let (conn_tx, conn_rx) =
            mpsc::channel::<std::io::Result<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>>(16);
        let seen = state.clone();
        let accept = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let conn_tx = conn_tx.clone();
                let seen = seen.clone();
                tokio::spawn(async move {
                    // A failed handshake (the client refused our certificate, or had none when
                    // one is required) just drops the connection.
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        let has_cert = tls.get_ref().1.peer_certificates().is_some_and(|c| !c.is_empty());
                        seen.client_cert.store(has_cert, Ordering::SeqCst);
                        let _ = conn_tx.send(Ok(tls)).await;
                    }
                });
            }
        });

        let service = HsmServer::new(TestHsm { state: state.clone() });
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let serve = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(ReceiverStream::new(conn_rx), async {
                    let _ = shutdown_rx.await;
                })
                .await;
        });
        TestServer {
            endpoint: addr.to_string(),
            state,
            shutdown: Some(shutdown_tx),
            accept,
            serve: Some(serve),
        }
    }

    /// Stops accepting, closes the listener and ends the connections.
    pub async fn stop(&mut self) {
        self.accept.abort();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(serve) = self.serve.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), serve).await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.accept.abort();
        if let Some(serve) = &self.serve {
            serve.abort();
        }
    }
}

/// A loopback address where nothing listens.
pub fn closed_endpoint() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// The test node's behaviour.
struct TestHsm {
    state: Arc<State>,
}

type Result<T> = std::result::Result<Response<T>, Status>;
type BoxFut<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// RPCs the test node does not serve, written in the form `#[async_trait]` expands to (a
/// macro inside the impl is expanded after the attribute has run).
macro_rules! unimplemented_rpcs {
    ($($name:ident($req:ty) -> $resp:ty;)*) => {
        $(
            fn $name<'life0, 'async_trait>(&'life0 self, _request: Request<$req>) -> BoxFut<'async_trait, $resp>
            where
                'life0: 'async_trait,
                Self: 'async_trait,
            {
                Box::pin(async move { Err(Status::unimplemented(concat!(stringify!($name), " is not in the test node"))) })
            }
        )*
    };
}

#[tonic::async_trait]
impl Hsm for TestHsm {
    async fn get_cluster_info(
        &self,
        _request: Request<v1::GetClusterInfoRequest>,
    ) -> Result<v1::ClusterInfo> {
        self.state.count("GetClusterInfo");
        let has_cert = self.state.client_cert.load(Ordering::SeqCst);
        Ok(Response::new(v1::ClusterInfo {
            state: v1::ClusterState::Active as i32,
            node_id: format!("{}|client-cert={has_cert}", self.state.name),
            ..Default::default()
        }))
    }

    async fn get_cluster_csr(
        &self,
        _request: Request<v1::GetClusterCsrRequest>,
    ) -> Result<v1::GetClusterCsrResponse> {
        Ok(Response::new(v1::GetClusterCsrResponse { csr_pem: format!("CSR of {}", self.state.name) }))
    }

    async fn open_session(
        &self,
        _request: Request<v1::OpenSessionRequest>,
    ) -> Result<v1::OpenSessionResponse> {
        self.state.count("OpenSession");
        let n = self.state.next.fetch_add(1, Ordering::SeqCst);
        let token = format!("{}-session-{n}", self.state.name).into_bytes();
        self.state.sessions.lock().unwrap().insert(token.clone());
        Ok(Response::new(v1::OpenSessionResponse { session: token }))
    }

    async fn close_session(&self, request: Request<v1::SessionRequest>) -> Result<v1::Empty> {
        self.state.count("CloseSession");
        let token = request.into_inner().session;
        self.state.check_session(&token)?;
        self.state.sessions.lock().unwrap().remove(&token);
        Ok(Response::new(v1::Empty {}))
    }

    async fn login(&self, request: Request<v1::LoginRequest>) -> Result<v1::LoginResponse> {
        self.state.count("Login");
        let request = request.into_inner();
        self.state.check_session(&request.session)?;
        if request.password != b"right password" {
            return Err(ckr_status(
                Code::PermissionDenied,
                0xA0,
                "CKR_PIN_INCORRECT",
                "the password is not correct",
            ));
        }
        Ok(Response::new(v1::LoginResponse {
            username: request.username,
            role: request.role,
            password_change_required: false,
        }))
    }

    async fn list_users(&self, request: Request<v1::SessionRequest>) -> Result<v1::ListUsersResponse> {
        self.state.check_session(&request.into_inner().session)?;
        let admin = v1::UserInfo {
            username: "admin".into(),
            role: v1::Role::Admin as i32,
            locked: false,
            failed_logins: 0,
        };
        Ok(Response::new(v1::ListUsersResponse { users: vec![admin] }))
    }

    async fn create_user(&self, request: Request<v1::CreateUserRequest>) -> Result<v1::UserInfo> {
        self.state.count("CreateUser");
        let request = request.into_inner();
        self.state.check_session(&request.session)?;
        if request.username == "slow" {
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        Ok(Response::new(v1::UserInfo {
            username: request.username,
            role: request.role,
            locked: false,
            failed_logins: 0,
        }))
    }

    async fn generate_random(
        &self,
        request: Request<v1::GenerateRandomRequest>,
    ) -> Result<v1::GenerateRandomResponse> {
        self.state.count("GenerateRandom");
        let request = request.into_inner();
        self.state.check_session(&request.session)?;
        if request.length == 999 {
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        Ok(Response::new(v1::GenerateRandomResponse { data: vec![0x5A; request.length as usize] }))
    }

    async fn sign(&self, request: Request<v1::SignRequest>) -> Result<v1::SignResponse> {
        self.state.count("Sign");
        let request = request.into_inner();
        self.state.check_session(&request.session)?;
        if request.key != 42 {
            return Err(ckr_status(
                Code::NotFound,
                0x60,
                "CKR_KEY_HANDLE_INVALID",
                "no key with that handle",
            ));
        }
        let signature: Vec<u8> = request.data.iter().rev().copied().collect();
        Ok(Response::new(v1::SignResponse { signature }))
    }

    type EncryptStreamStream = ReceiverStream<std::result::Result<v1::CipherChunk, Status>>;
    type DecryptStreamStream = ReceiverStream<std::result::Result<v1::CipherChunk, Status>>;

    /// "Encrypts" by inverting every byte; checks that the first message carries the session,
    /// key and mechanism; ends with a generated IV.
    async fn encrypt_stream(
        &self,
        request: Request<Streaming<v1::CipherChunk>>,
    ) -> Result<Self::EncryptStreamStream> {
        self.state.count("EncryptStream");
        let mut input = request.into_inner();
        let state = self.state.clone();
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            let mut first = true;
            loop {
                let chunk = match input.message().await {
                    Ok(Some(chunk)) => chunk,
                    Ok(None) => break,
                    Err(_) => {
                        state.count("EncryptStreamAborted");
                        return;
                    }
                };
                if first {
                    first = false;
                    let ok = state.check_session(&chunk.session).is_ok()
                        && chunk.key == 42
                        && chunk.mechanism.is_some();
                    if !ok {
                        let _ = tx
                            .send(Err(ckr_status(
                                Code::InvalidArgument,
                                0x60,
                                "CKR_KEY_HANDLE_INVALID",
                                "bad first message",
                            )))
                            .await;
                        return;
                    }
                }
                let data = chunk.data.iter().map(|b| !b).collect();
                if tx.send(Ok(v1::CipherChunk { data, ..Default::default() })).await.is_err() {
                    return;
                }
            }
            state.count("EncryptStreamCompleted");
            let _ = tx.send(Ok(v1::CipherChunk { generated_iv: vec![1; 12], ..Default::default() })).await;
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    unimplemented_rpcs! {
        initialize_cluster(v1::InitializeClusterRequest) -> v1::ClusterInfo;
        add_hsm(v1::AddHsmRequest) -> v1::HsmMember;
        copy_object(v1::CopyObjectRequest) -> v1::ObjectHandles;
        delete_hsm(v1::DeleteHsmRequest) -> v1::Empty;
        get_sync_status(v1::SessionRequest) -> v1::SyncStatus;
        clone_offer(v1::CloneOfferRequest) -> v1::CloneOfferResponse;
        clone_install(v1::CloneInstallRequest) -> v1::Empty;
        register_trust_anchor(v1::RegisterTrustAnchorRequest) -> v1::TrustAnchors;
        deregister_trust_anchor(v1::DeregisterTrustAnchorRequest) -> v1::TrustAnchors;
        set_mtls_enforcement(v1::SetMtlsEnforcementRequest) -> v1::TrustAnchors;
        list_trust_anchors(v1::SessionRequest) -> v1::TrustAnchors;
        logout(v1::SessionRequest) -> v1::Empty;
        delete_user(v1::DeleteUserRequest) -> v1::Empty;
        change_password(v1::ChangePasswordRequest) -> v1::Empty;
        generate_key(v1::GenerateKeyRequest) -> v1::ObjectHandles;
        generate_key_pair(v1::GenerateKeyPairRequest) -> v1::KeyPairHandles;
        import_key(v1::ImportKeyRequest) -> v1::ObjectHandles;
        create_object(v1::CreateObjectRequest) -> v1::ObjectHandles;
        find_objects(v1::FindObjectsRequest) -> v1::ObjectHandles;
        get_attributes(v1::GetAttributesRequest) -> v1::GetAttributesResponse;
        set_attributes(v1::SetAttributesRequest) -> v1::Empty;
        share_key(v1::ShareKeyRequest) -> v1::KeyUsers;
        unshare_key(v1::ShareKeyRequest) -> v1::KeyUsers;
        get_key_users(v1::KeyRequest) -> v1::KeyUsers;
        destroy_object(v1::KeyRequest) -> v1::Empty;
        export_public_key(v1::KeyRequest) -> v1::ExportPublicKeyResponse;
        wrap_key(v1::WrapKeyRequest) -> v1::WrapKeyResponse;
        unwrap_key(v1::UnwrapKeyRequest) -> v1::ObjectHandles;
        derive_key(v1::DeriveKeyRequest) -> v1::ObjectHandles;
        verify(v1::VerifyRequest) -> v1::Empty;
        encrypt(v1::CipherRequest) -> v1::CipherResponse;
        decrypt(v1::CipherRequest) -> v1::CipherResponse;
        decrypt_stream(Streaming<v1::CipherChunk>) -> Self::DecryptStreamStream;
        digest(v1::DigestRequest) -> v1::DigestResponse;
    }
}
