//! The outbox: messages sent but not yet acknowledged, in the order the
//! application sent them. Pure bookkeeping (no I/O), so the resend rules are
//! unit-tested:
//!
//! - every transmission of a message carries the same client id;
//! - `prev` names the message this device sent before it to the same
//!   conversation and that is still pending or was processed by the
//!   sequencer (acked, or refused for good: the sequencer records refusals as
//!   the device's last command too), so the server can keep sender order (G5);
//!   a message the gateway rejected before sequencing, or one given up on,
//!   drops out of the chain;
//! - within a conversation a message is transmitted only after every earlier
//!   one, so a resend never overtakes its predecessor;
//! - `out_of_order` resends the conversation from its first unacked message,
//!   once per chain generation (the other nacks of the same burst are stale);
//!   when that first message already named a settled predecessor, the server
//!   knows another last message (an unknown-outcome send that was sequenced
//!   after all), and the first message goes again with no `prev`: every
//!   earlier one is settled, so nothing can overtake it;
//! - a message unacked past the ack timeout is resent after a backoff with
//!   jitter (when configured: [`Outbox::with_timeout_backoff`]), exponential
//!   in the ack timeouts in a row on the device; any answer from the
//!   sequencer resets it; the later messages of its conversation go right
//!   after it, in order;
//! - a message that has used `max_attempts` transmissions gives up.

use crate::backoff::Backoff;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use seqline_core::ids::{ClientMsgId, ConversationId};
use seqline_core::model::VectorClock;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

/// A message handed to the outbox.
#[derive(Clone, Debug, PartialEq)]
pub struct Pending {
    /// The client id.
    pub id: ClientMsgId,
    /// The conversation.
    pub conv: ConversationId,
    /// The text.
    pub body: String,
    /// High priority.
    pub priority: bool,
    /// The author's vector clock (may be empty).
    pub vclock: VectorClock,
}

/// One transmission to put on the wire.
#[derive(Clone, Debug, PartialEq)]
pub struct Transmit {
    /// The message.
    pub msg: Pending,
    /// Its predecessor from this device in the conversation.
    pub prev: Option<ClientMsgId>,
    /// Transmissions so far, this one included.
    pub attempt: u32,
}

#[derive(Debug)]
enum State {
    Queued { due: Instant },
    InFlight { sent_at: Instant, generation: u64 },
}

#[derive(Debug)]
struct Entry {
    msg: Pending,
    attempts: u32,
    state: State,
    /// Its last transmission named a settled predecessor (or none).
    prev_settled: bool,
}

#[derive(Debug, Default)]
struct Chain {
    /// The latest (in send order) message of this conversation the
    /// sequencer processed (acked or refused for good).
    last_settled: Option<(u64, ClientMsgId)>,
    /// Bumped by every resend-from-first-unacked.
    generation: u64,
    /// The server refused our idea of the last settled message: send the
    /// first pending one without `prev`.
    free_first: bool,
}

impl Chain {
    fn settle(&mut self, order: u64, id: ClientMsgId) {
        if self.last_settled.is_none_or(|(o, _)| o < order) {
            self.last_settled = Some((order, id));
        }
        self.free_first = false;
    }
}

/// What one pass over the outbox decided.
#[derive(Debug, Default)]
pub struct Due {
    /// Put these on the wire, in this order.
    pub transmit: Vec<Transmit>,
    /// These used every attempt and are dropped (outcome unknown).
    pub exhausted: Vec<Pending>,
}

/// The wait before a resend after an ack timeout.
#[derive(Debug)]
struct TimeoutWait {
    backoff: Backoff,
    rng: SmallRng,
    /// Ack timeouts in a row on this device (an answer resets it).
    streak: u32,
}

impl TimeoutWait {
    fn next(&mut self) -> Duration {
        let wait = self.backoff.delay(self.streak, &mut self.rng);
        self.streak = self.streak.saturating_add(1);
        wait
    }
}

/// Pending messages of one device, in send order.
#[derive(Debug)]
pub struct Outbox {
    capacity: usize,
    max_attempts: u32,
    ack_timeout: Duration,
    timeout_wait: Option<TimeoutWait>,
    next_order: u64,
    entries: BTreeMap<u64, Entry>,
    index: HashMap<ClientMsgId, u64>,
    chains: HashMap<ConversationId, Chain>,
}

impl Outbox {
    /// An outbox holding at most `capacity` messages, each transmitted at most
    /// `max_attempts` times, resent when unacked after `ack_timeout`.
    pub fn new(capacity: usize, max_attempts: u32, ack_timeout: Duration) -> Self {
        Self {
            capacity: capacity.max(1),
            max_attempts: max_attempts.max(1),
            ack_timeout,
            timeout_wait: None,
            next_order: 0,
            entries: BTreeMap::new(),
            index: HashMap::new(),
            chains: HashMap::new(),
        }
    }

