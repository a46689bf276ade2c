//! Limits and lifecycles: origins, connection caps, a client that never
//! reads, huge declared frame lengths, idle connections, shutdown.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use seqline_core::model::TimelineEntry;
use seqline_core::ports::Presence;
use seqline_core::records::{GatewayRecord, Package};
use seqline_core::{ConversationId, UserSeq};
use seqline_testkit::fixtures;
use serde_json::json;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Opens a WebSocket by hand (so the test controls every byte afterwards).
async fn raw_ws(gw: &Gw) -> TcpStream {
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    let req = "GET /v1/ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
               Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    s.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        s.read_exact(&mut b).await.unwrap();
        head.push(b[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
    s
}

/// Reads server frames until a close frame; returns its code.
async fn raw_close_code(s: &mut TcpStream) -> u16 {
    tokio::time::timeout(WAIT, async {
        loop {
            let mut h = [0u8; 2];
            s.read_exact(&mut h).await.unwrap();
            let mut len = u64::from(h[1] & 0x7f);
            if len == 126 {
                len = u64::from(s.read_u16().await.unwrap());
            } else if len == 127 {
                len = s.read_u64().await.unwrap();
            }
            let mut payload = vec![0u8; len as usize];
            s.read_exact(&mut payload).await.unwrap();
            if h[0] & 0x0f == 0x8 {
                return u16::from_be_bytes([payload[0], payload[1]]);
            }
        }
    })
    .await
    .expect("a close frame in time")
}

#[tokio::test]
async fn disallowed_origins_get_403_before_the_upgrade() {
    let gw = Gw::start_with(|c| c.allowed_origins = vec!["https://app.example".into()]).await;
    assert_eq!(
        Client::connect_with_origin(&gw.url(), "https://evil.example")
            .await
            .err(),
        Some(403)
    );
    let mut ok = Client::connect_with_origin(&gw.url(), "https://app.example")
        .await
        .unwrap();
    ok.send(json!({"type": "hello", "token": gw.token("alice", "web")}))
        .await;
    assert_eq!(ok.recv().await["type"], "welcome");
    // No Origin header at all: a non-browser client, allowed.
    gw.login("bob", "cli").await.0.assert_alive().await;
}

#[tokio::test]
async fn wrong_upgrade_headers_are_refused_with_a_json_error() {
    let gw = Gw::start().await;
    let (s, b) = gw.http("GET", "/v1/ws", None, None).await;
    assert!((400..500).contains(&s), "{s}");
    assert_eq!(b["error"]["code"], "bad_frame");
}

#[tokio::test]
async fn too_many_connections_get_503() {
    let gw = Gw::start_with(|c| {
        c.max_connections = 2;
        c.max_connections_per_user = 2;
    })
    .await;
    let (mut a, _) = gw.login("alice", "phone").await;
    let _b = gw.connect().await;
    assert_eq!(
        Client::connect_with_origin(&gw.url(), "https://x.example").await.err(),
        Some(503)
    );
    a.assert_alive().await;
    // A slot frees when a connection ends.
    a.ws.close(None).await.unwrap();
    seqline_testkit::wait::until(WAIT, "a free slot", || async {
        Client::connect_with_origin(&gw.url(), "https://x.example")
            .await
            .ok()
            .map(|_| ())
    })
    .await;
}

#[tokio::test]
async fn too_many_connections_of_one_user_close_with_1013() {
    let gw = Gw::start_with(|c| c.max_connections_per_user = 2).await;
    let (mut phone, _) = gw.login("alice", "phone").await;
    let (_laptop, _) = gw.login("alice", "laptop").await;
    let mut tablet = gw.connect().await;
    tablet
        .send(json!({"type": "hello", "token": gw.token("alice", "tablet")}))
        .await;
    tablet.expect_error("rate_limited").await;
    assert_eq!(tablet.closed().await, Some(1013));
    phone.assert_alive().await;
    gw.login("bob", "phone").await.0.assert_alive().await;
    let found = gw.presence.lookup(&[user("alice")]).await.unwrap();
    assert_eq!(found[&user("alice")].len(), 2);
}

/// Tries an upgrade that must be refused; returns the status and the JSON body.
async fn refused_upgrade(gw: &Gw) -> (u16, serde_json::Value) {
    match tokio_tungstenite::connect_async(gw.url()).await {
        Ok(_) => panic!("the upgrade was accepted"),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let body = resp.body().clone().unwrap_or_default();
            (resp.status().as_u16(), serde_json::from_slice(&body).unwrap())
        }
        Err(e) => panic!("connect failed: {e}"),
    }
}

async fn metric(gw: &Gw, line: &str) -> bool {
    let (_, m) = gw.http("GET", "/metrics", None, None).await;
    m.as_str().unwrap().lines().any(|l| l == line)
}

#[tokio::test]
async fn a_connection_storm_from_one_address_gets_503_beyond_its_cap() {
    let gw = Gw::start_with(|c| c.max_connections_per_ip = 2).await;
    // Two users from 127.0.0.1 fill the address's share.
    let (mut alice, _) = gw.login("alice", "phone").await;
    let (mut bob, _) = gw.login("bob", "phone").await;
    for _ in 0..3 {
        let (status, body) = refused_upgrade(&gw).await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["error"]["code"], "unavailable");
        assert_eq!(body["error"]["message"], "too many connections from this address");
    }
    assert!(metric(&gw, "seqline_gateway_errors_total{code=\"unavailable\"} 3").await);
    assert!(metric(&gw, "seqline_gateway_connections_open 2").await);
    alice.assert_alive().await;
    bob.assert_alive().await;
    // Closing one frees its place for the next connection from the address.
    alice.ws.close(None).await.unwrap();
    let mut carol = seqline_testkit::wait::until(WAIT, "a free place for the address", || async {
        match tokio_tungstenite::connect_async(gw.url()).await {
            Ok((ws, _)) => Some(Client { ws }),
            Err(_) => None,
        }
    })
    .await;
    carol
        .send(json!({"type": "hello", "token": gw.token("carol", "phone")}))
        .await;
    assert_eq!(carol.recv().await["type"], "welcome");
    carol.assert_alive().await;
    bob.assert_alive().await;
    let (status, _) = refused_upgrade(&gw).await;
    assert_eq!(status, 503, "the address is full again");
}

