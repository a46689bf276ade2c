//! The stored encoding: one format-version byte, then postcard. A log
//! record appended inside a traced span has another first byte,
//! [`TRACED_V2`], and its trace context (25 bytes) before the postcard
//! body; a record without one is written as before, byte for byte.
//!
//! postcard is positional, so it cannot decode the core types that skip
//! empty fields (`Message`) or use internally tagged enums (`Outcome`). The
//! `Wire*` mirrors below are what is stored; conversions destructure every
//! field, so a field added in core fails to compile here instead of being
//! silently dropped.

use crate::error::EngineError;
use seqline_core::ids::{ClientMsgId, ConvSeq, ConversationId, DeviceId, UserId, UserSeq};
use seqline_core::model::{Message, MessageKind, Outcome, RefusalCode, TimelineEntry, VectorClock};
use seqline_core::records::{
    Command, ConvEvent, DeadLetter, Delivery, GatewayRecord, LogRecord, Notice, Origin, Package, ReadMark, Receipt,
    UserEvent,
};
use seqline_core::trace::TraceParent;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The format written: 2 added the sender's display name and the
/// read-diffusion mode to messages, and the conversation-event, notice and
/// read-mark records.
pub(crate) const FORMAT_V2: u8 = 2;

/// A format-2 log record preceded by its trace context
/// ([`TraceParent::to_bytes`]): the high bit of the format byte says the
/// context is there. Written only for records appended in a traced span.
pub(crate) const TRACED_V2: u8 = 0x80 | FORMAT_V2;

/// Encodes `value` behind the format byte.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, EngineError> {
    postcard::to_extend(value, vec![FORMAT_V2]).map_err(|e| EngineError::Encode(e.to_string()))
}

/// Decodes a value written by [`encode`]; the error says why not.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    match bytes.split_first() {
        Some((&FORMAT_V2, body)) => postcard::from_bytes(body).map_err(|e| format!("undecodable v2 value: {e}")),
        Some((1, _)) => Err(
            "format 1 (written by a seqline before 0.2); this version reads format 2: \
             start with an empty data directory"
                .into(),
        ),
        Some((v, _)) => Err(format!("unknown format version {v}")),
        None => Err("empty value".into()),
    }
}

/// [`decode`] for the store, where a bad value is corruption.
pub(crate) fn decode_stored<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, EngineError> {
    decode(bytes).map_err(EngineError::Corrupt)
}

#[derive(Serialize, Deserialize)]
pub(crate) struct WireMessage {
    conv: ConversationId,
    conv_seq: ConvSeq,
    client_msg_id: ClientMsgId,
    sender: UserId,
    sender_device: DeviceId,
    kind: MessageKind,
    body: String,
    members: Vec<UserId>,
    priority: bool,
    server_ts_ms: u64,
    vclock: VectorClock,
    sender_name: String,
    read_diffusion: bool,
}

impl From<Message> for WireMessage {
    fn from(m: Message) -> Self {
        let Message {
            conv,
            conv_seq,
            client_msg_id,
            sender,
            sender_device,
            kind,
            body,
            members,
            priority,
            server_ts_ms,
            vclock,
            sender_name,
            read_diffusion,
        } = m;
        Self {
            conv,
            conv_seq,
            client_msg_id,
            sender,
            sender_device,
            kind,
            body,
            members,
            priority,
            server_ts_ms,
            vclock,
            sender_name,
            read_diffusion,
        }
    }
}

impl From<WireMessage> for Message {
    fn from(m: WireMessage) -> Self {
        let WireMessage {
            conv,
            conv_seq,
            client_msg_id,
            sender,
            sender_device,
            kind,
            body,
            members,
            priority,
            server_ts_ms,
            vclock,
            sender_name,
            read_diffusion,
        } = m;
        Self {
            conv,
            conv_seq,
            client_msg_id,
            sender,
            sender_device,
            kind,
            body,
            members,
            priority,
            server_ts_ms,
            vclock,
            sender_name,
            read_diffusion,
        }
    }
}

#[derive(Serialize, Deserialize)]
pub(crate) struct WireEntry {
    user_seq: UserSeq,
    message: WireMessage,
}

impl From<TimelineEntry> for WireEntry {
    fn from(e: TimelineEntry) -> Self {
        Self {
            user_seq: e.user_seq,
            message: e.message.into(),
        }
    }
}

impl From<WireEntry> for TimelineEntry {
    fn from(e: WireEntry) -> Self {
        Self {
            user_seq: e.user_seq,
            message: e.message.into(),
        }
    }
}

#[derive(Serialize, Deserialize)]
pub(crate) enum WireOutcome {
    Sequenced { conv_seq: ConvSeq },
    Refused { code: RefusalCode, reason: String },
}

impl From<Outcome> for WireOutcome {
    fn from(o: Outcome) -> Self {
        match o {
            Outcome::Sequenced { conv_seq } => Self::Sequenced { conv_seq },
            Outcome::Refused { code, reason } => Self::Refused { code, reason },
        }
    }
}

impl From<WireOutcome> for Outcome {
    fn from(o: WireOutcome) -> Self {
        match o {
            WireOutcome::Sequenced { conv_seq } => Self::Sequenced { conv_seq },
            WireOutcome::Refused { code, reason } => Self::Refused { code, reason },
        }
    }
}

