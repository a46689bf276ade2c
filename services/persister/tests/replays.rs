//! Replays of deliveries. A message stored by a sequencer that died before
//! its deliveries left reaches every member's timeline once and in order
//! (the next owner replays it); a resend of a message the running sequencer
//! sequenced itself costs no deliveries at all (they left with the batch).

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use seqline_core::failpoint::{self, names};
use seqline_core::ids::{ClientMsgId, ConvSeq, UserSeq};
use seqline_core::model::Outcome;
use seqline_core::ports::{Log, LogConsumer, Polled, Store};
use seqline_core::records::{LogRecord, Topic};

fn sequenced(n: u64) -> Outcome {
    Outcome::Sequenced { conv_seq: ConvSeq(n) }
}

/// A reader of the (single-partition) deliveries topic that holds its
/// records back from retention (it has committed).
async fn tap(rig: &Rig) -> Box<dyn LogConsumer> {
    let mut consumer = rig.log.subscribe("test-deliveries", &Topic::Deliveries).await.unwrap();
    assert!(matches!(consumer.poll(1).await.unwrap(), Polled::Assigned(_)));
    consumer.commit(0, 0).await.unwrap();
    consumer
}

/// Every delivery up to and including the last one of message `last`;
/// returns their client ids.
async fn deliveries_until(consumer: &mut dyn LogConsumer, last: ClientMsgId, members: usize) -> Vec<ClientMsgId> {
    let end = tokio::time::Instant::now() + WAIT;
    let mut ids = Vec::new();
    while ids.iter().filter(|id| **id == last).count() < members {
        let polled = tokio::time::timeout_at(end, consumer.poll(100))
            .await
            .expect("the deliveries in time")
            .unwrap();
        if let Polled::Records { records, .. } = polled {
            for r in records {
                if let Ok(LogRecord::Delivery(d)) = r.record {
                    ids.push(d.message.client_msg_id);
                }
            }
        }
    }
    ids
}

async fn conv_seqs_of(rig: &Rig, u: &str) -> Vec<u64> {
    let entries = rig.store.timeline_after(&user(u), UserSeq(0), 100).await.unwrap();
    entries.iter().map(|e| e.message.conv_seq.0).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resends_of_a_message_sequenced_by_the_running_sequencer_are_not_replayed() {
    let mut rig = Rig::start(1).await;
    let mut tap = tap(&rig).await;
    let (create, rec) = rig.create("g:room", "alice", &["bob"]);
    rig.append(&Topic::Inbound, vec![rec]).await;
    assert_eq!(rig.receipt(create).await, sequenced(1));
    let (x, rec) = rig.send("g:room", "bob", "x");
    rig.append(&Topic::Inbound, vec![rec]).await;
    assert_eq!(rig.receipt(x).await, sequenced(2));
    for _ in 0..3 {
        let now = seqline_core::model::now_ms();
        rig.append(&Topic::Inbound, vec![rig.send_as("g:room", "bob", x, "x", now)])
            .await;
        assert_eq!(rig.receipt(x).await, sequenced(2), "a resend gets the original number");
    }
    let (y, rec) = rig.send("g:room", "bob", "y");
    rig.append(&Topic::Inbound, vec![rec]).await;
    assert_eq!(rig.receipt(y).await, sequenced(3));

    let ids = deliveries_until(tap.as_mut(), y, 2).await;
    let of_x = ids.iter().filter(|id| **id == x).count();
    assert_eq!(of_x, 2, "one delivery per member, none for the three resends");
    for u in ["alice", "bob"] {
        rig.timeline_reaches(u, 3).await;
        assert_eq!(conv_seqs_of(&rig, u).await, [1, 2, 3], "{u}");
    }
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_stored_by_a_sequencer_that_died_before_its_deliveries_left_reaches_every_timeline_once() {
    let mut rig = Rig::start(1).await;
    let mut tap = tap(&rig).await;
    let (create, rec) = rig.create("g:room", "alice", &["bob"]);
    rig.append(&Topic::Inbound, vec![rec]).await;
    assert_eq!(rig.receipt(create).await, sequenced(1));

    // Stored, then the process dies before deliveries and receipt leave.
    let gate = failpoint::pause_next(names::SEQUENCER_AFTER_STORE);
    let (x, rec) = rig.send("g:room", "bob", "x");
    rig.append(&Topic::Inbound, vec![rec]).await;
    tokio::time::timeout(WAIT, gate.reached()).await.expect("the sequencer stores x");
    assert_eq!(rig.head("g:room").await, 2, "x is stored");
    rig.crash_and_restart();
    gate.release();

    // The next sequencer reads x again (its offset was never committed),
    // finds it stored, and replays its deliveries; a resend changes nothing.
    assert_eq!(rig.receipt(x).await, sequenced(2));
    let now = seqline_core::model::now_ms();
    rig.append(&Topic::Inbound, vec![rig.send_as("g:room", "bob", x, "x", now)])
        .await;
    assert_eq!(rig.receipt(x).await, sequenced(2));
    let (y, rec) = rig.send("g:room", "alice", "y");
    rig.append(&Topic::Inbound, vec![rec]).await;
    assert_eq!(rig.receipt(y).await, sequenced(3));

    let ids = deliveries_until(tap.as_mut(), y, 2).await;
    assert!(ids.iter().filter(|id| **id == x).count() >= 2, "x was replayed to both members");
    for u in ["alice", "bob"] {
        rig.timeline_reaches(u, 3).await;
        assert_eq!(conv_seqs_of(&rig, u).await, [1, 2, 3], "{u}: x once, before y");
    }
    rig.stop().await;
}
