//! `coffer-bench cluster`: what replication costs, measured beside a one-node cluster in the
//! same run.
//!
//! Two clusters of real nodes (the `coffer-node` library) run in this process on loopback: one
//! node alone, and three nodes (the first founds, two are added by AddHsm, so cloning and
//! catch-up run as they do for an operator). Measured through the SDK over TLS 1.3:
//!
//! - **key creation** (AES-256 token keys, one client thread): a write is acknowledged once a
//!   majority has committed it (one fsynced raft log entry and one fsynced store batch per
//!   node): rate, p50 and p99 on each cluster, and the three-node rate over the one-node rate;
//! - **signing** (ECDSA P-256, 2 client threads): sessions spread over the nodes, rate on
//!   three nodes over the rate on one;
//! - **catch-up**: the three-node cluster is filled to each size in `--catch-up` (token keys),
//!   a fourth node is added, and two times are printed: until AddHsm returns (clone, learner
//!   replication from the log or a snapshot, promotion to voter) and until the new node has
//!   applied every key (it counts them in GetClusterInfo); the node is then removed again.
//!
//! All nodes and client threads share this machine's cores, so the three-node figures include
//! the work of three nodes on the same cores: a floor for a cluster on separate machines.

use std::sync::Barrier;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use coffer_client::{ClientConfig, blocking, v1};
use coffer_crypto::Module;
use coffer_hsm::AttributeType;

use crate::hsm::percentile;
use crate::sdk::{ADMIN_PASSWORD, LocalNode, USER_NAME, USER_PASSWORD, anchored_config, bring_up, template};

/// Client threads of the signing case.
const SIGNING_THREADS: usize = 2;
/// Client threads that fill the cluster with keys before a catch-up is timed.
const FILL_THREADS: usize = 2;

/// One cluster of local nodes, with the client config that names them all.
struct Cluster {
    nodes: Vec<LocalNode>,
    config: ClientConfig,
}

impl Cluster {
    /// `count` nodes: the first initialised and activated with the crypto-user, the others
    /// added to it by cloning.
    fn start(count: usize, module: &Module) -> Result<Cluster> {
        let first = LocalNode::start_named("node-1", "")?;
        let client = bring_up(&first, module)?;
        let mut cluster = Cluster { config: anchored_config(&first), nodes: vec![first] };
        for i in 1..count {
            cluster.add(&client, &format!("node-{}", i + 1), 0)?;
        }
        Ok(cluster)
    }

