//! `coffer-bench sdk`: RSA-2048 and P-256 signing and AES-256-GCM encryption through the SDK
//! (`coffer-client`, blocking API) over TLS 1.3 to a node started in this process on loopback,
//! beside the same operations in-process through `coffer_crypto::Module`, with 1 and 2 client
//! threads.
//!
//! The node is a real `cofferd` (the `coffer-node` library): a temp data dir and seal key,
//! 1,000 PBKDF2 iterations, the default busy-polling (1 ms after each answer), initialised
//! with a throwaway development CA, activated, one crypto-user, token keys generated on the
//! node. Each SDK thread has its own session (all on one shared client, as an application
//! would); each in-process thread its own clone of the module and locally generated keys of
//! the same types.
//!
//! What the ratio measures: everything the SDK path adds to the cryptography itself (request
//! encoding, TLS, HTTP/2, loopback, the node's session and key checks, its audit log, and the
//! thread hops on both ends). Client threads, node and in-process work share the machine's
//! cores, so with 2 threads the SDK side competes with its own node.

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use coffer_client::{ClientConfig, blocking, v1};
use coffer_crypto::{CipherMechanism, EcCurve, GcmParams, HashAlg, Key, KeySpec, Module, SignMechanism};
use coffer_hsm::AttributeType;
use coffer_node::config::NodeConfig;
use coffer_node::pki::DevCa;
use coffer_node::{Node, RunningNode};

use crate::hsm::percentile;

/// Client thread counts measured.
const THREADS: [usize; 2] = [1, 2];
const KIB: usize = 1024;
/// The pre-crypto-officer's factory credentials, as a new cluster has them.
const PRECO_NAME: &str = "admin";
const PRECO_PASSWORD: &[u8] = b"password";
/// Throwaway credentials of the throwaway cluster.
pub(crate) const ADMIN_PASSWORD: &[u8] = b"bench-admin-pw-1";
pub(crate) const USER_NAME: &str = "bench_user";
pub(crate) const USER_PASSWORD: &[u8] = b"bench-user-pw-1";

/// Runs the suite: `duration` of measurement per side, case and thread count.
pub fn run(duration: Duration) -> Result<()> {
    let module = Module::power_on();
    module.status().context("power-on self-tests")?;
    if cfg!(debug_assertions) {
        println!("note: debug build; run with --release for meaningful figures");
    }
    let node = LocalNode::start()?;
    let measured = measure_all(&node, &module, duration);
    // The node is stopped and its directory removed whatever the measurement did.
    let stopped = node.stop();
    let ratios = measured?;
    stopped?;
    summary(&ratios);
    Ok(())
}

/// Sets the cluster up, prints the table, and returns every case's ratio. Every client and
/// session is closed before it returns, so that the node's shutdown has no call to wait for.
fn measure_all(node: &LocalNode, module: &Module, duration: Duration) -> Result<Vec<f64>> {
    let client = bring_up(node, module)?;
    let most = THREADS.iter().copied().max().unwrap_or(1);
    let sessions = (0..most).map(|_| user_session(&client)).collect::<Result<Vec<_>>>()?;
    let remote = RemoteKeys::generate(&sessions[0])?;
    let cases = cases(&remote, module)?;
    let warm_up = duration / 5;
    println!(
        "node in this process on {} (TLS 1.3, dev CA); sdk = blocking client, one session per thread",
        node.running.local_addr()
    );
    println!(
        "each case: {} ms warm-up, then {} ms per side; latencies per call, all threads together\n",
        warm_up.as_millis(),
        duration.as_millis()
    );
    print_header();
    let mut ratios = Vec::new();
    for case in &cases {
        check_alike(case, &sessions[0], module)?;
        for &threads in &THREADS {
            let sdk_workers = &sessions[..threads];
            let modules = vec![module.clone(); threads];
            measure(sdk_workers, warm_up, &case.sdk)?;
            let sdk = measure(sdk_workers, duration, &case.sdk)?;
            measure(&modules, warm_up, &case.local)?;
            let local = measure(&modules, duration, &case.local)?;
            print_row(&case.name, threads, &sdk, &local);
            ratios.push(sdk.ops_per_sec / local.ops_per_sec);
        }
    }
    for session in &sessions {
        session.close().context("closing a bench session")?;
    }
    Ok(ratios)
}

fn summary(ratios: &[f64]) {
    if ratios.is_empty() {
        return;
    }
    let geomean = (ratios.iter().map(|r| r.ln()).sum::<f64>() / ratios.len() as f64).exp();
    let min = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    let max = ratios.iter().copied().fold(0.0, f64::max);
    println!(
        "\n{} rows ({} cases x {:?} threads); ratio sdk/in-process ops/s: geometric mean {geomean:.3}, \
         lowest {min:.3}, highest {max:.3}",
        ratios.len(),
        ratios.len() / THREADS.len(),
        THREADS
    );
}

