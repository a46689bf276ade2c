//! The crash test of the foundation issue: W1 traffic over real WebSocket
//! connections, the server SIGKILLed mid-stream and restarted on the same
//! data directory, clients reconnect and resend; the consistency checker
//! (C1-C11, L1) must find nothing: no lost acknowledged message, no
//! duplicate, no reordering, no gap, no diverged device.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use seqline_loadgen::{Mode, RunOptions, Workload};
use std::time::Duration;

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
