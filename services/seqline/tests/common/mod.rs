//! Test harness: runs the real `seqline` binary on a private loopback port
//! and a private data directory, and talks to it over real sockets.

#![allow(dead_code)]

use futures_util::{SinkExt, StreamExt};
use seqline_core::protocol::{ClientFrame, ServerFrame};
use seqline_core::token::{now_secs, TokenKey};
use seqline_core::{DeviceId, UserId};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

pub mod deploy_files;

pub const SECRET: &str = "test-secret-0123456789abcdef";

/// A running `seqline dev` process that this test started (and kills).
pub struct Server {
    pub child: Child,
    pub addr: String,
    pub data: PathBuf,
}

pub fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("seqline-{tag}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

impl Server {
    /// Starts on `listen` (use `127.0.0.1:0` for a free port) with `data`.
    pub fn start(data: &PathBuf, listen: &str) -> Server {
        Self::start_with(data, listen, &[])
    }

    /// [`Server::start`] with extra environment variables (`SEQLINE__…`).
    pub fn start_with(data: &PathBuf, listen: &str, env: &[(&str, &str)]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_seqline"))
            .args(["dev", "--listen", listen, "--data"])
            .arg(data)
            .args(["--secret", SECRET])
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn seqline");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next().expect("a banner line").expect("read banner");
        let addr = first.rsplit(' ').next().expect("address").to_string();
        assert!(
            first.starts_with("seqline dev listening on"),
            "unexpected banner: {first}"
        );
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            addr,
            data: data.clone(),
        }
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/v1/ws", self.addr)
    }

    /// SIGKILL: no drain, no flush.
    pub fn kill(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .ok();
        self.child.wait().expect("wait")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn token(user: &str, device: &str) -> String {
    TokenKey::new(SECRET).sign(
        &UserId::parse(user).unwrap(),
        &DeviceId::parse(device).unwrap(),
        now_secs(),
        3600,
    )
}

pub type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects and says hello; returns the socket and the welcome frame.
pub async fn connect(server: &Server, user: &str, device: &str) -> (Ws, ServerFrame) {
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url())
        .await
        .expect("connect");
    send(
        &mut ws,
        &ClientFrame::Hello {
            token: token(user, device),
        },
    )
    .await;
    let welcome = recv(&mut ws).await;
    assert!(
        matches!(welcome, ServerFrame::Welcome { .. }),
        "expected welcome, got {welcome:?}"
    );
    (ws, welcome)
}

pub async fn send(ws: &mut Ws, frame: &ClientFrame) {
    ws.send(Message::Text(serde_json::to_string(frame).unwrap().into()))
        .await
        .expect("send frame");
}

/// How long a test waits for a frame before it calls the server stuck: a
/// guard against hangs, not a latency bound (a Kafka consumer group that
/// rebalances on a loaded two-core machine takes seconds).
pub const FRAME_WAIT: Duration = Duration::from_secs(30);

/// The next server frame (within [`FRAME_WAIT`] of the call: the server's
/// pings, which the client skips, do not extend it).
pub async fn recv(ws: &mut Ws) -> ServerFrame {
    let deadline = tokio::time::Instant::now() + FRAME_WAIT;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("a frame within FRAME_WAIT")
            .expect("open")
            .expect("ok");
        if let Message::Text(t) = msg {
            return serde_json::from_str(&t).expect("a server frame");
        }
    }
}

/// Receives frames until `pick` returns Some, within [`FRAME_WAIT`].
pub async fn recv_until<T>(ws: &mut Ws, mut pick: impl FnMut(&ServerFrame) -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        assert!(start.elapsed() < FRAME_WAIT, "condition not met within FRAME_WAIT");
        let f = recv(ws).await;
        if let Some(t) = pick(&f) {
            return t;
        }
    }
}

/// A minimal HTTP/1.1 POST with a bearer token; returns (status, body).
pub async fn http_post(server: &Server, path: &str, token: &str, body: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(&server.addr)
        .await
        .expect("http connect");
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        server.addr,
        body.len()
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.expect("read");
    let text = String::from_utf8_lossy(&out).to_string();
    let status: u16 = text.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status");
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

/// A minimal HTTP/1.1 GET; returns the body, or None if the server is down.
pub async fn http_get(addr: &str, path: &str) -> Option<String> {
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.ok()?;
    let text = String::from_utf8_lossy(&out).to_string();
    text.split("\r\n\r\n").nth(1).map(str::to_string)
}

/// A counter from `/metrics`.
pub async fn metric(addr: &str, name: &str) -> Option<u64> {
    let body = http_get(addr, "/metrics").await?;
    body.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
}

/// Polls a `/metrics` counter until it reaches `at_least`; fails the test
/// with the last value seen when `within` runs out.
pub async fn wait_metric(addr: &str, name: &str, at_least: u64, within: Duration) {
    let what = format!("{name} to reach {at_least}");
    seqline_testkit::wait::until(within, &what, || async {
        (metric(addr, name).await.unwrap_or(0) >= at_least).then_some(())
    })
    .await
}

/// Waits until the gateway has sent `at_least` acks.
pub async fn wait_for_acks(addr: &str, at_least: u64, within: Duration) {
    wait_metric(addr, "seqline_gateway_acks_total", at_least, within).await
}

/// The whole timeline of the connection's user, page by page.
pub async fn sync_all(ws: &mut Ws) -> Vec<seqline_core::model::TimelineEntry> {
    let mut out = Vec::new();
    let mut after = 0;
    for req in 1.. {
        send(
            ws,
            &ClientFrame::Sync {
                req,
                after,
                limit: Some(100),
                epoch: None,
                after_id: None,
            },
        )
        .await;
        let (entries, more) = recv_until(ws, |f| match f {
            ServerFrame::SyncPage {
                req: r, entries, more, ..
            } if *r == req => Some((entries.clone(), *more)),
            _ => None,
        })
        .await;
        if let Some(last) = entries.last() {
            after = last.user_seq.0;
        }
        out.extend(entries);
        if !more {
            break;
        }
    }
    out
}

/// [`sync_all`] again and again until the timeline holds at least `n`
/// entries (acks come before the timeline writer has applied a message) or
/// 30 s passed; returns the last full read.
pub async fn sync_at_least(ws: &mut Ws, n: usize) -> Vec<seqline_core::model::TimelineEntry> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    // At most 50 reads a second, well under the gateway's request limit.
    let mut pace = tokio::time::interval(Duration::from_millis(20));
    loop {
        pace.tick().await;
        let all = sync_all(ws).await;
        if all.len() >= n || tokio::time::Instant::now() > deadline {
            return all;
        }
    }
}

/// One `sync` request naming `epoch` and the id of the entry at `after`;
/// returns its answer: `sync_page`, `reset` or an `error` with its `req`.
pub async fn sync_marked(
    ws: &mut Ws,
    req: u64,
    after: u64,
    epoch: Option<seqline_core::Epoch>,
    after_id: Option<seqline_core::ids::ClientMsgId>,
) -> ServerFrame {
    let frame = ClientFrame::Sync {
        req,
        after,
        limit: None,
        epoch,
        after_id,
    };
    send(ws, &frame).await;
    recv_until(ws, |f| match f {
        ServerFrame::SyncPage { req: r, .. }
        | ServerFrame::Reset { req: r, .. }
        | ServerFrame::Error { req: Some(r), .. }
            if *r == req =>
        {
            Some(f.clone())
        }
        _ => None,
    })
    .await
}
