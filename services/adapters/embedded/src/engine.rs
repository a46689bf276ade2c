//! The engine: one fjall database shared by the log and the store, with
//! group commit and a bridge from async code to fjall's blocking calls.

use crate::error::EngineError;
use crate::sync::{GroupCommit, Ticket, Writing};
use fjall::{Database, Keyspace, KeyspaceCreateOptions, OwnedWriteBatch, PersistMode};
use seqline_core::Result;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Tuning of the engine; the defaults suit a single-process deployment.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Block cache size in bytes.
    pub cache_bytes: u64,
    /// Memtable size per keyspace in bytes.
    pub memtable_bytes: u64,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            cache_bytes: 64 << 20,
            memtable_bytes: 16 << 20,
        }
    }
}

/// One fjall database in one directory, shared by [`crate::EmbeddedLog`] and
/// [`crate::EmbeddedStore`]. Writes are journaled without fsync; callers make
/// them durable with [`EmbeddedEngine::sync`], which coalesces concurrent
/// callers into one `fdatasync`.
pub struct EmbeddedEngine {
    db: Database,
    options: EngineOptions,
    dir: PathBuf,
    group: GroupCommit,
}

impl std::fmt::Debug for EmbeddedEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedEngine")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl EmbeddedEngine {
    /// Opens (or creates) the engine in `dir` with default options.
    pub fn open(dir: &Path) -> Result<Arc<Self>> {
        Self::open_with(dir, EngineOptions::default())
    }

    /// Opens (or creates) the engine in `dir`.
    pub fn open_with(dir: &Path, options: EngineOptions) -> Result<Arc<Self>> {
        Ok(Self::open_inner(dir, options)?)
    }

    fn open_inner(dir: &Path, options: EngineOptions) -> Result<Arc<Self>, EngineError> {
        std::fs::create_dir_all(dir).map_err(fjall::Error::from)?;
        let db = Database::builder(dir)
            .manual_journal_persist(true)
            .cache_size(options.cache_bytes)
            .open()?;
        // What recovery replayed may sit only in the page cache (a process
        // that exited without fsync): make it durable before anyone reads it.
        db.persist(PersistMode::SyncData)?;
        let group = GroupCommit::start(db.clone())?;
        tracing::debug!(dir = %dir.display(), "embedded engine opened");
        Ok(Arc::new(Self {
            db,
            options,
            dir: dir.to_path_buf(),
            group,
        }))
    }

    /// The directory the engine lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Returns once every write made before this call is fsynced. Concurrent
    /// callers share one fsync.
    pub async fn sync(&self) -> Result<()> {
        Ok(self.sync_inner().await?)
    }

    /// How many group-commit fsyncs have run since open.
    pub fn fsync_count(&self) -> u64 {
        self.group.fsyncs()
    }

    pub(crate) async fn sync_inner(&self) -> Result<(), EngineError> {
        let ticket = self.group.request()?;
        self.group.wait(ticket).await
    }

    /// Announces a write about to happen (see [`GroupCommit::enter`]).
    pub(crate) fn enter(&self) -> Result<Writing<'_>, EngineError> {
        self.group.enter()
    }

    /// Commits `batch` to the journal (blocking, no fsync); the ticket makes
    /// it durable with [`EmbeddedEngine::durable`].
    pub(crate) fn commit(&self, writing: Writing<'_>, batch: OwnedWriteBatch) -> Result<Ticket, EngineError> {
        self.group.commit(writing, batch)
    }

    /// Commits `batch` to the journal (blocking) without asking for an
    /// fsync: it is ordered before every later write and becomes durable
    /// with the next persist anyone asks for (see [`EmbeddedEngine::flush`]).
    pub(crate) fn commit_lazy(&self, writing: Writing<'_>, batch: OwnedWriteBatch) -> Result<Ticket, EngineError> {
        self.group.commit_lazy(writing, batch)
    }

    /// Returns once every write made before this call is durable. Free when
    /// the last group commit already covered them (unlike
    /// [`EmbeddedEngine::sync`], which always asks for one).
    pub async fn flush(&self) -> Result<()> {
        Ok(self.group.barrier().await?)
    }

    /// Runs `then` once `ticket` is fsynced (`true`) or never can be
    /// (`false`), whoever is still waiting (see [`GroupCommit::on_durable`]).
    pub(crate) fn on_durable(&self, ticket: Ticket, then: crate::sync::OnDurable) {
        self.group.on_durable(ticket, then);
    }

    /// Returns once `ticket` is fsynced.
    pub(crate) async fn durable(&self, ticket: Ticket) -> Result<(), EngineError> {
        self.group.wait(ticket).await
    }

    /// Opens (or creates) the keyspace `name`.
    pub(crate) fn keyspace(&self, name: &str) -> Result<Keyspace, EngineError> {
        let memtable = self.options.memtable_bytes;
        Ok(self.db.keyspace(name, || {
            KeyspaceCreateOptions::default()
                .manual_journal_persist(true)
                .max_memtable_size(memtable)
        })?)
    }

    /// Makes every write so far durable now, outside the group commit: for
    /// the few writes made once while opening.
    pub(crate) fn persist_now(&self) -> Result<(), EngineError> {
        Ok(self.db.persist(PersistMode::SyncData)?)
    }

    /// A new atomic write batch across keyspaces (not fsynced by itself).
    pub(crate) fn batch(&self) -> OwnedWriteBatch {
        self.db.batch()
    }

    /// A consistent read view across keyspaces.
    pub(crate) fn snapshot(&self) -> fjall::Snapshot {
        self.db.snapshot()
    }
}

impl Drop for EmbeddedEngine {
    fn drop(&mut self) {
        self.group.shutdown();
    }
}

/// Runs fjall work for an async caller, on the caller's thread.
///
/// Every such call is short: a journal write goes to the page cache (the
/// fsync is the sync thread's), a read hits the memtable or the block cache,
/// a scan is bounded by its caller's page size. Measured on the message
/// path, handing each one to the blocking pool cost more than the work: two
/// context switches and a futex wake per call, about half of the server's
/// CPU at 1,000 messages/s. So the work runs inline; the `async` signature
/// stays, so callers are unchanged should a call ever need a thread again.
pub(crate) async fn blocking<F, R>(f: F) -> Result<R, EngineError>
where
    F: FnOnce() -> Result<R, EngineError> + Send + 'static,
    R: Send + 'static,
{
    f()
}

/// Runs `fut` to completion even if the caller stops waiting, so a write is
/// never left half-done (written but its durable mark never advanced).
pub(crate) async fn detached<F, R>(fut: F) -> Result<R>
where
    F: Future<Output = Result<R>> + Send + 'static,
    R: Send + 'static,
{
    tokio::spawn(fut).await.map_err(|e| EngineError::Task(e.to_string()))?
}
