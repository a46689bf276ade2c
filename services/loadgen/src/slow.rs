//! Slow readers: members of a group that stop reading while messages flow
//! to them. The server must hold at most a small budget of queued frames
//! for each, then close it with 1008 (which the client sees once it reads
//! again) and carry on serving the others.
//!
//! The slow readers are devices of one user in a direct conversation with
//! the sending user, so storing the messages costs the server the same
//! whatever the number of readers (one timeline each side). A run with
//! `keep_reading` sends the same traffic to devices that read: run it
//! against a fresh server too, and the difference of the two RSS growths,
//! per stalled device, is what a slow reader costs (`make bench` does).

use crate::idle::{hold, open_many, RawWs};
use crate::procstat::rss_kib;
use anyhow::{Context, Result};
use futures_util::stream::{FuturesUnordered, StreamExt};
use seqline_client::{Client, ClientConfig, HttpApi, SendState};
use seqline_core::ids::{ConversationId, DeviceId, UserId};
use seqline_core::token::{now_secs, TokenKey};
use serde::Serialize;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

/// Unacknowledged sends per sender.
const WINDOW: usize = 8;
/// How long the stalled devices read nothing once the sends start. Long
/// enough for the messages to overflow what the server may queue for them
/// (a few hundred KiB, plus the socket buffers), short enough that they
/// read again while the server still waits to write its close frame.
const STALL: Duration = Duration::from_secs(3);

/// What a slow-reader run does.
#[derive(Clone, Debug)]
pub struct SlowOptions {
    /// WebSocket URL of the server.
    pub url: String,
    /// HTTP base of the server.
    pub http: String,
    /// The server's token secret.
    pub secret: String,
    /// Devices that stop reading (at most the server's
    /// `max_connections_per_user`, 16 by default).
    pub slow: usize,
    /// Messages sent to the group in each phase.
    pub messages: u64,
    /// Body size of each message, bytes.
    pub body: usize,
    /// Sending devices of the other user (each limited by the server's
    /// send rate).
    pub senders: usize,
    /// Source addresses for the members' connections.
    pub sources: u8,
    /// The server process, for RSS.
    pub server_pid: Option<u32>,
    /// The devices read throughout (the control run).
    pub keep_reading: bool,
}

/// What a slow-reader run measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SlowReport {
    /// Members that stopped reading.
    pub slow: usize,
    /// Messages sent in each phase.
    pub messages: u64,
    /// Body size, bytes.
    pub body: usize,
    /// Whether the devices stopped reading (false: the control run).
    pub stalled: bool,
    /// Server RSS growth from before the first send to its peak, KiB.
    pub growth_kib: u64,
    /// Connections the server cut off during the stalled phase (its
    /// `connections_kicked_total`).
    pub kicked: u64,
    /// Stalled devices closed with 1008 once they read again.
    pub closed_1008: usize,
    /// Stalled devices that saw the socket end without a close frame.
    pub closed_without_frame: usize,
    /// Stalled devices closed with another code.
    pub other_code: usize,
    /// Stalled devices still open 20 s after they read again.
    pub still_open: usize,
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0)
}

/// `GET /metrics` over a fresh connection.
async fn metrics(http: &str) -> Result<String> {
    let host = http.strip_prefix("http://").unwrap_or(http).trim_end_matches('/');
    let mut s = tokio::net::TcpStream::connect(host).await?;
    let req = format!("GET /metrics HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    Ok(out)
}

async fn kicked(http: &str) -> u64 {
    match metrics(http).await {
        Ok(m) => metric(&m, "seqline_gateway_connections_kicked_total"),
        Err(_) => 0,
    }
}

/// Samples the server's RSS until dropped; `peak` holds the largest, KiB.
fn sample_peak(pid: Option<u32>, peak: Arc<AtomicU64>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let Some(pid) = pid else { return };
        loop {
            if let Some(r) = rss_kib(pid) {
                peak.fetch_max(r, Ordering::Relaxed);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

/// Sends `n` messages of `body` bytes from `client` to `conv`, closed loop.
async fn send_all(client: Client, conv: ConversationId, n: u64, body: String) -> Result<()> {
    let mut inflight = FuturesUnordered::new();
    for _ in 0..n {
        if inflight.len() >= WINDOW {
            inflight.next().await;
        }
        let handle = client.send(conv.clone(), body.clone()).await?;
        inflight.push(async move { handle.outcome().await });
    }
    while let Some(outcome) = inflight.next().await {
        if !matches!(outcome, SendState::Sent(_)) {
            tracing::warn!(?outcome, "a send did not go through");
        }
    }
    Ok(())
}

/// Reads what is left until the server's close; its code (None: the
/// socket ended without a close frame).
async fn close_code(mut ws: RawWs) -> Option<Option<u16>> {
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(f))) => return f.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    })
    .await;
    read.ok()
}

/// What a phase saw.
struct Phase {
    /// Server RSS growth, KiB.
    growth_kib: u64,
    /// Connections kicked meanwhile.
    kicked: u64,
    /// When stalled, each device's close code once it read again.
    codes: Vec<Option<Option<u16>>>,
}

