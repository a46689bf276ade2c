//! `init` with an endpoint where no collector listens: start-up neither
//! fails nor blocks, spans get trace context, events still count, and the
//! guard's flush at shutdown is bounded. Loopback only.
#![cfg(feature = "otlp")]

use seqline_core::trace::TraceParent;
use seqline_telemetry::events::{CommandsAccepted, EntryPushed};
use seqline_telemetry::metrics::{Counter, Stage};
use seqline_telemetry::{current_traceparent, emit, init, LogSettings, Metrics, TelemetryConfig};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_is_down_neither_fails_nor_blocks_start_up() {
    // A loopback port nothing listens on (bound, then released).
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = TelemetryConfig {
        otlp_endpoint: Some(format!("http://{closed}")),
        export_interval: Duration::from_millis(100),
        ..TelemetryConfig::default()
    };
    config.validate().unwrap();
    let started = Instant::now();
    let guard = init(
        &LogSettings {
            level: "info",
            json: false,
        },
        &config,
        "persister",
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "init took {:?}",
        started.elapsed()
    );
    assert!(guard.exporting());

    let parent = tracing::info_span!("batch", topic = "inbound", partition = 3u32);
    let traceparent = parent
        .in_scope(current_traceparent)
        .expect("a sampled span has a trace context")
        .to_string();
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!((parts.len(), parts[0], parts[3]), (4, "00", "01"), "{traceparent}");
    let child = parent.in_scope(|| {
        tracing::info_span!("commit")
            .in_scope(current_traceparent)
            .unwrap()
            .to_string()
    });
    assert_eq!(
        child.split('-').nth(1),
        Some(parts[1]),
        "a child span continues the trace"
    );

    // A record's context, continued by the span that handles it.
    assert!(seqline_telemetry::exporting());
    let remote = TraceParent::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").unwrap();
    let handling = tracing::info_span!("batch", topic = "deliveries");
    seqline_telemetry::set_parent(&handling, remote);
    let continued = handling.in_scope(current_traceparent).unwrap();
    assert_eq!(continued.trace_id(), remote.trace_id(), "the record's trace goes on");
    assert_ne!(continued.span_id(), remote.span_id(), "in a span of its own");

    let m = Metrics::global();
    let accepted = m.counter(Counter::CommandsAccepted);
    emit(CommandsAccepted { count: 2 });
    emit(EntryPushed {
        server_ts_ms: 10,
        now_ms: 15,
    });
    assert_eq!(m.counter(Counter::CommandsAccepted) - accepted, 2);
    assert!(m.latency_count(Stage::Push) >= 1);

    // The final flush exports to the closed port, fails, and is logged.
    let stopping = Instant::now();
    tokio::task::spawn_blocking(move || drop(guard)).await.unwrap();
    assert!(
        stopping.elapsed() < Duration::from_secs(10),
        "shutdown took {:?}",
        stopping.elapsed()
    );
}
