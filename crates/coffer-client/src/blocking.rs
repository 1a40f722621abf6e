//! The same API without async: [`Client`] and [`Session`] run the async ones on a private
//! current-thread Tokio runtime, driven by the calling thread (and, between calls, briefly by
//! an idle thread). Usable from plain threads, several at once; not from
//! inside an async runtime (that is refused with [`ClientError::InvalidUse`] rather than a
//! panic; use [`crate::Client`] there).

use std::future::Future;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::task::Poll;
use std::time::{Duration, Instant};

use coffer_proto::v1;
use tokio::runtime::Runtime;

use crate::config::ClientConfig;
use crate::error::ClientError;
use crate::session::{Direction, Feed, STREAM_CHUNK};

/// The private runtime. Shut down in the background when the last handle goes, so that
/// dropping a blocking client never blocks nor panics (even inside an async context).
#[derive(Debug)]
struct Rt {
    runtime: Option<Runtime>,
    /// How long a call may busy-wait for its answer ([`ClientConfig::spin_wait_us`]).
    spin: Duration,
    /// Calls running on the runtime now, from any thread.
    in_flight: AtomicUsize,
    /// When two calls were last in flight together: microseconds since `started`, plus one
    /// (0: never).
    crowded_at: AtomicU64,
    started: Instant,
}

/// Spinning stays off this long after two calls were last in flight together: a
/// multi-threaded caller's calls overlap often, and a lone one among them would spin on a
/// core that the others' answers need.
const CROWDED_FOR: Duration = Duration::from_millis(10);

impl Drop for Rt {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Rt {
    fn new(config: &ClientConfig) -> Result<Arc<Rt>, ClientError> {
        // A current-thread runtime: the calling thread drives the connection itself inside
        // `block_on`, so a call costs no hop to a worker thread and back (with a worker, each
        // call woke it to send and was woken by it on the answer: a large share of a small
        // call's latency on loopback). Several threads may still call at once: one drives,
        // the others are woken as their answers arrive.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ClientError::InvalidUse(format!("cannot start the client's runtime: {e}")))?;
        let rt = Arc::new(Rt {
            runtime: Some(runtime),
            spin: Duration::from_micros(config.spin_wait_us),
            in_flight: AtomicUsize::new(0),
            crowded_at: AtomicU64::new(0),
            started: Instant::now(),
        });
        spawn_idle_driver(Arc::downgrade(&rt))?;
        Ok(rt)
    }

    fn runtime(&self) -> Result<&Runtime, ClientError> {
        self.runtime
            .as_ref()
            .ok_or_else(|| ClientError::InvalidUse("the client's runtime is shut down".into()))
    }

    fn run<F: Future>(&self, future: F) -> Result<F::Output, ClientError> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(ClientError::InvalidUse(
                "the blocking client was called from inside an async runtime; use coffer_client::Client there"
                    .into(),
            ));
        }
        let in_flight = InFlight::enter(&self.in_flight);
        if in_flight.others > 0 {
            self.note_crowded();
        }
        let runtime = self.runtime()?;
        // A call that began beside another has just noted the crowding.
        let output = if self.spin.is_zero() || self.crowded_recently() {
            runtime.block_on(future)
        } else {
            runtime.block_on(self.spinning(future))
        };
        if self.in_flight.load(Ordering::Relaxed) > 1 {
            self.note_crowded();
        }
        Ok(output)
    }

    fn micros_since_start(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX - 1)
    }

    fn note_crowded(&self) {
        self.crowded_at.store(self.micros_since_start() + 1, Ordering::Relaxed);
    }

    fn crowded_recently(&self) -> bool {
        let at = self.crowded_at.load(Ordering::Relaxed);
        at != 0 && (self.micros_since_start() + 1).saturating_sub(at) < CROWDED_FOR.as_micros() as u64
    }

    /// `future`, polled again at every scheduler turn instead of sleeping until its socket
    /// wakes it, for up to [`ClientConfig::spin_wait_us`] and only while no other thread has
    /// a call in flight on this runtime (several spinning threads would take the cores the
    /// node and the other callers need; see also [`CROWDED_FOR`]).
    async fn spinning<F: Future>(&self, future: F) -> F::Output {
        let deadline = Instant::now() + self.spin;
        let mut future = std::pin::pin!(future);
        loop {
            // Polled by hand so that a pending future can be given up for a yield.
            let polled = std::future::poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx))).await;
            if let Poll::Ready(output) = polled {
                return output;
            }
            if self.in_flight.load(Ordering::Relaxed) > 1 {
                self.note_crowded();
                return future.await;
            }
            if Instant::now() >= deadline {
                return future.await;
            }
            // Resumes once the runtime has polled the sockets (without blocking) and run
            // whatever was ready: the answer, as soon as it is in.
            tokio::task::yield_now().await;
        }
    }
}

