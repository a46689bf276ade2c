//! End to end over real WebSocket and HTTP connections against the real
//! `seqline dev` process: delivery to every device, order, dedup, refusal,
//! survival of SIGKILL, and the metrics of every hop.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use seqline_core::ids::ClientMsgId;
use seqline_core::model::{MessageKind, RefusalCode, TimelineEntry};
use seqline_core::protocol::{ClientFrame, ServerFrame};
use seqline_core::ConversationId;

async fn create_dm(server: &Server, from: &str, to: &str) -> ConversationId {
    let (status, body) = http_post(
        server,
        "/v1/conversations",
        &token(from, "http"),
        &format!(r#"{{"kind":"direct","members":["{to}"]}}"#),
    )
    .await;
    assert_eq!(status, 200, "create dm: {body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    ConversationId::parse(v["conv"].as_str().unwrap()).unwrap()
}

fn send_frame(conv: &ConversationId, id: ClientMsgId, prev: Option<ClientMsgId>, body: &str) -> ClientFrame {
    ClientFrame::Send {
        id,
        conv: conv.clone(),
        body: body.into(),
        prev,
        priority: false,
        vclock: Default::default(),
    }
}

async fn ack_of(ws: &mut Ws, id: ClientMsgId) -> Result<u64, RefusalCode> {
    recv_until(ws, |f| match f {
        ServerFrame::Ack { id: i, conv_seq, .. } if *i == id => Some(Ok(*conv_seq)),
        ServerFrame::Nack { id: i, code, .. } if *i == id => Some(Err(*code)),
        _ => None,
    })
    .await
}

/// Collects pushed entries until `n` text messages arrived.
async fn pushed_texts(ws: &mut Ws, n: usize) -> Vec<TimelineEntry> {
    let mut got: Vec<TimelineEntry> = Vec::new();
    while got.iter().filter(|e| e.message.kind == MessageKind::Text).count() < n {
        let f = recv(ws).await;
        if let ServerFrame::Push { entries, .. } = f {
            got.extend(entries);
        }
    }
    got
}

#[tokio::test]
async fn a_message_reaches_the_peer_and_every_device_of_the_sender_in_order() {
    let server = Server::start(&temp_dir("e2e-fanout"), "127.0.0.1:0");
    let (mut alice_phone, _) = connect(&server, "alice", "phone").await;
    let (mut alice_laptop, _) = connect(&server, "alice", "laptop").await;
    let (mut bob, _) = connect(&server, "bob", "phone").await;
    let conv = create_dm(&server, "alice", "bob").await;

    let ids: Vec<ClientMsgId> = (0..3).map(|_| ClientMsgId::random()).collect();
    for (i, id) in ids.iter().enumerate() {
        let prev = if i == 0 { None } else { Some(ids[i - 1]) };
        send(&mut alice_phone, &send_frame(&conv, *id, prev, &format!("hello {i}"))).await;
    }
    let mut seqs = Vec::new();
    for id in &ids {
        seqs.push(ack_of(&mut alice_phone, *id).await.expect("acked"));
    }
    assert_eq!(
        seqs,
        vec![2, 3, 4],
        "conversation created at 1, then the messages in send order"
    );

    for ws in [&mut bob, &mut alice_laptop] {
        let entries = pushed_texts(ws, 3).await;
        let texts: Vec<(u64, String)> = entries
            .iter()
            .filter(|e| e.message.kind == MessageKind::Text)
            .map(|e| (e.message.conv_seq.0, e.message.body.clone()))
            .collect();
        assert_eq!(
            texts,
            vec![(2, "hello 0".into()), (3, "hello 1".into()), (4, "hello 2".into())]
        );
        let user_seqs: Vec<u64> = entries.iter().map(|e| e.user_seq.0).collect();
        assert!(
            user_seqs.windows(2).all(|w| w[1] == w[0] + 1),
            "user_seq contiguous: {user_seqs:?}"
        );
    }
    // A fresh sync from 0 gives exactly the timeline: created + 3 messages.
    let synced = sync_all(&mut bob).await;
    let seqs: Vec<u64> = synced.iter().map(|e| e.message.conv_seq.0).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4]);
    assert_eq!(
        synced.iter().map(|e| e.user_seq.0).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );

    // History pages back to conv_seq 1.
    send(
        &mut bob,
        &ClientFrame::History {
            req: 99,
            conv: conv.clone(),
            before: None,
            after: None,
            limit: Some(2),
            epoch: None,
        },
    )
    .await;
    let page = recv_until(&mut bob, |f| match f {
        ServerFrame::HistoryPage {
            req: 99,
            messages,
            head,
            ..
        } => Some((messages.clone(), *head)),
        _ => None,
    })
    .await;
    assert_eq!(page.1, 4);
    assert_eq!(page.0.iter().map(|m| m.conv_seq.0).collect::<Vec<_>>(), vec![3, 4]);
}

