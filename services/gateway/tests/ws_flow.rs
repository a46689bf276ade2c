//! The happy paths over a real socket: send → inbound, receipts → ack/nack,
//! packages → rectified pushes and pulls, sync/reset, history, cursor, ping.
//! The tests play the sequencer and fanout by appending to the gateway topic.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use seqline_core::model::{Outcome, RefusalCode, TimelineEntry};
use seqline_core::ports::Store;
use seqline_core::records::{Command, GatewayRecord, Origin, Package, Receipt};
use seqline_core::{ClientMsgId, ConvSeq, ConversationId, UserSeq};
use seqline_testkit::fixtures;
use serde_json::{json, Value};
use std::time::Instant;

fn receipt(gw: &Gw, u: &str, d: &str, conv: &str, id: uuid::Uuid, outcome: Outcome) -> GatewayRecord {
    GatewayRecord::Receipt(Receipt {
        origin: Origin {
            name: String::new(),
            gateway: gw.id.clone(),
            user: user(u),
            device: device(d),
            request: 0,
        },
        conv: ConversationId::parse(conv).unwrap(),
        client_msg_id: ClientMsgId(id),
        outcome,
    })
}

fn entries(u: &str, seqs: std::ops::RangeInclusive<u64>) -> Vec<TimelineEntry> {
    let conv = ConversationId::parse("g:room").unwrap();
    seqs.map(|s| TimelineEntry {
        user_seq: UserSeq(s),
        message: fixtures::message(&conv, s, &user(u)),
    })
    .collect()
}

fn package(u: &str, d: &str, id: u64, index: u32, count: u32, entries: Vec<TimelineEntry>) -> GatewayRecord {
    GatewayRecord::Package(Package {
        user: user(u),
        device: device(d),
        package_id: id,
        index,
        count,
        entries,
    })
}

