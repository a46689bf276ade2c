//! librdkafka's logs and client errors go to `tracing`, with the client's
//! role in the `client` field.

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::ClientContext;
use std::sync::{Mutex, PoisonError};

/// Forwards one librdkafka log line.
pub(crate) fn log(client: &'static str, level: RDKafkaLogLevel, facility: &str, message: &str) {
    if is_chosen_experimental(facility, message) {
        tracing::debug!(client, facility, "librdkafka: {message}");
        return;
    }
    match level {
        RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => {
            tracing::error!(client, facility, "librdkafka: {message}")
        }
        RDKafkaLogLevel::Warning => tracing::warn!(client, facility, "librdkafka: {message}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => tracing::info!(client, facility, "librdkafka: {message}"),
        RDKafkaLogLevel::Debug => tracing::debug!(client, facility, "librdkafka: {message}"),
    }
}

/// librdkafka warns at every start that a setting we chose on purpose
/// (`enable.gapless.guarantee`, see the producer) is experimental: that
/// warning, once per client, would only teach operators to ignore warnings.
fn is_chosen_experimental(facility: &str, message: &str) -> bool {
    facility == "CONFWARN" && message.contains("enable.gapless.guarantee is experimental")
}

/// Forwards one client-level error (most are transient: the client retries).
pub(crate) fn error(client: &'static str, error: &KafkaError, reason: &str) {
    tracing::warn!(client, error = %error, "librdkafka: {reason}");
}

/// The last refusal of a client's link itself: a login or a TLS handshake
/// that the broker or the client refused. librdkafka reports it only as an
/// error event; a failed request just says the transport failed, so the
/// caller asks here why.
#[derive(Default)]
pub(crate) struct Refusal(Mutex<Option<String>>);

impl Refusal {
    /// Keeps `reason` if `e` is a refused login or TLS handshake.
    pub(crate) fn note(&self, e: &KafkaError, reason: &str) {
        if let Some(RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SSL) = e.rdkafka_error_code() {
            *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(reason.to_string());
        }
    }

    /// Why the last login or TLS handshake failed, if one did.
    pub(crate) fn reason(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_gapless_configuration_warning_is_quieted() {
        let gapless =
            "[thrd:app]: Configuration property enable.gapless.guarantee is experimental: When set to `true`, ...";
        assert!(is_chosen_experimental("CONFWARN", gapless));
        assert!(!is_chosen_experimental(
            "CONFWARN",
            "Configuration property foo.bar is experimental"
        ));
        assert!(!is_chosen_experimental("FAIL", gapless));
    }
}
