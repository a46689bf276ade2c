//! Codec tests: random round trips, schema evolution, refusals.

use super::*;
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::select;
use seqline_core::ids::{ClientMsgId, ConvSeq, ConversationId, DeviceId, GatewayId, UserId, UserSeq};
use seqline_core::model::{ConversationKind, Message, MessageKind, Outcome, RefusalCode, TimelineEntry};
use seqline_core::records::{
    Command, CreateCommand, DeadLetter, Delivery, MembersCommand, Origin, Package, Receipt, SendCommand, UserEvent,
};

const ID_CHARS: &[char] = &['a', 'Z', '0', '9', '_', '-', 'q', 'M'];
const CONV_CHARS: &[char] = &['a', 'Z', '0', '_', '-', '.', ':'];

fn id_text(chars: &'static [char], max: usize) -> impl Strategy<Value = String> {
    vec(select(chars), 1..=max).prop_map(String::from_iter)
}

fn user() -> impl Strategy<Value = UserId> {
    prop_oneof![id_text(ID_CHARS, 8), id_text(ID_CHARS, 64)].prop_map(|s| UserId::parse(s).unwrap())
}

fn device() -> impl Strategy<Value = DeviceId> {
    id_text(ID_CHARS, 16).prop_map(|s| DeviceId::parse(s).unwrap())
}

fn conv() -> impl Strategy<Value = ConversationId> {
    id_text(CONV_CHARS, 128).prop_map(|s| ConversationId::parse(s).unwrap())
}

fn client_id() -> impl Strategy<Value = ClientMsgId> {
    (1..=u128::MAX).prop_map(|n| ClientMsgId(uuid::Uuid::from_u128(n)))
}

fn origin() -> impl Strategy<Value = Origin> {
    (id_text(ID_CHARS, 16), user(), device(), any::<u64>()).prop_map(|(g, user, device, request)| Origin {
        gateway: GatewayId::parse(g).unwrap(),
        user,
        device,
        request,
    })
}

fn vclock() -> impl Strategy<Value = seqline_core::model::VectorClock> {
    btree_map(user(), any::<u64>(), 0..4)
}

fn message() -> impl Strategy<Value = Message> {
    let kind = select(
        &[
            MessageKind::Text,
            MessageKind::Created,
            MessageKind::Joined,
            MessageKind::Left,
        ][..],
    );
    (
        (conv(), any::<u64>(), client_id(), user(), device(), kind),
        (
            any::<String>(),
            vec(user(), 0..3),
            any::<bool>(),
            any::<u64>(),
            vclock(),
        ),
    )
        .prop_map(
            |((conv, seq, id, sender, sender_device, kind), (body, members, priority, ts, vclock))| Message {
                conv,
                conv_seq: ConvSeq(seq),
                client_msg_id: id,
                sender,
                sender_device,
                kind,
                body,
                members,
                priority,
                server_ts_ms: ts,
                vclock,
            },
        )
}

fn entry() -> impl Strategy<Value = TimelineEntry> {
    (any::<u64>(), message()).prop_map(|(s, message)| TimelineEntry {
        user_seq: UserSeq(s),
        message,
    })
}

fn outcome() -> impl Strategy<Value = Outcome> {
    let code = select(
        &[
            RefusalCode::NotMember,
            RefusalCode::OutOfOrder,
            RefusalCode::Forbidden,
            RefusalCode::Invalid,
            RefusalCode::Conflict,
            RefusalCode::TooLarge,
        ][..],
    );
    prop_oneof![
        any::<u64>().prop_map(|s| Outcome::Sequenced { conv_seq: ConvSeq(s) }),
        (code, any::<String>()).prop_map(|(code, reason)| Outcome::Refused { code, reason }),
    ]
}

fn command() -> impl Strategy<Value = Command> {
    let send = (
        origin(),
        conv(),
        client_id(),
        proptest::option::of(client_id()),
        any::<String>(),
    )
        .prop_flat_map(|t| (Just(t), any::<bool>(), vclock(), any::<u64>()))
        .prop_map(|((origin, conv, id, prev, body), priority, vclock, sent_ms)| {
            Command::Send(SendCommand {
                origin,
                conv,
                client_msg_id: id,
                prev,
                body,
                priority,
                vclock,
                sent_ms,
            })
        });
    let kind = select(&[ConversationKind::Direct, ConversationKind::Group][..]);
    let create = (origin(), conv(), kind, any::<String>(), vec(user(), 0..4), client_id()).prop_map(
        |(origin, conv, kind, title, members, id)| {
            Command::Create(CreateCommand {
                origin,
                conv,
                kind,
                title,
                members,
                client_msg_id: id,
            })
        },
    );
    let members = (origin(), conv(), client_id(), vec(user(), 0..3), vec(user(), 0..3)).prop_map(
        |(origin, conv, id, add, remove)| {
            Command::ChangeMembers(MembersCommand {
                origin,
                conv,
                client_msg_id: id,
                add,
                remove,
            })
        },
    );
    prop_oneof![send, create, members]
}

