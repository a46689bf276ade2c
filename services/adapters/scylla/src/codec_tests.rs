use super::*;
use seqline_core::ids::UserSeq;

fn message() -> Message {
    Message {
        read_diffusion: true,
        sender_name: "Alice Ø".into(),
        conv: ConversationId::parse("g:room").unwrap(),
        conv_seq: ConvSeq(7),
        client_msg_id: ClientMsgId::random(),
        sender: UserId::parse("alice").unwrap(),
        sender_device: DeviceId::parse("phone").unwrap(),
        kind: MessageKind::Joined,
        body: String::new(),
        members: vec![UserId::parse("bob").unwrap()],
        priority: true,
        server_ts_ms: 1_700_000_000_000,
        vclock: [(UserId::parse("alice").unwrap(), 3)].into_iter().collect(),
    }
}

fn row_of(m: &Message) -> MessageRow {
    let c = message_columns(m).unwrap();
    MessageRow {
        conv_seq: m.conv_seq.0 as i64,
        client_msg_id: c.client_msg_id,
        sender: c.sender.into(),
        sender_device: c.sender_device.into(),
        kind: c.kind.into(),
        body: Some(c.body.into()),
        // Empty collections read back as null.
        members: (!c.members.is_empty()).then(|| c.members.iter().map(|s| s.to_string()).collect()),
        priority: Some(c.priority),
        server_ts_ms: c.server_ts_ms,
        vclock: (!c.vclock.is_empty()).then(|| c.vclock.iter().map(|(k, v)| (k.to_string(), *v)).collect()),
        sender_name: Some(c.sender_name.into()),
        read_diffusion: Some(c.read_diffusion),
    }
}

#[test]
fn messages_round_trip_through_columns() {
    let m = message();
    assert_eq!(row_of(&m).into_message(m.conv.clone()).unwrap(), m);
    let plain = Message {
        members: vec![],
        vclock: Default::default(),
        kind: MessageKind::Text,
        body: "hi".into(),
        ..message()
    };
    assert_eq!(row_of(&plain).into_message(plain.conv.clone()).unwrap(), plain);
    let written = message_columns(&m).unwrap();
    assert_eq!((written.sender_name, written.read_diffusion), ("Alice Ø", true));
}

#[test]
fn rows_written_before_the_new_columns_read_defaults() {
    let m = message();
    let row = MessageRow {
        sender_name: None,
        read_diffusion: None,
        ..row_of(&m)
    };
    let read = row.into_message(m.conv.clone()).unwrap();
    assert_eq!((read.sender_name.as_str(), read.read_diffusion), ("", false));
    assert_eq!(
        read,
        Message {
            sender_name: String::new(),
            read_diffusion: false,
            ..m
        }
    );
}

#[test]
fn timeline_rows_carry_the_new_columns() {
    let m = message();
    let r = row_of(&m);
    let entry = EntryRow {
        user_seq: 12,
        conv: m.conv.to_string(),
        conv_seq: r.conv_seq,
        client_msg_id: r.client_msg_id,
        sender: r.sender,
        sender_device: r.sender_device,
        kind: r.kind,
        body: r.body,
        members: r.members,
        priority: r.priority,
        server_ts_ms: r.server_ts_ms,
        vclock: r.vclock,
        sender_name: r.sender_name,
        read_diffusion: r.read_diffusion,
    }
    .into_entry()
    .unwrap();
    assert_eq!(entry.user_seq, UserSeq(12));
    assert_eq!(entry.message, m);
    assert!(entry.message.read_diffusion && entry.message.sender_name == "Alice Ø");
}

