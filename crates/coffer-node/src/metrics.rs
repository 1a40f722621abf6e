//! The node's Prometheus metrics, written by hand in the text exposition format 0.0.4: a few
//! atomics per metric, no registry crate, nothing allocated on the hot path once an
//! operation has been seen.
//!
//! The HSM gauges mirror CloudHSM's CloudWatch metrics (namespace `AWS/CloudHSM`, inventory
//! §8.1), under Prometheus names; each one's CloudHSM name is in its help text. Per-operation
//! counters and latency histograms are labelled by operation and result only. Label values are
//! `&'static str` (operation names and `CKR_*` names chosen by the code, never request data),
//! and are checked again against a plain alphabet before they are written, so no key byte or
//! user input can reach a label.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds (100 µs to 10 s).
pub const LATENCY_BUCKETS: [f64; 16] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// At most this many distinct operations (and results per operation) get their own series;
/// more are counted under `other`, which bounds the exposition's size.
pub const MAX_LABEL_VALUES: usize = 256;

/// The HSM gauges, after CloudHSM's CloudWatch metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gauge {
    /// `HsmKeysSessionOccupied`: session keys in use.
    KeysSessionOccupied,
    /// `HsmKeysTokenOccupied`: token keys in use.
    KeysTokenOccupied,
    /// `HsmSslCtxsOccupied`: end-to-end channels (TLS connections) open.
    SslCtxsOccupied,
    /// `HsmSessionCount`: open sessions.
    SessionCount,
    /// `HsmUsersAvailable`: `HsmUsersMax` minus users created.
    UsersAvailable,
    /// `HsmUsersMax`: the most users the HSM holds.
    UsersMax,
    /// Members of the cluster this node has failed to reach for 5 s or more: what
    /// CloudHSM's `HsmUnhealthy` shows for an HSM that needs replacing, seen by its peers.
    UnreachableHsms,
}

impl Gauge {
    const ALL: [Gauge; 7] = [
        Self::KeysSessionOccupied,
        Self::KeysTokenOccupied,
        Self::SslCtxsOccupied,
        Self::SessionCount,
        Self::UsersAvailable,
        Self::UsersMax,
        Self::UnreachableHsms,
    ];

    /// The Prometheus name.
    pub fn name(self) -> &'static str {
        match self {
            Self::KeysSessionOccupied => "coffer_hsm_keys_session_occupied",
            Self::KeysTokenOccupied => "coffer_hsm_keys_token_occupied",
            Self::SslCtxsOccupied => "coffer_hsm_ssl_ctxs_occupied",
            Self::SessionCount => "coffer_hsm_session_count",
            Self::UsersAvailable => "coffer_hsm_users_available",
            Self::UsersMax => "coffer_hsm_users_max",
            Self::UnreachableHsms => "coffer_cluster_hsms_unreachable",
        }
    }

    fn help(self) -> &'static str {
        match self {
            Self::KeysSessionOccupied => "Session keys in use (CloudHSM HsmKeysSessionOccupied).",
            Self::KeysTokenOccupied => "Token keys in use (CloudHSM HsmKeysTokenOccupied).",
            Self::SslCtxsOccupied => "TLS channels open (CloudHSM HsmSslCtxsOccupied).",
            Self::SessionCount => "Open sessions (CloudHSM HsmSessionCount).",
            Self::UsersAvailable => "Users that can still be created (CloudHSM HsmUsersAvailable).",
            Self::UsersMax => "Most users the HSM holds (CloudHSM HsmUsersMax).",
            Self::UnreachableHsms => {
                "Members this node has not reached for 5 s or more (their CloudHSM HsmUnhealthy, seen by a peer)."
            }
        }
    }
}

