//! Observability of every seqline role: logs through `tracing` to stderr
//! (text or JSON), traces and metrics exported over OTLP/gRPC when an
//! endpoint is configured, and the metric series listed in docs/operations.md,
//! moved only by typed events and rendered as Prometheus text for the
//! gateway's `/metrics`.
//!
//! Services depend on this crate without default features (events and
//! spans only); the binary enables `otlp` and calls [`init`] once, keeping
//! the [`Guard`] until everything else has stopped: telemetry flushes last.
//!
//! # Layout
//! - [`config`]: [`TelemetryConfig`], the `[telemetry]` section.
//! - [`events`]: the typed events and [`emit`], the one emit path.
//! - [`metrics`]: the process registry ([`Metrics`]) and its Prometheus text.
//! - [`trace`]: the trace context records carry across the log
//!   ([`current_traceparent`], [`continue_traces`], [`set_parent`]).
//! - `otlp` (feature `otlp`): the exporters.

pub mod config;
pub mod events;
pub mod metrics;
#[cfg(feature = "otlp")]
mod otlp;
pub mod trace;

pub use config::TelemetryConfig;
pub use events::emit;
pub use metrics::Metrics;
pub use trace::{add_link, continue_traces, current_traceparent, exporting, set_parent};

use std::io::IsTerminal;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// How logs are written (the binary's `[log]` section).
#[derive(Clone, Copy, Debug)]
pub struct LogSettings<'a> {
    /// A `tracing` filter such as `info` or `seqline_gateway=debug,info`;
    /// `RUST_LOG` wins when set.
    pub level: &'a str,
    /// One JSON object per line instead of text.
    pub json: bool,
}

/// Keeps the exporters running; dropping it flushes and stops them.
#[must_use = "dropping the guard stops the exporters"]
pub struct Guard {
    #[cfg(feature = "otlp")]
    providers: Option<otlp::Providers>,
}

impl Guard {
    /// Whether traces and metrics are being exported over OTLP.
    pub fn exporting(&self) -> bool {
        #[cfg(feature = "otlp")]
        return self.providers.is_some();
        #[cfg(not(feature = "otlp"))]
        false
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        #[cfg(feature = "otlp")]
        if let Some(p) = self.providers.take() {
            p.shutdown();
        }
    }
}

/// Whether text logs get ANSI colours: only on a terminal, and never when
/// `NO_COLOR` is set to anything but the empty string (no-color.org). Logs
/// written to a file, a pipe or a log collector stay plain text.
fn colour_wanted(terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// Installs the process's `tracing` subscriber: logs to stderr, filtered by
/// `RUST_LOG` or `log.level`, and, when `telemetry.otlp_endpoint` is set, the
/// OpenTelemetry layer and metric export under the service name
/// `telemetry.service_name(role)`.
///
/// Never fails: an exporter that cannot be built is logged and left out, and
/// a collector that is down only costs logged export errors. With an
/// endpoint, call it inside a Tokio runtime and drop the guard before the
/// runtime. A second call in one process keeps the first subscriber.
pub fn init(log: &LogSettings<'_>, telemetry: &TelemetryConfig, role: &str) -> Guard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(log.level));
    let fmt: BoxedLayer = if log.json {
        tracing_subscriber::fmt::layer()
            .json()
            .with_ansi(false)
            .with_writer(std::io::stderr)
            .boxed()
    } else {
        let colour = colour_wanted(std::io::stderr().is_terminal(), std::env::var_os("NO_COLOR").as_deref());
        tracing_subscriber::fmt::layer()
            .with_ansi(colour)
            .with_writer(std::io::stderr)
            .boxed()
    };
    #[cfg_attr(not(feature = "otlp"), allow(unused_mut))]
    let mut layers = vec![fmt];
    #[cfg_attr(not(feature = "otlp"), allow(unused_mut))]
    let mut guard = Guard {
        #[cfg(feature = "otlp")]
        providers: None,
    };
    let mut refused = None;
    if let Some(endpoint) = &telemetry.otlp_endpoint {
        #[cfg(feature = "otlp")]
        match otlp::start(telemetry, endpoint, &telemetry.service_name(role)) {
            Ok(p) => {
                layers.push(p.layer());
                guard.providers = Some(p);
            }
            Err(e) => refused = Some(e),
        }
        #[cfg(not(feature = "otlp"))]
        {
            let _ = (endpoint, role);
            refused = Some("this build has no OTLP support (feature `otlp`)".to_string());
        }
    }
    let installed = tracing_subscriber::registry()
        .with(layers)
        .with(filter)
        .try_init()
        .is_ok();
    if !installed {
        tracing::debug!("a tracing subscriber was already installed; keeping it");
    }
    #[cfg(feature = "otlp")]
    if installed && guard.providers.is_some() {
        otlp::spans_installed();
    }
    match (&telemetry.otlp_endpoint, refused) {
        (Some(endpoint), Some(error)) => {
            tracing::warn!(endpoint, %error, "OTLP export is off");
        }
        (Some(endpoint), None) => {
            tracing::info!(endpoint, service = %telemetry.service_name(role), "exporting traces and metrics over OTLP");
        }
        (None, _) => {}
    }
    guard
}

#[cfg(test)]
mod tests {
    use super::colour_wanted;
    use std::ffi::OsStr;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour_wanted(true, None));
        assert!(colour_wanted(true, Some(OsStr::new(""))), "an empty NO_COLOR is unset");
        assert!(!colour_wanted(true, Some(OsStr::new("1"))));
        assert!(!colour_wanted(false, None), "a file or a pipe gets plain text");
    }
}
