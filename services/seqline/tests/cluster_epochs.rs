//! Cluster mode: the store's epoch on Apache Cassandra (standing in for
//! ScyllaDB). Roles run as separate processes on the run's shared Kafka and
//! Cassandra (`SEQLINE_TEST_KAFKA`, `SEQLINE_TEST_CASSANDRA`); each cluster
//! gets a keyspace of its own, so a second cluster is what a wiped store
//! looks like to a device that synced from the first.

#![allow(clippy::unwrap_used)]

mod common;

use common::{recv, send, sync_marked, temp_dir, token, Ws, SECRET};
use seqline_chaos::cluster::{Cluster, ClusterOptions, Engines};
use seqline_core::ids::ClientMsgId;
use seqline_core::model::TimelineEntry;
use seqline_core::protocol::{ClientFrame, ResetCode, ServerFrame};
use seqline_core::{ConversationId, Epoch};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Mutex;

async fn start(tag: &str) -> Cluster {
    let mut o = ClusterOptions::new(env!("CARGO_BIN_EXE_seqline").into(), temp_dir(tag), SECRET);
    o.engines = Engines::Shared;
    o.gateways = 1;
    o.persisters = 1;
    o.fanouts = 1;
    Cluster::start(o).await.unwrap()
}

async fn connect(addr: &str, user: &str, device: &str) -> (Ws, Epoch) {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/v1/ws"))
        .await
        .unwrap();
    send(
        &mut ws,
        &ClientFrame::Hello {
            token: token(user, device),
        },
    )
    .await;
    match recv(&mut ws).await {
        ServerFrame::Welcome { epoch, .. } => (ws, epoch),
        other => panic!("expected welcome, got {other:?}"),
    }
}

async fn create_dm(addr: &str) -> ConversationId {
    let body = r#"{"kind":"direct","members":["bob"]}"#;
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "POST /v1/conversations HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        token("alice", "http"),
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).to_string();
    let json = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    assert!(text.starts_with("HTTP/1.1 200"), "create dm: {text}");
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    ConversationId::parse(v["conv"].as_str().unwrap()).unwrap()
}

/// Alice sends `n` messages to bob in a new direct conversation.
async fn write(addr: &str, n: usize) {
    let conv = create_dm(addr).await;
    let (mut alice, _) = connect(addr, "alice", "phone").await;
    let mut prev = None;
    for i in 0..n {
        let id = ClientMsgId::random();
        let frame = ClientFrame::Send {
            id,
            conv: conv.clone(),
            body: format!("m{i}"),
            prev,
            priority: false,
            vclock: Default::default(),
        };
        send(&mut alice, &frame).await;
        prev = Some(id);
    }
    let mut acked = 0;
    while acked < n {
        if let ServerFrame::Ack { .. } = recv(&mut alice).await {
            acked += 1;
        }
    }
}

/// Bob's timeline once it holds `n` entries (the timeline writer applies
/// messages after their acks).
async fn bob_timeline(addr: &str, n: usize) -> (Epoch, Vec<TimelineEntry>) {
    let (ws, epoch) = connect(addr, "bob", "phone").await;
    let ws = Arc::new(Mutex::new(ws));
    let entries = seqline_testkit::wait::until(std::time::Duration::from_secs(60), "bob's timeline", || {
        let ws = Arc::clone(&ws);
        async move {
            let mut ws = ws.lock().await;
            match sync_marked(&mut ws, 1, 0, Some(epoch), None).await {
                ServerFrame::SyncPage { entries, .. } if entries.len() >= n => Some(entries),
                _ => None,
            }
        }
    })
    .await;
    (epoch, entries)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_keyspace_is_a_new_epoch_and_old_cursors_get_reset() {
    let first = start("cluster-epoch-a").await;
    let addr = first.gateways()[0].clone();
    write(&addr, 4).await;
    let (old, entries) = bob_timeline(&addr, 5).await;
    // The epoch is the keyspace's: a reconnect (another session, the same
    // store) names the same one.
    let (_, again) = connect(&addr, "bob", "tablet").await;
    assert_eq!(again, old);
    let cursor = entries.last().unwrap();
    let (cursor, cursor_id) = (cursor.user_seq.0, cursor.message.client_msg_id);
    first.stop().await;

    let second = start("cluster-epoch-b").await;
    let addr = second.gateways()[0].clone();
    write(&addr, 9).await;
    let (now, _) = bob_timeline(&addr, 10).await;
    assert_ne!(now, old, "a fresh keyspace is a new epoch");
    let (mut ws, welcome_epoch) = connect(&addr, "bob", "phone").await;
    assert_eq!(welcome_epoch, now);
    match sync_marked(&mut ws, 2, cursor, Some(old), Some(cursor_id)).await {
        ServerFrame::Reset { code, epoch, head, .. } => {
            assert_eq!((code, epoch, head), (ResetCode::StaleEpoch, now, 10));
        }
        other => panic!("expected reset, got {other:?}"),
    }
    second.stop().await;
}
