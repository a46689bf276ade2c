//! The client SDK of seqline: connect a device with a token, send messages
//! that resolve to `Sent(conv_seq)` or `Failed` (resent with the same client
//! id, bounded, with backoff and jitter), and receive the user's timeline
//! exactly once per `user_seq`, in order, across reconnects, from a persisted
//! cursor. Gaps are noticed (out-of-order pushes, a pong head above the
//! cursor) and filled by syncing; history pages back to `conv_seq` 1. With
//! `ClientConfig::vector_clocks` on, every send carries the device's vector
//! clock of its conversation and every message received advances it (see
//! [`clocks`]); [`causal_order`] and [`Client::causal_history`] order
//! messages causally. A send unanswered past `request_timeout` is resent
//! after an exponential backoff with full jitter
//! (`ResendPolicy::timeout_backoff`). Huge groups in read-diffusion mode
//! are followed by conversation cursor (long-poll, notices, pulls), so every
//! message of every conversation still arrives exactly once, in conv_seq
//! order; priority announcements are pushed ahead as alerts. The cursor is
//! kept with the epoch of the server's data and the id of the entry at it:
//! when the server's data was wiped, swapped or restored from an older copy,
//! the device drops its timeline and syncs the new data from the start
//! ([`Event::Reset`] with `data_replaced`). [`Client::send_batch`] sends a
//! [`Batch`] (messages, then leaving) as one ordered action: its commands get
//! consecutive `conv_seq`s with nothing in between, or none is sequenced and
//! the refusal names the command that failed.
//!
//! ```no_run
//! # async fn demo() -> seqline_client::Result<()> {
//! use seqline_client::{Client, ClientConfig, Event};
//! let (client, mut events) = Client::connect(ClientConfig::new("ws://127.0.0.1:7600/v1/ws", "TOKEN")).await?;
//! let conv = seqline_core::ConversationId::parse("dm:alice:bob").map_err(|e| seqline_client::ClientError::Config(e.to_string()))?;
//! let handle = client.send(conv, "hello").await?;
//! tokio::spawn(async move {
//!     while let Some(ev) = events.recv().await {
//!         if let Event::Message { entry, .. } = ev { println!("{}", entry.message.body) }
//!     }
//! });
//! println!("{:?}", handle.outcome().await);
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`client`]: [`Client`], the application's handle (send, history, ping, close).
//! - [`config`]: [`ClientConfig`] and [`ResendPolicy`].
//! - [`event`]: [`Event`] and the bounded [`EventStream`].
//! - [`handle`]: [`SendHandle`] and [`SendState`].
//! - [`batch`]: [`Batch`], commands sent as one ordered action.
//! - [`cursor`]: [`CursorStore`] with [`MemoryCursor`] and [`FileCursor`].
//! - [`follow`]: following read-diffusion conversations (huge groups):
//!   which to pull, how far, which timeline entries wait or repeat.
//! - [`http`]: [`HttpApi`], the conversation calls over HTTP/1.1.
//! - [`outbox`], [`inbox`], [`backoff`], [`clocks`]: the pure parts (resend
//!   rules, exactly-once ordered release, backoff and pacing, vector clocks).
//! - `driver`: the background task that owns the socket.
//! - [`error`]: the error type, [`ClientError`].

pub mod backoff;
pub mod batch;
pub mod client;
pub mod clocks;
pub mod config;
pub mod cursor;
mod driver;
pub mod error;
pub mod event;
pub mod follow;
pub mod handle;
pub mod http;
pub mod inbox;
pub mod outbox;

pub use backoff::Backoff;
pub use batch::Batch;
pub use client::{Client, ConvPage, HistoryPage, SendOptions, SyncAnswer};
pub use clocks::causal_order;
pub use config::{ClientConfig, ResendPolicy};
pub use cursor::{ConvPosition, CursorMark, CursorStore, FileCursor, MemoryCursor};
pub use driver::Status;
pub use error::{ClientError, Result};
pub use event::{Event, EventStream, Via};
pub use handle::{FailReason, SendHandle, SendState};
pub use http::{Created, HttpApi};
