//! Group commit: many writers, one `fdatasync` per group.
//!
//! A writer commits its batch (journaled, no fsync) through
//! [`GroupCommit::commit`], which hands back a *ticket*: the number of sync
//! requests so far, its own included. A dedicated thread takes the highest
//! ticket requested, persists the journal once and publishes that ticket as
//! completed. Every batch committed before its ticket `t` was issued is
//! covered by the first persist that started after that, so the writer is
//! durable as soon as `completed >= t`.
//!
//! A writer that needs no fsync of its own commits *lazily*
//! ([`GroupCommit::commit_lazy`]): its batch is journaled and ordered, and
//! becomes durable with the next persist anyone asks for. It still gets a
//! ticket (the next request's number, which only a later request can
//! reach), so bookkeeping can wait for that persist. [`GroupCommit::barrier`]
//! makes every write so far durable and costs nothing when the last persist
//! already covered them: a stage that wrote lazily and then appended durably
//! pays one fsync, not two.
//!
//! fjall holds its journal lock while it fsyncs, so writers that arrive
//! during a persist queue up behind it. The thread therefore waits, briefly
//! and boundedly, for writers already in the middle of a commit before the
//! next persist: they join this group instead of each forcing one more.

use crate::error::{lock, EngineError};
use fjall::{Database, OwnedWriteBatch, PersistMode};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Longest a persist waits for writers in the middle of a commit.
const MAX_GATHER: Duration = Duration::from_micros(500);

/// What the syncer thread has made durable.
#[derive(Clone, Debug, Default)]
struct Completed {
    /// Highest ticket covered by a finished persist.
    ticket: u64,
    /// Journal commits covered by that persist.
    commits: u64,
    /// Set forever once a persist failed.
    failed: Option<Arc<str>>,
}

#[derive(Default)]
struct Requests {
    requested: u64,
    /// Batches journaled so far, lazy ones included.
    commits: u64,
    /// Writers between [`GroupCommit::enter`] and taking their ticket.
    inflight: u32,
    shutdown: bool,
}

/// Work to do once a ticket is durable (`true`) or can never be (`false`).
pub(crate) type OnDurable = Box<dyn FnOnce(bool) + Send>;

struct Shared {
    requests: Mutex<Requests>,
    wake: Condvar,
    completed: watch::Sender<Completed>,
    /// Persists done so far (for metrics and tests).
    fsyncs: AtomicU64,
    /// Run by the syncer thread once their ticket is durable, before
    /// waiters learn of it. The completed ticket is published under this
    /// lock, so a registration never misses its persist.
    callbacks: Mutex<Vec<(u64, OnDurable)>>,
}

/// A writer on its way to a commit; the next persist waits for it a little.
/// Dropping it without committing just leaves.
pub(crate) struct Writing<'a> {
    group: &'a GroupCommit,
    committed: bool,
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        if !self.committed {
            lock(&self.group.shared.requests).inflight -= 1;
            self.group.shared.wake.notify_one();
        }
    }
}

/// A ticket to wait on: everything committed before it was issued.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ticket(u64);