/// Sends `n` WebSocket control pings without reading, then reads what the
/// server sent until its close; returns the close code, the pongs and the
/// text frames.
async fn ping_flood(c: &mut Client, n: usize) -> (Option<u16>, usize, Vec<serde_json::Value>) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    for i in 0..n {
        // Once the server has closed, further pings may fail: that is fine.
        if c.ws.feed(Message::Ping(vec![(i % 251) as u8; 8].into())).await.is_err() {
            break;
        }
    }
    let _ = c.ws.flush().await;
    let (mut pongs, mut texts) = (0, Vec::new());
    let code = tokio::time::timeout(WAIT, async {
        loop {
            match c.ws.next().await {
                Some(Ok(Message::Pong(_))) => pongs += 1,
                Some(Ok(Message::Text(t))) => texts.push(serde_json::from_str(&t).unwrap()),
                Some(Ok(Message::Close(f))) => return f.map(|f| u16::from(f.code)),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return None,
            }
        }
    })
    .await
    .expect("the server closes the flooding connection in time");
    (code, pongs, texts)
}

#[tokio::test]
async fn a_websocket_ping_flood_is_closed_with_1008_and_spares_others() {
    let gw = Gw::start_with(|c| c.max_requests_per_sec = 20).await;
    let mut inbound = gw.inbound().await;
    let (mut bob, _) = gw.login("bob", "phone").await;
    // A keep-alive pace of control pings is fine.
    let (mut calm, _) = gw.login("carol", "phone").await;
    for _ in 0..3 {
        use futures_util::SinkExt;
        calm.ws
            .send(tokio_tungstenite::tungstenite::Message::Ping(b"hi".to_vec().into()))
            .await
            .unwrap();
    }
    calm.assert_alive().await;

    let (mut flooder, _) = gw.login("alice", "phone").await;
    let (code, pongs, texts) = ping_flood(&mut flooder, 10_000).await;
    assert_eq!(code, Some(1008), "closed as a policy violation");
    assert!(
        matches!(&texts[..], [e] if e["type"] == "error" && e["code"] == "rate_limited"),
        "one rate_limited error before the close: {texts:?}"
    );
    // Pongs are not queued per ping: at most one is pending at a time, and
    // the flood is cut after the rate's burst.
    assert!(pongs <= 21, "{pongs} pongs for a flood cut after 21 pings");
    assert!(metric(&gw, "seqline_gateway_errors_total{code=\"rate_limited\"} 1").await);

    // Before hello too.
    let mut anonymous = gw.connect().await;
    let (code, _, texts) = ping_flood(&mut anonymous, 10_000).await;
    assert_eq!(code, Some(1008));
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert_eq!(texts[0]["code"], "rate_limited");

    // Others carry on: they answer, and their sends are the only ones published.
    bob.assert_alive().await;
    calm.assert_alive().await;
    let id = uuid::Uuid::new_v4();
    bob.send(json!({"type": "send", "id": id, "conv": "g:room", "body": "still here"}))
        .await;
    match inbound.next().await {
        seqline_core::records::Command::Send(s) => assert_eq!(s.client_msg_id.0, id),
        other => panic!("unexpected command {other:?}"),
    }
    inbound.assert_empty().await;
    seqline_testkit::wait::until(WAIT, "the flooders' slots to be freed", || async {
        metric(&gw, "seqline_gateway_connections_open 2").await.then_some(())
    })
    .await;
    let found = gw.presence.lookup(&[user("alice")]).await.unwrap();
    assert!(found.is_empty(), "the flooder's presence is gone: {found:?}");
}

