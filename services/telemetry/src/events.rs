//! Typed events: the one way a service counts something. Each event knows
//! which series it moves; [`emit`] updates the process registry and, when
//! OTLP export is on, the exported instruments too.
//! *Model:* vector's `internal_events`.

use crate::metrics::{Counter, Metrics, Stage};

/// Something that happened and is counted.
pub trait InternalEvent {
    /// Records the event.
    fn emit(self);
}

/// Records `event`.
pub fn emit(event: impl InternalEvent) {
    event.emit();
}

fn count(counter: Counter, n: u64) {
    if n == 0 {
        return;
    }
    Metrics::global().add(counter, n);
    #[cfg(feature = "otlp")]
    crate::otlp::add(counter, n);
}

fn observe(stage: Stage, ms: u64) {
    Metrics::global().observe(stage, ms);
    #[cfg(feature = "otlp")]
    crate::otlp::record(stage, ms);
}

/// The gateway appended commands to the inbound topic.
#[derive(Debug)]
pub struct CommandsAccepted {
    /// How many.
    pub count: u64,
}

impl InternalEvent for CommandsAccepted {
    fn emit(self) {
        count(Counter::CommandsAccepted, self.count);
    }
}

/// The sequencer stored messages with their `conv_seq`.
#[derive(Debug)]
pub struct MessagesCommitted {
    /// How many.
    pub count: u64,
}

impl InternalEvent for MessagesCommitted {
    fn emit(self) {
        count(Counter::MessagesCommitted, self.count);
    }
}

/// The sequencer had already decided a command (its client id was seen).
#[derive(Debug)]
pub struct CommandDeduplicated {
    /// It was a `send`: the client resent a message.
    pub resend: bool,
}

impl InternalEvent for CommandDeduplicated {
    fn emit(self) {
        count(Counter::DedupHits, 1);
        if self.resend {
            count(Counter::Resends, 1);
        }
    }
}

/// A worker set records aside on the dead-letter topic.
#[derive(Debug)]
pub struct DeadLettered {
    /// How many.
    pub count: u64,
}

impl InternalEvent for DeadLettered {
    fn emit(self) {
        count(Counter::DeadLetters, self.count);
    }
}

/// A conversation commit lost its compare-and-set: another sequencer owns it.
#[derive(Debug)]
pub struct FenceRefused;

impl InternalEvent for FenceRefused {
    fn emit(self) {
        count(Counter::FenceRefusals, 1);
    }
}

/// The sequencer emitted a receipt for a command the gateway accepted at
/// `accepted_ms` (Unix milliseconds).
#[derive(Debug)]
pub struct ReceiptEmitted {
    /// When the gateway accepted the command.
    pub accepted_ms: u64,
    /// Now.
    pub now_ms: u64,
}

impl InternalEvent for ReceiptEmitted {
    fn emit(self) {
        observe(Stage::Ack, self.now_ms.saturating_sub(self.accepted_ms));
    }
}

/// The gateway pushed a timeline entry to a device.
#[derive(Debug)]
pub struct EntryPushed {
    /// When the message was sequenced (its `server_ts_ms`).
    pub server_ts_ms: u64,
    /// Now.
    pub now_ms: u64,
}

impl InternalEvent for EntryPushed {
    fn emit(self) {
        count(Counter::Deliveries, 1);
        observe(Stage::Push, self.now_ms.saturating_sub(self.server_ts_ms));
    }
}

/// A push gap outlived the rectifier's timeout; the device was told to pull.
#[derive(Debug)]
pub struct RectifierTimedOut;

impl InternalEvent for RectifierTimedOut {
    fn emit(self) {
        count(Counter::RectifierTimeouts, 1);
    }
}

/// Fanout sent package fragments to gateways.
#[derive(Debug)]
pub struct PackagesRouted {
    /// How many fragments.
    pub count: u64,
}

impl InternalEvent for PackagesRouted {
    fn emit(self) {
        count(Counter::FanoutPackages, self.count);
    }
}

/// Fanout sent read-diffusion notices to gateways.
#[derive(Debug)]
pub struct NoticesRouted {
    /// Coalesced "advanced to" notices.
    pub notices: u64,
    /// High-priority messages sent in full.
    pub priority: u64,
}

impl InternalEvent for NoticesRouted {
    fn emit(self) {
        count(Counter::FanoutNotices, self.notices);
        count(Counter::FanoutPriority, self.priority);
    }
}

/// The embedded engine's group commit made the journal durable once.
#[derive(Debug)]
pub struct EngineFsynced;

impl InternalEvent for EngineFsynced {
    fn emit(self) {
        count(Counter::EngineFsyncs, 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The registry is per process and tests run in parallel: compare deltas,
    // and only of series no other test of this crate moves.
    #[test]
    fn each_event_moves_its_series() {
        let m = Metrics::global();
        let (dedup, resends) = (m.counter(Counter::DedupHits), m.counter(Counter::Resends));
        emit(CommandDeduplicated { resend: true });
        emit(CommandDeduplicated { resend: false });
        assert_eq!(m.counter(Counter::DedupHits) - dedup, 2);
        assert_eq!(m.counter(Counter::Resends) - resends, 1);

        let (deliveries, pushes) = (m.counter(Counter::Deliveries), m.latency_count(Stage::Push));
        emit(EntryPushed {
            server_ts_ms: 1_000,
            now_ms: 1_012,
        });
        // A clock behind the sequencer's counts as zero, not as a wrap.
        emit(EntryPushed {
            server_ts_ms: 2_000,
            now_ms: 1_000,
        });
        assert_eq!(m.counter(Counter::Deliveries) - deliveries, 2);
        assert_eq!(m.latency_count(Stage::Push) - pushes, 2);

        let acks = m.latency_count(Stage::Ack);
        emit(ReceiptEmitted {
            accepted_ms: 5,
            now_ms: 9,
        });
        assert_eq!(m.latency_count(Stage::Ack) - acks, 1);

        let accepted = m.counter(Counter::CommandsAccepted);
        emit(CommandsAccepted { count: 0 });
        emit(CommandsAccepted { count: 3 });
        assert_eq!(m.counter(Counter::CommandsAccepted) - accepted, 3);
    }
}
