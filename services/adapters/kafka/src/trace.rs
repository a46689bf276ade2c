//! W3C trace context for produced records.
//!
//! The services trace with `tracing` spans, which carry no W3C trace id (no
//! OpenTelemetry layer is wired in), so an append starts a fresh trace: one
//! trace id per append, one span id per record, sampled. The trace id is
//! recorded in the `trace_id` field of the append's span (and logged at debug
//! level), so logs of the append can be matched with the records. When an
//! OpenTelemetry layer is added, this is the one place to read the current
//! context instead.

use uuid::Uuid;

/// The header name.
pub const TRACEPARENT: &str = "traceparent";

/// A trace id for one append.
pub(crate) fn new_trace_id() -> String {
    Uuid::new_v4().simple().to_string()
}

/// The `traceparent` value of one record of trace `trace_id`.
pub(crate) fn traceparent(trace_id: &str) -> String {
    let span = Uuid::new_v4().simple().to_string();
    format!("00-{trace_id}-{}-01", &span[..16])
}

/// Whether `value` is a well-formed version-00 `traceparent`.
pub fn is_valid(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    matches!(parts.as_slice(), [v, t, s, f]
        if *v == "00" && hex(t, 32) && hex(s, 16) && hex(f, 2)
            && t.bytes().any(|b| b != b'0') && s.bytes().any(|b| b != b'0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_formed() {
        let trace = new_trace_id();
        let a = traceparent(&trace);
        let b = traceparent(&trace);
        assert!(is_valid(&a), "{a}");
        assert_ne!(a, b, "one span id per record");
        assert_eq!(a[3..35], b[3..35], "one trace id per append");
        assert!(!is_valid("00-00000000000000000000000000000000-0000000000000001-01"));
        assert!(!is_valid("junk"));
    }
}