/// Counts and latency of one operation.
#[derive(Debug, Default)]
struct OpStats {
    results: RwLock<BTreeMap<&'static str, AtomicU64>>,
    /// Observations per bucket (not cumulative; summed when rendered).
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

/// The node's metrics and health. Share it as `Arc<Metrics>`.
#[derive(Debug, Default)]
pub struct Metrics {
    gauges: [AtomicI64; Gauge::ALL.len()],
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    busy_poll_turns: AtomicU64,
    /// `Some(reason)` while the node is unhealthy (CloudHSM `HsmUnhealthy`).
    unhealthy: RwLock<Option<String>>,
    ops: RwLock<BTreeMap<&'static str, Arc<OpStats>>>,
}

impl Metrics {
    /// A fresh, healthy set of metrics.
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Sets a gauge.
    pub fn set(&self, gauge: Gauge, value: i64) {
        self.gauges[gauge as usize].store(value, Ordering::Relaxed);
    }

    /// Adds to a gauge (negative to subtract), e.g. a session opened or closed.
    pub fn add(&self, gauge: Gauge, delta: i64) {
        self.gauges[gauge as usize].fetch_add(delta, Ordering::Relaxed);
    }

    /// A gauge's value.
    pub fn get(&self, gauge: Gauge) -> i64 {
        self.gauges[gauge as usize].load(Ordering::Relaxed)
    }

