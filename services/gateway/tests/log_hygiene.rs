//! Tokens, the signing secret and message bodies never reach the logs:
//! every record the gateway writes (all levels, with span fields) while it
//! refuses bad tokens, admits a good one and carries a message is captured
//! and searched. Its own test binary, because it installs the process-wide
//! subscriber (the gateway's tasks log from the runtime's threads).

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use seqline_core::token::{now_secs, TokenKey};
use serde_json::json;
use std::io::Write;
use std::sync::{Arc, Mutex};

/// Everything logged, as text.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Says hello with `token` and expects the refusal `code` and a close.
async fn refused(gw: &Gw, token: &str, code: &str) {
    let mut c = gw.connect().await;
    c.send(json!({"type": "hello", "token": token})).await;
    c.expect_error(code).await;
    assert_eq!(c.closed().await, Some(1008));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_secrets_and_bodies_never_reach_the_logs() {
    let logs = Captured::default();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(logs.clone())
        .init();

    let gw = Gw::start().await;
    let mut inbound = gw.inbound().await;
    let payload = format!(
        r#"{{"sub":"mallory","dev":"x","exp":{},"aud":"seqline"}}"#,
        now_secs() + 60
    );
    let key = TokenKey::new(SECRET);
    let mut tokens = Vec::new();
    let forged = TokenKey::new("another secret entirely").sign(&user("mallory"), &device("x"), now_secs(), 60);
    let expired = key.sign(&user("mallory"), &device("x"), now_secs() - 7200, 60);
    let jwk = key.sign_parts(br#"{"alg":"HS256","jwk":{"k":"AA"}}"#, payload.as_bytes());
    let kid = key.sign_parts(br#"{"alg":"HS256","kid":"../../etc/passwd"}"#, payload.as_bytes());
    let huge = format!("{}.{}", "h".repeat(3000), "s".repeat(2000));
    for (token, code) in [
        (&forged, "bad_token"),
        (&expired, "token_expired"),
        (&jwk, "bad_token"),
        (&kid, "bad_token"),
        (&huge, "bad_token"),
    ] {
        refused(&gw, token, code).await;
        tokens.push(token.clone());
    }
    // The HTTP API refuses the same tokens.
    for token in [&forged, &expired] {
        let (s, _) = gw.http("GET", "/v1/conversations", Some(token), None).await;
        assert_eq!(s, 401);
    }

    // A good token: admitted over WebSocket and HTTP, and a message sent.
    let good = gw.token("alice", "phone");
    let mut alice = gw.connect().await;
    alice.send(json!({"type": "hello", "token": good})).await;
    assert_eq!(alice.recv().await["type"], "welcome");
    let (s, _) = gw.http("GET", "/v1/conversations", Some(&good), None).await;
    assert_eq!(s, 200);
    let body = "body-that-must-not-be-logged-7f3a";
    let id = uuid::Uuid::new_v4();
    alice
        .send(json!({"type": "send", "id": id, "conv": "g:room", "body": body}))
        .await;
    match inbound.next().await {
        seqline_core::records::Command::Send(s) => assert_eq!(s.body, body),
        other => panic!("unexpected command {other:?}"),
    }
    tokens.push(good);
    drop(alice);
    gw.stop().await.unwrap();

    let text = logs.text();
    // The capture works: the connection was logged, with its user.
    assert!(text.contains("connection authenticated"), "{text}");
    assert!(
        text.contains("user_id=\"alice\"") || text.contains("user_id=alice"),
        "{text}"
    );
    for token in &tokens {
        assert!(!text.contains(token.as_str()), "a token was logged:\n{text}");
        // Nor any part that carries claims or a signature.
        for part in token.split('.').skip(1).filter(|p| p.len() >= 16) {
            assert!(!text.contains(part), "part of a token was logged: {part}\n{text}");
        }
    }
    assert!(!text.contains(SECRET), "the secret was logged");
    assert!(!text.contains("another secret entirely"));
    assert!(!text.contains(body), "a message body was logged");
}
