//! The hot-tail cache: for each conversation read by cursor (read
//! diffusion), its last known committed head and a contiguous run of its
//! most recent messages, so that the devices of a huge group pulling the same
//! new message are served from memory. Bounded by an estimate of the bytes it
//! holds; the least recently used conversations go first.
//!
//! This is the plain data structure; `reads` adds the store, the
//! coalescing of concurrent reads and the metrics.

use seqline_core::model::Message;
use seqline_core::ConversationId;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Bytes counted for a conversation entry besides its messages.
const ENTRY_OVERHEAD: usize = 192;
/// Bytes counted for a message besides its body, name and members.
const MESSAGE_OVERHEAD: usize = 256;

/// What the cache can say about a page `after`/`limit`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// Served from memory: messages from `after + 1`, the head, and whether
    /// more follow.
    Page {
        /// Contiguous from `after + 1` (empty when `after` is at the head).
        messages: Vec<Message>,
        /// The committed head as known.
        head: u64,
        /// More messages follow the page.
        more: bool,
    },
    /// The head is unknown or too old to answer: read it from the store.
    NeedHead,
    /// `after` is beyond the fresh head (a bad cursor, or a head learned
    /// elsewhere first): read the head again to be sure.
    Beyond {
        /// The head as known.
        head: u64,
    },
    /// The page is in the hot region but not in memory: read the store
    /// from `from` and keep what it returns.
    Extend {
        /// Read messages after this conv_seq.
        from: u64,
    },
    /// The page is older than the hot region: read it from the store.
    Cold,
}

#[derive(Debug, Default)]
struct Entry {
    /// Contiguous, ascending conv_seq.
    tail: VecDeque<Message>,
    /// Committed head as last learned (0 = unknown).
    head: u64,
    /// When the head was last confirmed by the store or a notice.
    head_at: Option<Instant>,
    /// Bytes counted for this entry.
    bytes: usize,
    /// Last use, for eviction.
    used: u64,
}

impl Entry {
    fn last(&self) -> Option<u64> {
        self.tail.back().map(|m| m.conv_seq.0)
    }
    fn first(&self) -> Option<u64> {
        self.tail.front().map(|m| m.conv_seq.0)
    }
}

fn message_bytes(m: &Message) -> usize {
    MESSAGE_OVERHEAD + m.body.len() + m.sender_name.len() + m.members.len() * 72 + m.vclock.len() * 80
}

/// The cache of one gateway.
#[derive(Debug)]
pub(crate) struct TailCache {
    entries: HashMap<ConversationId, Entry>,
    /// `used` tick → conversation, oldest first.
    order: BTreeMap<u64, ConversationId>,
    tick: u64,
    bytes: usize,
    budget: usize,
    per_conv: usize,
    head_ttl: Duration,
    evictions: u64,
}

impl TailCache {
    /// A cache of about `budget` bytes keeping up to `per_conv` messages of
    /// each conversation and trusting a head for `head_ttl`.
    pub fn new(budget: usize, per_conv: usize, head_ttl: Duration) -> Self {
        Self {
            entries: HashMap::new(),
            order: BTreeMap::new(),
            tick: 0,
            bytes: 0,
            budget,
            per_conv: per_conv.max(1),
            head_ttl,
            evictions: 0,
        }
    }

    /// Bytes counted now.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Conversations evicted since start.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// The entry of `conv`, created if missing, marked as just used.
    fn touch(&mut self, conv: &ConversationId) -> &mut Entry {
        self.tick += 1;
        let tick = self.tick;
        if !self.entries.contains_key(conv) {
            self.entries.insert(
                conv.clone(),
                Entry {
                    bytes: ENTRY_OVERHEAD,
                    ..Entry::default()
                },
            );
            self.bytes += ENTRY_OVERHEAD;
        }
        let order = &mut self.order;
        let entry = self.entries.entry(conv.clone()).or_default();
        order.remove(&entry.used);
        entry.used = tick;
        order.insert(tick, conv.clone());
        entry
    }

