//! OTLP export over gRPC (tonic): a tracer provider behind the
//! `tracing-opentelemetry` layer, and a meter provider whose instruments
//! mirror [`crate::metrics`] (the events feed both).
//!
//! Both providers export from their own threads (batch span processor,
//! periodic reader); the gRPC channel is created lazily on the Tokio runtime
//! current at [`start`], so a collector that is down costs a logged error
//! per export and never blocks start-up.

use crate::metrics::{Counter, Stage, LATENCY, LATENCY_BOUNDS_MS};
use crate::TelemetryConfig;
use opentelemetry::metrics::{Histogram, MeterProvider as _};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::{Layer, Registry};

/// Longest one export may take: a collector that does not answer must not
/// hold up shutdown for long (the drain has its own deadline before this).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(3);

struct Instruments {
    counters: Vec<opentelemetry::metrics::Counter<u64>>,
    latency: Histogram<u64>,
    stages: [KeyValue; Stage::ALL.len()],
}

/// Set by the first [`start`]; events are mirrored here from then on.
static INSTRUMENTS: OnceLock<Instruments> = OnceLock::new();

/// Whether the OpenTelemetry layer is installed: set once by [`crate::init`],
/// read by every append (see [`crate::trace`]).
static TRACING: AtomicBool = AtomicBool::new(false);

pub(crate) fn spans_exported() -> bool {
    TRACING.load(Ordering::Relaxed)
}

pub(crate) fn spans_installed() {
    TRACING.store(true, Ordering::Relaxed);
}

pub(crate) fn add(counter: Counter, n: u64) {
    if let Some(i) = INSTRUMENTS.get() {
        i.counters[counter as usize].add(n, &[]);
    }
}

pub(crate) fn record(stage: Stage, ms: u64) {
    if let Some(i) = INSTRUMENTS.get() {
        i.latency.record(ms, std::slice::from_ref(&i.stages[stage as usize]));
    }
}

/// The running providers; shut down by the [`crate::Guard`].
pub(crate) struct Providers {
    tracer: SdkTracerProvider,
    meter: SdkMeterProvider,
}

impl Providers {
    /// The layer that turns `tracing` spans into exported spans.
    pub(crate) fn layer(&self) -> Box<dyn Layer<Registry> + Send + Sync> {
        let tracer = self.tracer.tracer("seqline");
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_tracked_inactivity(false)
            .with_filter(filter_fn(|meta| !is_exporter(meta.target())))
            .boxed()
    }

    /// Exports what is buffered and stops both providers.
    pub(crate) fn shutdown(&self) {
        // Traces first: their last batch may still be in flight.
        if let Err(e) = self.tracer.shutdown_with_timeout(EXPORT_TIMEOUT) {
            tracing::warn!(error = %e, "flushing traces at shutdown failed");
        }
        if let Err(e) = self.meter.shutdown() {
            tracing::warn!(error = %e, "flushing metrics at shutdown failed");
        }
    }
}

/// Spans and events of the export path itself: exporting them would make
/// more exports (at debug level, a loop), so they are only logged.
fn is_exporter(target: &str) -> bool {
    const EXPORTER: [&str; 6] = ["opentelemetry", "tonic", "h2", "hyper", "tower", "prost"];
    EXPORTER.iter().any(|t| {
        target
            .strip_prefix(t)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with([':', '_', '-']))
    })
}

/// Starts both exporters towards `endpoint`. Must run inside a Tokio runtime
/// (the gRPC channel's connection lives on it).
pub(crate) fn start(config: &TelemetryConfig, endpoint: &str, service: &str) -> Result<Providers, String> {
    tokio::runtime::Handle::try_current().map_err(|_| "no Tokio runtime to run the gRPC exporter on".to_string())?;
    let resource = Resource::builder().with_service_name(service.to_string()).build();
    let spans = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|e| format!("span exporter: {e}"))?;
    let metrics = opentelemetry_otlp::MetricExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|e| format!("metric exporter: {e}"))?;
    let tracer = SdkTracerProvider::builder()
        .with_resource(resource.clone())
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            config.sample_ratio,
        ))))
        .with_batch_exporter(spans)
        .build();
    let reader = PeriodicReader::builder(metrics)
        .with_interval(config.export_interval)
        .build();
    let meter = SdkMeterProvider::builder()
        .with_resource(resource)
        .with_reader(reader)
        .build();
    let m = meter.meter("seqline");
    let _ = INSTRUMENTS.set(Instruments {
        counters: Counter::ALL
            .iter()
            .map(|c| m.u64_counter(c.name()).with_description(c.help()).build())
            .collect(),
        latency: m
            .u64_histogram(LATENCY)
            .with_description("End-to-end latency in milliseconds, by stage (push, ack).")
            .with_boundaries(LATENCY_BOUNDS_MS.iter().map(|b| *b as f64).collect())
            .build(),
        stages: Stage::ALL.map(|s| KeyValue::new("stage", s.label())),
    });
    opentelemetry::global::set_text_map_propagator(opentelemetry_sdk::propagation::TraceContextPropagator::new());
    opentelemetry::global::set_tracer_provider(tracer.clone());
    Ok(Providers { tracer, meter })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_export_path_is_not_exported() {
        for t in [
            "h2",
            "h2::proto",
            "hyper_util::client",
            "tonic::transport",
            "opentelemetry_sdk",
            "opentelemetry-otlp",
        ] {
            assert!(is_exporter(t), "{t}");
        }
        for t in ["seqline_gateway::session", "hyperloop", "towering"] {
            assert!(!is_exporter(t), "{t}");
        }
    }
}
