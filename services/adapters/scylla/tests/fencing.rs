#![allow(clippy::unwrap_used)]
//! Fencing on a real CQL server (the shared Cassandra node): two
//! `ScyllaStore`s, each with its own session as two persister processes
//! would have, race on one head. The conditional write (LWT) lets exactly
//! one claim each range; the other gets `Error::Fenced` and leaves nothing
//! behind, so the stored sequence has no duplicate and no gap.

mod common;

use seqline_core::ids::{ClientMsgId, ConvSeq, UserSeq};
use seqline_core::model::Outcome;
use seqline_core::ports::{ConversationBatch, Store, TimelineBatch};
use seqline_core::Error;
use seqline_scylla::{PaxosCounts, ScyllaStore};
use seqline_testkit::fixtures::{conversation, create_batch, messages_batch, timeline_batch, user};
use std::collections::HashSet;
use std::sync::Arc;
use tokio::sync::Barrier;

async fn two_stores() -> (ScyllaStore, ScyllaStore) {
    let options = common::shared(common::KEYSPACE);
    let a = ScyllaStore::connect(options.clone()).await.unwrap();
    let b = ScyllaStore::connect(options).await.unwrap();
    (a, b)
}

/// One round: both writers load the same head, then both claim the next
/// range at once. Returns which won (0 or 1) and both batches.
async fn race_round(
    stores: [&ScyllaStore; 2],
    conv: &seqline_core::ids::ConversationId,
) -> (usize, [ConversationBatch; 2]) {
    let sender = user("writer");
    let barrier = Arc::new(Barrier::new(2));
    let mut tasks = Vec::new();
    for store in stores {
        let (store, conv, sender, barrier) = (store.clone(), conv.clone(), sender.clone(), Arc::clone(&barrier));
        tasks.push(tokio::spawn(async move {
            let state = store.load_conversation(&conv).await.unwrap().unwrap();
            let batch = messages_batch(&conv, state.head.0, 3, &sender);
            barrier.wait().await;
            let result = store.commit_conversation(batch.clone()).await;
            (state.head, batch, result)
        }));
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    let (b, a) = (outcomes.pop().unwrap(), outcomes.pop().unwrap());
    assert_eq!(a.0, b.0, "both writers loaded the same head");
    let winner = match (&a.2, &b.2) {
        (Ok(()), Err(Error::Fenced(_))) => 0,
        (Err(Error::Fenced(_)), Ok(())) => 1,
        other => panic!("expected one win and one fence from head {}, got {other:?}", a.0 .0),
    };
    (winner, [a.1, b.1])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_connections_race_one_conversation_head() {
    let (a, b) = two_stores().await;
    let (conv, alice) = (conversation(), user("alice"));
    a.commit_conversation(create_batch(&conv, &alice, &[])).await.unwrap();
    let mut wins = [0usize; 2];
    let mut stored_ids = Vec::new();
    for round in 0..8 {
        let (winner, batches) = race_round([&a, &b], &conv).await;
        wins[winner] += 1;
        let (won, lost) = (&batches[winner], &batches[1 - winner]);
        // Both stores see the winner's messages; none of the loser's rows.
        for reader in [&a, &b] {
            let stored = reader.messages_after(&conv, won.expected_head, 10).await.unwrap();
            assert_eq!(stored, won.messages, "round {round}: the winner's messages are stored");
            for (id, _) in &lost.dedup {
                assert_eq!(
                    reader.dedup(&conv, *id).await.unwrap(),
                    None,
                    "round {round}: the loser wrote nothing"
                );
            }
            for (id, outcome) in &won.dedup {
                assert_eq!(reader.dedup(&conv, *id).await.unwrap().as_ref(), Some(outcome));
            }
        }
        stored_ids.extend(won.messages.iter().map(|m| m.client_msg_id));
        // The fenced writer retries from where it stands: fenced again.
        let stale = [&a, &b][1 - winner].commit_conversation(lost.clone()).await;
        assert!(
            matches!(stale, Err(Error::Fenced(_))),
            "a stale retry is fenced, got {stale:?}"
        );
    }
    let head = a.conversation_head(&conv).await.unwrap().unwrap();
    assert_eq!(head, ConvSeq(24));
    let all = b.messages_after(&conv, ConvSeq(0), 100).await.unwrap();
    let seqs: Vec<u64> = all.iter().map(|m| m.conv_seq.0).collect();
    assert_eq!(seqs, (1..=24).collect::<Vec<_>>(), "no duplicate, no gap");
    let ids: Vec<ClientMsgId> = all.iter().map(|m| m.client_msg_id).collect();
    assert_eq!(ids, stored_ids, "exactly the winners' messages, in order");
    println!("wins per connection: {wins:?}");
}

/// Many rounds of free-running writers: each loads, claims, and on a fence
/// reloads and tries again, until 40 messages are acknowledged in all. The
/// acknowledged messages are exactly the stored ones, numbered 1..=40.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn free_running_writers_leave_no_duplicate_or_gap() {
    const TOTAL: u64 = 40;
    let (a, b) = two_stores().await;
    let (conv, alice) = (conversation(), user("alice"));
    a.commit_conversation(create_batch(&conv, &alice, &[])).await.unwrap();
    let mut tasks = Vec::new();
    for store in [a.clone(), b.clone()] {
        let (conv, alice) = (conv.clone(), alice.clone());
        tasks.push(tokio::spawn(async move {
            let (mut acked, mut fenced) = (Vec::new(), 0u32);
            loop {
                let head = store.load_conversation(&conv).await.unwrap().unwrap().head.0;
                if head >= TOTAL {
                    return (acked, fenced);
                }
                let batch = messages_batch(&conv, head, 2.min(TOTAL - head), &alice);
                match store.commit_conversation(batch.clone()).await {
                    Ok(()) => acked.extend(batch.messages),
                    Err(Error::Fenced(_)) => fenced += 1,
                    Err(e) => panic!("commit from head {head}: {e}"),
                }
            }
        }));
    }
    let mut acked = Vec::new();
    let mut fences = 0;
    for task in tasks {
        let (mine, fenced) = task.await.unwrap();
        acked.extend(mine);
        fences += fenced;
    }
    acked.sort_by_key(|m| m.conv_seq);
    let stored = a.messages_after(&conv, ConvSeq(0), 100).await.unwrap();
    assert_eq!(stored.len() as u64, TOTAL);
    assert_eq!(stored, acked, "the stored messages are exactly the acknowledged ones");
    let unique: HashSet<ClientMsgId> = stored.iter().map(|m| m.client_msg_id).collect();
    assert_eq!(unique.len() as u64, TOTAL, "no message twice");
    for m in &stored {
        assert_eq!(
            b.dedup(&conv, m.client_msg_id).await.unwrap(),
            Some(Outcome::Sequenced { conv_seq: m.conv_seq })
        );
    }
    println!("{TOTAL} messages acknowledged, {fences} fenced attempts");
}

/// The same race on a user's timeline head.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_connections_race_one_timeline_head() {
    let (a, b) = two_stores().await;
    let (bob, conv) = (user("bob"), conversation());
    let mut expected = Vec::new();
    for round in 0..6u64 {
        let barrier = Arc::new(Barrier::new(2));
        let mut tasks = Vec::new();
        for store in [a.clone(), b.clone()] {
            let (bob, conv, barrier) = (bob.clone(), conv.clone(), Arc::clone(&barrier));
            tasks.push(tokio::spawn(async move {
                let head = store.load_timeline(&bob).await.unwrap().head.0;
                let batch: TimelineBatch = timeline_batch(&bob, head, &conv, head + 1, 2);
                barrier.wait().await;
                let result = store.commit_timeline(batch.clone()).await;
                (batch, result)
            }));
        }
        let (second, first) = (tasks.pop().unwrap().await.unwrap(), tasks.pop().unwrap().await.unwrap());
        let won = match (&first.1, &second.1) {
            (Ok(()), Err(Error::Fenced(_))) => first.0,
            (Err(Error::Fenced(_)), Ok(())) => second.0,
            other => panic!("round {round}: expected one win and one fence, got {other:?}"),
        };
        expected.extend(won.entries);
    }
    assert_eq!(a.timeline_head(&bob).await.unwrap(), UserSeq(12));
    let stored = b.timeline_after(&bob, UserSeq(0), 100).await.unwrap();
    assert_eq!(
        stored, expected,
        "exactly the winners' entries, 1..=12, no duplicate or gap"
    );
}

