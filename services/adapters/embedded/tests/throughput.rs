//! Rough throughput of the embedded adapters; ignored by default. Run with
//! `cargo test --release -p seqline-embedded --test throughput -- --ignored --nocapture`.

#![allow(clippy::unwrap_used)] // test support code outside #[test] fns

mod common;

use common::TempDir;
use seqline_core::ids::GatewayId;
use seqline_core::ports::{Log, Polled, Store};
use seqline_core::records::Topic;
use seqline_embedded::{EmbeddedEngine, EmbeddedLog, EmbeddedStore, LogOptions};
use seqline_testkit::fixtures::{conversation, create_batch, keyed_record, messages_batch, timeline_batch, user};
use std::sync::Arc;
use std::time::Instant;

const TASKS: usize = 32;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark"]
async fn log_append_and_consume() {
    let dir = TempDir::new();
    let engine = EmbeddedEngine::open(&dir.0).unwrap();
    let log = EmbeddedLog::open(Arc::clone(&engine), LogOptions::default()).unwrap();
    let topic = Topic::Deliveries;
    let gw = GatewayId::parse("bench").unwrap();
    let (per_task, batch) = (200, 10);
    let start = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let (log, topic, gw) = (log.clone(), topic.clone(), gw.clone());
            tokio::spawn(async move {
                for i in 0..per_task {
                    let records = (0..batch).map(|j| keyed_record(&format!("k{t}-{j}"), i, &gw)).collect();
                    log.append(&topic, records).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let total = (TASKS * per_task as usize * batch) as f64;
    let secs = start.elapsed().as_secs_f64();
    println!("append: {:.0} records/s, {} fsyncs", total / secs, engine.fsync_count());

    let start = Instant::now();
    let mut consumer = log.subscribe("bench", &topic).await.unwrap();
    let mut seen = 0usize;
    while seen < total as usize {
        if let Polled::Records { partition, records } = consumer.poll(500).await.unwrap() {
            seen += records.len();
            let next = records.last().unwrap().offset + 1;
            if seen % 5000 < 500 {
                consumer.commit(partition, next).await.unwrap();
            }
        }
    }
    println!("consume: {:.0} records/s", total / start.elapsed().as_secs_f64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark"]
async fn store_commits() {
    let dir = TempDir::new();
    let engine = EmbeddedEngine::open(&dir.0).unwrap();
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(Arc::clone(&engine)).unwrap());
    let per_task = 300u64;
    let start = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let (conv, alice, bob) = (conversation(), user("a"), user("b"));
                store
                    .commit_conversation(create_batch(&conv, &alice, std::slice::from_ref(&bob)))
                    .await
                    .unwrap();
                for i in 0..per_task {
                    // A sequencer batch of 4 messages and a timeline batch of 4.
                    store
                        .commit_conversation(messages_batch(&conv, i * 4, 4, &alice))
                        .await
                        .unwrap();
                    store
                        .commit_timeline(timeline_batch(&bob, i * 4, &conv, i * 4 + 1, 4))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let commits = (TASKS as u64 * per_task * 2) as f64;
    println!(
        "store: {:.0} commits/s, {:.0} messages/s sequenced+timelined, {} fsyncs",
        commits / secs,
        commits * 2.0 / secs,
        engine.fsync_count()
    );
}