// ---- the node ----------------------------------------------------------------------------

/// A node served by its own runtime in this process, with its temp dir.
pub(crate) struct LocalNode {
    runtime: tokio::runtime::Runtime,
    pub(crate) running: RunningNode,
    pub(crate) dir: tempfile::TempDir,
}

impl LocalNode {
    /// Starts a node on 127.0.0.1 (a port the system picks) with its data and seal key in a
    /// new temp dir and the node's minimum PBKDF2 work factor, so logins are quick.
    pub(crate) fn start() -> Result<LocalNode> {
        Self::start_named("bench-node", "")
    }

    /// As [`LocalNode::start`], with this node id and more configuration (`join = true`).
    pub(crate) fn start_named(node_id: &str, extra: &str) -> Result<LocalNode> {
        let dir = tempfile::tempdir().context("creating the node's temp dir")?;
        let path = |name: &str| -> Result<String> {
            dir.path().join(name).to_str().map(str::to_owned).context("the temp dir's path is not UTF-8")
        };
        // Paths go in as overrides, so that no path needs quoting as TOML.
        let flags = [format!("data_dir={}", path("data")?), format!("seal.key_file={}", path("seal.key")?)];
        let text = "listen = \"127.0.0.1:0\"\n\
                    metrics_listen = \"127.0.0.1:0\"\npbkdf2_iterations = 1000\n";
        let text = format!("node_id = \"{node_id}\"\n{text}{extra}\n");
        let config = NodeConfig::from_sources("bench node", &text, Vec::<(String, String)>::new(), &flags)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("bench-node")
            .enable_all()
            .build()
            .context("the node's runtime")?;
        let running = runtime.block_on(Node::start(config)).context("starting the node")?;
        Ok(LocalNode { runtime, running, dir })
    }

    /// Stops the node (closing its sessions and audit log) and removes its temp dir.
    pub(crate) fn stop(self) -> Result<()> {
        let LocalNode { runtime, running, dir } = self;
        let stopped = runtime.block_on(running.shutdown()).context("stopping the node");
        drop(runtime);
        let removed = dir.close().context("removing the node's temp dir");
        stopped.and(removed)
    }
}

/// Initialises the node with a new development CA (as `coffer up` does), activates it,
/// creates the crypto-user, and returns a client that verifies the node against the CA.
pub(crate) fn bring_up(node: &LocalNode, module: &Module) -> Result<blocking::Client> {
    let mut config = ClientConfig::new(vec![node.running.local_addr().to_string()]);
    config.server_fingerprint = Some(node.running.node().bootstrap_fingerprint().to_owned());
    let boot = blocking::Client::connect(&config).context("connecting to the new node")?;
    let ca = DevCa::create(module, "coffer-bench")?;
    let cert = ca.sign_csr(&boot.cluster_csr()?)?;
    boot.initialize_cluster(&cert, ca.cert_pem())?;
    drop(boot);

    let config = anchored_config(node);
    if let Some(anchor) = &config.trust_anchor {
        std::fs::write(anchor, ca.cert_pem()).context("writing the dev CA certificate")?;
    }
    let client = blocking::Client::connect(&config).context("connecting through the dev CA")?;
    let admin = client.open_session()?;
    admin.login_as(PRECO_NAME, v1::Role::UnactivatedAdmin, PRECO_PASSWORD).context("PRECO login")?;
    admin.change_password_of(PRECO_NAME, ADMIN_PASSWORD).context("activating the cluster")?;
    admin.create_user_as(USER_NAME, v1::Role::CryptoUser, USER_PASSWORD).context("creating the user")?;
    admin.close()?;
    Ok(client)
}

/// The client configuration of the initialised node: its address, trusted through the dev
/// CA whose certificate [`bring_up`] writes into the node's temp dir.
pub(crate) fn anchored_config(node: &LocalNode) -> ClientConfig {
    let mut config = ClientConfig::new(vec![node.running.local_addr().to_string()]);
    config.trust_anchor = Some(node.dir.path().join("dev-ca.pem"));
    config
}

fn user_session(client: &blocking::Client) -> Result<blocking::Session> {
    let session = client.open_session()?;
    session.login_as(USER_NAME, v1::Role::CryptoUser, USER_PASSWORD).context("crypto-user login")?;
    Ok(session)
}

/// The handles of the keys generated on the node. Token keys, so that every session of the
/// user can use them.
struct RemoteKeys {
    rsa: u64,
    ec: u64,
    aes: u64,
}