    /// Starts a joining node and adds it through the first node; returns how long AddHsm took
    /// and how long until the new node held all `objects` token objects (applied, not only
    /// replicated: it serves them from then on).
    fn add(
        &mut self,
        client: &blocking::Client,
        node_id: &str,
        objects: u64,
    ) -> Result<(Duration, Duration)> {
        let node = LocalNode::start_named(node_id, "join = true")?;
        let admin = admin_session(client)?;
        let request = v1::AddHsmRequest {
            session: Vec::new(),
            address: node.running.local_addr().to_string(),
            fingerprint: node.running.node().bootstrap_fingerprint().to_owned(),
        };
        let start = Instant::now();
        let added = admin.add_hsm(request).with_context(|| format!("adding {node_id}"));
        let took = start.elapsed();
        admin.close()?;
        added?;
        let mut config = self.config.clone();
        config.endpoints = vec![node.running.local_addr().to_string()];
        let new = blocking::Client::connect(&config)?;
        let deadline = Instant::now() + Duration::from_secs(600);
        while new.cluster_info()?.token_objects < objects {
            if Instant::now() > deadline {
                return Err(anyhow!("{node_id} did not catch up within 600 s"));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let served = start.elapsed();
        self.config.endpoints.push(node.running.local_addr().to_string());
        self.nodes.push(node);
        Ok((took, served))
    }

    /// Removes the last node from the group and stops it.
    fn remove_last(&mut self, client: &blocking::Client) -> Result<()> {
        let node = self.nodes.pop().ok_or_else(|| anyhow!("no node to remove"))?;
        self.config.endpoints.pop();
        let admin = admin_session(client)?;
        let raft_id = node.running.node().keys().raft_id;
        let removed = admin.delete_hsm(v1::DeleteHsmRequest { session: Vec::new(), raft_id });
        admin.close()?;
        removed.context("removing the added node")?;
        node.stop()
    }

    fn stop(self) -> Result<()> {
        let mut result = Ok(());
        for node in self.nodes.into_iter().rev() {
            result = result.and(node.stop());
        }
        result
    }
}

fn admin_session(client: &blocking::Client) -> Result<blocking::Session> {
    // Any member takes a membership change (a follower hands it to the leader); the first
    // node is always a member here.
    let first = client.for_endpoint(&client.endpoints()[0])?;
    let session = first.open_session()?;
    session.login_as("admin", v1::Role::Admin, ADMIN_PASSWORD).context("admin login")?;
    Ok(session)
}

fn user_session(client: &blocking::Client) -> Result<blocking::Session> {
    let session = client.open_session()?;
    session.login_as(USER_NAME, v1::Role::CryptoUser, USER_PASSWORD).context("crypto-user login")?;
    Ok(session)
}

fn aes_key(session: &blocking::Session) -> Result<()> {
    session.generate_key(v1::GenerateKeyRequest {
        session: Vec::new(),
        key_type: v1::KeyType::Aes as i32,
        length_bytes: 32,
        template: template(&[(AttributeType::Token, true), (AttributeType::Encrypt, true)]),
    })?;
    Ok(())
}

/// Rate (per second), p50 and p99 (µs) of `latencies` over `elapsed`.
struct Figures {
    rate: f64,
    p50: f64,
    p99: f64,
}

fn figures(mut latencies: Vec<Duration>, elapsed: Duration) -> Figures {
    latencies.sort_unstable();
    if latencies.is_empty() {
        return Figures { rate: 0.0, p50: 0.0, p99: 0.0 };
    }
    Figures {
        rate: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: percentile(&latencies, 0.5),
        p99: percentile(&latencies, 0.99),
    }
}

/// Creates keys one after another for `duration` on one session.
fn key_creation(client: &blocking::Client, duration: Duration) -> Result<Figures> {
    let session = user_session(client)?;
    let mut latencies = Vec::new();
    let start = Instant::now();
    while start.elapsed() < duration {
        let t = Instant::now();
        aes_key(&session)?;
        latencies.push(t.elapsed());
    }
    let elapsed = start.elapsed();
    session.close()?;
    Ok(figures(latencies, elapsed))
}

/// ECDSA P-256 signatures with `SIGNING_THREADS` threads, one session each (spread over the
/// nodes by the SDK), for `duration`.
fn signing(client: &blocking::Client, duration: Duration) -> Result<Figures> {
    let sessions = (0..SIGNING_THREADS).map(|_| user_session(client)).collect::<Result<Vec<_>>>()?;
    let pair = sessions[0].generate_key_pair(v1::GenerateKeyPairRequest {
        session: Vec::new(),
        key_type: v1::KeyType::Ec as i32,
        modulus_bits: 0,
        curve: v1::EcCurve::P256 as i32,
        public_template: template(&[(AttributeType::Token, true), (AttributeType::Verify, true)]),
        private_template: template(&[(AttributeType::Token, true), (AttributeType::Sign, true)]),
    })?;
    // The key must be on every node before the clock starts (followers apply a moment later).
    for session in &sessions {
        wait_for_key(session, pair.private_handle)?;
    }
    let mechanism = Some(v1::SignMechanism {
        mechanism: Some(v1::sign_mechanism::Mechanism::EcdsaSha(v1::HashAlg::Sha256 as i32)),
    });
    let barrier = Barrier::new(SIGNING_THREADS);
    let start = Instant::now();
    let per_thread = std::thread::scope(|scope| {
        let handles: Vec<_> = sessions
            .iter()
            .map(|session| {
                let barrier = &barrier;
                scope.spawn(move || -> Result<Vec<Duration>> {
                    barrier.wait();
                    let mut latencies = Vec::new();
                    while start.elapsed() < duration {
                        let request = v1::SignRequest {
                            session: Vec::new(),
                            key: pair.private_handle,
                            mechanism,
                            data: b"coffer-bench cluster".to_vec(),
                        };
                        let t = Instant::now();
                        session.sign(request)?;
                        latencies.push(t.elapsed());
                    }
                    Ok(latencies)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| anyhow!("a signing thread panicked"))?)
            .collect::<Result<Vec<_>>>()
    })?;
    let elapsed = start.elapsed();
    for session in sessions {
        session.close()?;
    }
    Ok(figures(per_thread.into_iter().flatten().collect(), elapsed))
}

fn wait_for_key(session: &blocking::Session, handle: u64) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let request = v1::GetAttributesRequest {
            session: Vec::new(),
            handle,
            types: vec![AttributeType::Label.code()],
        };
        if session.get_attributes(request).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(anyhow!("key {handle} did not reach the node of session {}", session.endpoint()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Creates token keys with `FILL_THREADS` threads until the cluster holds `total`.
fn fill(client: &blocking::Client, have: usize, total: usize) -> Result<()> {
    let missing = total.saturating_sub(have);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..FILL_THREADS)
            .map(|t| {
                let share = missing / FILL_THREADS + usize::from(t < missing % FILL_THREADS);
                scope.spawn(move || -> Result<()> {
                    let session = user_session(client)?;
                    for _ in 0..share {
                        aes_key(&session)?;
                    }
                    session.close()?;
                    Ok(())
                })
            })
            .collect();
        handles.into_iter().try_for_each(|h| h.join().map_err(|_| anyhow!("a fill thread panicked"))?)
    })
}

/// Runs the suite: `duration` per measured case; catch-up at each size of `catch_up`.
pub fn run(duration: Duration, catch_up: &[usize]) -> Result<()> {
    let module = Module::power_on();
    module.status().context("power-on self-tests")?;
    if cfg!(debug_assertions) {
        println!("note: debug build; run with --release for meaningful figures");
    }
    let one = Cluster::start(1, &module)?;
    let three = Cluster::start(3, &module);
    let three = match three {
        Ok(three) => three,
        Err(e) => {
            one.stop()?;
            return Err(e);
        }
    };
    let measured = measure(&one, three, duration, catch_up);
    let stopped = one.stop();
    measured.and(stopped)
}

fn measure(one: &Cluster, mut three: Cluster, duration: Duration, catch_up: &[usize]) -> Result<()> {
    let one_client = blocking::Client::connect(&one.config)?;
    let three_client = blocking::Client::connect(&three.config)?;
    println!("nodes in this process on loopback (TLS 1.3, dev CA); {} ms per case\n", duration.as_millis());
    println!("{:<34} {:>10} {:>10} {:>10} {:>8}", "case", "ops/s", "p50 µs", "p99 µs", "3 / 1");
    let row = |name: &str, f: &Figures, ratio: Option<f64>| {
        let ratio = ratio.map_or_else(String::new, |r| format!("{r:.2}"));
        println!("{name:<34} {:>10.0} {:>10.0} {:>10.0} {ratio:>8}", f.rate, f.p50, f.p99);
    };
    let created_one = key_creation(&one_client, duration)?;
    let created_three = key_creation(&three_client, duration)?;
    row("create AES-256 key, 1 node", &created_one, None);
    row("create AES-256 key, 3 nodes", &created_three, Some(created_three.rate / created_one.rate));
    let signed_one = signing(&one_client, duration)?;
    let signed_three = signing(&three_client, duration)?;
    row(&format!("sign P-256, {SIGNING_THREADS} threads, 1 node"), &signed_one, None);
    row(
        &format!("sign P-256, {SIGNING_THREADS} threads, 3 nodes"),
        &signed_three,
        Some(signed_three.rate / signed_one.rate),
    );

    println!(
        "\n{:<26} {:>10} {:>12} {:>14}",
        "catch-up of a fourth node", "keys", "AddHsm s", "all served s"
    );
    let mut have = three_client.cluster_info()?.token_objects as usize;
    for &total in catch_up {
        fill(&three_client, have, total)?;
        have = three_client.cluster_info()?.token_objects as usize;
        let (took, served) = three.add(&three_client, "node-4", have as u64)?;
        println!("{:<26} {have:>10} {:>12.2} {:>14.2}", "", took.as_secs_f64(), served.as_secs_f64());
        three.remove_last(&three_client)?;
    }
    drop((one_client, three_client));
    three.stop()
}
