//! The SDK against a scripted WebSocket server on a private loopback port:
//! each test plays the server's side of protocol v1 frame by frame, so the
//! gap, resend, reorder and reset rules are checked on a real socket with
//! nothing left to timing (every wait is bounded).

#![allow(clippy::unwrap_used)]

use futures_util::StreamExt;
use seqline_client::{Client, ClientConfig, ClientError, Event, MemoryCursor, SendState, Via};
use seqline_core::ids::{ClientMsgId, ConvSeq, ConversationId, DeviceId, UserId, UserSeq};
use seqline_core::model::{Message, MessageKind, RefusalCode, TimelineEntry};
use seqline_core::protocol::{ClientFrame, ErrorCode, ServerFrame};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message as WsMessage;

mod common;

use common::{welcome, Conn, Server, WAIT};

impl Conn {
    /// Answers the hello and the initial sync (from `cursor`, nothing new).
    async fn accept(&mut self, head: u64, cursor: u64) {
        self.accept_with(head, cursor, vec![]).await;
    }
}

fn conv() -> ConversationId {
    ConversationId::parse("dm:alice:bob").unwrap()
}

fn message(conv_seq: u64, vclock_alice: u64) -> Message {
    let mut vclock = std::collections::BTreeMap::new();
    if vclock_alice > 0 {
        vclock.insert(UserId::parse("alice").unwrap(), vclock_alice);
    }
    Message {
        read_diffusion: false,
        sender_name: String::new(),
        conv: conv(),
        conv_seq: ConvSeq(conv_seq),
        client_msg_id: ClientMsgId::random(),
        sender: UserId::parse("bob").unwrap(),
        sender_device: DeviceId::parse("tablet").unwrap(),
        kind: MessageKind::Text,
        body: format!("m{conv_seq}"),
        members: vec![],
        priority: false,
        server_ts_ms: 0,
        vclock,
    }
}

fn entry(user_seq: u64) -> TimelineEntry {
    TimelineEntry {
        user_seq: UserSeq(user_seq),
        message: message(user_seq, 0),
    }
}

fn config(url: &str) -> ClientConfig {
    let mut c = ClientConfig::new(url, "token");
    c.ping_interval = Duration::from_secs(3600);
    c.request_timeout = Duration::from_secs(3600);
    c.reconnect.base = Duration::from_millis(10);
    c.reconnect.max = Duration::from_millis(50);
    c
}

async fn next_event(events: &mut seqline_client::EventStream, pred: impl Fn(&Event) -> bool) -> Event {
    loop {
        let ev = tokio::time::timeout(WAIT, events.recv())
            .await
            .expect("no event in time")
            .expect("stream ended");
        if pred(&ev) {
            return ev;
        }
    }
}

