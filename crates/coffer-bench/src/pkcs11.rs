//! `coffer-bench pkcs11`: RSA-2048, P-256 and Ed25519 signing and AES-256-GCM encryption
//! through PKCS#11 modules loaded by path (Coffer's `libcoffer_pkcs11.so`, SoftHSM2's
//! `libsofthsm2.so`, or any given with `--module`), beside the same operations straight
//! through aws-lc-rs in this process, with 1 and 2 threads, in one run.
//!
//! Set-up, all in temp dirs and on loopback:
//! - Coffer: a node started in this process as in the `sdk` suite (initialised with a
//!   throwaway development CA, activated, one crypto-user; the node's defaults otherwise, so
//!   it busy-polls for 1 ms after each answer), and a `client.toml` for it; the module logs
//!   in with the PIN `user:password`. Coffer's module is measured twice: as configured by
//!   default (`coffer`), and with `spin_wait_us = 1000` (`coffer+spin`: a lone call
//!   busy-waits for its answer instead of sleeping on the socket).
//! - SoftHSM2: a configuration whose token directory is a temp dir, and a token initialised
//!   there with `softhsm2-util --init-token --free --label bench`.
//!
//! Both libraries read their configuration from the environment (`COFFER_CONFIG`,
//! `SOFTHSM2_CONF`) when they are initialised. Changing this process's environment needs code
//! this crate forbids, so each module is measured in a child process of this program
//! (`coffer-bench pkcs11-module --module PATH --secs S`) given that environment.
//! The child prints one tab-separated line per measured row; this process prints the table.
//! A module is told apart by its `C_GetInfo` manufacturer: `SoftHSM` logs in to the token
//! labelled `bench` with its PIN, any other module to its first token as the crypto-user.
//!
//! Keys are generated in each module as token objects (every session of the process sees
//! them) and destroyed at the end; aws-lc-rs keys are generated in memory. Every signing
//! case is checked once before it is timed (the module verifies its own signature), and
//! every encryption case decrypts to its plaintext.

use std::hint::black_box;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use aws_lc_rs::{aead, digest, rsa, signature};
use coffer_crypto::Module;
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;

use crate::sdk::{self, LocalNode, Measured, USER_NAME, USER_PASSWORD};

/// Thread counts measured.
const THREADS: [usize; 2] = [1, 2];
const KIB: usize = 1024;
/// SoftHSM2's module as Debian installs it.
pub const SOFTHSM_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
/// Coffer's module: the file name cargo gives the `coffer-pkcs11` cdylib.
const COFFER_MODULE_FILE: &str = "libcoffer_pkcs11.so";
/// The busy-wait of the `coffer+spin` side: enough for an RSA-2048 signature on loopback.
const SPIN_WAIT_US: u64 = 1000;
/// The throwaway SoftHSM token's label and PINs.
const SOFTHSM_LABEL: &str = "bench";
const SOFTHSM_SO_PIN: &str = "bench-so-pin-1";
const SOFTHSM_PIN: &str = "bench-user-pin-1";
/// The label of every key this suite makes in a module.
const KEY_LABEL: &[u8] = b"coffer-bench";
/// The prefix of the lines a child prints for this process to read.
const ROW: &str = "row";
const NOTE: &str = "note";
const MODULE: &str = "module";

/// DER of the named curves' object identifiers, as `CKA_EC_PARAMS` takes them.
const P256_PARAMS: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const ED25519_OID_PARAMS: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
/// `edwards25519` as a PrintableString: the form PKCS#11 3.0 names first for Edwards curves.
const ED25519_NAME_PARAMS: &[u8] = b"\x13\x0cedwards25519";

/// The operations measured, the same on every side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CaseKind {
    RsaSign,
    EcSign,
    EdSign,
    Gcm(usize),
}

const CASES: [CaseKind; 5] =
    [CaseKind::RsaSign, CaseKind::EcSign, CaseKind::EdSign, CaseKind::Gcm(256), CaseKind::Gcm(16 * KIB)];

impl CaseKind {
    fn name(self) -> String {
        match self {
            CaseKind::RsaSign => "rsa-2048 sign sha256-pkcs1".to_owned(),
            CaseKind::EcSign => "ecdsa p-256 sign sha256".to_owned(),
            CaseKind::EdSign => "ed25519 sign".to_owned(),
            CaseKind::Gcm(len) => format!("aes-256-gcm encrypt {len} B"),
        }
    }
}

