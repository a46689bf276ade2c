//! The HTTP API: create and change members through the (played) sequencer,
//! reads for members only, and every error shape.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use seqline_core::model::{ConversationKind, Outcome, RefusalCode};
use seqline_core::ports::Store;
use seqline_core::records::{Command, GatewayRecord, Receipt};
use seqline_core::{ConvSeq, ConversationId};
use seqline_testkit::fixtures;
use serde_json::{json, Value};
use std::time::Duration;

/// Plays the sequencer for one command: reads it and answers `outcome`.
async fn answer(gw: &Gw, inbound: &mut Inbound, outcome: Outcome) -> Command {
    let cmd = inbound.next().await;
    let receipt = Receipt {
        origin: cmd.origin().clone(),
        conv: cmd.conv().clone(),
        client_msg_id: cmd.client_msg_id(),
        outcome,
    };
    gw.deliver(GatewayRecord::Receipt(receipt)).await;
    cmd
}

async fn post(gw: &Gw, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    gw.http("POST", path, token, Some(body.to_string().as_bytes())).await
}

#[tokio::test]
async fn create_direct_waits_for_the_sequencer() {
    let gw = Gw::start().await;
    let mut inbound = gw.inbound().await;
    let token = gw.token("bob", "phone");
    let req = post(
        &gw,
        "/v1/conversations",
        Some(&token),
        json!({"kind": "direct", "members": ["alice"]}),
    );
    let (resp, cmd) = tokio::join!(
        req,
        answer(&gw, &mut inbound, Outcome::Sequenced { conv_seq: ConvSeq(1) })
    );
    assert_eq!(resp, (200, json!({"conv": "dm:alice:bob", "conv_seq": 1})));
    let Command::Create(c) = cmd else { panic!("{cmd:?}") };
    assert_eq!((c.conv.as_str(), c.kind), ("dm:alice:bob", ConversationKind::Direct));
    assert_eq!((c.origin.user.as_str(), c.origin.device.as_str()), ("bob", "phone"));
    assert_eq!(c.origin.gateway, gw.id);
    assert_ne!(c.origin.request, 0);
}

#[tokio::test]
async fn create_group_with_id_title_and_request_id() {
    let gw = Gw::start().await;
    let mut inbound = gw.inbound().await;
    let token = gw.token("alice", "phone");
    let rid = uuid::Uuid::new_v4();
    let body =
        json!({"kind": "group", "id": "g:team", "title": "Team", "members": ["bob", "carol"], "request_id": rid});
    let req = post(&gw, "/v1/conversations", Some(&token), body);
    let (resp, cmd) = tokio::join!(
        req,
        answer(&gw, &mut inbound, Outcome::Sequenced { conv_seq: ConvSeq(1) })
    );
    assert_eq!(resp, (200, json!({"conv": "g:team", "conv_seq": 1})));
    let Command::Create(c) = cmd else { panic!("{cmd:?}") };
    assert_eq!((c.title.as_str(), c.client_msg_id.0, c.members.len()), ("Team", rid, 2));

    // Without an id the group gets a random `g:<uuid>` one.
    let req = post(
        &gw,
        "/v1/conversations",
        Some(&token),
        json!({"kind": "group", "members": []}),
    );
    let (resp, _) = tokio::join!(
        req,
        answer(&gw, &mut inbound, Outcome::Sequenced { conv_seq: ConvSeq(1) })
    );
    assert_eq!(resp.0, 200);
    assert!(resp.1["conv"].as_str().unwrap().starts_with("g:"));
}

#[tokio::test]
async fn refusals_map_to_status_and_code() {
    let gw = Gw::start().await;
    let mut inbound = gw.inbound().await;
    let token = gw.token("alice", "phone");
    for (code, status) in [
        (RefusalCode::Conflict, 409),
        (RefusalCode::Forbidden, 403),
        (RefusalCode::Invalid, 400),
    ] {
        let req = post(
            &gw,
            "/v1/conversations/g:team/members",
            Some(&token),
            json!({"add": ["dave"]}),
        );
        let refused = Outcome::Refused {
            code,
            reason: "because".into(),
        };
        let ((s, body), _) = tokio::join!(req, answer(&gw, &mut inbound, refused));
        assert_eq!(s, status);
        assert_eq!(body["error"]["code"], serde_json::to_value(code).unwrap());
        assert_eq!(body["error"]["message"], "because");
    }
}

