//! Values the checks build: unique ids, messages, batches.

use seqline_core::ids::{ClientMsgId, ConvSeq, ConversationId, DeviceId, GatewayId, UserId, UserSeq};
use seqline_core::model::Outcome;
use seqline_core::model::{ConversationKind, ConversationMeta, Message, MessageKind, Role, TimelineEntry};
use seqline_core::ports::{ConversationBatch, MemberChange, TimelineBatch};
use seqline_core::records::{GatewayRecord, LogRecord, Origin, Receipt};

/// A fresh suffix, so checks never collide on a shared backend.
pub fn unique(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{}", &id[..12])
}

fn parsed<T>(r: seqline_core::Result<T>) -> T {
    crate::ok(r, "a generated id is valid")
}

/// A fresh user id.
pub fn user(prefix: &str) -> UserId {
    parsed(UserId::parse(unique(prefix)))
}

/// A device id.
pub fn device(name: &str) -> DeviceId {
    parsed(DeviceId::parse(name))
}

/// A fresh gateway id.
pub fn gateway(prefix: &str) -> GatewayId {
    parsed(GatewayId::parse(unique(prefix)))
}

/// A fresh group conversation id.
pub fn conversation() -> ConversationId {
    parsed(ConversationId::parse(format!("g:{}", unique("c"))))
}

/// Settings of a new group.
pub fn meta(conv: &ConversationId, creator: &UserId) -> ConversationMeta {
    ConversationMeta {
        conv: conv.clone(),
        kind: ConversationKind::Group,
        title: "contract".into(),
        created_by: creator.clone(),
        created_ms: 1_700_000_000_000,
    }
}

/// A text message at `seq`.
pub fn message(conv: &ConversationId, seq: u64, sender: &UserId) -> Message {
    Message {
        read_diffusion: false,
        sender_name: String::new(),
        conv: conv.clone(),
        conv_seq: ConvSeq(seq),
        client_msg_id: ClientMsgId::random(),
        sender: sender.clone(),
        sender_device: device("phone"),
        kind: MessageKind::Text,
        body: format!("message {seq}"),
        members: Vec::new(),
        priority: false,
        server_ts_ms: 1_700_000_000_000 + seq,
        vclock: Default::default(),
    }
}

/// A batch appending `count` text messages after `head`.
pub fn messages_batch(conv: &ConversationId, head: u64, count: u64, sender: &UserId) -> ConversationBatch {
    let messages: Vec<Message> = (head + 1..=head + count).map(|s| message(conv, s, sender)).collect();
    let dedup = messages
        .iter()
        .map(|m| (m.client_msg_id, Outcome::Sequenced { conv_seq: m.conv_seq }))
        .collect();
    ConversationBatch {
        conv: conv.clone(),
        expected_head: ConvSeq(head),
        new_head: ConvSeq(head + count),
        create: None,
        messages,
        members: Vec::new(),
        dedup,
        device_last: Vec::new(),
    }
}

/// A batch creating `conv` with `creator` as admin and `members` as members.
pub fn create_batch(conv: &ConversationId, creator: &UserId, members: &[UserId]) -> ConversationBatch {
    let mut changes = vec![MemberChange {
        user: creator.clone(),
        role: Some(Role::Admin),
        at: ConvSeq(1),
    }];
    changes.extend(members.iter().map(|u| MemberChange {
        user: u.clone(),
        role: Some(Role::Member),
        at: ConvSeq(1),
    }));
    ConversationBatch {
        create: Some(meta(conv, creator)),
        members: changes,
        ..messages_batch(conv, 0, 0, creator)
    }
}

/// Timeline entries `head+1 ..= head+count` carrying messages of `conv`.
pub fn timeline_batch(
    user: &UserId,
    head: u64,
    conv: &ConversationId,
    first_conv_seq: u64,
    count: u64,
) -> TimelineBatch {
    let entries: Vec<TimelineEntry> = (0..count)
        .map(|i| TimelineEntry {
            user_seq: UserSeq(head + 1 + i),
            message: message(conv, first_conv_seq + i, user),
        })
        .collect();
    TimelineBatch {
        user: user.clone(),
        expected_head: UserSeq(head),
        new_head: UserSeq(head + count),
        entries,
        applied: vec![(conv.clone(), ConvSeq(first_conv_seq + count.saturating_sub(1)))],
    }
}

/// A receipt record keyed by `key`, carrying `n` in its request field so
/// order can be checked after consumption.
pub fn keyed_record(key: &str, n: u64, gateway: &GatewayId) -> LogRecord {
    LogRecord::Gateway(GatewayRecord::Receipt(Receipt {
        origin: Origin {
            name: String::new(),
            gateway: gateway.clone(),
            user: parsed(UserId::parse("sender")),
            device: device("d"),
            request: n,
        },
        conv: parsed(ConversationId::parse(key)),
        client_msg_id: ClientMsgId::random(),
        outcome: Outcome::Sequenced { conv_seq: ConvSeq(n) },
    }))
}

/// The (key, n) of a record built by [`keyed_record`].
pub fn key_and_n(record: &LogRecord) -> Option<(String, u64)> {
    match record {
        LogRecord::Gateway(GatewayRecord::Receipt(r)) => Some((r.conv.as_str().to_string(), r.origin.request)),
        _ => None,
    }
}
