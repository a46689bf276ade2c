use super::*;
use seqline_core::ids::GatewayId;
use seqline_core::model::ConversationKind;
use seqline_core::records::{BatchCommand, BatchItem, CreateCommand, MembersCommand, SendCommand};

fn message(members: Vec<UserId>) -> Message {
    Message {
        read_diffusion: false,
        sender_name: String::new(),
        conv: ConversationId::parse("g:room").unwrap(),
        conv_seq: ConvSeq(7),
        client_msg_id: ClientMsgId::random(),
        sender: UserId::parse("alice").unwrap(),
        sender_device: DeviceId::parse("phone").unwrap(),
        kind: MessageKind::Text,
        body: "hello".into(),
        members,
        priority: false,
        server_ts_ms: 1_700_000_000_000,
        vclock: VectorClock::new(),
    }
}

fn origin() -> Origin {
    Origin {
        name: String::new(),
        gateway: GatewayId::parse("gw1").unwrap(),
        user: UserId::parse("alice").unwrap(),
        device: DeviceId::parse("phone").unwrap(),
        request: 3,
    }
}

fn roundtrip(r: LogRecord) {
    let bytes = encode_record(r.clone(), None).unwrap();
    let (decoded, trace) = decode_record(&bytes);
    assert_eq!((decoded.unwrap(), trace), (r, None));
}

#[test]
fn every_record_kind_roundtrips() {
    let entry = TimelineEntry {
        user_seq: UserSeq(4),
        message: message(vec![]),
    };
    roundtrip(LogRecord::Delivery(Delivery {
        user: UserId::parse("bob").unwrap(),
        message: message(vec![]),
    }));
    roundtrip(LogRecord::Delivery(Delivery {
        user: UserId::parse("bob").unwrap(),
        message: message(vec![UserId::parse("carol").unwrap()]),
    }));
    roundtrip(LogRecord::UserEvent(UserEvent {
        user: UserId::parse("bob").unwrap(),
        entry: entry.clone(),
    }));
    roundtrip(LogRecord::Gateway(GatewayRecord::Package(Package {
        user: UserId::parse("bob").unwrap(),
        device: DeviceId::parse("d").unwrap(),
        package_id: 9,
        index: 0,
        count: 1,
        entries: vec![entry],
    })));
    for outcome in [
        Outcome::Sequenced { conv_seq: ConvSeq(3) },
        Outcome::Refused {
            code: RefusalCode::NotMember,
            reason: "no".into(),
        },
    ] {
        roundtrip(LogRecord::Gateway(GatewayRecord::Receipt(Receipt {
            origin: origin(),
            conv: ConversationId::parse("g:room").unwrap(),
            client_msg_id: ClientMsgId::random(),
            outcome,
        })));
    }
    roundtrip(LogRecord::Command(Command::Send(SendCommand {
        origin: origin(),
        conv: ConversationId::parse("g:room").unwrap(),
        client_msg_id: ClientMsgId::random(),
        prev: None,
        body: "hi".into(),
        priority: true,
        vclock: VectorClock::new(),
        sent_ms: 5,
    })));
    roundtrip(LogRecord::Command(Command::Create(CreateCommand {
        origin: origin(),
        conv: ConversationId::parse("g:room").unwrap(),
        kind: ConversationKind::Group,
        title: "t".into(),
        members: vec![UserId::parse("bob").unwrap()],
        client_msg_id: ClientMsgId::random(),
    })));
    roundtrip(LogRecord::DeadLetter(DeadLetter {
        topic: "inbound".into(),
        partition: 1,
        offset: 2,
        reason: "bad".into(),
        raw: vec![1, 2, 3],
    }));
}

#[test]
fn a_batch_round_trips() {
    let conv = ConversationId::parse("g:room").unwrap();
    let send = SendCommand {
        origin: origin(),
        conv: conv.clone(),
        client_msg_id: ClientMsgId::random(),
        prev: Some(ClientMsgId::random()),
        body: "bye".into(),
        priority: false,
        vclock: VectorClock::from([(UserId::parse("bob").unwrap(), 2)]),
        sent_ms: 5,
    };
    let leave = MembersCommand {
        origin: origin(),
        conv: conv.clone(),
        client_msg_id: ClientMsgId::random(),
        add: Vec::new(),
        remove: vec![UserId::parse("alice").unwrap()],
    };
    roundtrip(LogRecord::Command(Command::Batch(BatchCommand {
        origin: origin(),
        conv,
        commands: vec![BatchItem::Send(send), BatchItem::ChangeMembers(leave)],
    })));
}

#[test]
fn junk_and_unknown_versions_are_errors() {
    assert!(decode_record(&[]).0.is_err());
    assert!(decode_record(&[9, 1, 2]).0.is_err());
    assert!(decode_record(&[FORMAT_V2, 0xff, 0xff, 0xff]).0.is_err());
    assert!(decode_record(&[TRACED_V2, 1, 2]).0.is_err(), "shorter than its context");
}

#[test]
fn a_traced_record_keeps_its_context_and_an_untraced_one_costs_nothing() {
    let r = LogRecord::Delivery(Delivery {
        user: UserId::parse("bob").unwrap(),
        message: message(vec![]),
    });
    let trace = TraceParent::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").unwrap();
    let plain = encode_record(r.clone(), None).unwrap();
    let traced = encode_record(r.clone(), Some(trace)).unwrap();
    assert_eq!(plain[0], FORMAT_V2, "without context, the format of before");
    assert_eq!(traced.len(), plain.len() + TraceParent::LEN);
    let (decoded, context) = decode_record(&traced);
    assert_eq!((decoded.unwrap(), context), (r, Some(trace)));
}

/// A record as the version before trace context wrote it (format 2, then
/// postcard): variant 8 (`ReadMark`), then `bob`, `phone`, `g:room`, 5.
const OLD_READ_MARK: &[u8] = &[
    2, 8, 3, b'b', b'o', b'b', 5, b'p', b'h', b'o', b'n', b'e', 6, b'g', b':', b'r', b'o', b'o', b'm', 5,
];

fn read_mark() -> LogRecord {
    LogRecord::Gateway(GatewayRecord::ReadMark(ReadMark {
        user: UserId::parse("bob").unwrap(),
        device: DeviceId::parse("phone").unwrap(),
        conv: ConversationId::parse("g:room").unwrap(),
        conv_seq: ConvSeq(5),
    }))
}

#[test]
fn records_written_before_trace_context_still_decode() {
    let (record, trace) = decode_record(OLD_READ_MARK);
    assert_eq!(trace, None);
    assert_eq!(record.unwrap(), read_mark());
    assert_eq!(
        encode_record(read_mark(), None).unwrap(),
        OLD_READ_MARK,
        "and are still written so"
    );
}

#[test]
fn core_outcome_is_not_postcard_decodable() {
    // Why the Wire mirrors exist: internally tagged enums need a
    // self-describing format.
    let bytes = postcard::to_allocvec(&Outcome::Sequenced { conv_seq: ConvSeq(1) }).unwrap();
    assert!(postcard::from_bytes::<Outcome>(&bytes).is_err());
}
