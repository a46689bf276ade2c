//! WebSocket protocol v1: JSON text frames, one object each, tagged by
//! `"type"`. See `docs/protocol.md` for the prose version.

use crate::ids::{ClientMsgId, ConversationId, DeviceId, UserId};
use crate::model::{Message, RefusalCode, TimelineEntry, VectorClock};
use serde::{Deserialize, Serialize};

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// Frame types a client may send; anything else is `unknown_type`.
pub const CLIENT_FRAME_TYPES: &[&str] = &["hello", "send", "sync", "history", "cursor", "ping"];

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
    },
    /// The cursor cannot be served incrementally: start over from `head`.
    Reset {
        /// Echoed request id.
        req: u64,
        /// Committed head.
        head: u64,
        /// Why.
        reason: String,
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
    },
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
    /// Not found.
    NotFound,
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
        }
    }
}
