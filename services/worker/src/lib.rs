//! The worker runtime: the one consume → handle → commit loop every role
//! runs, and the supervision of a role's loops.
//!
//! # What a worker is
//!
//! A worker is a member of a consumer group on one topic of the log. The
//! log hands it partitions (and takes them back), and batches of records of
//! one partition at a time, in offset order. What the worker does with a
//! batch is the role's business, written as a [`Handler`]: the sequencer
//! stores commands and emits receipts and deliveries, the timeline writer
//! stores timelines, fanout routes pushes, the gateway dispatches receipts
//! to its connections. Everything around that is the same for every role,
//! so it lives here once, in [`consume`]. A handler that defers work
//! (fanout's conversation lane holds notices back to coalesce them) says
//! when it is due with [`Handler::wake_at`], and the loop calls
//! [`Handler::wake`] then, whether or not a record arrived.
//!
//! # The guarantees of the loop
//!
//! The offset of a batch is committed only after its handler returned,
//! that is once every output of the batch is durable (or, for best-effort
//! pushes, sent). A crash anywhere before the commit makes the next owner
//! of the partition read the batch again, so every record is handled at
//! least once and handlers must be idempotent: they are, because what they
//! store is keyed (dedup windows, per-conversation and per-user heads) and
//! what they emit is deduplicated downstream.
//!
//! A partition never stops on one bad record. A record that cannot be
//! decoded is set aside on the dead-letter topic before the batch reaches
//! the handler; a record the handler refuses for good is set aside after
//! the batch was redone one record at a time (see below); a record of the
//! wrong type is set aside by the handler with [`unexpected`]. Every
//! dead letter is built by this crate, so they all read the same.
//!
//! A batch in hand is finished even when shutdown is asked for, so what was
//! stored gets its outputs and its commit; shutdown is noticed between
//! batches.
//!
//! # Error classes
//!
//! An error's kind says whether trying again can help, and the loop acts on
//! it in one place ([`Class`]):
//!
//! - **Transient** (`Unavailable`): a backend is down or overloaded. The
//!   batch is handled again after a pause that doubles each time, up to a
//!   bounded number of attempts; then the error is returned and the
//!   supervisor decides.
//! - **Refused** (`Invalid`): the same input will always fail, so retrying
//!   is pointless and failing the partition would block it forever. The
//!   batch is redone one record at a time, in order (records already done
//!   are answered again from what was stored, not redone), and only the
//!   refused records are dead-lettered; the partition flows on.
//! - **Fenced** (`Fenced`) from the handler: a conditional write lost
//!   because another owner wrote the same data (a conversation's or user's
//!   head moved under us). What the handler cached about it is stale: the
//!   loop calls [`Handler::reset`] and handles the batch again (as a
//!   transient failure, with the same bounded attempts), so the retry
//!   starts from what is stored. Handlers return `Fenced` as it is; they do
//!   not disguise it as `Unavailable`.
//! - **Fenced on commit**: the partition moved to another member while the
//!   batch was handled. The outputs are durable and idempotent and the new
//!   owner redoes the batch from the committed offset, so the batch is
//!   dropped and polling goes on.
//! - **Anything else** (`Corrupt`, `Config`, `NotFound`, `ShuttingDown`) is
//!   returned at once.
//!
//! Failures of the log itself, while polling or committing, are a policy of
//! the caller ([`OnLogFailure`]): the persister and fanout return them (the
//! process supervisor restarts the role), the gateway logs them and polls
//! again after a pause, since it must keep serving its connections.
//!
//! # Tracing
//!
//! Each batch is handled inside a `batch` span carrying the group, the
//! topic, the partition, the first offset and the number of records. It is
//! a root span, not a child of the consumer's `consume` span: a batch joins
//! its first record's trace, or starts one of its own, never a trace as
//! long-lived as the consumer. When traces are exported, each record
//! carries the trace context of the span that appended it, and the batch's
//! span continues it: it is the child of the first traced record's context
//! and links to the traces of the others (up to 32 distinct ones). One span
//! per batch rather than per record keeps the cost of tracing per batch;
//! what the handler appends inside it carries the batch's context on, so a
//! message's trace runs unbroken through every hop where it is the first
//! record of its batch, and is reached through a link where it is not. A
//! handler that must tell the records of a batch apart in traces (the
//! gateway, whose batches mix many users' pushes) opens a span per record
//! from [`Input::trace`].
//!
//! # Supervision
//!
//! A role that runs several loops side by side (fanout's three lanes, the
//! persister's sequencer and timeline writer) runs them as named [`Tasks`]:
//! the first one to fail cancels the others, and the caller learns which
//! one failed and why.

mod consume;
mod dead;
mod tasks;

pub use consume::{classify, consume, Class, Handler, Input, OnLogFailure, Options, MAX_ATTEMPTS};
pub use dead::{refused, undecodable, unexpected};
pub use tasks::{TaskFailed, Tasks};

#[cfg(test)]
mod tests;
