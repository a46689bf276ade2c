//! Avro values (already resolved to the current reader schemas) → core
//! types, field by field. Every failure is a reason string, never a panic:
//! ids are validated as on any other input, enums match by symbol.

use super::AvroValue;
use apache_avro::types::Value;
use seqline_core::ids::{ClientMsgId, ConvSeq, ConversationId, DeviceId, GatewayId, UserId, UserSeq};
use seqline_core::model::{ConversationKind, Message, MessageKind, Outcome, RefusalCode, TimelineEntry, VectorClock};
use seqline_core::records::{
    BatchCommand, BatchItem, Command, ConvEvent, CreateCommand, DeadLetter, Delivery, MembersCommand, Notice, Origin,
    Package, ReadMark, Receipt, SendCommand, UserEvent,
};

type Decoded<T> = Result<T, String>;

/// The fields of a record value, taken one by one by name.
struct Fields {
    what: &'static str,
    fields: Vec<(String, Value)>,
}

impl Fields {
    fn of(value: AvroValue, what: &'static str) -> Decoded<Self> {
        match value.0 {
            Value::Record(fields) => Ok(Self { what, fields }),
            other => Err(format!("{what}: expected a record, got {}", kind_of(&other))),
        }
    }

    fn take(&mut self, name: &str) -> Decoded<Value> {
        self.fields
            .iter_mut()
            .find(|(k, _)| k == name)
            .map(|(_, v)| std::mem::replace(v, Value::Null))
            .ok_or_else(|| format!("{}: missing field {name}", self.what))
    }

    fn string(&mut self, name: &str) -> Decoded<String> {
        match self.take(name)? {
            Value::String(s) => Ok(s),
            other => Err(format!(
                "{}.{name}: expected a string, got {}",
                self.what,
                kind_of(&other)
            )),
        }
    }

    fn long(&mut self, name: &str) -> Decoded<u64> {
        match self.take(name)? {
            Value::Long(n) => Ok(n as u64),
            Value::Int(n) => Ok(n as u64),
            other => Err(format!(
                "{}.{name}: expected a long, got {}",
                self.what,
                kind_of(&other)
            )),
        }
    }

    fn u32(&mut self, name: &str) -> Decoded<u32> {
        let n = self.long(name)?;
        u32::try_from(n).map_err(|_| format!("{}.{name}: {n} does not fit 32 bits", self.what))
    }

    fn boolean(&mut self, name: &str) -> Decoded<bool> {
        match self.take(name)? {
            Value::Boolean(b) => Ok(b),
            other => Err(format!(
                "{}.{name}: expected a boolean, got {}",
                self.what,
                kind_of(&other)
            )),
        }
    }

    fn bytes(&mut self, name: &str) -> Decoded<Vec<u8>> {
        match self.take(name)? {
            Value::Bytes(b) => Ok(b),
            other => Err(format!("{}.{name}: expected bytes, got {}", self.what, kind_of(&other))),
        }
    }

    fn symbol(&mut self, name: &str) -> Decoded<String> {
        match self.take(name)? {
            Value::Enum(_, symbol) => Ok(symbol),
            other => Err(format!(
                "{}.{name}: expected an enum, got {}",
                self.what,
                kind_of(&other)
            )),
        }
    }

    fn uuid(&mut self, name: &str) -> Decoded<ClientMsgId> {
        let what = self.what;
        uuid_of(self.take(name)?).map_err(|e| format!("{what}.{name}: {e}"))
    }

    fn list<T>(&mut self, name: &str, item: impl Fn(Value) -> Decoded<T>) -> Decoded<Vec<T>> {
        match self.take(name)? {
            Value::Array(items) => items.into_iter().map(item).collect(),
            other => Err(format!(
                "{}.{name}: expected an array, got {}",
                self.what,
                kind_of(&other)
            )),
        }
    }

    fn union(&mut self, name: &str) -> Decoded<(u32, Value)> {
        match self.take(name)? {
            Value::Union(index, v) => Ok((index, *v)),
            other => Err(format!(
                "{}.{name}: expected a union, got {}",
                self.what,
                kind_of(&other)
            )),
        }
    }