    fn fresh(&self, e: &Entry, now: Instant) -> bool {
        e.head_at
            .is_some_and(|t| now.saturating_duration_since(t) < self.head_ttl)
    }

    /// The head of `conv` if known and fresh.
    pub fn fresh_head(&mut self, conv: &ConversationId, now: Instant) -> Option<u64> {
        let e = self.entries.get(conv)?;
        if self.fresh(e, now) {
            let head = e.head;
            self.touch(conv);
            Some(head)
        } else {
            None
        }
    }

    /// The head of `conv` as known, fresh or not (0 when unknown).
    pub fn known_head(&self, conv: &ConversationId) -> u64 {
        self.entries.get(conv).map_or(0, |e| e.head.max(e.last().unwrap_or(0)))
    }

    /// Records that `conv`'s committed head is at least `head` (confirmed
    /// now); returns true if that is news.
    pub fn set_head(&mut self, conv: &ConversationId, head: u64, now: Instant) -> bool {
        let e = self.touch(conv);
        let advanced = head > e.head;
        e.head = e.head.max(head);
        e.head_at = Some(now);
        self.evict();
        advanced
    }

    /// What the cache can do for a page of `limit` messages after `after`.
    pub fn lookup(&mut self, conv: &ConversationId, after: u64, limit: usize, now: Instant) -> Lookup {
        let Some(e) = self.entries.get(conv) else {
            return Lookup::NeedHead;
        };
        let fresh = self.fresh(e, now);
        let head = e.head.max(e.last().unwrap_or(0));
        let per_conv = self.per_conv as u64;
        let (first, last) = (e.first(), e.last());
        let answer = match (first, last) {
            (Some(first), Some(last)) if first <= after + 1 && after < last => {
                let skip = (after + 1 - first) as usize;
                let messages: Vec<Message> = e.tail.iter().skip(skip).take(limit.max(1)).cloned().collect();
                let end = messages.last().map_or(after, |m| m.conv_seq.0);
                if end < last || fresh {
                    // The page ends inside the tail (so more follow whatever
                    // the head), or the head is fresh.
                    Lookup::Page {
                        messages,
                        head,
                        more: end < head,
                    }
                } else {
                    Lookup::NeedHead
                }
            }
            _ if !fresh => Lookup::NeedHead,
            _ if after == head => Lookup::Page {
                messages: Vec::new(),
                head,
                more: false,
            },
            _ if after > head => Lookup::Beyond { head },
            // Older than the tail.
            (Some(first), Some(_)) if after + 1 < first => Lookup::Cold,
            (_, Some(last)) if after >= last && head - last <= per_conv => Lookup::Extend { from: last },
            _ if head - after <= per_conv => Lookup::Extend { from: after },
            _ => Lookup::Cold,
        };
        if !matches!(answer, Lookup::NeedHead) || self.entries.contains_key(conv) {
            self.touch(conv);
        }
        answer
    }

    /// Keeps `messages` (ascending, from the store) if they join the tail or
    /// are newer than it; returns true if the head moved because of them.
    pub fn merge(&mut self, conv: &ConversationId, messages: &[Message]) -> bool {
        // Only a contiguous run from the first message counts.
        let run = messages
            .iter()
            .enumerate()
            .take_while(|(i, m)| m.conv_seq.0 == messages[0].conv_seq.0 + *i as u64)
            .count();
        let messages = &messages[..run];
        let (Some(new_first), Some(new_last)) = (messages.first(), messages.last()) else {
            return false;
        };
        let (new_first, new_last) = (new_first.conv_seq.0, new_last.conv_seq.0);
        let per_conv = self.per_conv;
        let e = self.touch(conv);
        let before = e.bytes;
        match (e.first(), e.last()) {
            (Some(first), Some(last)) if new_first <= last + 1 && new_last + 1 >= first => {
                // Overlapping or adjacent: extend on either side.
                for m in messages.iter().rev().filter(|m| m.conv_seq.0 < first) {
                    e.bytes += message_bytes(m);
                    e.tail.push_front(m.clone());
                }
                for m in messages.iter().filter(|m| m.conv_seq.0 > last) {
                    e.bytes += message_bytes(m);
                    e.tail.push_back(m.clone());
                }
            }
            (Some(_), Some(last)) if new_first <= last => {} // older and apart: not kept
            _ => {
                e.bytes = ENTRY_OVERHEAD;
                e.tail.clear();
                for m in messages {
                    e.bytes += message_bytes(m);
                    e.tail.push_back(m.clone());
                }
            }
        }
        while e.tail.len() > per_conv {
            if let Some(m) = e.tail.pop_front() {
                e.bytes -= message_bytes(&m);
            }
        }
        let advanced = new_last > e.head;
        e.head = e.head.max(new_last);
        let after = e.bytes;
        self.bytes = self.bytes + after - before;
        self.evict();
        advanced
    }

