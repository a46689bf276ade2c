//! A client that follows docs/protocol.md literally, over real WebSocket
//! connections against `seqline dev` (gateway, embedded engine, sequencer):
//! a send the gateway refuses (too large, a wrong-typed body) is still the
//! `prev` the next send names, "whatever its outcome", and that next send is
//! acked, on the same connection and after a reconnect. The SDK gets the
//! same outcome: the refused message fails, the next one is sent.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use futures_util::SinkExt;
use seqline_client::{ClientConfig, FailReason, SendState};
use seqline_core::ids::ClientMsgId;
use seqline_core::protocol::{ClientFrame, ErrorCode, ServerFrame};
use seqline_core::ConversationId;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

/// `max_body_bytes` of `seqline dev`.
const MAX_BODY: usize = 16_384;

async fn create_group(server: &Server, id: &str) -> ConversationId {
    let body = format!(r#"{{"kind":"group","id":"{id}","members":["bob"]}}"#);
    let (status, answer) = http_post(server, "/v1/conversations", &token("alice", "http"), &body).await;
    assert_eq!(status, 200, "create: {answer}");
    ConversationId::parse(id).unwrap()
}

async fn send_json(ws: &mut Ws, v: serde_json::Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

fn frame(
    conv: &ConversationId,
    id: ClientMsgId,
    prev: Option<ClientMsgId>,
    body: serde_json::Value,
) -> serde_json::Value {
    let mut f = serde_json::json!({"type": "send", "id": id, "conv": conv, "body": body});
    if let Some(p) = prev {
        f["prev"] = serde_json::json!(p);
    }
    f
}

/// The answer naming `id`: its ack's conv_seq, or the error's code.
async fn answer(ws: &mut Ws, id: ClientMsgId) -> Result<u64, String> {
    let named = id.to_string();
    recv_until(ws, |f| match f {
        ServerFrame::Ack { id: i, conv_seq, .. } if *i == id => Some(Ok(*conv_seq)),
        ServerFrame::Nack { id: i, code, .. } if *i == id => Some(Err(format!("nack {code:?}"))),
        ServerFrame::Error { id: Some(i), code, .. } if *i == named => Some(Err(format!("{code:?}"))),
        _ => None,
    })
    .await
}

#[tokio::test]
async fn a_send_refused_by_the_gateway_never_blocks_the_next_one_even_after_a_reconnect() {
    let server = Server::start(&temp_dir("e2e-refusals"), "127.0.0.1:0");
    let conv = create_group(&server, "g:refusals").await;
    let (mut ws, _) = connect(&server, "alice", "phone").await;
    let [z, a, b, a2, c, a3, d] = std::array::from_fn(|_| ClientMsgId::random());

    send_json(&mut ws, frame(&conv, z, None, "z".into())).await;
    assert_eq!(answer(&mut ws, z).await, Ok(2));
    // a is over the limit; b names it as its prev (pipelined, before the
    // refusal arrived): b is acked, and so is everything after.
    send_json(&mut ws, frame(&conv, a, Some(z), "x".repeat(MAX_BODY + 1).into())).await;
    send_json(&mut ws, frame(&conv, b, Some(a), "b".into())).await;
    assert_eq!(answer(&mut ws, a).await, Err("TooLarge".into()));
    assert_eq!(answer(&mut ws, b).await, Ok(3));
    // A wrong-typed body is refused the same way.
    send_json(&mut ws, frame(&conv, a2, Some(b), 7.into())).await;
    assert_eq!(answer(&mut ws, a2).await, Err("InvalidField".into()));
    send_json(&mut ws, frame(&conv, c, Some(a2), "c".into())).await;
    assert_eq!(answer(&mut ws, c).await, Ok(4));
    // Refused, then the connection drops before the next send.
    send_json(&mut ws, frame(&conv, a3, Some(c), "x".repeat(MAX_BODY + 1).into())).await;
    assert_eq!(answer(&mut ws, a3).await, Err("TooLarge".into()));
    drop(ws);
    let (mut ws, _) = connect(&server, "alice", "phone").await;
    send_json(&mut ws, frame(&conv, d, Some(a3), "d".into())).await;
    assert_eq!(answer(&mut ws, d).await, Ok(5));
    // Resending an acked one still gets its number (nothing was disturbed).
    send_json(&mut ws, frame(&conv, b, Some(a), "b".into())).await;
    assert_eq!(answer(&mut ws, b).await, Ok(3));

    // History holds exactly the sends that were not refused, in order.
    send(
        &mut ws,
        &ClientFrame::History {
            req: 1,
            conv: conv.clone(),
            before: None,
            after: Some(1),
            limit: None,
            epoch: None,
        },
    )
    .await;
    let messages = recv_until(&mut ws, |f| match f {
        ServerFrame::HistoryPage { messages, .. } => Some(messages.clone()),
        _ => None,
    })
    .await;
    let got: Vec<(u64, ClientMsgId, bool)> = messages
        .iter()
        .map(|m| (m.conv_seq.0, m.client_msg_id, m.read_diffusion))
        .collect();
    assert_eq!(got, vec![(2, z, false), (3, b, false), (4, c, false), (5, d, false)]);
}

/// The next text frame as raw JSON.
async fn next_raw(ws: &mut Ws) -> serde_json::Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), futures_util::StreamExt::next(ws))
            .await
            .expect("a frame within 10 s")
            .expect("open")
            .expect("ok");
        if let Message::Text(t) = msg {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

#[tokio::test]
async fn write_mode_messages_carry_read_diffusion_false_on_the_wire() {
    let server = Server::start(&temp_dir("e2e-rd-flag"), "127.0.0.1:0");
    let conv = create_group(&server, "g:flag").await;
    let (mut ws, _) = connect(&server, "alice", "phone").await;
    let id = ClientMsgId::random();
    send_json(&mut ws, frame(&conv, id, None, "hi".into())).await;
    // The push of the message and, once it is acked, the history page
    // (the creation and the message) spell the flag out.
    let (mut pushed, mut acked) = (0, false);
    while !(acked && pushed >= 1) {
        let v = next_raw(&mut ws).await;
        match v["type"].as_str() {
            Some("push") => {
                for e in v["entries"].as_array().unwrap() {
                    assert_eq!(e["message"]["read_diffusion"], serde_json::json!(false), "{e}");
                    pushed += 1;
                }
            }
            Some("ack") => acked = v["id"] == serde_json::json!(id),
            _ => {}
        }
    }
    send_json(&mut ws, serde_json::json!({"type": "history", "req": 5, "conv": conv})).await;
    let page = loop {
        let v = next_raw(&mut ws).await;
        if v["type"] == "history_page" {
            break v;
        }
    };
    let messages = page["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2, "{page}");
    for m in messages {
        assert_eq!(m["read_diffusion"], serde_json::json!(false), "{m}");
    }
}

#[tokio::test]
async fn the_sdk_fails_the_refused_send_and_delivers_the_next() {
    let server = Server::start(&temp_dir("e2e-refusals-sdk"), "127.0.0.1:0");
    let conv = create_group(&server, "g:refusals-sdk").await;
    let config = ClientConfig::new(server.ws_url(), token("alice", "phone"));
    let (client, _events) = seqline_client::Client::connect(config).await.unwrap();
    let one = client.send(conv.clone(), "one").await.unwrap();
    let big = client.send(conv.clone(), "x".repeat(MAX_BODY + 1)).await.unwrap();
    let two = client.send(conv.clone(), "two").await.unwrap();
    let within = |h: seqline_client::SendHandle| async move {
        tokio::time::timeout(Duration::from_secs(10), h.outcome())
            .await
            .unwrap()
    };
    assert_eq!(within(one).await, SendState::Sent(2));
    match within(big).await {
        SendState::Failed(FailReason::Rejected { code, .. }) => assert_eq!(code, ErrorCode::TooLarge),
        other => panic!("{other:?}"),
    }
    assert_eq!(within(two).await, SendState::Sent(3));
    let three = client.send(conv.clone(), "three").await.unwrap();
    assert_eq!(within(three).await, SendState::Sent(4));
}
