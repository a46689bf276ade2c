use crate::epoch::Epoch;
use crate::error::{Error, Result};
use crate::ids::{ClientMsgId, ConvSeq, ConversationId, DeviceId, UserId, UserSeq};
use crate::model::{ConversationMeta, Message, Outcome, Role, TimelineEntry};
use async_trait::async_trait;
use std::collections::{BTreeMap, HashMap};

/// What the sequencer reloads for a conversation it takes over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConversationState {
    /// Fixed settings.
    pub meta: ConversationMeta,
    /// Committed head: the highest conv_seq stored (0 when none).
    pub head: ConvSeq,
    /// Current members and their roles.
    pub members: BTreeMap<UserId, Role>,
    /// Per sending device, the last command it had processed (sequenced or
    /// finally refused): the predecessor its next send must name (G5).
    pub device_last: HashMap<(UserId, DeviceId), ClientMsgId>,
}

/// A member added (with a role) or removed (`role: None`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberChange {
    /// The user.
    pub user: UserId,
    /// New role, or `None` when removed.
    pub role: Option<Role>,
    /// The conv_seq of the event that made the change (`created`, `joined`
    /// or `left`): where the user's membership window opens or closes.
    pub at: ConvSeq,
}

/// Most membership windows kept per user and conversation: pulls are
/// served within the latest ones only (older ones answer `not_member`).
pub const MAX_MEMBER_WINDOWS: usize = 16;

/// One stretch of a user's membership in a conversation: from the event
/// that added it (`created` or `joined`) to the `left` that removed it, both
/// included. The messages a member may pull by conversation cursor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberWindow {
    /// The conv_seq of the event that added the user.
    pub joined: ConvSeq,
    /// The conv_seq of the `left` that removed it; `None` while a member.
    pub left: Option<ConvSeq>,
}

impl MemberWindow {
    /// Builds windows from a user's membership events, oldest first:
    /// `(at, joined)`, as kept by [`MemberWindow::merge_events`]. A leading
    /// `left` (a member from before events were recorded) opens at conv_seq
    /// 1; so does `member` (the user is a member now) without any event.
    /// At most [`MAX_MEMBER_WINDOWS`], the latest.
    pub fn from_events(events: &[(ConvSeq, bool)], member: bool) -> Vec<MemberWindow> {
        let mut out: Vec<MemberWindow> = Vec::new();
        let mut open: Option<ConvSeq> = None;
        for (i, (at, joined)) in events.iter().enumerate() {
            match (joined, open) {
                (true, None) => open = Some(*at),
                (true, Some(_)) => {} // a role change: still the same window
                (false, Some(j)) => {
                    out.push(MemberWindow {
                        joined: j,
                        left: Some(*at),
                    });
                    open = None;
                }
                (false, None) if i == 0 => out.push(MemberWindow {
                    joined: ConvSeq(1),
                    left: Some(*at),
                }),
                (false, None) => {}
            }
        }
        match open {
            Some(j) => out.push(MemberWindow { joined: j, left: None }),
            None if member && events.is_empty() => out.push(MemberWindow {
                joined: ConvSeq(1),
                left: None,
            }),
            None => {}
        }
        let extra = out.len().saturating_sub(MAX_MEMBER_WINDOWS);
        out.drain(..extra);
        out
    }

    /// Adds `new` membership events (`(at, joined)`, ascending) to a user's
    /// stored `events` and bounds them: events at or below the last stored
    /// one are already there (a batch applied again), and whole windows are
    /// dropped from the front beyond `2 * MAX_MEMBER_WINDOWS` events, so
    /// what is kept starts with a join (or with the `left` of a member from
    /// before events were recorded).
    pub fn merge_events(events: &mut Vec<(ConvSeq, bool)>, new: &[(ConvSeq, bool)]) {
        let last = events.last().map(|(at, _)| *at);
        events.extend(new.iter().filter(|(at, _)| last.is_none_or(|l| *at > l)).copied());
        let mut drop = 0;
        while events.len() - drop > 2 * MAX_MEMBER_WINDOWS {
            // A join and the leave closing it, or a leading leave alone.
            drop += if events[drop].1 { 2 } else { 1 };
        }
        events.drain(..drop.min(events.len()));
    }

