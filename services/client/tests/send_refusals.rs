//! The SDK and the gateway's refusals of sends (docs/protocol.md, "Errors
//! for a send" and "Sender order"), against a scripted server: the error
//! names the message in its `id` field, the message fails for good, and it
//! leaves its conversation's `prev` chain, also across a reconnect. Ids go
//! on the wire in canonical form.

#![allow(clippy::unwrap_used)]

use futures_util::StreamExt;
use seqline_client::{Client, ClientConfig, SendState};
use seqline_core::ids::{is_canonical_uuid, ClientMsgId, ConversationId};
use seqline_core::protocol::{ClientFrame, ErrorCode, ServerFrame};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message as WsMessage;

mod common;

use common::{Conn, Server, WAIT};

fn conv() -> ConversationId {
    ConversationId::parse("g:team").unwrap()
}

fn config(url: &str) -> ClientConfig {
    let mut c = ClientConfig::new(url, "token");
    c.ping_interval = Duration::from_secs(3600);
    c.request_timeout = Duration::from_secs(3600);
    c.reconnect.base = Duration::from_millis(10);
    c.reconnect.max = Duration::from_millis(50);
    c
}

/// The next send as raw JSON (skipping cursor reports and pings).
async fn raw_send(conn: &mut Conn) -> serde_json::Value {
    loop {
        let msg = tokio::time::timeout(WAIT, conn.ws.next())
            .await
            .expect("no frame in time")
            .unwrap()
            .unwrap();
        let WsMessage::Text(text) = msg else { continue };
        let v: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
        if v["type"] == "send" {
            return v;
        }
    }
}

/// The gateway's ack of `id` at `conv_seq`.
async fn ack(conn: &mut Conn, id: ClientMsgId, conv_seq: u64) {
    conn.send(ServerFrame::Ack {
        id,
        conv: conv(),
        conv_seq,
    })
    .await;
}

fn id_of(v: &serde_json::Value, field: &str) -> Option<ClientMsgId> {
    v[field].as_str().map(|s| ClientMsgId::parse(s).unwrap())
}

#[tokio::test]
async fn a_send_the_gateway_refuses_fails_and_leaves_the_chain_across_reconnects() {
    let mut server = Server::start().await;
    let (client, _events) = Client::start(config(&server.url)).unwrap();
    let mut conn = server.next().await;
    conn.accept_with(0, 0, vec![]).await;

    let one = client.send(conv(), "one").await.unwrap();
    let f = raw_send(&mut conn).await;
    let text = f["id"].as_str().unwrap();
    assert!(is_canonical_uuid(text), "the SDK writes canonical ids: {text}");
    assert_eq!(id_of(&f, "id"), Some(one.id()));
    ack(&mut conn, one.id(), 1).await;
    assert_eq!(one.outcome().await, SendState::Sent(1));

    // Two is refused by the gateway; the error names it only in `id` (the
    // text need not start with `message <id>`).
    let two = client.send(conv(), "two").await.unwrap();
    let f = raw_send(&mut conn).await;
    assert_eq!((id_of(&f, "id"), id_of(&f, "prev")), (Some(two.id()), Some(one.id())));
    conn.send(ServerFrame::Error {
        req: None,
        code: ErrorCode::TooLarge,
        message: "the body is too large".into(),
        id: Some(two.id().to_string()),
        conv: Some(conv()),
        retry_after_ms: None,
    })
    .await;
    match two.outcome().await {
        SendState::Failed(r) => assert!(!r.is_unknown() && r.to_string().contains("TooLarge"), "{r}"),
        other => panic!("{other:?}"),
    }

    // Three names one, the previous send the gateway did not refuse; and so
    // it does after a reconnect.
    let three = client.send(conv(), "three").await.unwrap();
    let f = raw_send(&mut conn).await;
    assert_eq!((id_of(&f, "id"), id_of(&f, "prev")), (Some(three.id()), Some(one.id())));
    drop(conn);
    let mut conn = server.next().await;
    conn.accept_with(0, 0, vec![]).await;
    match conn.recv().await {
        ClientFrame::Send { id, prev, .. } => assert_eq!((id, prev), (three.id(), Some(one.id()))),
        other => panic!("expected the resend, got {other:?}"),
    }
    ack(&mut conn, three.id(), 2).await;
    assert_eq!(three.outcome().await, SendState::Sent(2));
    assert!(client.flush(WAIT).await);
}

#[tokio::test]
async fn a_send_refused_for_now_goes_again_after_the_hint_with_the_same_id_however_often() {
    let mut server = Server::start().await;
    let mut cfg = config(&server.url);
    cfg.resend.max_attempts = 3;
    // A backoff far longer than the hint: the hint is what the SDK waits.
    cfg.resend.backoff.base = Duration::from_secs(3600);
    cfg.resend.backoff.max = Duration::from_secs(3600);
    let (client, _events) = Client::start(cfg).unwrap();
    let mut conn = server.next().await;
    conn.accept_with(0, 0, vec![]).await;

    let one = client.send(conv(), "one").await.unwrap();
    // Refused for now more often than max_attempts (admission control):
    // each time the same message comes again, and it is acked in the end.
    for _ in 0..5 {
        let f = raw_send(&mut conn).await;
        assert_eq!(id_of(&f, "id"), Some(one.id()));
        conn.send(ServerFrame::Error {
            req: None,
            code: ErrorCode::RateLimited,
            message: format!("message {}: the server is behind on deliveries", one.id()),
            id: Some(one.id().to_string()),
            conv: Some(conv()),
            retry_after_ms: Some(20),
        })
        .await;
    }
    let f = raw_send(&mut conn).await;
    assert_eq!(id_of(&f, "id"), Some(one.id()));
    ack(&mut conn, one.id(), 1).await;
    assert_eq!(one.outcome().await, SendState::Sent(1));
    assert_eq!(client.status().refused_for_now, 5);
}
