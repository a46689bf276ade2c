//! How fast sends get from sockets onto the inbound topic (batched appends
//! over the real embedded log). Ignored by default; run with
//! `cargo nextest run -p seqline-gateway --test throughput --run-ignored all --release`.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use futures_util::SinkExt;
use serde_json::json;
use std::time::Instant;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement, not a check"]
async fn sends_per_second_onto_the_inbound_topic() {
    const CONNECTIONS: usize = 50;
    const PER_CONNECTION: usize = 2000;
    let gw = Gw::start_with(|c| {
        c.max_sends_per_sec = 1_000_000;
        c.send_burst = 1_000_000;
        c.max_connections_per_user = 100;
    })
    .await;
    let mut clients = Vec::new();
    for i in 0..CONNECTIONS {
        clients.push(gw.login("alice", &format!("d{i}")).await.0);
    }
    let mut inbound = gw.inbound().await;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (i, mut c) in clients.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            for _ in 0..PER_CONNECTION {
                let frame = json!({"type": "send", "id": uuid::Uuid::new_v4(), "conv": format!("g:c{i}"), "body": "hello there, a short message"});
                c.ws.feed(Message::Text(frame.to_string().into())).await.unwrap();
            }
            c.ws.flush().await.unwrap();
            c
        }));
    }
    for _ in 0..CONNECTIONS * PER_CONNECTION {
        inbound.next().await;
    }
    let elapsed = start.elapsed();
    let rate = (CONNECTIONS * PER_CONNECTION) as f64 / elapsed.as_secs_f64();
    let (_, metrics) = gw.http("GET", "/metrics", None, None).await;
    let batches = metrics
        .as_str()
        .unwrap()
        .lines()
        .find(|l| l.starts_with("seqline_gateway_publish_batches_total"))
        .unwrap()
        .to_owned();
    println!(
        "{} sends in {elapsed:?}: {rate:.0}/s; {batches}",
        CONNECTIONS * PER_CONNECTION
    );
    for t in tasks {
        t.await.unwrap();
    }
}