    /// Where a pull after `after` may go, given a user's windows (oldest
    /// first): `Some(end)` when `after + 1` starts or continues a window,
    /// or `after` is the last message of one (then nothing more is served
    /// on that cursor), with `end` its `left` (`None`: still open);
    /// `None` when `after` is outside every window.
    pub fn readable(windows: &[MemberWindow], after: ConvSeq) -> Option<Option<ConvSeq>> {
        // The latest window wins: a `left` directly followed by a `joined`
        // continues into the new window, with nothing in between to hide.
        windows
            .iter()
            .rev()
            .find(|w| w.joined.0.saturating_sub(1) <= after.0 && w.left.is_none_or(|l| after <= l))
            .map(|w| w.left)
    }
}

/// Everything one sequencer batch writes for one conversation, atomically.
/// The head moves from `expected_head` to `new_head` only if it still is
/// `expected_head` (compare-and-set), so a fenced-off writer fails.
#[derive(Clone, Debug)]
pub struct ConversationBatch {
    /// The conversation.
    pub conv: ConversationId,
    /// Head this writer believes is stored (0 for a new conversation).
    pub expected_head: ConvSeq,
    /// Head after this batch (`expected_head` + number of messages).
    pub new_head: ConvSeq,
    /// Set when this batch creates the conversation.
    pub create: Option<ConversationMeta>,
    /// New messages, conv_seq `expected_head+1 ..= new_head`, in order.
    pub messages: Vec<Message>,
    /// Membership changes, applied in order.
    pub members: Vec<MemberChange>,
    /// Outcomes to remember by client id (sequenced and final refusals).
    pub dedup: Vec<(ClientMsgId, Outcome)>,
    /// New last processed command per device.
    pub device_last: Vec<((UserId, DeviceId), ClientMsgId)>,
}

impl ConversationBatch {
    /// Checks that the batch adds up: `new_head` is `expected_head` plus the
    /// messages, which are numbered contiguously in this conversation, and
    /// a creating batch starts at 0. Stores call it before writing.
    pub fn validate(&self) -> Result<()> {
        let invalid = |why: String| Err(Error::Invalid(format!("conversation batch for {}: {why}", self.conv)));
        if self.new_head.0 != self.expected_head.0 + self.messages.len() as u64 {
            return invalid(format!(
                "head {} + {} messages is not {}",
                self.expected_head,
                self.messages.len(),
                self.new_head
            ));
        }
        for (i, m) in self.messages.iter().enumerate() {
            let want = self.expected_head.0 + 1 + i as u64;
            if m.conv_seq.0 != want || m.conv != self.conv {
                return invalid(format!(
                    "message {i} is {}#{}, expected {}#{want}",
                    m.conv, m.conv_seq, self.conv
                ));
            }
        }
        if let Some(meta) = &self.create {
            if meta.conv != self.conv || self.expected_head.0 != 0 {
                return invalid("a creating batch must start at head 0 with matching settings".into());
            }
        }
        Ok(())
    }
}

/// What the timeline writer reloads for a user it takes over.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TimelineState {
    /// Committed head: the highest user_seq stored (0 when none).
    pub head: UserSeq,
    /// Per conversation, the last conv_seq applied to this timeline.
    pub applied: HashMap<ConversationId, ConvSeq>,
}

/// Everything one timeline batch writes for one user, atomically and with a
/// compare-and-set on the head.
#[derive(Clone, Debug)]
pub struct TimelineBatch {
    /// Whose timeline.
    pub user: UserId,
    /// Head this writer believes is stored.
    pub expected_head: UserSeq,
    /// Head after this batch.
    pub new_head: UserSeq,
    /// New entries, user_seq `expected_head+1 ..= new_head`, in order.
    pub entries: Vec<TimelineEntry>,
    /// New last applied conv_seq per conversation.
    pub applied: Vec<(ConversationId, ConvSeq)>,
}

impl TimelineBatch {
    /// Checks that the batch adds up: `new_head` is `expected_head` plus the
    /// entries, numbered contiguously. Stores call it before writing.
    pub fn validate(&self) -> Result<()> {
        if self.new_head.0 != self.expected_head.0 + self.entries.len() as u64 {
            return Err(Error::Invalid(format!(
                "timeline batch for {}: head {} + {} entries is not {}",
                self.user,
                self.expected_head,
                self.entries.len(),
                self.new_head
            )));
        }
        for (i, e) in self.entries.iter().enumerate() {
            let want = self.expected_head.0 + 1 + i as u64;
            if e.user_seq.0 != want {
                return Err(Error::Invalid(format!(
                    "timeline batch for {}: entry {i} is #{}, expected #{want}",
                    self.user, e.user_seq
                )));
            }
        }
        Ok(())
    }
}