fn seqs(frame: &Value) -> Vec<u64> {
    frame["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["user_seq"].as_u64().unwrap())
        .collect()
}

/// A group `g:room` with alice (admin) and bob, `n` messages, and alice's
/// timeline holding them as user_seq 1..=n.
async fn seed(gw: &Gw, n: u64) -> ConversationId {
    let conv = ConversationId::parse("g:room").unwrap();
    gw.store
        .commit_conversation(fixtures::create_batch(&conv, &user("alice"), &[user("bob")]))
        .await
        .unwrap();
    if n > 0 {
        gw.store
            .commit_conversation(fixtures::messages_batch(&conv, 0, n, &user("alice")))
            .await
            .unwrap();
        gw.store
            .commit_timeline(fixtures::timeline_batch(&user("alice"), 0, &conv, 1, n))
            .await
            .unwrap();
    }
    conv
}

#[tokio::test]
async fn send_publishes_a_command_with_the_tokens_identity() {
    let gw = Gw::start().await;
    let mut inbound = gw.inbound().await;
    let (mut c, _) = gw.login("alice", "phone").await;
    let (id, prev) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    c.send(
        json!({"type": "send", "id": id, "conv": "g:room", "body": "hello", "prev": prev,
                  "priority": true, "vclock": {"alice": 2, "bob": 1}}),
    )
    .await;
    let Command::Send(s) = inbound.next().await else {
        panic!("not a send")
    };
    let want = Origin {
        name: String::new(),
        gateway: gw.id.clone(),
        user: user("alice"),
        device: device("phone"),
        request: 0,
    };
    assert_eq!(s.origin, want);
    assert_eq!(
        (s.conv.as_str(), s.client_msg_id.0, s.prev.map(|p| p.0)),
        ("g:room", id, Some(prev))
    );
    assert_eq!((s.body.as_str(), s.priority), ("hello", true));
    assert_eq!(s.vclock.get(&user("bob")), Some(&1));
    assert!(s.sent_ms > 0);
}

#[tokio::test]
async fn receipts_become_ack_and_nack_for_the_sending_device_only() {
    let gw = Gw::start().await;
    let (mut phone, _) = gw.login("alice", "phone").await;
    let (mut laptop, _) = gw.login("alice", "laptop").await;
    let id = uuid::Uuid::new_v4();
    gw.deliver(receipt(
        &gw,
        "alice",
        "phone",
        "g:room",
        id,
        Outcome::Sequenced { conv_seq: ConvSeq(7) },
    ))
    .await;
    let ack = phone.recv().await;
    assert_eq!(ack, json!({"type": "ack", "id": id, "conv": "g:room", "conv_seq": 7}));

    let refused = Outcome::Refused {
        code: RefusalCode::OutOfOrder,
        reason: "resend from the first unacked".into(),
    };
    let id2 = uuid::Uuid::new_v4();
    gw.deliver(receipt(&gw, "alice", "phone", "g:room", id2, refused)).await;
    let nack = phone.recv().await;
    assert_eq!(
        (nack["type"].as_str(), nack["code"].as_str()),
        (Some("nack"), Some("out_of_order"))
    );
    assert_eq!(nack["id"], json!(id2));
    // A receipt for a device that is not here goes nowhere; the laptop got nothing.
    gw.deliver(receipt(
        &gw,
        "alice",
        "tablet",
        "g:room",
        id,
        Outcome::Sequenced { conv_seq: ConvSeq(7) },
    ))
    .await;
    laptop.assert_alive().await;
    phone.assert_alive().await;
}

#[tokio::test]
async fn packages_are_pushed_in_order() {
    let gw = Gw::start().await;
    let (mut c, _) = gw.login("bob", "phone").await;
    gw.deliver(package("bob", "phone", 1, 0, 1, entries("bob", 1..=2)))
        .await;
    let push = c.recv().await;
    assert_eq!(
        (push["type"].as_str(), push["package"].as_u64()),
        (Some("push"), Some(1))
    );
    assert_eq!(seqs(&push), vec![1, 2]);
    // A repeat of what the device has is not pushed again.
    gw.deliver(package("bob", "phone", 1, 0, 1, entries("bob", 1..=2)))
        .await;
    gw.deliver(package("bob", "phone", 2, 0, 1, entries("bob", 3..=3)))
        .await;
    assert_eq!(seqs(&c.recv().await), vec![3]);
}

#[tokio::test]
async fn fragments_out_of_order_are_held_then_released_whole() {
    let gw = Gw::start().await;
    let (mut c, _) = gw.login("bob", "phone").await;
    gw.deliver(package("bob", "phone", 9, 1, 2, entries("bob", 3..=4)))
        .await;
    c.assert_alive().await; // held: nothing pushed yet
    gw.deliver(package("bob", "phone", 9, 0, 2, entries("bob", 1..=2)))
        .await;
    let push = c.recv().await;
    assert_eq!(push["package"], 9);
    assert_eq!(seqs(&push), vec![1, 2, 3, 4]);
}

#[tokio::test]
async fn a_gap_becomes_a_pull_after_the_timeout() {
    let gw = Gw::start().await;
    let (mut c, _) = gw.login("bob", "phone").await;
    let sent = Instant::now();
    gw.deliver(package("bob", "phone", 3, 0, 1, entries("bob", 2..=3)))
        .await;
    let pull = c.recv().await;
    assert_eq!(pull, json!({"type": "pull", "after": 0}));
    assert!(
        sent.elapsed() >= gw.config.rectifier_timeout,
        "pulled before the timeout"
    );
    c.assert_alive().await;
}

#[tokio::test]
async fn sync_pages_the_timeline_and_resets_beyond_the_head() {
    let gw = Gw::start().await;
    seed(&gw, 5).await;
    let (mut c, welcome) = gw.login("alice", "phone").await;
    assert_eq!(welcome["head"], 5);
    c.send(json!({"type": "sync", "req": 1, "after": 0, "limit": 2})).await;
    let page = c.recv().await;
    assert_eq!(
        (page["type"].as_str(), page["req"].as_u64()),
        (Some("sync_page"), Some(1))
    );
    assert_eq!(
        (seqs(&page), page["head"].as_u64(), page["more"].as_bool()),
        (vec![1, 2], Some(5), Some(true))
    );
    c.send(json!({"type": "sync", "req": 2, "after": 2, "limit": 1000000000u64}))
        .await;
    let page = c.recv().await;
    assert_eq!((seqs(&page), page["more"].as_bool()), (vec![3, 4, 5], Some(false)));
    c.send(json!({"type": "sync", "req": 3, "after": 5})).await;
    let page = c.recv().await;
    assert_eq!((seqs(&page), page["more"].as_bool()), (vec![], Some(false)));
    c.send(json!({"type": "sync", "req": 4, "after": u64::MAX})).await;
    let reset = c.recv().await;
    assert_eq!(
        (reset["type"].as_str(), reset["req"].as_u64(), reset["head"].as_u64()),
        (Some("reset"), Some(4), Some(5))
    );
}

#[tokio::test]
async fn a_sync_fills_the_gap_and_releases_held_pushes() {
    let gw = Gw::start().await;
    let (mut c, welcome) = gw.login("alice", "phone").await;
    assert_eq!(welcome["head"], 0);
    seed(&gw, 2).await;
    gw.deliver(package("alice", "phone", 5, 0, 1, entries("alice", 3..=3)))
        .await;
    c.assert_alive().await; // 3 is held behind the gap 1..2
    c.send(json!({"type": "sync", "req": 1, "after": 0})).await;
    let page = c.recv().await;
    assert_eq!(seqs(&page), vec![1, 2]);
    let push = c.recv().await;
    assert_eq!((push["type"].as_str(), seqs(&push)), (Some("push"), vec![3]));
}

#[tokio::test]
async fn history_is_for_members_and_a_missing_conversation_looks_the_same() {
    let gw = Gw::start().await;
    seed(&gw, 5).await;
    let (mut alice, _) = gw.login("alice", "phone").await;
    let conv_seqs = |f: &Value| -> Vec<u64> {
        f["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["conv_seq"].as_u64().unwrap())
            .collect()
    };
    alice
        .send(json!({"type": "history", "req": 1, "conv": "g:room", "limit": 2}))
        .await;
    let page = alice.recv().await;
    assert_eq!(
        (page["type"].as_str(), page["head"].as_u64()),
        (Some("history_page"), Some(5))
    );
    assert_eq!(conv_seqs(&page), vec![4, 5]);
    alice
        .send(json!({"type": "history", "req": 2, "conv": "g:room", "before": 4}))
        .await;
    assert_eq!(conv_seqs(&alice.recv().await), vec![1, 2, 3]);
    alice
        .send(json!({"type": "history", "req": 3, "conv": "g:room", "after": 3}))
        .await;
    assert_eq!(conv_seqs(&alice.recv().await), vec![4, 5]);
    alice
        .send(json!({"type": "history", "req": 4, "conv": "g:room", "after": 1, "before": 3}))
        .await;
    alice.expect_error("invalid_field").await;

    let (mut carol, _) = gw.login("carol", "phone").await;
    carol.send(json!({"type": "history", "req": 5, "conv": "g:room"})).await;
    let not_in = carol.expect_error("not_member").await;
    carol
        .send(json!({"type": "history", "req": 5, "conv": "g:nowhere"}))
        .await;
    let missing = carol.expect_error("not_member").await;
    assert_eq!(not_in, missing);
    carol.assert_alive().await;
}

#[tokio::test]
async fn cursors_are_recorded_monotonic_and_bounded_by_the_head() {
    let gw = Gw::start().await;
    seed(&gw, 5).await;
    let (mut c, welcome) = gw.login("alice", "phone").await;
    assert!(welcome["cursor"].is_null());
    c.send(json!({"type": "cursor", "user_seq": 3})).await;
    c.send(json!({"type": "cursor", "user_seq": 2})).await;
    c.send(json!({"type": "cursor", "user_seq": 9})).await;
    c.expect_error("invalid_field").await;
    c.assert_alive().await;
    let (_, welcome) = gw.login("alice", "phone").await;
    assert_eq!(welcome["cursor"], 3);
}

#[tokio::test]
async fn ping_answers_with_the_timeline_head() {
    let gw = Gw::start().await;
    seed(&gw, 4).await;
    let (mut c, _) = gw.login("alice", "phone").await;
    c.send(json!({"type": "ping", "req": 12})).await;
    assert_eq!(c.recv().await, json!({"type": "pong", "req": 12, "head": 4}));
    c.send(json!({"type": "ping"})).await;
    assert_eq!(c.recv().await, json!({"type": "pong", "req": null, "head": 4}));
}
