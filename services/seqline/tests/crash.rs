//! The crash test of the foundation issue: W1 traffic over real WebSocket
//! connections, the server SIGKILLed mid-stream and restarted on the same
//! data directory, clients reconnect and resend; the consistency checker
//! (C1-C14, L1) must find nothing: no lost acknowledged message, no
//! duplicate, no reordering, no gap, no diverged device. Also the load
//! generator's final phase: its reads wait for the system to be drained.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use seqline_loadgen::{DrainCheck, Mode, RunOptions, Workload};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn small_w1(server: &Server, seed: u64) -> RunOptions {
    let mut opts = RunOptions::new(
        Workload::W1 {
            users: 6,
            messages: 300,
            two_device_fraction: 0.5,
        },
        SECRET,
    );
    opts.url = server.ws_url();
    opts.http = format!("http://{}", server.addr);
    opts.max_duration = Duration::from_secs(60);
    opts.seed = seed;
    opts
}

/// A drained check that says no `noes` times, then yes; counts the calls.
fn drained_after(noes: u32) -> (DrainCheck, Arc<AtomicU32>) {
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let check = DrainCheck::new(move || {
        let n = c.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move { Ok(n >= noes) })
    });
    (check, calls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn w1_survives_sigkill_of_the_server_with_a_clean_checker() {
    let data = temp_dir("crash-w1");
    let mut server = Server::start(&data, "127.0.0.1:0");
    let addr = server.addr.clone();
    let mut opts = RunOptions::new(
        Workload::W1 {
            users: 24,
            messages: 3_000,
            two_device_fraction: 0.25,
        },
        SECRET,
    );
    opts.url = server.ws_url();
    opts.http = format!("http://{addr}");
    opts.mode = Mode::ClosedLoop { window: 4 };
    opts.max_duration = Duration::from_secs(120);
    opts.settle_timeout = Duration::from_secs(60);
    opts.seed = 7;
    // The load generator and the killer run side by side on this task.
    let killer = async move {
        // Kill it twice, each time once traffic is flowing.
        for round in 0..2 {
            wait_for_acks(&addr, 300, Duration::from_secs(60)).await;
            server.kill();
            eprintln!("crash round {round}: killed, restarting");
            server = Server::start(&data, &addr);
        }
        server
    };
    let (report, _server) = tokio::join!(seqline_loadgen::run(opts), killer);
    let report = report.expect("loadgen run");
    eprintln!("{report}");
    assert!(
        report.acked > 1_000,
        "too little traffic was acknowledged: {}",
        report.acked
    );
    assert!(report.reconnects > 0, "the clients never saw the crash");
    assert_eq!(
        report.check.anomalies(),
        0,
        "checker found anomalies:\n{}",
        report.check
    );
    assert!(report.passed(), "run did not pass:\n{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn final_reads_wait_until_the_system_says_it_is_drained() {
    let server = Server::start(&temp_dir("finale-drained"), "127.0.0.1:0");
    let mut opts = small_w1(&server, 11);
    let (check, calls) = drained_after(3);
    opts.drained = Some(check);
    let report = seqline_loadgen::run(opts).await.expect("loadgen run");
    eprintln!("{report}");
    assert!(report.passed(), "run did not pass:\n{report}");
    assert_eq!(report.final_views, report.devices, "every device read its timeline");
    // Three noes, a yes, and a yes again after the heads stayed still.
    assert!(
        calls.load(Ordering::SeqCst) >= 5,
        "asked {} times",
        calls.load(Ordering::SeqCst)
    );
    assert!(
        report.quiet_secs.is_some(),
        "the reads were taken without the quiet step"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_system_that_never_drains_fails_the_run_with_a_clear_reason() {
    let server = Server::start(&temp_dir("finale-never"), "127.0.0.1:0");
    let mut opts = small_w1(&server, 12);
    opts.settle_timeout = Duration::from_secs(8);
    let (check, calls) = drained_after(u32::MAX);
    opts.drained = Some(check);
    let report = seqline_loadgen::run(opts).await.expect("loadgen run");
    eprintln!("{report}");
    assert!(calls.load(Ordering::SeqCst) > 0);
    assert!(!report.passed(), "a run whose final reads were not quiet must not pass");
    assert!(report.quiet_secs.is_none());
    assert!(
        report
            .final_errors
            .iter()
            .any(|e| e.contains("did not go quiet before the final reads: the system still had a backlog")),
        "{:?}",
        report.final_errors
    );
    // Nothing else is wrong with the run: the checker finds nothing.
    assert_eq!(report.check.anomalies(), 0, "{}", report.check);
}