    /// Appends one message if it continues the tail (a priority message
    /// pushed in full); returns true if the head moved.
    pub fn offer(&mut self, m: &Message) -> bool {
        match self.entries.get(&m.conv).and_then(Entry::last) {
            Some(last) if m.conv_seq.0 == last + 1 => self.merge(&m.conv.clone(), std::slice::from_ref(m)),
            _ => false,
        }
    }

    /// Forgets least recently used conversations until within budget (the
    /// most recent one stays, whatever its size).
    fn evict(&mut self) {
        while self.bytes > self.budget && self.entries.len() > 1 {
            let Some((_, conv)) = self.order.pop_first() else {
                break;
            };
            if let Some(e) = self.entries.remove(&conv) {
                self.bytes -= e.bytes;
                self.evictions += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use seqline_core::ids::{ClientMsgId, ConvSeq, DeviceId, UserId};
    use seqline_core::model::MessageKind;

    fn conv(name: &str) -> ConversationId {
        ConversationId::parse(name).unwrap()
    }

    fn msg(c: &ConversationId, seq: u64) -> Message {
        Message {
            conv: c.clone(),
            conv_seq: ConvSeq(seq),
            client_msg_id: ClientMsgId::random(),
            sender: UserId::parse("al").unwrap(),
            sender_device: DeviceId::parse("p").unwrap(),
            kind: MessageKind::Text,
            body: "x".repeat(100),
            members: Vec::new(),
            priority: false,
            server_ts_ms: 1,
            vclock: Default::default(),
            sender_name: String::new(),
            read_diffusion: true,
        }
    }

    fn msgs(c: &ConversationId, seqs: std::ops::RangeInclusive<u64>) -> Vec<Message> {
        seqs.map(|s| msg(c, s)).collect()
    }

    fn seqs(l: &Lookup) -> Vec<u64> {
        match l {
            Lookup::Page { messages, .. } => messages.iter().map(|m| m.conv_seq.0).collect(),
            other => panic!("not a page: {other:?}"),
        }
    }

    #[test]
    fn serves_the_tail_once_the_head_is_known() {
        let now = Instant::now();
        let mut c = TailCache::new(1 << 20, 10, Duration::from_secs(1));
        let g = conv("g:a");
        assert_eq!(c.lookup(&g, 0, 5, now), Lookup::NeedHead);
        assert!(c.set_head(&g, 3, now));
        assert_eq!(c.lookup(&g, 0, 5, now), Lookup::Extend { from: 0 });
        c.merge(&g, &msgs(&g, 1..=3));
        let page = c.lookup(&g, 1, 5, now);
        assert_eq!(seqs(&page), vec![2, 3]);
        assert!(matches!(
            page,
            Lookup::Page {
                head: 3,
                more: false,
                ..
            }
        ));
        let page = c.lookup(&g, 0, 1, now);
        assert!(matches!(
            page,
            Lookup::Page {
                head: 3,
                more: true,
                ..
            }
        ));
        assert_eq!(
            c.lookup(&g, 3, 5, now),
            Lookup::Page {
                messages: vec![],
                head: 3,
                more: false
            }
        );
        assert_eq!(c.lookup(&g, 4, 5, now), Lookup::Beyond { head: 3 });
        // A newer head: extend from the end of the tail.
        assert!(c.set_head(&g, 5, now));
        assert_eq!(c.lookup(&g, 3, 5, now), Lookup::Extend { from: 3 });
        let page = c.lookup(&g, 2, 5, now);
        assert_eq!(seqs(&page), vec![3]);
        assert!(matches!(
            page,
            Lookup::Page {
                head: 5,
                more: true,
                ..
            }
        ));
    }

    #[test]
    fn a_stale_head_is_read_again_when_the_page_reaches_the_tail_end() {
        let t0 = Instant::now();
        let mut c = TailCache::new(1 << 20, 10, Duration::from_millis(100));
        let g = conv("g:a");
        c.set_head(&g, 4, t0);
        c.merge(&g, &msgs(&g, 1..=4));
        let later = t0 + Duration::from_millis(200);
        assert!(matches!(c.lookup(&g, 0, 2, later), Lookup::Page { more: true, .. }));
        assert_eq!(c.lookup(&g, 0, 10, later), Lookup::NeedHead);
        assert_eq!(c.lookup(&g, 4, 10, later), Lookup::NeedHead);
        assert!(!c.set_head(&g, 4, later));
        assert_eq!(seqs(&c.lookup(&g, 2, 10, later)), vec![3, 4]);
    }

    #[test]
    fn keeps_the_newest_per_conversation_and_far_pages_are_cold() {
        let now = Instant::now();
        let mut c = TailCache::new(1 << 20, 4, Duration::from_secs(1));
        let g = conv("g:a");
        c.set_head(&g, 100, now);
        assert_eq!(c.lookup(&g, 10, 5, now), Lookup::Cold);
        c.merge(&g, &msgs(&g, 90..=100));
        assert_eq!(c.entries[&g].first(), Some(97));
        assert_eq!(c.lookup(&g, 50, 5, now), Lookup::Cold);
        assert_eq!(c.lookup(&g, 94, 5, now), Lookup::Cold);
        c.merge(&g, &msgs(&g, 95..=99));
        // Overlap keeps contiguity but the cap keeps the newest four.
        assert_eq!(c.entries[&g].first(), Some(97));
        // A disjoint older run is ignored; a newer one replaces the tail.
        c.merge(&g, &msgs(&g, 10..=12));
        assert_eq!(c.entries[&g].first(), Some(97));
        c.merge(&g, &msgs(&g, 200..=201));
        assert_eq!((c.entries[&g].first(), c.known_head(&g)), (Some(200), 201));
        // A gap in what the store returned: only the contiguous run is kept.
        let mut broken = msgs(&g, 202..=203);
        broken.push(msg(&g, 205));
        c.merge(&g, &broken);
        assert_eq!(c.entries[&g].last(), Some(203));
        assert!(c.offer(&msg(&g, 204)));
        assert!(!c.offer(&msg(&g, 206)));
        assert_eq!(c.known_head(&g), 204);
    }

    #[test]
    fn evicts_the_least_recently_used_within_budget() {
        let now = Instant::now();
        let one = ENTRY_OVERHEAD + 5 * (MESSAGE_OVERHEAD + 100);
        let mut c = TailCache::new(one * 2 + 10, 10, Duration::from_secs(1));
        let (a, b, d) = (conv("g:a"), conv("g:b"), conv("g:d"));
        for g in [&a, &b] {
            c.set_head(g, 5, now);
            c.merge(g, &msgs(g, 1..=5));
        }
        assert_eq!(c.bytes(), one * 2);
        c.lookup(&a, 0, 1, now);
        c.set_head(&d, 5, now);
        c.merge(&d, &msgs(&d, 1..=5));
        assert!(c.entries.contains_key(&a) && c.entries.contains_key(&d));
        assert!(!c.entries.contains_key(&b));
        assert_eq!(c.evictions(), 1);
        assert_eq!(c.bytes(), one * 2);
    }
}
