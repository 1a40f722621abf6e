//! Crash safety: a child process commits batches in a loop and is killed with SIGKILL at
//! random moments; after each kill the store must open, hold exactly one batch's worth of
//! values (all records agree), and hold every batch the child saw committed.
//!
//! The child is this test binary itself, run again with `CRASH_WRITER_DIR` set and the
//! `crash_writer_child` test selected. SIGKILL ends the process, not the machine: the page
//! cache survives, so this proves the atomicity of commits and the recovery of redb's file
//! after a torn process, not durability across power loss (that rests on fsync, which
//! `Durability::Immediate` performs).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use coffer_crypto::Module;
use coffer_store::{Batch, KeyFileSeal, RecordKey, Store, Table};

const DIR_VAR: &str = "CRASH_WRITER_DIR";
const KEY_VAR: &str = "CRASH_WRITER_KEY";
/// Records each batch writes, beside the meta counter.
const RECORDS: u64 = 6;
const LAST_COMMITTED: &str = "last_committed";
const READY: &str = "crash-writer-ready";
const COMMITTED: &str = "crash-writer-committed ";
const CYCLES: usize = 30;
/// Fixed seed: the kill delays are the same on every run (the scheduling is not).
const SEED: u64 = 0x00C0_FFEE_5EED;

/// splitmix64: a tiny deterministic generator for the kill delays.
fn next_random(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn counter_of(bytes: &[u8]) -> u64 {
    u64::from_be_bytes(bytes.try_into().expect("an 8-byte counter"))
}

/// One batch: every record and the meta counter get the value `n`, so a partly applied batch
/// would show records that disagree.
fn batch_for(n: u64) -> Batch {
    let mut batch = Batch::new();
    for id in 0..RECORDS {
        let mut value = n.to_be_bytes().to_vec();
        // Varying lengths make redb move records between pages, not just overwrite in place.
        value.resize(8 + (n as usize * 37 + id as usize * 101) % 700, id as u8);
        batch.put(RecordKey::Object(id), value);
    }
    batch.put(RecordKey::User(format!("user-{}", n % 3)), n.to_be_bytes().to_vec());
    batch.put(RecordKey::Meta(LAST_COMMITTED.into()), n.to_be_bytes().to_vec());
    batch
}

/// The stored counter, after checking that every record agrees with it.
fn check_consistent(store: &Store) -> u64 {
    let stored = store.get(&RecordKey::Meta(LAST_COMMITTED.into())).unwrap().map_or(0, |v| counter_of(&v));
    let objects = store.iter(Table::Objects).unwrap();
    if stored == 0 {
        assert!(objects.is_empty(), "records without a committed counter");
        return 0;
    }
    assert_eq!(objects.len() as u64, RECORDS);
    for (key, value) in objects {
        assert_eq!(counter_of(&value[..8]), stored, "{key:?} belongs to another batch than the counter");
        assert_eq!(
            value,
            batch_for(stored)
                .ops()
                .iter()
                .find_map(|op| match op {
                    coffer_store::BatchOp::Put(k, v) if *k == key => Some(v.clone()),
                    _ => None,
                })
                .unwrap()
        );
    }
    stored
}

/// The writer: opens the store and commits batch after batch, printing each counter once its
/// commit has returned. Runs until killed (or a time limit, so it never outlives its parent).
fn run_writer(dir: &Path, key_file: &Path, max_time: Duration) {
    let module = Module::power_on();
    let (store, _) = Store::open(dir, &KeyFileSeal::open(key_file).unwrap(), &module).unwrap();
    let mut n = check_consistent(&store);
    let mut out = std::io::stdout().lock();
    // libtest writes its own lines ("running 1 test", "test … ") to the same stdout, without
    // a newline before ours: start on a fresh line and use unmistakable markers.
    writeln!(out, "\n{READY}").unwrap();
    out.flush().unwrap();
    let start = Instant::now();
    while start.elapsed() < max_time {
        n += 1;
        store.commit(&batch_for(n)).unwrap();
        writeln!(out, "{COMMITTED}{n}").unwrap();
        out.flush().unwrap();
    }
}

/// The child's entry point. Ignored in a normal run; the parent selects it explicitly. Run by
/// hand (no env vars) it writes a few seconds' worth of batches into a temp store and checks it.
#[test]
#[ignore = "the child process of crash_safety_under_sigkill; it selects this test itself"]
fn crash_writer_child() {
    match (std::env::var_os(DIR_VAR), std::env::var_os(KEY_VAR)) {
        (Some(dir), Some(key)) => run_writer(Path::new(&dir), Path::new(&key), Duration::from_secs(60)),
        _ => {
            let tmp = tempfile::tempdir().unwrap();
            let (dir, key) = new_store(tmp.path());
            run_writer(&dir, &key, Duration::from_millis(500));
            let module = Module::power_on();
            let (store, _) = Store::open(&dir, &KeyFileSeal::open(&key).unwrap(), &module).unwrap();
            assert!(check_consistent(&store) > 0);
        }
    }
}

fn new_store(tmp: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let module = Module::power_on();
    let key = tmp.join("seal.key");
    let dir = tmp.join("data");
    let seal = KeyFileSeal::create(&key, &module).unwrap();
    drop(Store::create(&dir, &seal, &module).unwrap());
    (dir, key)
}

/// Runs the child until `delay` after it reports ready, kills it, and returns the last counter
/// it printed (0 if none).
fn run_and_kill(dir: &Path, key: &Path, delay: Duration) -> u64 {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["crash_writer_child", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(DIR_VAR, dir)
        .env(KEY_VAR, key)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let line = rx.recv_timeout(deadline.saturating_duration_since(Instant::now()));
        match line {
            Ok(line) if line == READY => break,
            Ok(_) => continue,
            Err(e) => panic!("the writer did not report ready: {e}"),
        }
    }
    std::thread::sleep(delay);
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    reader.join().unwrap();
    // Only complete lines count: a number is printed after its commit returned.
    rx.try_iter()
        .filter_map(|line| line.strip_prefix(COMMITTED).and_then(|n| n.trim().parse::<u64>().ok()))
        .max()
        .unwrap_or(0)
}

#[test]
fn crash_safety_under_sigkill() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, key) = new_store(tmp.path());
    let module = Module::power_on();
    let mut rng = SEED;
    let mut previous = 0;
    let mut killed_mid_run = 0;
    for cycle in 0..CYCLES {
        let delay = Duration::from_millis(5 + next_random(&mut rng) % 56);
        let printed = run_and_kill(&dir, &key, delay);
        let (store, _) = Store::open(&dir, &KeyFileSeal::open(&key).unwrap(), &module)
            .unwrap_or_else(|e| panic!("cycle {cycle}: the store does not open after a kill: {e}"));
        let stored = check_consistent(&store);
        assert!(
            printed <= stored,
            "cycle {cycle}: batch {printed} was reported committed but {stored} is stored"
        );
        assert!(
            stored >= previous,
            "cycle {cycle}: the stored counter went back from {previous} to {stored}"
        );
        eprintln!("cycle {cycle}: killed after {delay:?}; printed {printed}, stored {stored}");
        if stored > previous {
            killed_mid_run += 1;
        }
        previous = stored;
    }
    // The test means something only if the children did commit between kills.
    assert!(killed_mid_run >= CYCLES / 2, "only {killed_mid_run} of {CYCLES} cycles committed anything");
}
