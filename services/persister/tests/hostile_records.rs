//! Records on the persister's topics that no well-behaved gateway writes: a
//! resend with another body, a record on a partition its key does not map
//! to, oversized records, junk and records of the wrong type. Each gets a
//! clear answer (a receipt or a dead letter with a reason), the store keeps
//! only what it should, and the partition flows on.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use seqline_core::ids::ClientMsgId;
use seqline_core::model::{Outcome, RefusalCode};
use seqline_core::ports::Store;
use seqline_core::records::{Delivery, LogRecord, Topic};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resent_id_with_another_body_keeps_the_original() {
    let mut rig = Rig::start(1).await;
    let (create, rec) = rig.create("g:room", "alice", &["bob"]);
    rig.append(&Topic::Inbound, vec![rec]).await;
    assert_eq!(rig.receipt(create).await, sequenced(1));
    let id = ClientMsgId::random();
    let now = seqline_core::model::now_ms();
    rig.append(&Topic::Inbound, vec![rig.send_as("g:room", "bob", id, "original", now)])
        .await;
    assert_eq!(rig.receipt(id).await, sequenced(2));
    // The same id again, with another body: the original number, nothing new.
    rig.append(
        &Topic::Inbound,
        vec![rig.send_as("g:room", "bob", id, "rewritten", now)],
    )
    .await;
    assert_eq!(rig.receipt(id).await, sequenced(2));
    let (next, rec) = rig.send("g:room", "bob", "next");
    rig.append(&Topic::Inbound, vec![rec]).await;
    assert_eq!(rig.receipt(next).await, sequenced(3), "numbers stay contiguous");
    let stored = rig.messages("g:room").await;
    let bodies: Vec<(u64, &str)> = stored.iter().map(|m| (m.conv_seq.0, m.body.as_str())).collect();
    assert_eq!(bodies[1..], [(2, "original"), (3, "next")], "{bodies:?}");
    // Each member's timeline got the message once, with its original body.
    rig.timeline_reaches("bob", 3).await;
    let entries = rig
        .store
        .timeline_after(&user("bob"), seqline_core::UserSeq(0), 10)
        .await
        .unwrap();
    assert!(entries.iter().all(|e| e.message.body != "rewritten"), "{entries:?}");
    rig.no_more_dead_letters().await;
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_on_a_partition_its_key_does_not_map_to_is_sequenced_by_its_conversation() {
    let mut rig = Rig::start(2).await;
    let room = conv_on(0, 2);
    let (create, rec) = rig.create(&room, "alice", &["bob"]);
    rig.append(&Topic::Inbound, vec![rec]).await;
    assert_eq!(rig.receipt(create).await, sequenced(1));
    // Keyed (placed) as if for another conversation: partition 1.
    let (stray, rec) = rig.send(&room, "bob", "stray");
    rig.inject(&Topic::Inbound, 1, rec).await;
    let (other_create, rec) = rig.create(&conv_on(1, 2), "carol", &[]);
    rig.append(&Topic::Inbound, vec![rec]).await;
    assert_eq!(rig.receipt(stray).await, sequenced(2));
    // The partition flows on, and the conversation's numbers stay contiguous.
    assert_eq!(rig.receipt(other_create).await, sequenced(1));
    let (good, rec) = rig.send(&room, "bob", "good");
    rig.append(&Topic::Inbound, vec![rec]).await;
    assert_eq!(rig.receipt(good).await, sequenced(3));
    let seqs: Vec<u64> = rig.messages(&room).await.iter().map(|m| m.conv_seq.0).collect();
    assert_eq!(seqs, [1, 2, 3]);
    rig.no_more_dead_letters().await;
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_records_are_refused_or_dead_lettered_and_the_partition_flows_on() {
    let mut rig = Rig::start(1).await;
    let (create, rec) = rig.create("g:room", "alice", &["bob"]);
    rig.append(&Topic::Inbound, vec![rec]).await;
    assert_eq!(rig.receipt(create).await, sequenced(1));
    // A 1 MiB body, written past the gateway (which allows 16 KiB).
    let (big, rec) = rig.send("g:room", "bob", &"x".repeat(1 << 20));
    // A group of 100 001 members (about 1 MiB of ids).
    let members: Vec<String> = (0..100_001).map(|i| format!("u{i}")).collect();
    let members: Vec<&str> = members.iter().map(String::as_str).collect();
    let (crowd, crowd_rec) = rig.create("g:crowd", "alice", &members);
    rig.append(&Topic::Inbound, vec![rec, crowd_rec]).await;
    // 2 MiB that are not a record at all.
    let junk_at = rig
        .log
        .inject_raw_for_tests(&Topic::Inbound, 0, vec![0xff; 2 << 20])
        .await
        .unwrap();
    let (good, rec) = rig.send("g:room", "bob", "small");
    rig.append(&Topic::Inbound, vec![rec]).await;

    match rig.receipt(big).await {
        Outcome::Refused { code, reason } => {
            assert_eq!(code, RefusalCode::Invalid);
            assert!(reason.contains("too large"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        rig.receipt(crowd).await,
        Outcome::Refused {
            code: RefusalCode::TooLarge,
            ..
        }
    ));
    let dead = rig.dead_letters(1).await;
    assert_eq!(
        (dead[0].topic.as_str(), dead[0].partition, dead[0].offset),
        ("inbound", 0, junk_at)
    );
    assert!(!dead[0].reason.is_empty());
    assert!(dead[0].raw.len() < 1024, "the dead letter does not copy the 2 MiB");
    assert_eq!(rig.receipt(good).await, sequenced(2), "the partition flows on");
    let bodies: Vec<String> = rig.messages("g:room").await.into_iter().map(|m| m.body).collect();
    assert_eq!(bodies.len(), 2);
    assert_eq!(bodies[1], "small");
    assert_eq!(rig.head("g:crowd").await, 0, "the oversized group was not created");
    rig.no_more_dead_letters().await;
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_and_wrong_type_records_on_persister_topics_are_dead_lettered() {
    let mut rig = Rig::start(2).await;
    // Partition 1, so a dead letter naming partition 0 would be caught.
    let room = conv_on(1, 2);
    let (create, rec) = rig.create(&room, "alice", &["bob"]);
    rig.append(&Topic::Inbound, vec![rec]).await;
    assert_eq!(rig.receipt(create).await, sequenced(1));
    rig.timeline_reaches("bob", 1).await;

    // On inbound: junk, then a record of the wrong type, then a good send.
    let junk_at = rig
        .log
        .inject_raw_for_tests(&Topic::Inbound, 1, b"\xffnot a record".to_vec())
        .await
        .unwrap();
    let message = rig.messages(&room).await.remove(0);
    let delivery = LogRecord::Delivery(Delivery {
        user: user("bob"),
        message: message.clone(),
    });
    let wrong_at = rig.inject(&Topic::Inbound, 1, delivery).await;
    let (good, rec) = rig.send(&room, "bob", "after the junk");
    rig.append(&Topic::Inbound, vec![rec]).await;
    assert_eq!(rig.receipt(good).await, sequenced(2));
    let mut dead = rig.dead_letters(2).await;
    dead.sort_by_key(|d| d.offset);
    let places: Vec<(&str, u32, u64)> = dead.iter().map(|d| (d.topic.as_str(), d.partition, d.offset)).collect();
    assert_eq!(places, [("inbound", 1, junk_at), ("inbound", 1, wrong_at)]);
    assert!(
        dead[1].reason.contains("unexpected record on inbound"),
        "{}",
        dead[1].reason
    );

    // On deliveries: junk and a command; the timeline writer goes on to the
    // next delivery (of the good send above, then of one more).
    let junk_at = rig
        .log
        .inject_raw_for_tests(&Topic::Deliveries, 0, b"\x00\x01junk".to_vec())
        .await
        .unwrap();
    let (stray, rec) = rig.send(&room, "bob", "a command on deliveries");
    let wrong_at = rig.inject(&Topic::Deliveries, 0, rec).await;
    let (last, rec) = rig.send(&room, "bob", "last");
    rig.append(&Topic::Inbound, vec![rec]).await;
    assert_eq!(rig.receipt(last).await, sequenced(3));
    rig.timeline_reaches("bob", 3).await;
    let mut dead = rig.dead_letters(2).await;
    dead.sort_by_key(|d| d.offset);
    let places: Vec<(&str, u32, u64)> = dead.iter().map(|d| (d.topic.as_str(), d.partition, d.offset)).collect();
    assert_eq!(places, [("deliveries", 0, junk_at), ("deliveries", 0, wrong_at)]);
    assert!(dead.iter().all(|d| !d.reason.is_empty()));
    // The stray command was not sequenced from the wrong topic.
    let bodies: Vec<String> = rig.messages(&room).await.into_iter().map(|m| m.body).collect();
    assert!(!bodies.iter().any(|b| b == "a command on deliveries"), "{bodies:?}");
    let _ = stray;
    rig.no_more_dead_letters().await;
    rig.stop().await;
}
