//! Connecting: hello/welcome, presence, and every way authentication fails.

#![allow(clippy::unwrap_used)]

mod common;

use base64::Engine;
use common::*;
use seqline_core::ports::Presence;
use seqline_core::protocol::PROTOCOL_VERSION;
use seqline_core::token::{now_secs, TokenKey};
use serde_json::json;
use std::time::Duration;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test]
async fn hello_gets_welcome_and_registers_presence() {
    let gw = Gw::start().await;
    let (mut c, welcome) = gw.login("alice", "phone").await;
    assert_eq!(welcome["protocol"], PROTOCOL_VERSION);
    assert_eq!(welcome["user"], "alice");
    assert_eq!(welcome["device"], "phone");
    assert_eq!(welcome["head"], 0);
    assert!(welcome["cursor"].is_null());
    assert_eq!(welcome["limits"]["max_frame_bytes"], gw.config.max_frame_bytes);
    assert_eq!(welcome["limits"]["max_body_bytes"], gw.config.max_body_bytes);
    assert_eq!(welcome["limits"]["max_page"], gw.config.max_page);
    assert_eq!(welcome["limits"]["max_sends_per_sec"], gw.config.max_sends_per_sec);
    let found = gw.presence.lookup(&[user("alice")]).await.unwrap();
    let loc = &found[&user("alice")];
    assert_eq!((loc[0].device.as_str(), &loc[0].gateway), ("phone", &gw.id));
    c.assert_alive().await;

    // Leaving removes the presence entry.
    c.ws.close(None).await.unwrap();
    seqline_testkit::wait::until(WAIT, "presence to be removed", || async {
        gw.presence
            .lookup(&[user("alice")])
            .await
            .unwrap()
            .is_empty()
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn frames_before_hello_are_unauthenticated_then_closed() {
    let gw = Gw::start().await;
    let mut inbound = gw.inbound().await;
    let mut c = gw.connect().await;
    let id = uuid::Uuid::new_v4();
    c.send(json!({"type": "send", "id": id, "conv": "g:x", "body": "hi"}))
        .await;
    c.expect_error("unauthenticated").await;
    c.send(json!({"type": "ping", "req": 1})).await;
    c.expect_error("unauthenticated").await;
    c.send(json!({"type": "sync", "req": 2, "after": 0})).await;
    c.expect_error("unauthenticated").await;
    assert_eq!(c.closed().await, Some(1008));
    // Nothing was published; a good client still works.
    let (mut ok, _) = gw.login("bob", "phone").await;
    ok.assert_alive().await;
    inbound.assert_empty().await;
}

async fn refused_token(token: String, code: &str) {
    let gw = Gw::start().await;
    let (mut other, _) = gw.login("bob", "phone").await;
    let mut c = gw.connect().await;
    c.send(json!({"type": "hello", "token": token})).await;
    let e = c.expect_error(code).await;
    assert!(!e["message"].as_str().unwrap().contains(&token[..10.min(token.len())]));
    assert_eq!(c.closed().await, Some(1008));
    assert!(gw.presence.lookup(&[user("mallory")]).await.unwrap().is_empty());
    other.assert_alive().await;
}

#[tokio::test]
async fn forged_token_is_bad_token_and_closes() {
    let forged = TokenKey::new("another secret entirely").sign(&user("mallory"), &device("x"), now_secs(), 60);
    refused_token(forged, "bad_token").await;
}

#[tokio::test]
async fn alg_none_token_is_bad_token() {
    let payload = format!(
        r#"{{"sub":"mallory","dev":"x","exp":{},"aud":"seqline"}}"#,
        now_secs() + 60
    );
    let token = format!("{}.{}.", b64(br#"{"alg":"none"}"#), b64(payload.as_bytes()));
    refused_token(token, "bad_token").await;
}

#[tokio::test]
async fn algorithm_confusion_and_embedded_keys_are_bad_tokens() {
    let key = TokenKey::new(SECRET);
    let payload = format!(
        r#"{{"sub":"mallory","dev":"x","exp":{},"aud":"seqline"}}"#,
        now_secs() + 60
    );
    for header in [
        &br#"{"alg":"HS512"}"#[..],
        br#"{"alg":"RS256"}"#,
        br#"{"alg":"HS256","jwk":{"k":"AA"}}"#,
        br#"{"alg":"HS256","jku":"https://evil.example/keys.json"}"#,
        br#"{"alg":"HS256","x5u":"https://evil.example/cert.pem"}"#,
    ] {
        refused_token(key.sign_parts(header, payload.as_bytes()), "bad_token").await;
    }
}

#[tokio::test]
async fn odd_key_ids_are_bad_tokens() {
    let key = TokenKey::new(SECRET);
    let payload = format!(
        r#"{{"sub":"mallory","dev":"x","exp":{},"aud":"seqline"}}"#,
        now_secs() + 60
    );
    let long = format!(r#"{{"alg":"HS256","kid":"{}"}}"#, "k".repeat(65));
    for header in [
        long.as_bytes(),
        br#"{"alg":"HS256","kid":42}"#,
        br#"{"alg":"HS256","kid":"../../../etc/passwd"}"#,
        br#"{"alg":"HS256","kid":"/dev/zero"}"#,
    ] {
        // Signed with the right secret: only the key id is wrong.
        refused_token(key.sign_parts(header, payload.as_bytes()), "bad_token").await;
    }
}

#[tokio::test]
async fn malformed_tampered_and_wrong_audience_tokens_are_bad_tokens() {
    let key = TokenKey::new(SECRET);
    let good = key.sign(&user("alice"), &device("x"), now_secs(), 60);
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    parts[1] = b64(format!(
        r#"{{"sub":"mallory","dev":"x","exp":{},"aud":"seqline"}}"#,
        now_secs() + 60
    )
    .as_bytes());
    let aud = format!(
        r#"{{"sub":"mallory","dev":"x","exp":{},"aud":"other"}}"#,
        now_secs() + 60
    );
    let no_exp = r#"{"sub":"mallory","dev":"x","aud":"seqline"}"#;
    for token in [
        parts.join("."),
        key.sign_parts(br#"{"alg":"HS256"}"#, aud.as_bytes()),
        key.sign_parts(br#"{"alg":"HS256"}"#, no_exp.as_bytes()),
        "not.a.token-at-all".to_string(),
        "x".repeat(5000),
    ] {
        refused_token(token, "bad_token").await;
    }
}

#[tokio::test]
async fn expired_and_not_yet_valid_tokens_are_token_expired() {
    let key = TokenKey::new(SECRET);
    refused_token(
        key.sign(&user("mallory"), &device("x"), now_secs() - 7200, 60),
        "token_expired",
    )
    .await;
    let future = format!(
        r#"{{"sub":"mallory","dev":"x","exp":{},"nbf":{},"aud":"seqline"}}"#,
        now_secs() + 9000,
        now_secs() + 3600
    );
    refused_token(
        key.sign_parts(br#"{"alg":"HS256"}"#, future.as_bytes()),
        "token_expired",
    )
    .await;
}

#[tokio::test]
async fn hello_with_a_non_string_token_is_invalid_field() {
    let gw = Gw::start().await;
    let mut c = gw.connect().await;
    c.send(json!({"type": "hello", "token": 42})).await;
    c.expect_error("invalid_field").await;
    // Still waiting for a good hello.
    c.send(json!({"type": "hello", "token": gw.token("alice", "phone")}))
        .await;
    assert_eq!(c.recv().await["type"], "welcome");
}

#[tokio::test]
async fn second_hello_is_already_authenticated_and_survives() {
    let gw = Gw::start().await;
    let (mut c, _) = gw.login("alice", "phone").await;
    c.send(json!({"type": "hello", "token": gw.token("bob", "phone")}))
        .await;
    c.expect_error("already_authenticated").await;
    c.assert_alive().await;
    assert!(gw.presence.lookup(&[user("bob")]).await.unwrap().is_empty());
}

#[tokio::test]
async fn no_hello_in_time_closes() {
    let gw = Gw::start_with(|c| c.hello_timeout = Duration::from_millis(200)).await;
    let mut c = gw.connect().await;
    c.expect_error("unauthenticated").await;
    assert_eq!(c.closed().await, Some(1008));
}

#[tokio::test]
async fn a_token_that_expires_while_connected_closes_the_connection() {
    let gw = Gw::start().await;
    // Expired 27 s ago: still inside the 30 s leeway, for about 3 s more.
    let token = gw.key.sign(&user("alice"), &device("phone"), now_secs() - 87, 60);
    let mut c = gw.connect().await;
    c.send(json!({"type": "hello", "token": token})).await;
    assert_eq!(c.recv().await["type"], "welcome");
    c.expect_error("token_expired").await;
    assert_eq!(c.closed().await, Some(1008));
}
