#![allow(clippy::unwrap_used)]
//! What can be checked without a ScyllaDB server: connecting to nothing
//! fails as unavailable (retryable), promptly, and bad options fail as
//! configuration errors before any connection is tried.

use seqline_core::Error;
use seqline_scylla::{ScyllaOptions, ScyllaStore};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_to_nothing_is_unavailable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let options = ScyllaOptions {
        nodes: vec![format!("127.0.0.1:{port}")],
        connect_timeout: Duration::from_millis(500),
        ..ScyllaOptions::default()
    };
    let started = Instant::now();
    let result = ScyllaStore::connect(options).await;
    assert!(matches!(&result, Err(Error::Unavailable(_))), "got {result:?}");
    assert!(result.is_err_and(|e| e.is_retryable()));
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_options_are_configuration_errors() {
    let options = ScyllaOptions {
        keyspace: "Not-An-Identifier".into(),
        ..ScyllaOptions::default()
    };
    assert!(matches!(ScyllaStore::connect(options).await, Err(Error::Config(_))));
}
