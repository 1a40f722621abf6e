//! [`Session`]: a session on one node, with one method per session RPC, the streamed
//! ciphers, and a few conveniences.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use coffer_proto::v1;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::Stream;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use zeroize::{Zeroize, Zeroizing};

use crate::client::{Client, Retry};
use crate::error::ClientError;
use crate::node::{Held, Node};

/// Size of the chunks [`Session::encrypt_reader`] sends: well under gRPC's default 4 MiB
/// message limit, large enough to keep per-message overhead small.
pub const STREAM_CHUNK: usize = 64 * 1024;
/// Chunks buffered between the input and the network.
const STREAM_BUFFER: usize = 4;

/// A session on one node: its token and the node it lives on. Sessions are per node (their
/// login and session objects live there), so a session's calls are never moved to another
/// node; when its node is lost they fail with [`ClientError::Unavailable`] naming it.
///
/// Dropping a session that was not [`close`](Session::close)d closes it in the background
/// (best effort, when a Tokio runtime is still running).
pub struct Session {
    client: Client,
    node: Arc<Node>,
    token: Zeroizing<Vec<u8>>,
    closed: AtomicBool,
    runtime: Option<tokio::runtime::Handle>,
    /// Counts the session in its node's load, for the choice of node for the next ones.
    held: Held,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a bearer secret: never printed.
        f.debug_struct("Session").field("endpoint", &self.node.endpoint()).finish_non_exhaustive()
    }
}

/// Requests whose secret fields are wiped from the caller's copy once the call is done.
trait Scrub {
    fn scrub(&mut self) {}
}

macro_rules! no_secrets {
    ($($ty:ident),* $(,)?) => { $(impl Scrub for v1::$ty {})* };
}
no_secrets!(
    AddHsmRequest,
    DeleteHsmRequest,
    RegisterTrustAnchorRequest,
    DeregisterTrustAnchorRequest,
    SetMtlsEnforcementRequest,
    SessionRequest,
    DeleteUserRequest,
    GenerateKeyRequest,
    GenerateKeyPairRequest,
    CreateObjectRequest,
    FindObjectsRequest,
    KeyRequest,
    GetAttributesRequest,
    SetAttributesRequest,
    CopyObjectRequest,
    ShareKeyRequest,
    WrapKeyRequest,
    UnwrapKeyRequest,
    DeriveKeyRequest,
    SignRequest,
    VerifyRequest,
    CipherRequest,
    DigestRequest,
    GenerateRandomRequest,
);

impl Scrub for v1::LoginRequest {
    fn scrub(&mut self) {
        self.password.zeroize();
    }
}
impl Scrub for v1::CreateUserRequest {
    fn scrub(&mut self) {
        self.password.zeroize();
    }
}
impl Scrub for v1::ChangePasswordRequest {
    fn scrub(&mut self) {
        self.new_password.zeroize();
    }
}
impl Scrub for v1::ImportKeyRequest {
    fn scrub(&mut self) {
        match &mut self.material {
            Some(v1::import_key_request::Material::Pkcs8Der(b))
            | Some(v1::import_key_request::Material::SpkiDer(b))
            | Some(v1::import_key_request::Material::SecretValue(b)) => b.zeroize(),
            None => {}
        }
    }
}

