//! The heart of seqline: ids, the domain model, the client protocol, the log
//! records, the ports (`Log`, `Store`, `Presence`) and the pure algorithms
//! (dedup window, rectifier, vector clock, insert-by-seq views).
//!
//! This crate knows nothing of Kafka, ScyllaDB, Redis, fjall or sockets:
//! adapters implement the ports, services use them.
//!
//! # Layout
//! - [`ids`] — newtype ids and sequence numbers.
//! - [`epoch`] — the id of a store's incarnation (wiped store, other data).
//! - [`model`] — messages, timeline entries, conversations, outcomes.
//! - [`records`] — what travels on the log between the roles.
//! - [`trace`] — the W3C trace context a record carries across the log.
//! - [`protocol`] — WebSocket protocol v1 frames and error codes.
//! - [`ports`] — the `Log`, `Store` and `Presence` traits.
//! - [`input`] — client input: quoting it in error texts, strict JSON,
//!   decoding with errors that never echo it at length.
//! - [`token`] — signed device tokens (HS256, algorithm pinned).
//! - [`algo`] — pure algorithms, unit- and property-tested.
//! - [`error`] — the one error type of the ports.
//! - [`failpoint`] — named failure points, counted, pausable by tests.
//! - [`duration`] — `"250ms"` durations for configuration.

pub mod algo;
pub mod duration;
pub mod epoch;
pub mod error;
pub mod failpoint;
pub mod ids;
pub mod input;
pub mod model;
pub mod ports;
pub mod protocol;
pub mod records;
pub mod token;
pub mod trace;

pub use epoch::Epoch;
pub use error::{Error, Result};
pub use ids::{ClientMsgId, ConvSeq, ConversationId, DeviceId, GatewayId, UserId, UserSeq};
