//! Core types → Avro values of the current schemas, field by field.
//!
//! Unsigned integers are stored in Avro `long`s bit for bit (`u64 as i64`),
//! so every value round-trips, including those above `i64::MAX`.

use super::AvroValue;
use apache_avro::types::Value;
use seqline_core::ids::UserId;
use seqline_core::model::{ConversationKind, Message, MessageKind, Outcome, RefusalCode, TimelineEntry, VectorClock};
use seqline_core::records::{
    BatchCommand, BatchItem, Command, ConvEvent, CreateCommand, DeadLetter, Delivery, MembersCommand, Notice, Origin,
    Package, ReadMark, Receipt, SendCommand, UserEvent,
};
use std::collections::HashMap;

fn record(fields: Vec<(&str, Value)>) -> Value {
    Value::Record(fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

fn string(s: &str) -> Value {
    Value::String(s.to_string())
}

fn long(n: u64) -> Value {
    Value::Long(n as i64)
}

fn users(items: &[UserId]) -> Value {
    Value::Array(items.iter().map(|u| string(u.as_str())).collect())
}

fn enum_value(index: u32, symbol: &str) -> Value {
    Value::Enum(index, symbol.to_string())
}

fn vclock(clock: &VectorClock) -> Value {
    let seen: HashMap<String, Value> = clock.iter().map(|(u, n)| (u.to_string(), long(*n))).collect();
    record(vec![("seen", Value::Map(seen))])
}

fn of<T>(value: T) -> Value
where
    AvroValue: From<T>,
{
    AvroValue::from(value).0
}

impl From<&Origin> for AvroValue {
    fn from(o: &Origin) -> Self {
        AvroValue(record(vec![
            ("gateway", string(o.gateway.as_str())),
            ("user", string(o.user.as_str())),
            ("device", string(o.device.as_str())),
            ("request", long(o.request)),
            ("name", string(&o.name)),
        ]))
    }
}

impl From<&Message> for AvroValue {
    fn from(m: &Message) -> Self {
        let kind = match m.kind {
            MessageKind::Text => enum_value(0, "TEXT"),
            MessageKind::Created => enum_value(1, "CREATED"),
            MessageKind::Joined => enum_value(2, "JOINED"),
            MessageKind::Left => enum_value(3, "LEFT"),
        };
        AvroValue(record(vec![
            ("conv", string(m.conv.as_str())),
            ("conv_seq", long(m.conv_seq.0)),
            ("client_msg_id", Value::Uuid(m.client_msg_id.0)),
            ("sender", string(m.sender.as_str())),
            ("sender_device", string(m.sender_device.as_str())),
            ("kind", kind),
            ("body", string(&m.body)),
            ("members", users(&m.members)),
            ("server_ts_ms", long(m.server_ts_ms)),
            ("vclock", vclock(&m.vclock)),
            ("priority", Value::Boolean(m.priority)),
            ("sender_name", string(&m.sender_name)),
            ("read_diffusion", Value::Boolean(m.read_diffusion)),
        ]))
    }
}

impl From<&TimelineEntry> for AvroValue {
    fn from(e: &TimelineEntry) -> Self {
        AvroValue(record(vec![
            ("user_seq", long(e.user_seq.0)),
            ("message", of(&e.message)),
        ]))
    }
}

impl From<&Outcome> for AvroValue {
    fn from(o: &Outcome) -> Self {
        let result = match o {
            Outcome::Sequenced { conv_seq } => Value::Union(0, Box::new(record(vec![("conv_seq", long(conv_seq.0))]))),
            Outcome::Refused { code, reason } => {
                let code = match code {
                    RefusalCode::NotMember => enum_value(0, "NOT_MEMBER"),
                    RefusalCode::OutOfOrder => enum_value(1, "OUT_OF_ORDER"),
                    RefusalCode::Forbidden => enum_value(2, "FORBIDDEN"),
                    RefusalCode::Invalid => enum_value(3, "INVALID"),
                    RefusalCode::Conflict => enum_value(4, "CONFLICT"),
                    RefusalCode::TooLarge => enum_value(5, "TOO_LARGE"),
                };
                Value::Union(1, Box::new(record(vec![("code", code), ("reason", string(reason))])))
            }
        };
        AvroValue(record(vec![("result", result)]))
    }
}

impl From<&SendCommand> for AvroValue {
    fn from(c: &SendCommand) -> Self {
        let prev = match c.prev {
            None => Value::Union(0, Box::new(Value::Null)),
            Some(id) => Value::Union(1, Box::new(Value::Uuid(id.0))),
        };
        AvroValue(record(vec![
            ("origin", of(&c.origin)),
            ("conv", string(c.conv.as_str())),
            ("client_msg_id", Value::Uuid(c.client_msg_id.0)),
            ("prev", prev),
            ("body", string(&c.body)),
            ("priority", Value::Boolean(c.priority)),
            ("vclock", vclock(&c.vclock)),
            ("sent_ms", long(c.sent_ms)),
        ]))
    }
}

impl From<&CreateCommand> for AvroValue {
    fn from(c: &CreateCommand) -> Self {
        let kind = match c.kind {
            ConversationKind::Direct => enum_value(0, "DIRECT"),
            ConversationKind::Group => enum_value(1, "GROUP"),
        };
        AvroValue(record(vec![
            ("origin", of(&c.origin)),
            ("conv", string(c.conv.as_str())),
            ("kind", kind),
            ("title", string(&c.title)),
            ("members", users(&c.members)),
            ("client_msg_id", Value::Uuid(c.client_msg_id.0)),
        ]))
    }
}

impl From<&MembersCommand> for AvroValue {
    fn from(c: &MembersCommand) -> Self {
        AvroValue(record(vec![
            ("origin", of(&c.origin)),
            ("conv", string(c.conv.as_str())),
            ("client_msg_id", Value::Uuid(c.client_msg_id.0)),
            ("add", users(&c.add)),
            ("remove", users(&c.remove)),
        ]))
    }
}

impl From<&Command> for AvroValue {
    fn from(c: &Command) -> Self {
        let command = match c {
            Command::Send(s) => Value::Union(0, Box::new(of(s))),
            Command::Create(s) => Value::Union(1, Box::new(of(s))),
            Command::ChangeMembers(s) => Value::Union(2, Box::new(of(s))),
            // A batch has a record kind of its own (`CommandBatch`); this
            // value does not fit the `Command` schema.
            Command::Batch(b) => of(b),
        };
        AvroValue(record(vec![("command", command)]))
    }
}

impl From<&BatchCommand> for AvroValue {
    fn from(b: &BatchCommand) -> Self {
        let commands = b
            .commands
            .iter()
            .map(|c| match c {
                BatchItem::Send(s) => Value::Union(0, Box::new(of(s))),
                BatchItem::ChangeMembers(m) => Value::Union(1, Box::new(of(m))),
            })
            .collect();
        AvroValue(record(vec![
            ("origin", of(&b.origin)),
            ("conv", string(b.conv.as_str())),
            ("commands", Value::Array(commands)),
        ]))
    }
}

impl From<&Delivery> for AvroValue {
    fn from(d: &Delivery) -> Self {
        AvroValue(record(vec![
            ("user", string(d.user.as_str())),
            ("message", of(&d.message)),
        ]))
    }
}

impl From<&UserEvent> for AvroValue {
    fn from(e: &UserEvent) -> Self {
        AvroValue(record(vec![("user", string(e.user.as_str())), ("entry", of(&e.entry))]))
    }
}

impl From<&Receipt> for AvroValue {
    fn from(r: &Receipt) -> Self {
        AvroValue(record(vec![
            ("origin", of(&r.origin)),
            ("conv", string(r.conv.as_str())),
            ("client_msg_id", Value::Uuid(r.client_msg_id.0)),
            ("outcome", of(&r.outcome)),
        ]))
    }
}

impl From<&Package> for AvroValue {
    fn from(p: &Package) -> Self {
        AvroValue(record(vec![
            ("user", string(p.user.as_str())),
            ("device", string(p.device.as_str())),
            ("package_id", long(p.package_id)),
            ("index", long(u64::from(p.index))),
            ("count", long(u64::from(p.count))),
            ("entries", Value::Array(p.entries.iter().map(of).collect())),
        ]))
    }
}

impl From<&DeadLetter> for AvroValue {
    fn from(d: &DeadLetter) -> Self {
        AvroValue(record(vec![
            ("topic", string(&d.topic)),
            ("partition", long(u64::from(d.partition))),
            ("offset", long(d.offset)),
            ("reason", string(&d.reason)),
            ("raw", Value::Bytes(d.raw.clone())),
        ]))
    }
}

impl From<&ConvEvent> for AvroValue {
    fn from(e: &ConvEvent) -> Self {
        AvroValue(record(vec![("message", of(&e.message))]))
    }
}

impl From<&Notice> for AvroValue {
    fn from(n: &Notice) -> Self {
        let message = match &n.message {
            None => Value::Union(0, Box::new(Value::Null)),
            Some(m) => Value::Union(1, Box::new(of(m))),
        };
        AvroValue(record(vec![
            ("conv", string(n.conv.as_str())),
            ("head", long(n.head.0)),
            ("message", message),
        ]))
    }
}

impl From<&ReadMark> for AvroValue {
    fn from(r: &ReadMark) -> Self {
        AvroValue(record(vec![
            ("user", string(r.user.as_str())),
            ("device", string(r.device.as_str())),
            ("conv", string(r.conv.as_str())),
            ("conv_seq", long(r.conv_seq.0)),
        ]))
    }
}