    fn nested<T: TryFrom<AvroValue, Error = String>>(&mut self, name: &str) -> Decoded<T> {
        T::try_from(AvroValue(self.take(name)?))
    }
}

fn uuid_of(value: Value) -> Decoded<ClientMsgId> {
    let id = match value {
        Value::Uuid(u) => u,
        Value::String(s) => uuid::Uuid::parse_str(&s).map_err(|e| format!("not a UUID: {e}"))?,
        other => return Err(format!("expected a UUID, got {}", kind_of(&other))),
    };
    if id.is_nil() {
        return Err("the nil UUID is not a client message id".into());
    }
    Ok(ClientMsgId(id))
}

fn user(value: Value) -> Decoded<UserId> {
    match value {
        Value::String(s) => UserId::parse(s).map_err(|e| e.to_string()),
        other => Err(format!("expected a user id string, got {}", kind_of(&other))),
    }
}

fn vclock(f: &mut Fields, name: &str) -> Decoded<VectorClock> {
    let mut clock = Fields::of(AvroValue(f.take(name)?), "VectorClock")?;
    match clock.take("seen")? {
        Value::Map(seen) => seen
            .into_iter()
            .map(|(u, n)| match n {
                Value::Long(n) => Ok((UserId::parse(u).map_err(|e| e.to_string())?, n as u64)),
                other => Err(format!("VectorClock.seen: expected a long, got {}", kind_of(&other))),
            })
            .collect(),
        other => Err(format!("VectorClock.seen: expected a map, got {}", kind_of(&other))),
    }
}

impl TryFrom<AvroValue> for Origin {
    type Error = String;
    fn try_from(v: AvroValue) -> Decoded<Self> {
        let mut f = Fields::of(v, "Origin")?;
        Ok(Origin {
            gateway: GatewayId::parse(f.string("gateway")?).map_err(|e| e.to_string())?,
            user: UserId::parse(f.string("user")?).map_err(|e| e.to_string())?,
            device: DeviceId::parse(f.string("device")?).map_err(|e| e.to_string())?,
            request: f.long("request")?,
            name: f.string("name")?,
        })
    }
}

impl TryFrom<AvroValue> for Message {
    type Error = String;
    fn try_from(v: AvroValue) -> Decoded<Self> {
        let mut f = Fields::of(v, "Message")?;
        let conv = ConversationId::parse(f.string("conv")?).map_err(|e| e.to_string())?;
        let conv_seq = ConvSeq(f.long("conv_seq")?);
        let client_msg_id = f.uuid("client_msg_id")?;
        let sender = UserId::parse(f.string("sender")?).map_err(|e| e.to_string())?;
        let sender_device = DeviceId::parse(f.string("sender_device")?).map_err(|e| e.to_string())?;
        let kind = match f.symbol("kind")?.as_str() {
            "TEXT" => MessageKind::Text,
            "CREATED" => MessageKind::Created,
            "JOINED" => MessageKind::Joined,
            "LEFT" => MessageKind::Left,
            other => return Err(format!("Message.kind: unknown symbol {other}")),
        };
        Ok(Message {
            conv,
            conv_seq,
            client_msg_id,
            sender,
            sender_device,
            kind,
            body: f.string("body")?,
            members: f.list("members", user)?,
            priority: f.boolean("priority")?,
            server_ts_ms: f.long("server_ts_ms")?,
            vclock: vclock(&mut f, "vclock")?,
            sender_name: f.string("sender_name")?,
            read_diffusion: f.boolean("read_diffusion")?,
        })
    }
}

impl TryFrom<AvroValue> for TimelineEntry {
    type Error = String;
    fn try_from(v: AvroValue) -> Decoded<Self> {
        let mut f = Fields::of(v, "TimelineEntry")?;
        Ok(TimelineEntry {
            user_seq: UserSeq(f.long("user_seq")?),
            message: f.nested("message")?,
        })
    }
}

