//! Named failure points inside the code (between log append and ack,
//! between store write and offset commit, ...). Every hit is counted, so a
//! chaos run can prove each point was reached; a test can arm a point to
//! pause the next task that reaches it until released, which turns "a worker
//! stalls while holding a batch" into something a test can do on purpose.
//!
//! Unarmed points cost one atomic load and one counter increment.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::Notify;

/// Failure points named in the code.
pub mod names {
    /// Sequencer: decided, nothing stored yet.
    pub const SEQUENCER_BEFORE_STORE: &str = "sequencer.before_store";
    /// Sequencer: stored, receipts and deliveries not sent yet.
    pub const SEQUENCER_AFTER_STORE: &str = "sequencer.after_store";
    /// Timeline writer: timeline stored, user events not sent yet.
    pub const TIMELINE_AFTER_STORE: &str = "timeline.after_store";
    /// Any persister worker: outputs durable, input offset not committed yet.
    pub const WORKER_BEFORE_OFFSET_COMMIT: &str = "worker.before_offset_commit";
    /// Gateway: command appended to the log, no ack sent yet.
    pub const GATEWAY_AFTER_APPEND: &str = "gateway.after_append";
}

#[derive(Default)]
struct Point {
    hits: AtomicU64,
    /// Armed: the next task to arrive takes the gate and waits on it.
    armed: Mutex<Option<Arc<Gate>>>,
}

/// A paused task waits here until [`Gate::release`].
#[derive(Default)]
pub struct Gate {
    reached: AtomicBool,
    reached_notify: Notify,
    released: AtomicBool,
    release_notify: Notify,
}

impl Gate {
    /// Waits until a task is paused at the gate.
    pub async fn reached(&self) {
        loop {
            let wait = self.reached_notify.notified();
            if self.reached.load(Ordering::Acquire) {
                return;
            }
            wait.await;
        }
    }

    /// Lets the paused task (and any later one) go on.
    pub fn release(&self) {
        self.released.store(true, Ordering::Release);
        self.release_notify.notify_waiters();
    }

    async fn pause(&self) {
        self.reached.store(true, Ordering::Release);
        self.reached_notify.notify_waiters();
        loop {
            let wait = self.release_notify.notified();
            if self.released.load(Ordering::Acquire) {
                return;
            }
            wait.await;
        }
    }
}

static ANY_ARMED: AtomicBool = AtomicBool::new(false);

fn registry() -> &'static Mutex<HashMap<&'static str, Arc<Point>>> {
    static R: OnceLock<Mutex<HashMap<&'static str, Arc<Point>>>> = OnceLock::new();
    R.get_or_init(Default::default)
}

fn point(name: &'static str) -> Arc<Point> {
    let mut r = registry().lock().unwrap_or_else(|p| p.into_inner());
    Arc::clone(r.entry(name).or_default())
}

/// Marks `name` as reached; pauses here if a test armed it.
pub async fn hit(name: &'static str) {
    let p = point(name);
    p.hits.fetch_add(1, Ordering::Relaxed);
    if !ANY_ARMED.load(Ordering::Acquire) {
        return;
    }
    let gate = p.armed.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(gate) = gate {
        gate.pause().await;
    }
}

/// How many times `name` was reached in this process.
pub fn hits(name: &'static str) -> u64 {
    point(name).hits.load(Ordering::Relaxed)
}

/// Every point reached so far with its count, sorted by name.
pub fn all_hits() -> Vec<(&'static str, u64)> {
    let r = registry().lock().unwrap_or_else(|p| p.into_inner());
    let mut out: Vec<(&'static str, u64)> = r.iter().map(|(n, p)| (*n, p.hits.load(Ordering::Relaxed))).collect();
    out.sort();
    out
}

/// Arms `name`: the next task to reach it pauses until the returned gate is
/// released (tests only; later tasks pass).
pub fn pause_next(name: &'static str) -> Arc<Gate> {
    let gate = Arc::new(Gate::default());
    *point(name).armed.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::clone(&gate));
    ANY_ARMED.store(true, Ordering::Release);
    gate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_hits_and_pauses_the_next_arrival_only() {
        const P: &str = "test.point";
        let before = hits(P);
        hit(P).await;
        assert_eq!(hits(P), before + 1);
        let gate = pause_next(P);
        let paused = tokio::spawn(async { hit(P).await });
        gate.reached().await;
        // A later arrival passes while the first is held.
        hit(P).await;
        assert!(!paused.is_finished());
        gate.release();
        paused.await.unwrap();
        assert_eq!(hits(P), before + 3);
        assert!(all_hits().iter().any(|(n, c)| *n == P && *c >= 3));
    }
}
