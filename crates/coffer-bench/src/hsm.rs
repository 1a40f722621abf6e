//! `coffer-bench hsm`: the HSM state machine and its store.
//!
//! - find by label and by id among 10,000, 100,000 and 1,000,000 token objects, against a
//!   linear scan of the same objects (what the index saves);
//! - applying key-creation commands, each committed durably to the store, against a raw redb
//!   durable insert of the same record bytes (the floor the store sits on);
//! - opening a store of N objects and rebuilding the state from it, against reading the same
//!   records from a raw redb table.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use coffer_audit::Event;
use coffer_crypto::{KeyClass, KeySpec, KeyType, Module};
use coffer_hsm::{
    Attribute, AttributeType, Change, Hsm, HsmState, Journal, JournalError, KeyFacts, Limits, Object,
    ObjectClass, ObjectHandle, Objects, Origin, Prepared, Role, SessionLimits, Template,
    new_object_attributes,
};
use coffer_store::{Batch, BlobContext, DomainKey, KeyFileSeal, RecordKey, Store, Table};
use redb::{ReadableDatabase as _, ReadableTable as _};

const OWNER: &str = "alice";

/// Runs the suite for object counts up to `max_objects`.
pub fn run(max_objects: usize) -> Result<()> {
    let module = Module::power_on();
    module.status().context("power-on self-tests")?;
    let domain = DomainKey::generate(&module)?;
    let sizes: Vec<usize> = [10_000, 100_000, 1_000_000].into_iter().filter(|n| *n <= max_objects).collect();

    println!("find among N token objects (p50 / p99 of 2,000 finds; scan = every object checked)");
    println!(
        "{:>10} {:>6} {:>10} {:>10} {:>12} {:>10}",
        "objects", "by", "p50 us", "p99 us", "scan us", "speedup"
    );
    for &n in &sizes {
        let objects = build_objects(&module, &domain, n)?;
        find_bench(&objects, n)?;
    }

    println!("\napplying key-creation commands, each committed durably (AES-256 token keys)");
    apply_bench(&module)?;

    println!("\nopening a store of N objects and rebuilding the state");
    println!(
        "{:>10} {:>12} {:>12} {:>12} {:>14} {:>7}",
        "objects", "open+read s", "rebuild s", "total s", "raw redb s", "ratio"
    );
    for &n in &sizes {
        open_bench(&module, &domain, n)?;
    }
    Ok(())
}

fn label(i: usize) -> Vec<u8> {
    format!("key-{i:08}").into_bytes()
}

fn id(i: usize) -> Vec<u8> {
    (i as u64).to_be_bytes().to_vec()
}

/// One token AES key object as the HSM would hold it, with a sealed 32-byte secret.
fn object(module: &Module, domain: &DomainKey, i: usize) -> Result<Object> {
    let handle = ObjectHandle(i as u64 + 1);
    let template = Template::new()
        .with(Attribute::bool(AttributeType::Token, true))
        .with(Attribute::bytes(AttributeType::Label, label(i)))
        .with(Attribute::bytes(AttributeType::Id, id(i)))
        .with(Attribute::bool(AttributeType::Encrypt, true));
    let facts = KeyFacts { value_len: Some(32), check_value: Some(vec![1, 2, 3]), ..KeyFacts::default() };
    let attrs = new_object_attributes(
        ObjectClass::SecretKey,
        Some(KeyType::Aes),
        &template,
        Origin::Generated,
        &facts,
        false,
    )?;
    let ctx =
        BlobContext { object_id: handle.0, class: KeyClass::Secret, key_type: KeyType::Aes, owner: OWNER };
    let sealed = domain.seal(module, &ctx, &[0x5a; 32])?;
    Ok(Object::new(handle, OWNER, attrs)?.with_sealed_secret(sealed))
}