impl RemoteKeys {
    fn generate(session: &blocking::Session) -> Result<RemoteKeys> {
        let pair = |key_type: v1::KeyType, modulus_bits: u32, curve: v1::EcCurve| {
            session.generate_key_pair(v1::GenerateKeyPairRequest {
                session: Vec::new(),
                key_type: key_type as i32,
                modulus_bits,
                curve: curve as i32,
                public_template: template(&[(AttributeType::Token, true), (AttributeType::Verify, true)]),
                private_template: template(&[(AttributeType::Token, true), (AttributeType::Sign, true)]),
            })
        };
        let rsa = pair(v1::KeyType::Rsa, 2048, v1::EcCurve::Unspecified).context("RSA-2048 on the node")?;
        let ec = pair(v1::KeyType::Ec, 0, v1::EcCurve::P256).context("P-256 on the node")?;
        let aes = session
            .generate_key(v1::GenerateKeyRequest {
                session: Vec::new(),
                key_type: v1::KeyType::Aes as i32,
                length_bytes: 32,
                template: template(&[(AttributeType::Token, true), (AttributeType::Encrypt, true)]),
            })
            .context("AES-256 on the node")?;
        let aes = *aes.handles.first().ok_or_else(|| anyhow!("GenerateKey returned no handle"))?;
        Ok(RemoteKeys { rsa: rsa.private_handle, ec: ec.private_handle, aes })
    }
}

pub(crate) fn template(flags: &[(AttributeType, bool)]) -> Option<v1::Template> {
    let attributes = flags
        .iter()
        .map(|&(ty, value)| v1::Attribute {
            r#type: ty.code(),
            value: Some(v1::attribute::Value::BoolValue(value)),
        })
        .collect();
    Some(v1::Template { attributes })
}

// ---- the cases ---------------------------------------------------------------------------

/// One call through the SDK on a session; returns the output's length.
type SdkOp = Box<dyn Fn(&blocking::Session) -> Result<usize> + Sync>;
/// The same operation through a module; returns the output's length.
type LocalOp = Box<dyn Fn(&Module) -> Result<usize> + Sync>;

struct Case {
    name: String,
    sdk: SdkOp,
    local: LocalOp,
}

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn cases(remote: &RemoteKeys, module: &Module) -> Result<Vec<Case>> {
    use v1::sign_mechanism::Mechanism as Wire;
    let rsa = Key::Private(module.generate_key_pair(&KeySpec::Rsa { bits: 2048 })?.private);
    let ec = Key::Private(module.generate_key_pair(&KeySpec::Ec(EcCurve::P256))?.private);
    let mut cases = vec![
        sign_case(
            "rsa-2048 sign sha256-pkcs1",
            remote.rsa,
            Wire::ShaRsaPkcs(v1::HashAlg::Sha256 as i32),
            rsa,
            SignMechanism::ShaRsaPkcs(HashAlg::Sha256),
        ),
        sign_case(
            "ecdsa p-256 sign sha256",
            remote.ec,
            Wire::EcdsaSha(v1::HashAlg::Sha256 as i32),
            ec,
            SignMechanism::EcdsaSha(HashAlg::Sha256),
        ),
    ];
    for len in [256, 16 * KIB] {
        cases.push(gcm_case(len, remote.aes, module.generate(&KeySpec::Aes { len_bytes: 32 })?));
    }
    Ok(cases)
}

/// Signing a 64-byte message.
fn sign_case(
    name: &str,
    handle: u64,
    wire: v1::sign_mechanism::Mechanism,
    key: Key,
    mech: SignMechanism,
) -> Case {
    let (msg, local_msg) = (data(64), data(64));
    let mechanism = v1::SignMechanism { mechanism: Some(wire) };
    Case {
        name: name.to_owned(),
        sdk: Box::new(move |session| {
            let request = v1::SignRequest {
                session: Vec::new(),
                key: handle,
                mechanism: Some(mechanism),
                data: msg.clone(),
            };
            Ok(black_box(session.sign(request)?).signature.len())
        }),
        local: Box::new(move |module| Ok(black_box(module.sign(&key, &mech, &local_msg)?).len())),
    }
}