/// The message every signing case signs, and the plaintext of the encryption cases.
fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

// ---- the parent: set-up, aws-lc-rs, and the table ----------------------------------------

/// Runs the suite against `modules` (the defaults that exist when none is given).
pub fn run(modules: &[PathBuf], duration: Duration) -> Result<()> {
    let modules = if modules.is_empty() { default_modules()? } else { modules.to_vec() };
    let module = Module::power_on();
    module.status().context("power-on self-tests")?;
    if cfg!(debug_assertions) {
        println!("note: debug build; run with --release for meaningful figures");
    }
    let node = LocalNode::start()?;
    let measured = measure_everything(&node, &module, &modules, duration);
    let stopped = node.stop();
    let table = measured?;
    stopped?;
    table.print();
    Ok(())
}

/// Coffer's module beside this executable (cargo puts the cdylib and the binary in the same
/// directory) and SoftHSM2's, those that exist; a missing one is named.
fn default_modules() -> Result<Vec<PathBuf>> {
    let exe = std::env::current_exe().context("finding this executable")?;
    let coffer = exe.with_file_name(COFFER_MODULE_FILE);
    let mut found = Vec::new();
    for (path, hint) in [
        (coffer, "build it with `cargo build --release -p coffer-pkcs11`"),
        (PathBuf::from(SOFTHSM_MODULE), "install the Debian package softhsm2"),
    ] {
        if path.is_file() {
            found.push(path);
        } else {
            println!("note: skipping {} (not found; {hint})", path.display());
        }
    }
    if found.is_empty() {
        bail!("no PKCS#11 module to measure; pass one with --module PATH");
    }
    Ok(found)
}

fn measure_everything(
    node: &LocalNode,
    module: &Module,
    modules: &[PathBuf],
    duration: Duration,
) -> Result<Table> {
    let client = sdk::bring_up(node, module)?;
    drop(client);
    let coffer_config = node.dir.path().join("client.toml");
    std::fs::write(&coffer_config, sdk::anchored_config(node).to_toml()).context("writing client.toml")?;
    // Coffer once more with busy-waiting allowed: what the option buys, in the same run.
    let spin_config = node.dir.path().join("client-spin.toml");
    let mut spinning = sdk::anchored_config(node);
    spinning.spin_wait_us = SPIN_WAIT_US;
    std::fs::write(&spin_config, spinning.to_toml()).context("writing client-spin.toml")?;
    let softhsm = SoftHsmToken::create()?;
    println!(
        "Coffer: node in this process on {} (TLS 1.3, dev CA), module logs in as {USER_NAME}",
        node.running.local_addr()
    );
    println!(
        "each case: {} ms warm-up, then {} ms per side; latencies per call, all threads together",
        (duration / 5).as_millis(),
        duration.as_millis()
    );
    let mut table = Table { sides: vec!["aws-lc-rs".to_owned()], rows: Vec::new(), notes: Vec::new() };
    measure_raw(duration, &mut table)?;
    for path in modules {
        let is_coffer = path.file_name().is_some_and(|f| f == COFFER_MODULE_FILE);
        let variants: &[(&str, &Path)] = if is_coffer {
            &[("", &coffer_config), ("+spin", &spin_config)]
        } else {
            &[("", &coffer_config)]
        };
        for (suffix, config) in variants {
            let env = [("COFFER_CONFIG", *config), ("SOFTHSM2_CONF", softhsm.config.as_path())];
            measure_module_in_child(path, suffix, duration, &env, &mut table)
                .with_context(|| format!("measuring {}{suffix}", path.display()))?;
        }
    }
    Ok(table)
}

/// A SoftHSM2 token in a temp dir, with the configuration that points to it.
struct SoftHsmToken {
    _dir: tempfile::TempDir,
    config: PathBuf,
}