/// Session RPCs that take a request message: the method fills in `session` and returns the
/// response. `Idempotent` calls are retried on the session's node after any transient failure,
/// `IfNotSent` ones only when the request never left this process.
macro_rules! session_rpcs {
    ($($(#[$doc:meta])* $name:ident = $rpc:literal, $method:ident($req:ident) -> $resp:ident, $retry:ident;)*) => {
        impl Session {
            $(
                $(#[$doc])*
                pub async fn $name(&self, mut request: v1::$req) -> Result<v1::$resp, ClientError> {
                    request.session = self.token.to_vec();
                    let result = self
                        .client
                        .unary_on(&self.node, $rpc, Retry::$retry, &request, |mut c, r| async move {
                            c.$method(r).await
                        })
                        .await;
                    request.session.zeroize();
                    request.scrub();
                    result
                }
            )*
        }
    };
}

/// Session RPCs that take only the session (`SessionRequest`).
macro_rules! session_only_rpcs {
    ($($(#[$doc:meta])* $name:ident = $rpc:literal, $method:ident -> $resp:ident, $retry:ident;)*) => {
        impl Session {
            $(
                $(#[$doc])*
                pub async fn $name(&self) -> Result<v1::$resp, ClientError> {
                    let request = v1::SessionRequest { session: self.token.to_vec() };
                    self.client
                        .unary_on(&self.node, $rpc, Retry::$retry, &request, |mut c, r| async move {
                            c.$method(r).await
                        })
                        .await
                }
            )*
        }
    };
}

session_rpcs! {
    /// `Login` (CloudHSM `login`). Not retried once sent: a failed attempt counts toward lockout.
    login = "Login", login(LoginRequest) -> LoginResponse, IfNotSent;
    /// `CreateUser` (admin).
    create_user = "CreateUser", create_user(CreateUserRequest) -> UserInfo, IfNotSent;
    /// `DeleteUser` (admin).
    delete_user = "DeleteUser", delete_user(DeleteUserRequest) -> Empty, IfNotSent;
    /// `ChangePassword` (own password; an admin may change others'; the PRECO's activates).
    change_password = "ChangePassword", change_password(ChangePasswordRequest) -> Empty, IfNotSent;
    /// `GenerateKey`: AES or generic secret.
    generate_key = "GenerateKey", generate_key(GenerateKeyRequest) -> ObjectHandles, IfNotSent;
    /// `GenerateKeyPair`: RSA, EC or Ed25519.
    generate_key_pair = "GenerateKeyPair", generate_key_pair(GenerateKeyPairRequest) -> KeyPairHandles, IfNotSent;
    /// `ImportKey`: PKCS#8, SPKI or a raw secret. The caller's copy of the material is wiped.
    import_key = "ImportKey", import_key(ImportKeyRequest) -> ObjectHandles, IfNotSent;
    /// `CreateObject`: a certificate or data object, all of it in the template (keys are
    /// imported with `import_key`).
    create_object = "CreateObject", create_object(CreateObjectRequest) -> ObjectHandles, IfNotSent;
    /// `FindObjects` matching a template.
    find_objects = "FindObjects", find_objects(FindObjectsRequest) -> ObjectHandles, Idempotent;
    /// `GetAttributes` of an object.
    get_attributes = "GetAttributes", get_attributes(GetAttributesRequest) -> GetAttributesResponse, Idempotent;
    /// `SetAttributes` of an object.
    set_attributes = "SetAttributes", set_attributes(SetAttributesRequest) -> Empty, IfNotSent;
    /// `CopyObject` (`C_CopyObject`): a new object with the source's attributes changed by
    /// the template.
    copy_object = "CopyObject", copy_object(CopyObjectRequest) -> ObjectHandles, IfNotSent;
    /// `ShareKey` with a crypto user.
    share_key = "ShareKey", share_key(ShareKeyRequest) -> KeyUsers, IfNotSent;
    /// `UnshareKey`.
    unshare_key = "UnshareKey", unshare_key(ShareKeyRequest) -> KeyUsers, IfNotSent;
    /// `GetKeyUsers`: owner and users shared with.
    get_key_users = "GetKeyUsers", get_key_users(KeyRequest) -> KeyUsers, Idempotent;
    /// `DestroyObject`.
    destroy_object = "DestroyObject", destroy_object(KeyRequest) -> Empty, IfNotSent;
    /// `ExportPublicKey`: SPKI DER and PEM.
    export_public_key = "ExportPublicKey", export_public_key(KeyRequest) -> ExportPublicKeyResponse, Idempotent;
    /// `WrapKey`.
    wrap_key = "WrapKey", wrap_key(WrapKeyRequest) -> WrapKeyResponse, Idempotent;
    /// `UnwrapKey`: creates an object.
    unwrap_key = "UnwrapKey", unwrap_key(UnwrapKeyRequest) -> ObjectHandles, IfNotSent;
    /// `DeriveKey`: creates an object.
    derive_key = "DeriveKey", derive_key(DeriveKeyRequest) -> ObjectHandles, IfNotSent;
    /// `Sign` (also HMAC and CMAC).
    sign = "Sign", sign(SignRequest) -> SignResponse, Idempotent;
    /// `Verify`: `CKR_SIGNATURE_INVALID` on a mismatch.
    verify = "Verify", verify(VerifyRequest) -> Empty, Idempotent;
    /// One-shot `Encrypt`.
    encrypt = "Encrypt", encrypt(CipherRequest) -> CipherResponse, Idempotent;
    /// One-shot `Decrypt`.
    decrypt = "Decrypt", decrypt(CipherRequest) -> CipherResponse, Idempotent;
    /// `Digest`.
    digest = "Digest", digest(DigestRequest) -> DigestResponse, Idempotent;
    /// `GenerateRandom`.
    generate_random = "GenerateRandom", generate_random(GenerateRandomRequest) -> GenerateRandomResponse, Idempotent;
    /// `RegisterTrustAnchor` for client mTLS (admin).
    register_trust_anchor = "RegisterTrustAnchor", register_trust_anchor(RegisterTrustAnchorRequest) -> TrustAnchors, IfNotSent;
    /// `DeregisterTrustAnchor` (admin).
    deregister_trust_anchor = "DeregisterTrustAnchor", deregister_trust_anchor(DeregisterTrustAnchorRequest) -> TrustAnchors, IfNotSent;
    /// `SetMtlsEnforcement` (admin).
    set_mtls_enforcement = "SetMtlsEnforcement", set_mtls_enforcement(SetMtlsEnforcementRequest) -> TrustAnchors, IfNotSent;
    /// `AddHsm` (admin; CloudHSM's CreateHsm): the node this session is on clones the
    /// cluster to the joining node at `address` and adds it to the replication group.
    add_hsm = "AddHsm", add_hsm(AddHsmRequest) -> HsmMember, IfNotSent;
    /// `DeleteHsm` (admin): removes a member of the replication group by its raft id.
    delete_hsm = "DeleteHsm", delete_hsm(DeleteHsmRequest) -> Empty, IfNotSent;
}

session_only_rpcs! {
    /// `Logout`: the session stays open, logged out.
    logout = "Logout", logout -> Empty, IfNotSent;
    /// `ListUsers` (no login needed).
    list_users = "ListUsers", list_users -> ListUsersResponse, Idempotent;
    /// `ListTrustAnchors`: registered client trust anchors and whether mTLS is enforced.
    list_trust_anchors = "ListTrustAnchors", list_trust_anchors -> TrustAnchors, Idempotent;
    /// `GetSyncStatus`: the digest of this session's node's replicated state and its applied
    /// log index, to compare nodes.
    sync_status = "GetSyncStatus", get_sync_status -> SyncStatus, Idempotent;
}

impl Session {
    pub(crate) fn new(client: Client, node: Arc<Node>, token: Vec<u8>) -> Self {
        Session {
            client,
            held: node.hold(),
            node,
            token: Zeroizing::new(token),
            closed: AtomicBool::new(false),
            runtime: tokio::runtime::Handle::try_current().ok(),
        }
    }

    /// The session token (a bearer secret: keep it out of logs).
    pub fn token(&self) -> &[u8] {
        &self.token
    }

    /// The node this session lives on, as configured or as the cluster listed it.
    pub fn endpoint(&self) -> &str {
        self.node.endpoint()
    }

    /// `CloseSession`: the node logs the session out and destroys its session objects. Later
    /// calls on this session fail with the node's `CKR_SESSION_HANDLE_INVALID`.
    pub async fn close(&self) -> Result<(), ClientError> {
        self.closed.store(true, Ordering::SeqCst);
        self.held.release();
        let request = v1::SessionRequest { session: self.token.to_vec() };
        self.client
            .unary_on(&self.node, "CloseSession", Retry::IfNotSent, &request, |mut c, r| async move {
                c.close_session(r).await
            })
            .await
            .map(|_| ())
    }

    /// `Login` from its parts; the password is copied once into the request and wiped after.
    pub async fn login_as(
        &self,
        username: &str,
        role: v1::Role,
        password: &[u8],
    ) -> Result<v1::LoginResponse, ClientError> {
        let request = v1::LoginRequest {
            session: Vec::new(),
            username: username.to_owned(),
            role: role as i32,
            password: password.to_vec(),
        };
        self.login(request).await
    }

    /// `CreateUser` from its parts.
    pub async fn create_user_as(
        &self,
        username: &str,
        role: v1::Role,
        password: &[u8],
    ) -> Result<v1::UserInfo, ClientError> {
        let request = v1::CreateUserRequest {
            session: Vec::new(),
            username: username.to_owned(),
            role: role as i32,
            password: password.to_vec(),
        };
        self.create_user(request).await
    }

    /// `ChangePassword` of `username` (the PRECO changing its own password activates the
    /// cluster).
    pub async fn change_password_of(&self, username: &str, new_password: &[u8]) -> Result<(), ClientError> {
        let request = v1::ChangePasswordRequest {
            session: Vec::new(),
            username: username.to_owned(),
            new_password: new_password.to_vec(),
        };
        self.change_password(request).await.map(|_| ())
    }

    /// `GenerateRandom` returning the bytes.
    pub async fn random_bytes(&self, length: u32) -> Result<Vec<u8>, ClientError> {
        let request = v1::GenerateRandomRequest { session: Vec::new(), length };
        Ok(self.generate_random(request).await?.data)
    }

    /// `EncryptStream`: encrypts the chunks of `input` with `key`; read the output from the
    /// returned [`CipherStream`]. Streams are not retried (their input is consumed).
    pub async fn encrypt_stream<S>(
        &self,
        key: u64,
        mechanism: v1::CipherMechanism,
        input: S,
    ) -> Result<CipherStream, ClientError>
    where
        S: Stream<Item = Vec<u8>> + Send + 'static,
    {
        self.cipher_stream(Direction::Encrypt, key, mechanism, feed_stream(input)).await
    }

    /// `DecryptStream`, as [`encrypt_stream`](Self::encrypt_stream).
    pub async fn decrypt_stream<S>(
        &self,
        key: u64,
        mechanism: v1::CipherMechanism,
        input: S,
    ) -> Result<CipherStream, ClientError>
    where
        S: Stream<Item = Vec<u8>> + Send + 'static,
    {
        self.cipher_stream(Direction::Decrypt, key, mechanism, feed_stream(input)).await
    }

    /// `EncryptStream` over everything `reader` yields, in [`STREAM_CHUNK`] pieces. A read error
    /// cancels the call (HTTP/2 `RST_STREAM`) and is reported by the returned stream, which
    /// then yields no further output: the caller never takes the output of a truncated input
    /// for the whole. (A hyper-based node reads a client's `CANCEL` as the end of the input,
    /// so it may finish on the partial input; that answer is discarded.)
    pub async fn encrypt_reader<R>(
        &self,
        key: u64,
        mechanism: v1::CipherMechanism,
        reader: R,
    ) -> Result<CipherStream, ClientError>
    where
        R: AsyncRead + Unpin + Send + 'static,
    {
        self.cipher_stream(Direction::Encrypt, key, mechanism, feed_reader(reader)).await
    }

    /// `DecryptStream` over a reader, as [`encrypt_reader`](Self::encrypt_reader).
    pub async fn decrypt_reader<R>(
        &self,
        key: u64,
        mechanism: v1::CipherMechanism,
        reader: R,
    ) -> Result<CipherStream, ClientError>
    where
        R: AsyncRead + Unpin + Send + 'static,
    {
        self.cipher_stream(Direction::Decrypt, key, mechanism, feed_reader(reader)).await
    }

    /// Starts a streamed cipher call fed by `feed`: the first message carries the session, key
    /// and mechanism with the first chunk, every later one a chunk.
    pub(crate) async fn cipher_stream(
        &self,
        direction: Direction,
        key: u64,
        mechanism: v1::CipherMechanism,
        feed: Feed,
    ) -> Result<CipherStream, ClientError> {
        let Feed { mut chunks, input_error } = feed;
        let (tx, rx) = mpsc::channel::<v1::CipherChunk>(STREAM_BUFFER);
        let first = v1::CipherChunk {
            session: self.token.to_vec(),
            key,
            mechanism: Some(mechanism),
            data: Vec::new(),
            generated_iv: Vec::new(),
        };
        // Forwards chunks as messages; ends when the input ends or the call is dropped (then
        // dropping `chunks` tells the input's producer to stop).
        tokio::spawn(async move {
            let first_data = tokio::select! {
                data = chunks.recv() => data,
                () = tx.closed() => return,
            };
            let input_ended = first_data.is_none();
            let mut first = first;
            // An empty input still sends the first message, with an empty chunk.
            first.data = first_data.unwrap_or_default();
            if tx.send(first).await.is_err() || input_ended {
                return;
            }
            loop {
                let data = tokio::select! {
                    data = chunks.recv() => data,
                    () = tx.closed() => return,
                };
                let Some(data) = data else { return };
                if tx.send(v1::CipherChunk { data, ..Default::default() }).await.is_err() {
                    return;
                }
            }
        });
        let operation = direction.operation();
        let node = self.node.clone();
        let channel = node.channel().await.map_err(|f| f.error)?;
        let mut hsm = coffer_proto::HsmClient::new(channel);
        let mut request = tonic::Request::new(ReceiverStream::new(rx));
        // Cancelling resets the HTTP/2 stream and ends the call; the output stops there.
        let cancel = request.cancellation_handle();
        let timeout = self.client.request_timeout();
        let started = match direction {
            Direction::Encrypt => tokio::time::timeout(timeout, hsm.encrypt_stream(request)).await,
            Direction::Decrypt => tokio::time::timeout(timeout, hsm.decrypt_stream(request)).await,
        };
        let response = match started {
            Ok(Ok(response)) => response.into_inner(),
            Ok(Err(status)) => {
                cancel.cancel();
                return Err(self.client.status_failure(&status, &node, operation).error);
            }
            Err(_) => {
                cancel.cancel();
                return Err(self.client.timeout_failure(&node, operation).error);
            }
        };
        Ok(CipherStream {
            cancel: Some(cancel),
            client: self.client.clone(),
            node,
            operation,
            inner: response,
            input_error: Some(input_error),
            generated_iv: Vec::new(),
            done: false,
        })
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.closed.load(Ordering::SeqCst) {
            return;
        }
        // Close in the background so that the node frees the session and zeroizes its
        // objects now rather than at its idle timeout. Best effort: nothing to report to.
        if let Some(runtime) = self.runtime.take() {
            let client = self.client.clone();
            let node = self.node.clone();
            let request = v1::SessionRequest { session: self.token.to_vec() };
            runtime.spawn(async move {
                let _ =
                    client
                        .attempt(&node, "CloseSession", request, |mut c, r| async move {
                            c.close_session(r).await
                        })
                        .await;
            });
        }
    }
}

/// Which streamed cipher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    Encrypt,
    Decrypt,
}

impl Direction {
    fn operation(self) -> &'static str {
        match self {
            Direction::Encrypt => "EncryptStream",
            Direction::Decrypt => "DecryptStream",
        }
    }
}

/// The input of a streamed cipher: chunks, and an error reported if reading the input failed.
/// The producer keeps `chunks`' sender open after a failure, so the request is cancelled
/// rather than ended cleanly.
#[derive(Debug)]
pub(crate) struct Feed {
    pub chunks: mpsc::Receiver<Vec<u8>>,
    pub input_error: oneshot::Receiver<ClientError>,
}

impl Feed {
    /// A feed and the ends its producer writes to.
    pub(crate) fn channel() -> (Feed, mpsc::Sender<Vec<u8>>, oneshot::Sender<ClientError>) {
        let (tx, chunks) = mpsc::channel(STREAM_BUFFER);
        let (err_tx, input_error) = oneshot::channel();
        (Feed { chunks, input_error }, tx, err_tx)
    }
}

fn feed_stream<S>(input: S) -> Feed
where
    S: Stream<Item = Vec<u8>> + Send + 'static,
{
    let (feed, tx, _err_tx) = Feed::channel();
    tokio::spawn(async move {
        let mut input = std::pin::pin!(input);
        while let Some(chunk) = input.next().await {
            if tx.send(chunk).await.is_err() {
                return;
            }
        }
    });
    feed
}

fn feed_reader<R>(mut reader: R) -> Feed
where
    R: AsyncRead + Unpin + Send + 'static,
{
    let (feed, tx, err_tx) = Feed::channel();
    tokio::spawn(async move {
        loop {
            let mut chunk = vec![0u8; STREAM_CHUNK];
            match read_full(&mut reader, &mut chunk).await {
                Ok(0) => return,
                Ok(n) => {
                    chunk.truncate(n);
                    if tx.send(chunk).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = err_tx.send(ClientError::Io(format!("reading the input failed: {e}")));
                    // Hold the sender until the call is cancelled, rather than end the input
                    // cleanly and invite an answer for a truncated input.
                    tx.closed().await;
                    return;
                }
            }
        }
    });
    feed
}

/// Reads until `buf` is full or the input ends; the number of bytes read.
async fn read_full<R: AsyncRead + Unpin>(reader: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]).await? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// The output of a streamed cipher call: chunks as the node produces them, then (AES-GCM with
/// a generated IV) the IV. Each wait for a message is bounded by the request timeout.
/// Dropping it cancels the call.
#[derive(Debug)]
pub struct CipherStream {
    client: Client,
    node: Arc<Node>,
    operation: &'static str,
    inner: tonic::Streaming<v1::CipherChunk>,
    input_error: Option<oneshot::Receiver<ClientError>>,
    generated_iv: Vec<u8>,
    done: bool,
    /// Aborts the call; used on an input error and when the stream is dropped unfinished.
    cancel: Option<tonic::CancellationHandle>,
}

impl CipherStream {
    fn abort(&mut self) {
        self.done = true;
        if let Some(cancel) = self.cancel.take() {
            cancel.cancel();
        }
    }
}

impl Drop for CipherStream {
    fn drop(&mut self) {
        // A no-op once the input has been sent in full; otherwise the node must not wait on
        // (or, worse, finish with) an input that will not come.
        self.abort();
    }
}

/// All of a streamed cipher call's output.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CipherOutput {
    /// The ciphertext or plaintext.
    pub data: Vec<u8>,
    /// The IV the node generated (AES-GCM with `generate_iv`), else empty.
    pub generated_iv: Vec<u8>,
}

impl CipherStream {
    /// The next output chunk; `None` once the node has finished.
    pub async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, ClientError> {
        while !self.done {
            let timeout = self.client.request_timeout();
            let message = match self.input_error.as_mut() {
                Some(input_error) => {
                    tokio::select! {
                        biased;
                        failed = input_error => {
                            self.input_error = None;
                            if let Ok(error) = failed {
                                self.abort();
                                return Err(error);
                            }
                            continue;
                        }
                        message = tokio::time::timeout(timeout, self.inner.message()) => message,
                    }
                }
                None => tokio::time::timeout(timeout, self.inner.message()).await,
            };
            match message {
                Ok(Ok(Some(chunk))) => {
                    if !chunk.generated_iv.is_empty() {
                        self.generated_iv = chunk.generated_iv;
                    }
                    if !chunk.data.is_empty() {
                        return Ok(Some(chunk.data));
                    }
                }
                Ok(Ok(None)) => {
                    // Finished: the node has the whole input, nothing to cancel.
                    self.done = true;
                    self.cancel = None;
                }
                Ok(Err(status)) => {
                    self.abort();
                    return Err(self.client.status_failure(&status, &self.node, self.operation).error);
                }
                Err(_) => {
                    self.abort();
                    return Err(self.client.timeout_failure(&self.node, self.operation).error);
                }
            }
        }
        Ok(None)
    }

    /// The IV the node generated, once the stream has ended (AES-GCM with `generate_iv`).
    pub fn generated_iv(&self) -> &[u8] {
        &self.generated_iv
    }

    /// Reads the whole output into memory.
    pub async fn collect(mut self) -> Result<CipherOutput, ClientError> {
        let mut data = Vec::new();
        while let Some(chunk) = self.next_chunk().await? {
            data.extend_from_slice(&chunk);
        }
        Ok(CipherOutput { data, generated_iv: std::mem::take(&mut self.generated_iv) })
    }
}