#[tokio::test]
async fn change_members_publishes_and_answers() {
    let gw = Gw::start().await;
    let mut inbound = gw.inbound().await;
    let token = gw.token("alice", "phone");
    let body = json!({"add": ["dave"], "remove": ["bob"], "request_id": uuid::Uuid::new_v4()});
    let req = post(&gw, "/v1/conversations/g:team/members", Some(&token), body);
    let (resp, cmd) = tokio::join!(
        req,
        answer(&gw, &mut inbound, Outcome::Sequenced { conv_seq: ConvSeq(4) })
    );
    assert_eq!(resp, (200, json!({"conv": "g:team", "conv_seq": 4})));
    let Command::ChangeMembers(m) = cmd else {
        panic!("{cmd:?}")
    };
    assert_eq!((m.add[0].as_str(), m.remove[0].as_str()), ("dave", "bob"));
}

#[tokio::test]
async fn no_receipt_in_time_is_504() {
    let gw = Gw::start_with(|c| c.http_receipt_timeout = Duration::from_millis(200)).await;
    let token = gw.token("alice", "phone");
    let (s, body) = post(
        &gw,
        "/v1/conversations",
        Some(&token),
        json!({"kind": "group", "members": []}),
    )
    .await;
    assert_eq!((s, body["error"]["code"].as_str()), (504, Some("unavailable")));
}

#[tokio::test]
async fn missing_forged_and_expired_tokens_are_401() {
    let gw = Gw::start().await;
    let mut inbound = gw.inbound().await;
    let body = json!({"kind": "direct", "members": ["bob"]});
    let (s, b) = post(&gw, "/v1/conversations", None, body.clone()).await;
    assert_eq!((s, b["error"]["code"].as_str()), (401, Some("unauthenticated")));
    let forged = seqline_core::token::TokenKey::new("not the right secret").sign(
        &user("alice"),
        &device("x"),
        seqline_core::token::now_secs(),
        60,
    );
    let (s, b) = post(&gw, "/v1/conversations", Some(&forged), body.clone()).await;
    assert_eq!((s, b["error"]["code"].as_str()), (401, Some("bad_token")));
    let old = gw
        .key
        .sign(&user("alice"), &device("x"), seqline_core::token::now_secs() - 7200, 60);
    let (s, b) = gw.http("GET", "/v1/conversations", Some(&old), None).await;
    assert_eq!((s, b["error"]["code"].as_str()), (401, Some("token_expired")));
    inbound.assert_empty().await;
}

#[tokio::test]
async fn bad_bodies_are_400_and_huge_ones_413() {
    let gw = Gw::start().await;
    let mut inbound = gw.inbound().await;
    let token = gw.token("alice", "phone");
    let (s, b) = gw
        .http("POST", "/v1/conversations", Some(&token), Some(b"{not json"))
        .await;
    assert_eq!((s, b["error"]["code"].as_str()), (400, Some("bad_frame")));
    for body in [
        json!({"kind": "direct", "members": ["bob", "carol"]}),
        json!({"kind": "direct", "members": ["alice"]}),
        json!({"kind": "channel", "members": []}),
        json!({"kind": "group", "members": ["no spaces"]}),
        json!({"kind": "group", "members": [], "creator": "bob"}),
        json!({"kind": "group", "id": "dm:alice:bob", "members": []}),
        json!({"kind": "group", "members": [], "request_id": uuid::Uuid::nil()}),
        json!({"kind": "group", "title": "t".repeat(300), "members": []}),
    ] {
        let (s, b) = post(&gw, "/v1/conversations", Some(&token), body.clone()).await;
        assert_eq!((s, b["error"]["code"].as_str()), (400, Some("invalid_field")), "{body}");
    }
    let many: Vec<String> = (0..1001).map(|i| format!("u{i}")).collect();
    let (s, b) = post(
        &gw,
        "/v1/conversations",
        Some(&token),
        json!({"kind": "group", "members": many}),
    )
    .await;
    assert_eq!((s, b["error"]["code"].as_str()), (400, Some("too_large")));
    let (s, b) = post(&gw, "/v1/conversations/g:x/members", Some(&token), json!({})).await;
    assert_eq!((s, b["error"]["code"].as_str()), (400, Some("invalid_field")));
    let (s, b) = post(
        &gw,
        "/v1/conversations/bad%20id/members",
        Some(&token),
        json!({"add": ["x"]}),
    )
    .await;
    assert_eq!((s, b["error"]["code"].as_str()), (400, Some("invalid_field")));

    let huge = vec![b' '; 200_000];
    let (s, b) = gw.http("POST", "/v1/conversations", Some(&token), Some(&huge)).await;
    assert_eq!((s, b["error"]["code"].as_str()), (413, Some("too_large")));
    inbound.assert_empty().await;
}

