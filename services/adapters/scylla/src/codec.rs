//! Columns ↔ model: enums as stable text, integers range-checked, typed
//! rows, and the versioned JSON of a pending batch.

use scylla::{DeserializeRow, SerializeRow};
use seqline_core::ids::{ClientMsgId, ConvSeq, ConversationId, DeviceId, UserId};
use seqline_core::model::{ConversationKind, ConversationMeta, Message, MessageKind, Outcome, RefusalCode, Role};
use seqline_core::model::{TimelineEntry, VectorClock};
use seqline_core::{Error, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The only format of pending batches written so far.
const PENDING_V1: u8 = 1;

pub(crate) fn corrupt(what: impl std::fmt::Display) -> Error {
    Error::Corrupt(format!("stored data: {what}"))
}

/// A sequence number or time as a CQL `bigint`.
pub(crate) fn to_i64(v: u64, what: &str) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::Invalid(format!("{what} {v} does not fit a bigint")))
}

/// A stored `bigint` that must not be negative.
pub(crate) fn to_u64(v: i64, what: &str) -> Result<u64> {
    u64::try_from(v).map_err(|_| corrupt(format!("{what} is negative ({v})")))
}

pub(crate) fn bucket(seq: u64, bucket_size: u64) -> i64 {
    // bucket_size ≥ 1 and ≤ i64::MAX (checked by the options), so this fits.
    (seq / bucket_size) as i64
}

/// The dedup partition of a client id within its conversation.
pub(crate) fn dedup_shard(id: ClientMsgId, shards: i32) -> i32 {
    (id.0.as_u128() % shards.max(1) as u128) as i32
}

macro_rules! text_enum {
    ($to:ident, $from:ident, $ty:ty, $what:expr, { $($variant:path => $text:expr),* $(,)? }) => {
        pub(crate) fn $to(v: $ty) -> &'static str {
            match v { $($variant => $text),* }
        }
        pub(crate) fn $from(s: &str) -> Result<$ty> {
            match s { $($text => Ok($variant),)* other => Err(corrupt(format!("unknown {} {other:?}", $what))) }
        }
    };
}

text_enum!(role_text, role_of, Role, "role", { Role::Admin => "admin", Role::Member => "member" });
text_enum!(kind_text, kind_of, MessageKind, "message kind", {
    MessageKind::Text => "text", MessageKind::Created => "created",
    MessageKind::Joined => "joined", MessageKind::Left => "left",
});
text_enum!(conv_kind_text, conv_kind_of, ConversationKind, "conversation kind", {
    ConversationKind::Direct => "direct", ConversationKind::Group => "group",
});
text_enum!(code_text, code_of, RefusalCode, "refusal code", {
    RefusalCode::NotMember => "not_member", RefusalCode::OutOfOrder => "out_of_order",
    RefusalCode::Forbidden => "forbidden", RefusalCode::Invalid => "invalid",
    RefusalCode::Conflict => "conflict", RefusalCode::TooLarge => "too_large",
});

/// Parses a stored id; a bad one is corruption.
pub(crate) fn id<T>(parsed: Result<T>) -> Result<T> {
    parsed.map_err(|e| corrupt(format!("invalid id: {e}")))
}

/// The message columns shared by `messages` and `timelines`, as bound.
pub(crate) struct MessageColumns<'a> {
    pub(crate) client_msg_id: uuid::Uuid,
    pub(crate) sender: &'a str,
    pub(crate) sender_device: &'a str,
    pub(crate) kind: &'static str,
    pub(crate) body: &'a str,
    pub(crate) members: Vec<&'a str>,
    pub(crate) priority: bool,
    pub(crate) server_ts_ms: i64,
    pub(crate) vclock: BTreeMap<&'a str, i64>,
    pub(crate) sender_name: &'a str,
    pub(crate) read_diffusion: bool,
}

