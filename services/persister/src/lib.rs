//! The persister role: turns commands into stored, numbered messages and
//! messages into per-user timelines.
//!
//! - The **sequencer** consumes `inbound` (key = conversation). Per
//!   conversation it deduplicates by client id, checks membership, role and
//!   sender order, assigns contiguous `conv_seq`, writes the message store
//!   with a compare-and-set on the head, then sends the receipt to the
//!   sender's gateway and one delivery per member, and only then commits its
//!   input offset.
//! - The **timeline writer** consumes `deliveries` (key = user), assigns
//!   contiguous `user_seq`, writes the timeline (compare-and-set on the head),
//!   emits user events, then commits. It skips deliveries it has applied, so
//!   replays are harmless.
//!
//! # Layout
//! - [`config`] — `PersisterConfig`.
//! - [`sequencer`] — the pure per-conversation state machine and its worker.
//! - [`timeline`] — the timeline writer.
//! - `worker` — the consume → process → commit loop both workers share,
//!   from the worker runtime (`seqline-worker`).

pub mod config;
pub mod sequencer;
pub mod timeline;
mod worker;

pub use config::PersisterConfig;

use seqline_core::ports::{Log, Store};
use seqline_worker::Tasks;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The ports the persister needs.
#[derive(Clone)]
pub struct Ports {
    /// The log (inbound, deliveries, user events, gateway topics).
    pub log: Arc<dyn Log>,
    /// The store (messages, timelines, state).
    pub store: Arc<dyn Store>,
}

/// Runs the sequencer and the timeline writer until `shutdown` is cancelled
/// or one of them fails (which cancels the other).
pub async fn run(config: PersisterConfig, ports: Ports, shutdown: CancellationToken) -> seqline_core::Result<()> {
    let mut tasks = Tasks::new(&shutdown);
    tasks.spawn("sequencer", sequencer::run(config.clone(), ports.clone(), tasks.stop()));
    tasks.spawn("timeline writer", timeline::run(config, ports, tasks.stop()));
    Ok(tasks.join().await?)
}
