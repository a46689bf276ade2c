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
//! Modules import only what sits below them (`server` and `http` at the
//! top, then `session`, `pushes`, `state`, `reads`, `registry` and the
//! leaves): there are no cycles.
//! - [`config`]: [`GatewayConfig`] and its cross-field checks.
//! - `server`: [`serve`]/[`run`], the router, background tasks, the drain.
//! - `edge`: the socket edge: the accept loop (`listener`), open
//!   connections per address (`peers`), parsing client frames into precise
//!   error codes (`frames`), the token bucket (`ratelimit`), close codes and
//!   how a connection ends (`close`).
//! - `http`: the HTTP API and its error shape; `http::conversations`;
//!   `http::upgrade`: checks before a WebSocket upgrade.
//! - `session`: an authenticated connection: `connect` (`hello`,
//!   registration, the close), the per-connection loop (`Session`, all its
//!   methods in `session/mod.rs`), and one handler per concern: `send`,
//!   `batch`, `timeline` (sync, cursor, ping), `history`, `diffusion`
//!   (sync_conv, read, unread), `poll`, `epoch` (start over when the
//!   store's epoch changed).
//! - `pushes`: the consumers of `gw.<id>` and `gw-priority.<id>`:
//!   `receipts` (acks, nacks, packages), `notices`, `read_marks`.
//! - `state`: [`Ports`] and what the tasks share.
//! - `reads`: read diffusion (see `docs/huge-groups.md`): the hot-tail cache
//!   (`tail`), coalesced reads (`flight`), pages (`pages`) and the follows
//!   registered in Presence (`follows`).
//! - `registry`: the authenticated connections by device, and the one
//!   place a full queue kicks a connection (`Registry::offer`); `outbox`:
//!   each connection's queue, bounded in bytes.
//! - `publisher`: the batching appender to the inbound topic; `waiters`:
//!   HTTP requests waiting for their receipt; `refusals`: the sends the
//!   gateway refused, so they never block a `prev` chain; `admission`:
//!   bounded work in flight.
//! - [`metrics`]: counters at `GET /metrics`.

mod admission;
pub mod config;
mod edge;
mod error;
mod http;
pub mod metrics;
mod outbox;
mod publisher;
mod pushes;
mod reads;
mod refusals;
mod registry;
mod server;
mod session;
mod state;
mod waiters;

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
    edge::frames::parse(text).map_err(|r| r.code)
}