pub(crate) fn message_columns(m: &Message) -> Result<MessageColumns<'_>> {
    let vclock = m
        .vclock
        .iter()
        .map(|(u, n)| Ok((u.as_str(), to_i64(*n, "vector clock entry")?)))
        .collect::<Result<_>>()?;
    Ok(MessageColumns {
        client_msg_id: m.client_msg_id.0,
        sender: m.sender.as_str(),
        sender_device: m.sender_device.as_str(),
        kind: kind_text(m.kind),
        body: &m.body,
        members: m.members.iter().map(UserId::as_str).collect(),
        priority: m.priority,
        server_ts_ms: to_i64(m.server_ts_ms, "server time")?,
        vclock,
        sender_name: &m.sender_name,
        read_diffusion: m.read_diffusion,
    })
}

/// The values of `MESSAGE_PUT`, bound in the statement's order.
#[derive(SerializeRow)]
#[scylla(flavor = "enforce_order", skip_name_checks)]
pub(crate) struct MessagePut<'a> {
    pub(crate) conv: &'a str,
    pub(crate) bucket: i64,
    pub(crate) conv_seq: i64,
    pub(crate) client_msg_id: uuid::Uuid,
    pub(crate) sender: &'a str,
    pub(crate) sender_device: &'a str,
    pub(crate) kind: &'static str,
    pub(crate) body: &'a str,
    pub(crate) members: Vec<&'a str>,
    pub(crate) priority: bool,
    pub(crate) server_ts_ms: i64,
    pub(crate) vclock: BTreeMap<&'a str, i64>,
    pub(crate) sender_name: &'a str,
    pub(crate) read_diffusion: bool,
    /// `USING TIMESTAMP`.
    pub(crate) ts: i64,
}

impl<'a> MessagePut<'a> {
    pub(crate) fn new(conv: &'a str, bucket: i64, conv_seq: i64, m: MessageColumns<'a>, ts: i64) -> Self {
        Self {
            conv,
            bucket,
            conv_seq,
            client_msg_id: m.client_msg_id,
            sender: m.sender,
            sender_device: m.sender_device,
            kind: m.kind,
            body: m.body,
            members: m.members,
            priority: m.priority,
            server_ts_ms: m.server_ts_ms,
            vclock: m.vclock,
            sender_name: m.sender_name,
            read_diffusion: m.read_diffusion,
            ts,
        }
    }
}

/// The values of `ENTRY_PUT`, bound in the statement's order (more than
/// the 16 a tuple may hold).
#[derive(SerializeRow)]
#[scylla(flavor = "enforce_order", skip_name_checks)]
pub(crate) struct EntryPut<'a> {
    pub(crate) user_id: &'a str,
    pub(crate) bucket: i64,
    pub(crate) user_seq: i64,
    pub(crate) conv: &'a str,
    pub(crate) conv_seq: i64,
    pub(crate) client_msg_id: uuid::Uuid,
    pub(crate) sender: &'a str,
    pub(crate) sender_device: &'a str,
    pub(crate) kind: &'static str,
    pub(crate) body: &'a str,
    pub(crate) members: Vec<&'a str>,
    pub(crate) priority: bool,
    pub(crate) server_ts_ms: i64,
    pub(crate) vclock: BTreeMap<&'a str, i64>,
    pub(crate) sender_name: &'a str,
    pub(crate) read_diffusion: bool,
    /// `USING TIMESTAMP`.
    pub(crate) ts: i64,
}

