//! The local cluster's nodes while `coffer up` runs: bringing them up, adding the new ones,
//! and replacing one that stays down (the supervisor CloudHSM's control plane is).
//!
//! A node whose process has exited is *down*. Once it has been down for `--replace-after`
//! seconds (in a cluster of three or more, which keeps its quorum without it), the supervisor
//! starts a replacement under a new node id, adds it (it is cloned and catches
//! up), removes the dead member with DeleteHsm, and rewrites `client.toml` and `members`. The
//! dead node's directory is left as it was; its data is useless elsewhere without its seal key.
//! AddHsm is asked up to three times (one cut short is finished by asking again); a
//! replacement still not added is stopped, taken out of the group if it got in as a learner,
//! and the next attempt starts another.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use coffer_client::Client;
use coffer_proto::v1::{AddHsmRequest, DeleteHsmRequest, Role};
use zeroize::Zeroizing;

use super::{
    Layout, NodeProcess, Summary, anchored_config, bring_up_first, node_config_of, node_id, node_ports,
    one_node_config, write_client_config, write_members,
};
use crate::args::UpArgs;
use crate::commands::Context;
use crate::error::{CliError, Result};
use crate::password;

/// How often the supervisor looks at the nodes.
const TICK: Duration = Duration::from_millis(500);
/// How many times a replacement is asked to be added before it is given up, and the pause
/// between attempts.
const ADD_ATTEMPTS: usize = 3;
const ADD_PAUSE: Duration = Duration::from_secs(2);
/// The fewest nodes with which one may be replaced: the others must keep a quorum.
const MIN_NODES_TO_REPLACE: usize = 3;

/// One node `coffer up` started.
#[derive(Debug)]
struct Running {
    index: usize,
    endpoint: String,
    process: NodeProcess,
    raft_id: u64,
    down_since: Option<Instant>,
}

/// The nodes of one `coffer up` run.
#[derive(Debug)]
pub(super) struct Up<'a> {
    layout: Layout,
    args: &'a UpArgs,
    cofferd: PathBuf,
    fast_kdf: bool,
    nodes: Vec<Running>,
}

