//! The inbox: timeline entries arriving by push and by sync, repeated or out
//! of order, released exactly once per user_seq in user_seq order. Ordering
//! and gap detection are core's [`SeqView`]; the entries wait beside it until
//! they are contiguous with the cursor.

use crate::event::Via;
use seqline_core::algo::SeqView;
use seqline_core::model::TimelineEntry;
use std::collections::HashMap;

/// Entries not yet released, above the device cursor.
#[derive(Debug)]
pub struct Inbox {
    view: SeqView<()>,
    held: HashMap<u64, (TimelineEntry, Via)>,
    cursor: u64,
}

impl Inbox {
    /// An inbox whose device already has everything up to `cursor`.
    pub fn new(cursor: u64) -> Self {
        Self {
            view: SeqView::starting_after(cursor),
            held: HashMap::new(),
            cursor,
        }
    }

    /// The last user_seq released (everything up to it was released).
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// Adds an entry; false for a repeat or one at or below the cursor.
    pub fn insert(&mut self, entry: TimelineEntry, via: Via) -> bool {
        let seq = entry.user_seq.0;
        if !self.view.insert(seq, ()) {
            return false;
        }
        self.held.insert(seq, (entry, via));
        true
    }

    /// Takes the entries contiguous with the cursor, in order, and moves the
    /// cursor past them.
    pub fn take_ready(&mut self) -> Vec<(TimelineEntry, Via)> {
        let upto = self.view.contiguous_upto();
        if upto <= self.cursor {
            return Vec::new();
        }
        let ready: Vec<_> = (self.cursor + 1..=upto).filter_map(|s| self.held.remove(&s)).collect();
        self.cursor = upto;
        // SeqView has no removal: start a new one after the released prefix.
        let mut view = SeqView::starting_after(upto);
        for (s, _) in self.view.iter().filter(|(s, _)| *s > upto) {
            view.insert(s, ());
        }
        self.view = view;
        ready
    }

    /// Whether entries wait above a missing one (a sync is needed).
    pub fn has_gap(&self) -> bool {
        !self.held.is_empty() && !self.view.gaps().is_empty()
    }

    /// Entries waiting.
    pub fn waiting(&self) -> usize {
        self.held.len()
    }

    /// The server cannot serve the cursor: start over at `head`, dropping
    /// what waits at or below it.
    pub fn reset(&mut self, head: u64) {
        let keep: Vec<_> = self.held.drain().filter(|(s, _)| *s > head).collect();
        self.view = SeqView::starting_after(head);
        self.cursor = head;
        for (s, e) in keep {
            self.view.insert(s, ());
            self.held.insert(s, e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use seqline_core::ids::{ClientMsgId, ConvSeq, ConversationId, DeviceId, UserId, UserSeq};
    use seqline_core::model::{Message, MessageKind};

    fn entry(user_seq: u64) -> TimelineEntry {
        TimelineEntry {
            user_seq: UserSeq(user_seq),
            message: Message {
                read_diffusion: false,
                sender_name: String::new(),
                conv: ConversationId::parse("c").unwrap(),
                conv_seq: ConvSeq(user_seq),
                client_msg_id: ClientMsgId::random(),
                sender: UserId::parse("u").unwrap(),
                sender_device: DeviceId::parse("d").unwrap(),
                kind: MessageKind::Text,
                body: format!("m{user_seq}"),
                members: vec![],
                priority: false,
                server_ts_ms: 0,
                vclock: Default::default(),
            },
        }
    }

    fn seqs(v: &[(TimelineEntry, Via)]) -> Vec<u64> {
        v.iter().map(|(e, _)| e.user_seq.0).collect()
    }

    #[test]
    fn releases_once_in_order_and_waits_at_gaps() {
        let mut inbox = Inbox::new(2);
        assert!(!inbox.insert(entry(2), Via::Push), "at the cursor");
        assert!(inbox.insert(entry(5), Via::Push));
        assert!(inbox.insert(entry(3), Via::Push));
        assert!(!inbox.insert(entry(5), Via::Pull), "a repeat");
        assert_eq!(seqs(&inbox.take_ready()), vec![3]);
        assert!(inbox.has_gap());
        assert_eq!(inbox.cursor(), 3);
        assert!(inbox.insert(entry(4), Via::Pull));
        let ready = inbox.take_ready();
        assert_eq!(seqs(&ready), vec![4, 5]);
        assert_eq!(ready[0].1, Via::Pull);
        assert_eq!(ready[1].1, Via::Push);
        assert!(!inbox.has_gap() && inbox.waiting() == 0);
        assert!(!inbox.insert(entry(4), Via::Push), "released entries never come back");
        assert!(inbox.take_ready().is_empty());
    }

    #[test]
    fn reset_jumps_to_the_head() {
        let mut inbox = Inbox::new(0);
        inbox.insert(entry(7), Via::Push);
        inbox.insert(entry(12), Via::Push);
        inbox.reset(10);
        assert_eq!(inbox.cursor(), 10);
        assert!(inbox.has_gap());
        inbox.insert(entry(11), Via::Pull);
        assert_eq!(seqs(&inbox.take_ready()), vec![11, 12]);
    }
}
