#![allow(clippy::unwrap_used)]
//! Schema creation on a real CQL server (the shared Cassandra node), as
//! persister processes meet it: several connecting at once to a keyspace
//! that does not exist yet, or to one whose tables predate a column, and a
//! store configured unlike the keyspace.

mod common;

use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use seqline_core::ids::ConvSeq;
use seqline_core::ports::Store;
use seqline_core::Error;
use seqline_scylla::ScyllaStore;
use seqline_testkit::cassandra::shared_nodes;
use seqline_testkit::fixtures::{conversation, create_batch, messages_batch, user};

fn fresh_keyspace(prefix: &str) -> String {
    format!("{prefix}_{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}

async fn admin() -> Session {
    SessionBuilder::new()
        .known_nodes(shared_nodes().split(','))
        .build()
        .await
        .unwrap()
}

async fn drop_keyspace(session: &Session, keyspace: &str) {
    session
        .query_unpaged(format!("DROP KEYSPACE IF EXISTS {keyspace}"), ())
        .await
        .unwrap();
}

/// Connects `n` stores to `keyspace` at once; every one must succeed.
async fn connect_at_once(keyspace: &str, n: usize) -> Vec<ScyllaStore> {
    let options = common::shared(keyspace);
    let tasks: Vec<_> = (0..n)
        .map(|_| tokio::spawn(ScyllaStore::connect(options.clone())))
        .collect();
    let mut stores = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        match task.await.unwrap() {
            Ok(store) => stores.push(store),
            Err(e) => panic!("store {i} of {n} connecting at once to {keyspace}: {e}"),
        }
    }
    stores
}

/// What one store writes, the others read.
async fn shared_view(stores: &[ScyllaStore]) {
    let (conv, alice) = (conversation(), user("alice"));
    stores[0]
        .commit_conversation(create_batch(&conv, &alice, &[]))
        .await
        .unwrap();
    stores[1]
        .commit_conversation(messages_batch(&conv, 0, 2, &alice))
        .await
        .unwrap();
    for store in stores {
        assert_eq!(store.conversation_head(&conv).await.unwrap(), Some(ConvSeq(2)));
        assert_eq!(store.messages_after(&conv, ConvSeq(0), 10).await.unwrap().len(), 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stores_connecting_at_once_create_one_schema() {
    let keyspace = fresh_keyspace("seqline_first");
    let stores = connect_at_once(&keyspace, 4).await;
    shared_view(&stores).await;
    drop(stores);
    drop_keyspace(&admin().await, &keyspace).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stores_connecting_at_once_add_missing_columns() {
    let keyspace = fresh_keyspace("seqline_old");
    let session = admin().await;
    session
        .query_unpaged(
            format!(
                "CREATE KEYSPACE {keyspace} WITH replication = \
                 {{'class': 'NetworkTopologyStrategy', 'replication_factor': 1}}"
            ),
            (),
        )
        .await
        .unwrap();
    // `messages` and `timelines` as first released, without the columns
    // added since.
    for (table, key) in [
        ("messages", "conv text, bucket bigint, conv_seq bigint"),
        (
            "timelines",
            "user_id text, bucket bigint, user_seq bigint, conv text, conv_seq bigint",
        ),
    ] {
        let (partition, seq) = if table == "messages" {
            ("conv", "conv_seq")
        } else {
            ("user_id", "user_seq")
        };
        session
            .query_unpaged(
                format!(
                    "CREATE TABLE {keyspace}.{table} ({key}, client_msg_id uuid, sender text, \
                     sender_device text, kind text, body text, members list<text>, priority boolean, \
                     server_ts_ms bigint, vclock map<text, bigint>, \
                     PRIMARY KEY (({partition}, bucket), {seq}))"
                ),
                (),
            )
            .await
            .unwrap();
    }
    let stores = connect_at_once(&keyspace, 4).await;
    shared_view(&stores).await;
    drop(stores);
    drop_keyspace(&session, &keyspace).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_bucket_size_is_refused() {
    // Make sure the shared keyspace exists with the tests' bucket size.
    drop(ScyllaStore::connect(common::shared(common::KEYSPACE)).await.unwrap());
    let mut options = common::shared(common::KEYSPACE);
    options.bucket_size = 20;
    match ScyllaStore::connect(options).await {
        Err(Error::Config(why)) => assert!(why.contains("bucket_size"), "{why}"),
        other => panic!("a store configured with another bucket size must refuse to start, got {other:?}"),
    }
}