impl SoftHsmToken {
    fn create() -> Result<SoftHsmToken> {
        let dir = tempfile::tempdir().context("creating SoftHSM's temp dir")?;
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens).context("creating SoftHSM's token dir")?;
        let config = dir.path().join("softhsm2.conf");
        let text = format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        );
        std::fs::write(&config, text).context("writing softhsm2.conf")?;
        let output = Command::new("softhsm2-util")
            .args(["--init-token", "--free", "--label", SOFTHSM_LABEL])
            .args(["--so-pin", SOFTHSM_SO_PIN, "--pin", SOFTHSM_PIN])
            .env("SOFTHSM2_CONF", &config)
            .stdin(Stdio::null())
            .output();
        match output {
            Ok(out) if out.status.success() => {}
            Ok(out) => bail!(
                "softhsm2-util --init-token failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            // Without the tool a SoftHSM module finds no token; any other module is unaffected.
            Err(e) => println!("note: softhsm2-util not run ({e}); install the Debian package softhsm2"),
        }
        Ok(SoftHsmToken { _dir: dir, config })
    }
}

/// Runs this program as `pkcs11-module` for one module and adds what it measured.
fn measure_module_in_child(
    path: &Path,
    suffix: &str,
    duration: Duration,
    env: &[(&str, &Path)],
    table: &mut Table,
) -> Result<()> {
    let exe = std::env::current_exe().context("finding this executable")?;
    let mut child = Command::new(exe)
        .args(["pkcs11-module", "--secs", &duration.as_secs_f64().to_string(), "--module"])
        .arg(path)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting the measuring child")?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow!("the child's stdout is not piped"))?;
    let mut side = path.display().to_string();
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading the child's output")?;
        let fields: Vec<&str> = line.split('\t').collect();
        match fields.as_slice() {
            [MODULE, manufacturer, description] => {
                side = format!("{}{suffix}", short_name(manufacturer, path));
                table.sides.push(side.clone());
                table.notes.push(format!("{side}: {} ({description}, {manufacturer})", path.display()));
            }
            [NOTE, text] => table.notes.push(format!("{side}: {text}")),
            [ROW, case, threads, ops, p50, p99] => table.rows.push(Row {
                case: (*case).to_owned(),
                threads: threads.parse().context("row threads")?,
                side: side.clone(),
                measured: Measured {
                    ops_per_sec: ops.parse().context("row ops/s")?,
                    p50_us: p50.parse().context("row p50")?,
                    p99_us: p99.parse().context("row p99")?,
                },
            }),
            _ => println!("{line}"),
        }
    }
    let status = child.wait().context("waiting for the measuring child")?;
    if !status.success() {
        bail!("the measuring child failed ({status}); its error is above");
    }
    Ok(())
}

/// A short column name for a module: `coffer`, `softhsm`, or its manufacturer.
fn short_name(manufacturer: &str, path: &Path) -> String {
    let file = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    if manufacturer.contains("SoftHSM") {
        "softhsm".to_owned()
    } else if file == COFFER_MODULE_FILE || manufacturer.to_ascii_lowercase().contains("coffer") {
        "coffer".to_owned()
    } else {
        manufacturer.trim().to_owned()
    }
}

/// What was measured, printed grouped by case and thread count.
struct Table {
    /// The reference first, then each module in the order measured.
    sides: Vec<String>,
    rows: Vec<Row>,
    notes: Vec<String>,
}

struct Row {
    case: String,
    threads: usize,
    side: String,
    measured: Measured,
}

impl Table {
    fn row(&self, case: &str, threads: usize, side: &str) -> Option<&Measured> {
        self.rows
            .iter()
            .find(|r| r.case == case && r.threads == threads && r.side == side)
            .map(|r| &r.measured)
    }

    /// One line per side, case and thread count, with each module's ratio to aws-lc-rs;
    /// then the geometric mean of each module's ratios.
    fn print(&self) {
        println!();
        for note in &self.notes {
            println!("{note}");
        }
        println!(
            "\n{:<28} {:>3} {:<10} {:>10} {:>10} {:>10} {:>9}",
            "case", "thr", "side", "ops/s", "p50 us", "p99 us", "/ raw"
        );
        let reference = &self.sides[0];
        let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); self.sides.len()];
        for case in CASES.map(CaseKind::name) {
            for threads in THREADS {
                let Some(raw) = self.row(&case, threads, reference) else { continue };
                for (i, side) in self.sides.iter().enumerate() {
                    let Some(m) = self.row(&case, threads, side) else {
                        println!("{case:<28} {threads:>3} {side:<10} {:>10}", "-");
                        continue;
                    };
                    let ratio = m.ops_per_sec / raw.ops_per_sec;
                    ratios[i].push(ratio);
                    println!(
                        "{case:<28} {threads:>3} {side:<10} {:>10.0} {:>10.1} {:>10.1} {ratio:>9.3}",
                        m.ops_per_sec, m.p50_us, m.p99_us
                    );
                }
            }
        }
        println!();
        for (side, ratios) in self.sides.iter().zip(&ratios).skip(1) {
            if ratios.is_empty() {
                continue;
            }
            let geomean = (ratios.iter().map(|r| r.ln()).sum::<f64>() / ratios.len() as f64).exp();
            let min = ratios.iter().copied().fold(f64::INFINITY, f64::min);
            println!(
                "{side} / {reference} ops/s over {} rows: geometric mean {geomean:.3}, lowest {min:.3}",
                ratios.len()
            );
        }
    }
}

