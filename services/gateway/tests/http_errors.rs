//! HTTP errors: one JSON shape for every status (404 and 405 included),
//! duplicate keys refused as over WebSocket, request ids in canonical form
//! only, and error texts that quote at most a short, escaped prefix of the
//! body.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::{json, Value};

/// `{"error": {"code": code, "message": "…"}}` and nothing else.
fn assert_shape(status: u16, body: &Value, want_status: u16, code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert_eq!(body.as_object().map(|o| o.len()), Some(1), "{body}");
    assert_eq!(body["error"].as_object().map(|o| o.len()), Some(2), "{body}");
}

#[tokio::test]
async fn every_http_error_has_the_json_shape_404_and_405_included() {
    let gw = Gw::start().await;
    let token = gw.token("alice", "cli");
    for (method, path) in [
        ("DELETE", "/v1/conversations"),
        ("PUT", "/v1/conversations/g:team"),
        ("GET", "/v1/conversations/g:team/members"),
        ("POST", "/healthz"),
        ("POST", "/metrics"),
        ("DELETE", "/readyz"),
    ] {
        let (s, b) = gw.http(method, path, Some(&token), Some(b"{}")).await;
        assert_shape(s, &b, 405, "method_not_allowed");
    }
    for path in ["/nowhere", "/v1/conversations/g:team/nothing", "/v2/ws"] {
        let (s, b) = gw.http("GET", path, Some(&token), None).await;
        assert_shape(s, &b, 404, "not_found");
    }
}

#[tokio::test]
async fn duplicate_keys_are_bad_frame_over_http_as_over_websocket() {
    let gw = Gw::start().await;
    let mut inbound = gw.inbound().await;
    let token = gw.token("alice", "cli");
    let body = br#"{"kind":"group","members":["bob"],"members":["mallory"]}"#;
    let (s, b) = gw.http("POST", "/v1/conversations", Some(&token), Some(body)).await;
    assert_shape(s, &b, 400, "bad_frame");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("duplicate key \"members\""),
        "{b}"
    );
    let body = br#"{"add":["bob"],"add":["mallory"]}"#;
    let (s, b) = gw
        .http("POST", "/v1/conversations/g:team/members", Some(&token), Some(body))
        .await;
    assert_shape(s, &b, 400, "bad_frame");
    let (mut c, _) = gw.login("alice", "phone").await;
    c.send_text(r#"{"type":"ping","req":1,"req":2}"#).await;
    c.expect_error("bad_frame").await;
    inbound.assert_empty().await;
}

#[tokio::test]
async fn request_ids_in_another_spelling_are_refused_without_effect() {
    let gw = Gw::start().await;
    let mut inbound = gw.inbound().await;
    let token = gw.token("alice", "cli");
    let u = uuid::Uuid::new_v4();
    let canonical = u.to_string();
    for other in [
        canonical.to_uppercase(),
        format!("{{{canonical}}}"),
        format!("urn:uuid:{canonical}"),
        u.simple().to_string(),
    ] {
        let body = json!({"kind": "group", "members": ["bob"], "request_id": other});
        let (s, b) = gw
            .http(
                "POST",
                "/v1/conversations",
                Some(&token),
                Some(body.to_string().as_bytes()),
            )
            .await;
        assert_shape(s, &b, 400, "invalid_field");
        assert!(
            b["error"]["message"].as_str().unwrap().contains("canonical form"),
            "{b}"
        );
        let body = json!({"add": ["bob"], "request_id": other});
        let (s, b) = gw
            .http(
                "POST",
                "/v1/conversations/g:team/members",
                Some(&token),
                Some(body.to_string().as_bytes()),
            )
            .await;
        assert_shape(s, &b, 400, "invalid_field");
    }
    inbound.assert_empty().await;
}

#[tokio::test]
async fn http_error_texts_quote_at_most_a_short_escaped_prefix_of_the_body() {
    let gw = Gw::start().await;
    let mut inbound = gw.inbound().await;
    let token = gw.token("alice", "cli");
    let long = format!("\u{1b}[2J\u{202e}\u{0}\n{}", "y".repeat(60_000));
    let bodies = [
        json!({"kind": long, "members": []}),
        json!({"kind": "group", "members": [], long.clone(): 1}),
        json!({"kind": "group", "members": [], "request_id": long}),
        json!({"kind": "group", "members": [], "title": 5, "x": long}),
        json!({"kind": "group", "members": [long]}),
        json!({"kind": "group", "id": long, "members": []}),
    ];
    for body in bodies {
        let (s, b) = gw
            .http(
                "POST",
                "/v1/conversations",
                Some(&token),
                Some(body.to_string().as_bytes()),
            )
            .await;
        assert_shape(s, &b, 400, "invalid_field");
        let text = b["error"]["message"].as_str().unwrap();
        assert!(text.chars().count() <= 400, "{} chars", text.chars().count());
        assert!(!text.chars().any(|c| c.is_control() || c == '\u{202e}'), "{text:?}");
        assert!(!text.contains(&"y".repeat(41)), "{text}");
    }
    let (s, b) = gw
        .http(
            "POST",
            "/v1/conversations/g:team/members",
            Some(&token),
            Some(json!({"add": ["bob"], long.clone(): 1}).to_string().as_bytes()),
        )
        .await;
    assert_shape(s, &b, 400, "invalid_field");
    let text = b["error"]["message"].as_str().unwrap();
    let quote = format!("\"\\u{{1b}}[2J\\u{{202e}}\\u{{0}}\\n{}…\"", "y".repeat(33));
    assert!(text.starts_with(&format!("unknown field {quote}")), "{text}");
    inbound.assert_empty().await;
}
