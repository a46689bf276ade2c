//! The history checker of seqline: the load generator records what every
//! device did and saw as JSON lines (the history format of tests/README.md), and this crate
//! reads that history and checks the guarantees (C1-C14, L1), one hash-map
//! pass per check, with small witnesses for anything wrong.
//!
//! ```no_run
//! let events = seqline_checker::read_history("history.jsonl")?;
//! let report = seqline_checker::check(&events, &Default::default());
//! println!("{report}");
//! # Ok::<(), seqline_checker::CheckerError>(())
//! ```
//!
//! # Layout
//! - [`history`]: the event types, the JSON-lines writer and reader, `body_hash`.
//! - [`mod@check`]: the checks and the semantics chosen for each.
//! - [`report`]: counts, witnesses, totals, the printed table.
//! - `index`: the one pass over the history every check reads from.
//! - `membership`: who owes which conv_seq.
//! - `fxhash`: the fast hasher of the checker's maps.
//! - [`error`]: the crate's error type.

pub mod check;
pub mod error;
mod fxhash;
pub mod history;
mod index;
mod membership;
pub mod report;

pub use check::{check, CheckOptions};
pub use error::CheckerError;
pub use history::{body_hash, read_history, Event, EventBody, FinalEntry, HistoryWriter, MemberOp, Scope, Via};
pub use report::{CheckId, Report, Totals};
