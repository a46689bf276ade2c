//! Cluster mode end to end, every part a separate OS process as a user
//! deploys it: `seqline gateway`, `seqline persister` and `seqline fanout`
//! processes configured through the environment, on the run's Apache Kafka
//! and Apache Cassandra (started by `make test`) and a private
//! `redis-server`. Traffic goes over real WebSocket connections through a
//! proxy that spreads them over both gateways, and the consistency checker
//! judges every run. Engine faults (broker and Cassandra kills) are in the
//! cluster chaos test (`chaos.rs`), which runs engines of its own.

#![allow(clippy::unwrap_used)]

mod common;

use common::{temp_dir, wait_for_acks, SECRET};
use seqline_chaos::cluster::{Cluster, ClusterOptions, Engines};
use seqline_chaos::proxy::FaultProxy;
use seqline_chaos::report::Tally;
use seqline_chaos::schedule::Step;
use seqline_loadgen::{Mode, RunOptions, Workload};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

async fn start(tag: &str, gateways: usize, persisters: usize, env: &[(&str, &str)]) -> Cluster {
    let mut o = ClusterOptions::new(env!("CARGO_BIN_EXE_seqline").into(), temp_dir(tag), SECRET);
    o.engines = Engines::Shared;
    o.gateways = gateways;
    o.persisters = persisters;
    o.fanouts = 1;
    o.env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Cluster::start(o).await.unwrap()
}

fn options(cluster: &Cluster, proxy: &FaultProxy, workload: Workload, seed: u64) -> RunOptions {
    let mut o = RunOptions::new(workload, SECRET);
    o.url = format!("ws://{}/v1/ws", proxy.addr());
    o.http = format!("http://{}", proxy.addr());
    o.mode = Mode::ClosedLoop { window: 4 };
    o.max_duration = Duration::from_secs(150);
    o.settle_timeout = Duration::from_secs(90);
    o.drained = Some(cluster.drain_check());
    o.seed = seed;
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_two_persisters_and_a_fanout_as_processes_run_w1_w2_and_w4() {
    // A low read-diffusion threshold, so W4's group is huge at 120 members.
    let cluster = start(
        "cluster-e2e",
        2,
        2,
        &[("SEQLINE__PERSISTER__READ_DIFFUSION_THRESHOLD", "50")],
    )
    .await;
    let proxy = FaultProxy::start(cluster.gateways()).await.unwrap();

    let w1 = options(
        &cluster,
        &proxy,
        Workload::W1 {
            users: 16,
            messages: 1_200,
            two_device_fraction: 0.25,
        },
        21,
    );
    let report = seqline_loadgen::run(w1).await.expect("w1 run");
    eprintln!("{report}");
    assert!(report.acked >= 1_000, "too little acknowledged: {}", report.acked);
    assert!(report.passed(), "W1 did not pass:\n{report}");

    let w2 = options(
        &cluster,
        &proxy,
        Workload::W2 {
            groups: 4,
            members: 8,
            senders: 3,
            messages: 600,
        },
        22,
    );
    let report = seqline_loadgen::run(w2).await.expect("w2 run");
    eprintln!("{report}");
    assert!(report.passed(), "W2 did not pass:\n{report}");

    let w4 = options(
        &cluster,
        &proxy,
        Workload::W4 {
            members: 120,
            online: 20,
            rate: 20.0,
            seconds: 12.0,
            priority_every: 3.0,
        },
        23,
    );
    let report = seqline_loadgen::run(w4).await.expect("w4 run");
    eprintln!("{report}");
    assert!(report.passed(), "W4 did not pass:\n{report}");
    let huge = report.w4.as_ref().expect("W4 reports its huge group");
    assert!(huge.priority_sent > 0, "no priority message was sent:\n{report}");
    assert!(
        huge.priority_pushes > 0,
        "no priority message was pushed through the cluster:\n{report}"
    );
    // Both gateways carried traffic.
    for gw in cluster.gateways() {
        let frames = common::metric(&gw, "seqline_gateway_frames_in_total")
            .await
            .unwrap_or(0);
        assert!(frames > 0, "gateway {gw} carried no traffic");
    }
    proxy.shutdown();
    cluster.stop().await;
}

/// Fencing across processes (F9) on the real store: one of two persister
/// processes stops itself mid-batch, before its store write, and stays
/// stopped past the consumer session timeout; Kafka gives its partitions to
/// the other persister, which stores the same commands. On SIGCONT the
/// stopped one writes its stale batch, and Cassandra's conditional write on
/// the conversation head refuses it. The clients' history stays clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persister_stopped_past_its_session_timeout_is_fenced_off_when_it_wakes() {
    let mut cluster = start("cluster-fencing", 1, 2, &[]).await;
    let proxy = FaultProxy::start(cluster.gateways()).await.unwrap();
    let mut w1 = options(
        &cluster,
        &proxy,
        Workload::W1 {
            users: 12,
            messages: 1_000_000,
            two_device_fraction: 0.2,
        },
        31,
    );
    // Traffic lasts until the stall is over (its steps wait on Kafka's
    // rebalances, seconds to a minute on a loaded machine), at most 240 s.
    w1.max_duration = Duration::from_secs(240);
    let stop_sending = Arc::new(AtomicBool::new(false));
    w1.stop_sending = Some(Arc::clone(&stop_sending));
    let gateway = cluster.gateways()[0].clone();
    let stall = async {
        wait_for_acks(&gateway, 200, Duration::from_secs(120)).await;
        let mut tally = Tally::default();
        let step = Step {
            gap: Duration::ZERO,
            faults: Vec::new(),
            hold: Duration::from_secs(2),
            pick: 7,
        };
        cluster.stall_sequencer(&step, &mut tally).await.unwrap();
        stop_sending.store(true, Ordering::Relaxed);
        tally
    };
    let (report, tally) = tokio::join!(seqline_loadgen::run(w1), stall);
    let report = report.expect("w1 run");
    eprintln!("{report}");
    assert!(
        tally.points_missed.is_empty(),
        "the persister never reached its stop point: {:?}",
        tally.points_missed
    );
    assert!(report.passed(), "W1 did not pass:\n{report}");
    let fenced = cluster.fence_refusals().await;
    assert!(fenced > 0, "the stopped persister's late write was not refused");
    proxy.shutdown();
    cluster.stop().await;
}
