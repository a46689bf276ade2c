//! Vector clocks per conversation: what this device has seen of each
//! participant, stamped on sends when the configuration asks for it, and
//! the causal order of a set of messages.
//!
//! A clock maps each participant to how many of their text messages in the
//! conversation the author had seen, counting its own earlier sends and the
//! message itself. Receiving a message counts it for its sender (once: this
//! device's own sends were counted when stamped) and merges its clock, so a
//! later send dominates every clock the device received before it. The
//! server sequences a message after everything its author had seen, so a
//! clock never claims a message the conversation does not hold below it.
//!
//! Clocks are per user, not per device: two devices of one user sending at
//! once both count the same number for their user, and are told apart only
//! by conv_seq. Clocks live in memory: a restarted device starts from
//! nothing and under-counts (it never over-counts) until it receives again.

use seqline_core::algo::vclock;
use seqline_core::ids::{ClientMsgId, ConversationId, UserId};
use seqline_core::model::{Message, MessageKind, VectorClock};
use std::collections::{HashMap, HashSet};

/// The clocks of one device.
#[derive(Debug, Default)]
pub struct Clocks {
    seen: HashMap<ConversationId, VectorClock>,
    /// This device's sends counted when stamped and not received back yet.
    mine: HashSet<ClientMsgId>,
}

impl Clocks {
    /// Takes in a received text message: counts it for its sender unless it
    /// is one of this device's stamped sends, then merges its clock.
    pub fn observe(&mut self, m: &Message) {
        if m.kind != MessageKind::Text {
            return;
        }
        let seen = self.seen.entry(m.conv.clone()).or_default();
        if !self.mine.remove(&m.client_msg_id) {
            *seen.entry(m.sender.clone()).or_insert(0) += 1;
        }
        vclock::merge(seen, &m.vclock);
    }

    /// The clock of message `id` by `me` in `conv`: everything seen there,
    /// plus one for `me` (the message itself), which later sends count.
    pub fn stamp(&mut self, conv: &ConversationId, me: &UserId, id: ClientMsgId) -> VectorClock {
        let seen = self.seen.entry(conv.clone()).or_default();
        let c = vclock::tick(seen, me);
        *seen = c.clone();
        self.mine.insert(id);
        c
    }

    /// Send `id`, stamped with `clock`, will never be sequenced (refused or
    /// rejected for good): forget it, and take its count back when nothing
    /// counted after it (otherwise later clocks over-count by one).
    pub fn unstamp(&mut self, conv: &ConversationId, me: &UserId, id: &ClientMsgId, clock: &VectorClock) {
        if !self.mine.remove(id) {
            return;
        }
        let Some(n) = clock.get(me).copied() else {
            return;
        };
        if let Some(count) = self.seen.get_mut(conv).and_then(|seen| seen.get_mut(me)) {
            if *count == n {
                *count = n.saturating_sub(1);
            }
        }
    }

    /// What this device has seen of `conv` (empty when nothing).
    pub fn seen(&self, conv: &ConversationId) -> VectorClock {
        self.seen.get(conv).cloned().unwrap_or_default()
    }
}