async fn next_message(events: &mut seqline_client::EventStream) -> (u64, Via) {
    match next_event(events, |e| matches!(e, Event::Message { .. })).await {
        Event::Message { entry, via } => (entry.user_seq.0, via),
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn a_gap_in_pushes_is_synced_and_every_entry_arrives_once_in_order() {
    let mut server = Server::start().await;
    let cursor = MemoryCursor::new(0);
    let (client, mut events) = Client::start(config(&server.url).with_cursor(cursor.clone())).unwrap();
    let mut conn = server.next().await;
    conn.accept(0, 0).await;
    conn.send(ServerFrame::Push {
        package: 1,
        entries: vec![entry(1)],
    })
    .await;
    conn.send(ServerFrame::Push {
        package: 3,
        entries: vec![entry(3)],
    })
    .await;
    conn.send(ServerFrame::Push {
        package: 3,
        entries: vec![entry(3), entry(1)],
    })
    .await;
    let ClientFrame::Sync { req, after, .. } = conn.recv().await else {
        panic!("expected a sync")
    };
    assert_eq!(after, 1, "the sync starts at the contiguous cursor");
    conn.send(ServerFrame::SyncPage {
        req,
        entries: vec![entry(2), entry(3)],
        head: 3,
        more: false,
        epoch: seqline_core::Epoch::from_u64(1),
    })
    .await;
    assert_eq!(next_message(&mut events).await, (1, Via::Push));
    assert_eq!(next_message(&mut events).await, (2, Via::Pull));
    assert_eq!(next_message(&mut events).await, (3, Via::Push));
    let mut status = client.watch_status();
    tokio::time::timeout(WAIT, status.wait_for(|s| s.cursor == 3))
        .await
        .unwrap()
        .unwrap();
    client.close().await;
    assert_eq!(cursor.get(), 3, "the cursor is stored on close");
    while let Some(ev) = events.recv().await {
        assert!(
            !matches!(ev, Event::Message { .. }),
            "nothing is delivered twice: {ev:?}"
        );
    }
}

#[tokio::test]
async fn sends_survive_a_dropped_connection_with_the_same_ids_in_order() {
    let mut server = Server::start().await;
    let (client, _events) = Client::start(config(&server.url)).unwrap();
    let mut conn = server.next().await;
    conn.accept(0, 0).await;
    let h1 = client.send(conv(), "one").await.unwrap();
    let h2 = client.send(conv(), "two").await.unwrap();
    let first: Vec<ClientFrame> = vec![conn.recv().await, conn.recv().await];
    let ids: Vec<(ClientMsgId, Option<ClientMsgId>)> = first
        .iter()
        .map(|f| match f {
            ClientFrame::Send { id, prev, .. } => (*id, *prev),
            other => panic!("expected sends, got {other:?}"),
        })
        .collect();
    assert_eq!(ids, vec![(h1.id(), None), (h2.id(), Some(h1.id()))]);
    drop(conn);
    let mut conn = server.next().await;
    conn.accept(0, 0).await;
    for (id, prev) in &ids {
        match conn.recv().await {
            ClientFrame::Send { id: again, prev: p, .. } => assert_eq!((again, p), (*id, *prev)),
            other => panic!("expected a resend, got {other:?}"),
        }
    }
    conn.send(ServerFrame::Ack {
        id: h1.id(),
        conv: conv(),
        conv_seq: 7,
    })
    .await;
    conn.send(ServerFrame::Ack {
        id: h2.id(),
        conv: conv(),
        conv_seq: 8,
    })
    .await;
    assert_eq!(h1.outcome().await, SendState::Sent(7));
    assert_eq!(h2.outcome().await, SendState::Sent(8));
    assert!(client.flush(WAIT).await, "nothing waits for an ack");
}

#[tokio::test]
async fn out_of_order_resends_the_conversation_from_its_first_unacked_message() {
    let mut server = Server::start().await;
    let (client, _events) = Client::start(config(&server.url)).unwrap();
    let mut conn = server.next().await;
    conn.accept(0, 0).await;
    let h1 = client.send(conv(), "one").await.unwrap();
    let h2 = client.send(conv(), "two").await.unwrap();
    conn.recv().await;
    conn.recv().await;
    let nack = |id| ServerFrame::Nack {
        id,
        conv: conv(),
        code: RefusalCode::OutOfOrder,
        message: "prev".into(),
    };
    conn.send(nack(h2.id())).await;
    // A second nack of the same burst changes nothing.
    conn.send(nack(h2.id())).await;
    let again: Vec<ClientMsgId> = vec![conn.recv().await, conn.recv().await]
        .into_iter()
        .map(|f| match f {
            ClientFrame::Send { id, .. } => id,
            other => panic!("expected sends, got {other:?}"),
        })
        .collect();
    assert_eq!(again, vec![h1.id(), h2.id()]);
    conn.send(ServerFrame::Ack {
        id: h1.id(),
        conv: conv(),
        conv_seq: 1,
    })
    .await;
    conn.send(ServerFrame::Nack {
        id: h2.id(),
        conv: conv(),
        code: RefusalCode::NotMember,
        message: "no".into(),
    })
    .await;
    assert_eq!(h1.outcome().await, SendState::Sent(1));
    assert!(matches!(h2.outcome().await, SendState::Failed(r) if !r.is_unknown()));
}

#[tokio::test]
async fn a_pong_head_above_the_cursor_triggers_a_sync() {
    let mut server = Server::start().await;
    let mut cfg = config(&server.url);
    cfg.ping_interval = Duration::from_millis(20);
    let (_client, mut events) = Client::start(cfg).unwrap();
    let mut conn = server.next().await;
    conn.accept(0, 0).await;
    // The push of entry 1 was lost; only the pong tells.
    let req = loop {
        let msg = tokio::time::timeout(WAIT, conn.ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let WsMessage::Text(text) = msg else { continue };
        if let ClientFrame::Ping { req } = serde_json::from_str(text.as_str()).unwrap() {
            break req;
        }
    };
    conn.send(ServerFrame::Pong { req, head: 1 }).await;
    let ClientFrame::Sync { req, after, .. } = conn.recv().await else {
        panic!("expected a sync")
    };
    assert_eq!(after, 0);
    conn.send(ServerFrame::SyncPage {
        req,
        entries: vec![entry(1)],
        head: 1,
        more: false,
        epoch: seqline_core::Epoch::from_u64(1),
    })
    .await;
    assert_eq!(next_message(&mut events).await, (1, Via::Pull));
}

#[tokio::test]
async fn a_reset_starts_over_at_the_head_and_says_so() {
    let mut server = Server::start().await;
    let (_client, mut events) = Client::start(config(&server.url).with_cursor(MemoryCursor::new(50))).unwrap();
    let mut conn = server.next().await;
    assert!(matches!(conn.recv().await, ClientFrame::Hello { .. }));
    conn.send(welcome(10)).await;
    let ClientFrame::Sync { req, after, .. } = conn.recv().await else {
        panic!("expected a sync")
    };
    assert_eq!(after, 50);
    conn.send(ServerFrame::Reset {
        req,
        head: 10,
        reason: "another epoch".into(),
        code: seqline_core::protocol::ResetCode::BeyondHead,
        epoch: seqline_core::Epoch::from_u64(1),
    })
    .await;
    let ev = next_event(&mut events, |e| matches!(e, Event::Reset { .. })).await;
    assert_eq!(
        ev,
        Event::Reset {
            from: 50,
            head: 10,
            data_replaced: false
        }
    );
    let ClientFrame::Sync { req, after, .. } = conn.recv().await else {
        panic!("expected a sync")
    };
    assert_eq!(after, 10);
    conn.send(ServerFrame::SyncPage {
        req,
        entries: vec![entry(11)],
        head: 11,
        more: false,
        epoch: seqline_core::Epoch::from_u64(1),
    })
    .await;
    assert_eq!(next_message(&mut events).await, (11, Via::Pull));
}

#[tokio::test]
async fn a_refused_token_fails_connect() {
    let mut server = Server::start().await;
    let url = server.url.clone();
    let connecting = tokio::spawn(async move { Client::connect(config(&url)).await.map(|_| ()) });
    let mut conn = server.next().await;
    assert!(matches!(conn.recv().await, ClientFrame::Hello { .. }));
    conn.send(ServerFrame::error(
        None,
        ErrorCode::BadToken,
        "the token's signature is invalid",
    ))
    .await;
    let err = connecting.await.unwrap().unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Auth {
                code: ErrorCode::BadToken,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn history_pages_back_and_orders_causally_on_request() {
    let mut server = Server::start().await;
    let (client, _events) = Client::start(config(&server.url)).unwrap();
    let mut conn = server.next().await;
    conn.accept(0, 0).await;
    let reader = tokio::spawn({
        let client = client.clone();
        async move { client.history(&conv(), None, 10).await.unwrap() }
    });
    // Three pages back from the newest: [4, 5], [2, 3], [1].
    for (expect_before, page) in [(None, vec![4, 5]), (Some(4), vec![2, 3]), (Some(2), vec![1])] {
        let ClientFrame::History { req, before, .. } = conn.recv().await else {
            panic!("expected history")
        };
        assert_eq!(before, expect_before);
        let messages = page.into_iter().map(|s| message(s, 0)).collect();
        conn.send(ServerFrame::HistoryPage {
            req,
            conv: conv(),
            messages,
            head: 5,
            epoch: seqline_core::Epoch::from_u64(1),
        })
        .await;
    }
    let seqs: Vec<u64> = reader.await.unwrap().iter().map(|m| m.conv_seq.0).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
    // Causal order: seq 2 happened after alice's second message, seq 1 before it.
    let causal = tokio::spawn(async move { client.causal_history(&conv(), None, 2).await.unwrap() });
    let ClientFrame::History { req, .. } = conn.recv().await else {
        panic!("expected history")
    };
    let messages = vec![message(1, 2), message(2, 1)];
    conn.send(ServerFrame::HistoryPage {
        req,
        conv: conv(),
        messages,
        head: 2,
        epoch: seqline_core::Epoch::from_u64(1),
    })
    .await;
    let seqs: Vec<u64> = causal.await.unwrap().iter().map(|m| m.conv_seq.0).collect();
    assert_eq!(seqs, vec![2, 1]);
}

#[tokio::test]
async fn sends_made_before_the_first_welcome_are_stamped_at_it_in_order() {
    let mut server = Server::start().await;
    let mut cfg = config(&server.url);
    cfg.vector_clocks = true;
    let (client, _events) = Client::start(cfg).unwrap();
    let h1 = client.send(conv(), "one").await.unwrap();
    let h2 = client.send(conv(), "two").await.unwrap();
    // Both are taken in before the server says who the user is.
    let mut status = client.watch_status();
    tokio::time::timeout(WAIT, status.wait_for(|s| s.sends_taken >= 2))
        .await
        .unwrap()
        .unwrap();
    let mut conn = server.next().await;
    // The initial sync brings one message of bob.
    conn.accept_with(1, 0, vec![entry(1)]).await;
    let alice = UserId::parse("alice").unwrap();
    let bob = UserId::parse("bob").unwrap();
    let clock = |entries: &[(&UserId, u64)]| -> std::collections::BTreeMap<UserId, u64> {
        entries.iter().map(|(u, n)| ((*u).clone(), *n)).collect()
    };
    for (h, want) in [(&h1, clock(&[(&alice, 1)])), (&h2, clock(&[(&alice, 2)]))] {
        match conn.recv().await {
            ClientFrame::Send { id, vclock, .. } => assert_eq!((id, vclock), (h.id(), want)),
            other => panic!("expected a send, got {other:?}"),
        }
    }
    // A send after the sync counts bob's message too.
    let h3 = client.send(conv(), "three").await.unwrap();
    match conn.recv().await {
        ClientFrame::Send { id, vclock, .. } => {
            assert_eq!((id, vclock), (h3.id(), clock(&[(&alice, 3), (&bob, 1)])))
        }
        other => panic!("expected a send, got {other:?}"),
    }
}
