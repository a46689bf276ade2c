//! The dead letters: every record set aside, by whichever role, is built
//! here, so they read the same on the dead-letter topic.

use seqline_core::records::{DeadLetter, LogRecord, Topic};

fn letter(topic: &Topic, partition: u32, offset: u64, reason: String) -> LogRecord {
    LogRecord::DeadLetter(DeadLetter {
        topic: topic.name(),
        partition,
        offset,
        reason,
        raw: Vec::new(),
    })
}

/// A record that could not be decoded; `reason` is the decoder's.
pub fn undecodable(topic: &Topic, partition: u32, offset: u64, reason: String) -> LogRecord {
    tracing::warn!(topic = %topic.name(), partition, offset, %reason, "dead-lettering a record");
    letter(topic, partition, offset, reason)
}

/// A decoded record a handler cannot use (a type that does not belong on
/// the topic); `what` says what it is.
pub fn unexpected(topic: &Topic, partition: u32, offset: u64, what: &str) -> LogRecord {
    tracing::warn!(topic = %topic.name(), partition, offset, what, "dead-lettering an unexpected record");
    letter(
        topic,
        partition,
        offset,
        format!("unexpected record on {}: {what}", topic.name()),
    )
}

/// A record the handler of `group` refused for good (`Invalid`).
pub fn refused(topic: &Topic, partition: u32, offset: u64, group: &str, reason: &str) -> LogRecord {
    tracing::warn!(group, topic = %topic.name(), partition, offset, %reason, "dead-lettering a refused record");
    letter(topic, partition, offset, format!("refused by {group}: {reason}"))
}
