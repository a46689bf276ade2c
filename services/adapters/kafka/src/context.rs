//! librdkafka's logs and client errors go to `tracing`, with the client's
//! role in the `client` field.

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::ClientContext;

/// Forwards one librdkafka log line.
pub(crate) fn log(client: &'static str, level: RDKafkaLogLevel, facility: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => {
            tracing::error!(client, facility, "librdkafka: {message}")
        }
        RDKafkaLogLevel::Warning => tracing::warn!(client, facility, "librdkafka: {message}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => tracing::info!(client, facility, "librdkafka: {message}"),
        RDKafkaLogLevel::Debug => tracing::debug!(client, facility, "librdkafka: {message}"),
    }
}

/// Forwards one client-level error (most are transient: the client retries).
pub(crate) fn error(client: &'static str, error: &KafkaError, reason: &str) {
    tracing::warn!(client, error = %error, "librdkafka: {reason}");
}

/// The context of the admin client: logging only.
pub(crate) struct AdminContext;

impl ClientContext for AdminContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        log("admin", level, fac, log_message);
    }

    fn error(&self, e: KafkaError, reason: &str) {
        error("admin", &e, reason);
    }
}
