//! What every task of a run writes to: the history (one clock for the whole
//! run), counters, latency histograms, and the send times that end-to-end
//! latency is measured from.

use hdrhistogram::Histogram;
use seqline_checker::{EventBody, HistoryWriter};
use seqline_core::ids::{ClientMsgId, ConversationId};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Counters of a run.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub invoked: AtomicU64,
    pub acked: AtomicU64,
    pub failed: AtomicU64,
    pub unknown: AtomicU64,
    pub pushed: AtomicU64,
    pub pulled: AtomicU64,
    pub connects: AtomicU64,
    pub disconnects: AtomicU64,
    pub resets: AtomicU64,
    pub priority_pushes: AtomicU64,
    pub priority_invoked: AtomicU64,
}

impl Counters {
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// A latency histogram in microseconds, shared by many tasks.
#[derive(Debug)]
pub(crate) struct Latency(Mutex<Histogram<u64>>);

impl Latency {
    fn new() -> anyhow::Result<Self> {
        // 1 µs to 1 hour at 3 significant digits.
        Ok(Self(Mutex::new(Histogram::new_with_bounds(1, 3_600_000_000, 3)?)))
    }

    pub fn record(&self, d: Duration) {
        let micros = (d.as_micros() as u64).clamp(1, 3_600_000_000);
        let mut h = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let _ = h.record(micros);
    }

    pub fn snapshot(&self) -> Histogram<u64> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Shared state of a run.
#[derive(Debug)]
pub(crate) struct Stats {
    start: Instant,
    history: HistoryWriter,
    pub counters: Counters,
    pub ack_latency: Latency,
    pub e2e_latency: Latency,
    /// Intended send time to the `priority` push (W4).
    pub priority_latency: Latency,
    /// When each message was (meant to be) sent.
    sent_at: Mutex<HashMap<ClientMsgId, Instant>>,
    /// The highest acked conv_seq per conversation: what every member must
    /// end up with.
    acked_max: Mutex<HashMap<ConversationId, u64>>,
}

impl Stats {
    pub fn new(history: HistoryWriter) -> anyhow::Result<Self> {
        Ok(Self {
            start: Instant::now(),
            history,
            counters: Counters::default(),
            ack_latency: Latency::new()?,
            e2e_latency: Latency::new()?,
            priority_latency: Latency::new()?,
            sent_at: Mutex::new(HashMap::new()),
            acked_max: Mutex::new(HashMap::new()),
        })
    }

    /// Records one history event of `user`'s `device`, stamped now.
    pub fn record(&self, user: &str, device: &str, body: EventBody) {
        let t = self.start.elapsed().as_micros() as u64;
        self.history.record(seqline_checker::Event {
            t,
            user: user.into(),
            device: device.into(),
            body,
        });
    }

    /// Remembers when `id` was meant to be sent.
    pub fn sent(&self, id: ClientMsgId, at: Instant) {
        self.sent_at.lock().unwrap_or_else(|p| p.into_inner()).insert(id, at);
    }

    /// When `id` was meant to be sent, if this run sent it.
    pub fn sent_time(&self, id: &ClientMsgId) -> Option<Instant> {
        self.sent_at.lock().unwrap_or_else(|p| p.into_inner()).get(id).copied()
    }

    /// `conv_seq` of `conv` was acked.
    pub fn acked(&self, conv: &ConversationId, conv_seq: u64) {
        let mut m = self.acked_max.lock().unwrap_or_else(|p| p.into_inner());
        let e = m.entry(conv.clone()).or_insert(0);
        *e = (*e).max(conv_seq);
    }

    /// The highest acked conv_seq of `conv` (0 when none).
    pub fn acked_max(&self, conv: &ConversationId) -> u64 {
        let m = self.acked_max.lock().unwrap_or_else(|p| p.into_inner());
        m.get(conv).copied().unwrap_or(0)
    }

    /// The history writer (to finish it).
    pub fn history(&self) -> &HistoryWriter {
        &self.history
    }

    /// Time since the run started.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
}
