//! The seqline gateway: holds the clients' WebSocket connections (protocol
//! v1, see `docs/protocol.md`) and the HTTP API. It authenticates devices,
//! validates and rate-limits their frames, publishes commands to the inbound
//! topic in batches, answers sync, history and cursors from the store, and
//! consumes its own topic to deliver receipts (`ack`/`nack`) and rectified
//! pushes.
//!
//! The `seqline` binary wires it: [`run`] (or [`serve`] on a bound listener)
//! with a [`GatewayConfig`], the [`Ports`] and a shutdown token.
//!
//! # Layout
//! - [`config`]: [`GatewayConfig`] and its cross-field checks.
//! - `server`: [`serve`]/[`run`], the router, background tasks, the drain.
//! - `listener`: the accept loop (header deadline, head size, connection cap).
//! - `upgrade`: checks before the upgrade (origin, connection slots).
//! - `peers`: open connections per client address (`max_connections_per_ip`).
//! - `connection`: `hello`, registration, close codes.
//! - `session`: the per-connection loop (frames in, queue out, rectifier timer).
//! - `requests`: send, sync, history, cursor and ping; `batch`: ordered
//!   batches of one conversation's commands.
//! - `diffusion`: sync_conv, poll, read and unread (read diffusion, see
//!   `docs/huge-groups.md`); `reads`: the coalesced, cached conversation
//!   reads, the follows and the notices; `tail`: the hot-tail cache.
//! - `epoch`: the store's epoch in requests (start over when it changed).
//! - `frames`: parsing client frames into precise error codes; `refusals`:
//!   the sends the gateway refused, so they never block a `prev` chain.
//! - `publisher`: the batching appender to the inbound topic.
//! - `receipts`: the consumers of `gw.<id>` (receipts, packages, notices,
//!   read marks) and of `gw-priority.<id>` (high-priority notices).
//! - `hub`: connections by device; `outbox`: each one's queue, bounded in bytes.
//! - `http`, `conversations`: the HTTP API and its error shape.
//! - `state`: [`Ports`] and what the tasks share; `ratelimit`: token bucket.
//! - [`metrics`]: counters at `GET /metrics`.

mod admission;
mod batch;
pub mod config;
mod connection;
mod conversations;
mod diffusion;
mod epoch;
mod error;
mod frames;
mod http;
mod hub;
mod listener;
pub mod metrics;
mod outbox;
mod peers;
mod publisher;
mod ratelimit;
mod reads;
mod receipts;
mod refusals;
mod requests;
mod server;
mod session;
mod state;
mod tail;
mod upgrade;

pub use config::GatewayConfig;
pub use error::Error;
pub use metrics::Metrics;
pub use server::{run, serve};
pub use state::Ports;

/// Parses one client text frame, as a connection does; for the fuzz targets
/// in `fuzz/`, not an API.
#[doc(hidden)]
pub fn parse_client_frame(
    text: &str,
) -> Result<seqline_core::protocol::ClientFrame, seqline_core::protocol::ErrorCode> {
    frames::parse(text).map_err(|r| r.code)
}
