//! Read diffusion over real sockets: `sync_conv` paging from the hot-tail
//! cache (with coalesced store reads, proven by the metrics), long-polls and
//! follows, notices and the priority lane, read marks and unread counts, and
//! the token's display name on published commands. The tests play the
//! sequencer (committing to the store) and fanout (appending notices to the
//! gateway's topics: ordinary notices to `gw.<id>`, messages in full to its
//! priority lane `gw-priority.<id>`).

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use seqline_core::model::{Message, MessageKind};
use seqline_core::ports::{Log, MemberChange, Presence, Store};
use seqline_core::records::{Command, GatewayRecord, LogRecord, Notice, Topic};
use seqline_core::token::now_secs;
use seqline_core::{ConvSeq, ConversationId};
use seqline_testkit::fixtures;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn conv(name: &str) -> ConversationId {
    ConversationId::parse(name).unwrap()
}

/// A group `name` created by alice with `members`, and `n` messages.
async fn seed(gw: &Gw, name: &str, members: &[&str], n: u64) -> ConversationId {
    let c = conv(name);
    let members: Vec<_> = members.iter().map(|m| user(m)).collect();
    gw.store
        .commit_conversation(fixtures::create_batch(&c, &user("alice"), &members))
        .await
        .unwrap();
    if n > 0 {
        append(gw, &c, 0, n).await;
    }
    c
}

/// Commits `count` messages after `head`, as the sequencer would in read
/// diffusion.
async fn append(gw: &Gw, c: &ConversationId, head: u64, count: u64) {
    let mut batch = fixtures::messages_batch(c, head, count, &user("alice"));
    for m in &mut batch.messages {
        m.read_diffusion = true;
    }
    gw.store.commit_conversation(batch).await.unwrap();
}

/// Commits a `joined` (or `left`) of `who` after `head`, in read diffusion,
/// as the sequencer would; returns the message.
async fn membership(gw: &Gw, c: &ConversationId, head: u64, who: &str, joined: bool) -> Message {
    let mut m = fixtures::message(c, head + 1, &user("alice"));
    m.kind = if joined { MessageKind::Joined } else { MessageKind::Left };
    m.body = String::new();
    m.members = vec![user(who)];
    m.priority = true;
    m.read_diffusion = true;
    let mut batch = fixtures::messages_batch(c, head, 1, &user("alice"));
    batch.dedup = vec![(
        m.client_msg_id,
        seqline_core::model::Outcome::Sequenced { conv_seq: m.conv_seq },
    )];
    batch.messages = vec![m.clone()];
    batch.members = vec![MemberChange {
        user: user(who),
        role: joined.then_some(seqline_core::model::Role::Member),
        at: m.conv_seq,
    }];
    gw.store.commit_conversation(batch).await.unwrap();
    m
}

/// Appends a notice on the lane fanout would choose for it.
async fn notice(gw: &Gw, c: &ConversationId, head: u64, message: Option<Message>) {
    let n = Notice {
        conv: c.clone(),
        head: ConvSeq(head),
        message,
    };
    gw.log
        .append(
            &Topic::for_notice(gw.id.clone(), &n),
            vec![LogRecord::Gateway(GatewayRecord::Notice(n))],
        )
        .await
        .unwrap();
}

fn seqs(page: &Value) -> Vec<u64> {
    page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["conv_seq"].as_u64().unwrap())
        .collect()
}