/// A log record as stored.
#[derive(Serialize, Deserialize)]
pub(crate) enum WireRecord {
    Command(Command),
    Delivery {
        user: UserId,
        message: WireMessage,
    },
    UserEvent {
        user: UserId,
        entry: WireEntry,
    },
    Receipt {
        origin: Origin,
        conv: ConversationId,
        client_msg_id: ClientMsgId,
        outcome: WireOutcome,
    },
    Package {
        user: UserId,
        device: DeviceId,
        package_id: u64,
        index: u32,
        count: u32,
        entries: Vec<WireEntry>,
    },
    DeadLetter(DeadLetter),
    ConvEvent {
        message: WireMessage,
    },
    Notice {
        conv: ConversationId,
        head: ConvSeq,
        message: Option<WireMessage>,
    },
    ReadMark(ReadMark),
}

impl From<LogRecord> for WireRecord {
    fn from(r: LogRecord) -> Self {
        match r {
            LogRecord::Command(c) => Self::Command(c),
            LogRecord::Delivery(Delivery { user, message }) => Self::Delivery {
                user,
                message: message.into(),
            },
            LogRecord::UserEvent(UserEvent { user, entry }) => Self::UserEvent {
                user,
                entry: entry.into(),
            },
            LogRecord::Gateway(GatewayRecord::Receipt(Receipt {
                origin,
                conv,
                client_msg_id,
                outcome,
            })) => Self::Receipt {
                origin,
                conv,
                client_msg_id,
                outcome: outcome.into(),
            },
            LogRecord::Gateway(GatewayRecord::Package(Package {
                user,
                device,
                package_id,
                index,
                count,
                entries,
            })) => {
                let entries = entries.into_iter().map(WireEntry::from).collect();
                Self::Package {
                    user,
                    device,
                    package_id,
                    index,
                    count,
                    entries,
                }
            }
            LogRecord::DeadLetter(d) => Self::DeadLetter(d),
            LogRecord::ConvEvent(ConvEvent { message }) => Self::ConvEvent {
                message: message.into(),
            },
            LogRecord::Gateway(GatewayRecord::Notice(Notice { conv, head, message })) => Self::Notice {
                conv,
                head,
                message: message.map(WireMessage::from),
            },
            LogRecord::Gateway(GatewayRecord::ReadMark(r)) => Self::ReadMark(r),
        }
    }
}

impl From<WireRecord> for LogRecord {
    fn from(r: WireRecord) -> Self {
        match r {
            WireRecord::Command(c) => Self::Command(c),
            WireRecord::Delivery { user, message } => Self::Delivery(Delivery {
                user,
                message: message.into(),
            }),
            WireRecord::UserEvent { user, entry } => Self::UserEvent(UserEvent {
                user,
                entry: entry.into(),
            }),
            WireRecord::Receipt {
                origin,
                conv,
                client_msg_id,
                outcome,
            } => Self::Gateway(GatewayRecord::Receipt(Receipt {
                origin,
                conv,
                client_msg_id,
                outcome: outcome.into(),
            })),
            WireRecord::Package {
                user,
                device,
                package_id,
                index,
                count,
                entries,
            } => {
                let entries = entries.into_iter().map(TimelineEntry::from).collect();
                Self::Gateway(GatewayRecord::Package(Package {
                    user,
                    device,
                    package_id,
                    index,
                    count,
                    entries,
                }))
            }
            WireRecord::DeadLetter(d) => Self::DeadLetter(d),
            WireRecord::ConvEvent { message } => Self::ConvEvent(ConvEvent {
                message: message.into(),
            }),
            WireRecord::Notice { conv, head, message } => Self::Gateway(GatewayRecord::Notice(Notice {
                conv,
                head,
                message: message.map(Message::from),
            })),
            WireRecord::ReadMark(r) => Self::Gateway(GatewayRecord::ReadMark(r)),
        }
    }
}

/// Encodes a log record for storage, with the trace context of the span
/// that appends it, if any.
pub(crate) fn encode_record(record: LogRecord, trace: Option<TraceParent>) -> Result<Vec<u8>, EngineError> {
    let wire = WireRecord::from(record);
    match trace {
        None => encode(&wire),
        Some(t) => {
            let mut head = Vec::with_capacity(64);
            head.push(TRACED_V2);
            head.extend_from_slice(&t.to_bytes());
            postcard::to_extend(&wire, head).map_err(|e| EngineError::Encode(e.to_string()))
        }
    }
}

/// Decodes a stored log record (the error is the reason for
/// dead-lettering) and its trace context.
pub(crate) fn decode_record(bytes: &[u8]) -> (Result<LogRecord, String>, Option<TraceParent>) {
    match bytes.split_first() {
        Some((&TRACED_V2, rest)) => {
            let Some(body) = rest.get(TraceParent::LEN..) else {
                return (Err("a traced record shorter than its trace context".into()), None);
            };
            let record = postcard::from_bytes::<WireRecord>(body)
                .map(LogRecord::from)
                .map_err(|e| format!("undecodable v2 value: {e}"));
            (record, TraceParent::from_bytes(rest))
        }
        _ => (decode::<WireRecord>(bytes).map(LogRecord::from), None),
    }
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
