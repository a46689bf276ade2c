#![allow(clippy::unwrap_used)]
//! A real fault: the CQL server (a private Cassandra node of this test) is
//! SIGKILLed and restarted on the same data. Every write the store
//! acknowledged before the kill is readable after the restart (the node's
//! commit log is fsynced before a write is answered: `commitlog_sync:
//! batch`, see docs/cassandra.md); while the node is down every operation
//! fails promptly as `Unavailable` (retryable); afterwards the same store,
//! without reconnecting by hand, works again.

mod common;

use seqline_core::ids::{ConvSeq, ConversationId, DeviceId, UserSeq};
use seqline_core::model::Message;
use seqline_core::ports::Store;
use seqline_core::Error;
use seqline_scylla::ScyllaStore;
use seqline_testkit::cassandra::CassandraServer;
use seqline_testkit::fixtures::{conversation, create_batch, device, messages_batch, timeline_batch, user};
use std::time::{Duration, Instant};

/// How long the store may take to notice the node is back.
const RECOVERY: Duration = Duration::from_secs(60);

async fn start_server() -> CassandraServer {
    tokio::task::spawn_blocking(CassandraServer::start).await.unwrap()
}

async fn restart_server(mut server: CassandraServer) -> CassandraServer {
    tokio::task::spawn_blocking(move || {
        server.restart();
        server
    })
    .await
    .unwrap()
}

/// Commits `batches` batches of 3 messages after `head`, each acknowledged.
async fn append(store: &ScyllaStore, conv: &ConversationId, head: &mut u64, batches: usize) -> Vec<Message> {
    let alice = user("alice");
    let mut acked = Vec::new();
    for _ in 0..batches {
        let batch = messages_batch(conv, *head, 3, &alice);
        store.commit_conversation(batch.clone()).await.unwrap();
        *head += 3;
        acked.extend(batch.messages);
    }
    acked
}

fn assert_unavailable<T: std::fmt::Debug>(what: &str, result: seqline_core::Result<T>) {
    match result {
        Err(e @ Error::Unavailable(_)) => assert!(e.is_retryable()),
        other => panic!("{what} while the node is down: expected Unavailable, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_sigkill_and_the_store_recovers() {
    let server = start_server().await;
    let options = common::options(&server.addr(), "seqline_restart");
    let store = ScyllaStore::connect(options).await.unwrap();

    let (conv, alice, phone) = (conversation(), user("alice"), device("phone"));
    store
        .commit_conversation(create_batch(&conv, &alice, &[]))
        .await
        .unwrap();
    let mut head = 0;
    let mut acked = append(&store, &conv, &mut head, 10).await;
    store
        .commit_timeline(timeline_batch(&alice, 0, &conv, 1, 5))
        .await
        .unwrap();
    store.set_device_cursor(&alice, &phone, UserSeq(4)).await.unwrap();

    // The last acknowledgement, then at once SIGKILL: no flush, no drain.
    let pid = server.pid().unwrap();
    let mut server = server;
    tokio::task::block_in_place(|| server.kill());
    println!("killed cassandra (pid {pid}) right after the last acknowledged write");

    let started = Instant::now();
    assert_unavailable("load", store.load_conversation(&conv).await);
    assert_unavailable(
        "commit",
        store.commit_conversation(messages_batch(&conv, head, 3, &alice)).await,
    );
    assert_unavailable("read", store.messages_after(&conv, ConvSeq(0), 10).await);
    assert_unavailable("timeline", store.timeline_after(&alice, UserSeq(0), 10).await);
    assert_unavailable("cursor", store.set_device_cursor(&alice, &phone, UserSeq(5)).await);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "failing took {:?}: a dead node must fail operations promptly",
        started.elapsed()
    );

    let server = restart_server(server).await;
    println!("restarted cassandra (pid {:?}) on the same data", server.pid());

    // The same store finds the node again; the first call may still fail
    // while the driver reconnects, but only as Unavailable.
    let state = seqline_testkit::wait::until(RECOVERY, "the store to recover after the restart", || async {
        match store.load_conversation(&conv).await {
            Ok(state) => Some(state.unwrap()),
            Err(e @ Error::Unavailable(_)) => {
                println!("not yet: {e}");
                None
            }
            Err(e) => panic!("the store failed with something else than Unavailable: {e}"),
        }
    })
    .await;
    assert_eq!(state.head, ConvSeq(head), "the head survived the kill");
    let stored = store.messages_after(&conv, ConvSeq(0), 100).await.unwrap();
    assert_eq!(stored, acked, "every acknowledged message survived the kill");
    for m in &stored {
        assert!(store.dedup(&conv, m.client_msg_id).await.unwrap().is_some());
    }
    assert_eq!(store.timeline_head(&alice).await.unwrap(), UserSeq(5));
    assert_eq!(store.timeline_after(&alice, UserSeq(0), 10).await.unwrap().len(), 5);
    let cursor: Option<UserSeq> = store
        .device_cursor(&alice, &DeviceId::parse("phone").unwrap())
        .await
        .unwrap();
    assert_eq!(cursor, Some(UserSeq(4)));

    // And writes go on from where they stood.
    acked.extend(append(&store, &conv, &mut head, 2).await);
    assert_eq!(store.messages_after(&conv, ConvSeq(0), 100).await.unwrap(), acked);
    drop(server);
}