    /// The same outbox, waiting `backoff` (jitter drawn from a generator
    /// seeded with `seed`) between an ack timeout and the resend: retry `n`
    /// of the backoff, where `n` counts the device's earlier ack timeouts in
    /// a row (an ack or a refusal from the sequencer starts over at 0).
    pub fn with_timeout_backoff(mut self, backoff: Backoff, seed: u64) -> Self {
        self.timeout_wait = Some(TimeoutWait {
            backoff,
            rng: SmallRng::seed_from_u64(seed),
            streak: 0,
        });
        self
    }

    /// Ack timeouts in a row since the last answer from the sequencer.
    pub fn timeouts_in_a_row(&self) -> u32 {
        self.timeout_wait.as_ref().map_or(0, |w| w.streak)
    }

    /// Messages pending.
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    /// Whether a further message would be refused.
    pub fn is_full(&self) -> bool {
        self.entries.len() >= self.capacity
    }
    /// Whether `id` is pending.
    pub fn contains(&self, id: &ClientMsgId) -> bool {
        self.index.contains_key(id)
    }

    /// Queues `msg` for transmission now; hands it back when full or when its
    /// id is already pending.
    pub fn push(&mut self, msg: Pending, now: Instant) -> Result<(), Pending> {
        if self.is_full() || self.index.contains_key(&msg.id) {
            return Err(msg);
        }
        let order = self.next_order;
        self.next_order += 1;
        self.chains.entry(msg.conv.clone()).or_default();
        self.index.insert(msg.id, order);
        self.entries.insert(
            order,
            Entry {
                msg,
                attempts: 0,
                prev_settled: true,
                state: State::Queued { due: now },
            },
        );
        Ok(())
    }

    /// Decides what to transmit now: queued messages whose time has come and
    /// in-flight ones unacked past the timeout, in send order, skipping a
    /// conversation from its first message that must wait. `allow` is asked
    /// before each transmission (a rate limiter); a `false` ends the pass.
    pub fn due(&mut self, now: Instant, mut allow: impl FnMut() -> bool) -> Due {
        let mut out = Due::default();
        // Per conversation: the predecessor so far, and whether it is settled.
        let mut prev: HashMap<ConversationId, (Option<ClientMsgId>, bool)> = HashMap::new();
        let mut blocked: HashSet<ConversationId> = HashSet::new();
        // Conversations with a transmission in this pass.
        let mut sending: HashSet<ConversationId> = HashSet::new();
        let mut dropped = Vec::new();
        for (order, e) in self.entries.iter_mut() {
            let chain = self.chains.entry(e.msg.conv.clone()).or_default();
            let before = prev
                .entry(e.msg.conv.clone())
                .or_insert_with(|| (chain.last_settled.map(|(_, id)| id), true));
            if let (State::InFlight { sent_at, .. }, Some(wait)) = (&e.state, self.timeout_wait.as_mut()) {
                // The first timed-out message of a conversation waits a
                // backoff; the later ones go right after it.
                let deadline = *sent_at + self.ack_timeout;
                let first = !blocked.contains(&e.msg.conv) && !sending.contains(&e.msg.conv);
                if deadline <= now && first && e.attempts < self.max_attempts {
                    e.state = State::Queued {
                        due: deadline + wait.next(),
                    };
                }
            }
            let ready = match e.state {
                State::Queued { due } => due <= now,
                State::InFlight { sent_at, .. } => sent_at + self.ack_timeout <= now,
            };
            if !ready || blocked.contains(&e.msg.conv) {
                if matches!(e.state, State::Queued { .. }) {
                    blocked.insert(e.msg.conv.clone());
                }
                *before = (Some(e.msg.id), false);
                continue;
            }
            if e.attempts >= self.max_attempts {
                dropped.push(*order);
                continue;
            }
            if !allow() {
                break;
            }
            e.attempts += 1;
            e.state = State::InFlight {
                sent_at: now,
                generation: chain.generation,
            };
            let (named, settled) = *before;
            e.prev_settled = settled;
            out.transmit.push(Transmit {
                msg: e.msg.clone(),
                prev: if settled && chain.free_first { None } else { named },
                attempt: e.attempts,
            });
            if self.timeout_wait.is_some() {
                sending.insert(e.msg.conv.clone());
            }
            *before = (Some(e.msg.id), false);
        }
        for order in dropped {
            if let Some(e) = self.remove(order) {
                out.exhausted.push(e.msg);
            }
        }
        out
    }

    /// The ack arrived: the message leaves the outbox and becomes the
    /// predecessor of the conversation's later messages.
    pub fn ack(&mut self, id: &ClientMsgId) -> Option<Pending> {
        let order = *self.index.get(id)?;
        let e = self.remove(order)?;
        self.answered();
        self.chains
            .entry(e.msg.conv.clone())
            .or_default()
            .settle(order, e.msg.id);
        Some(e.msg)
    }