#[tokio::test]
async fn a_huge_declared_frame_length_closes_with_1009_without_reading_it() {
    let gw = Gw::start().await;
    let mut s = raw_ws(&gw).await;
    // FIN + text, masked, 64-bit length 2^62, mask key; no payload follows.
    let mut frame = vec![0x81, 0xff];
    frame.extend_from_slice(&(1u64 << 62).to_be_bytes());
    frame.extend_from_slice(&[1, 2, 3, 4]);
    s.write_all(&frame).await.unwrap();
    assert_eq!(raw_close_code(&mut s).await, 1009);
    gw.login("bob", "phone").await.0.assert_alive().await;
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_idle_timeout() {
    let gw = Gw::start_with(|c| c.idle_timeout = Duration::from_millis(300)).await;
    let mut s = raw_ws(&gw).await;
    // A hello, then silence: pings from the server go unanswered.
    let hello = json!({"type": "hello", "token": gw.token("alice", "raw")}).to_string();
    let mut frame = vec![0x81, 0x80 | 126];
    frame.extend_from_slice(&(hello.len() as u16).to_be_bytes());
    frame.extend_from_slice(&[0, 0, 0, 0]); // zero mask: payload as is
    frame.extend_from_slice(hello.as_bytes());
    s.write_all(&frame).await.unwrap();
    assert_eq!(raw_close_code(&mut s).await, 1000);
}

#[tokio::test]
async fn a_client_that_never_reads_is_disconnected_and_others_carry_on() {
    let gw = Gw::start_with(|c| c.send_queue = 2).await;
    let (slow, _) = gw.login("alice", "phone").await;
    let (mut bob, _) = gw.login("bob", "phone").await;
    let conv = ConversationId::parse("g:room").unwrap();
    // Far more than socket buffers hold: the queue must overflow.
    for batch in 0..8u64 {
        let records = (0..50u64)
            .map(|i| {
                let seq = batch * 50 + i + 1;
                let mut message = fixtures::message(&conv, seq, &user("bob"));
                message.body = "x".repeat(60_000);
                let entries = vec![TimelineEntry {
                    user_seq: UserSeq(seq),
                    message,
                }];
                let p = Package {
                    user: user("alice"),
                    device: device("phone"),
                    package_id: seq,
                    index: 0,
                    count: 1,
                    entries,
                };
                seqline_core::records::LogRecord::Gateway(GatewayRecord::Package(p))
            })
            .collect();
        use seqline_core::ports::Log;
        gw.log
            .append(&seqline_core::records::Topic::Gateway(gw.id.clone()), records)
            .await
            .unwrap();
    }
    seqline_testkit::wait::until(WAIT, "the slow client to be kicked", || async {
        let (_, m) = gw.http("GET", "/metrics", None, None).await;
        m.as_str()
            .unwrap()
            .contains("seqline_gateway_connections_kicked_total 1")
            .then_some(())
    })
    .await;
    seqline_testkit::wait::until(WAIT, "its presence to go", || async {
        gw.presence
            .lookup(&[user("alice")])
            .await
            .unwrap()
            .is_empty()
            .then_some(())
    })
    .await;
    bob.assert_alive().await;
    drop(slow);
}

/// Appends `n` single-entry packages for `u`/`d` with bodies of `body` bytes
/// to the gateway's topic, as fanout would.
async fn flood(gw: &Gw, u: &str, d: &str, n: u64, body: usize) {
    use seqline_core::ports::Log;
    let conv = ConversationId::parse("g:flood").unwrap();
    let records = (1..=n)
        .map(|seq| {
            let mut message = fixtures::message(&conv, seq, &user("bob"));
            message.body = "x".repeat(body);
            let p = Package {
                user: user(u),
                device: device(d),
                package_id: seq,
                index: 0,
                count: 1,
                entries: vec![TimelineEntry {
                    user_seq: UserSeq(seq),
                    message,
                }],
            };
            seqline_core::records::LogRecord::Gateway(GatewayRecord::Package(p))
        })
        .collect();
    gw.log
        .append(&seqline_core::records::Topic::Gateway(gw.id.clone()), records)
        .await
        .unwrap();
}

async fn metric_value(gw: &Gw, name: &str) -> Option<u64> {
    let (_, m) = gw.http("GET", "/metrics", None, None).await;
    m.as_str()?
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn a_slow_reader_is_closed_with_1008_once_its_byte_budget_is_full_and_sees_the_close_when_it_reads_again() {
    // The frame count (256) is far from reached: only the byte budget can
    // cut this client off. A generous close timeout: the client reads again
    // only after the test has seen the kick.
    let gw = Gw::start_with(|c| {
        c.send_queue_bytes = 64 * 1024;
        c.close_timeout = Duration::from_secs(30);
    })
    .await;
    let (mut slow, _) = gw.login("alice", "phone").await;
    let (mut bob, _) = gw.login("bob", "phone").await;
    // 200 pushes of 30 KB: about 6 MB, far more than the socket buffers and
    // the budget hold, far fewer frames than the frame bound. `slow` reads
    // nothing meanwhile.
    flood(&gw, "alice", "phone", 200, 30_000).await;
    seqline_testkit::wait::until(WAIT, "the slow reader to be kicked", || async {
        (metric_value(&gw, "seqline_gateway_connections_kicked_total").await == Some(1)).then_some(())
    })
    .await;
    // Its queue is given back at once, before the close is even written.
    seqline_testkit::wait::until(WAIT, "its queued frames to be freed", || async {
        (metric_value(&gw, "seqline_gateway_send_queue_bytes").await == Some(0)).then_some(())
    })
    .await;
    seqline_testkit::wait::until(WAIT, "its presence to go", || async {
        gw.presence
            .lookup(&[user("alice")])
            .await
            .unwrap()
            .is_empty()
            .then_some(())
    })
    .await;
    // Others are unaffected.
    bob.assert_alive().await;
    // Reading again: what was already on its way, then the close, 1008.
    let mut pushes = 0;
    let code = tokio::time::timeout(Duration::from_secs(30), async {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        loop {
            match slow.ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    let f: serde_json::Value = serde_json::from_str(&t).unwrap();
                    assert_eq!(f["type"], "push", "{f}");
                    pushes += 1;
                }
                Some(Ok(Message::Close(f))) => return f.map(|f| u16::from(f.code)),
                Some(Ok(_)) => {}
                other => panic!("the socket ended without a close frame: {other:?}"),
            }
        }
    })
    .await
    .expect("the close arrives");
    assert_eq!(code, Some(1008));
    assert!(pushes < 200, "the slow reader was cut off, not served everything");
    // It recovers by sync on a new connection.
    let (mut again, welcome) = gw.login("alice", "phone").await;
    assert_eq!(welcome["type"], "welcome");
    again.assert_alive().await;
    bob.assert_alive().await;
}

