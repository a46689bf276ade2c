//! The ScyllaDB adapter of seqline: [`ScyllaStore`], the message store of
//! cluster mode (conversations, messages, timelines, cursors), the
//! counterpart of `seqline_embedded::EmbeddedStore`.
//!
//! Partitions are bounded by bucketing sequence ranges; heads move only by
//! lightweight transactions, one per batch, so a fenced-off writer fails and
//! leaves nothing visible (see [`store`] for the commit protocol).
//!
//! ```no_run
//! # async fn demo() -> seqline_core::Result<()> {
//! use seqline_scylla::{ScyllaOptions, ScyllaStore};
//! let store = ScyllaStore::connect(ScyllaOptions::from_uri("scylla://127.0.0.1:9042/seqline")?).await?;
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`options`]: [`ScyllaOptions`], nodes, credentials, TLS, keyspace,
//!   replication, consistency, bucket size.
//! - `schema`: `schemas/seqline.cql`, compiled in and split into statements.
//! - `cql`: every statement the store prepares.
//! - `codec`: columns ↔ model, typed rows, the versioned JSON of pending batches.
//! - [`store`]: [`ScyllaStore`]; `heads` (LWT claims), `conversation` and
//!   `timeline` (commit, apply, roll forward), `reads`.
//! - `tls`: the OpenSSL context of TLS links to the nodes.
//! - `error`: driver errors → port errors.
//! - `cql_check` (tests): a small checker of the statements against the schema.

mod codec;
mod cql;
#[cfg(test)]
mod cql_check;
mod error;
pub mod options;
mod schema;
pub mod store;
mod tls;

pub use options::{ConsistencyLevel, ScyllaOptions};
pub use store::{PaxosCounts, ScyllaStore};