#[test]
fn pending_batches_keep_the_new_fields() {
    let batch = PendingConversation {
        create: None,
        messages: vec![message()],
        members: vec![],
        events: vec![(UserId::parse("bob").unwrap(), 7, false)],
        dedup: vec![],
        device_last: vec![],
    };
    let bytes = encode_pending(&batch).unwrap();
    assert_eq!(decode_pending::<PendingConversation>(&bytes).unwrap(), batch);
    // A batch pending from before the fields existed reads with defaults.
    let text = String::from_utf8(bytes).unwrap();
    let old = text
        .replace(r#","sender_name":"Alice Ø""#, "")
        .replace(r#","read_diffusion":true"#, "")
        .replace(r#""events":[["bob",7,false]],"#, "");
    assert_ne!(old, text);
    let read = decode_pending::<PendingConversation>(old.as_bytes()).unwrap();
    assert_eq!(
        (read.messages[0].sender_name.as_str(), read.messages[0].read_diffusion),
        ("", false)
    );
    assert!(read.events.is_empty());
}

#[test]
fn bad_rows_are_corrupt() {
    let m = message();
    let mut row = row_of(&m);
    row.kind = "shout".into();
    assert!(matches!(row.into_message(m.conv.clone()), Err(Error::Corrupt(_))));
    let mut row = row_of(&m);
    row.sender = "no spaces allowed".into();
    assert!(matches!(row.into_message(m.conv.clone()), Err(Error::Corrupt(_))));
    let mut row = row_of(&m);
    row.conv_seq = -1;
    assert!(matches!(row.into_message(m.conv), Err(Error::Corrupt(_))));
    assert!(matches!(to_i64(u64::MAX, "seq"), Err(Error::Invalid(_))));
}

#[test]
fn outcomes_round_trip() {
    for o in [
        Outcome::Sequenced { conv_seq: ConvSeq(9) },
        Outcome::Refused {
            code: RefusalCode::TooLarge,
            reason: "too many".into(),
        },
    ] {
        let (status, seq, code, reason) = outcome_columns(&o).unwrap();
        let row = OutcomeRow {
            status: status.into(),
            conv_seq: seq,
            code: code.map(str::to_string),
            reason: reason.map(str::to_string),
        };
        assert_eq!(row.into_outcome().unwrap(), o);
    }
    let bad = OutcomeRow {
        status: "maybe".into(),
        conv_seq: None,
        code: None,
        reason: None,
    };
    assert!(matches!(bad.into_outcome(), Err(Error::Corrupt(_))));
}

#[test]
fn enums_have_stable_text() {
    for r in [Role::Admin, Role::Member] {
        assert_eq!(role_of(role_text(r)).unwrap(), r);
    }
    for c in [
        RefusalCode::NotMember,
        RefusalCode::OutOfOrder,
        RefusalCode::Forbidden,
        RefusalCode::Invalid,
        RefusalCode::Conflict,
        RefusalCode::TooLarge,
    ] {
        assert_eq!(code_of(code_text(c)).unwrap(), c);
    }
    assert_eq!(role_text(Role::Admin), "admin");
    assert!(conv_kind_of("channel").is_err());
}

#[test]
fn pending_batches_are_versioned_and_deterministic() {
    let batch = PendingTimeline {
        entries: vec![TimelineEntry {
            user_seq: UserSeq(4),
            message: message(),
        }],
        applied: vec![(ConversationId::parse("g:room").unwrap(), ConvSeq(7))],
    };
    let bytes = encode_pending(&batch).unwrap();
    assert!(bytes.starts_with(br#"{"v":1,"batch":"#));
    assert_eq!(encode_pending(&batch.clone()).unwrap(), bytes);
    assert_eq!(decode_pending::<PendingTimeline>(&bytes).unwrap(), batch);
    let future = String::from_utf8(bytes).unwrap().replacen(r#""v":1"#, r#""v":2"#, 1);
    assert!(matches!(
        decode_pending::<PendingTimeline>(future.as_bytes()),
        Err(Error::Corrupt(_))
    ));
    assert!(matches!(
        decode_pending::<PendingTimeline>(b"{}"),
        Err(Error::Corrupt(_))
    ));
}

#[test]
fn buckets_and_shards() {
    assert_eq!(bucket(0, 1000), 0);
    assert_eq!(bucket(999, 1000), 0);
    assert_eq!(bucket(1000, 1000), 1);
    let id = ClientMsgId::random();
    assert!((0..16).contains(&dedup_shard(id, 16)));
    assert_eq!(dedup_shard(id, 16), dedup_shard(id, 16));
}
