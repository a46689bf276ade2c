//! Group commit: many writers, one `fdatasync` per group.
//!
//! A writer first writes its batch (no fsync), then asks for a *ticket*: the
//! number of sync requests so far, its own included. A dedicated thread takes
//! the highest ticket requested, persists the journal once and publishes that
//! ticket as completed. Every batch written before its writer took a ticket
//! `t` is covered by the first persist that started after `t` was requested,
//! so a writer is durable as soon as `completed >= t`.

use crate::error::{lock, EngineError};
use fjall::{Database, PersistMode};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use tokio::sync::watch;

/// What the syncer thread has made durable.
#[derive(Clone, Debug, Default)]
struct Completed {
    /// Highest ticket covered by a finished persist.
    ticket: u64,
    /// Set forever once a persist failed.
    failed: Option<Arc<str>>,
}

#[derive(Default)]
struct Requests {
    requested: u64,
    shutdown: bool,
}

struct Shared {
    requests: Mutex<Requests>,
    wake: Condvar,
    completed: watch::Sender<Completed>,
}

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

    /// Returns once everything written before this call is fsynced.
    /// Cancel-safe: a cancelled wait leaves at most one extra fsync behind.
    pub(crate) async fn sync(&self) -> Result<(), EngineError> {
        let mut rx = self.shared.completed.subscribe();
        let ticket = {
            let mut requests = lock(&self.shared.requests);
            if requests.shutdown {
                return Err(EngineError::Closed);
            }
            requests.requested += 1;
            requests.requested
        };
        self.shared.wake.notify_one();
        loop {
            {
                let done = rx.borrow_and_update();
                if let Some(reason) = &done.failed {
                    return Err(EngineError::SyncFailed(reason.to_string()));
                }
                if done.ticket >= ticket {
                    return Ok(());
                }
            }
            rx.changed().await.map_err(|_| EngineError::Closed)?;
        }
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

fn run(shared: &Shared, db: &Database) {
    let mut done = 0u64;
    loop {
        let target = {
            let mut requests = lock(&shared.requests);
            while requests.requested == done && !requests.shutdown {
                requests = shared
                    .wake
                    .wait(requests)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            if requests.requested == done {
                return;
            }
            requests.requested
        };
        let result = db.persist(PersistMode::SyncData);
        shared.completed.send_modify(|c| match &result {
            Ok(()) => c.ticket = target,
            Err(e) => {
                tracing::error!(error = %e, "fsync failed; the engine stops accepting writes");
                c.failed = Some(Arc::from(e.to_string()));
            }
        });
        if result.is_err() {
            return;
        }
        done = target;
    }
}