// ---- aws-lc-rs in this process -----------------------------------------------------------

/// One operation straight through aws-lc-rs; returns the output's length.
type RawOp = Box<dyn Fn(&()) -> Result<usize> + Sync>;

fn measure_raw(duration: Duration, table: &mut Table) -> Result<()> {
    let side = table.sides[0].clone();
    for kind in CASES {
        let op = raw_op(kind)?;
        for threads in THREADS {
            let workers = vec![(); threads];
            sdk::measure(&workers, duration / 5, &op)?;
            let measured = sdk::measure(&workers, duration, &op)?;
            table.rows.push(Row { case: kind.name(), threads, side: side.clone(), measured });
        }
    }
    Ok(())
}

fn raw_op(kind: CaseKind) -> Result<RawOp> {
    let unspecified = |what: &'static str| move |_| anyhow!("aws-lc-rs: {what}");
    let msg = data(64);
    Ok(match kind {
        CaseKind::RsaSign => {
            let key = rsa::KeyPair::generate(rsa::KeySize::Rsa2048).map_err(unspecified("RSA-2048 key"))?;
            let rng = aws_lc_rs::rand::SystemRandom::new();
            Box::new(move |_| {
                let mut sig = vec![0; key.public_modulus_len()];
                key.sign(&signature::RSA_PKCS1_SHA256, &rng, &msg, &mut sig)
                    .map_err(|_| anyhow!("aws-lc-rs: RSA sign"))?;
                Ok(black_box(sig).len())
            })
        }
        CaseKind::EcSign => {
            let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
            let key = signature::EcdsaKeyPair::generate(alg).map_err(unspecified("P-256 key"))?;
            let rng = aws_lc_rs::rand::SystemRandom::new();
            Box::new(move |_| {
                let sig = key.sign(&rng, &msg).map_err(|_| anyhow!("aws-lc-rs: ECDSA sign"))?;
                Ok(black_box(sig).as_ref().len())
            })
        }
        CaseKind::EdSign => {
            let key = signature::Ed25519KeyPair::generate().map_err(unspecified("Ed25519 key"))?;
            Box::new(move |_| Ok(black_box(key.sign(&msg)).as_ref().len()))
        }
        CaseKind::Gcm(len) => {
            let mut bytes = [0u8; 32];
            aws_lc_rs::rand::fill(&mut bytes).map_err(unspecified("random"))?;
            // A random nonce per call, as an HSM that picks the IV does.
            let key =
                aead::RandomizedNonceKey::new(&aead::AES_256_GCM, &bytes).map_err(unspecified("AES key"))?;
            let plain = data(len);
            Box::new(move |_| {
                let mut buf = plain.clone();
                let nonce = key
                    .seal_in_place_append_tag(aead::Aad::empty(), &mut buf)
                    .map_err(|_| anyhow!("aws-lc-rs: GCM seal"))?;
                Ok(black_box(buf).len() + nonce.as_ref().len())
            })
        }
    })
}

// ---- the child: one module ---------------------------------------------------------------