impl TryFrom<AvroValue> for Outcome {
    type Error = String;
    fn try_from(v: AvroValue) -> Decoded<Self> {
        let mut f = Fields::of(v, "Outcome")?;
        match f.union("result")? {
            (0, sequenced) => {
                let mut s = Fields::of(AvroValue(sequenced), "Sequenced")?;
                Ok(Outcome::Sequenced {
                    conv_seq: ConvSeq(s.long("conv_seq")?),
                })
            }
            (1, refused) => {
                let mut r = Fields::of(AvroValue(refused), "Refused")?;
                let code = match r.symbol("code")?.as_str() {
                    "NOT_MEMBER" => RefusalCode::NotMember,
                    "OUT_OF_ORDER" => RefusalCode::OutOfOrder,
                    "FORBIDDEN" => RefusalCode::Forbidden,
                    "INVALID" => RefusalCode::Invalid,
                    "CONFLICT" => RefusalCode::Conflict,
                    "TOO_LARGE" => RefusalCode::TooLarge,
                    other => return Err(format!("Refused.code: unknown symbol {other}")),
                };
                Ok(Outcome::Refused {
                    code,
                    reason: r.string("reason")?,
                })
            }
            (i, _) => Err(format!("Outcome.result: unknown branch {i}")),
        }
    }
}

impl TryFrom<AvroValue> for Command {
    type Error = String;
    fn try_from(v: AvroValue) -> Decoded<Self> {
        let mut f = Fields::of(v, "Command")?;
        let (branch, value) = f.union("command")?;
        let mut c = Fields::of(AvroValue(value), "Command.command")?;
        let origin: Origin = c.nested("origin")?;
        let conv = ConversationId::parse(c.string("conv")?).map_err(|e| e.to_string())?;
        let client_msg_id = c.uuid("client_msg_id")?;
        match branch {
            0 => Ok(Command::Send(SendCommand {
                origin,
                conv,
                client_msg_id,
                prev: match c.union("prev")? {
                    (_, Value::Null) => None,
                    (_, id) => Some(uuid_of(id).map_err(|e| format!("SendCommand.prev: {e}"))?),
                },
                body: c.string("body")?,
                priority: c.boolean("priority")?,
                vclock: vclock(&mut c, "vclock")?,
                sent_ms: c.long("sent_ms")?,
            })),
            1 => Ok(Command::Create(CreateCommand {
                origin,
                conv,
                client_msg_id,
                kind: match c.symbol("kind")?.as_str() {
                    "DIRECT" => ConversationKind::Direct,
                    "GROUP" => ConversationKind::Group,
                    other => return Err(format!("CreateCommand.kind: unknown symbol {other}")),
                },
                title: c.string("title")?,
                members: c.list("members", user)?,
            })),
            2 => Ok(Command::ChangeMembers(MembersCommand {
                origin,
                conv,
                client_msg_id,
                add: c.list("add", user)?,
                remove: c.list("remove", user)?,
            })),
            i => Err(format!("Command.command: unknown branch {i}")),
        }
    }
}

impl TryFrom<AvroValue> for BatchCommand {
    type Error = String;
    fn try_from(v: AvroValue) -> Decoded<Self> {
        let mut f = Fields::of(v, "CommandBatch")?;
        let origin: Origin = f.nested("origin")?;
        let conv = ConversationId::parse(f.string("conv")?).map_err(|e| e.to_string())?;
        // Each item is a `Command` branch: send (0) or members (2).
        let item = |value: Value| -> Decoded<BatchItem> {
            let (branch, value) = match value {
                Value::Union(0, v) => (0, v),
                Value::Union(1, v) => (2, v),
                other => return Err(format!("CommandBatch.commands: unexpected {}", kind_of(&other))),
            };
            let command = Value::Record(vec![("command".into(), Value::Union(branch, value))]);
            match Command::try_from(AvroValue(command))? {
                Command::Send(s) => Ok(BatchItem::Send(s)),
                Command::ChangeMembers(m) => Ok(BatchItem::ChangeMembers(m)),
                _ => Err("CommandBatch.commands: neither a send nor a members change".into()),
            }
        };
        Ok(BatchCommand {
            origin,
            conv,
            commands: f.list("commands", item)?,
        })
    }
}