fn record() -> impl Strategy<Value = LogRecord> {
    prop_oneof![
        command().prop_map(LogRecord::Command),
        (user(), message()).prop_map(|(user, message)| LogRecord::Delivery(Delivery { user, message })),
        (user(), entry()).prop_map(|(user, entry)| LogRecord::UserEvent(UserEvent { user, entry })),
        (origin(), conv(), client_id(), outcome()).prop_map(|(origin, conv, id, outcome)| {
            LogRecord::Gateway(GatewayRecord::Receipt(Receipt {
                origin,
                conv,
                client_msg_id: id,
                outcome,
            }))
        }),
        (
            user(),
            device(),
            any::<u64>(),
            any::<u32>(),
            any::<u32>(),
            vec(entry(), 0..3)
        )
            .prop_map(|(user, device, package_id, index, count, entries)| {
                LogRecord::Gateway(GatewayRecord::Package(Package {
                    user,
                    device,
                    package_id,
                    index,
                    count,
                    entries,
                }))
            }),
        (
            any::<String>(),
            any::<u32>(),
            any::<u64>(),
            any::<String>(),
            vec(any::<u8>(), 0..64)
        )
            .prop_map(
                |(topic, partition, offset, reason, raw)| LogRecord::DeadLetter(DeadLetter {
                    topic,
                    partition,
                    offset,
                    reason,
                    raw,
                })
            ),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn round_trip(record in record()) {
        let codec = Codec::new().unwrap();
        let bytes = codec.encode(&record).unwrap();
        prop_assert_eq!(&bytes[..2], &MARKER[..]);
        prop_assert_eq!(codec.decode(&bytes), Ok(record));
    }

    #[test]
    fn junk_is_refused_never_a_panic(junk in vec(any::<u8>(), 0..64), keep in 0usize..64) {
        let codec = Codec::new().unwrap();
        prop_assert!(codec.decode(&junk).is_err());
        // A valid header followed by junk, or a record cut short.
        let good = codec.encode(&sample_delivery(true)).unwrap();
        let mut spliced = good[..HEADER].to_vec();
        spliced.extend_from_slice(&junk);
        let _ = codec.decode(&spliced);
        let _ = codec.decode(&good[..keep.min(good.len() - 1)]);
    }
}

fn sample_delivery(priority: bool) -> LogRecord {
    let user = UserId::parse("alice").unwrap();
    LogRecord::Delivery(Delivery {
        user: user.clone(),
        message: Message {
            conv: ConversationId::parse("g:team").unwrap(),
            conv_seq: ConvSeq(7),
            client_msg_id: ClientMsgId::random(),
            sender: user.clone(),
            sender_device: DeviceId::parse("phone").unwrap(),
            kind: MessageKind::Text,
            body: "hello".into(),
            members: Vec::new(),
            priority,
            server_ts_ms: 1_700_000_000_000,
            vclock: [(user, 3)].into_iter().collect(),
        },
    })
}

/// Drops `field` from every record value inside `value`.
fn without(value: Value, field: &str) -> Value {
    match value {
        Value::Record(fields) => Value::Record(
            fields
                .into_iter()
                .filter(|(k, _)| k != field)
                .map(|(k, v)| (k, without(v, field)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(|v| without(v, field)).collect()),
        Value::Union(i, v) => Value::Union(i, Box::new(without(*v, field))),
        other => other,
    }
}

#[test]
fn previous_writer_is_read_with_defaults() {
    let codec = Codec::new().unwrap();
    let LogRecord::Delivery(delivery) = sample_delivery(false) else {
        unreachable!()
    };
    let v1_value = without(AvroValue::from(&delivery).0, "priority");
    let bytes = Codec::encode_value(Kind::Delivery, Version::V1, v1_value).unwrap();
    let current = codec.encode(&LogRecord::Delivery(delivery.clone())).unwrap();
    assert_ne!(bytes[2..HEADER], current[2..HEADER], "v1 has its own fingerprint");
    assert_eq!(
        codec.decode(&bytes),
        Ok(LogRecord::Delivery(delivery)),
        "priority defaults to false"
    );
}

#[test]
fn the_current_writer_is_refused_by_v1_shape() {
    // A v1 writer cannot carry the new field: the value must fit the schema.
    let LogRecord::Delivery(delivery) = sample_delivery(true) else {
        unreachable!()
    };
    assert!(Codec::encode_value(Kind::Delivery, Version::V1, AvroValue::from(&delivery).0).is_err());
}

#[test]
fn unknown_fingerprints_and_junk_are_refused_with_a_reason() {
    let codec = Codec::new().unwrap();
    let mut bytes = codec.encode(&sample_delivery(true)).unwrap();
    bytes[2] ^= 0xff;
    let reason = codec.decode(&bytes).unwrap_err();
    assert!(reason.contains("unknown writer schema fingerprint"), "{reason}");
    let reason = codec.decode(&[0xde, 0xad, 0xbe, 0xef]).unwrap_err();
    assert!(reason.contains("marker"), "{reason}");
    let good = codec.encode(&sample_delivery(true)).unwrap();
    let reason = codec.decode(&good[..good.len() - 3]).unwrap_err();
    assert!(reason.contains("undecodable Delivery"), "{reason}");
    let mut long = good.clone();
    long.push(0);
    assert!(codec.decode(&long).unwrap_err().contains("trailing"));
}

#[test]
fn invalid_ids_are_refused() {
    let codec = Codec::new().unwrap();
    let LogRecord::Delivery(delivery) = sample_delivery(true) else {
        unreachable!()
    };
    let Value::Record(mut fields) = AvroValue::from(&delivery).0 else {
        unreachable!()
    };
    fields[0].1 = Value::String("not a user".into());
    let bytes = Codec::encode_value(Kind::Delivery, Version::Current, Value::Record(fields)).unwrap();
    assert!(codec.decode(&bytes).is_err());
}
