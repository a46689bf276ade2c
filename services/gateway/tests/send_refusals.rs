//! Sends the gateway refuses before sequencing: every refusal names the
//! message (`id`, `conv`, and the `message <id>: ` prefix); ids have one
//! spelling; a refused send never blocks the sends chained after it, also
//! across reconnects; and error texts quote at most a short, escaped
//! prefix of what the client sent.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use seqline_core::input::MAX_QUOTED_CHARS;
use seqline_core::records::Command;
use seqline_core::ClientMsgId;
use serde_json::{json, Value};

/// Reads the next command and checks it is the send `id` naming `prev`.
async fn published(inbound: &mut Inbound, id: uuid::Uuid, prev: Option<uuid::Uuid>) {
    match inbound.next().await {
        Command::Send(s) => {
            assert_eq!(s.client_msg_id.0, id, "another send was published");
            assert_eq!(s.prev.map(|p| p.0), prev, "the published prev of {id}");
        }
        other => panic!("unexpected command {other:?}"),
    }
}

/// A marker send must be the next and only command: nothing else got through.
async fn only_marker(c: &mut Client, inbound: &mut Inbound) {
    let id = uuid::Uuid::new_v4();
    c.send(json!({"type": "send", "id": id, "conv": "g:marker", "body": "marker"}))
        .await;
    published(inbound, id, None).await;
    inbound.assert_empty().await;
}

/// The refusal of a send names it: `id` as written, `conv` when valid, the
/// text prefix, no `req`.
fn assert_names(e: &Value, id: &str, conv: Option<&str>) {
    assert_eq!(e["type"], "error", "{e}");
    assert_eq!(e["id"], id, "{e}");
    assert_eq!(e["conv"].as_str(), conv, "{e}");
    assert!(e["req"].is_null(), "{e}");
    let text = e["message"].as_str().unwrap();
    assert!(text.starts_with(&format!("message {id}: ")), "{e}");
}

#[tokio::test]
async fn every_refusal_of_a_send_names_its_message() {
    let gw = Gw::start_with(|c| c.max_body_bytes = 100).await;
    let mut inbound = gw.inbound().await;
    let (mut c, _) = gw.login("alice", "phone").await;
    let id = uuid::Uuid::new_v4();
    let base = || json!({"type": "send", "id": id, "conv": "g:x", "body": "hi"});
    let with = |key: &str, value: Value| {
        let mut f = base();
        f[key] = value;
        f
    };
    let without = |key: &str| {
        let mut f = base();
        f.as_object_mut().unwrap().remove(key);
        f
    };
    let vclock: serde_json::Map<String, Value> = (0..1025).map(|i| (format!("u{i}"), json!(1))).collect();
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        ("a wrong-typed body", with("body", json!(7)), "invalid_field", "`body`"),
        (
            "a body over the limit",
            with("body", json!("x".repeat(101))),
            "too_large",
            "101 bytes",
        ),
        ("an empty body", with("body", json!("")), "invalid_field", "empty"),
        ("no body", without("body"), "invalid_field", "missing field `body`"),
        (
            "a bad prev",
            with("prev", json!("not-a-uuid")),
            "invalid_field",
            "`prev`",
        ),
        ("a wrong-typed prev", with("prev", json!(12)), "invalid_field", "`prev`"),
        (
            "a nil prev",
            with("prev", json!(uuid::Uuid::nil())),
            "invalid_field",
            "non-nil",
        ),
        ("prev = id", with("prev", json!(id)), "invalid_field", "itself"),
        (
            "an unknown field",
            with("sender", json!("bob")),
            "invalid_field",
            "unknown field \"sender\"",
        ),
        (
            "a wrong-typed priority",
            with("priority", json!("yes")),
            "invalid_field",
            "`priority`",
        ),
        (
            "a huge vector clock",
            with("vclock", Value::Object(vclock)),
            "invalid_field",
            "1024",
        ),
    ];
    for (what, frame, code, says) in cases {
        c.send(frame).await;
        let e = c.expect_error(code).await;
        assert_names(&e, &id.to_string(), Some("g:x"));
        assert!(e["message"].as_str().unwrap().contains(says), "{what}: {e}");
    }
    // An invalid conversation: the message is still named, without `conv`.
    c.send(with("conv", json!("g x"))).await;
    let e = c.expect_error("invalid_field").await;
    assert_names(&e, &id.to_string(), None);
    assert!(e["message"].as_str().unwrap().contains("`conv`"), "{e}");
    // An id in another spelling is named as written.
    let upper = id.to_string().to_uppercase();
    c.send(with("id", json!(upper))).await;
    let e = c.expect_error("invalid_field").await;
    assert_names(&e, &upper, Some("g:x"));
    assert!(e["message"].as_str().unwrap().contains("canonical form"), "{e}");
    // An id that cannot be read as one: nothing to name.
    for bad in [json!(5), json!("not-a-uuid")] {
        c.send(with("id", bad)).await;
        let e = c.expect_error("invalid_field").await;
        assert!(e.get("id").is_none(), "{e}");
        assert_eq!(e["conv"], "g:x", "{e}");
    }
    c.assert_alive().await;
    only_marker(&mut c, &mut inbound).await;
}

