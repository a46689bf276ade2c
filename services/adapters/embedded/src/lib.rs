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
//! # One fsync per stage
//!
//! The log and the store write into one journal, which keeps order: a crash
//! leaves a prefix of what was written. So a worker's stage needs one fsync
//! for everything it wrote, and writes whose loss the protocol recovers
//! from need none of their own:
//!
//! | write | fsync | why |
//! |---|---|---|
//! | command on `inbound` (gateway) | none | unacknowledged until the sequencer's fsync, which the journal orders after it; a lost command is resent by its client |
//! | messages, dedup, heads (sequencer) | shared | `Store::commit_conversation_ordered`, made durable by the stage's append of `deliveries` (or `Store::flush`) |
//! | `deliveries` (sequencer) | **1** | the only carrier of a message to the timelines |
//! | receipts, `conv-events`, `priority-events` | none | appended after the flush; a lost receipt makes the client resend, a lost push is pulled |
//! | timeline entries (timeline writer) | **1** | `Store::commit_timeline_ordered`, then one `Store::flush` for the batch |
//! | `user-events`, `gw.<id>` pushes (fanout) | none | appended after the flush; pulled after a reconnect |
//! | consumer offsets, retention trims | none | a lost offset redoes a batch, idempotently |
//!
//! A message therefore waits on one fsync before its `ack` and two before
//! its push (concurrent stages share them under load). Measured with
//! `strace -f -c` on `seqline dev` while 500 W1 messages went to 20 users
//! at 50/s: 9,378 `fdatasync` calls before this design (offset commits and
//! trims each forced one, every append and store write waited for its own),
//! 1,378 after, setup included. A "lazy" commit (see `sync`) gets a ticket
//! all the same, so the bookkeeping of an ordered write (its pending head,
//! a topic's durable mark) still moves only once it is durable.
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

/// The decoders of stored bytes (log records, stored messages, keys), with the
/// encoders their round trips need; for the fuzz targets in `fuzz/`, not an API.
#[doc(hidden)]
pub mod fuzzing {
    use seqline_core::model::Message;
    use seqline_core::records::LogRecord;

    /// Decodes a stored log record (its trace context, if any, is dropped).
    pub fn decode_record(bytes: &[u8]) -> Result<LogRecord, String> {
        crate::wire::decode_record(bytes).0
    }

    /// Encodes a log record for storage, without trace context.
    pub fn encode_record(record: LogRecord) -> Result<Vec<u8>, String> {
        crate::wire::encode_record(record, None).map_err(|e| e.to_string())
    }

    /// Decodes a stored message.
    pub fn decode_message(bytes: &[u8]) -> Result<Message, String> {
        crate::wire::decode::<crate::wire::WireMessage>(bytes).map(Message::from)
    }

    /// Encodes a message for storage.
    pub fn encode_message(message: Message) -> Result<Vec<u8>, String> {
        crate::wire::encode(&crate::wire::WireMessage::from(message)).map_err(|e| e.to_string())
    }

    /// Reads `key` part by part as `layout` says (`s` string, `i` u32, `l`
    /// u64) and rebuilds the parts read; the result is the prefix of `key`
    /// they came from.
    pub fn read_key(key: &[u8], layout: &[u8]) -> Result<Vec<u8>, String> {
        let mut reader = crate::keys::KeyReader::new(key);
        let mut rebuilt = crate::keys::Key::new();
        for part in layout {
            rebuilt = match part {
                b's' => rebuilt.str(reader.str().map_err(|e| e.to_string())?),
                b'i' => rebuilt.u32(reader.u32().map_err(|e| e.to_string())?),
                _ => rebuilt.u64(reader.u64().map_err(|e| e.to_string())?),
            };
        }
        Ok(rebuilt.build())
    }
}
