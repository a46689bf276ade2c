//! The fault proxy against real TCP servers and a real WebSocket server.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use seqline_chaos::proxy::FaultProxy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

const LIMIT: Duration = Duration::from_secs(3);

/// A TCP server that echoes every byte on every connection.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// A TCP server that writes `name` on each connection and closes it.
async fn named_server(name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let _ = s.write_all(name.as_bytes()).await;
        }
    });
    addr
}

/// An address nothing listens on.
async fn dead_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

async fn echo_roundtrip(s: &mut TcpStream, data: &[u8]) {
    s.write_all(data).await.unwrap();
    let mut back = vec![0; data.len()];
    timeout(LIMIT, s.read_exact(&mut back)).await.unwrap().unwrap();
    assert_eq!(back, data);
}

/// Waits until the peer closes: EOF or a reset, never data.
async fn assert_closed(s: &mut TcpStream) {
    let mut buf = [0; 64];
    match timeout(LIMIT, s.read(&mut buf)).await.expect("closed in time") {
        Ok(0) | Err(_) => {}
        Ok(n) => panic!("got {n} bytes instead of a close"),
    }
}

/// Reads to EOF.
async fn read_all(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut out = String::new();
    timeout(LIMIT, s.read_to_string(&mut out)).await.unwrap().unwrap();
    out
}

#[tokio::test]
async fn plain_bytes_pass_both_ways_unchanged() {
    let backend = echo_server().await;
    let proxy = FaultProxy::start(vec![backend.to_string()]).await.unwrap();
    proxy.drop_acks_for(Duration::from_secs(60));
    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    let request = b"GET /v1/health HTTP/1.1\r\nhost: x\r\n\r\n";
    echo_roundtrip(&mut s, request).await;
    // Bytes that would look like frames (and an ack) if parsed.
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    echo_roundtrip(&mut s, &body).await;
    echo_roundtrip(&mut s, b"\x81\x0e{\"type\":\"ack\"}").await;
    let stats = proxy.stats();
    let total = (request.len() + body.len() + 16) as u64;
    assert_eq!((stats.bytes_to_server, stats.bytes_to_client), (total, total));
    assert_eq!((stats.accepted, stats.open, stats.acks_dropped), (1, 1, 0));
}

/// Sends, for each "go", an ack, a pong, a 300-byte and a 70,000-byte
/// frame, another ack, then "end".
async fn ack_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(s).await.unwrap();
        while let Some(Ok(msg)) = ws.next().await {
            if msg.is_text() {
                for frame in burst() {
                    ws.send(Message::text(frame)).await.unwrap();
                }
            }
        }
    });
    addr
}

