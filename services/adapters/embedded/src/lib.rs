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

/// The decoders of stored bytes (log records, stored messages, keys), with the
/// encoders their round trips need; for the fuzz targets in `fuzz/`, not an API.
#[doc(hidden)]
pub mod fuzzing {
    use seqline_core::model::Message;
    use seqline_core::records::LogRecord;

    /// Decodes a stored log record.
    pub fn decode_record(bytes: &[u8]) -> Result<LogRecord, String> {
        crate::wire::decode_record(bytes)
    }

    /// Encodes a log record for storage.
    pub fn encode_record(record: LogRecord) -> Result<Vec<u8>, String> {
        crate::wire::encode_record(record).map_err(|e| e.to_string())
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