#[tokio::test]
async fn rate_limited_and_unauthenticated_sends_are_named_too() {
    let gw = Gw::start_with(|c| {
        c.max_sends_per_sec = 1;
        c.send_burst = 1;
    })
    .await;
    let mut pre = gw.connect().await;
    let early = uuid::Uuid::new_v4();
    pre.send(json!({"type": "send", "id": early, "conv": "g:x", "body": "hi"}))
        .await;
    let e = pre.expect_error("unauthenticated").await;
    assert_names(&e, &early.to_string(), Some("g:x"));

    let (mut c, _) = gw.login("alice", "phone").await;
    let ids: Vec<uuid::Uuid> = (0..2).map(|_| uuid::Uuid::new_v4()).collect();
    for id in &ids {
        c.send(json!({"type": "send", "id": id, "conv": "g:x", "body": "hi"}))
            .await;
    }
    let e = c.expect_error("rate_limited").await;
    assert_names(&e, &ids[1].to_string(), Some("g:x"));
}

#[tokio::test]
async fn ids_have_one_spelling_and_others_are_refused_without_effect() {
    let gw = Gw::start().await;
    let mut inbound = gw.inbound().await;
    let (mut c, _) = gw.login("alice", "phone").await;
    let u = uuid::Uuid::new_v4();
    let canonical = u.to_string();
    let spellings = [
        canonical.to_uppercase(),
        format!("{{{canonical}}}"),
        format!("urn:uuid:{canonical}"),
        u.simple().to_string(),
    ];
    for other in &spellings {
        // As the id...
        c.send(json!({"type": "send", "id": other, "conv": "g:x", "body": "hi"}))
            .await;
        let e = c.expect_error("invalid_field").await;
        assert_names(&e, other, Some("g:x"));
        let text = e["message"].as_str().unwrap();
        assert!(text.contains("`id`") && text.contains("canonical form"), "{e}");
        assert!(text.contains("lower-case") && text.contains("8-4-4-4-12"), "{e}");
        // ... and as prev.
        let id = uuid::Uuid::new_v4();
        c.send(json!({"type": "send", "id": id, "conv": "g:x", "body": "hi", "prev": other}))
            .await;
        let e = c.expect_error("invalid_field").await;
        assert_names(&e, &id.to_string(), Some("g:x"));
        let text = e["message"].as_str().unwrap();
        assert!(text.contains("`prev`") && text.contains("canonical form"), "{e}");
    }
    c.assert_alive().await;
    // Nothing of the above was published; the canonical spelling is.
    only_marker(&mut c, &mut inbound).await;
    c.send(json!({"type": "send", "id": canonical, "conv": "g:x", "body": "hi"}))
        .await;
    published(&mut inbound, u, None).await;
}

#[tokio::test]
async fn a_send_refused_at_the_gateway_never_blocks_the_sends_after_it() {
    let gw = Gw::start_with(|c| c.max_body_bytes = 100).await;
    let mut inbound = gw.inbound().await;
    let (mut c, _) = gw.login("alice", "phone").await;
    let send = |id: uuid::Uuid, prev: Option<uuid::Uuid>, body: Value| {
        let mut f = json!({"type": "send", "id": id, "conv": "g:x", "body": body});
        if let Some(p) = prev {
            f["prev"] = json!(p);
        }
        f
    };
    let [z, a, b, a2, cc, a3, d, e] = std::array::from_fn(|_| uuid::Uuid::new_v4());

    c.send(send(z, None, json!("z"))).await;
    published(&mut inbound, z, None).await;
    // a is too large; b names it, as the docs' pipelining client does, and
    // is published naming a's own prev.
    c.send(send(a, Some(z), json!("x".repeat(101)))).await;
    c.send(send(b, Some(a), json!("b"))).await;
    c.expect_error("too_large").await;
    published(&mut inbound, b, Some(z)).await;
    // A refusal found while decoding (a wrong-typed body) is skipped too.
    c.send(send(a2, Some(b), json!(7))).await;
    c.send(send(cc, Some(a2), json!("c"))).await;
    c.expect_error("invalid_field").await;
    published(&mut inbound, cc, Some(b)).await;
    // Refused on one connection, named on the next one.
    c.send(send(a3, Some(cc), json!("x".repeat(101)))).await;
    c.expect_error("too_large").await;
    c.ws.close(None).await.unwrap();
    let (mut c, _) = gw.login("alice", "phone").await;
    c.send(send(d, Some(a3), json!("d"))).await;
    published(&mut inbound, d, Some(cc)).await;
    // Another device's chain is its own: its prev is published as named.
    let (mut laptop, _) = gw.login("alice", "laptop").await;
    let l = uuid::Uuid::new_v4();
    laptop.send(send(l, Some(a3), json!("l"))).await;
    published(&mut inbound, l, Some(a3)).await;
    // A refused id sent again in a valid form is a real predecessor again.
    c.send(send(a, Some(d), json!("a, shorter"))).await;
    published(&mut inbound, a, Some(d)).await;
    c.send(send(e, Some(a), json!("e"))).await;
    published(&mut inbound, e, Some(a)).await;
    inbound.assert_empty().await;
}