impl TryFrom<AvroValue> for Delivery {
    type Error = String;
    fn try_from(v: AvroValue) -> Decoded<Self> {
        let mut f = Fields::of(v, "Delivery")?;
        Ok(Delivery {
            user: user(f.take("user")?)?,
            message: f.nested("message")?,
        })
    }
}

impl TryFrom<AvroValue> for UserEvent {
    type Error = String;
    fn try_from(v: AvroValue) -> Decoded<Self> {
        let mut f = Fields::of(v, "UserEvent")?;
        Ok(UserEvent {
            user: user(f.take("user")?)?,
            entry: f.nested("entry")?,
        })
    }
}

impl TryFrom<AvroValue> for Receipt {
    type Error = String;
    fn try_from(v: AvroValue) -> Decoded<Self> {
        let mut f = Fields::of(v, "Receipt")?;
        Ok(Receipt {
            origin: f.nested("origin")?,
            conv: ConversationId::parse(f.string("conv")?).map_err(|e| e.to_string())?,
            client_msg_id: f.uuid("client_msg_id")?,
            outcome: f.nested("outcome")?,
        })
    }
}

impl TryFrom<AvroValue> for Package {
    type Error = String;
    fn try_from(v: AvroValue) -> Decoded<Self> {
        let mut f = Fields::of(v, "Package")?;
        Ok(Package {
            user: user(f.take("user")?)?,
            device: DeviceId::parse(f.string("device")?).map_err(|e| e.to_string())?,
            package_id: f.long("package_id")?,
            index: f.u32("index")?,
            count: f.u32("count")?,
            entries: f.list("entries", |e| TimelineEntry::try_from(AvroValue(e)))?,
        })
    }
}

impl TryFrom<AvroValue> for DeadLetter {
    type Error = String;
    fn try_from(v: AvroValue) -> Decoded<Self> {
        let mut f = Fields::of(v, "DeadLetter")?;
        Ok(DeadLetter {
            topic: f.string("topic")?,
            partition: f.u32("partition")?,
            offset: f.long("offset")?,
            reason: f.string("reason")?,
            raw: f.bytes("raw")?,
        })
    }
}

impl TryFrom<AvroValue> for ConvEvent {
    type Error = String;
    fn try_from(v: AvroValue) -> Decoded<Self> {
        let mut f = Fields::of(v, "ConvEvent")?;
        Ok(ConvEvent {
            message: f.nested("message")?,
        })
    }
}

impl TryFrom<AvroValue> for Notice {
    type Error = String;
    fn try_from(v: AvroValue) -> Decoded<Self> {
        let mut f = Fields::of(v, "Notice")?;
        Ok(Notice {
            conv: ConversationId::parse(f.string("conv")?).map_err(|e| e.to_string())?,
            head: ConvSeq(f.long("head")?),
            message: match f.union("message")? {
                (_, Value::Null) => None,
                (_, m) => Some(Message::try_from(AvroValue(m)).map_err(|e| format!("Notice.message: {e}"))?),
            },
        })
    }
}

impl TryFrom<AvroValue> for ReadMark {
    type Error = String;
    fn try_from(v: AvroValue) -> Decoded<Self> {
        let mut f = Fields::of(v, "ReadMark")?;
        Ok(ReadMark {
            user: user(f.take("user")?)?,
            device: DeviceId::parse(f.string("device")?).map_err(|e| e.to_string())?,
            conv: ConversationId::parse(f.string("conv")?).map_err(|e| e.to_string())?,
            conv_seq: ConvSeq(f.long("conv_seq")?),
        })
    }
}

/// The variant of a value, for error messages (never its content).
fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Boolean(_) => "a boolean",
        Value::Int(_) | Value::Long(_) => "an integer",
        Value::Float(_) | Value::Double(_) => "a float",
        Value::Bytes(_) | Value::Fixed(..) => "bytes",
        Value::String(_) => "a string",
        Value::Enum(..) => "an enum",
        Value::Union(..) => "a union",
        Value::Array(_) => "an array",
        Value::Map(_) => "a map",
        Value::Record(_) => "a record",
        Value::Uuid(_) => "a UUID",
        _ => "a logical value",
    }
}