/// The group-commit syncer: a thread and the state writers wait on.
pub(crate) struct GroupCommit {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl GroupCommit {
    /// Starts the syncer thread for `db`.
    pub(crate) fn start(db: Database) -> Result<Self, EngineError> {
        let shared = Arc::new(Shared {
            requests: Mutex::new(Requests::default()),
            wake: Condvar::new(),
            completed: watch::Sender::new(Completed::default()),
            fsyncs: AtomicU64::new(0),
            callbacks: Mutex::new(Vec::new()),
        });
        let worker = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("seqline-sync".into())
            .spawn(move || run(&worker, &db))
            .map_err(|e| EngineError::Task(format!("cannot start the sync thread: {e}")))?;
        Ok(Self {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Announces a writer that will commit soon (call it before taking the
    /// locks that order the write, so the persist waits for the queue).
    pub(crate) fn enter(&self) -> Result<Writing<'_>, EngineError> {
        let mut requests = lock(&self.shared.requests);
        if requests.shutdown {
            return Err(EngineError::Closed);
        }
        requests.inflight += 1;
        Ok(Writing {
            group: self,
            committed: false,
        })
    }

    /// Commits `batch` to the journal (blocking), asks for a persist, and
    /// returns the ticket that makes it durable.
    pub(crate) fn commit(&self, writing: Writing<'_>, batch: OwnedWriteBatch) -> Result<Ticket, EngineError> {
        self.journal(writing, batch, true)
    }

    /// Commits `batch` to the journal (blocking) without asking for a
    /// persist: it becomes durable with the next one anybody asks for. The
    /// ticket is that next request's number.
    pub(crate) fn commit_lazy(&self, writing: Writing<'_>, batch: OwnedWriteBatch) -> Result<Ticket, EngineError> {
        self.journal(writing, batch, false)
    }

    fn journal(&self, mut writing: Writing<'_>, batch: OwnedWriteBatch, persist: bool) -> Result<Ticket, EngineError> {
        writing.committed = true;
        let result = batch.commit();
        let ticket = {
            let mut requests = lock(&self.shared.requests);
            requests.inflight -= 1;
            if result.is_ok() {
                requests.commits += 1;
            }
            if persist {
                requests.requested += 1;
                requests.requested
            } else {
                // Only a request made after this write can reach it.
                requests.requested + 1
            }
        };
        self.shared.wake.notify_one();
        result?;
        Ok(Ticket(ticket))
    }

    /// Returns once every batch journaled before this call is durable;
    /// at once, with no fsync, when the last persist already covered them.
    pub(crate) async fn barrier(&self) -> Result<(), EngineError> {
        let commits = lock(&self.shared.requests).commits;
        {
            let done = self.shared.completed.borrow();
            if let Some(reason) = &done.failed {
                return Err(EngineError::SyncFailed(reason.to_string()));
            }
            if done.commits >= commits {
                return Ok(());
            }
        }
        let ticket = self.request()?;
        self.wait(ticket).await
    }

    /// A ticket covering everything committed before this call.
    pub(crate) fn request(&self) -> Result<Ticket, EngineError> {
        let ticket = {
            let mut requests = lock(&self.shared.requests);
            if requests.shutdown {
                return Err(EngineError::Closed);
            }
            requests.requested += 1;
            requests.requested
        };
        self.shared.wake.notify_one();
        Ok(Ticket(ticket))
    }

    /// Returns once `ticket` is durable. Cancel-safe.
    pub(crate) async fn wait(&self, ticket: Ticket) -> Result<(), EngineError> {
        let mut rx = self.shared.completed.subscribe();
        loop {
            {
                let done = rx.borrow_and_update();
                if let Some(reason) = &done.failed {
                    return Err(EngineError::SyncFailed(reason.to_string()));
                }
                if done.ticket >= ticket.0 {
                    return Ok(());
                }
            }
            rx.changed().await.map_err(|_| EngineError::Closed)?;
        }
    }

    /// Runs `then` once `ticket` is durable, on the syncer thread (or at
    /// once if it already is). Unlike a task awaiting [`GroupCommit::wait`],
    /// it runs even if whoever wrote goes away: a write that reached the
    /// journal always gets its bookkeeping (durable marks, pending heads),
    /// so a caller cancelled, or a runtime dropped, mid-write cannot leave
    /// a key clamped or a partition stalled for the rest of the process.
    pub(crate) fn on_durable(&self, ticket: Ticket, then: OnDurable) {
        let ready = {
            let mut callbacks = lock(&self.shared.callbacks);
            let done = self.shared.completed.borrow();
            if done.failed.is_some() {
                Some(false)
            } else if done.ticket >= ticket.0 {
                Some(true)
            } else {
                callbacks.push((ticket.0, then));
                return;
            }
        };
        if let Some(ok) = ready {
            then(ok);
        }
    }

    /// How many persists the thread has done.
    pub(crate) fn fsyncs(&self) -> u64 {
        self.shared.fsyncs.load(Ordering::Relaxed)
    }

    /// Stops the thread after a last persist of anything requested.
    pub(crate) fn shutdown(&self) {
        lock(&self.shared.requests).shutdown = true;
        self.shared.wake.notify_all();
        if let Some(thread) = lock(&self.thread).take() {
            if thread.join().is_err() {
                tracing::error!("the sync thread panicked");
            }
        }
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Waits for the next group to persist: its target ticket and the journal
/// commits it covers; `None` when shut down.
fn next_target(shared: &Shared, done: u64) -> Option<(u64, u64)> {
    let mut requests = lock(&shared.requests);
    while requests.requested == done {
        if requests.shutdown {
            return None;
        }
        requests = shared
            .wake
            .wait(requests)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
    }
    let deadline = Instant::now() + MAX_GATHER;
    while requests.inflight > 0 && !requests.shutdown {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        requests = shared
            .wake
            .wait_timeout(requests, left)
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0;
    }
    Some((requests.requested, requests.commits))
}

fn run(shared: &Shared, db: &Database) {
    let mut done = 0u64;
    while let Some((target, commits)) = next_target(shared, done) {
        let result = db.persist(PersistMode::SyncData);
        shared.fsyncs.fetch_add(1, Ordering::Relaxed);
        seqline_telemetry::emit(seqline_telemetry::events::EngineFsynced);
        {
            let mut callbacks = lock(&shared.callbacks);
            let due: Vec<(u64, OnDurable)> = match &result {
                Ok(()) => {
                    let (due, later) = std::mem::take(&mut *callbacks)
                        .into_iter()
                        .partition(|(t, _)| *t <= target);
                    *callbacks = later;
                    due
                }
                Err(_) => std::mem::take(&mut *callbacks),
            };
            // Bookkeeping first, then the waiters: one that resumes finds
            // its write's marks already moved.
            for (_, then) in due {
                then(result.is_ok());
            }
            shared.completed.send_modify(|c| match &result {
                Ok(()) => {
                    c.ticket = target;
                    c.commits = commits;
                }
                Err(e) => {
                    tracing::error!(error = %e, "fsync failed; the engine stops accepting writes");
                    c.failed = Some(Arc::from(e.to_string()));
                }
            });
        }
        if result.is_err() {
            return;
        }
        done = target;
    }
    // Shut down: everything requested was persisted above; anything left
    // can never be.
    for (_, then) in std::mem::take(&mut *lock(&shared.callbacks)) {
        then(false);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::test_dir::TestDir;
    use fjall::KeyspaceCreateOptions;
    use std::sync::mpsc;

    #[test]
    fn bookkeeping_runs_once_its_write_is_durable_even_with_nobody_waiting() {
        let dir = TestDir::new();
        let db = Database::builder(&dir.0).manual_journal_persist(true).open().unwrap();
        let ks = db.keyspace("k", KeyspaceCreateOptions::default).unwrap();
        let group = GroupCommit::start(db.clone()).unwrap();
        let (tx, rx) = mpsc::channel();

        let mut batch = db.batch();
        batch.insert(&ks, "a", "1");
        let ticket = group.commit(group.enter().unwrap(), batch).unwrap();
        let first = tx.clone();
        group.on_durable(ticket, Box::new(move |ok| first.send(("first", ok)).unwrap()));
        // No task waits on the ticket (its writer is gone): the syncer
        // thread still persists it and runs the bookkeeping.
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), ("first", true));
        assert!(group.fsyncs() >= 1);

        // A ticket that is already durable runs at once, on the caller.
        group.on_durable(ticket, Box::new(move |ok| tx.send(("late", ok)).unwrap()));
        assert_eq!(rx.try_recv().unwrap(), ("late", true));
        group.shutdown();
    }
}