impl<'a> EntryPut<'a> {
    pub(crate) fn new(
        user_id: &'a str,
        (bucket, user_seq): (i64, i64),
        (conv, conv_seq): (&'a str, i64),
        m: MessageColumns<'a>,
        ts: i64,
    ) -> Self {
        Self {
            user_id,
            bucket,
            user_seq,
            conv,
            conv_seq,
            client_msg_id: m.client_msg_id,
            sender: m.sender,
            sender_device: m.sender_device,
            kind: m.kind,
            body: m.body,
            members: m.members,
            priority: m.priority,
            server_ts_ms: m.server_ts_ms,
            vclock: m.vclock,
            sender_name: m.sender_name,
            read_diffusion: m.read_diffusion,
            ts,
        }
    }
}

/// A row of `messages` (its key columns come from the query).
#[derive(DeserializeRow)]
pub(crate) struct MessageRow {
    pub(crate) conv_seq: i64,
    pub(crate) client_msg_id: uuid::Uuid,
    pub(crate) sender: String,
    pub(crate) sender_device: String,
    pub(crate) kind: String,
    pub(crate) body: Option<String>,
    pub(crate) members: Option<Vec<String>>,
    pub(crate) priority: Option<bool>,
    pub(crate) server_ts_ms: i64,
    pub(crate) vclock: Option<BTreeMap<String, i64>>,
    /// Null in rows written before the column existed.
    pub(crate) sender_name: Option<String>,
    pub(crate) read_diffusion: Option<bool>,
}

impl MessageRow {
    pub(crate) fn into_message(self, conv: ConversationId) -> Result<Message> {
        let vclock: VectorClock = self
            .vclock
            .unwrap_or_default()
            .into_iter()
            .map(|(u, n)| Ok((id(UserId::parse(u))?, to_u64(n, "vector clock entry")?)))
            .collect::<Result<_>>()?;
        Ok(Message {
            conv,
            conv_seq: ConvSeq(to_u64(self.conv_seq, "conv_seq")?),
            client_msg_id: ClientMsgId(self.client_msg_id),
            sender: id(UserId::parse(self.sender))?,
            sender_device: id(DeviceId::parse(self.sender_device))?,
            kind: kind_of(&self.kind)?,
            body: self.body.unwrap_or_default(),
            members: self
                .members
                .unwrap_or_default()
                .into_iter()
                .map(|u| id(UserId::parse(u)))
                .collect::<Result<_>>()?,
            priority: self.priority.unwrap_or(false),
            server_ts_ms: to_u64(self.server_ts_ms, "server time")?,
            vclock,
            sender_name: self.sender_name.unwrap_or_default(),
            read_diffusion: self.read_diffusion.unwrap_or(false),
        })
    }
}

/// A row of `timelines`: the entry's position and conversation, then the
/// message columns of [`MessageRow`].
#[derive(DeserializeRow)]
pub(crate) struct EntryRow {
    pub(crate) user_seq: i64,
    pub(crate) conv: String,
    pub(crate) conv_seq: i64,
    pub(crate) client_msg_id: uuid::Uuid,
    pub(crate) sender: String,
    pub(crate) sender_device: String,
    pub(crate) kind: String,
    pub(crate) body: Option<String>,
    pub(crate) members: Option<Vec<String>>,
    pub(crate) priority: Option<bool>,
    pub(crate) server_ts_ms: i64,
    pub(crate) vclock: Option<BTreeMap<String, i64>>,
    pub(crate) sender_name: Option<String>,
    pub(crate) read_diffusion: Option<bool>,
}

impl EntryRow {
    pub(crate) fn into_entry(self) -> Result<TimelineEntry> {
        let conv = id(ConversationId::parse(self.conv))?;
        let message = MessageRow {
            conv_seq: self.conv_seq,
            client_msg_id: self.client_msg_id,
            sender: self.sender,
            sender_device: self.sender_device,
            kind: self.kind,
            body: self.body,
            members: self.members,
            priority: self.priority,
            server_ts_ms: self.server_ts_ms,
            vclock: self.vclock,
            sender_name: self.sender_name,
            read_diffusion: self.read_diffusion,
        }
        .into_message(conv)?;
        Ok(TimelineEntry {
            user_seq: seqline_core::ids::UserSeq(to_u64(self.user_seq, "user_seq")?),
            message,
        })
    }
}

/// A row of `dedup`.
#[derive(DeserializeRow)]
pub(crate) struct OutcomeRow {
    pub(crate) status: String,
    pub(crate) conv_seq: Option<i64>,
    pub(crate) code: Option<String>,
    pub(crate) reason: Option<String>,
}

/// The `dedup` columns of an outcome: status, conv_seq, code, reason.
pub(crate) type OutcomeColumns<'a> = (&'static str, Option<i64>, Option<&'static str>, Option<&'a str>);