/// One phase: a sending user and a reading user with `slow` devices, in a
/// direct conversation; the devices read throughout (`stall` false) or
/// stop reading.
async fn phase(opts: &SlowOptions, prefix: &str, stall: bool) -> Result<Phase> {
    let key = TokenKey::new(opts.secret.as_bytes());
    let sender = UserId::parse(format!("{prefix}-w"))?;
    let member = format!("{prefix}-m");
    let admin = HttpApi::new(
        &opts.http,
        key.sign(&sender, &DeviceId::parse("admin")?, now_secs(), 3600),
    )?;
    let conv = admin.create_direct(&UserId::parse(&member)?).await?.conv;
    let ids = |i: usize| (member.clone(), format!("d{i}"));
    let sockets = open_many(&opts.url, &opts.secret, ids, opts.slow, opts.sources).await?;
    let mut clients = Vec::new();
    for i in 0..opts.senders.max(1) {
        let device = DeviceId::parse(format!("s{i}")).context("device id")?;
        let config = ClientConfig::new(opts.url.clone(), key.sign(&sender, &device, now_secs(), 3600));
        let (client, mut events) = Client::connect(config).await?;
        tokio::spawn(async move { while events.recv().await.is_some() {} });
        clients.push(client);
    }
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    // Stalled members keep their sockets unread; the others read on.
    let mut held = Vec::new();
    let mut readers = Vec::new();
    for ws in sockets {
        if stall {
            held.push(ws);
        } else {
            readers.push(tokio::spawn(hold(ws, stop.clone())));
        }
    }
    let kicked_before = kicked(&opts.http).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = opts.server_pid.and_then(rss_kib).unwrap_or(0);
    let peak = Arc::new(AtomicU64::new(before));
    let sampler = sample_peak(opts.server_pid, Arc::clone(&peak));
    let per_sender = opts.messages / clients.len() as u64;
    let body = "x".repeat(opts.body);
    let mut sends = Vec::new();
    for c in &clients {
        sends.push(tokio::spawn(send_all(
            c.clone(),
            conv.clone(),
            per_sender,
            body.clone(),
        )));
    }
    // The stalled devices read again after a while, as the messages still
    // flow: what was on its way, then (for a server that bounds what it
    // queues) the close.
    let resumed = tokio::spawn(async move {
        tokio::time::sleep(STALL).await;
        let tasks: Vec<_> = held.into_iter().map(|ws| tokio::spawn(close_code(ws))).collect();
        let mut codes = Vec::new();
        for t in tasks {
            codes.push(t.await.unwrap_or(None));
        }
        codes
    });
    for s in sends {
        s.await??;
    }
    let codes = resumed.await.unwrap_or_default();
    if !stall {
        // Until every push has been read: the server's queues are empty.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    sampler.abort();
    let kicked = kicked(&opts.http).await.saturating_sub(kicked_before);
    let _ = stop_tx.send(true);
    for r in readers {
        let _ = r.await;
    }
    for c in &clients {
        c.close().await;
    }
    Ok(Phase {
        growth_kib: peak.load(Ordering::Relaxed).saturating_sub(before),
        kicked,
        codes,
    })
}

/// Runs one phase.
pub async fn run_slow(opts: SlowOptions) -> Result<SlowReport> {
    let run = format!("slow{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
    let stalled = !opts.keep_reading;
    let Phase {
        growth_kib,
        kicked,
        codes,
    } = phase(&opts, &run, stalled).await?;
    let closed_1008 = codes.iter().filter(|c| **c == Some(Some(1008))).count();
    let closed_without_frame = codes.iter().filter(|c| **c == Some(None)).count();
    let still_open = codes.iter().filter(|c| c.is_none()).count();
    Ok(SlowReport {
        slow: opts.slow,
        messages: opts.messages,
        body: opts.body,
        stalled,
        growth_kib,
        kicked,
        closed_1008,
        closed_without_frame,
        other_code: codes.len() - closed_1008 - closed_without_frame - still_open,
        still_open,
    })
}

impl fmt::Display for SlowReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "| devices | they | messages × body | server RSS growth (MiB) | cut off | closed 1008 | ended without close | other code | still open |")?;
        writeln!(f, "|---:|---|---:|---:|---:|---:|---:|---:|---:|")?;
        write!(
            f,
            "| {} | {} | {} × {} B | {:.1} | {} | {} | {} | {} | {} |",
            self.slow,
            if self.stalled { "stop reading" } else { "keep reading" },
            self.messages,
            self.body,
            self.growth_kib as f64 / 1024.0,
            self.kicked,
            self.closed_1008,
            self.closed_without_frame,
            self.other_code,
            self.still_open
        )
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_a_metric() {
        let text = "a_total 3\nseqline_gateway_connections_kicked_total 7\n";
        assert_eq!(super::metric(text, "seqline_gateway_connections_kicked_total"), 7);
        assert_eq!(super::metric(text, "missing"), 0);
    }
}
