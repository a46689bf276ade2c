//! Following read-diffusion conversations (huge groups, see
//! docs/huge-groups.md): which conversations the device pulls, how far it
//! has each, and which timeline entries are delivered, dropped as repeats,
//! or held until a pull catches up. Pure state; the driver puts it on the
//! wire.
//!
//! The rules, per conversation `C` (`seq` = the last conv_seq delivered):
//! - a timeline entry of an untracked `C` with `read_diffusion = true`
//!   starts following `C` at that entry's conv_seq;
//! - an entry (timeline or pulled) at or below `seq` is a repeat: dropped;
//! - while following, a timeline entry above `seq + 1` waits until pulls
//!   deliver everything below it (a switch back to write mode, or the
//!   device's own `left`);
//! - after delivering a message in order, `C` is followed exactly when the
//!   message says the mode is now read diffusion and it is not the device's
//!   own `left`; a page is not read past a message that ends the follow.
//!
//! Membership windows: a pull never reaches past the device's own `left`
//! (the server ends the page there), and after it the device follows again
//! only from its next `joined` entry (read diffusion), so the messages sent
//! while its user was out are never pulled.

use crate::cursor::ConvPosition;
use seqline_core::ids::{ConversationId, UserId};
use seqline_core::model::{Message, MessageKind};
use std::collections::HashMap;
use std::time::Instant;

/// What to do with a timeline entry that is next in user_seq order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Deliver it.
    Deliver,
    /// Already delivered by a pull: skip it.
    Repeat,
    /// Messages below it must be pulled first: hold it (and the timeline).
    Wait,
}

#[derive(Clone, Debug, Default)]
struct Track {
    seq: u64,
    following: bool,
    /// The highest head heard of (notices, polls, pages, priority pushes).
    head: u64,
    /// A pull is wanted even without a known head above `seq`.
    want: bool,
    /// A held timeline entry needs everything up to here first.
    until: Option<u64>,
    inflight: bool,
    retry_at: Option<Instant>,
    failures: u32,
    /// Empty pages in a row while an entry is held.
    empty_pages: u32,
}

/// Empty pages in a row below a held entry before it is released without
/// them.
const MAX_EMPTY_PAGES: u32 = 10;
/// The pause before asking again after the n-th such page: n times this.
const EMPTY_PAGE_RETRY: std::time::Duration = std::time::Duration::from_millis(100);

impl Track {
    fn needs_pull(&self) -> bool {
        let behind = self.head > self.seq || self.want;
        (self.following && behind) || self.until.is_some_and(|u| u > self.seq)
    }
}

/// A pull to make: `sync_conv` of `conv` after `after`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullDue {
    /// The conversation.
    pub conv: ConversationId,
    /// The device's cursor in it.
    pub after: u64,
}

/// Every tracked conversation of the device.
#[derive(Debug, Default)]
pub struct Follows {
    convs: HashMap<ConversationId, Track>,
    me: Option<UserId>,
    dirty: bool,
}

fn own_left(m: &Message, me: Option<&UserId>) -> bool {
    m.kind == MessageKind::Left && me.is_some_and(|me| m.members.contains(me))
}

impl Follows {
    /// Positions loaded from the cursor store.
    pub fn new(positions: Vec<ConvPosition>) -> Self {
        let convs = positions
            .into_iter()
            .map(|p| {
                let t = Track {
                    seq: p.seq,
                    following: p.following,
                    want: p.following,
                    ..Track::default()
                };
                (p.conv, t)
            })
            .collect();
        Self {
            convs,
            me: None,
            dirty: false,
        }
    }

    /// The device's user (from the welcome), to recognise its own `left`.
    pub fn set_me(&mut self, me: UserId) {
        self.me = Some(me);
    }

    /// Every position, for the cursor store.
    pub fn positions(&self) -> Vec<ConvPosition> {
        let mut out: Vec<ConvPosition> = self
            .convs
            .iter()
            .map(|(conv, t)| ConvPosition {
                conv: conv.clone(),
                seq: t.seq,
                following: t.following,
            })
            .collect();
        out.sort_by(|a, b| a.conv.as_str().cmp(b.conv.as_str()));
        out
    }

    /// Whether positions changed since the last [`Follows::stored`].
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// The positions were stored.
    pub fn stored(&mut self) {
        self.dirty = false;
    }

    /// The last conv_seq delivered of `conv`, when it is tracked.
    pub fn seq(&self, conv: &ConversationId) -> Option<u64> {
        self.convs.get(conv).map(|t| t.seq)
    }

    /// Whether the device follows `conv`.
    pub fn is_following(&self, conv: &ConversationId) -> bool {
        self.convs.get(conv).is_some_and(|t| t.following)
    }

