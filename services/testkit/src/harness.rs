//! How a suite gets at an implementation.

use async_trait::async_trait;
use seqline_core::ports::Log;
use seqline_core::records::Topic;
use std::sync::Arc;

/// Opens an implementation of port `P`. Owns whatever the implementation
/// needs (a data directory, a server) and cleans it up when dropped.
#[async_trait]
pub trait Harness<P: ?Sized>: Send + Sync {
    /// Opens the port. Opening again after every earlier handle was dropped
    /// reaches the same data (a restart).
    async fn open(&self) -> Arc<P>;

    /// Opens the port on other, new data (another directory, a fresh
    /// keyspace), as a wiped store looks. `None` when the harness cannot;
    /// checks that need it then fail and say so.
    async fn open_other(&self) -> Option<Arc<P>> {
        None
    }
}

/// A [`Harness`] for logs, with a back door for corrupt records.
#[async_trait]
pub trait LogHarness: Harness<dyn Log> {
    /// Writes `raw` bytes, bypassing the record encoding, as the next record
    /// of `partition` of `topic` in the log last opened; returns its offset.
    /// `None` when the backend cannot (the check is then skipped).
    async fn inject_raw(&self, topic: &Topic, partition: u32, raw: Vec<u8>) -> Option<u64>;
}
