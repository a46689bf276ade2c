//! Trace context across the log. An append reads [`current_traceparent`]
//! and stores it with each record; the consumer makes the span that handles
//! the record a child of it ([`set_parent`]), so one trace runs from a
//! client's send to the pushes it causes, across every log hop.
//!
//! Without OpenTelemetry export (feature `otlp` off, or no endpoint
//! configured) there is no context: [`current_traceparent`] is `None` after
//! one atomic load, records carry nothing, and the other two do nothing.
//! A context that was not sampled is still carried (with its flags), so every
//! hop of a trace follows the sampling decision of its first span.

use seqline_core::trace::TraceParent;
use tracing::Span;

/// Whether spans are exported over OTLP: spans opened per record (a
/// client's send, a push) are only worth their cost then.
pub fn exporting() -> bool {
    #[cfg(feature = "otlp")]
    return crate::otlp::spans_exported();
    #[cfg(not(feature = "otlp"))]
    false
}

/// Most links one span gets in [`continue_traces`].
pub const MAX_LINKS: usize = 32;

/// Makes `span`, which must not have been entered yet, continue the first
/// of `traces` (the contexts of the records it handles, in order) and link
/// to the other traces among them, up to [`MAX_LINKS`]. One span for many
/// records keeps tracing's cost per batch; the records after the first are
/// findable from their own traces through the links.
pub fn continue_traces(span: &Span, traces: impl IntoIterator<Item = TraceParent>) {
    let mut traces = traces.into_iter();
    let Some(first) = traces.next() else {
        return;
    };
    set_parent(span, first);
    let mut linked = 0;
    let mut last = first.trace_id();
    for t in traces {
        if linked == MAX_LINKS {
            break;
        }
        // Consecutive records of one trace (the outputs of one command)
        // need one link, not one each.
        if t.trace_id() != last && t.trace_id() != first.trace_id() {
            add_link(span, t);
            linked += 1;
        }
        last = t.trace_id();
    }
}

/// The trace context of the current span, when spans are exported over
/// OTLP and the current span has one.
pub fn current_traceparent() -> Option<TraceParent> {
    #[cfg(feature = "otlp")]
    if crate::otlp::spans_exported() {
        use opentelemetry::trace::TraceContextExt;
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        let cx = Span::current().context();
        let span = cx.span();
        let sc = span.span_context();
        return TraceParent::new(
            sc.trace_id().to_bytes(),
            sc.span_id().to_bytes(),
            sc.trace_flags().to_u8(),
        );
    }
    None
}

/// Makes `span`, which must not have been entered yet, a child of `parent`
/// (the span that appended a record), continuing its trace.
pub fn set_parent(span: &Span, parent: TraceParent) {
    #[cfg(feature = "otlp")]
    {
        use opentelemetry::trace::TraceContextExt;
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        let cx = opentelemetry::Context::new().with_remote_span_context(span_context(parent));
        // Fails only when the span is disabled or nothing exports it.
        let _ = span.set_parent(cx);
    }
    #[cfg(not(feature = "otlp"))]
    let _ = (span, parent);
}

/// Links `span` to `other`: for a span that handles several records, the
/// traces of those it is not the child of.
pub fn add_link(span: &Span, other: TraceParent) {
    #[cfg(feature = "otlp")]
    {
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        span.add_link(span_context(other));
    }
    #[cfg(not(feature = "otlp"))]
    let _ = (span, other);
}

#[cfg(feature = "otlp")]
fn span_context(t: TraceParent) -> opentelemetry::trace::SpanContext {
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    SpanContext::new(
        TraceId::from_bytes(t.trace_id()),
        SpanId::from_bytes(t.span_id()),
        TraceFlags::new(t.flags()),
        true,
        TraceState::default(),
    )
}