/// AES-256-GCM encryption of `len` bytes, no AAD, with the IV generated by the module on
/// both sides (the way an HSM is meant to be used).
fn gcm_case(len: usize, handle: u64, key: Key) -> Case {
    let (plain, local_plain) = (data(len), data(len));
    let params = v1::GcmParams { iv: Vec::new(), generate_iv: true, aad: Vec::new(), tag_bits: 128 };
    let mechanism = v1::CipherMechanism { mechanism: Some(v1::cipher_mechanism::Mechanism::AesGcm(params)) };
    let mech = CipherMechanism::AesGcm(GcmParams { iv: None, aad: Vec::new(), tag_bits: 128 });
    Case {
        name: format!("aes-256-gcm encrypt {len} B"),
        sdk: Box::new(move |session| {
            let request = v1::CipherRequest {
                session: Vec::new(),
                key: handle,
                mechanism: Some(mechanism.clone()),
                data: plain.clone(),
            };
            let out = black_box(session.encrypt(request)?);
            Ok(out.data.len() + out.generated_iv.len())
        }),
        local: Box::new(move |module| {
            let out = black_box(module.encrypt(&key, &mech, &local_plain)?);
            Ok(out.data.len() + out.generated_iv.map_or(0, |iv| iv.len()))
        }),
    }
}

/// Runs each side once and checks that they produce outputs of the same length, so that a
/// misconfigured case (another mechanism, no generated IV) is caught before it is timed.
fn check_alike(case: &Case, session: &blocking::Session, module: &Module) -> Result<()> {
    let sdk = (case.sdk)(session).with_context(|| format!("{} through the SDK", case.name))?;
    let local = (case.local)(module).with_context(|| format!("{} in-process", case.name))?;
    if sdk != local {
        bail!("{}: the SDK returned {sdk} bytes, the module {local}", case.name);
    }
    Ok(())
}

// ---- measurement -------------------------------------------------------------------------

/// What one side did in one run.
pub(crate) struct Measured {
    pub(crate) ops_per_sec: f64,
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
}

/// Runs `op` on one thread per worker, all started together, each calling it back to back
/// for `duration` and timing every call. Any failed call ends the run with its error.
pub(crate) fn measure<W: Sync>(
    workers: &[W],
    duration: Duration,
    op: &(dyn Fn(&W) -> Result<usize> + Sync),
) -> Result<Measured> {
    let start_line = Barrier::new(workers.len());
    let runs = std::thread::scope(|scope| {
        let handles: Vec<_> = workers
            .iter()
            .map(|worker| {
                let start_line = &start_line;
                scope.spawn(move || -> Result<(Vec<Duration>, Duration)> {
                    let mut latencies = Vec::with_capacity(1 << 16);
                    start_line.wait();
                    let start = Instant::now();
                    loop {
                        let t = Instant::now();
                        op(worker)?;
                        latencies.push(t.elapsed());
                        if start.elapsed() >= duration {
                            return Ok((latencies, start.elapsed()));
                        }
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| anyhow!("a bench thread panicked"))?)
            .collect::<Result<Vec<_>>>()
    })?;
    let wall = runs.iter().map(|(_, took)| *took).max().unwrap_or_default();
    let mut latencies: Vec<Duration> = runs.into_iter().flat_map(|(l, _)| l).collect();
    latencies.sort_unstable();
    if latencies.is_empty() || wall.is_zero() {
        bail!("no call completed");
    }
    Ok(Measured {
        ops_per_sec: latencies.len() as f64 / wall.as_secs_f64(),
        p50_us: percentile(&latencies, 0.5),
        p99_us: percentile(&latencies, 0.99),
    })
}

fn print_header() {
    println!(
        "{:<28} {:>3} {:>11} {:>9} {:>9} {:>11} {:>9} {:>9} {:>7}",
        "case", "thr", "sdk ops/s", "p50 us", "p99 us", "local ops/s", "p50 us", "p99 us", "ratio"
    );
}

fn print_row(name: &str, threads: usize, sdk: &Measured, local: &Measured) {
    println!(
        "{:<28} {:>3} {:>11.0} {:>9.1} {:>9.1} {:>11.0} {:>9.1} {:>9.1} {:>7.3}",
        name,
        threads,
        sdk.ops_per_sec,
        sdk.p50_us,
        sdk.p99_us,
        local.ops_per_sec,
        local.p50_us,
        local.p99_us,
        sdk.ops_per_sec / local.ops_per_sec
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_run_measures_every_case_and_removes_the_node() {
        let module = Module::power_on();
        let node = LocalNode::start().unwrap();
        let dir = node.dir.path().to_path_buf();
        let ratios = measure_all(&node, &module, Duration::from_millis(20)).unwrap();
        node.stop().unwrap();
        assert_eq!(ratios.len(), 4 * THREADS.len());
        assert!(ratios.iter().all(|r| r.is_finite() && *r > 0.0), "{ratios:?}");
        assert!(!dir.exists(), "the node's temp dir is left at {}", dir.display());
    }

    #[test]
    fn a_failing_call_ends_the_measurement_with_its_error() {
        let workers = [(), ()];
        let op = |_: &()| -> Result<usize> { bail!("refused") };
        let err = measure(&workers, Duration::from_millis(10), &op).err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("refused"));
    }
}