    /// The followed conversations with the device's cursor in each, sorted.
    pub fn following(&self) -> Vec<PullDue> {
        let mut out: Vec<PullDue> = self
            .convs
            .iter()
            .filter(|(_, t)| t.following)
            .map(|(conv, t)| PullDue {
                conv: conv.clone(),
                after: t.seq,
            })
            .collect();
        out.sort_by(|a, b| a.conv.as_str().cmp(b.conv.as_str()));
        out
    }

    /// Marks `m` delivered in order: moves the cursor and the mode.
    fn delivered(&mut self, m: &Message) {
        let left = own_left(m, self.me.as_ref());
        let t = self.convs.entry(m.conv.clone()).or_default();
        t.seq = t.seq.max(m.conv_seq.0);
        t.head = t.head.max(t.seq);
        t.following = m.read_diffusion && !left;
        if t.until.is_some_and(|u| u <= t.seq) {
            t.until = None;
        }
        self.dirty = true;
    }

    /// A timeline entry's message is next in user_seq order.
    pub fn on_timeline(&mut self, m: &Message) -> Decision {
        let s = m.conv_seq.0;
        match self.convs.get_mut(&m.conv) {
            None if !m.read_diffusion || own_left(m, self.me.as_ref()) => Decision::Deliver,
            None => {
                self.convs.insert(
                    m.conv.clone(),
                    Track {
                        want: true,
                        ..Track::default()
                    },
                );
                self.delivered(m);
                Decision::Deliver
            }
            Some(t) if s <= t.seq => Decision::Repeat,
            Some(t) if t.following && s > t.seq + 1 => {
                t.until = Some(t.until.unwrap_or(0).max(s - 1));
                Decision::Wait
            }
            Some(_) => {
                self.delivered(m);
                Decision::Deliver
            }
        }
    }

    /// A followed conversation advanced to `head` (notice, poll, priority).
    pub fn on_head(&mut self, conv: &ConversationId, head: u64) {
        if let Some(t) = self.convs.get_mut(conv) {
            t.head = t.head.max(head);
        }
    }

    /// Pulls due now; each is marked in flight until its page or failure.
    pub fn due(&mut self, now: Instant) -> Vec<PullDue> {
        let mut out = Vec::new();
        for (conv, t) in &mut self.convs {
            if !t.inflight && t.retry_at.is_none_or(|at| at <= now) && t.needs_pull() {
                t.inflight = true;
                out.push(PullDue {
                    conv: conv.clone(),
                    after: t.seq,
                });
            }
        }
        out
    }

    /// Whether a pull is due or in flight for a followed conversation
    /// (a long-poll then waits: it would be answered at once).
    pub fn busy(&self) -> bool {
        self.convs.values().any(|t| t.inflight || t.needs_pull())
    }

    /// The earliest retry of a failed pull.
    pub fn next_retry(&self) -> Option<Instant> {
        self.convs
            .values()
            .filter(|t| t.needs_pull() && !t.inflight)
            .filter_map(|t| t.retry_at)
            .min()
    }

    /// A page of `conv` arrived: returns the messages to deliver, in order.
    pub fn on_page(&mut self, conv: &ConversationId, messages: Vec<Message>, head: u64, more: bool) -> Vec<Message> {
        let Some(t) = self.convs.get_mut(conv) else {
            return Vec::new();
        };
        t.inflight = false;
        t.failures = 0;
        t.retry_at = None;
        t.head = t.head.max(head);
        let empty = messages.is_empty();
        let mut out = Vec::new();
        for m in messages {
            let seq = self.convs.get(conv).map_or(0, |t| t.seq);
            if m.conv != *conv || m.conv_seq.0 <= seq {
                continue;
            }
            if m.conv_seq.0 > seq + 1 {
                break;
            }
            self.delivered(&m);
            out.push(m);
            if !self.is_following(conv) {
                // The device's own `left` or a switch back to write mode:
                // what follows is not pulled (the server stops its pages
                // there too); it comes by timeline, if at all.
                break;
            }
        }
        let Some(t) = self.convs.get_mut(conv) else {
            return out;
        };
        t.want = more;
        if !empty {
            t.empty_pages = 0;
        } else if !more && t.until.is_some_and(|u| u > t.seq) {
            // The held entry proves messages below it exist, yet the server
            // answered none: its head may trail by a moment (it caches the
            // head briefly). Ask again shortly; give up only when it keeps
            // answering nothing, so the timeline is not held forever.
            t.empty_pages += 1;
            if t.empty_pages >= MAX_EMPTY_PAGES {
                t.empty_pages = 0;
                Self::skip(t);
                self.dirty = true;
            } else {
                t.retry_at = Some(Instant::now() + EMPTY_PAGE_RETRY * t.empty_pages);
            }
        }
        out
    }

