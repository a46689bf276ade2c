//! The domain model: what is stored and what devices receive.

use crate::ids::{ClientMsgId, ConvSeq, ConversationId, DeviceId, UserId, UserSeq};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A vector clock: per participant, how many of their messages the author had
/// seen (their own included) when composing. Orders history causally.
pub type VectorClock = BTreeMap<UserId, u64>;

/// What a stored message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// A chat message written by a user.
    Text,
    /// The conversation was created; `members` lists the first members.
    Created,
    /// Users joined.
    Joined,
    /// Users left or were removed.
    Left,
}

/// A sequenced message, as stored and as delivered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// The conversation.
    pub conv: ConversationId,
    /// Its position in the conversation.
    pub conv_seq: ConvSeq,
    /// The id the sending client chose.
    pub client_msg_id: ClientMsgId,
    /// Who sent it.
    pub sender: UserId,
    /// From which device.
    pub sender_device: DeviceId,
    /// What it is.
    pub kind: MessageKind,
    /// The text (empty for membership events).
    #[serde(default)]
    pub body: String,
    /// Users a membership event is about.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<UserId>,
    /// High priority (announcements, membership events).
    #[serde(default)]
    pub priority: bool,
    /// Server time when sequenced, milliseconds since the Unix epoch.
    pub server_ts_ms: u64,
    /// The author's vector clock, when the client sent one.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub vclock: VectorClock,
    /// The sender's display name when the message was sent (from the
    /// token's `name` claim), so a device can show it without fetching a
    /// member list. Empty when the token had none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sender_name: String,
    /// The conversation's mode after this message: `true` when later
    /// messages are not written to members' timelines but pulled by
    /// conversation cursor (read diffusion, huge groups). A message where
    /// this flips is the recorded boundary of the switch: it and everything
    /// before it reached timelines in the old mode. Always written (`false`
    /// in write mode), as protocol.md promises.
    #[serde(default)]
    pub read_diffusion: bool,
}

impl Message {
    /// An upper estimate of the message's size as a JSON frame, bytes, for
    /// cutting pages and pushes to a byte budget without serializing twice.
    /// Text is counted twice over, which covers the escaping of ordinary
    /// text (quotes, backslashes, newlines).
    pub fn size_hint(&self) -> usize {
        let ids = self.conv.as_str().len() + self.sender.as_str().len() + self.sender_device.as_str().len();
        let members: usize = self.members.iter().map(|u| u.as_str().len() + 3).sum();
        let vclock: usize = self.vclock.keys().map(|u| u.as_str().len() + 24).sum();
        320 + ids + 2 * (self.body.len() + self.sender_name.len()) + members + vclock
    }
}

/// How many items of `items`, from the first, fit in `budget` bytes by
/// their size hints: at least one, so an oversized item still goes alone.
pub fn fitting<T>(items: &[T], budget: usize, size: impl Fn(&T) -> usize) -> usize {
    let mut total = 0;
    items
        .iter()
        .position(|item| {
            total += size(item);
            total > budget
        })
        .map_or(items.len(), |i| i.max(1))
}

/// Keeps the longest prefix of `items` (at least one item) that fits in
/// `budget` bytes; true when something was cut off.
pub fn fit_budget<T>(items: &mut Vec<T>, budget: usize, size: impl Fn(&T) -> usize) -> bool {
    let keep = fitting(items, budget, size);
    let cut = keep < items.len();
    items.truncate(keep);
    cut
}

/// One entry of a user's timeline: a message of one of their conversations.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// Position in the user's timeline.
    pub user_seq: UserSeq,
    /// The message.
    pub message: Message,
}

/// Why a command was refused, as a stable code clients can switch on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalCode {
    /// The sender is not a member of the conversation (or it does not exist).
    NotMember,
    /// The predecessor named by the send is not sequenced yet: resend from the
    /// first unacknowledged message.
    OutOfOrder,
    /// Only an admin may do this.
    Forbidden,
    /// The command is invalid (for example a direct conversation of three).
    Invalid,
    /// The conversation already exists with other settings.
    Conflict,
    /// Too many members.
    TooLarge,
}

impl RefusalCode {
    /// Whether the refusal is final (kept in the dedup window) or transient.
    pub fn is_final(self) -> bool {
        !matches!(self, RefusalCode::OutOfOrder)
    }
}

/// What became of a command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// Sequenced at `conv_seq` (also the answer to a resend).
    Sequenced {
        /// Where it sits.
        conv_seq: ConvSeq,
    },
    /// Refused.
    Refused {
        /// Why, as a code.
        code: RefusalCode,
        /// Why, for humans.
        reason: String,
    },
}

/// Direct (two users, fixed) or group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversationKind {
    /// One-to-one.
    Direct,
    /// A group with admins.
    Group,
}

/// A member's role in a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// May add and remove members.
    Admin,
    /// May send and read.
    Member,
}

/// Settings of a conversation fixed at creation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationMeta {
    /// Its id.
    pub conv: ConversationId,
    /// Direct or group.
    pub kind: ConversationKind,
    /// Display title (groups).
    #[serde(default)]
    pub title: String,
    /// Who created it.
    pub created_by: UserId,
    /// When, milliseconds since the Unix epoch.
    pub created_ms: u64,
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
