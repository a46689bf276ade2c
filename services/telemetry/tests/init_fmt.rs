//! `init` without an endpoint installs the log subscriber and nothing else.
//! (Its own test binary: a process has one global subscriber.)

use seqline_telemetry::{init, LogSettings, TelemetryConfig};

#[test]
fn without_an_endpoint_only_logs_are_installed() {
    assert!(!tracing::dispatcher::has_been_set());
    let guard = init(
        &LogSettings {
            level: "info",
            json: true,
        },
        &TelemetryConfig::default(),
        "gateway",
    );
    assert!(tracing::dispatcher::has_been_set(), "the fmt subscriber is installed");
    assert!(!guard.exporting(), "no exporter without an endpoint");
    let span = tracing::info_span!("connection", user_id = "alice");
    let _entered = span.enter();
    tracing::info!("logged, not exported");
    assert_eq!(
        seqline_telemetry::current_traceparent(),
        None,
        "no OpenTelemetry layer, so spans carry no trace context"
    );
    assert!(!seqline_telemetry::exporting(), "so sends open no span of their own");
    drop(_entered);
    drop(guard);
}
