//! Codec tests: random round trips, schema evolution, refusals.

use super::*;
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::select;
use seqline_core::ids::{ClientMsgId, ConvSeq, ConversationId, DeviceId, GatewayId, UserId, UserSeq};
use seqline_core::model::{ConversationKind, Message, MessageKind, Outcome, RefusalCode, TimelineEntry};
use seqline_core::records::{
    BatchCommand, BatchItem, Command, ConvEvent, CreateCommand, DeadLetter, Delivery, MembersCommand, Notice, Origin,
    Package, ReadMark, Receipt, SendCommand, UserEvent,
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
    (id_text(ID_CHARS, 16), user(), device(), any::<u64>(), any::<String>()).prop_map(
        |(g, user, device, request, name)| Origin {
            gateway: GatewayId::parse(g).unwrap(),
            user,
            device,
            request,
            name,
        },
    )
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
        (any::<String>(), any::<bool>()),
    )
        .prop_map(
            |(
                (conv, seq, id, sender, sender_device, kind),
                (body, members, priority, ts, vclock),
                (sender_name, read_diffusion),
            )| Message {
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
                sender_name,
                read_diffusion,
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

fn batch() -> impl Strategy<Value = Command> {
    (origin(), conv(), vec(command(), 0..4)).prop_map(|(origin, conv, items)| {
        let commands = items
            .into_iter()
            .filter_map(|c| match c {
                Command::Send(s) => Some(BatchItem::Send(s)),
                Command::ChangeMembers(m) => Some(BatchItem::ChangeMembers(m)),
                _ => None,
            })
            .collect();
        Command::Batch(BatchCommand { origin, conv, commands })
    })
}

fn record() -> impl Strategy<Value = LogRecord> {
    prop_oneof![
        command().prop_map(LogRecord::Command),
        batch().prop_map(LogRecord::Command),
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
        message().prop_map(|message| LogRecord::ConvEvent(ConvEvent { message })),
        (conv(), any::<u64>(), proptest::option::of(message())).prop_map(|(conv, head, message)| {
            LogRecord::Gateway(GatewayRecord::Notice(Notice {
                conv,
                head: ConvSeq(head),
                message,
            }))
        }),
        (user(), device(), conv(), any::<u64>()).prop_map(|(user, device, conv, seq)| {
            LogRecord::Gateway(GatewayRecord::ReadMark(ReadMark {
                user,
                device,
                conv,
                conv_seq: ConvSeq(seq),
            }))
        }),
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
        message: sample_message(&user, priority),
    })
}

fn sample_message(user: &UserId, priority: bool) -> Message {
    Message {
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
        vclock: [(user.clone(), 3)].into_iter().collect(),
        sender_name: String::new(),
        read_diffusion: false,
    }
}

fn sample_origin() -> Origin {
    Origin {
        gateway: GatewayId::parse("gw1").unwrap(),
        user: UserId::parse("alice").unwrap(),
        device: DeviceId::parse("phone").unwrap(),
        request: 42,
        name: String::new(),
    }
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

/// The value of `record` as a writer of `version` had it: without the fields
/// added since.
fn as_written_by(record: &LogRecord, version: Version) -> Value {
    let value = match record {
        LogRecord::Command(c) => AvroValue::from(c),
        LogRecord::Delivery(d) => AvroValue::from(d),
        LogRecord::UserEvent(e) => AvroValue::from(e),
        LogRecord::Gateway(GatewayRecord::Receipt(r)) => AvroValue::from(r),
        LogRecord::Gateway(GatewayRecord::Package(p)) => AvroValue::from(p),
        other => panic!("no previous version of {other:?}"),
    }
    .0;
    // v1 differed from v2 in Message only (SendCommand always had `priority`).
    let dropped: &[&str] = match (version, record) {
        (Version::Current, _) => &[],
        (Version::V2, _) | (Version::V1, LogRecord::Command(_)) => &["sender_name", "read_diffusion", "name"],
        (Version::V1, _) => &["sender_name", "read_diffusion", "name", "priority"],
    };
    dropped.iter().fold(value, |v, field| without(v, field))
}

#[test]
fn previous_writer_is_read_with_defaults() {
    let codec = Codec::new().unwrap();
    let LogRecord::Delivery(delivery) = sample_delivery(false) else {
        unreachable!()
    };
    let v1_value = as_written_by(&LogRecord::Delivery(delivery.clone()), Version::V1);
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
fn v2_writers_are_read_with_defaults() {
    let codec = Codec::new().unwrap();
    let user = UserId::parse("alice").unwrap();
    // Written before sender names and read diffusion: priority set, the
    // new fields absent, so they read as empty / false.
    let message = sample_message(&user, true);
    let records = [
        LogRecord::Delivery(Delivery {
            user: user.clone(),
            message: message.clone(),
        }),
        LogRecord::UserEvent(UserEvent {
            user: user.clone(),
            entry: TimelineEntry {
                user_seq: UserSeq(9),
                message: message.clone(),
            },
        }),
        LogRecord::Gateway(GatewayRecord::Package(Package {
            user: user.clone(),
            device: DeviceId::parse("phone").unwrap(),
            package_id: 3,
            index: 0,
            count: 1,
            entries: vec![TimelineEntry {
                user_seq: UserSeq(9),
                message,
            }],
        })),
        LogRecord::Command(Command::Send(SendCommand {
            origin: sample_origin(),
            conv: ConversationId::parse("g:team").unwrap(),
            client_msg_id: ClientMsgId::random(),
            prev: None,
            body: "hi".into(),
            priority: true,
            vclock: Default::default(),
            sent_ms: 5,
        })),
        LogRecord::Gateway(GatewayRecord::Receipt(Receipt {
            origin: sample_origin(),
            conv: ConversationId::parse("g:team").unwrap(),
            client_msg_id: ClientMsgId::random(),
            outcome: Outcome::Sequenced { conv_seq: ConvSeq(4) },
        })),
    ];
    for record in records {
        let kind = Codec::kind_of(&record);
        let bytes = Codec::encode_value(kind, Version::V2, as_written_by(&record, Version::V2)).unwrap();
        let current = codec.encode(&record).unwrap();
        assert_ne!(
            bytes[2..HEADER],
            current[2..HEADER],
            "{kind:?}: v2 has its own fingerprint"
        );
        assert_eq!(codec.decode(&bytes), Ok(record.clone()), "{kind:?}");
        let old = Codec::encode_value(kind, Version::V1, as_written_by(&record, Version::V1)).unwrap();
        let expected = match record {
            // v1 had no priority: it reads as false.
            LogRecord::Delivery(mut d) => {
                d.message.priority = false;
                LogRecord::Delivery(d)
            }
            LogRecord::UserEvent(mut e) => {
                e.entry.message.priority = false;
                LogRecord::UserEvent(e)
            }
            LogRecord::Gateway(GatewayRecord::Package(mut p)) => {
                p.entries.iter_mut().for_each(|e| e.message.priority = false);
                LogRecord::Gateway(GatewayRecord::Package(p))
            }
            other => other,
        };
        assert_eq!(codec.decode(&old), Ok(expected), "{kind:?} (v1)");
    }
}

#[test]
fn new_fields_survive_and_old_writers_cannot_carry_them() {
    let codec = Codec::new().unwrap();
    let user = UserId::parse("alice").unwrap();
    let mut message = sample_message(&user, false);
    message.sender_name = "Alice Ø".into();
    message.read_diffusion = true;
    let delivery = LogRecord::Delivery(Delivery {
        user: user.clone(),
        message: message.clone(),
    });
    assert_eq!(codec.decode(&codec.encode(&delivery).unwrap()), Ok(delivery.clone()));
    let LogRecord::Delivery(d) = &delivery else {
        unreachable!()
    };
    assert!(Codec::encode_value(Kind::Delivery, Version::V2, AvroValue::from(d).0).is_err());
    let mut origin = sample_origin();
    origin.name = "Alice".into();
    let receipt = Receipt {
        origin,
        conv: message.conv.clone(),
        client_msg_id: message.client_msg_id,
        outcome: Outcome::Sequenced { conv_seq: ConvSeq(1) },
    };
    let record = LogRecord::Gateway(GatewayRecord::Receipt(receipt.clone()));
    assert_eq!(codec.decode(&codec.encode(&record).unwrap()), Ok(record));
    assert!(Codec::encode_value(Kind::Receipt, Version::V2, AvroValue::from(&receipt).0).is_err());
}

#[test]
fn new_kinds_round_trip_and_have_no_previous_writer() {
    let codec = Codec::new().unwrap();
    let user = UserId::parse("alice").unwrap();
    let mut message = sample_message(&user, true);
    message.read_diffusion = true;
    message.sender_name = "Alice".into();
    let conv = message.conv.clone();
    let records = [
        LogRecord::ConvEvent(ConvEvent {
            message: message.clone(),
        }),
        LogRecord::Gateway(GatewayRecord::Notice(Notice {
            conv: conv.clone(),
            head: ConvSeq(7),
            message: None,
        })),
        LogRecord::Gateway(GatewayRecord::Notice(Notice {
            conv: conv.clone(),
            head: ConvSeq(7),
            message: Some(message),
        })),
        LogRecord::Gateway(GatewayRecord::ReadMark(ReadMark {
            user,
            device: DeviceId::parse("laptop").unwrap(),
            conv,
            conv_seq: ConvSeq(u64::MAX),
        })),
    ];
    for record in records {
        let bytes = codec.encode(&record).unwrap();
        assert_eq!(codec.decode(&bytes), Ok(record.clone()));
        // Same shape, older composition: no reader knows such a fingerprint.
        let kind = Codec::kind_of(&record);
        if kind != Kind::ReadMark {
            let old = Codec::encode_value(kind, Version::V2, as_new_kind_written_by_v2(&record)).unwrap();
            let reason = codec.decode(&old).unwrap_err();
            assert!(
                reason.contains("unknown writer schema fingerprint"),
                "{kind:?}: {reason}"
            );
        }
    }
}

#[test]
fn a_batch_round_trips_as_its_own_kind() {
    let codec = Codec::new().unwrap();
    let origin = sample_origin();
    let conv = ConversationId::parse("g:room").unwrap();
    let send = SendCommand {
        origin: origin.clone(),
        conv: conv.clone(),
        client_msg_id: ClientMsgId::random(),
        prev: Some(ClientMsgId::random()),
        body: "bye".into(),
        priority: true,
        vclock: [(origin.user.clone(), 3)].into(),
        sent_ms: u64::MAX,
    };
    let leave = MembersCommand {
        origin: origin.clone(),
        conv: conv.clone(),
        client_msg_id: ClientMsgId::random(),
        add: Vec::new(),
        remove: vec![origin.user.clone()],
    };
    let record = LogRecord::Command(Command::Batch(BatchCommand {
        origin,
        conv,
        commands: vec![BatchItem::Send(send), BatchItem::ChangeMembers(leave)],
    }));
    assert_eq!(Codec::kind_of(&record), Kind::Batch);
    let bytes = codec.encode(&record).unwrap();
    assert_eq!(codec.decode(&bytes), Ok(record));
    // A batch never travels as a plain command.
    let Ok(LogRecord::Command(Command::Batch(b))) = codec.decode(&bytes) else {
        panic!("not a batch")
    };
    let as_command = AvroValue::from(&Command::Batch(b)).0;
    assert!(Codec::encode_value(Kind::Command, Version::Current, as_command).is_err());
}

/// A new kind's value as if composed with the v2 Message (for the refusal).
fn as_new_kind_written_by_v2(record: &LogRecord) -> Value {
    let value = match record {
        LogRecord::ConvEvent(e) => AvroValue::from(e),
        LogRecord::Gateway(GatewayRecord::Notice(n)) => AvroValue::from(n),
        other => panic!("not a new kind: {other:?}"),
    }
    .0;
    without(without(value, "sender_name"), "read_diffusion")
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
