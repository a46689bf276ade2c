//! The `batch` frame at the gateway: one command record on the inbound
//! topic, with the token's identity, the sends chained by `prev` and the
//! leave as the sender's own removal; a bad batch is refused naming the
//! command, and nothing is published.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use seqline_core::records::{BatchItem, Command, MAX_BATCH_COMMANDS};
use serde_json::json;

#[tokio::test]
async fn a_batch_is_published_as_one_record_with_its_sends_chained() {
    let gw = Gw::start().await;
    let mut inbound = gw.inbound().await;
    let (mut c, welcome) = gw.login("alice", "phone").await;
    assert_eq!(welcome["limits"]["max_batch_commands"], MAX_BATCH_COMMANDS);
    assert!(welcome["limits"]["max_batch_bytes"].as_u64().unwrap() > 0);
    let ids: Vec<uuid::Uuid> = (0..3).map(|_| uuid::Uuid::new_v4()).collect();
    let prev = uuid::Uuid::new_v4();
    c.send(json!({"type": "batch", "conv": "g:room", "prev": prev, "commands": [
        {"type": "send", "id": ids[0], "body": "one", "vclock": {"bob": 1}},
        {"type": "send", "id": ids[1], "body": "two"},
        {"type": "leave", "id": ids[2]}]}))
        .await;
    let Command::Batch(b) = inbound.next().await else {
        panic!("not a batch")
    };
    assert_eq!((b.origin.user.as_str(), b.origin.device.as_str()), ("alice", "phone"));
    assert_eq!(b.origin.gateway, gw.id);
    assert_eq!(b.conv.as_str(), "g:room");
    let [BatchItem::Send(one), BatchItem::Send(two), BatchItem::ChangeMembers(leave)] = b.commands.as_slice() else {
        panic!("{:?}", b.commands)
    };
    assert_eq!((one.client_msg_id.0, one.prev.map(|p| p.0)), (ids[0], Some(prev)));
    assert_eq!((two.client_msg_id.0, two.prev.map(|p| p.0)), (ids[1], Some(ids[0])));
    assert_eq!(one.vclock.get(&user("bob")), Some(&1));
    assert_eq!(leave.client_msg_id.0, ids[2]);
    assert!(leave.add.is_empty());
    assert_eq!(leave.remove, vec![user("alice")]);
    for item in &b.commands {
        let (origin, conv) = match item {
            BatchItem::Send(s) => (&s.origin, &s.conv),
            BatchItem::ChangeMembers(m) => (&m.origin, &m.conv),
        };
        assert_eq!((origin, conv), (&b.origin, &b.conv));
    }
    inbound.assert_empty().await;
}

#[tokio::test]
async fn a_bad_batch_is_refused_naming_the_command_and_nothing_is_published() {
    let gw = Gw::start().await;
    let mut inbound = gw.inbound().await;
    let (mut c, _) = gw.login("alice", "phone").await;
    let (a, b) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let max = gw.config.max_body_bytes;
    let too_many: Vec<_> = (0..=MAX_BATCH_COMMANDS)
        .map(|_| json!({"type": "leave", "id": uuid::Uuid::new_v4()}))
        .collect();
    let cases = [
        (json!([]), "invalid_field", "no commands".to_string()),
        (json!(too_many), "invalid_field", format!("over {MAX_BATCH_COMMANDS}")),
        (
            json!([{"type": "send", "id": a, "body": "ok"}, {"type": "send", "id": b, "body": ""}]),
            "invalid_field",
            format!("command 1 ({b}): the body is empty"),
        ),
        (
            json!([{"type": "send", "id": a, "body": "ok"}, {"type": "send", "id": b, "body": "x".repeat(max + 1)}]),
            "too_large",
            format!("command 1 ({b})"),
        ),
        (
            json!([{"type": "send", "id": a, "body": "ok"}, {"type": "leave", "id": a}]),
            "invalid_field",
            format!("command 1 ({a}): the id is used twice"),
        ),
        (
            json!([{"type": "send", "id": uuid::Uuid::nil(), "body": "ok"}]),
            "invalid_field",
            "non-nil".to_string(),
        ),
    ];
    for (commands, code, says) in cases {
        c.send(json!({"type": "batch", "conv": "g:room", "commands": commands}))
            .await;
        let e = c.expect_error(code).await;
        assert!(e["req"].is_null(), "{e}");
        assert!(e["message"].as_str().unwrap().contains(&says), "{e} should say {says}");
    }
    // prev naming a command of the batch, an unknown entry type, an unknown field.
    c.send(json!({"type": "batch", "conv": "g:room", "prev": a,
                  "commands": [{"type": "send", "id": a, "body": "ok"}]}))
        .await;
    c.expect_error("invalid_field").await;
    c.send(json!({"type": "batch", "conv": "g:room", "commands": [{"type": "join", "id": a}]}))
        .await;
    c.expect_error("invalid_field").await;
    c.send(json!({"type": "batch", "conv": "g:room",
                  "commands": [{"type": "send", "id": a, "body": "ok", "sender": "bob"}]}))
        .await;
    c.expect_error("invalid_field").await;
    c.assert_alive().await;
    inbound.assert_empty().await;
}

#[tokio::test]
async fn a_batch_takes_one_send_token_per_command() {
    let gw = Gw::start_with(|c| {
        c.max_sends_per_sec = 1;
        c.send_burst = 3;
    })
    .await;
    let mut inbound = gw.inbound().await;
    let (mut c, _) = gw.login("alice", "phone").await;
    let batch = |n: usize| {
        let commands: Vec<_> = (0..n)
            .map(|i| json!({"type": "send", "id": uuid::Uuid::new_v4(), "body": format!("m{i}")}))
            .collect();
        json!({"type": "batch", "conv": "g:room", "commands": commands})
    };
    c.send(batch(4)).await;
    let e = c.expect_error("rate_limited").await;
    assert!(e["message"].as_str().unwrap().starts_with("batch "), "{e}");
    c.send(batch(3)).await;
    assert!(matches!(inbound.next().await, Command::Batch(b) if b.commands.len() == 3));
    inbound.assert_empty().await;
}