/// What `store` did between two counts: (serial reads, conditional writes).
fn paxos_since(store: &ScyllaStore, before: PaxosCounts) -> (u64, u64) {
    let now = store.paxos_counts();
    (
        now.serial_reads - before.serial_reads,
        now.conditional_writes - before.conditional_writes,
    )
}

/// The head cache (each store remembers the head it last committed, and
/// claims from it without a serial read): a writer whose remembered head
/// went stale because another store advanced the head is fenced, and
/// wrote nothing; after a load it commits from the head it loaded.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stale_cached_conversation_head_is_fenced_and_a_reload_commits() {
    let (a, b) = two_stores().await;
    let (conv, alice, bob) = (conversation(), user("alice"), user("bob"));
    a.commit_conversation(create_batch(&conv, &alice, &[])).await.unwrap();

    // a goes on from the head it created: one LWT, no serial read.
    let before = a.paxos_counts();
    a.commit_conversation(messages_batch(&conv, 0, 3, &alice))
        .await
        .unwrap();
    assert_eq!(paxos_since(&a, before), (0, 1), "a commit from the remembered head");

    // b takes the key over: load, then commit 3 → 6 from the loaded head.
    assert_eq!(b.load_conversation(&conv).await.unwrap().unwrap().head, ConvSeq(3));
    let before = b.paxos_counts();
    let b_batch = messages_batch(&conv, 3, 3, &bob);
    b.commit_conversation(b_batch.clone()).await.unwrap();
    assert_eq!(paxos_since(&b, before), (0, 1), "a commit from the loaded head");

    // a still remembers head 3: its claim is lost, it reads the row and is
    // fenced; none of its rows is anywhere.
    let before = a.paxos_counts();
    let stale = messages_batch(&conv, 3, 3, &alice);
    let result = a.commit_conversation(stale.clone()).await;
    assert!(
        matches!(result, Err(Error::Fenced(_))),
        "a stale cached head is fenced, got {result:?}"
    );
    assert_eq!(paxos_since(&a, before), (1, 1), "the lost claim, then the serial read");
    for (id, _) in &stale.dedup {
        assert_eq!(
            b.dedup(&conv, *id).await.unwrap(),
            None,
            "the fenced writer wrote nothing"
        );
    }
    // The entry is gone: a retry reads the row first, and is fenced again.
    let before = a.paxos_counts();
    let result = a.commit_conversation(stale).await;
    assert!(matches!(result, Err(Error::Fenced(_))), "got {result:?}");
    assert_eq!(
        paxos_since(&a, before),
        (1, 0),
        "no claim from a head known to be stale"
    );

    // a regains the key: load, then commit 6 → 9 from the loaded head.
    assert_eq!(a.load_conversation(&conv).await.unwrap().unwrap().head, ConvSeq(6));
    let before = a.paxos_counts();
    let a_batch = messages_batch(&conv, 6, 3, &alice);
    a.commit_conversation(a_batch.clone()).await.unwrap();
    assert_eq!(paxos_since(&a, before), (0, 1));

    // Now b's entry (head 6) is the stale one: fenced; a load puts it right.
    let result = b.commit_conversation(messages_batch(&conv, 6, 3, &bob)).await;
    assert!(matches!(result, Err(Error::Fenced(_))), "got {result:?}");
    assert_eq!(b.load_conversation(&conv).await.unwrap().unwrap().head, ConvSeq(9));
    let last = messages_batch(&conv, 9, 3, &bob);
    b.commit_conversation(last.clone()).await.unwrap();

    // Retrying a batch that was committed is fenced, as without the cache.
    let result = b.commit_conversation(last.clone()).await;
    assert!(matches!(result, Err(Error::Fenced(_))), "got {result:?}");

    for reader in [&a, &b] {
        assert_eq!(reader.conversation_head(&conv).await.unwrap(), Some(ConvSeq(12)));
        let stored = reader.messages_after(&conv, ConvSeq(3), 100).await.unwrap();
        let want: Vec<_> = [
            b_batch.messages.clone(),
            a_batch.messages.clone(),
            last.messages.clone(),
        ]
        .concat();
        assert_eq!(stored, want, "exactly the committed batches, 4..=12");
    }
}

