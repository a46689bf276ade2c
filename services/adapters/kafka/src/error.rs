//! librdkafka errors become port errors here, grouped by what the caller can
//! do; the original text is kept in the message.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use seqline_core::Error;

/// Error codes that mean "this member no longer owns the partition": the
/// group moved on (rebalance, session expiry) or the consumer is closed.
fn is_fencing(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::State
            | RDKafkaErrorCode::UnknownPartition
            | RDKafkaErrorCode::UnknownMemberId
            | RDKafkaErrorCode::IllegalGeneration
            | RDKafkaErrorCode::RebalanceInProgress
            | RDKafkaErrorCode::FencedInstanceId
            | RDKafkaErrorCode::AssignmentLost
            | RDKafkaErrorCode::BrokerDestroy
    )
}

/// Error codes that no retry of the same input can fix.
fn is_invalid(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::InvalidMessageSize
            | RDKafkaErrorCode::InvalidArgument
            | RDKafkaErrorCode::InvalidTopic
            | RDKafkaErrorCode::MessageBatchTooLarge
    )
}

/// Maps an error of a commit: losing the partition is [`Error::Fenced`].
pub(crate) fn commit_error(what: &str, e: &KafkaError) -> Error {
    match e.rdkafka_error_code() {
        Some(code) if is_fencing(code) => Error::Fenced(format!("{what}: {e}")),
        _ => Error::Unavailable(format!("{what}: {e}")),
    }
}

/// Maps an error of the producer or admin client.
pub(crate) fn client_error(what: &str, e: &KafkaError) -> Error {
    match e {
        KafkaError::ClientConfig(..) | KafkaError::ClientCreation(_) => Error::Config(format!("{what}: {e}")),
        _ => match e.rdkafka_error_code() {
            Some(code) if is_invalid(code) => Error::Invalid(format!("{what}: {e}")),
            _ => Error::Unavailable(format!("{what}: {e}")),
        },
    }
}

/// The error a consumer of a group that was taken over gets.
pub(crate) fn taken_over(group: &str, topic: &str) -> Error {
    Error::Fenced(format!(
        "consumer of group {group} on {topic} was closed or replaced by a newer one"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_errors() {
        let lost = KafkaError::ConsumerCommit(RDKafkaErrorCode::State);
        assert!(matches!(commit_error("commit", &lost), Error::Fenced(m) if m.contains("commit")));
        let gen = KafkaError::ConsumerCommit(RDKafkaErrorCode::IllegalGeneration);
        assert!(matches!(commit_error("commit", &gen), Error::Fenced(_)));
        let down = KafkaError::ConsumerCommit(RDKafkaErrorCode::BrokerTransportFailure);
        assert!(commit_error("commit", &down).is_retryable());
    }

    #[test]
    fn client_errors() {
        let big = KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge);
        assert!(matches!(client_error("append", &big), Error::Invalid(_)));
        let timeout = KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut);
        assert!(client_error("append", &timeout).is_retryable());
        let conf = KafkaError::ClientCreation("bad".into());
        assert!(matches!(client_error("connect", &conf), Error::Config(_)));
    }
}
