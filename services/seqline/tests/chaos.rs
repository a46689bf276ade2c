//! The short, fixed-seed chaos runs of `make test` (workload W7, docs/chaos.md):
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
        each_once: false,
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

/// Cluster mode, every part a separate process: Apache Kafka, Apache
/// Cassandra, redis-server, two gateways, two persisters and two fanouts.
/// Each fault the cluster must survive comes once, in order, while W1 and W2
/// run through both gateways: a persister SIGKILLed mid-traffic, a
/// persister stopped mid-batch past its session timeout (F9: the other takes
/// over and the stopped one's late write is fenced), the broker SIGKILLed
/// and restarted on its data (F6), Cassandra SIGKILLed and restarted, Redis
/// restarted, a gateway SIGKILLed while its devices are connected (they
/// reconnect through the proxy to the other), a role aborted at a failure
/// point, junk records, dropped acks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_mode_processes_survive_every_fault_once() {
    use seqline_chaos::schedule::{Fault, Point};
    let faults = vec![
        Fault::KillPersister,
        Fault::DropAcks,
        Fault::SequencerStall,
        Fault::BrokerKill,
        Fault::KillRoleAt(Point::SequencerAfterStore),
        Fault::StoreRestart,
        Fault::RedisRestart,
        Fault::PoisonRecords,
        Fault::KillGateway,
    ];
    let mut o = options(Topology::Cluster, "chaos-cluster", 43, 240);
    o.faults = Some(faults.clone());
    o.each_once = true;
    o.max_gap = Duration::from_secs(3);
    // Catching up after the last fault can take a while on a busy 2-core
    // machine (debug build, the JVMs and other tests beside it).
    o.settle = Duration::from_secs(180);
    let report = seqline_chaos::run(o).await.unwrap();
    assert_clean(&report, faults.len() as u64);
    assert_eq!(report.tally.acks_during_outage, 0);
    for id in ["F1", "F2", "F6", "F9", "F10", "F13", "store", "redis"] {
        assert!(
            report.tally.by_id.contains_key(id),
            "{id} was not injected: {:?}",
            report.tally.by_id
        );
    }
    let fenced = report.tally.fence_refusals.unwrap_or(0);
    assert!(
        fenced > 0,
        "the stopped persister's late write was not fenced:\n{report}"
    );
}
