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