#[tokio::test]
async fn shutdown_closes_with_1001_unregisters_presence_and_returns() {
    let gw = Gw::start().await;
    let (mut a, _) = gw.login("alice", "phone").await;
    let (mut b, _) = gw.login("bob", "laptop").await;
    let mut waiting = gw.connect().await; // not authenticated yet
    let presence = gw.presence.clone();
    let addr = gw.addr;
    let stopping = tokio::spawn(gw.stop());
    assert_eq!(a.closed().await, Some(1001));
    assert_eq!(b.closed().await, Some(1001));
    assert_eq!(waiting.closed().await, Some(1001));
    stopping.await.unwrap().unwrap();
    assert!(presence.lookup(&[user("alice"), user("bob")]).await.unwrap().is_empty());
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "still accepting after shutdown"
    );
}

#[tokio::test]
async fn a_short_secret_is_a_config_error() {
    let dir = TempDir::new();
    let engine = seqline_embedded::EmbeddedEngine::open(&dir.0).unwrap();
    let ports = seqline_gateway::Ports {
        log: std::sync::Arc::new(seqline_embedded::EmbeddedLog::open(engine.clone(), Default::default()).unwrap()),
        store: std::sync::Arc::new(seqline_embedded::EmbeddedStore::open(engine).unwrap()),
        presence: std::sync::Arc::new(seqline_embedded::MemoryPresence::new()),
    };
    let config = seqline_gateway::GatewayConfig {
        token_secret: "short".into(),
        ..Default::default()
    };
    let err = seqline_gateway::run(config, ports, tokio_util::sync::CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(err, seqline_gateway::Error::Config(_)), "{err}");
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn slow_headers_are_cut_off() {
    let gw = Gw::start_with(|c| c.http_header_timeout = Duration::from_millis(200)).await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"GET /v1/ws HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    // The rest never comes: the server must hang up on its own.
    let mut rest = Vec::new();
    let read = tokio::time::timeout(WAIT, s.read_to_end(&mut rest))
        .await
        .expect("the server hangs up");
    assert!(
        read.is_err() || !String::from_utf8_lossy(&rest).contains("101"),
        "upgraded a slow client"
    );
    gw.login("bob", "phone").await.0.assert_alive().await;
}

#[tokio::test]
async fn huge_headers_are_refused() {
    let gw = Gw::start().await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    let junk = "a".repeat(200_000);
    let req = format!("GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Junk: {junk}\r\n\r\n");
    let _ = s.write_all(req.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut answer))
        .await
        .expect("an answer in time");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 431"), "{answer}");
    gw.login("bob", "phone").await.0.assert_alive().await;
}