/// Starts a POST whose body is written by `write_body` (on its own task,
/// so an endless body can keep going); returns the status, the JSON body of
/// the answer, and how long it took. The server must also hang up.
async fn post_streamed<F, Fut>(gw: &Gw, head_extra: &str, write_body: F) -> (u16, Value, Duration)
where
    F: FnOnce(tokio::net::tcp::OwnedWriteHalf) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let token = gw.token("alice", "phone");
    let stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let head = format!(
        "POST /v1/conversations HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\n{head_extra}\r\n"
    );
    write.write_all(head.as_bytes()).await.unwrap();
    let started = std::time::Instant::now();
    let writer = tokio::spawn(write_body(write));
    let mut raw = Vec::new();
    // Reads to the end: the server answers and then closes the connection.
    tokio::time::timeout(WAIT, read.read_to_end(&mut raw))
        .await
        .expect("an answer and a hang-up in time")
        .unwrap_or_default();
    let took = started.elapsed();
    writer.abort();
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        // One chunk: "<hex>\r\n<json>\r\n0\r\n\r\n".
        body.split("\r\n").nth(1).unwrap_or_default()
    } else {
        body
    };
    (status, serde_json::from_str(body).unwrap_or(Value::Null), took)
}

#[tokio::test]
async fn endless_and_stalled_bodies_are_cut_off() {
    use tokio::io::AsyncWriteExt;
    let gw = Gw::start_with(|c| c.http_body_timeout = Duration::from_millis(300)).await;
    let mut inbound = gw.inbound().await;

    // A chunked body that never ends: refused once it passes 64 KiB.
    let (s, b, _) = post_streamed(&gw, "Transfer-Encoding: chunked\r\n", |mut w| async move {
        let chunk = format!("{:x}\r\n{}\r\n", 8192, " ".repeat(8192));
        while w.write_all(chunk.as_bytes()).await.is_ok() {}
    })
    .await;
    assert_eq!((s, b["error"]["code"].as_str()), (413, Some("too_large")), "{b}");

    // A body that stops halfway: 408 at the deadline, then a hang-up.
    let (s, b, took) = post_streamed(&gw, "Content-Length: 1000\r\n", |mut w| async move {
        w.write_all(br#"{"kind":"group","#).await.unwrap();
        std::future::pending::<()>().await;
    })
    .await;
    assert_eq!((s, b["error"]["code"].as_str()), (408, Some("bad_frame")), "{b}");
    assert!(took >= Duration::from_millis(300), "cut before the deadline: {took:?}");

    // A body trickling in a byte at a time, chunked, forever: the deadline
    // is for the whole body, so it is cut off the same way.
    let (s, b, took) = post_streamed(&gw, "Transfer-Encoding: chunked\r\n", |mut w| async move {
        while w.write_all(b"1\r\n \r\n").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!((s, b["error"]["code"].as_str()), (408, Some("bad_frame")), "{b}");
    assert!(took < Duration::from_secs(3), "{took:?}");

    // Nothing was published; the API still answers.
    inbound.assert_empty().await;
    let token = gw.token("alice", "phone");
    let (s, _) = gw.http("GET", "/v1/conversations", Some(&token), None).await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn adding_1001_members_at_once_is_too_large_and_nothing_is_published() {
    let gw = Gw::start().await;
    let mut inbound = gw.inbound().await;
    let token = gw.token("alice", "phone");
    let many: Vec<String> = (0..1001).map(|i| format!("u{i}")).collect();
    let (s, b) = post(
        &gw,
        "/v1/conversations/g:team/members",
        Some(&token),
        json!({"add": many}),
    )
    .await;
    assert_eq!((s, b["error"]["code"].as_str()), (400, Some("too_large")), "{b}");
    assert!(b["error"]["message"].as_str().unwrap().contains("1000"), "{b}");
    // Adds and removes count together.
    let add: Vec<String> = (0..600).map(|i| format!("a{i}")).collect();
    let remove: Vec<String> = (0..401).map(|i| format!("r{i}")).collect();
    let (s, b) = post(
        &gw,
        "/v1/conversations/g:team/members",
        Some(&token),
        json!({"add": add, "remove": remove}),
    )
    .await;
    assert_eq!((s, b["error"]["code"].as_str()), (400, Some("too_large")), "{b}");
    inbound.assert_empty().await;
    // Exactly 1000 is accepted and published as one command.
    let thousand: Vec<String> = (0..1000).map(|i| format!("u{i}")).collect();
    let req = post(
        &gw,
        "/v1/conversations/g:team/members",
        Some(&token),
        json!({"add": thousand}),
    );
    let (resp, cmd) = tokio::join!(
        req,
        answer(&gw, &mut inbound, Outcome::Sequenced { conv_seq: ConvSeq(2) })
    );
    assert_eq!(resp.0, 200, "{}", resp.1);
    let Command::ChangeMembers(m) = cmd else {
        panic!("{cmd:?}")
    };
    assert_eq!(m.add.len(), 1000);
    inbound.assert_empty().await;
}

#[tokio::test]
async fn reads_are_for_members_only() {
    let gw = Gw::start().await;
    let conv = ConversationId::parse("g:room").unwrap();
    gw.store
        .commit_conversation(fixtures::create_batch(&conv, &user("alice"), &[user("bob")]))
        .await
        .unwrap();
    gw.store
        .commit_conversation(fixtures::messages_batch(&conv, 0, 3, &user("alice")))
        .await
        .unwrap();
    let bob = gw.token("bob", "phone");
    let (s, b) = gw.http("GET", "/v1/conversations/g:room", Some(&bob), None).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        (b["kind"].as_str(), b["head"].as_u64(), b["created_by"].as_str()),
        (Some("group"), Some(3), Some("alice"))
    );
    let members: Vec<(String, String)> = b["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["user"].as_str().unwrap().into(), m["role"].as_str().unwrap().into()))
        .collect();
    assert!(members.contains(&("alice".into(), "admin".into())) && members.contains(&("bob".into(), "member".into())));
    let (s, b) = gw.http("GET", "/v1/conversations", Some(&bob), None).await;
    assert_eq!((s, b), (200, json!({"conversations": ["g:room"]})));

    let carol = gw.token("carol", "phone");
    let not_in = gw.http("GET", "/v1/conversations/g:room", Some(&carol), None).await;
    let missing = gw.http("GET", "/v1/conversations/g:nowhere", Some(&carol), None).await;
    assert_eq!(not_in.0, 403);
    assert_eq!(not_in, missing);
    assert_eq!(
        gw.http("GET", "/v1/conversations", Some(&carol), None).await.1,
        json!({"conversations": []})
    );
}

#[tokio::test]
async fn health_readiness_metrics_and_unknown_paths() {
    let gw = Gw::start().await;
    assert_eq!(
        gw.http("GET", "/healthz", None, None).await,
        (200, json!({"status": "ok"}))
    );
    assert_eq!(
        gw.http("GET", "/readyz", None, None).await,
        (200, json!({"status": "ready"}))
    );
    let (_c, _) = gw.login("alice", "phone").await;
    let (s, text) = gw.http("GET", "/metrics", None, None).await;
    assert_eq!(s, 200);
    let text = text.as_str().unwrap().to_owned();
    assert!(text.contains("seqline_gateway_connections_open 1"), "{text}");
    assert!(text.contains("seqline_gateway_errors_total{code=\"bad_frame\"}"));
    let (s, b) = gw.http("GET", "/v1/nothing/../here", None, None).await;
    assert_eq!((s, b["error"]["code"].as_str()), (404, Some("not_found")));
}