#[tokio::test]
async fn a_resend_gets_the_original_number_and_a_stranger_is_refused_without_effect() {
    let server = Server::start(&temp_dir("e2e-dedup"), "127.0.0.1:0");
    let (mut alice, _) = connect(&server, "alice", "phone").await;
    let conv = create_dm(&server, "alice", "bob").await;
    let id = ClientMsgId::random();
    send(&mut alice, &send_frame(&conv, id, None, "once")).await;
    let first = ack_of(&mut alice, id).await.expect("acked");
    send(&mut alice, &send_frame(&conv, id, None, "once")).await;
    assert_eq!(
        ack_of(&mut alice, id).await,
        Ok(first),
        "a resend returns the original conv_seq"
    );

    let (mut carol, _) = connect(&server, "carol", "phone").await;
    let bad = ClientMsgId::random();
    send(&mut carol, &send_frame(&conv, bad, None, "let me in")).await;
    assert_eq!(ack_of(&mut carol, bad).await, Err(RefusalCode::NotMember));
    send(
        &mut carol,
        &ClientFrame::History {
            req: 1,
            conv: conv.clone(),
            before: None,
            after: None,
            limit: None,
            epoch: None,
        },
    )
    .await;
    let f = recv(&mut carol).await;
    assert!(
        matches!(
            f,
            ServerFrame::Error {
                code: seqline_core::protocol::ErrorCode::NotMember,
                ..
            }
        ),
        "{f:?}"
    );
    // Nothing changed: alice's history still ends at the one message.
    send(
        &mut alice,
        &ClientFrame::History {
            req: 2,
            conv: conv.clone(),
            before: None,
            after: None,
            limit: None,
            epoch: None,
        },
    )
    .await;
    let head = recv_until(&mut alice, |f| match f {
        ServerFrame::HistoryPage {
            req: 2, head, messages, ..
        } => Some((*head, messages.len())),
        _ => None,
    })
    .await;
    assert_eq!(head, (2, 2), "created + one message, the resend stored nothing");
}

#[tokio::test]
async fn acknowledged_messages_survive_sigkill_and_numbering_continues() {
    let data = temp_dir("e2e-crash");
    let mut server = Server::start(&data, "127.0.0.1:0");
    let addr = server.addr.clone();
    let (mut alice, _) = connect(&server, "alice", "phone").await;
    let conv = create_dm(&server, "alice", "bob").await;
    let mut prev = None;
    let mut acked = Vec::new();
    for i in 0..50 {
        let id = ClientMsgId::random();
        send(&mut alice, &send_frame(&conv, id, prev, &format!("m{i}"))).await;
        acked.push((ack_of(&mut alice, id).await.expect("acked"), format!("m{i}")));
        prev = Some(id);
    }
    server.kill();
    drop(alice);
    let server = Server::start(&data, &addr);
    let (mut bob, _) = connect(&server, "bob", "phone").await;
    // The conversation has every acked message at once (G1); bob's timeline
    // catches up as the restarted persister replays what it had not
    // committed, so poll it with a deadline.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let texts = loop {
        let synced = sync_all(&mut bob).await;
        let texts: Vec<(u64, String)> = synced
            .iter()
            .filter(|e| e.message.kind == MessageKind::Text)
            .map(|e| (e.message.conv_seq.0, e.message.body.clone()))
            .collect();
        if texts.len() >= acked.len() || std::time::Instant::now() > deadline {
            break texts;
        }
        tokio::task::yield_now().await;
    };
    assert_eq!(texts, acked, "every acknowledged message is there, in order, once");
    let (mut alice, _) = connect(&server, "alice", "phone").await;
    let id = ClientMsgId::random();
    send(&mut alice, &send_frame(&conv, id, prev, "after the crash")).await;
    assert_eq!(
        ack_of(&mut alice, id).await,
        Ok(52),
        "numbering continues with no gap or repeat"
    );
}

#[tokio::test]
async fn sigterm_drains_and_exits_cleanly() {
    let mut server = Server::start(&temp_dir("e2e-term"), "127.0.0.1:0");
    let (_ws, _) = connect(&server, "alice", "phone").await;
    let status = server.terminate();
    assert!(status.success(), "exit status {status:?}");
}

