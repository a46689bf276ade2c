//! Vector clocks per conversation: what this user has seen of each
//! participant, stamped on sends when the configuration asks for it.

use seqline_core::algo::vclock;
use seqline_core::ids::{ConversationId, UserId};
use seqline_core::model::{Message, MessageKind, VectorClock};
use std::collections::HashMap;

/// The clocks of one device.
#[derive(Debug, Default)]
pub struct Clocks {
    seen: HashMap<ConversationId, VectorClock>,
}

impl Clocks {
    /// Takes in a received message: its clock, or else one more message of
    /// its sender.
    pub fn observe(&mut self, m: &Message) {
        if m.kind != MessageKind::Text {
            return;
        }
        let seen = self.seen.entry(m.conv.clone()).or_default();
        if m.vclock.is_empty() {
            *seen.entry(m.sender.clone()).or_insert(0) += 1;
        } else {
            vclock::merge(seen, &m.vclock);
        }
    }

    /// The clock of a new message by `me` in `conv` (and remembers it).
    pub fn stamp(&mut self, conv: &ConversationId, me: &UserId) -> VectorClock {
        let seen = self.seen.entry(conv.clone()).or_default();
        let c = vclock::tick(seen, me);
        *seen = c.clone();
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use seqline_core::algo::vclock::{compare, Causality};
    use seqline_core::ids::{ClientMsgId, ConvSeq, DeviceId};

    fn message(conv: &ConversationId, sender: &UserId, vclock: VectorClock) -> Message {
        Message {
            read_diffusion: false,
            sender_name: String::new(),
            conv: conv.clone(),
            conv_seq: ConvSeq(1),
            client_msg_id: ClientMsgId::random(),
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

    #[test]
    fn a_reply_happens_after_what_it_saw() {
        let conv = ConversationId::parse("g").unwrap();
        let (alice, bob) = (UserId::parse("alice").unwrap(), UserId::parse("bob").unwrap());
        let mut a = Clocks::default();
        let mut b = Clocks::default();
        let first = a.stamp(&conv, &alice);
        b.observe(&message(&conv, &alice, first.clone()));
        let reply = b.stamp(&conv, &bob);
        assert_eq!(compare(&first, &reply), Causality::Before);
        let concurrent = a.stamp(&conv, &alice);
        assert_eq!(compare(&concurrent, &reply), Causality::Concurrent);
        // Without a clock, a message still counts for its sender.
        let mut c = Clocks::default();
        c.observe(&message(&conv, &bob, VectorClock::new()));
        assert_eq!(c.stamp(&conv, &alice).get(&bob), Some(&1));
    }
}
