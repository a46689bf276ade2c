//! Traces and metrics reach a real OTLP/gRPC receiver (tonic, on loopback):
//! the `tracing` spans with their fields and parent links, the service name,
//! and the metric series under their Prometheus names.
#![cfg(feature = "otlp")]
#![allow(clippy::unwrap_used)]

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{ExportMetricsServiceRequest, ExportMetricsServiceResponse};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use seqline_telemetry::events::{CommandDeduplicated, EntryPushed, MessagesCommitted};
use seqline_telemetry::{emit, init, LogSettings, TelemetryConfig};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Default)]
struct Collector {
    traces: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
    metrics: Arc<Mutex<Vec<ExportMetricsServiceRequest>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.traces.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

#[tonic::async_trait]
impl MetricsService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.metrics.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse {
            partial_success: None,
        }))
    }
}

fn string_attr(attrs: &[KeyValue], key: &str) -> Option<String> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s.clone()),
            any_value::Value::IntValue(i) => Some(i.to_string()),
            _ => None,
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_and_metrics_reach_a_collector() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let collector = Collector::default();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .add_service(MetricsServiceServer::new(collector.clone()))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );

    let config = TelemetryConfig {
        otlp_endpoint: Some(format!("http://{addr}")),
        export_interval: Duration::from_secs(60),
        ..TelemetryConfig::default()
    };
    let guard = init(
        &LogSettings {
            level: "info",
            json: false,
        },
        &config,
        "gateway",
    );
    assert!(guard.exporting());
    tracing::info_span!("connection", user_id = "alice").in_scope(|| {
        tracing::info_span!("batch", topic = "inbound", partition = 2u32).in_scope(|| {
            tracing::info!(conversation_id = "dm:alice:bob", "sequenced");
        });
    });
    emit(MessagesCommitted { count: 4 });
    emit(CommandDeduplicated { resend: true });
    emit(EntryPushed {
        server_ts_ms: 100,
        now_ms: 130,
    });
    // Dropping the guard flushes both providers: no waiting on intervals.
    tokio::task::spawn_blocking(move || drop(guard)).await.unwrap();

    let traces = collector.traces.lock().unwrap().clone();
    let resource = traces[0].resource_spans[0].resource.clone().unwrap();
    assert_eq!(
        string_attr(&resource.attributes, "service.name").as_deref(),
        Some("seqline-gateway")
    );
    let spans: Vec<_> = traces
        .iter()
        .flat_map(|t| &t.resource_spans)
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .cloned()
        .collect();
    let connection = spans.iter().find(|s| s.name == "connection").expect("connection span");
    let batch = spans.iter().find(|s| s.name == "batch").expect("batch span");
    assert_eq!(string_attr(&connection.attributes, "user_id").as_deref(), Some("alice"));
    assert_eq!(string_attr(&batch.attributes, "topic").as_deref(), Some("inbound"));
    assert_eq!(string_attr(&batch.attributes, "partition").as_deref(), Some("2"));
    assert_eq!(batch.trace_id, connection.trace_id, "one trace");
    assert_eq!(
        batch.parent_span_id, connection.span_id,
        "the batch is the connection's child"
    );
    assert!(
        batch.events.iter().any(|e| e.name == "sequenced"),
        "events are recorded on their span"
    );

    let metrics = collector.metrics.lock().unwrap().clone();
    let exported: Vec<_> = metrics
        .iter()
        .flat_map(|m| &m.resource_metrics)
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .cloned()
        .collect();
    let names: Vec<&str> = exported.iter().map(|m| m.name.as_str()).collect();
    for name in [
        "seqline_messages_committed_total",
        "seqline_dedup_hits_total",
        "seqline_resends_total",
        "seqline_deliveries_total",
        "seqline_e2e_latency_ms",
    ] {
        assert!(names.contains(&name), "{name} not in {names:?}");
    }
    let committed = exported
        .iter()
        .find(|m| m.name == "seqline_messages_committed_total")
        .unwrap();
    match &committed.data {
        Some(Data::Sum(sum)) => {
            assert!(sum.is_monotonic);
            assert_eq!(sum.data_points.len(), 1);
        }
        other => panic!("a counter is a monotonic sum: {other:?}"),
    }
    let latency = exported.iter().find(|m| m.name == "seqline_e2e_latency_ms").unwrap();
    match &latency.data {
        Some(Data::Histogram(h)) => {
            let push = h
                .data_points
                .iter()
                .find(|p| string_attr(&p.attributes, "stage").as_deref() == Some("push"))
                .expect("a push series");
            assert_eq!(push.count, 1);
            assert_eq!(push.explicit_bounds.first(), Some(&1.0));
        }
        other => panic!("the latency is a histogram: {other:?}"),
    }
    server.abort();
}
