//! Named failure points inside the code (between log append and ack,
//! between store write and offset commit, ...). Every hit is counted, so a
//! chaos run can prove each point was reached; a test can arm a point to
//! pause the next task that reaches it until released, which turns "a worker
//! stalls while holding a batch" into something a test can do on purpose.
//!
//! A chaos run can also make a process die *at* a point: with
//! `SEQLINE_FAILPOINTS="gateway.after_append=abort@40"` the process aborts
//! (as abruptly as a SIGKILL: nothing is flushed or closed) on the 40th hit
//! of that point, after printing which point it died at. With
//! `sequencer.before_store=stop@3` the whole process stops itself (SIGSTOP)
//! on the 3rd hit, in the middle of what it was doing, until someone sends
//! it SIGCONT: a stalled worker across processes (fault F9). [`configure`]
//! reads that syntax; several points are separated by `;`.
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
    /// Abort the process on this hit (0: never).
    abort_at: AtomicU64,
    /// Stop the process (SIGSTOP to itself) on this hit (0: never).
    stop_at: AtomicU64,
}

/// Every point named in the code, for [`configure`]'s check of names.
pub const ALL: [&str; 5] = [
    names::SEQUENCER_BEFORE_STORE,
    names::SEQUENCER_AFTER_STORE,
    names::TIMELINE_AFTER_STORE,
    names::WORKER_BEFORE_OFFSET_COMMIT,
    names::GATEWAY_AFTER_APPEND,
];

/// A paused task waits here until [`Gate::release`].
#[derive(Default)]
pub struct Gate {
    reached: AtomicBool,
    reached_notify: Notify,
    released: AtomicBool,
    release_notify: Notify,
    /// The name of the thread the paused task was on.
    thread: Mutex<Option<String>>,
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

    /// The name of the thread the paused task reached the gate on (a chaos
    /// runner names each role's runtime threads, so this says which role).
    pub fn reached_on(&self) -> Option<String> {
        self.thread.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    async fn pause(&self) {
        *self.thread.lock().unwrap_or_else(|p| p.into_inner()) = std::thread::current().name().map(str::to_owned);
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
    let n = p.hits.fetch_add(1, Ordering::Relaxed) + 1;
    if !ANY_ARMED.load(Ordering::Acquire) {
        return;
    }
    if p.abort_at.load(Ordering::Relaxed) == n {
        eprintln!("seqline: failpoint {name} reached {n} times: aborting the process (SEQLINE_FAILPOINTS)");
        std::process::abort();
    }
    if p.stop_at.load(Ordering::Relaxed) == n {
        stop_self(name, n);
    }
    let gate = p.armed.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(gate) = gate {
        gate.pause().await;
    }
}

/// Sends SIGSTOP to this process (every thread stops where it is) and
/// returns once someone sent SIGCONT. `kill` does the sending, so no unsafe
/// code is needed; the calling thread waits for it like any child.
fn stop_self(name: &str, n: u64) {
    eprintln!("seqline: failpoint {name} reached {n} times: stopping the process (SEQLINE_FAILPOINTS)");
    let pid = std::process::id().to_string();
    if let Err(e) = std::process::Command::new("kill").args(["-STOP", &pid]).status() {
        eprintln!("seqline: failpoint {name}: could not stop the process: {e}");
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

/// Appends every point's hits to `out` as the Prometheus counter
/// `seqline_failpoint_hits_total{point="…"}` (nothing when none was hit).
pub fn render_prometheus(out: &mut String) {
    use std::fmt::Write;
    let points = all_hits();
    if !points.is_empty() {
        let _ = writeln!(out, "# TYPE seqline_failpoint_hits_total counter");
        for (point, hits) in points {
            let _ = writeln!(out, "seqline_failpoint_hits_total{{point=\"{point}\"}} {hits}");
        }
    }
}

/// Arms `name`: the next task to reach it pauses until the returned gate is
/// released (tests only; later tasks pass).
pub fn pause_next(name: &'static str) -> Arc<Gate> {
    let gate = Arc::new(Gate::default());
    *point(name).armed.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::clone(&gate));
    ANY_ARMED.store(true, Ordering::Release);
    gate
}

/// What an armed point does to the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// `abort@N`: abort (as abruptly as SIGKILL) on the N-th hit.
    Abort,
    /// `stop@N`: SIGSTOP itself on the N-th hit, go on after SIGCONT.
    Stop,
}

/// Arms the points of `spec`, `point=abort@N` or `point=stop@N`, several
/// separated by `;`: on the N-th hit of that point (N counts from this
/// process's start) the process aborts, or stops itself until SIGCONT.
/// Returns the armed (point, action, N); refuses unknown points and actions.
pub fn configure(spec: &str) -> Result<Vec<(&'static str, Action, u64)>, String> {
    let mut armed = Vec::new();
    for part in spec.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, action) = part
            .split_once('=')
            .ok_or_else(|| format!("failpoint {part:?}: expected point=abort@N or point=stop@N"))?;
        let Some(known) = ALL.iter().find(|p| **p == name.trim()) else {
            return Err(format!("unknown failpoint {name:?} (known: {})", ALL.join(", ")));
        };
        let (what, at) = action
            .trim()
            .split_once('@')
            .ok_or_else(|| format!("failpoint {name}: action {action:?} is not abort@N or stop@N"))?;
        let what = match what {
            "abort" => Action::Abort,
            "stop" => Action::Stop,
            _ => return Err(format!("failpoint {name}: action {action:?} is not abort@N or stop@N")),
        };
        let at = at
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("failpoint {name}: action {action:?} needs N >= 1"))?;
        armed.push((*known, what, at));
    }
    for (name, what, at) in &armed {
        let p = point(name);
        match what {
            Action::Abort => p.abort_at.store(*at, Ordering::Relaxed),
            Action::Stop => p.stop_at.store(*at, Ordering::Relaxed),
        }
    }
    if !armed.is_empty() {
        ANY_ARMED.store(true, Ordering::Release);
    }
    Ok(armed)
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

    #[test]
    fn configure_reads_abort_points_and_refuses_nonsense() {
        assert_eq!(
            configure("gateway.after_append=abort@40; timeline.after_store=stop@2").unwrap(),
            vec![
                (names::GATEWAY_AFTER_APPEND, Action::Abort, 40),
                (names::TIMELINE_AFTER_STORE, Action::Stop, 2)
            ]
        );
        assert_eq!(configure("").unwrap(), vec![]);
        for bad in [
            "nowhere=abort@1",
            "gateway.after_append",
            "gateway.after_append=abort@0",
            "gateway.after_append=panic@3",
            "gateway.after_append=abort@x",
            "gateway.after_append=stop@0",
        ] {
            assert!(configure(bad).is_err(), "{bad} was accepted");
        }
        // Disarm what the first call armed, so other tests never abort.
        configure("gateway.after_append=abort@18446744073709551615;timeline.after_store=stop@18446744073709551615")
            .unwrap();
    }
}