    /// Counts bytes received from clients (CloudHSM `InterfaceEth2OctetsInput`).
    pub fn add_bytes_in(&self, n: u64) {
        self.bytes_in.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts bytes sent to clients (CloudHSM `InterfaceEth2OctetsOutput`).
    pub fn add_bytes_out(&self, n: u64) {
        self.bytes_out.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts one scheduler turn spent busy-polling after an answer ([`crate::busy_poll`]).
    pub fn add_busy_poll_turn(&self) {
        self.busy_poll_turns.fetch_add(1, Ordering::Relaxed);
    }

    /// Scheduler turns spent busy-polling so far (served as `coffer_busy_poll_turns_total`).
    #[cfg(test)]
    pub(crate) fn busy_poll_turns(&self) -> u64 {
        self.busy_poll_turns.load(Ordering::Relaxed)
    }

    /// Marks the node unhealthy. The reason is served by `/health`: give an operator-facing
    /// sentence, never request data.
    pub fn set_unhealthy(&self, reason: impl Into<String>) {
        *self.unhealthy.write().unwrap_or_else(PoisonError::into_inner) = Some(reason.into());
    }

    /// Marks the node healthy again.
    pub fn set_healthy(&self) {
        *self.unhealthy.write().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// `Ok` when healthy, the reason otherwise.
    pub fn health(&self) -> Result<(), String> {
        match &*self.unhealthy.read().unwrap_or_else(PoisonError::into_inner) {
            Some(reason) => Err(reason.clone()),
            None => Ok(()),
        }
    }

    /// Records one operation: its result (`"ok"` or a `CKR_*` name) and how long it took.
    pub fn observe(&self, operation: &'static str, result: &'static str, elapsed: Duration) {
        let stats = self.op_stats(operation);
        count_result(&stats, safe_label(result));
        let secs = elapsed.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|le| secs <= *le) {
            stats.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        stats.count.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        stats.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    fn op_stats(&self, operation: &'static str) -> Arc<OpStats> {
        let operation = safe_label(operation);
        if let Some(stats) = self.ops.read().unwrap_or_else(PoisonError::into_inner).get(operation) {
            return stats.clone();
        }
        let mut ops = self.ops.write().unwrap_or_else(PoisonError::into_inner);
        let key =
            if ops.len() >= MAX_LABEL_VALUES && !ops.contains_key(operation) { "other" } else { operation };
        ops.entry(key).or_default().clone()
    }

    /// The text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let unhealthy = i64::from(self.health().is_err());
        metric(
            &mut out,
            "coffer_hsm_unhealthy",
            "gauge",
            "1 while the HSM is unhealthy (CloudHSM HsmUnhealthy).",
        );
        sample(&mut out, "coffer_hsm_unhealthy", "", unhealthy);
        for gauge in Gauge::ALL {
            metric(&mut out, gauge.name(), "gauge", gauge.help());
            sample(&mut out, gauge.name(), "", self.get(gauge));
        }
        let counters = [
            (
                "coffer_hsm_bytes_in_total",
                "Bytes received (CloudHSM InterfaceEth2OctetsInput).",
                &self.bytes_in,
            ),
            (
                "coffer_hsm_bytes_out_total",
                "Bytes sent (CloudHSM InterfaceEth2OctetsOutput).",
                &self.bytes_out,
            ),
            (
                "coffer_busy_poll_turns_total",
                "Scheduler turns the workers spent polling after answers (busy_poll_us).",
                &self.busy_poll_turns,
            ),
        ];
        for (name, help, value) in counters {
            metric(&mut out, name, "counter", help);
            sample(&mut out, name, "", value.load(Ordering::Relaxed));
        }
        self.render_operations(&mut out);
        out
    }

    fn render_operations(&self, out: &mut String) {
        let ops: Vec<_> =
            self.ops.read().unwrap_or_else(PoisonError::into_inner).clone().into_iter().collect();
        metric(out, "coffer_operations_total", "counter", "Operations handled, by operation and result.");
        for (op, stats) in &ops {
            for (result, n) in stats.results.read().unwrap_or_else(PoisonError::into_inner).iter() {
                let labels = format!("operation=\"{op}\",result=\"{result}\"");
                sample(out, "coffer_operations_total", &labels, n.load(Ordering::Relaxed));
            }
        }
        let name = "coffer_operation_duration_seconds";
        metric(out, name, "histogram", "Latency of operations, by operation.");
        for (op, stats) in &ops {
            let mut cumulative = 0;
            for (le, n) in LATENCY_BUCKETS.iter().zip(&stats.buckets) {
                cumulative += n.load(Ordering::Relaxed);
                sample(
                    out,
                    &format!("{name}_bucket"),
                    &format!("operation=\"{op}\",le=\"{le}\""),
                    cumulative,
                );
            }
            let count = stats.count.load(Ordering::Relaxed);
            sample(out, &format!("{name}_bucket"), &format!("operation=\"{op}\",le=\"+Inf\""), count);
            let sum = stats.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
            sample(out, &format!("{name}_sum"), &format!("operation=\"{op}\""), sum);
            sample(out, &format!("{name}_count"), &format!("operation=\"{op}\""), count);
        }
    }
}

fn count_result(stats: &OpStats, result: &'static str) {
    if let Some(n) = stats.results.read().unwrap_or_else(PoisonError::into_inner).get(result) {
        n.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let mut results = stats.results.write().unwrap_or_else(PoisonError::into_inner);
    let key =
        if results.len() >= MAX_LABEL_VALUES && !results.contains_key(result) { "other" } else { result };
    results.entry(key).or_default().fetch_add(1, Ordering::Relaxed);
}

/// A label value as given if it is 1 to 64 characters of `[A-Za-z0-9_.-]`, else `invalid`:
/// nothing that needs escaping, nothing long enough to carry data.
fn safe_label(value: &'static str) -> &'static str {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    if (1..=64).contains(&value.len()) && value.chars().all(ok) { value } else { "invalid" }
}

fn metric(out: &mut String, name: &str, kind: &str, help: &str) {
    // Writing to a String cannot fail.
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &str, value: impl std::fmt::Display) {
    let _ = if labels.is_empty() {
        writeln!(out, "{name} {value}")
    } else {
        writeln!(out, "{name}{{{labels}}} {value}")
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauges_and_byte_counters_render_with_their_names() {
        let m = Metrics::new();
        m.set(Gauge::UsersMax, 1024);
        m.set(Gauge::UsersAvailable, 1020);
        m.add(Gauge::SessionCount, 3);
        m.add(Gauge::SessionCount, -1);
        m.add_bytes_in(100);
        m.add_bytes_out(7);
        m.add_busy_poll_turn();
        let text = m.render();
        for line in [
            "coffer_hsm_unhealthy 0",
            "coffer_hsm_users_max 1024",
            "coffer_hsm_users_available 1020",
            "coffer_hsm_session_count 2",
            "coffer_hsm_keys_token_occupied 0",
            "coffer_hsm_keys_session_occupied 0",
            "coffer_hsm_ssl_ctxs_occupied 0",
            "coffer_hsm_bytes_in_total 100",
            "coffer_hsm_bytes_out_total 7",
            "coffer_busy_poll_turns_total 1",
            "# TYPE coffer_hsm_bytes_in_total counter",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn health_drives_the_unhealthy_gauge() {
        let m = Metrics::new();
        assert_eq!(m.health(), Ok(()));
        m.set_unhealthy("audit log cannot be written");
        assert_eq!(m.health(), Err("audit log cannot be written".into()));
        assert!(m.render().lines().any(|l| l == "coffer_hsm_unhealthy 1"));
        m.set_healthy();
        assert!(m.render().lines().any(|l| l == "coffer_hsm_unhealthy 0"));
    }

    #[test]
    fn operations_are_counted_and_timed() {
        let m = Metrics::new();
        m.observe("Sign", "ok", Duration::from_micros(300));
        m.observe("Sign", "ok", Duration::from_millis(2));
        m.observe("Sign", "CKR_KEY_HANDLE_INVALID", Duration::from_secs(20));
        let text = m.render();
        let has = |l: &str| text.lines().any(|x| x == l);
        assert!(has("coffer_operations_total{operation=\"Sign\",result=\"ok\"} 2"), "{text}");
        assert!(has("coffer_operations_total{operation=\"Sign\",result=\"CKR_KEY_HANDLE_INVALID\"} 1"));
        assert!(has("coffer_operation_duration_seconds_bucket{operation=\"Sign\",le=\"0.0001\"} 0"));
        assert!(has("coffer_operation_duration_seconds_bucket{operation=\"Sign\",le=\"0.0005\"} 1"));
        assert!(has("coffer_operation_duration_seconds_bucket{operation=\"Sign\",le=\"0.0025\"} 2"));
        assert!(has("coffer_operation_duration_seconds_bucket{operation=\"Sign\",le=\"10\"} 2"));
        assert!(has("coffer_operation_duration_seconds_bucket{operation=\"Sign\",le=\"+Inf\"} 3"));
        assert!(has("coffer_operation_duration_seconds_count{operation=\"Sign\"} 3"));
        assert!(has("coffer_operation_duration_seconds_sum{operation=\"Sign\"} 20.0023"), "{text}");
    }

    #[test]
    fn unsafe_label_values_never_reach_the_output() {
        let m = Metrics::new();
        m.observe("Sign\"} 1\nfake_metric{x=\"", "ok", Duration::ZERO);
        m.observe("", "a b", Duration::ZERO);
        let text = m.render();
        assert!(!text.contains("fake_metric") && !text.contains("a b"), "{text}");
        assert!(text.contains("operation=\"invalid\",result=\"ok\""));
        assert!(text.contains("operation=\"invalid\",result=\"invalid\""));
    }

    #[test]
    fn label_cardinality_is_bounded() {
        let m = Metrics::new();
        let names: Vec<&'static str> =
            (0..MAX_LABEL_VALUES + 5).map(|i| &*Box::leak(format!("op{i}").into_boxed_str())).collect();
        for name in &names {
            m.observe(name, "ok", Duration::ZERO);
        }
        assert_eq!(m.ops.read().unwrap().len(), MAX_LABEL_VALUES + 1);
        assert!(m.render().contains("operation=\"other\",result=\"ok\"} 5"));
    }
}
