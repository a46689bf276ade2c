//! What a check run found: a count per check, a few witnesses each, totals.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// One check of the consistency checker (C1, C2, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum CheckId {
    C1,
    C2,
    C3,
    C4,
    C5,
    C6,
    C7,
    C8,
    C9,
    C10,
    C11,
    C12,
    C13,
    C14,
    L1,
}

impl CheckId {
    /// Every check, in table order.
    pub const ALL: [CheckId; 15] = [
        CheckId::C1,
        CheckId::C2,
        CheckId::C3,
        CheckId::C4,
        CheckId::C5,
        CheckId::C6,
        CheckId::C7,
        CheckId::C8,
        CheckId::C9,
        CheckId::C10,
        CheckId::C11,
        CheckId::C12,
        CheckId::C13,
        CheckId::C14,
        CheckId::L1,
    ];

    /// What the check asserts, in one line.
    pub fn description(self) -> &'static str {
        match self {
            CheckId::C1 => "one message per (conv, conv_seq) across everything seen",
            CheckId::C2 => "a client_msg_id sits at one conv_seq at most",
            CheckId::C3 => "conv_seq of each conversation is exactly 1..max",
            CheckId::C4 => "every acked message is in every covered member's final view",
            CheckId::C5 => "nothing seen that was never sent or was refused; hashes match",
            CheckId::C6 => "an unknown-outcome send appears at most once",
            CheckId::C7 => "every member's final view is the same sequence, cut by membership",
            CheckId::C8 => "pulls return from+1, from+2, ...; cursors never move back",
            CheckId::C9 => "after dedup and insert-by-seq a live view is a prefix",
            CheckId::C10 => "user_seq is exactly 1..N, one entry each, ordered by conv_seq",
            CheckId::C11 => "sender order holds; an ack's conv_seq is what readers saw",
            CheckId::C12 => "read-diffusion convs: each member device gets each message once, in order",
            CheckId::C13 => "a vector clock never counts a message not sequenced below it",
            CheckId::C14 => "a device's sends carry growing clocks, as readers saw them",
            CheckId::L1 => "after the last heal every device converges within the bound",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for CheckId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The size of the run the report covers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Events read.
    pub events: u64,
    /// Distinct client_msg_ids with a `send_invoke`.
    pub sends_invoked: u64,
    /// `send_ok` events (acks, resends included).
    pub sends_ok: u64,
    /// Distinct client_msg_ids definitely refused.
    pub sends_failed: u64,
    /// Distinct client_msg_ids whose outcome stayed unknown.
    pub sends_unknown: u64,
    /// Distinct client_msg_ids acknowledged.
    pub messages_acked: u64,
    /// Unknown-outcome sends that appeared in someone's view.
    pub unknown_recovered: u64,
    /// Devices (user, device) that recorded events.
    pub devices: u64,
    /// Conversations seen or sent to.
    pub conversations: u64,
}

/// The outcome of [`crate::check()`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Anomalies per check (every check present, 0 when clean).
    pub counts: BTreeMap<CheckId, u64>,
    /// Up to `max_witnesses` human-readable witnesses per check.
    pub witnesses: BTreeMap<CheckId, Vec<String>>,
    /// The size of the run.
    pub totals: Totals,
    /// What could not be checked and why (no heal, no final views, ...).
    pub notes: Vec<String>,
}

impl Report {
    /// Anomalies found by `id`.
    pub fn count(&self, id: CheckId) -> u64 {
        self.counts.get(&id).copied().unwrap_or(0)
    }

    /// Witnesses kept for `id`.
    pub fn witnesses(&self, id: CheckId) -> &[String] {
        self.witnesses.get(&id).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Anomalies over every check.
    pub fn anomalies(&self) -> u64 {
        self.counts.values().sum()
    }

    /// Whether every check counted 0.
    pub fn is_clean(&self) -> bool {
        self.anomalies() == 0
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.totals;
        writeln!(
            f,
            "events {}, devices {}, conversations {}",
            t.events, t.devices, t.conversations
        )?;
        writeln!(
            f,
            "sends invoked {}, acked {} ({} acks), refused {}, unknown {} ({} recovered)",
            t.sends_invoked, t.messages_acked, t.sends_ok, t.sends_failed, t.sends_unknown, t.unknown_recovered
        )?;
        writeln!(f, "{:<5} {:<68} {:>8}", "check", "description", "count")?;
        for id in CheckId::ALL {
            writeln!(
                f,
                "{:<5} {:<68} {:>8}",
                id.to_string(),
                id.description(),
                self.count(id)
            )?;
        }
        for id in CheckId::ALL {
            for w in self.witnesses(id) {
                writeln!(f, "  {id}: {w}")?;
            }
        }
        for note in &self.notes {
            writeln!(f, "note: {note}")?;
        }
        write!(f, "{}", if self.is_clean() { "CLEAN" } else { "ANOMALIES FOUND" })
    }
}

/// Collects anomalies while the checks run; witnesses are formatted only
/// while there is room for them, so a million anomalies stay cheap.
pub(crate) struct Findings {
    counts: [u64; CheckId::ALL.len()],
    witnesses: [Vec<String>; CheckId::ALL.len()],
    max: usize,
}

impl Findings {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            counts: [0; CheckId::ALL.len()],
            witnesses: Default::default(),
            max,
        }
    }

    /// Counts one anomaly of `id`; `witness` describes it.
    pub(crate) fn hit(&mut self, id: CheckId, witness: impl FnOnce() -> String) {
        self.hit_n(id, 1, witness);
    }

    /// Counts `n` anomalies of `id` described by one witness.
    pub(crate) fn hit_n(&mut self, id: CheckId, n: u64, witness: impl FnOnce() -> String) {
        let i = id.index();
        self.counts[i] += n;
        if self.witnesses[i].len() < self.max {
            self.witnesses[i].push(witness());
        }
    }

    pub(crate) fn into_report(self, totals: Totals, notes: Vec<String>) -> Report {
        let mut witnesses = BTreeMap::new();
        for (id, mut w) in CheckId::ALL.into_iter().zip(self.witnesses) {
            if !w.is_empty() {
                w.sort();
                witnesses.insert(id, w);
            }
        }
        let counts = CheckId::ALL
            .into_iter()
            .map(|id| (id, self.counts[id.index()]))
            .collect();
        Report {
            counts,
            witnesses,
            totals,
            notes,
        }
    }
}