fn build_objects(module: &Module, domain: &DomainKey, n: usize) -> Result<Objects> {
    let list = (0..n).map(|i| object(module, domain, i)).collect::<Result<Vec<_>>>()?;
    Ok(Objects::from_objects(list, n.max(1_000_000))?)
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

fn find_bench(objects: &Objects, n: usize) -> Result<()> {
    for (by, attr, key) in
        [("label", AttributeType::Label, label as fn(usize) -> Vec<u8>), ("id", AttributeType::Id, id)]
    {
        // A fixed stride walks the whole table without a random number generator.
        let mut times = Vec::with_capacity(2_000);
        for k in 0..2_000usize {
            let i = (k * 7_919) % n;
            let template = Template::new().with(Attribute::bytes(attr, key(i)));
            let start = Instant::now();
            let found = objects.find(&template, OWNER);
            times.push(start.elapsed());
            if found != [ObjectHandle(i as u64 + 1)] {
                return Err(anyhow!("find by {by} {i} returned {found:?}"));
            }
        }
        times.sort();
        let template = Template::new().with(Attribute::bytes(attr, key(n / 2)));
        let start = Instant::now();
        let scans = 5;
        for _ in 0..scans {
            let hits =
                objects.iter().filter(|o| o.is_visible_to(OWNER) && o.attrs().matches(&template)).count();
            if hits != 1 {
                return Err(anyhow!("scan by {by} found {hits}"));
            }
        }
        let scan_us = start.elapsed().as_secs_f64() * 1e6 / scans as f64;
        let p50 = percentile(&times, 0.5);
        println!(
            "{n:>10} {by:>6} {p50:>10.2} {:>10.2} {scan_us:>12.0} {:>9.0}x",
            percentile(&times, 0.99),
            scan_us / p50
        );
    }
    Ok(())
}

/// Commits each command's record changes to the store as one durable batch.
struct StoreJournal<'a>(&'a Store);

impl Journal for StoreJournal<'_> {
    fn record(&mut self, _events: &[Event], changes: &[Change]) -> Result<(), JournalError> {
        if changes.is_empty() {
            return Ok(());
        }
        self.0.commit(&Batch::from_ops(changes.iter().cloned())).map_err(|e| JournalError(e.to_string()))
    }
}

fn apply_bench(module: &Module) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let seal = KeyFileSeal::create(dir.path().join("seal.key"), module)?;
    let (store, domain) = Store::create(dir.path().join("data"), &seal, module)?;
    let limits = Limits { pbkdf2_iterations: 1_000, ..Limits::default() };
    let mut hsm = Hsm::new(HsmState::new(limits)?, module.clone(), domain, SessionLimits::default());
    let mut journal = StoreJournal(&store);
    let user = activate_with_crypto_user(&mut hsm, &mut journal)?;

    let count = 500;
    let template = Template::new().with(Attribute::bool(AttributeType::Token, true));
    let prepared = (0..count)
        .map(|_| hsm.prepare_generate_key(user, &KeySpec::Aes { len_bytes: 32 }, &template))
        .collect::<Result<Vec<_>, _>>()?;
    let record_len = match &prepared[0] {
        Prepared::Command(cmd) => cmd.to_bytes()?.len(),
        Prepared::Local(_) | Prepared::Here(_) => return Err(anyhow!("a token key must be a command")),
    };
    let start = Instant::now();
    let mut times = Vec::with_capacity(count);
    for p in prepared {
        let t = Instant::now();
        hsm.submit(p, &mut journal)?;
        times.push(t.elapsed());
    }
    let coffer_rate = count as f64 / start.elapsed().as_secs_f64();
    times.sort();
    let raw_rate = raw_redb_inserts(dir.path(), count, record_len)?;
    println!(
        "  coffer: {coffer_rate:.0} commands/s (p50 {:.2} ms, p99 {:.2} ms); raw redb durable insert of {record_len} B: {raw_rate:.0}/s; ratio {:.3}",
        percentile(&times, 0.5) / 1e3,
        percentile(&times, 0.99) / 1e3,
        coffer_rate / raw_rate
    );
    Ok(())
}

