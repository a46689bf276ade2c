//! Replays of deliveries. A message stored by a sequencer that died before
//! its deliveries left reaches every member's timeline once and in order
//! (the next owner replays it); a resend of a message the running sequencer
//! sequenced itself costs no deliveries at all (they left with the batch).

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use seqline_core::failpoint::{self, names};
use seqline_core::ids::{ClientMsgId, UserSeq};
use seqline_core::model::Outcome;
use seqline_core::ports::{LogConsumer, Store};
use seqline_core::records::{LogRecord, Topic};

/// Every delivery up to and including the last one of message `last`;
/// returns their client ids.
async fn deliveries_until(consumer: &mut dyn LogConsumer, last: ClientMsgId, members: usize) -> Vec<ClientMsgId> {
    let mut ids = Vec::new();
    read_deliveries(consumer, |d| {
        ids.push(d.message.client_msg_id);
        ids.iter().filter(|id| **id == last).count() < members
    })
    .await;
    ids
}

async fn conv_seqs_of(rig: &Rig, u: &str) -> Vec<u64> {
    let entries = rig.store.timeline_after(&user(u), UserSeq(0), 100_000).await.unwrap();
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
    tokio::time::timeout(WAIT, gate.reached())
        .await
        .expect("the sequencer stores x");
    // The store write is only ordered so far; the crash comes after the
    // journal reached the disk with it but before the outputs were written.
    rig.store.flush().await.unwrap();
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
    assert!(
        ids.iter().filter(|id| **id == x).count() >= 2,
        "x was replayed to both members"
    );
    for u in ["alice", "bob"] {
        rig.timeline_reaches(u, 3).await;
        assert_eq!(conv_seqs_of(&rig, u).await, [1, 2, 3], "{u}: x once, before y");
    }
    rig.stop().await;
}

/// Waits until the sequencer has answered every id in `ids` (any outcome).
async fn receipts(rig: &mut Rig, ids: &[ClientMsgId]) -> Vec<Outcome> {
    let mut out = Vec::new();
    for id in ids {
        out.push(rig.receipt(*id).await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashes_at_every_failure_point_with_resends_lose_and_reorder_nothing() {
    const POINTS: [&str; 4] = [
        names::SEQUENCER_BEFORE_STORE,
        names::SEQUENCER_AFTER_STORE,
        names::TIMELINE_AFTER_STORE,
        names::WORKER_BEFORE_OFFSET_COMMIT,
    ];
    let mut rig = Rig::start(1).await;
    let (create, rec) = rig.create("g:pair", "alice", &["bob"]);
    rig.append(&Topic::Inbound, vec![rec]).await;
    assert_eq!(rig.receipt(create).await, sequenced(1));
    let mut unanswered: Vec<ClientMsgId> = Vec::new();
    let mut sent: Vec<ClientMsgId> = Vec::new();
    let mut crashes = 0;
    let rounds: usize = std::env::var("REPLAY_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(40);
    for round in 0..rounds {
        // Some new messages from both members, and every earlier one of
        // this round resent (as clients do after a reconnect).
        let gate = failpoint::pause_next(POINTS[round % POINTS.len()]);
        let mut batch = Vec::new();
        for i in 0..(1 + round % 3) {
            let who = if (round + i) % 2 == 0 { "alice" } else { "bob" };
            let (id, rec) = rig.send("g:pair", who, &format!("r{round} m{i}"));
            batch.push(rec);
            sent.push(id);
            unanswered.push(id);
        }
        rig.append(&Topic::Inbound, batch).await;
        let reached = tokio::time::timeout(std::time::Duration::from_secs(2), gate.reached()).await;
        if reached.is_ok() {
            rig.crash_and_restart();
            crashes += 1;
        }
        gate.release();
        let now = seqline_core::model::now_ms();
        let resends: Vec<LogRecord> = sent
            .iter()
            .rev()
            .take(3)
            .map(|id| {
                rig.send_as(
                    "g:pair",
                    if round % 2 == 0 { "alice" } else { "bob" },
                    *id,
                    "resend",
                    now,
                )
            })
            .collect();
        rig.append(&Topic::Inbound, resends).await;
    }
    assert!(
        crashes * 4 >= rounds * 3,
        "only {crashes} of {rounds} rounds crashed at their point"
    );
    // Every message got exactly one number; the store holds 1..head.
    let outcomes = receipts(&mut rig, &unanswered).await;
    let head = rig.head("g:pair").await;
    let mut seqs: Vec<u64> = outcomes
        .iter()
        .map(|o| match o {
            Outcome::Sequenced { conv_seq } => conv_seq.0,
            other => panic!("{other:?}"),
        })
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (2..=head).collect::<Vec<_>>(), "each message once, no gap");
    // Both timelines hold every message once, in order.
    for u in ["alice", "bob"] {
        rig.timeline_reaches(u, head).await;
        assert_eq!(conv_seqs_of(&rig, u).await, (1..=head).collect::<Vec<_>>(), "{u}");
    }
    rig.stop().await;
}
