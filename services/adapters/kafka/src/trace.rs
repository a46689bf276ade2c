//! W3C trace context in record headers: an append writes the current span's
//! context as a `traceparent` header on each record, a consumer reads it
//! back into [`Consumed::trace`](seqline_core::ports::Consumed), so a trace
//! continues across the hop. Without a context (traces are not exported)
//! a record has no header at all.

use rdkafka::message::{BorrowedHeaders, Header, Headers as _, OwnedHeaders};
use seqline_core::trace::TraceParent;

/// The header name (W3C Trace Context).
pub const TRACEPARENT: &str = "traceparent";

/// The headers of a record appended in trace context `trace`.
pub(crate) fn headers(trace: TraceParent) -> OwnedHeaders {
    let value = trace.to_string();
    OwnedHeaders::new_with_capacity(1).insert(Header {
        key: TRACEPARENT,
        value: Some(value.as_bytes()),
    })
}

/// The trace context in `headers`, if a well-formed one is there (one that
/// is not is ignored: tracing never refuses a record).
pub(crate) fn read(headers: Option<&BorrowedHeaders>) -> Option<TraceParent> {
    headers?
        .iter()
        .find(|h| h.key == TRACEPARENT)
        .and_then(|h| std::str::from_utf8(h.value?).ok())
        .and_then(TraceParent::parse)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_round_trips_and_junk_is_ignored() {
        let trace = TraceParent::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").unwrap();
        let written = headers(trace);
        assert_eq!(read(Some(written.as_borrowed())), Some(trace));
        let junk = OwnedHeaders::new().insert(Header {
            key: TRACEPARENT,
            value: Some("junk"),
        });
        assert_eq!(read(Some(junk.as_borrowed())), None);
        assert_eq!(read(None), None);
    }
}