/// Counts a call in flight on a runtime while it lives.
struct InFlight<'a> {
    count: &'a AtomicUsize,
    /// Calls that were already in flight when this one began.
    others: usize,
}

impl<'a> InFlight<'a> {
    fn enter(count: &'a AtomicUsize) -> Self {
        let others = count.fetch_add(1, Ordering::Relaxed);
        InFlight { count, others }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How often the idle driver runs the runtime, and for how long. Well within the node's
/// HTTP/2 keepalive (a ping after 30 s of quiet, answered within 10 s).
const IDLE_TICK: Duration = Duration::from_secs(1);
const IDLE_SLICE: Duration = Duration::from_millis(5);

/// Between calls nobody drives a current-thread runtime, yet the connection must still
/// answer the node's keepalive pings (else the node drops it) and background tasks (closing
/// a dropped session) must run. This thread drives the runtime for a moment every
/// [`IDLE_TICK`] while the runtime lives, and ends when it is gone.
fn spawn_idle_driver(rt: Weak<Rt>) -> Result<(), ClientError> {
    std::thread::Builder::new()
        .name("coffer-client-idle".into())
        .spawn(move || {
            loop {
                std::thread::sleep(IDLE_TICK);
                // Holding the Arc only for the slice: the runtime is never dropped while
                // this thread drives it, and not kept alive by it otherwise.
                let Some(rt) = rt.upgrade() else { return };
                if let Some(runtime) = &rt.runtime {
                    // The timer is made inside the runtime: it needs the runtime's clock.
                    runtime.block_on(async { tokio::time::sleep(IDLE_SLICE).await });
                }
            }
        })
        .map(|_| ())
        .map_err(|e| ClientError::InvalidUse(format!("cannot start the client's idle driver: {e}")))
}

/// Blocking [`crate::Client`]. Cheap to clone; `Send + Sync`.
#[derive(Debug, Clone)]
pub struct Client {
    inner: crate::Client,
    rt: Arc<Rt>,
}

impl Client {
    /// As [`crate::Client::connect`].
    pub fn connect(config: &ClientConfig) -> Result<Client, ClientError> {
        let rt = Rt::new(config)?;
        let inner = rt.run(crate::Client::connect(config))??;
        Ok(Client { inner, rt })
    }

    /// The async client underneath.
    pub fn as_async(&self) -> &crate::Client {
        &self.inner
    }

    /// As [`crate::Client::endpoints`].
    pub fn endpoints(&self) -> Vec<String> {
        self.inner.endpoints()
    }

    /// As [`crate::Client::for_endpoint`].
    pub fn for_endpoint(&self, endpoint: &str) -> Result<Client, ClientError> {
        Ok(Client { inner: self.inner.for_endpoint(endpoint)?, rt: self.rt.clone() })
    }

    /// As [`crate::Client::cluster_info`].
    pub fn cluster_info(&self) -> Result<v1::ClusterInfo, ClientError> {
        self.rt.run(self.inner.cluster_info())?
    }

    /// As [`crate::Client::cluster_csr`].
    pub fn cluster_csr(&self) -> Result<String, ClientError> {
        self.rt.run(self.inner.cluster_csr())?
    }

    /// As [`crate::Client::initialize_cluster`].
    pub fn initialize_cluster(
        &self,
        signed_cert_pem: &str,
        trust_anchor_pem: &str,
    ) -> Result<v1::ClusterInfo, ClientError> {
        self.rt.run(self.inner.initialize_cluster(signed_cert_pem, trust_anchor_pem))?
    }

    /// As [`crate::Client::open_session`].
    pub fn open_session(&self) -> Result<Session, ClientError> {
        let inner = self.rt.run(self.inner.open_session())??;
        Ok(Session { inner, rt: self.rt.clone() })
    }
}

/// Blocking [`crate::Session`]. `Send + Sync`: share it between threads with an `Arc`.
#[derive(Debug)]
pub struct Session {
    inner: crate::Session,
    rt: Arc<Rt>,
}

macro_rules! blocking_rpcs {
    ($($name:ident($req:ident) -> $resp:ident;)*) => {
        impl Session {
            $(
                #[doc = concat!("As [`crate::Session::", stringify!($name), "`].")]
                pub fn $name(&self, request: v1::$req) -> Result<v1::$resp, ClientError> {
                    self.rt.run(self.inner.$name(request))?
                }
            )*
        }
    };
}

blocking_rpcs! {
    login(LoginRequest) -> LoginResponse;
    create_user(CreateUserRequest) -> UserInfo;
    delete_user(DeleteUserRequest) -> Empty;
    change_password(ChangePasswordRequest) -> Empty;
    generate_key(GenerateKeyRequest) -> ObjectHandles;
    generate_key_pair(GenerateKeyPairRequest) -> KeyPairHandles;
    import_key(ImportKeyRequest) -> ObjectHandles;
    create_object(CreateObjectRequest) -> ObjectHandles;
    find_objects(FindObjectsRequest) -> ObjectHandles;
    get_attributes(GetAttributesRequest) -> GetAttributesResponse;
    set_attributes(SetAttributesRequest) -> Empty;
    copy_object(CopyObjectRequest) -> ObjectHandles;
    share_key(ShareKeyRequest) -> KeyUsers;
    unshare_key(ShareKeyRequest) -> KeyUsers;
    get_key_users(KeyRequest) -> KeyUsers;
    destroy_object(KeyRequest) -> Empty;
    export_public_key(KeyRequest) -> ExportPublicKeyResponse;
    wrap_key(WrapKeyRequest) -> WrapKeyResponse;
    unwrap_key(UnwrapKeyRequest) -> ObjectHandles;
    derive_key(DeriveKeyRequest) -> ObjectHandles;
    sign(SignRequest) -> SignResponse;
    verify(VerifyRequest) -> Empty;
    encrypt(CipherRequest) -> CipherResponse;
    decrypt(CipherRequest) -> CipherResponse;
    digest(DigestRequest) -> DigestResponse;
    generate_random(GenerateRandomRequest) -> GenerateRandomResponse;
    register_trust_anchor(RegisterTrustAnchorRequest) -> TrustAnchors;
    deregister_trust_anchor(DeregisterTrustAnchorRequest) -> TrustAnchors;
    set_mtls_enforcement(SetMtlsEnforcementRequest) -> TrustAnchors;
    add_hsm(AddHsmRequest) -> HsmMember;
    delete_hsm(DeleteHsmRequest) -> Empty;
}

impl Session {
    /// The async session underneath.
    pub fn as_async(&self) -> &crate::Session {
        &self.inner
    }

    /// As [`crate::Session::token`].
    pub fn token(&self) -> &[u8] {
        self.inner.token()
    }

    /// As [`crate::Session::endpoint`].
    pub fn endpoint(&self) -> &str {
        self.inner.endpoint()
    }

    /// As [`crate::Session::logout`].
    pub fn logout(&self) -> Result<v1::Empty, ClientError> {
        self.rt.run(self.inner.logout())?
    }

    /// As [`crate::Session::list_users`].
    pub fn list_users(&self) -> Result<v1::ListUsersResponse, ClientError> {
        self.rt.run(self.inner.list_users())?
    }

    /// As [`crate::Session::list_trust_anchors`].
    pub fn list_trust_anchors(&self) -> Result<v1::TrustAnchors, ClientError> {
        self.rt.run(self.inner.list_trust_anchors())?
    }

    /// As [`crate::Session::close`].
    pub fn close(&self) -> Result<(), ClientError> {
        self.rt.run(self.inner.close())?
    }

    /// As [`crate::Session::login_as`].
    pub fn login_as(
        &self,
        username: &str,
        role: v1::Role,
        password: &[u8],
    ) -> Result<v1::LoginResponse, ClientError> {
        self.rt.run(self.inner.login_as(username, role, password))?
    }

    /// As [`crate::Session::create_user_as`].
    pub fn create_user_as(
        &self,
        username: &str,
        role: v1::Role,
        password: &[u8],
    ) -> Result<v1::UserInfo, ClientError> {
        self.rt.run(self.inner.create_user_as(username, role, password))?
    }

    /// As [`crate::Session::change_password_of`].
    pub fn change_password_of(&self, username: &str, new_password: &[u8]) -> Result<(), ClientError> {
        self.rt.run(self.inner.change_password_of(username, new_password))?
    }

    /// As [`crate::Session::random_bytes`].
    pub fn random_bytes(&self, length: u32) -> Result<Vec<u8>, ClientError> {
        self.rt.run(self.inner.random_bytes(length))?
    }

    /// `EncryptStream` from `input` to `output`, in [`STREAM_CHUNK`] pieces; returns the IV the
    /// node generated (AES-GCM with `generate_iv`), else an empty vector. A read or write
    /// error cancels the call.
    pub fn encrypt_stream<R, W>(
        &self,
        key: u64,
        mechanism: v1::CipherMechanism,
        input: R,
        output: &mut W,
    ) -> Result<Vec<u8>, ClientError>
    where
        R: Read + Send + 'static,
        W: Write + ?Sized,
    {
        self.cipher_stream(Direction::Encrypt, key, mechanism, input, output)
    }

    /// `DecryptStream` from `input` to `output`, as [`encrypt_stream`](Self::encrypt_stream).
    pub fn decrypt_stream<R, W>(
        &self,
        key: u64,
        mechanism: v1::CipherMechanism,
        input: R,
        output: &mut W,
    ) -> Result<Vec<u8>, ClientError>
    where
        R: Read + Send + 'static,
        W: Write + ?Sized,
    {
        self.cipher_stream(Direction::Decrypt, key, mechanism, input, output)
    }

    fn cipher_stream<R, W>(
        &self,
        direction: Direction,
        key: u64,
        mechanism: v1::CipherMechanism,
        input: R,
        output: &mut W,
    ) -> Result<Vec<u8>, ClientError>
    where
        R: Read + Send + 'static,
        W: Write + ?Sized,
    {
        let handle = self.rt.runtime()?.handle().clone();
        let (feed, tx, err_tx) = Feed::channel();
        // A plain thread reads the (blocking) input and hands chunks to the runtime.
        std::thread::Builder::new()
            .name("coffer-client-input".into())
            .spawn(move || read_input(input, tx, err_tx, handle))
            .map_err(|e| ClientError::Io(format!("cannot start the input thread: {e}")))?;
        let mut stream = self.rt.run(self.inner.cipher_stream(direction, key, mechanism, feed))??;
        while let Some(chunk) = self.rt.run(stream.next_chunk())?? {
            output
                .write_all(&chunk)
                .map_err(|e| ClientError::Io(format!("writing the output failed: {e}")))?;
        }
        output.flush().map_err(|e| ClientError::Io(format!("writing the output failed: {e}")))?;
        Ok(stream.generated_iv().to_vec())
    }
}

/// Reads `input` in chunks into the feed. On a read error it reports the error and keeps the
/// feed open until the call is dropped, so the node sees a cancelled call, not a short input.
fn read_input<R: Read>(
    mut input: R,
    tx: tokio::sync::mpsc::Sender<Vec<u8>>,
    err_tx: tokio::sync::oneshot::Sender<ClientError>,
    handle: tokio::runtime::Handle,
) {
    loop {
        let mut chunk = vec![0u8; STREAM_CHUNK];
        match read_full(&mut input, &mut chunk) {
            Ok(0) => return,
            Ok(n) => {
                chunk.truncate(n);
                if tx.blocking_send(chunk).is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = err_tx.send(ClientError::Io(format!("reading the input failed: {e}")));
                handle.block_on(tx.closed());
                return;
            }
        }
    }
}

/// Reads until `buf` is full or the input ends, retrying interrupted reads.
fn read_full<R: Read>(input: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(spin_wait_us: u64) -> ClientConfig {
        let mut config = ClientConfig::new(vec!["127.0.0.1:2223".into()]);
        config.spin_wait_us = spin_wait_us;
        config
    }

    /// Pending until another thread sets `done` (and wakes it); counts its polls.
    struct Answer {
        done: Arc<std::sync::atomic::AtomicBool>,
        waker: Arc<std::sync::Mutex<Option<std::task::Waker>>>,
        polls: usize,
    }

    impl Future for Answer {
        type Output = usize;
        fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<usize> {
            self.polls += 1;
            *self.waker.lock().unwrap() = Some(cx.waker().clone());
            if self.done.load(Ordering::SeqCst) { Poll::Ready(self.polls) } else { Poll::Pending }
        }
    }

    /// Runs an [`Answer`] that another thread completes after `delay`; returns its polls.
    fn polls_until_answered(rt: &Rt, delay: Duration) -> usize {
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let waker = Arc::new(std::sync::Mutex::new(None::<std::task::Waker>));
        let answerer = {
            let (done, waker) = (done.clone(), waker.clone());
            std::thread::spawn(move || {
                std::thread::sleep(delay);
                done.store(true, Ordering::SeqCst);
                if let Some(waker) = waker.lock().unwrap().take() {
                    waker.wake();
                }
            })
        };
        let before = rt.in_flight.load(Ordering::SeqCst);
        let polls = rt.run(Answer { done, waker, polls: 0 }).unwrap();
        answerer.join().unwrap();
        assert_eq!(rt.in_flight.load(Ordering::SeqCst), before, "the call is no longer counted");
        polls
    }

    #[test]
    fn a_lone_call_spins_only_when_configured_and_still_ends_past_the_spin() {
        let sleeping = Rt::new(&config(0)).unwrap();
        assert!(polls_until_answered(&sleeping, Duration::from_millis(20)) <= 3, "no spin by default");
        // The answer comes after the 1 ms of spinning: the call then sleeps and still gets it.
        let spinning = Rt::new(&config(1000)).unwrap();
        let polls = polls_until_answered(&spinning, Duration::from_millis(20));
        assert!(polls > 10, "polled {polls} times while spinning");
    }

    #[test]
    fn a_call_does_not_spin_beside_another_nor_soon_after() {
        let rt = Rt::new(&config(crate::config::MAX_SPIN_WAIT_US)).unwrap();
        let other = InFlight::enter(&rt.in_flight);
        let polls = polls_until_answered(&rt, Duration::from_millis(20));
        assert!(polls <= 3, "polled {polls} times beside another call");
        drop(other);
        // Alone now, but calls overlapped a moment ago: still no spinning, until that is
        // CROWDED_FOR in the past.
        assert!(rt.crowded_recently());
        let polls = polls_until_answered(&rt, Duration::from_millis(1));
        assert!(polls <= 3 || !rt.crowded_recently(), "polled {polls} times right after overlapping calls");
        std::thread::sleep(CROWDED_FOR);
        assert!(!rt.crowded_recently());
        let polls = polls_until_answered(&rt, Duration::from_millis(20));
        assert!(polls > 10, "polled {polls} times alone again");
    }

    #[test]
    fn blocking_calls_inside_a_runtime_are_refused_not_panicking() {
        let rt = Rt::new(&config(0)).unwrap();
        let outer = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let result = outer.block_on(async { rt.run(async { 1 }) });
        assert!(matches!(result, Err(ClientError::InvalidUse(_))), "{result:?}");
        // And dropping the private runtime inside an async context does not panic either.
        outer.block_on(async move { drop(rt) });
    }

    #[test]
    fn the_idle_driver_runs_background_work_between_calls() {
        // A task spawned with no blocking call in progress (as a dropped session's close is)
        // still runs: the idle driver drives the current-thread runtime.
        let rt = Rt::new(&config(0)).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        rt.runtime().unwrap().spawn(async move {
            let _ = tx.send(());
        });
        assert!(rx.recv_timeout(IDLE_TICK * 10).is_ok(), "the spawned task never ran");
    }

    #[test]
    fn read_full_fills_or_ends() {
        let data = [7u8; 10];
        let mut buf = [0u8; 4];
        let mut reader = &data[..];
        assert_eq!(read_full(&mut reader, &mut buf).unwrap(), 4);
        let mut big = [0u8; 100];
        assert_eq!(read_full(&mut reader, &mut big).unwrap(), 6);
        assert_eq!(read_full(&mut reader, &mut big).unwrap(), 0);
    }
}