    /// A pull of `conv` failed; `for_good` when the server refused it (not a
    /// member any more): the held entry is released without what could not
    /// be pulled, and a conversation that cannot be pulled is not followed.
    pub fn pull_failed(&mut self, conv: &ConversationId, for_good: bool, retry_at: Instant) {
        let Some(t) = self.convs.get_mut(conv) else {
            return;
        };
        t.inflight = false;
        if for_good {
            Self::skip(t);
            t.following = false;
            t.want = false;
            self.dirty = true;
        } else {
            t.failures = t.failures.saturating_add(1);
            t.retry_at = Some(retry_at);
        }
    }

    fn skip(t: &mut Track) {
        if let Some(u) = t.until.take() {
            tracing::warn!(from = t.seq, to = u, "cannot pull up to a held entry; skipping");
            t.seq = t.seq.max(u);
        }
    }

    /// Failures in a row of `conv`'s pulls.
    pub fn failures(&self, conv: &ConversationId) -> u32 {
        self.convs.get(conv).map_or(0, |t| t.failures)
    }

    /// The server's data was replaced: every position belongs to other
    /// data; the device tracks conversations again from its timeline.
    pub fn clear(&mut self) {
        self.convs.clear();
        self.dirty = true;
    }

    /// A new connection: nothing is in flight; every followed conversation
    /// is pulled once (what was missed while away).
    pub fn reconnected(&mut self) {
        for t in self.convs.values_mut() {
            t.inflight = false;
            t.retry_at = None;
            t.want = t.following;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use seqline_core::ids::{ClientMsgId, ConvSeq, DeviceId};

    fn c() -> ConversationId {
        ConversationId::parse("g:huge").unwrap()
    }

    fn msg(seq: u64, rd: bool) -> Message {
        Message {
            read_diffusion: rd,
            sender_name: String::new(),
            conv: c(),
            conv_seq: ConvSeq(seq),
            client_msg_id: ClientMsgId::random(),
            sender: UserId::parse("bob").unwrap(),
            sender_device: DeviceId::parse("d").unwrap(),
            kind: MessageKind::Text,
            body: format!("m{seq}"),
            members: vec![],
            priority: false,
            server_ts_ms: 0,
            vclock: Default::default(),
        }
    }

    fn seqs(v: &[Message]) -> Vec<u64> {
        v.iter().map(|m| m.conv_seq.0).collect()
    }

    #[test]
    fn write_read_write_delivers_each_message_once_in_order() {
        let mut f = Follows::default();
        let t0 = Instant::now();
        assert_eq!(f.on_timeline(&msg(1, false)), Decision::Deliver);
        assert!(f.seq(&c()).is_none(), "write mode is not tracked");
        // The boundary into read mode: follow from it.
        assert_eq!(f.on_timeline(&msg(2, true)), Decision::Deliver);
        assert!(f.is_following(&c()));
        assert_eq!(f.due(t0), vec![PullDue { conv: c(), after: 2 }]);
        assert!(f.due(t0).is_empty(), "one pull in flight");
        let got = f.on_page(&c(), vec![msg(3, true), msg(4, true)], 6, true);
        assert_eq!(seqs(&got), vec![3, 4]);
        assert_eq!(f.due(t0), vec![PullDue { conv: c(), after: 4 }]);
        // The boundary back to write mode arrives by timeline before 5 is pulled.
        assert_eq!(f.on_timeline(&msg(6, false)), Decision::Wait);
        let got = f.on_page(&c(), vec![msg(4, true), msg(5, true)], 6, false);
        assert_eq!(seqs(&got), vec![5], "repeats are dropped");
        assert_eq!(f.on_timeline(&msg(6, false)), Decision::Deliver);
        assert!(!f.is_following(&c()));
        assert!(f.due(t0).is_empty() && !f.busy());
        assert_eq!(f.on_timeline(&msg(7, false)), Decision::Deliver);
        assert_eq!(f.seq(&c()), Some(7));
    }

    #[test]
    fn a_boundary_pulled_before_its_timeline_entry_is_delivered_once() {
        let mut f = Follows::default();
        let t0 = Instant::now();
        f.on_timeline(&msg(5, true));
        f.due(t0);
        // A page reaching past the switch back to write mode is read up to
        // the boundary only: the rest comes by timeline.
        let got = f.on_page(&c(), vec![msg(6, true), msg(7, false), msg(8, false)], 8, false);
        assert_eq!(seqs(&got), vec![6, 7]);
        assert!(!f.is_following(&c()));
        assert_eq!(
            f.on_timeline(&msg(7, false)),
            Decision::Repeat,
            "only the boundary came both ways"
        );
        assert_eq!(f.on_timeline(&msg(8, false)), Decision::Deliver);
        assert_eq!(f.on_timeline(&msg(9, false)), Decision::Deliver);
    }

    #[test]
    fn own_left_stops_and_a_refused_pull_releases_the_held_entry() {
        let mut f = Follows::default();
        f.set_me(UserId::parse("alice").unwrap());
        let t0 = Instant::now();
        f.on_timeline(&msg(10, true));
        f.due(t0);
        let mut left = msg(14, true);
        left.kind = MessageKind::Left;
        left.members = vec![UserId::parse("alice").unwrap()];
        assert_eq!(f.on_timeline(&left), Decision::Wait);
        f.pull_failed(&c(), true, t0);
        assert_eq!(f.on_timeline(&left), Decision::Deliver);
        assert!(!f.is_following(&c()));
        assert!(f.due(t0).is_empty());
        let mut other_left = msg(20, true);
        other_left.kind = MessageKind::Left;
        other_left.members = vec![UserId::parse("carol").unwrap()];
        let mut g = Follows::default();
        g.set_me(UserId::parse("alice").unwrap());
        assert_eq!(g.on_timeline(&other_left), Decision::Deliver);
        assert!(g.is_following(&c()), "someone else's left is followed from");
    }

    #[test]
    fn a_window_ends_at_the_own_left_and_a_rejoin_follows_from_its_joined() {
        let alice = UserId::parse("alice").unwrap();
        let mut f = Follows::default();
        f.set_me(alice.clone());
        let t0 = Instant::now();
        f.on_timeline(&msg(10, true));
        f.due(t0);
        let mut left = msg(13, true);
        left.kind = MessageKind::Left;
        left.members = vec![alice.clone()];
        assert_eq!(f.on_timeline(&left), Decision::Wait);
        // Even a page running past the leave point is read up to it only.
        let got = f.on_page(
            &c(),
            vec![msg(11, true), msg(12, true), left.clone(), msg(14, true)],
            20,
            false,
        );
        assert_eq!(seqs(&got), vec![11, 12, 13]);
        assert!(!f.is_following(&c()));
        assert_eq!(f.on_timeline(&left), Decision::Repeat);
        assert!(f.due(t0).is_empty() && !f.busy());
        let mut joined = msg(17, true);
        joined.kind = MessageKind::Joined;
        joined.members = vec![alice];
        assert_eq!(f.on_timeline(&joined), Decision::Deliver);
        assert!(f.is_following(&c()));
        assert_eq!(f.due(t0), vec![PullDue { conv: c(), after: 17 }], "the gap is skipped");
    }

    #[test]
    fn empty_pages_below_a_held_entry_are_asked_again_before_giving_up() {
        let mut f = Follows::default();
        let t0 = Instant::now();
        f.on_timeline(&msg(10, true));
        f.due(t0);
        assert_eq!(f.on_timeline(&msg(13, false)), Decision::Wait);
        // A head trailing the held entry: nothing yet, ask again shortly.
        assert!(f.on_page(&c(), vec![], 10, false).is_empty());
        assert_eq!(f.on_timeline(&msg(13, false)), Decision::Wait, "still held");
        assert!(f.due(Instant::now()).is_empty(), "not at once");
        let later = Instant::now() + EMPTY_PAGE_RETRY * MAX_EMPTY_PAGES;
        assert_eq!(f.due(later), vec![PullDue { conv: c(), after: 10 }]);
        let got = f.on_page(&c(), vec![msg(11, true), msg(12, true)], 13, true);
        assert_eq!(seqs(&got), vec![11, 12]);
        assert_eq!(f.on_timeline(&msg(13, false)), Decision::Deliver);
        // A server that keeps answering nothing releases the entry at last.
        f.on_timeline(&msg(20, true));
        f.due(later);
        assert_eq!(f.on_timeline(&msg(23, false)), Decision::Wait);
        for _ in 0..MAX_EMPTY_PAGES {
            f.on_page(&c(), vec![], 20, false);
        }
        assert_eq!(f.on_timeline(&msg(23, false)), Decision::Deliver);
    }

    #[test]
    fn heads_retries_and_reconnects_schedule_pulls() {
        let mut f = Follows::default();
        let t0 = Instant::now();
        f.on_timeline(&msg(3, true));
        f.due(t0);
        assert!(f.on_page(&c(), vec![], 3, false).is_empty());
        assert!(!f.busy(), "caught up");
        f.on_head(&c(), 5);
        assert!(f.busy());
        let later = t0 + std::time::Duration::from_secs(1);
        assert_eq!(f.due(t0).len(), 1);
        f.pull_failed(&c(), false, later);
        assert!(f.due(t0).is_empty(), "waits for the retry time");
        assert_eq!(f.next_retry(), Some(later));
        assert_eq!(f.due(later).len(), 1);
        f.reconnected();
        assert_eq!(f.due(t0), vec![PullDue { conv: c(), after: 3 }]);
        let restored = Follows::new(f.positions());
        assert!(restored.is_following(&c()));
        assert_eq!(restored.seq(&c()), Some(3));
    }
}