/// The same for a timeline head, which has no create: the first batch
/// (from head 0) takes the full path, the next ones the remembered head.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stale_cached_timeline_head_is_fenced_and_a_reload_commits() {
    let (a, b) = two_stores().await;
    let (carol, conv) = (user("carol"), conversation());
    let mut expected = Vec::new();
    let commit = |store: &ScyllaStore, head: u64| {
        let batch = timeline_batch(&carol, head, &conv, head + 1, 2);
        let store = store.clone();
        async move { (store.commit_timeline(batch.clone()).await, batch) }
    };

    let before = a.paxos_counts();
    let (result, batch) = commit(&a, 0).await;
    result.unwrap();
    expected.extend(batch.entries);
    assert_eq!(
        paxos_since(&a, before),
        (1, 1),
        "the first batch reads the (missing) row"
    );
    let before = a.paxos_counts();
    let (result, batch) = commit(&a, 2).await;
    result.unwrap();
    expected.extend(batch.entries);
    assert_eq!(paxos_since(&a, before), (0, 1), "the next from the remembered head");

    // b takes over and advances 4 → 6; a, still at 4, is fenced.
    assert_eq!(b.load_timeline(&carol).await.unwrap().head, UserSeq(4));
    let (result, batch) = commit(&b, 4).await;
    result.unwrap();
    expected.extend(batch.entries);
    let (result, _) = commit(&a, 4).await;
    assert!(
        matches!(result, Err(Error::Fenced(_))),
        "a stale cached head is fenced, got {result:?}"
    );

    // a regains the user after a load and goes on from 6.
    assert_eq!(a.load_timeline(&carol).await.unwrap().head, UserSeq(6));
    let before = a.paxos_counts();
    let (result, batch) = commit(&a, 6).await;
    result.unwrap();
    expected.extend(batch.entries);
    assert_eq!(paxos_since(&a, before), (0, 1));

    assert_eq!(b.timeline_head(&carol).await.unwrap(), UserSeq(8));
    assert_eq!(b.timeline_after(&carol, UserSeq(0), 100).await.unwrap(), expected);
}
