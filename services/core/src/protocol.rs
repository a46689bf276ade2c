//! WebSocket protocol v1: JSON text frames, one object each, tagged by
//! `"type"`. See `docs/protocol.md` for the prose version.

use crate::epoch::Epoch;
use crate::ids::{ClientMsgId, ConversationId, DeviceId, UserId};
use crate::model::{Message, RefusalCode, TimelineEntry, VectorClock};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// Frame types a client may send; anything else is `unknown_type`.
pub const CLIENT_FRAME_TYPES: &[&str] = &[
    "hello",
    "send",
    "sync",
    "history",
    "cursor",
    "ping",
    "sync_conv",
    "poll",
    "read",
    "unread",
    "batch",
];

/// Most conversations one `poll` may name.
pub const MAX_POLL_CONVS: usize = 1000;
/// Longest a `poll` may wait, milliseconds.
pub const MAX_POLL_WAIT_MS: u64 = 30_000;

/// A frame from a client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    /// First frame: authenticate.
    Hello {
        /// Signed token naming user, device and expiry.
        token: String,
    },
    /// Send a message.
    Send {
        /// The client's id for this message (resends reuse it).
        id: ClientMsgId,
        /// To which conversation.
        conv: ConversationId,
        /// The text.
        body: String,
        /// The previous message this device sent to `conv`, if any.
        #[serde(default)]
        prev: Option<ClientMsgId>,
        /// High priority (group admins only).
        #[serde(default)]
        priority: bool,
        /// The author's vector clock (optional).
        #[serde(default)]
        vclock: VectorClock,
    },
    /// Page the user's timeline after `after`.
    Sync {
        /// Request id echoed in the answer.
        req: u64,
        /// The last user_seq the device has.
        after: u64,
        /// Page size (clamped to the server maximum).
        #[serde(default)]
        limit: Option<u32>,
        /// The epoch the device's cursor belongs to: another one gets `reset`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        epoch: Option<Epoch>,
        /// The `client_msg_id` of the entry at `after`: another entry there
        /// (a store restored from an older backup) gets `reset`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after_id: Option<ClientMsgId>,
    },
    /// Page a conversation's history.
    History {
        /// Request id echoed in the answer.
        req: u64,
        /// The conversation.
        conv: ConversationId,
        /// Messages before this conv_seq (the newest page when absent).
        #[serde(default)]
        before: Option<u64>,
        /// Or: messages after this conv_seq, ascending.
        #[serde(default)]
        after: Option<u64>,
        /// Page size (clamped to the server maximum).
        #[serde(default)]
        limit: Option<u32>,
        /// The epoch the device's copy belongs to: another one gets
        /// `error{stale_epoch}`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        epoch: Option<Epoch>,
    },
    /// The device has everything up to `user_seq`.
    Cursor {
        /// The device's cursor.
        user_seq: u64,
    },
    /// Keep-alive; the answer carries the timeline head.
    Ping {
        /// Request id echoed in the answer.
        #[serde(default)]
        req: Option<u64>,
    },
    /// Page a read-diffusion conversation forward from the device's
    /// conversation cursor: messages with `conv_seq > after`.
    SyncConv {
        /// Request id echoed in the answer.
        req: u64,
        /// The conversation.
        conv: ConversationId,
        /// The last conv_seq the device has.
        after: u64,
        /// Page size (clamped to the server maximum).
        #[serde(default)]
        limit: Option<u32>,
        /// The epoch the device's cursor belongs to: another one gets
        /// `error{stale_epoch}`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        epoch: Option<Epoch>,
    },
    /// Long-poll: answer as soon as any of `convs` has a head above its
    /// cursor, or after `wait_ms` (bounded by the server) with nothing.
    /// The connection also follows these conversations: it gets `notice`
    /// and `priority` pushes for them while it stays open.
    Poll {
        /// Request id echoed in the answer.
        req: u64,
        /// Conversations with the device's cursor in each.
        convs: Vec<ConvCursor>,
        /// How long to wait, milliseconds (server default when absent).
        #[serde(default)]
        wait_ms: Option<u64>,
    },
    /// Everything up to `conv_seq` of `conv` has been read by the user.
    Read {
        /// The conversation.
        conv: ConversationId,
        /// The new read position (positions only move forward).
        conv_seq: u64,
    },
    /// Unread counts of every conversation of the user.
    Unread {
        /// Request id echoed in the answer.
        req: u64,
    },
    /// Several commands for one conversation, sequenced consecutively (no
    /// other command in between) or refused whole. Each command is
    /// answered by `ack` or `nack` with its own `id`, as a send is.
    Batch {
        /// The conversation.
        conv: ConversationId,
        /// The previous message this device sent to `conv`, if any: the
        /// predecessor of the batch's first send. Each later send follows
        /// the send before it in the batch.
        #[serde(default)]
        prev: Option<ClientMsgId>,
        /// The commands, in order (at most `max_batch_commands`).
        commands: Vec<BatchEntry>,
    },
}

