//! Embedded (single-process) adapters of seqline: a durable, partitioned log
//! and the message store on one fjall database with fsync group commit, and
//! an in-process presence map. Production code with the real semantics, the
//! default of `seqline dev`.
//!
//! ```no_run
//! # async fn demo() -> seqline_core::Result<()> {
//! use seqline_embedded::{EmbeddedEngine, EmbeddedLog, EmbeddedStore, LogOptions, MemoryPresence};
//! let engine = EmbeddedEngine::open(std::path::Path::new("/var/lib/seqline"))?;
//! let log = EmbeddedLog::open(engine.clone(), LogOptions::default())?;
//! let store = EmbeddedStore::open(engine)?;
//! let presence = MemoryPresence::new();
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`engine`]: [`EmbeddedEngine`], the database, keyspaces and the async bridge.
//! - `sync`: group commit, one `fdatasync` for many concurrent writers; a
//!   persist briefly gathers writers already on their way to a commit.
//! - [`log`]: [`EmbeddedLog`], topics, partitions, offsets, consumer groups, retention.
//! - [`store`]: [`EmbeddedStore`], conversations, messages, timelines, cursors.
//! - [`presence`]: [`MemoryPresence`], user/device → gateway with TTLs.
//! - `keys`: big-endian, length-prefixed key encoding.
//! - `wire`: the versioned postcard encoding of stored values.
//! - [`error`]: [`EngineError`] and its mapping to the port error.

pub mod engine;
pub mod error;
mod keys;
pub mod log;
pub mod presence;
pub mod store;
mod sync;
#[cfg(test)]
mod test_dir;
mod wire;

pub use engine::{EmbeddedEngine, EngineOptions};
pub use error::EngineError;
pub use log::{EmbeddedLog, LogOptions};
pub use presence::MemoryPresence;
pub use store::EmbeddedStore;
