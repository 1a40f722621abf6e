//! Busy-polling after answers: for a short window after the node answers a client, its
//! runtime workers keep running instead of going to sleep, so that the client's next request
//! finds the CPUs awake.
//!
//! Why: on a virtual machine, a CPU with nothing to run halts, and waking it for the next
//! request costs tens of microseconds, often more than the cryptography asked for. The
//! 2-core development VM halts at once (its `haltpoll` cpuidle driver is told not to poll:
//! `haltpoll.guest_halt_poll_ns=0`). There, with a 1 ms window and one poller per worker,
//! RSA-2048 signing from one client thread went from about 0.65× to about 0.79× the ops/s of
//! in-process aws-lc-rs, and with two client threads from about 0.51× to about 0.64×; 256 B
//! AES-GCM from one thread from about 10,600 to about 24,000 calls/s (`coffer-bench sdk`).
//! One poller alone gave about 0.77× and 0.63×: the wake-up the kernel places on the CPU left
//! idle still paid for it. The same idea as Linux's `net.core.busy_poll` and the guest
//! polling of `haltpoll`, kept to the node: an HSM node is a dedicated machine, and the
//! window bounds the spin to moments of traffic.
//!
//! How: every write to a client connection calls [`BusyPoll::answered`]. The server runs one
//! [`BusyPoll::run`] task per runtime worker; each wakes on an answer and yields to the
//! scheduler until `busy_poll_us` has passed without one. While it yields, its worker stays
//! awake, polling the sockets between turns whenever it holds the I/O driver, and runs
//! whatever the next request wakes; a poller never holds a worker from other work, as each
//! turn goes back to the scheduler. Each turn also yields the CPU to the OS (`sched_yield`):
//! a thread waiting for that CPU runs first. Without that, with two client threads on the
//! same 2 cores, the 99th percentile of AES-GCM calls rose from about 0.23 ms to about
//! 1.07 ms (a time slice); with it, about 0.37 ms. After the window the pollers sleep until
//! the next answer. A window of 0 turns it off. The turns spent are counted in
//! `coffer_busy_poll_turns_total`.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::metrics::Metrics;

/// The longest window the configuration accepts (`busy_poll_us`): 10 ms.
pub const MAX_BUSY_POLL_US: u64 = 10_000;

/// The window and the time of the latest answer, shared by the connections and the pollers.
#[derive(Debug)]
pub struct BusyPoll {
    window_us: u64,
    started: Instant,
    /// Microseconds since `started` of the latest answer (at least 1; 0: none yet).
    last_answer_us: AtomicU64,
    answered: Notify,
    /// Pollers that are asleep or about to be: only then does an answer notify, so that a
    /// busy node's writes do not each take `answered`'s lock.
    sleepers: AtomicUsize,
    /// Counts the turns spent polling (`coffer_busy_poll_turns_total`).
    metrics: Arc<Metrics>,
}

impl BusyPoll {
    /// A poller with this window, counting its turns in `metrics`; [`Duration::ZERO`] turns
    /// it off.
    pub fn new(window: Duration, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(BusyPoll {
            window_us: u64::try_from(window.as_micros()).unwrap_or(u64::MAX),
            started: Instant::now(),
            last_answer_us: AtomicU64::new(0),
            answered: Notify::new(),
            sleepers: AtomicUsize::new(0),
            metrics,
        })
    }