/// Initialises and activates the cluster and returns a session logged in as a crypto-user.
fn activate_with_crypto_user(hsm: &mut Hsm, journal: &mut dyn Journal) -> Result<u64> {
    const PEM: &str = "-----BEGIN CERTIFICATE-----\nQkVOQ0g=\n-----END CERTIFICATE-----\n";
    let p = hsm.prepare_initialize(PEM, PEM)?;
    hsm.submit(p, journal)?;
    let admin = login(hsm, journal, "admin", b"password")?;
    let p = hsm.prepare_change_password(admin, "admin", b"bench-admin-pw")?;
    hsm.submit(p, journal)?;
    let p = hsm.prepare_create_user(admin, "alice", Role::CryptoUser, b"bench-user-pw")?;
    hsm.submit(p, journal)?;
    login(hsm, journal, "alice", b"bench-user-pw")
}

fn login(hsm: &mut Hsm, journal: &mut dyn Journal, name: &str, password: &[u8]) -> Result<u64> {
    let session = hsm.open_session(1)?;
    let p = hsm.prepare_login(session, name, password)?;
    hsm.submit(p, journal)?;
    Ok(session)
}

const RAW_TABLE: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("objects");

/// Durable single-record inserts straight into redb: the store's floor.
fn raw_redb_inserts(dir: &std::path::Path, count: usize, len: usize) -> Result<f64> {
    let db = redb::Database::create(dir.join("raw-inserts.redb"))?;
    let value = vec![0xa5u8; len];
    let start = Instant::now();
    for i in 0..count as u64 {
        let tx = db.begin_write()?;
        tx.open_table(RAW_TABLE)?.insert(i, value.as_slice())?;
        tx.commit()?;
    }
    Ok(count as f64 / start.elapsed().as_secs_f64())
}

fn open_bench(module: &Module, domain: &DomainKey, n: usize) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let seal = KeyFileSeal::create(dir.path().join("seal.key"), module)?;
    let data = dir.path().join("data");
    let raw_path = dir.path().join("raw.redb");
    {
        let (store, _) = Store::create(&data, &seal, module)?;
        let raw = redb::Database::create(&raw_path)?;
        for chunk_start in (0..n).step_by(10_000) {
            let mut batch = Batch::new();
            let tx = raw.begin_write()?;
            {
                let mut table = tx.open_table(RAW_TABLE)?;
                for i in chunk_start..(chunk_start + 10_000).min(n) {
                    let bytes = postcard::to_allocvec(&object(module, domain, i)?)?;
                    table.insert(i as u64 + 1, bytes.as_slice())?;
                    batch.put(RecordKey::Object(i as u64 + 1), bytes);
                }
            }
            tx.commit()?;
            store.commit(&batch)?;
        }
    }
    let start = Instant::now();
    let (store, _) = Store::open(&data, &seal, module)?;
    let split = |table| -> Result<Vec<(RecordKey, Vec<u8>)>> { Ok(store.iter(table)?) };
    let objects: Vec<(u64, Vec<u8>)> = split(Table::Objects)?
        .into_iter()
        .filter_map(|(k, v)| if let RecordKey::Object(h) = k { Some((h, v)) } else { None })
        .collect();
    let read = start.elapsed();
    let state = HsmState::from_records(&[], &objects, &[], Limits::default())?;
    let total = start.elapsed();
    if state.objects().len() != n {
        return Err(anyhow!("rebuilt {} objects of {n}", state.objects().len()));
    }
    let start = Instant::now();
    let raw = redb::Database::open(&raw_path)?;
    let tx = raw.begin_read()?;
    let table = tx.open_table(RAW_TABLE)?;
    let mut raw_rows = Vec::with_capacity(n);
    for row in table.iter()? {
        let (k, v) = row?;
        raw_rows.push((k.value(), v.value().to_vec()));
    }
    let raw_time = start.elapsed();
    println!(
        "{n:>10} {:>12.3} {:>12.3} {:>12.3} {:>14.3} {:>7.3}",
        read.as_secs_f64(),
        (total - read).as_secs_f64(),
        total.as_secs_f64(),
        raw_time.as_secs_f64(),
        raw_time.as_secs_f64() / read.as_secs_f64()
    );
    Ok(())
}