/// Messages, timelines and the state of conversations and users.
///
/// Readers never see an entry above the committed head, and the committed
/// head covers only durable entries.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The epoch of this store: made once when the store is first
    /// initialised, the same after every restart and for every process on
    /// the same data, another one for a wiped or other store.
    async fn epoch(&self) -> Result<Epoch>;

    /// The state of `conv` for its sequencer, or `None` if it does not exist.
    async fn load_conversation(&self, conv: &ConversationId) -> Result<Option<ConversationState>>;

    /// Writes a sequencer batch durably. `Error::Fenced` if the head is not
    /// `expected_head` (or, with `create`, if the conversation exists).
    async fn commit_conversation(&self, batch: ConversationBatch) -> Result<()>;

    /// Writes a sequencer batch like [`Store::commit_conversation`], but may
    /// return once the write is *ordered*, before it is durable: a store
    /// that shares one journal with the log (the embedded engine) lets a
    /// stage's store writes and its durable log appends share one fsync.
    /// The write becomes durable with the next durable write to that
    /// journal, and at the latest when [`Store::flush`] returns; readers
    /// never see it before. The caller must make it durable (a durable log
    /// append or `flush`) before anything announces it. Stores without such
    /// a journal write durably, as `commit_conversation` does.
    async fn commit_conversation_ordered(&self, batch: ConversationBatch) -> Result<()> {
        self.commit_conversation(batch).await
    }

    /// Makes every write this store has returned from durable. Free when
    /// they already are (the default: every write is durable on return).
    async fn flush(&self) -> Result<()> {
        Ok(())
    }

    /// The remembered outcome of client id `id` in `conv`.
    async fn dedup(&self, conv: &ConversationId, id: ClientMsgId) -> Result<Option<Outcome>>;

    /// The remembered outcomes of many client ids at once, in order. The
    /// default asks one by one; backends override it to batch the reads.
    async fn dedup_many(&self, keys: &[(ConversationId, ClientMsgId)]) -> Result<Vec<Option<Outcome>>> {
        let mut out = Vec::with_capacity(keys.len());
        for (conv, id) in keys {
            out.push(self.dedup(conv, *id).await?);
        }
        Ok(out)
    }

    /// Committed head of `conv` (`None` if the conversation does not exist).
    async fn conversation_head(&self, conv: &ConversationId) -> Result<Option<ConvSeq>>;

    /// Settings of `conv`.
    async fn conversation_meta(&self, conv: &ConversationId) -> Result<Option<ConversationMeta>>;

    /// Role of `user` in `conv`, `None` if not a member.
    async fn member_role(&self, conv: &ConversationId, user: &UserId) -> Result<Option<Role>>;

    /// Current members of `conv`.
    async fn members(&self, conv: &ConversationId) -> Result<Vec<(UserId, Role)>>;

    /// The membership windows of `user` in `conv`, oldest first, at most
    /// [`MAX_MEMBER_WINDOWS`] (the latest); empty when the user never was a
    /// member (see [`MemberWindow::from_events`]).
    async fn membership(&self, conv: &ConversationId, user: &UserId) -> Result<Vec<MemberWindow>>;

    /// Conversations `user` is currently a member of.
    async fn conversations_of(&self, user: &UserId) -> Result<Vec<ConversationId>>;

    /// Up to `limit` messages with conv_seq > `after`, ascending, never past
    /// the committed head.
    async fn messages_after(&self, conv: &ConversationId, after: ConvSeq, limit: usize) -> Result<Vec<Message>>;

    /// Up to `limit` messages with conv_seq < `before`, the newest ones,
    /// returned ascending.
    async fn messages_before(&self, conv: &ConversationId, before: ConvSeq, limit: usize) -> Result<Vec<Message>>;

    /// The state of `user`'s timeline for its writer.
    async fn load_timeline(&self, user: &UserId) -> Result<TimelineState>;

    /// Writes a timeline batch durably; `Error::Fenced` on a head mismatch.
    async fn commit_timeline(&self, batch: TimelineBatch) -> Result<()>;

    /// Writes a timeline batch like [`Store::commit_timeline`], but may
    /// return before it is durable, under the rules of
    /// [`Store::commit_conversation_ordered`].
    async fn commit_timeline_ordered(&self, batch: TimelineBatch) -> Result<()> {
        self.commit_timeline(batch).await
    }

    /// Committed head of `user`'s timeline (0 when empty).
    async fn timeline_head(&self, user: &UserId) -> Result<UserSeq>;

    /// Up to `limit` entries with user_seq > `after`, ascending.
    async fn timeline_after(&self, user: &UserId, after: UserSeq, limit: usize) -> Result<Vec<TimelineEntry>>;

    /// Records how far `device` has read; a cursor never moves back.
    async fn set_device_cursor(&self, user: &UserId, device: &DeviceId, cursor: UserSeq) -> Result<()>;

    /// How far `device` has read, as last recorded.
    async fn device_cursor(&self, user: &UserId, device: &DeviceId) -> Result<Option<UserSeq>>;

    /// Moves `user`'s read position in `conv` forward to `conv_seq` (never
    /// back) and returns the position now stored.
    async fn set_read_position(&self, user: &UserId, conv: &ConversationId, conv_seq: ConvSeq) -> Result<ConvSeq>;

    /// Every read position of `user`.
    async fn read_positions(&self, user: &UserId) -> Result<Vec<(ConversationId, ConvSeq)>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(joined: u64, left: Option<u64>) -> MemberWindow {
        MemberWindow {
            joined: ConvSeq(joined),
            left: left.map(ConvSeq),
        }
    }

    #[test]
    fn windows_come_from_joins_and_leaves() {
        let events = [(ConvSeq(3), true), (ConvSeq(9), false), (ConvSeq(12), true)];
        assert_eq!(
            MemberWindow::from_events(&events, true),
            vec![w(3, Some(9)), w(12, None)]
        );
        // A member from before events were recorded.
        assert_eq!(MemberWindow::from_events(&[], true), vec![w(1, None)]);
        assert_eq!(
            MemberWindow::from_events(&[(ConvSeq(5), false)], false),
            vec![w(1, Some(5))]
        );
        assert!(MemberWindow::from_events(&[], false).is_empty());
        let many: Vec<(ConvSeq, bool)> = (0..40).map(|i| (ConvSeq(i + 1), i % 2 == 0)).collect();
        let kept = MemberWindow::from_events(&many, false);
        assert_eq!(kept.len(), MAX_MEMBER_WINDOWS);
        assert_eq!(kept.last(), Some(&w(39, Some(40))));
    }

    #[test]
    fn merged_events_are_bounded_and_applied_once() {
        let mut events = vec![(ConvSeq(4), false)];
        MemberWindow::merge_events(&mut events, &[(ConvSeq(6), true)]);
        MemberWindow::merge_events(&mut events, &[(ConvSeq(6), true)]);
        assert_eq!(events, vec![(ConvSeq(4), false), (ConvSeq(6), true)], "applied once");
        for i in 0..40u64 {
            MemberWindow::merge_events(
                &mut events,
                &[(ConvSeq(10 + 2 * i), false), (ConvSeq(11 + 2 * i), true)],
            );
        }
        assert!(events.len() <= 2 * MAX_MEMBER_WINDOWS);
        assert!(events[0].1, "starts with a join");
        let windows = MemberWindow::from_events(&events, true);
        assert_eq!(windows.last(), Some(&w(89, None)));
        assert_eq!(windows[windows.len() - 2], w(87, Some(88)));
    }

    #[test]
    fn pulls_stay_inside_windows() {
        let ws = [w(3, Some(9)), w(12, Some(15)), w(16, None)];
        let at = |a: u64| MemberWindow::readable(&ws, ConvSeq(a));
        assert_eq!(at(1), None, "before the first join");
        assert_eq!(at(2), Some(Some(ConvSeq(9))), "from the join itself");
        assert_eq!(at(8), Some(Some(ConvSeq(9))));
        assert_eq!(at(9), Some(Some(ConvSeq(9))), "at the leave point: nothing more");
        assert_eq!(at(10), None, "in the gap");
        assert_eq!(at(11), Some(Some(ConvSeq(15))));
        assert_eq!(at(15), Some(None), "a rejoin right after the leave continues");
        assert_eq!(at(100), Some(None));
        assert_eq!(MemberWindow::readable(&[], ConvSeq(0)), None);
    }
}
