//! Round trips of the JSON-lines format and the writer.

use super::*;

fn sample() -> Vec<Event> {
    vec![
        Event::new(
            1,
            "u1",
            "d1",
            EventBody::SendInvoke {
                conv: "g:1".into(),
                client_msg_id: "m1".into(),
                body_hash: body_hash("hi"),
            },
        ),
        Event::new(
            2,
            "u2",
            "d2",
            EventBody::Recv {
                conv: "g:1".into(),
                conv_seq: 1,
                client_msg_id: "m1".into(),
                user_seq: Some(3),
                via: Via::Push,
                body_hash: body_hash("hi"),
                sender: "u1".into(),
                system: false,
                read_diffusion: true,
                vclock: [("u1".to_string(), 1)].into(),
            },
        ),
        Event::new(
            3,
            "u2",
            "d2",
            EventBody::Pull {
                scope: Scope::User,
                conv: None,
                from: 2,
                returned: vec![3],
            },
        ),
        Event::new(
            4,
            "u2",
            "d2",
            EventBody::Member {
                conv: "g:1".into(),
                member: "u3".into(),
                change: MemberOp::Join,
                conv_seq: 2,
            },
        ),
        Event::new(5, "", "", EventBody::Heal {}),
        Event::new(6, "u2", "d2", EventBody::Converged {}),
    ]
}

#[test]
fn json_lines_have_the_proof_format() {
    let line = serde_json::to_string(&sample()[0]).unwrap();
    assert_eq!(
        line,
        format!(
            r#"{{"t":1,"user":"u1","device":"d1","ev":"send_invoke","conv":"g:1","client_msg_id":"m1","body_hash":{}}}"#,
            body_hash("hi")
        )
    );
    let recv: Event = serde_json::from_str(
        r#"{"t":2,"user":"u","device":"d","ev":"recv","conv":"c","conv_seq":1,"client_msg_id":"m","via":"pull","body_hash":7}"#,
    )
    .unwrap();
    assert!(matches!(
        recv.body,
        EventBody::Recv {
            user_seq: None,
            system: false,
            via: Via::Pull,
            ..
        }
    ));
    let heal = serde_json::to_string(&sample()[4]).unwrap();
    assert_eq!(heal, r#"{"t":5,"user":"","device":"","ev":"heal"}"#);
}

#[test]
fn every_event_round_trips() {
    for ev in sample() {
        let line = serde_json::to_string(&ev).unwrap();
        assert_eq!(serde_json::from_str::<Event>(&line).unwrap(), ev, "{line}");
    }
}

#[test]
fn writer_to_file_and_back() {
    let dir = std::env::temp_dir().join(format!("seqline-checker-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("history.jsonl");
    let w = HistoryWriter::to_file(&path).unwrap();
    std::thread::scope(|s| {
        for ev in sample() {
            let w = &w;
            s.spawn(move || w.record(ev));
        }
    });
    w.finish().unwrap();
    let mut back = read_history(&path).unwrap();
    back.sort_by_key(|e| e.t);
    assert_eq!(back, sample());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn writer_in_memory_hands_over_events() {
    let w = HistoryWriter::in_memory();
    sample().into_iter().for_each(|e| w.record(e));
    assert_eq!(w.events().len(), 6);
    assert_eq!(w.finish().unwrap(), sample());
    assert!(w.events().is_empty());
}

#[test]
fn body_hash_is_fnv1a() {
    assert_eq!(body_hash(""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(body_hash("a"), 0xaf63_dc4c_8601_ec8c);
}