fn burst() -> Vec<String> {
    vec![
        r#"{"type":"ack","id":"m1","conv":"c","conv_seq":1}"#.to_owned(),
        r#"{"type":"pong"}"#.to_owned(),
        format!(r#"{{"type":"push","pad":"{}"}}"#, "p".repeat(300)),
        format!(r#"{{"type":"push","pad":"{}"}}"#, "q".repeat(70_000)),
        r#"{"type":"ack","id":"m2","conv":"c","conv_seq":2}"#.to_owned(),
        "end".to_owned(),
    ]
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// A frame as its first 20 bytes and its length (keeps failures readable).
fn label(text: &str) -> String {
    format!("{}..({})", &text[..text.len().min(20)], text.len())
}

/// Sends "go" and collects the labels of the text frames up to "end".
async fn round(ws: &mut Ws) -> Vec<String> {
    ws.send(Message::text("go")).await.unwrap();
    let mut got = Vec::new();
    loop {
        let msg = timeout(LIMIT, ws.next()).await.unwrap().unwrap().unwrap();
        let text = msg.into_text().unwrap().to_string();
        if text == "end" {
            return got;
        }
        got.push(label(&text));
    }
}

#[tokio::test]
async fn websocket_acks_dropped_only_while_active() {
    let backend = ack_server().await;
    let proxy = FaultProxy::start(vec![backend.to_string()]).await.unwrap();
    let url = format!("ws://{}/v1/ws", proxy.addr());
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let all: Vec<String> = burst()[..5].iter().map(|t| label(t)).collect();
    let no_acks = all[1..4].to_vec();

    assert_eq!(round(&mut ws).await, all);

    proxy.drop_next_acks(1);
    let mut second = all.clone();
    second.remove(0);
    assert_eq!(round(&mut ws).await, second);

    proxy.drop_acks_for(Duration::from_millis(1200));
    assert_eq!(round(&mut ws).await, no_acks);
    assert_eq!(proxy.stats().acks_dropped, 3);

    // After the window acks pass again; poll rounds until they do.
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let got = round(&mut ws).await;
        if got == all {
            break;
        }
        // The window may end mid-burst: only acks may be missing.
        let rest: Vec<String> = got.into_iter().filter(|l| !l.contains("ack")).collect();
        assert_eq!(rest, no_acks);
        assert!(tokio::time::Instant::now() < deadline, "window never ended");
    }
}

#[tokio::test]
async fn cut_all_closes_every_connection_and_new_ones_work() {
    let backend = echo_server().await;
    let proxy = FaultProxy::start(vec![backend.to_string()]).await.unwrap();
    let mut a = TcpStream::connect(proxy.addr()).await.unwrap();
    let mut b = TcpStream::connect(proxy.addr()).await.unwrap();
    echo_roundtrip(&mut a, b"a").await;
    echo_roundtrip(&mut b, b"b").await;

    assert_eq!(proxy.cut_all(), 2);
    assert_closed(&mut a).await;
    assert_closed(&mut b).await;

    let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
    echo_roundtrip(&mut c, b"c").await;
    let stats = proxy.stats();
    assert_eq!((stats.accepted, stats.cut, stats.open), (3, 2, 1));
}

#[tokio::test]
async fn freeze_forwards_nothing_then_cuts() {
    let backend = echo_server().await;
    let proxy = FaultProxy::start(vec![backend.to_string()]).await.unwrap();
    let mut a = TcpStream::connect(proxy.addr()).await.unwrap();
    echo_roundtrip(&mut a, b"before").await;

    proxy.freeze_for(Duration::from_millis(1200));
    a.write_all(b"during").await.unwrap();
    let mut b = TcpStream::connect(proxy.addr()).await.unwrap();
    b.write_all(b"new during").await.unwrap();
    // Silence (an upper bound, not a synchronisation): the socket stays
    // open and nothing comes back.
    let mut buf = [0; 16];
    assert!(timeout(Duration::from_millis(300), a.read(&mut buf)).await.is_err());
    assert!(timeout(Duration::from_millis(50), b.read(&mut buf)).await.is_err());
    assert_eq!(proxy.stats().open, 2);

    // At the end of the freeze both are cut without the held bytes.
    assert_closed(&mut a).await;
    assert_closed(&mut b).await;
    let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
    echo_roundtrip(&mut c, b"after").await;
    let stats = proxy.stats();
    assert_eq!((stats.frozen, stats.cut, stats.open), (2, 2, 1));
    assert_eq!(stats.bytes_to_server, 6 + 5);
}

#[tokio::test]
async fn round_robin_skips_dead_backends() {
    let a = named_server("A").await;
    let b = named_server("B").await;
    let dead = dead_addr().await;
    let proxy = FaultProxy::start(vec![a.to_string(), dead.to_string(), b.to_string()])
        .await
        .unwrap();
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(read_all(proxy.addr()).await);
    }
    // Starts at A, then dead → B, then B, then A again.
    assert_eq!(seen, ["A", "B", "B", "A"]);
    assert_eq!(proxy.stats().backend_failures, 1);

    proxy.set_backends(vec![dead.to_string()]);
    assert_eq!(read_all(proxy.addr()).await, "");
    proxy.set_backends(vec![b.to_string()]);
    assert_eq!(read_all(proxy.addr()).await, "B");
}

#[tokio::test]
async fn shutdown_closes_everything() {
    let backend = echo_server().await;
    let proxy = FaultProxy::start(vec![backend.to_string()]).await.unwrap();
    let addr = proxy.addr();
    let mut a = TcpStream::connect(addr).await.unwrap();
    echo_roundtrip(&mut a, b"x").await;
    drop(proxy);
    assert_closed(&mut a).await;
}