    /// A final refusal: the message leaves the outbox. `processed`: the
    /// sequencer refused it (a nack) and so counts it as the device's last
    /// command, the predecessor of what follows; otherwise (the gateway
    /// rejected the frame) it leaves the chain.
    pub fn refuse(&mut self, id: &ClientMsgId, processed: bool) -> Option<Pending> {
        let order = *self.index.get(id)?;
        let e = self.remove(order)?;
        if processed {
            self.answered();
            self.chains
                .entry(e.msg.conv.clone())
                .or_default()
                .settle(order, e.msg.id);
        }
        Some(e.msg)
    }

    /// `out_of_order` for `id`: resend its conversation from the first
    /// unacked message, unless that already happened since `id` was sent.
    /// Returns whether a resend was scheduled.
    pub fn out_of_order(&mut self, id: &ClientMsgId, now: Instant) -> bool {
        let Some(e) = self.index.get(id).and_then(|o| self.entries.get(o)) else {
            return false;
        };
        let conv = e.msg.conv.clone();
        let chain = self.chains.entry(conv.clone()).or_default();
        match e.state {
            State::InFlight { generation, .. } if generation == chain.generation => {}
            _ => return false,
        }
        chain.generation += 1;
        if e.prev_settled {
            chain.free_first = true;
        }
        for e in self.entries.values_mut().filter(|e| e.msg.conv == conv) {
            e.state = State::Queued { due: now };
        }
        true
    }

    /// Whether a message of `conv` is pending.
    pub fn pending_in(&self, conv: &ConversationId) -> bool {
        self.entries.values().any(|e| e.msg.conv == *conv)
    }

    /// The predecessor the next message of `conv` names (the latest one
    /// the sequencer processed).
    pub fn last_settled(&self, conv: &ConversationId) -> Option<ClientMsgId> {
        self.chains.get(conv).and_then(|c| c.last_settled).map(|(_, id)| id)
    }

    /// `id`, sent outside the outbox (the last send of a batch), was
    /// processed by the sequencer: it is the predecessor of what follows.
    pub fn settled_outside(&mut self, conv: &ConversationId, id: ClientMsgId) {
        let order = self.next_order;
        self.next_order += 1;
        self.chains.entry(conv.clone()).or_default().settle(order, id);
    }

    /// The connection dropped: everything in flight is resent on the next one.
    pub fn disconnected(&mut self, now: Instant) {
        for e in self.entries.values_mut() {
            if let State::InFlight { .. } = e.state {
                e.state = State::Queued { due: now };
            }
        }
    }

    /// The server asked to slow down: nothing is transmitted before `until`,
    /// and what is in flight is resent then (the answer does not say which
    /// message it was about; resends are deduplicated by id).
    pub fn pause(&mut self, until: Instant) {
        for e in self.entries.values_mut() {
            e.state = match e.state {
                State::Queued { due } => State::Queued { due: due.max(until) },
                State::InFlight { .. } => State::Queued { due: until },
            };
        }
    }

    /// The server refused `id` for now (rate limited, unavailable): transmit
    /// it again at `until` (its conversation's later messages wait for it).
    /// With `unsent` (the server says it did not take it: `rate_limited`),
    /// that transmission does not count against `max_attempts`.
    pub fn retry_later(&mut self, id: &ClientMsgId, until: Instant, unsent: bool) -> bool {
        match self.index.get(id).and_then(|o| self.entries.get_mut(o)) {
            Some(e) => {
                if unsent && matches!(e.state, State::InFlight { .. }) {
                    e.attempts = e.attempts.saturating_sub(1);
                }
                e.state = State::Queued { due: until };
                true
            }
            None => false,
        }
    }

    /// When [`Outbox::due`] will next have something to do.
    /// A queued message holds back the later ones of its conversation, so
    /// their times do not count.
    pub fn next_wakeup(&self) -> Option<Instant> {
        let mut blocked: HashSet<&ConversationId> = HashSet::new();
        let mut best: Option<Instant> = None;
        for e in self.entries.values() {
            if blocked.contains(&e.msg.conv) {
                continue;
            }
            let at = match e.state {
                State::Queued { due } => {
                    blocked.insert(&e.msg.conv);
                    due
                }
                State::InFlight { sent_at, .. } => sent_at + self.ack_timeout,
            };
            best = Some(best.map_or(at, |b| b.min(at)));
        }
        best
    }

    /// Empties the outbox (the client is closing).
    pub fn drain(&mut self) -> Vec<Pending> {
        self.index.clear();
        std::mem::take(&mut self.entries).into_values().map(|e| e.msg).collect()
    }

    /// The sequencer answered: resends after a timeout start from the first delay again.
    fn answered(&mut self) {
        if let Some(w) = self.timeout_wait.as_mut() {
            w.streak = 0;
        }
    }

    fn remove(&mut self, order: u64) -> Option<Entry> {
        let e = self.entries.remove(&order)?;
        self.index.remove(&e.msg.id);
        Some(e)
    }
}

#[cfg(test)]
#[path = "outbox_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "outbox_backoff_tests.rs"]
mod backoff_tests;