impl<'a> Up<'a> {
    pub(super) fn new(layout: Layout, args: &'a UpArgs, cofferd: PathBuf) -> Up<'a> {
        let fast_kdf = std::env::var(super::FAST_KDF_ENV).is_ok_and(|v| v == "1");
        Up { layout, args, cofferd, fast_kdf, nodes: Vec::new() }
    }

    /// Writes node `index`'s configuration and starts it (without waiting for it).
    async fn spawn(&mut self, index: usize) -> Result<&mut Running> {
        let ports = node_ports(self.args, index)?;
        let path = self.layout.node_config_of(index);
        std::fs::write(&path, node_config_of(&self.layout, index, &ports, self.fast_kdf))
            .map_err(|e| CliError::io("write", &path, e))?;
        let process = NodeProcess::start(&self.cofferd, &path).await?;
        let endpoint = ports.endpoint();
        self.nodes.push(Running { index, endpoint, process, raft_id: 0, down_since: None });
        self.nodes.last_mut().ok_or_else(|| CliError::Up("no node".into()))
    }

    /// Starts node `index` and waits until it is ready; returns its bootstrap fingerprint
    /// if it still waits to be cloned into the cluster.
    async fn start_node(&mut self, index: usize) -> Result<Option<String>> {
        let node = self.spawn(index).await?;
        Ok(node.process.wait_ready().await?.fingerprint)
    }

    /// Brings up the nodes `indexes` (the first founds or restarts the cluster), adds the
    /// ones not in the cluster yet, and records the members and the client configuration.
    pub(super) async fn bring_up(&mut self, indexes: &[usize]) -> Result<Summary> {
        let (&first, rest) = indexes.split_first().ok_or_else(|| CliError::Up("no nodes to run".into()))?;
        let endpoint = self.spawn(first).await?.endpoint.clone();
        let layout = self.layout.clone();
        let args = self.args;
        let node = self.nodes.last_mut().ok_or_else(|| CliError::Up("no node".into()))?;
        let mut summary = bring_up_first(&layout, args, &mut node.process, endpoint).await?;
        for &index in rest {
            let fingerprint = self.start_node(index).await?;
            let endpoint = self.nodes.last().map(|n| n.endpoint.clone()).unwrap_or_default();
            if let Some(fingerprint) = fingerprint {
                self.add(&summary, &endpoint, &fingerprint).await?;
            }
            summary.endpoints.push(endpoint);
        }
        for node in &mut self.nodes {
            node.raft_id = raft_id(&self.layout, &node.endpoint).await?;
        }
        write_client_config(&self.layout, &summary.endpoints)?;
        write_members(&self.layout, indexes)?;
        Ok(summary)
    }

    /// Stops every node, the last started first.
    pub(super) async fn stop_all(&mut self) {
        for node in self.nodes.iter_mut().rev() {
            node.process.stop().await;
        }
    }

    /// Runs until Ctrl-C or SIGTERM, replacing nodes that stay down. Without replacement
    /// (`--replace-after 0`, or too few nodes to keep a quorum), a node exiting ends the run.
    pub(super) async fn supervise(&mut self, mut summary: Summary) -> Result<&'static str> {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| CliError::Up(format!("cannot watch for SIGTERM: {e}")))?;
        let grace = Some(Duration::from_secs(self.args.replace_after))
            .filter(|g| !g.is_zero() && self.nodes.len() >= MIN_NODES_TO_REPLACE);
        let mut tick = tokio::time::interval(TICK);
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return Ok("Ctrl-C"),
                _ = term.recv() => return Ok("SIGTERM"),
                _ = tick.tick() => {}
            }
            for node in &mut self.nodes {
                if node.down_since.is_none()
                    && let Ok(Some(status)) = node.process.child.try_wait()
                {
                    let id = node_id(node.index);
                    if grace.is_none() {
                        return Err(CliError::Up(format!(
                            "cofferd {id} exited on its own ({status}); see its output above"
                        )));
                    }
                    eprintln!("coffer up: cofferd {id} exited ({status}); it is replaced if it stays down");
                    node.down_since = Some(Instant::now());
                }
            }
            let Some(grace) = grace else { continue };
            let due = self.nodes.iter().position(|n| n.down_since.is_some_and(|t| t.elapsed() >= grace));
            if let Some(dead) = due
                && let Err(e) = self.replace(dead, &mut summary).await
            {
                eprintln!(
                    "coffer up: replacing {} failed, trying again later: {e}",
                    node_id(self.nodes[dead].index)
                );
                self.nodes[dead].down_since = Some(Instant::now());
            }
        }
    }

    /// Replaces the dead node at `dead` in `self.nodes` with a new one.
    async fn replace(&mut self, dead: usize, summary: &mut Summary) -> Result<()> {
        let (dead_index, dead_raft_id, dead_endpoint) =
            (self.nodes[dead].index, self.nodes[dead].raft_id, self.nodes[dead].endpoint.clone());
        // A fresh id: past every node this run knows and every directory an earlier one left.
        let mut index = self.nodes.iter().map(|n| n.index).max().unwrap_or(0) + 1;
        while self.layout.data_dir_of(index).exists() {
            index += 1;
        }
        let fingerprint = self
            .start_node(index)
            .await?
            .ok_or_else(|| CliError::Up(format!("{} did not start waiting to be cloned", node_id(index))))?;
        let endpoint = self.nodes.last().map(|n| n.endpoint.clone()).unwrap_or_default();
        // AddHsm cut short after the clone is finished by asking again.
        let mut added = self.add(summary, &endpoint, &fingerprint).await;
        for _ in 1..ADD_ATTEMPTS {
            if added.is_ok() {
                break;
            }
            tokio::time::sleep(ADD_PAUSE).await;
            added = self.add(summary, &endpoint, &fingerprint).await;
        }
        if let Err(e) = added {
            // Not a voter: stop it and, if an attempt left it a learner, take it out of the
            // group (a dead learner would count as unreachable for ever), so that the next
            // attempt starts clean. Only a cloned node answers under the cluster's trust.
            let learner = raft_id(&self.layout, &endpoint).await.ok();
            if let Some(mut new) = self.nodes.pop() {
                new.process.stop().await;
            }
            if let Some(id) = learner
                && let Err(left) = self.delete(summary, id).await
            {
                eprintln!(
                    "coffer up: {} could not be removed from the cluster, where it may be a learner: {left}",
                    node_id(index)
                );
            }
            return Err(e);
        }
        self.delete(summary, dead_raft_id).await?;
        let new_raft_id = raft_id(&self.layout, &endpoint).await?;
        if let Some(node) = self.nodes.last_mut() {
            node.raft_id = new_raft_id;
        }
        self.nodes.remove(dead);
        for e in &mut summary.endpoints {
            if *e == dead_endpoint {
                e.clone_from(&endpoint);
            }
        }
        write_client_config(&self.layout, &summary.endpoints)?;
        write_members(&self.layout, &self.nodes.iter().map(|n| n.index).collect::<Vec<_>>())?;
        println!(
            "coffer up: {} stayed down for {}s; {} (raft id {new_raft_id}) on {endpoint} replaced it",
            node_id(dead_index),
            self.args.replace_after,
            node_id(index)
        );
        Ok(())
    }

    /// Adds the node at `endpoint` (bootstrap certificate `fingerprint`) to the cluster.
    async fn add(&self, summary: &Summary, endpoint: &str, fingerprint: &str) -> Result<()> {
        let mut ctx = self.admin_session(summary).await?;
        let request = AddHsmRequest {
            session: Vec::new(),
            address: endpoint.to_owned(),
            fingerprint: fingerprint.to_owned(),
        };
        let added = ctx.session().await?.add_hsm(request).await;
        ctx.close().await;
        added?;
        Ok(())
    }

    /// Removes the member `raft_id` from the cluster (DeleteHsm).
    async fn delete(&self, summary: &Summary, raft_id: u64) -> Result<()> {
        let mut ctx = self.admin_session(summary).await?;
        let removed =
            ctx.session().await?.delete_hsm(DeleteHsmRequest { session: Vec::new(), raft_id }).await;
        ctx.close().await;
        removed?;
        Ok(())
    }

    /// A session logged in as the admin on a member (any node hands a membership change to
    /// the leader). `summary.endpoints` are the members: a dead one is passed over.
    async fn admin_session(&self, summary: &Summary) -> Result<Context> {
        let password_file = summary.admin_password.as_ref().ok_or_else(|| {
            CliError::Up(
                "changing the cluster's members needs the admin password: pass --admin-password-file".into(),
            )
        })?;
        let password = password::from_file(password_file)?;
        let client = Client::connect(&anchored_config(&self.layout, &summary.endpoints)).await?;
        let mut ctx = Context::with_client(client);
        ctx.login("admin", Role::Admin, Zeroizing::new(password.as_bytes().to_vec())).await?;
        Ok(ctx)
    }
}

/// The raft id of the node at `endpoint`.
async fn raft_id(layout: &Layout, endpoint: &str) -> Result<u64> {
    let client = Client::connect(&one_node_config(layout, endpoint)).await?;
    Ok(client.cluster_info().await?.raft_id)
}
