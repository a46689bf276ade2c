//! Embedded-only behaviour: group commit, retention, restart of the store.

#![allow(clippy::unwrap_used)] // test support code outside #[test] fns

mod common;

use common::{test_options, TempDir};
use seqline_core::ids::{ConvSeq, GatewayId, UserSeq};
use seqline_core::ports::{Log, Polled, Store};
use seqline_core::records::Topic;
use seqline_embedded::{EmbeddedEngine, EmbeddedLog, EmbeddedStore, LogOptions};
use seqline_testkit::fixtures::{
    conversation, create_batch, device, keyed_record, messages_batch, timeline_batch, user,
};
use seqline_testkit::log::consume;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commits_share_fsyncs() {
    let dir = TempDir::new();
    let engine = EmbeddedEngine::open(&dir.0).unwrap();
    let store = Arc::new(EmbeddedStore::open(Arc::clone(&engine)).unwrap());
    let before = engine.fsync_count();
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let u = user("u");
                store
                    .commit_timeline(timeline_batch(&u, 0, &conversation(), 1, 2))
                    .await
                    .unwrap();
                assert_eq!(store.timeline_head(&u).await.unwrap(), UserSeq(2));
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let fsyncs = engine.fsync_count() - before;
    assert!((1..64).contains(&fsyncs), "64 concurrent commits took {fsyncs} fsyncs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_survives_a_restart() {
    let dir = TempDir::new();
    let (conv, alice) = (conversation(), user("alice"));
    {
        let store = EmbeddedStore::open(EmbeddedEngine::open(&dir.0).unwrap()).unwrap();
        store
            .commit_conversation(create_batch(&conv, &alice, &[]))
            .await
            .unwrap();
        store
            .commit_conversation(messages_batch(&conv, 0, 3, &alice))
            .await
            .unwrap();
        store
            .commit_timeline(timeline_batch(&alice, 0, &conv, 1, 3))
            .await
            .unwrap();
        store
            .set_device_cursor(&alice, &device("phone"), UserSeq(2))
            .await
            .unwrap();
    }
    let store = EmbeddedStore::open(EmbeddedEngine::open(&dir.0).unwrap()).unwrap();
    assert_eq!(store.conversation_head(&conv).await.unwrap(), Some(ConvSeq(3)));
    assert_eq!(store.messages_after(&conv, ConvSeq(0), 10).await.unwrap().len(), 3);
    assert_eq!(store.load_timeline(&alice).await.unwrap().head, UserSeq(3));
    assert_eq!(
        store.device_cursor(&alice, &device("phone")).await.unwrap(),
        Some(UserSeq(2))
    );
    store
        .commit_conversation(messages_batch(&conv, 3, 1, &alice))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_records_are_trimmed_in_bounded_steps() {
    let dir = TempDir::new();
    let engine = EmbeddedEngine::open(&dir.0).unwrap();
    let log = EmbeddedLog::open(
        engine,
        LogOptions {
            gateway: 1,
            trim_batch: 4,
            ..test_options()
        },
    )
    .unwrap();
    let gw = GatewayId::parse("trim").unwrap();
    let topic = Topic::Gateway(gw.clone());
    log.append(&topic, (0..10).map(|n| keyed_record("k", n, &gw)).collect())
        .await
        .unwrap();

    let mut fast = log.subscribe("fast", &topic).await.unwrap();
    let mut slow = log.subscribe("slow", &topic).await.unwrap();
    consume(fast.as_mut(), 10).await;
    consume(slow.as_mut(), 2).await;
    slow.commit(0, 2).await.unwrap();
    fast.commit(0, 10).await.unwrap();
    // The slow group pins everything from offset 2; a group that never
    // committed pins nothing and starts at the earliest kept record.
    let mut late = log.subscribe("late", &topic).await.unwrap();
    let first = consume(late.as_mut(), 1).await;
    assert_eq!(first[&0][0].offset, 2, "trimmed below the slowest group only");
    drop(late);

    slow.commit(0, 10).await.unwrap(); // trims 2..6 (4 per commit)
    let mut late = log.subscribe("late2", &topic).await.unwrap();
    let first = consume(late.as_mut(), 1).await;
    assert_eq!(first[&0][0].offset, 6, "a new group starts at the earliest kept record");
    late.commit(0, 10).await.unwrap();
    slow.commit(0, 10).await.unwrap(); // trims the rest
    drop((fast, slow, late));

    let mut after = log.subscribe("after", &topic).await.unwrap();
    assert!(matches!(after.poll(10).await.unwrap(), Polled::Assigned(_)));
    log.append(&topic, vec![keyed_record("k", 10, &gw)]).await.unwrap();
    let got = consume(after.as_mut(), 1).await;
    assert_eq!(got[&0][0].offset, 10, "only the new record is left to read");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_partition_count_is_refused() {
    let dir = TempDir::new();
    let topic = Topic::Gateway(GatewayId::parse("fixed").unwrap());
    {
        let log = EmbeddedLog::open(EmbeddedEngine::open(&dir.0).unwrap(), test_options()).unwrap();
        log.append(&topic, vec![keyed_record("k", 0, &GatewayId::parse("g").unwrap())])
            .await
            .unwrap();
    }
    let options = LogOptions {
        gateway: 2,
        ..test_options()
    };
    let log = EmbeddedLog::open(EmbeddedEngine::open(&dir.0).unwrap(), options).unwrap();
    let err = log.subscribe("g", &topic).await.err().expect("a mismatch");
    assert!(matches!(err, seqline_core::Error::Config(_)), "{err}");
}

/// One stage on the embedded engine: store writes that are only ordered,
/// then a durable append, then the store's flush. The append's group
/// commit covers the store writes, so the whole stage costs one fsync, and
/// nobody reads the store writes before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_of_ordered_store_writes_and_a_durable_append_costs_one_fsync() {
    let dir = TempDir::new();
    let engine = EmbeddedEngine::open(&dir.0).unwrap();
    let store = EmbeddedStore::open(Arc::clone(&engine)).unwrap();
    let log = EmbeddedLog::open(Arc::clone(&engine), LogOptions::default()).unwrap();
    let (conv, alice) = (conversation(), user("alice"));
    store
        .commit_conversation(create_batch(&conv, &alice, &[]))
        .await
        .unwrap();
    let gw = GatewayId::parse("gw-stage").unwrap();
    // Opening a topic for the first time writes its metadata.
    log.append(&Topic::Deliveries, vec![keyed_record("k", 0, &gw)])
        .await
        .unwrap();
    store.flush().await.unwrap();

    let before = engine.fsync_count();
    store
        .commit_conversation_ordered(messages_batch(&conv, 0, 3, &alice))
        .await
        .unwrap();
    store
        .commit_timeline_ordered(timeline_batch(&alice, 0, &conv, 1, 3))
        .await
        .unwrap();
    assert_eq!(engine.fsync_count(), before, "ordered writes ask for no fsync");
    assert_eq!(
        store.conversation_head(&conv).await.unwrap(),
        Some(ConvSeq(0)),
        "an ordered write is not read before it is durable"
    );
    log.append(&Topic::Deliveries, vec![keyed_record("k", 1, &gw)])
        .await
        .unwrap();
    store.flush().await.unwrap();
    assert_eq!(
        engine.fsync_count(),
        before + 1,
        "the append's fsync covered the store writes; the flush was free"
    );
    assert_eq!(store.conversation_head(&conv).await.unwrap(), Some(ConvSeq(3)));
    assert_eq!(store.timeline_head(&alice).await.unwrap(), UserSeq(3));

    // Ordered writes alone: the flush asks for the one fsync they need.
    let bob = user("bob");
    store
        .commit_timeline_ordered(timeline_batch(&bob, 0, &conv, 1, 2))
        .await
        .unwrap();
    store.flush().await.unwrap();
    assert_eq!(engine.fsync_count(), before + 2);
    assert_eq!(store.timeline_head(&bob).await.unwrap(), UserSeq(2));
}

/// Appends whose loss the protocol recovers from (commands, pushes,
/// receipts) and offset commits ask for no fsync of their own, and are
/// read at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recoverable_appends_and_offset_commits_ask_for_no_fsync() {
    let dir = TempDir::new();
    let engine = EmbeddedEngine::open(&dir.0).unwrap();
    let log = EmbeddedLog::open(Arc::clone(&engine), LogOptions::default()).unwrap();
    let gw = GatewayId::parse("gw-lazy").unwrap();
    let topics = [Topic::Inbound, Topic::UserEvents, Topic::Gateway(gw.clone())];
    let mut consumers = Vec::new();
    for topic in &topics {
        consumers.push(log.subscribe("lazy", topic).await.unwrap());
    }
    engine.flush().await.unwrap();
    let before = engine.fsync_count();
    for (topic, consumer) in topics.iter().zip(consumers.iter_mut()) {
        log.append(topic, vec![keyed_record("k", 0, &gw)]).await.unwrap();
        let got = consume(consumer.as_mut(), 1).await;
        let (partition, records) = got.into_iter().next().unwrap();
        assert_eq!(records.len(), 1, "{} is read at once", topic.name());
        consumer.commit(partition, records[0].offset + 1).await.unwrap();
    }
    assert_eq!(
        engine.fsync_count(),
        before,
        "no fsync for recoverable appends or offset commits"
    );
    // They become durable with the next fsync anyone asks for.
    engine.flush().await.unwrap();
    assert_eq!(engine.fsync_count(), before + 1);
}