pub(crate) fn outcome_columns(o: &Outcome) -> Result<OutcomeColumns<'_>> {
    Ok(match o {
        Outcome::Sequenced { conv_seq } => ("sequenced", Some(to_i64(conv_seq.0, "conv_seq")?), None, None),
        Outcome::Refused { code, reason } => ("refused", None, Some(code_text(*code)), Some(reason.as_str())),
    })
}

impl OutcomeRow {
    pub(crate) fn into_outcome(self) -> Result<Outcome> {
        match self.status.as_str() {
            "sequenced" => {
                let seq = self
                    .conv_seq
                    .ok_or_else(|| corrupt("a sequenced outcome without conv_seq"))?;
                Ok(Outcome::Sequenced {
                    conv_seq: ConvSeq(to_u64(seq, "conv_seq")?),
                })
            }
            "refused" => Ok(Outcome::Refused {
                code: code_of(self.code.as_deref().unwrap_or(""))?,
                reason: self.reason.unwrap_or_default(),
            }),
            other => Err(corrupt(format!("unknown outcome status {other:?}"))),
        }
    }
}

/// A row of `conversations`.
#[derive(DeserializeRow)]
pub(crate) struct MetaRow {
    pub(crate) kind: String,
    pub(crate) title: Option<String>,
    pub(crate) created_by: String,
    pub(crate) created_ms: i64,
}

impl MetaRow {
    pub(crate) fn into_meta(self, conv: ConversationId) -> Result<ConversationMeta> {
        Ok(ConversationMeta {
            conv,
            kind: conv_kind_of(&self.kind)?,
            title: self.title.unwrap_or_default(),
            created_by: id(UserId::parse(self.created_by))?,
            created_ms: to_u64(self.created_ms, "created_ms")?,
        })
    }
}

/// What a conversation batch writes, kept in its head row until applied.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct PendingConversation {
    pub(crate) create: Option<ConversationMeta>,
    pub(crate) messages: Vec<Message>,
    /// Net effect per user: the last change of the batch.
    pub(crate) members: Vec<(UserId, Option<Role>)>,
    /// Every membership event of the batch: (user, conv_seq, joined).
    #[serde(default)]
    pub(crate) events: Vec<(UserId, u64, bool)>,
    pub(crate) dedup: Vec<(ClientMsgId, Outcome)>,
    pub(crate) device_last: Vec<(UserId, DeviceId, ClientMsgId)>,
}

/// What a timeline batch writes, kept in its head row until applied.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct PendingTimeline {
    pub(crate) entries: Vec<TimelineEntry>,
    pub(crate) applied: Vec<(ConversationId, ConvSeq)>,
}

#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    v: u8,
    batch: T,
}

/// Encodes a pending batch: `{"v":1,"batch":…}`, deterministic for equal
/// batches (a retry compares bytes).
pub(crate) fn encode_pending<T: Serialize>(batch: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(&Envelope { v: PENDING_V1, batch })
        .map_err(|e| Error::Invalid(format!("cannot encode a batch: {e}")))
}

pub(crate) fn decode_pending<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    #[derive(Deserialize)]
    struct Version {
        v: u8,
    }
    let version: Version = serde_json::from_slice(bytes).map_err(|e| corrupt(format!("pending batch: {e}")))?;
    if version.v != PENDING_V1 {
        return Err(corrupt(format!("pending batch of unknown format {}", version.v)));
    }
    let envelope: Envelope<T> = serde_json::from_slice(bytes).map_err(|e| corrupt(format!("pending batch: {e}")))?;
    Ok(envelope.batch)
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
