//! `TelemetryConfig`: where traces and metrics go (the `[telemetry]` section).

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// OpenTelemetry export. Logs always go to stderr through `tracing`; traces
/// and metrics are exported over OTLP only when `otlp_endpoint` is set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// The OTLP/gRPC collector, e.g. `http://otel-collector:4317`; nothing
    /// is exported when absent.
    pub otlp_endpoint: Option<String>,
    /// The `service.name` of what is exported; empty means `seqline-<role>`
    /// (`seqline-gateway`, `seqline-persister`, `seqline-fanout`, `seqline-dev`).
    pub service_name: String,
    /// How often metrics are pushed to the collector, e.g. `"10s"`.
    #[serde(with = "seqline_core::duration")]
    pub export_interval: Duration,
    /// The share of new traces that are recorded, from 0.0 to 1.0 (a trace
    /// continued from a sampled parent is always recorded).
    pub sample_ratio: f64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            service_name: String::new(),
            export_interval: Duration::from_secs(10),
            sample_ratio: 1.0,
        }
    }
}

impl TelemetryConfig {
    /// Cross-field checks, once at start-up.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(endpoint) = &self.otlp_endpoint {
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                return Err(format!(
                    "otlp_endpoint = {endpoint:?} is not a URL like \"http://otel-collector:4317\""
                ));
            }
        }
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return Err(format!(
                "sample_ratio = {} is not between 0.0 and 1.0",
                self.sample_ratio
            ));
        }
        if self.export_interval.is_zero() {
            return Err("export_interval must be positive".into());
        }
        Ok(())
    }

    /// The service name to report: the configured one, else `seqline-<role>`.
    pub fn service_name(&self, role: &str) -> String {
        if self.service_name.is_empty() {
            format!("seqline-{role}")
        } else {
            self.service_name.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_export_nothing() {
        let c: TelemetryConfig = toml::from_str("").unwrap();
        assert_eq!(c, TelemetryConfig::default());
        assert_eq!(c.otlp_endpoint, None);
        assert_eq!(c.sample_ratio, 1.0);
        assert_eq!(c.export_interval, Duration::from_secs(10));
        assert_eq!(c.service_name("gateway"), "seqline-gateway");
        c.validate().unwrap();
    }

    #[test]
    fn parses_every_key() {
        let c: TelemetryConfig = toml::from_str(
            r#"
            otlp_endpoint = "http://otel-collector:4317"
            service_name = "edge-gw"
            export_interval = "250ms"
            sample_ratio = 0.25
            "#,
        )
        .unwrap();
        assert_eq!(c.otlp_endpoint.as_deref(), Some("http://otel-collector:4317"));
        assert_eq!(c.service_name("gateway"), "edge-gw");
        assert_eq!(c.export_interval, Duration::from_millis(250));
        assert_eq!(c.sample_ratio, 0.25);
        c.validate().unwrap();
        let back: TelemetryConfig = toml::from_str(&toml::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c, "round trip");
    }

    #[test]
    fn refuses_unknown_keys_and_bad_values() {
        assert!(toml::from_str::<TelemetryConfig>("otlp = \"x\"").is_err());
        assert!(toml::from_str::<TelemetryConfig>("export_interval = \"5 parsecs\"").is_err());
        let bad = |s: &str| toml::from_str::<TelemetryConfig>(s).unwrap().validate().is_err();
        assert!(bad("otlp_endpoint = \"otel-collector:4317\""));
        assert!(bad("sample_ratio = 1.5"));
        assert!(bad("sample_ratio = -0.1"));
        assert!(bad("export_interval = \"0s\""));
    }
}