/// `coffer-bench pkcs11-module --module PATH --secs S`: measures one module and prints its
/// rows for the parent (see the module documentation).
pub fn run_module(path: &Path, duration: Duration) -> Result<()> {
    let pkcs11 = Pkcs11::new(path).with_context(|| format!("loading {}", path.display()))?;
    pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)).context("C_Initialize")?;
    let info = pkcs11.get_library_info().context("C_GetInfo")?;
    let manufacturer = info.manufacturer_id().trim().to_owned();
    println!("{MODULE}\t{manufacturer}\t{}", info.library_description().trim());
    let softhsm = manufacturer.contains("SoftHSM");
    let slot = find_slot(&pkcs11, softhsm)?;
    let pin = if softhsm {
        SOFTHSM_PIN.to_owned()
    } else {
        format!("{USER_NAME}:{}", String::from_utf8_lossy(USER_PASSWORD))
    };
    let most = THREADS.iter().copied().max().unwrap_or(1);
    let sessions = (0..most)
        .map(|_| pkcs11.open_rw_session(slot).context("C_OpenSession"))
        .collect::<Result<Vec<_>>>()?;
    login_all(&sessions, &AuthPin::from(pin))?;
    let mechanisms = pkcs11.get_mechanism_list(slot).context("C_GetMechanismList")?;
    // A session is used by one thread at a time; the lock is never contended.
    let workers: Vec<Mutex<Worker>> = sessions
        .into_iter()
        .enumerate()
        .map(|(i, session)| Mutex::new(Worker { session, index: i as u8, calls: 0 }))
        .collect();
    let mut keys = Vec::new();
    let measured = measure_module(&workers, &mechanisms, duration, &mut keys);
    // The keys are removed whatever the measurement did.
    let first = lock(&workers[0])?;
    for key in keys {
        if let Err(e) = first.session.destroy_object(key) {
            println!("{NOTE}\tC_DestroyObject left a bench key: {e}");
        }
    }
    drop(first);
    measured?;
    drop(workers);
    pkcs11.finalize().context("C_Finalize")?;
    Ok(())
}

/// SoftHSM's token labelled `bench`, or any other module's first slot with a token.
fn find_slot(pkcs11: &Pkcs11, softhsm: bool) -> Result<Slot> {
    let slots = pkcs11.get_slots_with_token().context("C_GetSlotList")?;
    if !softhsm {
        return slots.first().copied().ok_or_else(|| anyhow!("the module has no slot with a token"));
    }
    for slot in slots {
        let token = pkcs11.get_token_info(slot).context("C_GetTokenInfo")?;
        if token.label().trim() == SOFTHSM_LABEL {
            return Ok(slot);
        }
    }
    bail!("SoftHSM has no token labelled {SOFTHSM_LABEL} (is SOFTHSM2_CONF the bench's?)")
}

/// Logs the user in. Login is per application in PKCS#11, so every session after the first
/// may answer `CKR_USER_ALREADY_LOGGED_IN`.
fn login_all(sessions: &[Session], pin: &AuthPin) -> Result<()> {
    for session in sessions {
        match session.login(UserType::User, Some(pin)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(e) => return Err(e).context("C_Login"),
        }
    }
    Ok(())
}

/// One session and how many calls it has made with the current case's key.
struct Worker {
    session: Session,
    index: u8,
    calls: u64,
}

impl Worker {
    /// Counts a call; true for the worker's first, which also checks its output.
    fn first_call(&mut self) -> bool {
        self.calls += 1;
        self.calls == 1
    }
}

/// A 96-bit GCM IV never used before with the key in this run: the worker's index and its
/// call count.
fn gcm_iv(index: u8, call: u64) -> [u8; 12] {
    let mut iv = [0u8; 12];
    iv[0] = index;
    iv[4..].copy_from_slice(&call.to_be_bytes());
    iv
}

/// One operation through the module on a worker's session.
type ModuleOp = Box<dyn Fn(&Mutex<Worker>) -> Result<usize> + Sync>;

fn measure_module(
    workers: &[Mutex<Worker>],
    mechanisms: &[MechanismType],
    duration: Duration,
    keys: &mut Vec<ObjectHandle>,
) -> Result<()> {
    for kind in CASES {
        let op = module_op(kind, &lock(&workers[0])?.session, mechanisms, keys)?;
        let Some(op) = op else { continue };
        // Each case has a new key: its IVs and first-call checks start again.
        for worker in workers {
            lock(worker)?.calls = 0;
        }
        check(kind, &op, &workers[0])?;
        for threads in THREADS {
            let workers = &workers[..threads];
            sdk::measure(workers, duration / 5, &op)?;
            let m = sdk::measure(workers, duration, &op)?;
            println!("{ROW}\t{}\t{threads}\t{}\t{}\t{}", kind.name(), m.ops_per_sec, m.p50_us, m.p99_us);
        }
    }
    Ok(())
}

