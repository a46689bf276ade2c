//! A send record whose `sent_ms` (the gateway's stamp) is far in the past or
//! the future, as only something other than the gateway writes it: the
//! message is sequenced and stamped with the server's clock, and the ack
//! latency histogram is not fed years or nothing. Its own binary, because it
//! reads the process-wide metrics.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use seqline_core::ids::ConvSeq;
use seqline_core::model::{now_ms, Outcome};
use seqline_core::records::Topic;
use seqline_telemetry::metrics::Stage;
use seqline_telemetry::Metrics;

fn ack_latency_sum() -> u64 {
    let mut text = String::new();
    Metrics::global().render_prometheus(&mut text);
    let line = text
        .lines()
        .find(|l| l.starts_with("seqline_e2e_latency_ms_sum{stage=\"ack\"}"))
        .unwrap();
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skewed_sent_ms_gets_the_server_clock_and_stays_out_of_the_latency() {
    let mut rig = Rig::start(1).await;
    let (create, rec) = rig.create("g:room", "alice", &["bob"]);
    rig.append(&Topic::Inbound, vec![rec]).await;
    assert_eq!(rig.receipt(create).await, Outcome::Sequenced { conv_seq: ConvSeq(1) });
    let (acks, sum) = (Metrics::global().latency_count(Stage::Ack), ack_latency_sum());

    let before = now_ms();
    let day = 24 * 3600 * 1000;
    let mut ids = Vec::new();
    for sent_ms in [0, 1, before - 400 * day, before + day, u64::MAX] {
        let id = seqline_core::ClientMsgId::random();
        rig.append(
            &Topic::Inbound,
            vec![rig.send_as("g:room", "bob", id, "skewed", sent_ms)],
        )
        .await;
        ids.push(id);
    }
    let (good, rec) = rig.send("g:room", "bob", "on time");
    rig.append(&Topic::Inbound, vec![rec]).await;
    ids.push(good);
    for (n, id) in ids.into_iter().enumerate() {
        let expected = Outcome::Sequenced {
            conv_seq: ConvSeq(n as u64 + 2),
        };
        assert_eq!(rig.receipt(id).await, expected);
    }
    let after = now_ms();
    for m in &rig.messages("g:room").await[1..] {
        assert!(
            (before..=after).contains(&m.server_ts_ms),
            "message {} stamped {} outside [{before}, {after}]",
            m.conv_seq.0,
            m.server_ts_ms
        );
    }
    // Only the send stamped on time was measured, with a sane latency. (It
    // is measured once its batch's outputs are out, just after the receipt;
    // batches go in order, so the skewed ones were through by then.)
    let end = std::time::Instant::now() + WAIT;
    while Metrics::global().latency_count(Stage::Ack) == acks {
        assert!(std::time::Instant::now() < end, "the on-time send was never measured");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(Metrics::global().latency_count(Stage::Ack) - acks, 1);
    let added = ack_latency_sum() - sum;
    assert!(added <= now_ms() - before, "ack latency grew by {added} ms");
    rig.stop().await;
}