/// One command of a `batch` frame.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum BatchEntry {
    /// Send a message, as the `send` frame does.
    Send {
        /// The client's id for this message (resends reuse it).
        id: ClientMsgId,
        /// The text.
        body: String,
        /// High priority (group admins only).
        #[serde(default)]
        priority: bool,
        /// The author's vector clock (optional).
        #[serde(default)]
        vclock: VectorClock,
    },
    /// Leave the conversation (its `left` message is sequenced).
    Leave {
        /// The client's id for this command (resends reuse it).
        id: ClientMsgId,
    },
}

impl BatchEntry {
    /// The entry's client id.
    pub fn id(&self) -> ClientMsgId {
        match self {
            BatchEntry::Send { id, .. } | BatchEntry::Leave { id } => *id,
        }
    }
}

/// A conversation and a device's cursor in it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConvCursor {
    /// The conversation.
    pub conv: ConversationId,
    /// The last conv_seq the device has.
    pub after: u64,
}

/// A conversation and its committed head.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvHead {
    /// The conversation.
    pub conv: ConversationId,
    /// Its committed head.
    pub head: u64,
}

/// Unread state of one conversation for one user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnreadCount {
    /// The conversation.
    pub conv: ConversationId,
    /// Its committed head.
    pub head: u64,
    /// The user's read position (0 when never set).
    pub read: u64,
    /// Messages after the read position: `head - read`.
    pub unread: u64,
}

/// Limits the server announces in `welcome`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Largest frame accepted, bytes.
    pub max_frame_bytes: usize,
    /// Largest message body accepted, bytes.
    pub max_body_bytes: usize,
    /// Largest page a sync or history answer returns.
    pub max_page: u32,
    /// Messages per second a connection may send.
    pub max_sends_per_sec: u32,
    /// Most commands in one `batch` (0 from a server without batches).
    #[serde(default)]
    pub max_batch_commands: usize,
    /// Most body bytes of all the sends of one `batch` together.
    #[serde(default)]
    pub max_batch_bytes: usize,
}

/// A frame from the server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// Authentication succeeded.
    Welcome {
        /// Protocol version.
        protocol: u32,
        /// The user the token names.
        user: UserId,
        /// The device the token names.
        device: DeviceId,
        /// Committed head of the user's timeline.
        head: u64,
        /// This device's last recorded cursor.
        cursor: Option<u64>,
        /// The epoch of the data: cursors, pages and history belong to it.
        epoch: Epoch,
        /// Limits of this server.
        limits: Limits,
    },
    /// A message was sequenced (also the answer to a resend).
    Ack {
        /// The client's id.
        id: ClientMsgId,
        /// The conversation.
        conv: ConversationId,
        /// Where it sits.
        conv_seq: u64,
    },
    /// A message was refused.
    Nack {
        /// The client's id.
        id: ClientMsgId,
        /// The conversation.
        conv: ConversationId,
        /// Why, as a code.
        code: RefusalCode,
        /// Why, for humans.
        message: String,
    },
    /// New timeline entries, complete and in order.
    Push {
        /// The package they came in.
        package: u64,
        /// The entries, ascending user_seq.
        entries: Vec<TimelineEntry>,
    },
    /// Something was missed: sync from `after`.
    Pull {
        /// The last user_seq pushed in order.
        after: u64,
    },
    /// A page of the timeline.
    SyncPage {
        /// Echoed request id.
        req: u64,
        /// Entries, ascending user_seq.
        entries: Vec<TimelineEntry>,
        /// Committed head.
        head: u64,
        /// More entries follow this page.
        more: bool,
        /// The epoch of the data the entries belong to.
        epoch: Epoch,
    },
    /// The cursor cannot be served incrementally: start over from `head`.
    Reset {
        /// Echoed request id.
        req: u64,
        /// Committed head.
        head: u64,
        /// Why, for humans.
        reason: String,
        /// Why, as a code.
        code: ResetCode,
        /// The epoch of the data to start over in.
        epoch: Epoch,
    },
    /// A page of a conversation's history.
    HistoryPage {
        /// Echoed request id.
        req: u64,
        /// The conversation.
        conv: ConversationId,
        /// Messages, ascending conv_seq.
        messages: Vec<Message>,
        /// Committed head of the conversation.
        head: u64,
        /// The epoch of the data the messages belong to.
        epoch: Epoch,
    },
    /// A page of a read-diffusion conversation after a cursor.
    ConvPage {
        /// Echoed request id.
        req: u64,
        /// The conversation.
        conv: ConversationId,
        /// Messages, ascending conv_seq, contiguous from `after + 1`.
        messages: Vec<Message>,
        /// Committed head of the conversation.
        head: u64,
        /// More messages follow this page.
        more: bool,
        /// The epoch of the data the messages belong to.
        epoch: Epoch,
    },
    /// Answer to `poll`: the conversations whose head is above the cursor
    /// the poll named (empty when the wait ran out).
    Polled {
        /// Echoed request id.
        req: u64,
        /// Advanced conversations with their heads.
        advanced: Vec<ConvHead>,
    },
    /// A followed conversation advanced to `head`: pull with `sync_conv`.
    /// Coalesced and throttled; may be dropped under load.
    Notice {
        /// The conversation.
        conv: ConversationId,
        /// Its committed head.
        head: u64,
    },
    /// A high-priority message of a followed conversation, pushed in full
    /// ahead of other traffic. It still arrives in order through pulls.
    Priority {
        /// The message.
        message: Message,
    },
    /// Another device of the user moved a read position.
    ReadMark {
        /// The conversation.
        conv: ConversationId,
        /// The read position.
        conv_seq: u64,
    },
    /// Answer to `unread`.
    UnreadPage {
        /// Echoed request id.
        req: u64,
        /// Every conversation of the user.
        convs: Vec<UnreadCount>,
    },
    /// Answer to ping.
    Pong {
        /// Echoed request id.
        req: Option<u64>,
        /// Committed head of the user's timeline.
        head: u64,
    },
    /// A request failed.
    Error {
        /// Echoed request id, when the frame had one.
        req: Option<u64>,
        /// Stable code.
        code: ErrorCode,
        /// For humans.
        message: String,
        /// For a refused send: the message's `id` as the frame wrote it,
        /// whenever the frame had one that reads as a UUID (absent for
        /// other frames).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        /// For a refused send: its conversation, when the frame named a
        /// valid one; for an error about one conversation (`sync_conv`,
        /// `poll`, `read`), that conversation.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conv: Option<ConversationId>,
        /// For `rate_limited`: how long to wait before resending, in
        /// milliseconds, when the server can tell (absent otherwise).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
}

