//! A handful of counters, rendered as Prometheus text at `GET /metrics`,
//! followed by the process-wide series of `seqline_telemetry` (commands
//! accepted, messages committed, deliveries, dedup hits, latency, …).

use seqline_core::protocol::ErrorCode;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

const ERROR_CODES: [ErrorCode; 15] = [
    ErrorCode::BadFrame,
    ErrorCode::UnknownType,
    ErrorCode::InvalidField,
    ErrorCode::TooLarge,
    ErrorCode::InvalidUtf8,
    ErrorCode::Unauthenticated,
    ErrorCode::BadToken,
    ErrorCode::TokenExpired,
    ErrorCode::AlreadyAuthenticated,
    ErrorCode::NotMember,
    ErrorCode::Forbidden,
    ErrorCode::RateLimited,
    ErrorCode::NotFound,
    ErrorCode::Unavailable,
    ErrorCode::Internal,
];

/// One counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    /// Sets the value (gauges only).
    pub fn set(&self, n: u64) {
        self.0.store(n, Ordering::Relaxed);
    }
    /// Takes one away (gauges only).
    pub fn dec(&self) {
        self.sub(1);
    }
    /// Takes `n` away (gauges only).
    pub fn sub(&self, n: u64) {
        self.0.fetch_sub(n, Ordering::Relaxed);
    }
    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The gateway's counters. Cheap to bump from any task.
#[derive(Debug, Default)]
pub struct Metrics {
    /// WebSocket connections accepted since start.
    pub connections_total: Counter,
    /// WebSocket connections open now.
    pub connections_open: Counter,
    /// Connections closed because their send queue overflowed.
    pub connections_kicked: Counter,
    /// Bytes (estimated) of frames queued for all connections, waiting to
    /// be written.
    pub queued_bytes: Counter,
    /// Frames received from clients.
    pub frames_in: Counter,
    /// Frames sent to clients.
    pub frames_out: Counter,
    /// Commands appended to the inbound topic.
    pub commands_published: Counter,
    /// Appends of batches to the inbound topic.
    pub publish_batches: Counter,
    /// Commands whose append failed.
    pub publish_failures: Counter,
    /// `ack` frames sent.
    pub acks: Counter,
    /// `nack` frames sent.
    pub nacks: Counter,
    /// `push` frames sent.
    pub pushes: Counter,
    /// `pull` frames sent.
    pub pulls: Counter,
    /// Receipts or packages for no connection on this gateway.
    pub undeliverable: Counter,
    /// HTTP API requests answered.
    pub http_requests: Counter,
    /// Conversation pages (`sync_conv`) served from the hot-tail cache
    /// without a store read of their own.
    pub conv_cache_hits: Counter,
    /// Store reads of conversation messages made for `sync_conv`.
    pub conv_store_reads: Counter,
    /// Store reads of conversation heads made for read diffusion.
    pub conv_head_reads: Counter,
    /// Reads that joined an identical read already in flight.
    pub conv_reads_coalesced: Counter,
    /// Bytes held by the hot-tail cache (estimate).
    pub conv_cache_bytes: Counter,
    /// Conversations evicted from the hot-tail cache.
    pub conv_cache_evictions: Counter,
    /// Conversations followed by connections on this gateway.
    pub follows: Counter,
    /// `polled` answers sent.
    pub polls_answered: Counter,
    /// `notice` frames queued.
    pub notices_pushed: Counter,
    /// `notice` frames dropped because a connection's queue was full.
    pub notices_dropped: Counter,
    /// `priority` frames queued.
    pub priority_pushed: Counter,
    /// `priority` frames dropped because a connection's priority lane was full.
    pub priority_dropped: Counter,
    /// `read_mark` frames queued.
    pub read_marks_pushed: Counter,
    /// Delivery lag of the entries this gateway pushes, milliseconds (the
    /// mean of the last window, as admission control sees it).
    pub admission_lag_ms: Counter,
    /// Sends appended to the log with no receipt yet.
    pub admission_inflight: Counter,
    /// Sends per second admitted while deliveries lag (0: no limit).
    pub admission_rate: Counter,
    /// 1 while admission control refuses sends, else 0.
    pub admission_slowing: Counter,
    /// Sends and batches refused by admission control (`rate_limited`).
    pub admission_refused: Counter,
    errors: [Counter; ERROR_CODES.len()],
}

impl Metrics {
    /// Counts an error frame or HTTP error with `code`.
    pub fn error(&self, code: ErrorCode) {
        if let Some(i) = ERROR_CODES.iter().position(|c| *c == code) {
            self.errors[i].inc();
        }
    }

