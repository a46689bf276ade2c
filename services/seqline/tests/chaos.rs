//! The short, fixed-seed chaos runs of `make test` (W7 of WORKLOADS.md):
//! W1 and W2 through the fault proxy while the seeded schedule kills,
//! aborts at failure points, stalls and restarts the system, cuts and
//! freezes connections and drops acks; then heal, re-read and check. The
//! long runs are `make chaos`.

#![allow(clippy::unwrap_used)]

mod common;

use seqline_chaos::{ChaosOptions, ChaosReport, Topology};
use seqline_checker::CheckId;
use std::time::Duration;

fn options(topology: Topology, tag: &str, seed: u64, secs: u64) -> ChaosOptions {
    ChaosOptions {
        topology,
        seed,
        duration: Duration::from_secs(secs),
        max_gap: Duration::from_millis(1_500),
        faults: None,
        users: 12,
        groups: 3,
        members: 6,
        senders: 2,
        churn: Duration::from_secs(2),
        window: 4,
        messages: 1_000_000,
        settle: Duration::from_secs(60),
        dir: common::temp_dir(tag),
        seqline_bin: env!("CARGO_BIN_EXE_seqline").into(),
        secret: common::SECRET.into(),
        progress: false,
    }
}

fn assert_clean(report: &ChaosReport, min_faults: u64) {
    eprintln!("{report}");
    for id in CheckId::ALL {
        assert_eq!(report.count(id), 0, "{id} found anomalies:\n{report}");
    }
    assert!(report.passed(), "the chaos run failed:\n{report}");
    assert!(report.acked() > 300, "too little traffic was acked: {}", report.acked());
    assert!(
        report.tally.total >= min_faults,
        "too few faults: {}",
        report.tally.total
    );
    assert!(
        report.tally.by_id.len() >= 3,
        "too few kinds of faults: {:?}",
        report.tally.by_id
    );
    // A client notices a fault by reconnecting, or by resending a message
    // whose ack the proxy dropped.
    let reconnects: u64 = report.runs.iter().map(|r| r.reconnects).sum();
    assert!(
        reconnects + report.proxy.acks_dropped > 0,
        "no client ever noticed a fault"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_mode_survives_a_seeded_fault_schedule() {
    let report = seqline_chaos::run(options(Topology::Embedded, "chaos-embedded", 42, 25))
        .await
        .unwrap();
    assert_clean(&report, 5);
    // Every failure point was passed by traffic in some process lifetime.
    for point in seqline_core::failpoint::ALL {
        assert!(
            report.tally.failpoint_hits.get(point).copied().unwrap_or(0) > 0,
            "{point} never hit: {:?}",
            report.tally.failpoint_hits
        );
    }
}

/// Kafka mode: tansu and redis-server as processes, two instances of each
/// role, the same seeded schedule of faults (see docs/chaos.md). A role is
/// killed only once the consumer groups have settled, so a step that kills
/// takes 10-20 s here and F9 holds a sequencer for about a minute: the run
/// is longer and asks for fewer faults (the long runs count them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_mode_survives_a_seeded_fault_schedule() {
    let report = seqline_chaos::run(options(Topology::Kafka, "chaos-kafka", 43, 60))
        .await
        .unwrap();
    assert_clean(&report, 3);
    assert_eq!(report.tally.acks_during_outage, 0);
}