/// Runs a case once before it is timed: the output must have the expected length, and
/// (inside the op) a signature verifies and a ciphertext decrypts.
fn check(kind: CaseKind, op: &ModuleOp, worker: &Mutex<Worker>) -> Result<()> {
    let len = op(worker).with_context(|| format!("{} (first call)", kind.name()))?;
    let expected = match kind {
        CaseKind::RsaSign => 256,
        CaseKind::EcSign | CaseKind::EdSign => 64,
        CaseKind::Gcm(len) => len + 16,
    };
    if len != expected {
        bail!("{}: the module returned {len} bytes, {expected} expected", kind.name());
    }
    Ok(())
}

fn lock(worker: &Mutex<Worker>) -> Result<std::sync::MutexGuard<'_, Worker>> {
    worker.lock().map_err(|_| anyhow!("a bench thread panicked holding a session"))
}

/// The case's operation through the module, or `None` (with a note) where the module lacks
/// the mechanism.
fn module_op(
    kind: CaseKind,
    session: &Session,
    mechanisms: &[MechanismType],
    keys: &mut Vec<ObjectHandle>,
) -> Result<Option<ModuleOp>> {
    let has = |m: MechanismType| mechanisms.contains(&m);
    let msg = data(64);
    let op: ModuleOp = match kind {
        CaseKind::RsaSign => {
            let (public, private) = rsa_pair(session, keys)?;
            sign_op(|| Mechanism::Sha256RsaPkcs, public, private, msg)
        }
        CaseKind::EcSign if has(MechanismType::ECDSA_SHA256) => {
            let (public, private) = ec_pair(session, keys, &[P256_PARAMS], Mechanism::EccKeyPairGen)?;
            sign_op(|| Mechanism::EcdsaSha256, public, private, msg)
        }
        CaseKind::EcSign if has(MechanismType::ECDSA) => {
            println!(
                "{NOTE}\tno CKM_ECDSA_SHA256: P-256 signs SHA-256 hashed in the bench process with CKM_ECDSA"
            );
            let (public, private) = ec_pair(session, keys, &[P256_PARAMS], Mechanism::EccKeyPairGen)?;
            Box::new(move |worker| {
                let hash = digest::digest(&digest::SHA256, &msg);
                let mut worker = lock(worker)?;
                sign_once(&mut worker, &Mechanism::Ecdsa, public, private, hash.as_ref())
            })
        }
        CaseKind::EdSign if has(MechanismType::EDDSA) && has(MechanismType::ECC_EDWARDS_KEY_PAIR_GEN) => {
            let params = [ED25519_OID_PARAMS, ED25519_NAME_PARAMS];
            let (public, private) = ec_pair(session, keys, &params, Mechanism::EccEdwardsKeyPairGen)?;
            sign_op(|| Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure)), public, private, msg)
        }
        CaseKind::Gcm(len) if has(MechanismType::AES_GCM) => gcm_op(aes_key(session, keys)?, len),
        _ => {
            println!("{NOTE}\t{}: not measured, the module does not list its mechanisms", kind.name());
            return Ok(None);
        }
    };
    Ok(Some(op))
}

/// Signing `msg`; the mechanism is made per call (a `Mechanism` holds raw pointers, so it
/// cannot be shared between the threads).
fn sign_op(
    mechanism: fn() -> Mechanism<'static>,
    public: ObjectHandle,
    private: ObjectHandle,
    msg: Vec<u8>,
) -> ModuleOp {
    Box::new(move |worker| {
        let mut worker = lock(worker)?;
        sign_once(&mut worker, &mechanism(), public, private, &msg)
    })
}

/// Signs; the first call of each worker also verifies the signature through the module.
fn sign_once(
    worker: &mut Worker,
    mechanism: &Mechanism,
    public: ObjectHandle,
    private: ObjectHandle,
    msg: &[u8],
) -> Result<usize> {
    let sig = worker.session.sign(mechanism, private, msg).context("C_Sign")?;
    if worker.first_call() {
        worker
            .session
            .verify(mechanism, public, msg, &sig)
            .context("C_Verify of the bench's own signature")?;
    }
    Ok(black_box(sig).len())
}