/// One counter of `/metrics`.
async fn metric(gw: &Gw, name: &str) -> u64 {
    let (status, body) = gw.http("GET", "/metrics", None, None).await;
    assert_eq!(status, 200);
    let text = body.as_str().unwrap().to_string();
    let prefix = format!("seqline_gateway_{name} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

async fn sync_conv(c: &mut Client, conv: &str, after: u64, limit: Option<u32>) -> Value {
    let req = rand_req();
    let mut frame = json!({"type": "sync_conv", "req": req, "conv": conv, "after": after});
    if let Some(l) = limit {
        frame["limit"] = json!(l);
    }
    c.send(frame).await;
    let page = c.recv().await;
    assert_eq!(page["req"], req, "{page}");
    page
}

/// Reads frames until one of `kind` (others are collected).
async fn until(c: &mut Client, kind: &str) -> (Value, Vec<Value>) {
    let mut others = Vec::new();
    loop {
        let f = c.recv().await;
        if f["type"] == kind {
            return (f, others);
        }
        others.push(f);
    }
}

#[tokio::test]
async fn sync_conv_pages_forward_and_refuses_non_members() {
    let gw = Gw::start().await;
    seed(&gw, "g:big", &["bob"], 5).await;
    let (mut bob, _) = gw.login("bob", "phone").await;

    let page = sync_conv(&mut bob, "g:big", 0, Some(2)).await;
    assert_eq!(page["type"], "conv_page", "{page}");
    assert_eq!(
        (seqs(&page), &page["head"], &page["more"]),
        (vec![1, 2], &json!(5), &json!(true))
    );
    assert_eq!(page["conv"], "g:big");
    let page = sync_conv(&mut bob, "g:big", 2, None).await;
    assert_eq!((seqs(&page), &page["more"]), (vec![3, 4, 5], &json!(false)));
    let page = sync_conv(&mut bob, "g:big", 5, None).await;
    assert_eq!(
        (seqs(&page), &page["head"], &page["more"]),
        (vec![], &json!(5), &json!(false))
    );

    // Bad input: each a clear error with the req, the connection lives on.
    let e = sync_conv(&mut bob, "g:big", 9, None).await;
    assert_eq!(
        (e["type"].as_str(), e["code"].as_str()),
        (Some("error"), Some("invalid_field"))
    );
    assert!(e["message"].as_str().unwrap().contains("beyond the head 5"), "{e}");
    let e = sync_conv(&mut bob, "g:big", 0, Some(0)).await;
    assert_eq!(e["code"], "invalid_field");
    let e = sync_conv(&mut bob, "g:nowhere", 0, None).await;
    assert_eq!(e["code"], "not_member");
    bob.send(json!({"type": "sync_conv", "req": 4, "conv": "g:big"})).await;
    let e = bob.expect_error("invalid_field").await;
    assert_eq!(e["req"], 4);
    bob.send(json!({"type": "sync_conv", "req": 5, "conv": "not a conv", "after": 0}))
        .await;
    assert_eq!(bob.expect_error("invalid_field").await["req"], 5);
    bob.assert_alive().await;

    let (mut carol, _) = gw.login("carol", "phone").await;
    let e = sync_conv(&mut carol, "g:big", 0, None).await;
    assert_eq!(e["code"], "not_member", "{e}");
    carol.assert_alive().await;
}

#[tokio::test]
async fn poll_answers_at_once_when_behind_and_follows() {
    let gw = Gw::start().await;
    let c = seed(&gw, "g:big", &["bob"], 5).await;
    seed(&gw, "g:quiet", &["bob"], 2).await;
    let (mut bob, _) = gw.login("bob", "phone").await;
    bob.send(json!({"type": "poll", "req": 1, "wait_ms": 5000,
                    "convs": [{"conv": "g:big", "after": 3}, {"conv": "g:quiet", "after": 2}]}))
        .await;
    let polled = bob.recv().await;
    assert_eq!(
        polled,
        json!({"type": "polled", "req": 1, "advanced": [{"conv": "g:big", "head": 5}]})
    );
    let followers = gw.presence.followers(std::slice::from_ref(&c)).await.unwrap();
    assert_eq!(followers.get(&c), Some(&vec![gw.id.clone()]));
    assert_eq!(metric(&gw, "follows").await, 2);

    // Closing the connection withdraws the follows.
    drop(bob);
    seqline_testkit::wait::until(WAIT, "the follow to be withdrawn", || async {
        let f = gw.presence.followers(std::slice::from_ref(&c)).await.unwrap();
        f.is_empty().then_some(())
    })
    .await;
}

#[tokio::test]
async fn poll_waits_for_a_notice_without_blocking_other_frames() {
    let gw = Gw::start().await;
    let c = seed(&gw, "g:big", &["bob"], 5).await;
    let (mut bob, _) = gw.login("bob", "phone").await;
    bob.send(json!({"type": "poll", "req": 7, "wait_ms": 10000, "convs": [{"conv": "g:big", "after": 5}]}))
        .await;
    // The connection still answers while the poll waits.
    bob.assert_alive().await;
    let page = sync_conv(&mut bob, "g:big", 4, None).await;
    assert_eq!(seqs(&page), vec![5]);
    // Wait until the follow is registered (as fanout would see it).
    seqline_testkit::wait::until(WAIT, "the follow", || async {
        let f = gw.presence.followers(std::slice::from_ref(&c)).await.unwrap();
        (!f.is_empty()).then_some(())
    })
    .await;
    let started = Instant::now();
    append(&gw, &c, 5, 1).await;
    notice(&gw, &c, 6, None).await;
    let (polled, others) = until(&mut bob, "polled").await;
    assert_eq!(
        polled,
        json!({"type": "polled", "req": 7, "advanced": [{"conv": "g:big", "head": 6}]})
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    // The notice itself is pushed too (before or after the answer).
    let notice_frame = json!({"type": "notice", "conv": "g:big", "head": 6});
    if !others.contains(&notice_frame) {
        assert_eq!(bob.recv().await, notice_frame);
    }
    let page = sync_conv(&mut bob, "g:big", 5, None).await;
    assert_eq!((seqs(&page), &page["head"]), (vec![6], &json!(6)));
}

#[tokio::test]
async fn a_poll_that_sees_nothing_times_out_empty_and_a_new_poll_replaces_it() {
    let gw = Gw::start().await;
    seed(&gw, "g:big", &["bob"], 5).await;
    let (mut bob, _) = gw.login("bob", "phone").await;
    let started = Instant::now();
    bob.send(json!({"type": "poll", "req": 1, "wait_ms": 300, "convs": [{"conv": "g:big", "after": 5}]}))
        .await;
    assert_eq!(bob.recv().await, json!({"type": "polled", "req": 1, "advanced": []}));
    assert!(started.elapsed() >= Duration::from_millis(300));

    // A second poll answers the first one at once.
    bob.send(json!({"type": "poll", "req": 2, "wait_ms": 20000, "convs": [{"conv": "g:big", "after": 5}]}))
        .await;
    bob.assert_alive().await;
    let started = Instant::now();
    bob.send(json!({"type": "poll", "req": 3, "wait_ms": 0, "convs": [{"conv": "g:big", "after": 5}]}))
        .await;
    let mut answers = vec![bob.recv().await, bob.recv().await];
    answers.sort_by_key(|a| a["req"].as_u64());
    assert_eq!(
        answers,
        vec![
            json!({"type": "polled", "req": 2, "advanced": []}),
            json!({"type": "polled", "req": 3, "advanced": []})
        ]
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn bad_polls_are_refused_and_follow_nothing() {
    let gw = Gw::start().await;
    let c = seed(&gw, "g:big", &["bob"], 5).await;
    seed(&gw, "g:other", &["carol"], 1).await;
    let (mut bob, _) = gw.login("bob", "phone").await;

    let many: Vec<Value> = (0..1001)
        .map(|i| json!({"conv": format!("g:c{i}"), "after": 0}))
        .collect();
    bob.send(json!({"type": "poll", "req": 1, "convs": many})).await;
    let e = bob.expect_error("invalid_field").await;
    assert_eq!(e["req"], 1);
    assert!(e["message"].as_str().unwrap().contains("at most 1000"), "{e}");

    bob.send(json!({"type": "poll", "req": 2, "wait_ms": 30001, "convs": [{"conv": "g:big", "after": 0}]}))
        .await;
    let e = bob.expect_error("invalid_field").await;
    assert_eq!(e["req"], 2);
    assert!(e["message"].as_str().unwrap().contains("30000"), "{e}");

    bob.send(
        json!({"type": "poll", "req": 3, "convs": [{"conv": "g:big", "after": 0}, {"conv": "g:big", "after": 1}]}),
    )
    .await;
    assert_eq!(bob.expect_error("invalid_field").await["req"], 3);

    bob.send(json!({"type": "poll", "req": 4, "convs": [{"conv": "g:big", "after": -1}]}))
        .await;
    assert_eq!(bob.expect_error("invalid_field").await["req"], 4);
    bob.send(json!({"type": "poll", "req": 5, "convs": [{"conv": "g:big"}]}))
        .await;
    assert_eq!(bob.expect_error("invalid_field").await["req"], 5);

    bob.send(
        json!({"type": "poll", "req": 6, "convs": [{"conv": "g:big", "after": 0}, {"conv": "g:other", "after": 0}]}),
    )
    .await;
    let e = bob.expect_error("not_member").await;
    assert_eq!(e["req"], 6);
    assert!(e["message"].as_str().unwrap().contains("\"g:other\""), "{e}");
    assert_eq!(e["conv"], "g:other", "the error names the conversation: {e}");

    bob.assert_alive().await;
    let followers = gw.presence.followers(std::slice::from_ref(&c)).await.unwrap();
    assert!(followers.is_empty(), "a refused poll followed {followers:?}");
    assert_eq!(metric(&gw, "follows").await, 0);
}

#[tokio::test]
async fn notices_and_priority_messages_reach_following_connections_only() {
    let gw = Gw::start().await;
    let c = seed(&gw, "g:big", &["bob", "carol"], 5).await;
    let (mut bob, _) = gw.login("bob", "phone").await;
    let (mut carol, _) = gw.login("carol", "phone").await;
    bob.send(json!({"type": "poll", "req": 1, "wait_ms": 0, "convs": [{"conv": "g:big", "after": 5}]}))
        .await;
    assert_eq!(bob.recv().await["advanced"], json!([]));

    append(&gw, &c, 5, 1).await;
    notice(&gw, &c, 6, None).await;
    assert_eq!(bob.recv().await, json!({"type": "notice", "conv": "g:big", "head": 6}));

    // An announcement travels in full on the priority lane.
    let mut announcement = fixtures::message(&c, 7, &user("alice"));
    announcement.priority = true;
    announcement.body = "all hands at 10".into();
    append(&gw, &c, 6, 1).await;
    notice(&gw, &c, 7, Some(announcement.clone())).await;
    let p = bob.recv().await;
    assert_eq!(p["type"], "priority", "{p}");
    assert_eq!(
        (&p["message"]["conv_seq"], &p["message"]["body"]),
        (&json!(7), &json!("all hands at 10"))
    );

    // carol follows nothing: she got neither.
    carol.assert_alive().await;
    assert!(metric(&gw, "notices_pushed_total").await >= 1);
    assert!(metric(&gw, "priority_pushed_total").await >= 1);

    // bob leaves: the `left` reaches him, then he follows g:big no more.
    let mut left = fixtures::message(&c, 8, &user("alice"));
    left.kind = MessageKind::Left;
    left.body = String::new();
    left.members = vec![user("bob")];
    left.priority = true;
    let mut batch = fixtures::messages_batch(&c, 7, 1, &user("alice"));
    batch.messages = vec![left.clone()];
    batch.members = vec![MemberChange {
        user: user("bob"),
        role: None,
        at: ConvSeq(8),
    }];
    gw.store.commit_conversation(batch).await.unwrap();
    notice(&gw, &c, 8, Some(left)).await;
    let p = bob.recv().await;
    assert_eq!(
        (&p["type"], &p["message"]["kind"]),
        (&json!("priority"), &json!("left"))
    );
    seqline_testkit::wait::until(WAIT, "bob's follow to go", || async {
        let f = gw.presence.followers(std::slice::from_ref(&c)).await.unwrap();
        f.is_empty().then_some(())
    })
    .await;
    notice(&gw, &c, 9, None).await;
    bob.assert_alive().await;
    // He must prove membership again: he is out, but may still pull up to
    // his `left`, never past it.
    let page = sync_conv(&mut bob, "g:big", 7, None).await;
    assert_eq!(
        (seqs(&page), &page["head"], &page["more"]),
        (vec![8], &json!(8), &json!(false)),
        "{page}"
    );
    let e = sync_conv(&mut bob, "g:big", 9, None).await;
    assert_eq!(e["code"], "not_member", "{e}");
}

#[tokio::test]
async fn a_former_member_pulls_and_polls_its_window_and_a_rejoin_skips_the_gap() {
    let gw = Gw::start().await;
    let c = seed(&gw, "g:churn", &["bob"], 5).await;
    membership(&gw, &c, 5, "bob", false).await; // 6: bob removed
    append(&gw, &c, 6, 2).await; // 7, 8: while he is out
    let (mut bob, _) = gw.login("bob", "phone").await;

    // A former member: up to the leave point, never past it.
    let page = sync_conv(&mut bob, "g:churn", 3, None).await;
    assert_eq!(
        (seqs(&page), &page["head"], &page["more"]),
        (vec![4, 5, 6], &json!(6), &json!(false)),
        "{page}"
    );
    let page = sync_conv(&mut bob, "g:churn", 3, Some(2)).await;
    assert_eq!((seqs(&page), &page["more"]), (vec![4, 5], &json!(true)));
    let page = sync_conv(&mut bob, "g:churn", 6, None).await;
    assert_eq!(
        (seqs(&page), &page["head"], &page["more"]),
        (vec![], &json!(6), &json!(false))
    );
    let e = sync_conv(&mut bob, "g:churn", 7, None).await;
    assert_eq!(e["code"], "not_member", "{e}");
    // A poll answers at once with the leave point as the head, also once
    // the cursor is there (nothing more will come), and follows nothing.
    for after in [3, 6] {
        bob.send(json!({"type": "poll", "req": 1, "wait_ms": 20000, "convs": [{"conv": "g:churn", "after": after}]}))
            .await;
        let p = bob.recv().await;
        assert_eq!(p["advanced"], json!([{"conv": "g:churn", "head": 6}]), "{p}");
    }
    assert!(gw
        .presence
        .followers(std::slice::from_ref(&c))
        .await
        .unwrap()
        .is_empty());
    // History stays for current members only.
    bob.send(json!({"type": "history", "req": 2, "conv": "g:churn"})).await;
    assert_eq!(bob.recv().await["code"], "not_member");

    // Re-added at 9: the gap 7..8 is never served to him.
    membership(&gw, &c, 8, "bob", true).await;
    append(&gw, &c, 9, 2).await; // 10, 11
    notice(&gw, &c, 11, None).await;
    let e = sync_conv(&mut bob, "g:churn", 7, None).await;
    assert_eq!(e["code"], "not_member", "{e}");
    let page = sync_conv(&mut bob, "g:churn", 8, None).await;
    assert_eq!((seqs(&page), &page["head"]), (vec![9, 10, 11], &json!(11)), "{page}");
    let page = sync_conv(&mut bob, "g:churn", 0, None).await;
    assert_eq!(
        (seqs(&page), &page["head"], &page["more"]),
        (vec![1, 2, 3, 4, 5, 6], &json!(6), &json!(false)),
        "a page stops at the end of the window"
    );

    // A poll waiting at the head ends when he is removed again: the
    // window closes at 12, above his cursor.
    bob.send(json!({"type": "poll", "req": 3, "wait_ms": 20000, "convs": [{"conv": "g:churn", "after": 11}]}))
        .await;
    seqline_testkit::wait::until(WAIT, "bob's follow", || async {
        let f = gw.presence.followers(std::slice::from_ref(&c)).await.unwrap();
        (!f.is_empty()).then_some(())
    })
    .await;
    let left = membership(&gw, &c, 11, "bob", false).await;
    notice(&gw, &c, 12, Some(left)).await;
    let (polled, _) = until(&mut bob, "polled").await;
    assert_eq!(polled["advanced"], json!([{"conv": "g:churn", "head": 12}]), "{polled}");
    let page = sync_conv(&mut bob, "g:churn", 11, None).await;
    assert_eq!((seqs(&page), &page["more"]), (vec![12], &json!(false)));
}

#[tokio::test]
async fn a_page_stops_at_a_switch_back_to_write_mode() {
    let gw = Gw::start().await;
    let c = seed(&gw, "g:switch", &["bob"], 5).await; // 1..5 in read mode
                                                      // 6 is the boundary back to write mode, 7..8 follow in write mode.
    gw.store
        .commit_conversation(fixtures::messages_batch(&c, 5, 3, &user("alice")))
        .await
        .unwrap();
    append(&gw, &c, 8, 1).await; // 9: read mode again
    gw.store
        .commit_conversation(fixtures::messages_batch(&c, 9, 2, &user("alice")))
        .await
        .unwrap(); // 10 (a boundary), 11
    let (mut bob, _) = gw.login("bob", "phone").await;
    let page = sync_conv(&mut bob, "g:switch", 3, None).await;
    assert_eq!(
        (seqs(&page), &page["head"], &page["more"]),
        (vec![4, 5, 6], &json!(11), &json!(true)),
        "only the boundary of the switch is pulled: {page}"
    );
    // A page starting at the boundary is the boundary alone.
    let page = sync_conv(&mut bob, "g:switch", 5, None).await;
    assert_eq!(seqs(&page), vec![6], "{page}");
    // From write mode on, a page runs to the next switch back.
    let page = sync_conv(&mut bob, "g:switch", 6, None).await;
    assert_eq!(seqs(&page), vec![7, 8, 9, 10], "{page}");
    let page = sync_conv(&mut bob, "g:switch", 10, None).await;
    assert_eq!((seqs(&page), &page["more"]), (vec![11], &json!(false)));
}

#[tokio::test]
async fn a_message_in_full_on_the_ordinary_topic_still_becomes_a_priority_frame() {
    // A fanout from before the priority lane had its own topic sent
    // announcements on `gw.<id>`: the gateway still pushes them.
    let gw = Gw::start().await;
    let c = seed(&gw, "g:big", &["bob"], 5).await;
    let (mut bob, _) = gw.login("bob", "phone").await;
    bob.send(json!({"type": "poll", "req": 1, "wait_ms": 0, "convs": [{"conv": "g:big", "after": 5}]}))
        .await;
    assert_eq!(bob.recv().await["advanced"], json!([]));
    let mut announcement = fixtures::message(&c, 6, &user("alice"));
    announcement.priority = true;
    append(&gw, &c, 5, 1).await;
    gw.deliver(GatewayRecord::Notice(Notice {
        conv: c.clone(),
        head: ConvSeq(6),
        message: Some(announcement),
    }))
    .await;
    let p = bob.recv().await;
    assert_eq!((&p["type"], &p["message"]["conv_seq"]), (&json!("priority"), &json!(6)));
}

#[tokio::test]
async fn read_marks_reach_the_other_devices_and_unread_counts_follow() {
    let gw = Gw::start().await;
    let c = seed(&gw, "g:big", &["bob"], 5).await;
    seed(&gw, "g:small", &["bob"], 2).await;
    let (mut phone, _) = gw.login("bob", "phone").await;
    let (mut laptop, _) = gw.login("bob", "laptop").await;

    phone
        .send(json!({"type": "read", "conv": "g:big", "conv_seq": 3}))
        .await;
    assert_eq!(
        laptop.recv().await,
        json!({"type": "read_mark", "conv": "g:big", "conv_seq": 3})
    );
    phone.assert_alive().await;
    assert_eq!(
        gw.store.read_positions(&user("bob")).await.unwrap(),
        vec![(c.clone(), ConvSeq(3))]
    );

    phone.send(json!({"type": "unread", "req": 11})).await;
    let page = phone.recv().await;
    assert_eq!(page["type"], "unread_page", "{page}");
    assert_eq!(page["req"], 11);
    let mut convs = page["convs"].as_array().unwrap().clone();
    convs.sort_by_key(|c| c["conv"].as_str().unwrap().to_string());
    assert_eq!(
        convs,
        vec![
            json!({"conv": "g:big", "head": 5, "read": 3, "unread": 2}),
            json!({"conv": "g:small", "head": 2, "read": 0, "unread": 2}),
        ]
    );

    // Bad reads change nothing and tell nobody.
    phone
        .send(json!({"type": "read", "conv": "g:big", "conv_seq": 99}))
        .await;
    let e = phone.expect_error("invalid_field").await;
    assert!(e["message"].as_str().unwrap().contains("beyond the head 5"), "{e}");
    phone
        .send(json!({"type": "read", "conv": "g:nowhere", "conv_seq": 1}))
        .await;
    phone.expect_error("not_member").await;
    phone.send(json!({"type": "read", "conv": "g:big"})).await;
    phone.expect_error("invalid_field").await;
    // Moving back is not an error, but it does not move the position.
    phone
        .send(json!({"type": "read", "conv": "g:big", "conv_seq": 1}))
        .await;
    phone.assert_alive().await;
    laptop.assert_alive().await;
    assert_eq!(
        gw.store.read_positions(&user("bob")).await.unwrap(),
        vec![(c.clone(), ConvSeq(3))]
    );
}

#[tokio::test]
async fn devices_pulling_the_same_new_message_cost_one_store_read() {
    const DEVICES: usize = 12;
    let gw = Gw::start_with(|c| c.conv_head_ttl = Duration::from_secs(60)).await;
    let names: Vec<String> = (0..DEVICES).map(|i| format!("m{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let c = seed(&gw, "g:huge", &refs, 5).await;
    let mut clients = Vec::new();
    for n in &names {
        let (mut cl, _) = gw.login(n, "phone").await;
        cl.send(json!({"type": "poll", "req": 1, "wait_ms": 0, "convs": [{"conv": "g:huge", "after": 5}]}))
            .await;
        assert_eq!(cl.recv().await["type"], "polled");
        clients.push(cl);
    }
    append(&gw, &c, 5, 1).await;
    notice(&gw, &c, 6, None).await;
    for cl in &mut clients {
        assert_eq!(cl.recv().await["type"], "notice");
    }
    let reads_before = metric(&gw, "conv_store_reads_total").await;
    let hits_before = metric(&gw, "conv_cache_hits_total").await;
    let joined_before = metric(&gw, "conv_reads_coalesced_total").await;
    // Every device pulls at once.
    for (i, cl) in clients.iter_mut().enumerate() {
        cl.send(json!({"type": "sync_conv", "req": i, "conv": "g:huge", "after": 5}))
            .await;
    }
    for cl in &mut clients {
        let page = cl.recv().await;
        assert_eq!((seqs(&page), &page["head"]), (vec![6], &json!(6)), "{page}");
    }
    let reads = metric(&gw, "conv_store_reads_total").await - reads_before;
    let hits = metric(&gw, "conv_cache_hits_total").await - hits_before;
    let joined = metric(&gw, "conv_reads_coalesced_total").await - joined_before;
    assert_eq!(reads, 1, "one store read for {DEVICES} devices");
    assert_eq!(hits + joined, DEVICES as u64 - 1, "hits {hits}, joined {joined}");
    // Pulling the same again costs nothing.
    for cl in &mut clients {
        let page = sync_conv(cl, "g:huge", 5, None).await;
        assert_eq!(seqs(&page), vec![6]);
    }
    assert_eq!(metric(&gw, "conv_store_reads_total").await - reads_before, 1);
    // An older page is read once, then joins the tail.
    for cl in &mut clients {
        let page = sync_conv(cl, "g:huge", 4, None).await;
        assert_eq!(seqs(&page), vec![5, 6]);
    }
    assert_eq!(metric(&gw, "conv_store_reads_total").await - reads_before, 2);
    assert!(metric(&gw, "conv_cache_bytes").await > 0);
}

#[tokio::test]
async fn the_name_claim_travels_in_every_published_command() {
    let gw = Gw::start().await;
    let mut inbound = gw.inbound().await;
    let token = gw
        .key
        .sign_named(&user("alice"), &device("phone"), Some("Alice A."), now_secs(), 3600);
    let mut c = gw.connect().await;
    c.send(json!({"type": "hello", "token": token})).await;
    assert_eq!(c.recv().await["type"], "welcome");
    c.send(json!({"type": "send", "id": uuid::Uuid::new_v4(), "conv": "g:room", "body": "hi"}))
        .await;
    let Command::Send(s) = inbound.next().await else {
        panic!("not a send")
    };
    assert_eq!(s.origin.name, "Alice A.");

    // The HTTP API too (the answer times out: no sequencer runs here).
    let addr = gw.addr;
    let body = br#"{"kind":"group","id":"g:named","members":["bob"]}"#;
    let t = token.clone();
    let call = tokio::spawn(async move { http(addr, "POST", "/v1/conversations", Some(&t), Some(body)).await });
    let Command::Create(cr) = inbound.next().await else {
        panic!("not a create")
    };
    assert_eq!(cr.origin.name, "Alice A.");
    call.abort();

    // Without the claim the name is empty.
    let (mut plain, _) = gw.login("bob", "phone").await;
    plain
        .send(json!({"type": "send", "id": uuid::Uuid::new_v4(), "conv": "g:room", "body": "hi"}))
        .await;
    let Command::Send(s) = inbound.next().await else {
        panic!("not a send")
    };
    assert_eq!(s.origin.name, "");
}