    /// Records that an answer went out now, and starts the window.
    pub fn answered(&self) {
        if self.window_us == 0 {
            return;
        }
        self.last_answer_us.store(self.micros().max(1), Ordering::SeqCst);
        // Wakes the pollers that sleep; one that is polling sees the new time. (SeqCst with
        // `run`: a poller going to sleep either sees this answer's time or is counted here.)
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            self.answered.notify_waiters();
        }
    }

    /// One poller: polls after each answer for the window, until `stop` completes. Run one
    /// per runtime worker. Returns at once when the window is 0; a window in progress ends
    /// before `stop` is looked at (at most [`MAX_BUSY_POLL_US`] after the last answer).
    pub async fn run(self: Arc<Self>, stop: impl Future<Output = ()>) {
        if self.window_us == 0 {
            return;
        }
        let mut stop = std::pin::pin!(stop);
        loop {
            // Listening before the window is looked at, so that an answer between the two
            // is not missed.
            let mut answered = std::pin::pin!(self.answered.notified());
            answered.as_mut().enable();
            while self.within_window() {
                self.metrics.add_busy_poll_turn();
                // Offers the CPU to any thread waiting for it (a client on this machine,
                // another process) before the next turn: else such a thread could wait out
                // the OS scheduler's time slice, a millisecond or more.
                std::thread::yield_now();
                tokio::task::yield_now().await;
            }
            self.sleepers.fetch_add(1, Ordering::SeqCst);
            // Looked at again once counted: an answer since the loop above notifies.
            let stopped = !self.within_window()
                && tokio::select! {
                    () = answered => false,
                    () = &mut stop => true,
                };
            self.sleepers.fetch_sub(1, Ordering::SeqCst);
            if stopped {
                return;
            }
        }
    }

    fn within_window(&self) -> bool {
        let last = self.last_answer_us.load(Ordering::SeqCst);
        last != 0 && self.micros().saturating_sub(last) < self.window_us
    }

    fn micros(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `poll` on its own task until the returned sender fires.
    fn spawn_run(poll: &Arc<BusyPoll>) -> (tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(poll.clone().run(async move {
            let _ = rx.await;
        }));
        (tx, task)
    }

    /// Stops a poller that [`spawn_run`] started, and waits for it to end.
    async fn stop_run(stop: tokio::sync::oneshot::Sender<()>, task: tokio::task::JoinHandle<()>) {
        stop.send(()).expect("the task is running");
        tokio::time::timeout(Duration::from_secs(5), task).await.expect("stops").expect("no panic");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn it_polls_for_the_window_after_an_answer_and_then_sleeps() {
        let poll = BusyPoll::new(Duration::from_millis(10), Metrics::new());
        let (stop, task) = spawn_run(&poll);
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(poll.metrics.busy_poll_turns(), 0, "no answer yet, so no polling");
        poll.answered();
        tokio::time::sleep(Duration::from_millis(60)).await;
        let after_window = poll.metrics.busy_poll_turns();
        assert!(after_window > 0, "an answer starts the window");
        assert!(!poll.within_window(), "60 ms after the answer the 10 ms window is over");
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(
            poll.metrics.busy_poll_turns(),
            after_window,
            "the window ended: it sleeps until the next answer"
        );
        poll.answered();
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(poll.metrics.busy_poll_turns() > after_window, "the next answer starts a new window");
        stop_run(stop, task).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_poller_sleeps_counted_and_wakes_on_an_answer() {
        let poll = BusyPoll::new(Duration::from_millis(10), Metrics::new());
        let (stop_a, task_a) = spawn_run(&poll);
        let (stop_b, task_b) = spawn_run(&poll);
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(poll.sleepers.load(Ordering::SeqCst), 2, "both asleep, so an answer notifies");
        poll.answered();
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(poll.metrics.busy_poll_turns() > 0, "an answer wakes the pollers");
        assert_eq!(poll.sleepers.load(Ordering::SeqCst), 2, "both asleep again after the window");
        stop_run(stop_a, task_a).await;
        stop_run(stop_b, task_b).await;
        assert_eq!(poll.sleepers.load(Ordering::SeqCst), 0, "stopped pollers are not counted");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn answers_that_keep_coming_keep_it_polling() {
        // A window far longer than the gaps, however slowly a loaded machine runs this.
        let poll = BusyPoll::new(Duration::from_millis(200), Metrics::new());
        let (stop, task) = spawn_run(&poll);
        for _ in 0..5 {
            poll.answered();
            tokio::time::sleep(Duration::from_millis(1)).await;
            assert!(poll.within_window());
        }
        let turns = poll.metrics.busy_poll_turns();
        tokio::time::sleep(Duration::from_millis(2)).await;
        assert!(poll.metrics.busy_poll_turns() > turns, "still polling within the window of the last answer");
        stop_run(stop, task).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_zero_window_turns_it_off() {
        let poll = BusyPoll::new(Duration::ZERO, Metrics::new());
        let (_stop, task) = spawn_run(&poll);
        // `run` returns without waiting for the stop signal.
        tokio::time::timeout(Duration::from_secs(5), task).await.expect("returns at once").expect("no panic");
        poll.answered();
        assert_eq!(poll.metrics.busy_poll_turns(), 0);
        assert!(!poll.within_window());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn other_tasks_still_run_on_a_single_worker_while_it_polls() {
        let poll = BusyPoll::new(Duration::from_millis(50), Metrics::new());
        let (stop, task) = spawn_run(&poll);
        poll.answered();
        tokio::task::yield_now().await;
        // The poller is in its window on the only worker, and other tasks still get their
        // turns.
        let other = tokio::spawn(async { 7 });
        assert_eq!(tokio::time::timeout(Duration::from_secs(5), other).await.expect("ran").expect("ok"), 7);
        assert!(poll.metrics.busy_poll_turns() > 0);
        stop_run(stop, task).await;
    }
}
