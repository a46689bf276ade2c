//! The history checker of seqline: the load generator records what every
//! device did and saw as JSON lines (`docs`: PROOF.md), and this crate reads
//! that history and checks the guarantees (C1-C11, L1) with one hash-map pass
//! per check, printing small witnesses for anything wrong.
//!
//! # Layout
//! - [`history`]: the event types, the JSON-lines writer and reader, `body_hash`.
//! - [`error`]: the crate's error type.

pub mod error;
pub mod history;

pub use error::CheckerError;
pub use history::{
    body_hash, read_history, Event, EventBody, FinalEntry, HistoryWriter, MemberOp, Scope, Via,
};