/// Why a sync cursor cannot be served incrementally.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResetCode {
    /// The cursor is beyond the timeline head.
    BeyondHead,
    /// The entries after the cursor are no longer stored.
    Trimmed,
    /// The cursor belongs to another epoch of the data (the store was
    /// wiped or replaced): nothing the device has of the timeline holds.
    StaleEpoch,
    /// The entry at the cursor is not the one the device has (the store was
    /// restored from an older copy and wrote past it since): nothing the
    /// device has of the timeline can be trusted.
    OtherEntry,
}

impl ResetCode {
    /// Whether the device's timeline belongs to other data, so it drops all
    /// of it and syncs again from the start.
    pub fn data_replaced(self) -> bool {
        matches!(self, ResetCode::StaleEpoch | ResetCode::OtherEntry)
    }
}

/// Stable error codes of `error` frames and HTTP answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame is not a JSON object.
    BadFrame,
    /// The frame's type is not known.
    UnknownType,
    /// A field is missing or has the wrong type or value.
    InvalidField,
    /// The frame or body is over the limit.
    TooLarge,
    /// A text frame was not UTF-8, or a binary frame was sent.
    InvalidUtf8,
    /// No valid hello yet.
    Unauthenticated,
    /// The token is malformed, forged or uses another algorithm.
    BadToken,
    /// The token has expired or is not valid yet.
    TokenExpired,
    /// Hello after a successful hello.
    AlreadyAuthenticated,
    /// Not a member of that conversation (or it does not exist).
    NotMember,
    /// Only an admin may do this.
    Forbidden,
    /// Too many requests.
    RateLimited,
    /// The request named an epoch the data no longer has (the store was
    /// wiped, restored or swapped): drop what was read and start over.
    StaleEpoch,
    /// Not found.
    NotFound,
    /// (HTTP) The path exists but not with this method.
    MethodNotAllowed,
    /// The server is overloaded or a backend is down; retry later.
    Unavailable,
    /// A bug; the message says no more.
    Internal,
}

impl ServerFrame {
    /// An error frame.
    pub fn error(req: Option<u64>, code: ErrorCode, message: impl Into<String>) -> Self {
        ServerFrame::Error {
            req,
            code,
            message: message.into(),
            id: None,
            conv: None,
            retry_after_ms: None,
        }
    }

    /// An error about one conversation: `conv` names it in full (the text
    /// quotes at most a prefix of it).
    pub fn conv_error(req: Option<u64>, conv: &ConversationId, code: ErrorCode, message: impl Into<String>) -> Self {
        ServerFrame::Error {
            req,
            code,
            message: message.into(),
            id: None,
            conv: Some(conv.clone()),
            retry_after_ms: None,
        }
    }

    /// The error frame refusing a send: names the message in `id` (as the
    /// frame wrote it) and `conv` (when known), and starts the text with
    /// `message <id>: `.
    pub fn send_error(id: &str, conv: Option<ConversationId>, code: ErrorCode, message: impl fmt::Display) -> Self {
        ServerFrame::Error {
            req: None,
            code,
            message: format!("message {id}: {message}"),
            id: Some(id.to_owned()),
            conv,
            retry_after_ms: None,
        }
    }
}
