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
    let bytes = encode_record(r.clone()).unwrap();
    assert_eq!(decode_record(&bytes).unwrap(), r);
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
    assert!(decode_record(&[]).is_err());
    assert!(decode_record(&[9, 1, 2]).is_err());
    assert!(decode_record(&[FORMAT_V2, 0xff, 0xff, 0xff]).is_err());
}

#[test]
fn core_outcome_is_not_postcard_decodable() {
    // Why the Wire mirrors exist: internally tagged enums need a
    // self-describing format.
    let bytes = postcard::to_allocvec(&Outcome::Sequenced { conv_seq: ConvSeq(1) }).unwrap();
    assert!(postcard::from_bytes::<Outcome>(&bytes).is_err());
}