    /// Errors counted with `code`.
    pub fn errors(&self, code: ErrorCode) -> u64 {
        ERROR_CODES
            .iter()
            .position(|c| *c == code)
            .map_or(0, |i| self.errors[i].get())
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let counters: [(&str, &Counter, &str); 33] = [
            ("connections_total", &self.connections_total, "counter"),
            ("connections_open", &self.connections_open, "gauge"),
            ("connections_kicked_total", &self.connections_kicked, "counter"),
            ("send_queue_bytes", &self.queued_bytes, "gauge"),
            ("frames_in_total", &self.frames_in, "counter"),
            ("frames_out_total", &self.frames_out, "counter"),
            ("commands_published_total", &self.commands_published, "counter"),
            ("publish_batches_total", &self.publish_batches, "counter"),
            ("publish_failures_total", &self.publish_failures, "counter"),
            ("acks_total", &self.acks, "counter"),
            ("nacks_total", &self.nacks, "counter"),
            ("pushes_total", &self.pushes, "counter"),
            ("pulls_total", &self.pulls, "counter"),
            ("undeliverable_total", &self.undeliverable, "counter"),
            ("http_requests_total", &self.http_requests, "counter"),
            ("conv_cache_hits_total", &self.conv_cache_hits, "counter"),
            ("conv_store_reads_total", &self.conv_store_reads, "counter"),
            ("conv_head_reads_total", &self.conv_head_reads, "counter"),
            ("conv_reads_coalesced_total", &self.conv_reads_coalesced, "counter"),
            ("conv_cache_bytes", &self.conv_cache_bytes, "gauge"),
            ("conv_cache_evictions_total", &self.conv_cache_evictions, "counter"),
            ("follows", &self.follows, "gauge"),
            ("polls_answered_total", &self.polls_answered, "counter"),
            ("notices_pushed_total", &self.notices_pushed, "counter"),
            ("notices_dropped_total", &self.notices_dropped, "counter"),
            ("priority_pushed_total", &self.priority_pushed, "counter"),
            ("priority_dropped_total", &self.priority_dropped, "counter"),
            ("read_marks_pushed_total", &self.read_marks_pushed, "counter"),
            ("admission_lag_ms", &self.admission_lag_ms, "gauge"),
            ("admission_inflight", &self.admission_inflight, "gauge"),
            ("admission_rate", &self.admission_rate, "gauge"),
            ("admission_slowing", &self.admission_slowing, "gauge"),
            ("admission_refused_total", &self.admission_refused, "counter"),
        ];
        for (name, c, kind) in counters {
            let _ = writeln!(
                out,
                "# TYPE seqline_gateway_{name} {kind}\nseqline_gateway_{name} {}",
                c.get()
            );
        }
        let _ = writeln!(out, "# TYPE seqline_gateway_errors_total counter");
        for (code, c) in ERROR_CODES.iter().zip(&self.errors) {
            let label = serde_json::to_value(code)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned));
            let _ = writeln!(
                out,
                "seqline_gateway_errors_total{{code=\"{}\"}} {}",
                label.unwrap_or_default(),
                c.get()
            );
        }
        seqline_core::failpoint::render_prometheus(&mut out);
        seqline_telemetry::Metrics::global().render_prometheus(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_error_codes() {
        let m = Metrics::default();
        m.acks.add(3);
        m.error(ErrorCode::RateLimited);
        let text = m.render();
        assert!(text.contains("seqline_gateway_acks_total 3"));
        assert!(text.contains("seqline_gateway_errors_total{code=\"rate_limited\"} 1"));
        assert_eq!(m.errors(ErrorCode::RateLimited), 1);
    }

    #[test]
    fn appends_the_process_series() {
        use seqline_telemetry::events::{emit, RectifierTimedOut};
        emit(RectifierTimedOut);
        let text = Metrics::default().render();
        assert!(
            text.contains("# TYPE seqline_commands_accepted_total counter\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE seqline_e2e_latency_ms histogram\n"), "{text}");
        assert!(text.contains("seqline_e2e_latency_ms_bucket{stage=\"push\",le=\"+Inf\"}"));
        let timeouts = text
            .lines()
            .find_map(|l| l.strip_prefix("seqline_rectifier_timeouts_total "))
            .and_then(|v| v.parse::<u64>().ok());
        assert!(timeouts.is_some_and(|n| n >= 1), "{text}");
        let own = text.find("seqline_gateway_acks_total 0\n");
        assert!(
            own.is_some() && own < text.find("seqline_commands_accepted_total"),
            "the gateway's own series come first"
        );
    }
}
