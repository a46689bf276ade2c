//! Bad input from an authenticated client: each gets its own error code, the
//! connection survives (or closes as the protocol says), nothing reaches the
//! inbound topic, and another client is not affected.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use futures_util::SinkExt;
use seqline_core::records::Command;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// Sends a good message from `c` and checks it is the first (and only)
/// command on the inbound topic: nothing the bad input did got through.
async fn only_marker_published(c: &mut Client, inbound: &mut Inbound) {
    let id = uuid::Uuid::new_v4();
    c.send(json!({"type": "send", "id": id, "conv": "g:marker", "body": "marker"}))
        .await;
    match inbound.next().await {
        Command::Send(s) => assert_eq!(s.client_msg_id.0, id, "a bad frame was published"),
        other => panic!("unexpected command {other:?}"),
    }
    inbound.assert_empty().await;
}

/// Sends `frame` as text, expects `code`, and checks the connection, the
/// topic and a bystander.
async fn refused(text: &str, code: &str) -> Value {
    let gw = Gw::start().await;
    let mut inbound = gw.inbound().await;
    let (mut bystander, _) = gw.login("bob", "phone").await;
    let (mut c, _) = gw.login("alice", "phone").await;
    c.send_text(text).await;
    let e = c.expect_error(code).await;
    c.assert_alive().await;
    bystander.assert_alive().await;
    only_marker_published(&mut c, &mut inbound).await;
    e
}

