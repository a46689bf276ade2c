//! The Redis adapter of seqline: [`RedisPresence`], which gateway holds which
//! device of which user, with a time to live refreshed by heartbeats so the
//! entries of a dead gateway disappear by themselves. The cluster-mode
//! counterpart of `seqline_embedded::MemoryPresence`.
//!
//! ```no_run
//! # async fn demo() -> seqline_core::Result<()> {
//! use seqline_redis::{RedisOptions, RedisPresence};
//! let presence = RedisPresence::connect(RedisOptions::new("redis://127.0.0.1:6379")).await?;
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`options`]: [`RedisOptions`], the URL, key prefix and timeouts.
//! - [`presence`]: [`RedisPresence`], the `Presence` port on one hash per user.
//! - `entry`: keys, the `gateway|expiry_ms` values and the Lua scripts.
//! - `error`: mapping of `redis` errors to the port error.

mod entry;
mod error;
pub mod options;
pub mod presence;

pub use options::RedisOptions;
pub use presence::RedisPresence;