/// AES-256-GCM with a caller IV, no AAD, a 128-bit tag; the worker's first call decrypts too.
fn gcm_op(key: ObjectHandle, len: usize) -> ModuleOp {
    let plain = data(len);
    Box::new(move |worker| {
        let mut worker = lock(worker)?;
        let first = worker.first_call();
        let mut iv = gcm_iv(worker.index, worker.calls);
        let params = GcmParams::new(&mut iv, &[], 128.into()).context("GCM parameters")?;
        let sealed = worker.session.encrypt(&Mechanism::AesGcm(params), key, &plain).context("C_Encrypt")?;
        if first {
            let mut iv = gcm_iv(worker.index, worker.calls);
            let params = GcmParams::new(&mut iv, &[], 128.into()).context("GCM parameters")?;
            let opened =
                worker.session.decrypt(&Mechanism::AesGcm(params), key, &sealed).context("C_Decrypt")?;
            if opened != plain {
                bail!("AES-GCM: the module's decryption differs from the plaintext");
            }
        }
        Ok(black_box(sealed).len())
    })
}

fn labelled(mut template: Vec<Attribute>) -> Vec<Attribute> {
    template.extend([
        Attribute::Token(true),
        Attribute::Label(KEY_LABEL.to_vec()),
        Attribute::Id(vec![0xbe]),
    ]);
    template
}

fn rsa_pair(session: &Session, keys: &mut Vec<ObjectHandle>) -> Result<(ObjectHandle, ObjectHandle)> {
    let public = labelled(vec![
        Attribute::Verify(true),
        Attribute::ModulusBits(2048.into()),
        Attribute::PublicExponent(vec![1, 0, 1]),
    ]);
    let private = labelled(vec![Attribute::Sign(true), Attribute::Private(true), Attribute::Sensitive(true)]);
    let pair = session
        .generate_key_pair(&Mechanism::RsaPkcsKeyPairGen, &public, &private)
        .context("C_GenerateKeyPair RSA-2048")?;
    keys.extend([pair.0, pair.1]);
    Ok(pair)
}

/// An EC or Edwards key pair on the first of `params` (forms of one curve) the module takes.
fn ec_pair(
    session: &Session,
    keys: &mut Vec<ObjectHandle>,
    params: &[&[u8]],
    mechanism: Mechanism,
) -> Result<(ObjectHandle, ObjectHandle)> {
    let mut last = None;
    for form in params {
        let public = labelled(vec![Attribute::Verify(true), Attribute::EcParams(form.to_vec())]);
        let private =
            labelled(vec![Attribute::Sign(true), Attribute::Private(true), Attribute::Sensitive(true)]);
        match session.generate_key_pair(&mechanism, &public, &private) {
            Ok(pair) => {
                keys.extend([pair.0, pair.1]);
                return Ok(pair);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(anyhow!(
        "C_GenerateKeyPair {mechanism:?}: {}",
        last.map_or("no curve parameters".into(), |e| e.to_string())
    ))
}

fn aes_key(session: &Session, keys: &mut Vec<ObjectHandle>) -> Result<ObjectHandle> {
    let template = labelled(vec![
        Attribute::ValueLen(32.into()),
        Attribute::Encrypt(true),
        Attribute::Decrypt(true),
        Attribute::Sensitive(true),
    ]);
    let key = session.generate_key(&Mechanism::AesKeyGen, &template).context("C_GenerateKey AES-256")?;
    keys.push(key);
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_case_runs_through_aws_lc_rs() {
        for kind in CASES {
            let op = raw_op(kind).unwrap();
            let expected = match kind {
                CaseKind::RsaSign => 256,
                CaseKind::EcSign | CaseKind::EdSign => 64,
                CaseKind::Gcm(len) => len + 16 + 12,
            };
            assert_eq!(op(&()).unwrap(), expected, "{}", kind.name());
        }
    }

    #[test]
    fn gcm_ivs_differ_between_calls_and_workers() {
        let mut seen = std::collections::HashSet::new();
        for index in 0..2u8 {
            for call in [1, 2, 255, 256, 1 << 32, u64::MAX] {
                assert!(seen.insert(gcm_iv(index, call)), "IV repeated at {index}/{call}");
            }
        }
    }
}