#[tokio::test]
async fn not_json_is_bad_frame() {
    refused("hello there", "bad_frame").await;
    refused(r#"{"type":"ping""#, "bad_frame").await;
}

#[tokio::test]
async fn json_that_is_not_an_object_is_bad_frame() {
    refused("[1,2,3]", "bad_frame").await;
    refused("42", "bad_frame").await;
    refused("null", "bad_frame").await;
}

#[tokio::test]
async fn missing_or_non_string_type_is_bad_frame() {
    refused(r#"{"req":1}"#, "bad_frame").await;
    refused(r#"{"type":5,"req":1}"#, "bad_frame").await;
}

#[tokio::test]
async fn unknown_type_is_unknown_type_and_echoes_req() {
    let e = refused(r#"{"type":"subscribe","req":77,"convs":[]}"#, "unknown_type").await;
    assert_eq!(e["req"], 77);
}

#[tokio::test]
async fn wrong_field_types_are_invalid_field() {
    let e = refused(r#"{"type":"sync","req":3,"after":"ten"}"#, "invalid_field").await;
    assert_eq!(e["req"], 3);
    refused(r#"{"type":"sync","req":3,"after":-1}"#, "invalid_field").await;
    refused(
        r#"{"type":"send","id":"6f1c5b1e-0e0a-4d6e-9a57-4c1b2a3d4e5f","conv":"g:x","body":7}"#,
        "invalid_field",
    )
    .await;
    refused(r#"{"type":"sync","req":3,"after":0,"limit":0}"#, "invalid_field").await;
}

#[tokio::test]
async fn unknown_fields_are_invalid_field_so_a_sender_cannot_be_spoofed() {
    let frame = json!({"type": "send", "id": uuid::Uuid::new_v4(), "conv": "g:x", "body": "hi", "sender": "bob"});
    let e = refused(&frame.to_string(), "invalid_field").await;
    assert!(e["message"].as_str().unwrap().contains("sender"), "{e}");
}

#[tokio::test]
async fn invalid_ids_are_invalid_field() {
    let id = uuid::Uuid::new_v4();
    refused(
        &json!({"type": "send", "id": id, "conv": "g x", "body": "hi"}).to_string(),
        "invalid_field",
    )
    .await;
    refused(
        &json!({"type": "send", "id": "not-a-uuid", "conv": "g:x", "body": "hi"}).to_string(),
        "invalid_field",
    )
    .await;
    refused(
        &json!({"type": "send", "id": "", "conv": "g:x", "body": "hi"}).to_string(),
        "invalid_field",
    )
    .await;
    let nil = uuid::Uuid::nil();
    refused(
        &json!({"type": "send", "id": nil, "conv": "g:x", "body": "hi"}).to_string(),
        "invalid_field",
    )
    .await;
    let long = "c".repeat(161);
    refused(
        &json!({"type": "history", "req": 1, "conv": long}).to_string(),
        "invalid_field",
    )
    .await;
}

#[tokio::test]
async fn duplicate_keys_and_deep_nesting_are_bad_frame() {
    let id = uuid::Uuid::new_v4();
    let dup = format!(r#"{{"type":"send","id":"{id}","conv":"g:a","conv":"g:b","body":"hi"}}"#);
    refused(&dup, "bad_frame").await;
    let deep = format!(r#"{{"type":"ping","x":{}{}}}"#, "[".repeat(500), "]".repeat(500));
    refused(&deep, "bad_frame").await;
}

#[tokio::test]
async fn lone_surrogates_are_bad_frame() {
    let id = uuid::Uuid::new_v4();
    refused(
        &format!(r#"{{"type":"send","id":"{id}","conv":"g:x","body":"\ud800"}}"#),
        "bad_frame",
    )
    .await;
}

#[tokio::test]
async fn body_over_the_limit_is_too_large_and_the_limit_itself_passes() {
    let gw = Gw::start_with(|c| c.max_body_bytes = 100).await;
    let mut inbound = gw.inbound().await;
    let (mut c, _) = gw.login("alice", "phone").await;
    let over = uuid::Uuid::new_v4();
    c.send(json!({"type": "send", "id": over, "conv": "g:x", "body": "x".repeat(101)}))
        .await;
    let e = c.expect_error("too_large").await;
    assert!(
        e["message"].as_str().unwrap().starts_with(&format!("message {over}")),
        "names the message: {e}"
    );
    c.assert_alive().await;
    let at = uuid::Uuid::new_v4();
    c.send(json!({"type": "send", "id": at, "conv": "g:x", "body": "é".repeat(50)}))
        .await;
    match inbound.next().await {
        Command::Send(s) => assert_eq!(s.client_msg_id.0, at),
        other => panic!("{other:?}"),
    }
    inbound.assert_empty().await;
}

#[tokio::test]
async fn nul_and_bidi_controls_pass_through_verbatim() {
    let gw = Gw::start().await;
    let mut inbound = gw.inbound().await;
    let (mut c, _) = gw.login("alice", "phone").await;
    let body = "a\u{0}b\u{202e}c\u{2066}d";
    c.send(json!({"type": "send", "id": uuid::Uuid::new_v4(), "conv": "g:x", "body": body}))
        .await;
    match inbound.next().await {
        Command::Send(s) => assert_eq!(s.body, body),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn empty_body_and_self_prev_are_invalid_field() {
    refused(
        &json!({"type": "send", "id": uuid::Uuid::new_v4(), "conv": "g:x", "body": ""}).to_string(),
        "invalid_field",
    )
    .await;
    let id = uuid::Uuid::new_v4();
    refused(
        &json!({"type": "send", "id": id, "conv": "g:x", "body": "x", "prev": id}).to_string(),
        "invalid_field",
    )
    .await;
}

#[tokio::test]
async fn binary_frames_are_bad_frame_and_survive() {
    let gw = Gw::start().await;
    let mut inbound = gw.inbound().await;
    let (mut c, _) = gw.login("alice", "phone").await;
    c.ws.send(Message::Binary(vec![0x7b, 0x7d].into())).await.unwrap();
    c.expect_error("bad_frame").await;
    c.assert_alive().await;
    only_marker_published(&mut c, &mut inbound).await;
}

#[tokio::test]
async fn invalid_utf8_closes_with_1007_and_spares_others() {
    let gw = Gw::start().await;
    let mut inbound = gw.inbound().await;
    let (mut bystander, _) = gw.login("bob", "phone").await;
    let (mut c, _) = gw.login("alice", "phone").await;
    // A text frame whose payload is not UTF-8, written below the client's checks.
    let frame = tokio_tungstenite::tungstenite::protocol::frame::Frame::message(
        vec![0x22, 0xff, 0xfe, 0x22],
        tokio_tungstenite::tungstenite::protocol::frame::coding::OpCode::Data(
            tokio_tungstenite::tungstenite::protocol::frame::coding::Data::Text,
        ),
        true,
    );
    c.ws.send(Message::Frame(frame)).await.unwrap();
    assert_eq!(c.closed().await, Some(1007));
    bystander.assert_alive().await;
    only_marker_published(&mut bystander, &mut inbound).await;
}

#[tokio::test]
async fn frames_over_the_limit_close_with_1009_and_spare_others() {
    let gw = Gw::start_with(|c| {
        c.max_frame_bytes = 4096;
        c.max_body_bytes = 1024;
    })
    .await;
    let mut inbound = gw.inbound().await;
    let (mut bystander, _) = gw.login("bob", "phone").await;
    let (mut c, _) = gw.login("alice", "phone").await;
    let big = json!({"type": "send", "id": uuid::Uuid::new_v4(), "conv": "g:x", "body": "x".repeat(5000)});
    let _ = c.ws.send(Message::Text(big.to_string().into())).await;
    assert_eq!(c.closed().await, Some(1009));
    bystander.assert_alive().await;
    only_marker_published(&mut bystander, &mut inbound).await;
}

#[tokio::test]
async fn sends_over_the_rate_are_rate_limited_naming_the_message() {
    let gw = Gw::start_with(|c| {
        c.max_sends_per_sec = 1;
        c.send_burst = 3;
    })
    .await;
    let mut inbound = gw.inbound().await;
    let (mut c, _) = gw.login("alice", "phone").await;
    let ids: Vec<uuid::Uuid> = (0..4).map(|_| uuid::Uuid::new_v4()).collect();
    for id in &ids {
        c.send(json!({"type": "send", "id": id, "conv": "g:x", "body": "hi"}))
            .await;
    }
    let e = c.expect_error("rate_limited").await;
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .starts_with(&format!("message {}", ids[3])),
        "{e}"
    );
    c.assert_alive().await;
    for id in &ids[..3] {
        match inbound.next().await {
            Command::Send(s) => assert_eq!(s.client_msg_id.0, *id),
            other => panic!("{other:?}"),
        }
    }
    inbound.assert_empty().await;
}

#[tokio::test]
async fn request_floods_are_rate_limited() {
    let gw = Gw::start_with(|c| c.max_requests_per_sec = 5).await;
    let (mut c, _) = gw.login("alice", "phone").await;
    for req in 0..50 {
        c.send(json!({"type": "ping", "req": req})).await;
    }
    let mut limited = 0;
    for req in 0..50 {
        let f = c.recv().await;
        assert_eq!(f["req"], req, "answers keep the order: {f}");
        if f["type"] == "error" {
            assert_eq!(f["code"], "rate_limited");
            limited += 1;
        }
    }
    assert!(limited >= 25, "only {limited} of 50 were limited");
}