/// Orders messages of one conversation causally: a message whose clock
/// happened before another's comes first; concurrent ones (and messages
/// without clocks) keep conv_seq order. The server sequences a message after
/// everything its author had seen, so on the SDK's own clocks this is
/// conv_seq order while each user sends from one device at a time; it
/// differs where clocks say more than conv_seq does (clocks an application
/// brought itself), or where two devices of one user sent at once.
pub fn causal_order(messages: Vec<Message>) -> Vec<Message> {
    vclock::causal_sort(messages, |m| &m.vclock, |m| m.conv_seq.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use seqline_core::algo::vclock::{compare, Causality};
    use seqline_core::ids::{ConvSeq, DeviceId};

    fn conv() -> ConversationId {
        ConversationId::parse("g").unwrap()
    }

    fn user(u: &str) -> UserId {
        UserId::parse(u).unwrap()
    }

    fn message(id: ClientMsgId, sender: &UserId, seq: u64, vclock: VectorClock) -> Message {
        Message {
            read_diffusion: false,
            sender_name: String::new(),
            conv: conv(),
            conv_seq: ConvSeq(seq),
            client_msg_id: id,
            sender: sender.clone(),
            sender_device: DeviceId::parse("d").unwrap(),
            kind: MessageKind::Text,
            body: String::new(),
            members: vec![],
            priority: false,
            server_ts_ms: 0,
            vclock,
        }
    }

    fn clock(entries: &[(&str, u64)]) -> VectorClock {
        entries.iter().map(|(u, n)| (user(u), *n)).collect()
    }

    #[test]
    fn a_reply_happens_after_what_it_saw() {
        let (alice, bob) = (user("alice"), user("bob"));
        let mut a = Clocks::default();
        let mut b = Clocks::default();
        let id = ClientMsgId::random();
        let first = a.stamp(&conv(), &alice, id);
        b.observe(&message(id, &alice, 1, first.clone()));
        let reply = b.stamp(&conv(), &bob, ClientMsgId::random());
        assert_eq!(compare(&first, &reply), Causality::Before);
        let concurrent = a.stamp(&conv(), &alice, ClientMsgId::random());
        assert_eq!(compare(&concurrent, &reply), Causality::Concurrent);
        // Without a clock, a message still counts for its sender.
        let mut c = Clocks::default();
        c.observe(&message(ClientMsgId::random(), &bob, 1, VectorClock::new()));
        assert_eq!(c.stamp(&conv(), &alice, ClientMsgId::random()).get(&bob), Some(&1));
    }

    #[test]
    fn receiving_counts_the_message_once_even_from_the_same_user() {
        let alice = user("alice");
        // Two devices of alice send at once: both count one message of alice.
        let (mut phone, mut laptop) = (Clocks::default(), Clocks::default());
        let (a, c) = (ClientMsgId::random(), ClientMsgId::random());
        let a_clock = phone.stamp(&conv(), &alice, a);
        let c_clock = laptop.stamp(&conv(), &alice, c);
        assert_eq!(a_clock, c_clock);
        // The laptop receives the phone's message, then its own back.
        laptop.observe(&message(a, &alice, 1, a_clock));
        laptop.observe(&message(c, &alice, 2, c_clock));
        assert_eq!(laptop.seen(&conv()), clock(&[("alice", 2)]));
        assert_eq!(
            laptop.stamp(&conv(), &alice, ClientMsgId::random()),
            clock(&[("alice", 3)])
        );
        // System messages count for nobody.
        let mut joined = message(ClientMsgId::random(), &alice, 4, VectorClock::new());
        joined.kind = MessageKind::Joined;
        laptop.observe(&joined);
        assert_eq!(laptop.seen(&conv()), clock(&[("alice", 3)]));
    }

    #[test]
    fn a_send_refused_for_good_is_taken_back_when_nothing_came_after() {
        let alice = user("alice");
        let mut d = Clocks::default();
        let (a, b, c) = (ClientMsgId::random(), ClientMsgId::random(), ClientMsgId::random());
        let a_clock = d.stamp(&conv(), &alice, a);
        d.unstamp(&conv(), &alice, &a, &a_clock);
        assert_eq!(d.seen(&conv()), clock(&[("alice", 0)]));
        // Refused after a later send was stamped: the count stays.
        let b_clock = d.stamp(&conv(), &alice, b);
        let _c_clock = d.stamp(&conv(), &alice, c);
        d.unstamp(&conv(), &alice, &b, &b_clock);
        assert_eq!(d.seen(&conv()), clock(&[("alice", 2)]));
        // Taking back twice does nothing.
        d.unstamp(&conv(), &alice, &a, &a_clock);
        assert_eq!(d.seen(&conv()), clock(&[("alice", 2)]));
    }

    #[test]
    fn causal_order_keeps_conv_seq_unless_clocks_say_otherwise() {
        let (alice, bob) = (user("alice"), user("bob"));
        let m1 = message(ClientMsgId::random(), &alice, 1, clock(&[("alice", 1)]));
        let m2 = message(ClientMsgId::random(), &bob, 2, clock(&[("bob", 1)]));
        let m3 = message(ClientMsgId::random(), &bob, 3, clock(&[("alice", 1), ("bob", 2)]));
        let seqs = |v: Vec<Message>| v.iter().map(|m| m.conv_seq.0).collect::<Vec<_>>();
        let shuffled = vec![m3.clone(), m1.clone(), m2.clone()];
        assert_eq!(seqs(causal_order(shuffled)), vec![1, 2, 3]);
        // A clock brought by the application that says m4 came before m2.
        let m2b = message(m2.client_msg_id, &bob, 2, clock(&[("alice", 2), ("bob", 1)]));
        let m4b = message(ClientMsgId::random(), &alice, 4, clock(&[("alice", 2)]));
        assert_eq!(seqs(causal_order(vec![m1, m2b, m4b.clone()])), vec![1, 4, 2]);
        // Concurrent clocks keep conv_seq order, whatever the input order.
        assert_eq!(seqs(causal_order(vec![m4b, m3])), vec![3, 4]);
    }
}