#[tokio::test]
async fn metrics_count_every_hop_while_the_collector_is_down() {
    // OTLP export on, towards a loopback port nothing listens on: the
    // process runs, counts and drains as usual, export errors are only logged.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let endpoint = format!("http://{closed}");
    let mut server = Server::start_with(
        &temp_dir("e2e-metrics"),
        "127.0.0.1:0",
        &[
            ("SEQLINE__TELEMETRY__OTLP_ENDPOINT", &endpoint),
            ("SEQLINE__TELEMETRY__EXPORT_INTERVAL", "200ms"),
        ],
    );
    let (mut alice, _) = connect(&server, "alice", "phone").await;
    let (mut bob, _) = connect(&server, "bob", "phone").await;
    let conv = create_dm(&server, "alice", "bob").await;
    let id = ClientMsgId::random();
    send(&mut alice, &send_frame(&conv, id, None, "counted")).await;
    let first = ack_of(&mut alice, id).await.expect("acked");
    send(&mut alice, &send_frame(&conv, id, None, "counted")).await;
    assert_eq!(ack_of(&mut alice, id).await, Ok(first));
    let pushed = pushed_texts(&mut bob, 1).await;
    assert_eq!(pushed.last().map(|e| e.message.conv_seq.0), Some(first));

    // The counters move after the frames leave: poll for them.
    let expected: [(&str, u64); 8] = [
        ("seqline_commands_accepted_total", 3),
        ("seqline_messages_committed_total", 2),
        ("seqline_dedup_hits_total", 1),
        ("seqline_resends_total", 1),
        ("seqline_deliveries_total", 2),
        ("seqline_fanout_packages_total", 1),
        ("seqline_e2e_latency_ms_count{stage=\"push\"}", 2),
        ("seqline_e2e_latency_ms_count{stage=\"ack\"}", 2),
    ];
    for (name, at_least) in expected {
        wait_metric(&server.addr, name, at_least, std::time::Duration::from_secs(10)).await;
    }
    assert_eq!(metric(&server.addr, "seqline_fence_refusals_total").await, Some(0));

    let stopping = std::time::Instant::now();
    let status = server.terminate();
    assert!(status.success(), "exit status {status:?}");
    assert!(
        stopping.elapsed() < std::time::Duration::from_secs(15),
        "draining with an unreachable collector took {:?}",
        stopping.elapsed()
    );
}

#[tokio::test]
async fn pages_of_large_messages_are_cut_to_the_byte_budget_and_nothing_is_lost() {
    // 60 messages of 15 KiB: one page of 100 would be a 1.8 MB frame.
    let data = temp_dir("e2e-big-pages");
    let server = Server::start(&data, "127.0.0.1:0");
    let conv = create_dm(&server, "alice", "bob").await;
    let (mut alice, _) = connect(&server, "alice", "phone").await;
    let body = "x".repeat(15 * 1024);
    let mut prev = None;
    for _ in 0..60 {
        let id = ClientMsgId::random();
        send(&mut alice, &send_frame(&conv, id, prev, &body)).await;
        assert!(ack_of(&mut alice, id).await.is_ok());
        prev = Some(id);
    }
    let (mut bob, _) = connect(&server, "bob", "laptop").await;
    // The acks came before the timeline writer applied the last messages.
    let all = sync_at_least(&mut bob, 61).await;
    send(
        &mut bob,
        &ClientFrame::Sync {
            req: 1,
            after: 0,
            limit: Some(100),
            epoch: None,
            after_id: None,
        },
    )
    .await;
    let (first, more) = recv_until(&mut bob, |f| match f {
        ServerFrame::SyncPage {
            req: 1, entries, more, ..
        } => Some((entries.len(), *more)),
        _ => None,
    })
    .await;
    assert!(
        first < 61 && more,
        "the first page is cut ({first} entries) and says more"
    );
    let seqs: Vec<u64> = all.iter().map(|e| e.user_seq.0).collect();
    assert_eq!(
        seqs,
        (1..=61).collect::<Vec<_>>(),
        "every entry, in order, over one connection"
    );
    // History pages are cut the same way and the connection survives.
    send(
        &mut bob,
        &ClientFrame::History {
            req: 2,
            conv: conv.clone(),
            before: None,
            after: None,
            limit: Some(100),
            epoch: None,
        },
    )
    .await;
    let newest = recv_until(&mut bob, |f| match f {
        ServerFrame::HistoryPage { req: 2, messages, .. } => {
            Some(messages.iter().map(|m| m.conv_seq.0).collect::<Vec<_>>())
        }
        _ => None,
    })
    .await;
    assert!(!newest.is_empty() && newest.len() < 61);
    assert_eq!(newest.last(), Some(&61), "the newest page ends at the head");
}