/// An error text that quotes at most a short, escaped prefix of input.
fn assert_tame(e: &Value) {
    let text = e["message"].as_str().unwrap();
    assert!(
        text.chars().count() <= 400,
        "{} chars: {}",
        text.chars().count(),
        &text[..200]
    );
    let raw = |c: char| {
        c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}')
    };
    assert!(!text.chars().any(raw), "unescaped input: {text:?}");
    assert!(!text.contains(&"y".repeat(MAX_QUOTED_CHARS + 1)), "{text}");
}

#[tokio::test]
async fn error_texts_quote_at_most_a_short_escaped_prefix_of_input() {
    let gw = Gw::start().await;
    let mut inbound = gw.inbound().await;
    let long = format!("\u{1b}[2J\u{202e}\u{0}\n{}", "y".repeat(60_000));
    let id = ClientMsgId::random().to_string();
    // Before hello.
    let mut pre = gw.connect().await;
    pre.send(json!({"type": "hello", "token": 5, long.clone(): 1})).await;
    assert_tame(&pre.expect_error("invalid_field").await);

    let (mut c, _) = gw.login("alice", "phone").await;
    let frames: Vec<(Value, &str)> = vec![
        (json!({"type": "sync", "req": 1, "after": long}), "invalid_field"),
        (json!({"type": "history", "req": 1, "conv": long}), "invalid_field"),
        (json!({"type": "ping", long.clone(): 1}), "invalid_field"),
        (json!({"type": long.clone()}), "unknown_type"),
        (
            json!({"type": "poll", "req": 1, "convs": [{"conv": "g:a", "after": long}]}),
            "invalid_field",
        ),
        (json!({"type": "cursor", "user_seq": long}), "invalid_field"),
        (
            json!({"type": "read", "conv": "g:a", "conv_seq": 1, long.clone(): true}),
            "invalid_field",
        ),
        (
            json!({"type": "send", "id": long, "conv": "g:x", "body": "hi"}),
            "invalid_field",
        ),
        (
            json!({"type": "send", "id": id, "conv": "g:x", "body": "hi", "prev": long}),
            "invalid_field",
        ),
        (
            json!({"type": "send", "id": id, "conv": long, "body": "hi"}),
            "invalid_field",
        ),
        (
            json!({"type": "send", "id": id, "conv": "g:x", "body": "hi", long.clone(): 1}),
            "invalid_field",
        ),
        (
            json!({"type": "send", "id": id, "conv": "g:x", "body": "hi", "vclock": {"bob": long}}),
            "invalid_field",
        ),
    ];
    for (frame, code) in frames {
        c.send(frame).await;
        assert_tame(&c.expect_error(code).await);
    }
    // A valid conversation id of 160 characters: the text quotes 40 of
    // them, the `conv` field names it in full.
    let conv = format!("g:{}", "c".repeat(158));
    c.send(json!({"type": "poll", "req": 2, "convs": [{"conv": conv, "after": 0}]}))
        .await;
    let e = c.expect_error("not_member").await;
    assert_eq!((&e["req"], &e["conv"]), (&json!(2), &json!(conv)), "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains(&format!("\"g:{}…\"", "c".repeat(38))),
        "{e}"
    );
    // The quote: 40 characters of input (7 before the y's), escaped, cut.
    c.send(json!({"type": "sync", "req": 1, "after": long})).await;
    let e = c.expect_error("invalid_field").await;
    let text = e["message"].as_str().unwrap();
    let quote = format!("\"\\u{{1b}}[2J\\u{{202e}}\\u{{0}}\\n{}…\"", "y".repeat(33));
    assert_eq!(text, format!("invalid type: string {quote}, expected u64"));
    // A duplicate key, quoted the same way (twice 30,000 characters: the
    // frame stays under `max_frame_bytes`).
    let key = format!("\u{202e}{}", "y".repeat(30_000));
    c.send_text(&format!(r#"{{"type":"ping","{key}":1,"{key}":2}}"#)).await;
    assert_tame(&c.expect_error("bad_frame").await);
    c.assert_alive().await;
    only_marker(&mut c, &mut inbound).await;
}
