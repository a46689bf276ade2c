//! The gateway's configuration section.

use seqline_core::GatewayId;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::Duration;

/// Shortest token secret accepted, bytes.
pub const MIN_SECRET_BYTES: usize = 16;
/// Default of [`GatewayConfig::send_queue_bytes`].
pub const DEFAULT_SEND_QUEUE_BYTES: usize = 512 * 1024;
/// Bounds of [`GatewayConfig::send_queue_bytes`]: below, a single push
/// could not wait; above, a few thousand slow readers would hold gigabytes.
pub const SEND_QUEUE_BYTES_RANGE: std::ops::RangeInclusive<usize> = 4 * 1024..=64 * 1024 * 1024;

/// Configuration of one gateway instance. Every field has a default; only
/// `token_secret` must be set (an empty secret fails [`GatewayConfig::validate`]).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// Address to listen on for WebSocket and HTTP.
    pub listen: SocketAddr,
    /// This gateway's id: receipts and pushes for it travel on topic `gw.<id>`.
    pub id: GatewayId,
    /// Shared HMAC secret that signs device tokens (at least 16 bytes).
    pub token_secret: String,
    /// Browser origins allowed to open a WebSocket; empty allows any. A
    /// request without an `Origin` header (a non-browser client) is allowed.
    pub allowed_origins: Vec<String>,
    /// Largest WebSocket frame or message accepted, bytes (larger: close 1009).
    pub max_frame_bytes: usize,
    /// Largest message body accepted, bytes (larger: `too_large`).
    pub max_body_bytes: usize,
    /// Largest page a sync or history answer returns.
    pub max_page: u32,
    /// Pages and pushes are also cut to about this many bytes (at least one
    /// entry each), so no answer is one huge frame.
    pub max_page_bytes: usize,
    /// Sends per second a connection may make on average.
    pub max_sends_per_sec: u32,
    /// Sends a connection may make in a burst above the average rate.
    pub send_burst: u32,
    /// Other frames (sync, history, cursor, ping) per second per connection.
    pub max_requests_per_sec: u32,
    /// Open WebSocket connections on this gateway (more: HTTP 503).
    pub max_connections: usize,
    /// Open WebSocket connections of one user (more: close 1013 after hello).
    pub max_connections_per_user: usize,
    /// Open WebSocket connections from one client address (IPv6: one /64)
    /// (more: HTTP 503 before the upgrade). 0, the default, sets no cap:
    /// many clients share an address behind a carrier NAT, an office proxy
    /// or a load balancer (behind which every client has the balancer's
    /// address). Set it when clients connect directly.
    pub max_connections_per_ip: usize,
    /// Frames waiting to be written to one connection; a client that cannot
    /// keep up is disconnected and recovers by sync.
    pub send_queue: usize,
    /// Bytes (an estimate of the memory they hold) of frames waiting to be
    /// written to one connection, both lanes together, beyond the frame
    /// being written. A
    /// client that lets more pile up is closed with 1008 and recovers by
    /// sync: what a slow reader can make the gateway hold is bounded by
    /// this, not by the frame count. 4 KiB to 64 MiB.
    pub send_queue_bytes: usize,
    /// How long writing the close frame (behind whatever the client has
    /// not read yet) and waiting for the client's answer may take before
    /// the socket is dropped.
    #[serde(with = "seqline_core::duration")]
    pub close_timeout: Duration,
    /// Commands waiting for the publisher (shared by all connections).
    pub publish_queue: usize,
    /// Most commands appended to the log in one batch.
    pub publish_batch: usize,
    /// How long the rectifier waits for a gap to fill before telling the
    /// device to pull.
    #[serde(with = "seqline_core::duration")]
    pub rectifier_timeout: Duration,
    /// Most entries the rectifier holds back per connection before giving up
    /// and telling the device to pull.
    pub rectifier_max_buffered: usize,
    /// Time to live of a presence entry.
    #[serde(with = "seqline_core::duration")]
    pub presence_ttl: Duration,
    /// How often presence entries of connected devices are refreshed.
    #[serde(with = "seqline_core::duration")]
    pub heartbeat: Duration,
    /// How long a new connection may take to send `hello`.
    #[serde(with = "seqline_core::duration")]
    pub hello_timeout: Duration,
    /// A connection that sends nothing (not even a pong) for this long is
    /// closed; the server pings every third of it.
    #[serde(with = "seqline_core::duration")]
    pub idle_timeout: Duration,
    /// How long a client may take to send an HTTP request's headers
    /// (including the WebSocket upgrade request) before it is disconnected.
    #[serde(with = "seqline_core::duration")]
    pub http_header_timeout: Duration,
    /// How long a client may take to send an HTTP request's body, from the
    /// end of its headers (then 408 and the connection is closed): a body
    /// that trickles or never ends does not hold a request open.
    #[serde(with = "seqline_core::duration")]
    pub http_body_timeout: Duration,
    /// How long an HTTP request waits for the sequencer's receipt (then 504).
    #[serde(with = "seqline_core::duration")]
    pub http_receipt_timeout: Duration,
    /// Largest HTTP request body accepted, bytes (larger: 413).
    pub max_http_body_bytes: usize,
    /// Memory for the hot tails of conversations read by cursor (read
    /// diffusion), bytes (an estimate; least recently used go first).
    pub conv_cache_bytes: usize,
    /// Most recent messages kept per conversation in that cache.
    pub conv_cache_tail: usize,
    /// How long a conversation head learned from the store or a notice is
    /// trusted before `sync_conv` reads it again.
    #[serde(with = "seqline_core::duration")]
    pub conv_head_ttl: Duration,
    /// How long a `poll` waits when it names no `wait_ms`.
    #[serde(with = "seqline_core::duration")]
    pub poll_wait: Duration,
    /// Priority frames waiting to be written to one connection (more are
    /// dropped; the device still gets the messages by pulling).
    pub priority_queue: usize,
    /// Admission control: while the timeline entries this gateway pushes
    /// are older than this on average (now minus their server timestamp,
    /// over a 200 ms window), new sends get `rate_limited` with a
    /// `retry_after_ms` hint. 0 turns the check off.
    #[serde(with = "seqline_core::duration")]
    pub max_delivery_lag: Duration,
    /// Admission control: most sends (batch commands counted one by one)
    /// appended to the log with no receipt yet, gateway-wide; more get
    /// `rate_limited`. 0 turns the cap off.
    pub max_inflight_sends: usize,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 7600)),
            #[allow(clippy::expect_used)]
            id: GatewayId::parse("gw-1").expect("a valid literal id"),
            token_secret: String::new(),
            allowed_origins: Vec::new(),
            max_frame_bytes: 65536,
            max_body_bytes: 16384,
            max_page: 500,
            max_page_bytes: 128 * 1024,
            max_sends_per_sec: 100,
            send_burst: 200,
            max_requests_per_sec: 100,
            max_connections: 10_000,
            max_connections_per_user: 16,
            max_connections_per_ip: 0,
            send_queue: 256,
            send_queue_bytes: DEFAULT_SEND_QUEUE_BYTES,
            close_timeout: Duration::from_secs(5),
            publish_queue: 16_384,
            publish_batch: 2048,
            rectifier_timeout: Duration::from_millis(500),
            rectifier_max_buffered: 1024,
            presence_ttl: Duration::from_secs(30),
            heartbeat: Duration::from_secs(10),
            hello_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            http_header_timeout: Duration::from_secs(10),
            http_body_timeout: Duration::from_secs(10),
            http_receipt_timeout: Duration::from_secs(10),
            max_http_body_bytes: 65536,
            conv_cache_bytes: 64 << 20,
            conv_cache_tail: 256,
            conv_head_ttl: Duration::from_millis(500),
            poll_wait: Duration::from_secs(25),
            priority_queue: 64,
            max_delivery_lag: Duration::from_millis(500),
            max_inflight_sends: 10_000,
        }
    }
}

impl std::fmt::Debug for GatewayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayConfig")
            .field("listen", &self.listen)
            .field("id", &self.id)
            .field("token_secret", &"***")
            .field("allowed_origins", &self.allowed_origins)
            .field("max_frame_bytes", &self.max_frame_bytes)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_page", &self.max_page)
            .field("max_page_bytes", &self.max_page_bytes)
            .field("max_sends_per_sec", &self.max_sends_per_sec)
            .field("send_burst", &self.send_burst)
            .field("max_requests_per_sec", &self.max_requests_per_sec)
            .field("max_connections", &self.max_connections)
            .field("max_connections_per_user", &self.max_connections_per_user)
            .field("max_connections_per_ip", &self.max_connections_per_ip)
            .field("send_queue", &self.send_queue)
            .field("send_queue_bytes", &self.send_queue_bytes)
            .field("close_timeout", &self.close_timeout)
            .field("publish_queue", &self.publish_queue)
            .field("publish_batch", &self.publish_batch)
            .field("rectifier_timeout", &self.rectifier_timeout)
            .field("rectifier_max_buffered", &self.rectifier_max_buffered)
            .field("presence_ttl", &self.presence_ttl)
            .field("heartbeat", &self.heartbeat)
            .field("hello_timeout", &self.hello_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("http_header_timeout", &self.http_header_timeout)
            .field("http_body_timeout", &self.http_body_timeout)
            .field("http_receipt_timeout", &self.http_receipt_timeout)
            .field("max_http_body_bytes", &self.max_http_body_bytes)
            .field("conv_cache_bytes", &self.conv_cache_bytes)
            .field("conv_cache_tail", &self.conv_cache_tail)
            .field("conv_head_ttl", &self.conv_head_ttl)
            .field("poll_wait", &self.poll_wait)
            .field("priority_queue", &self.priority_queue)
            .field("max_delivery_lag", &self.max_delivery_lag)
            .field("max_inflight_sends", &self.max_inflight_sends)
            .finish()
    }
}

impl GatewayConfig {
    /// Cross-field checks, run once at start-up before anything connects.
    pub fn validate(&self) -> Result<(), String> {
        if self.token_secret.len() < MIN_SECRET_BYTES {
            return Err(format!(
                "gateway.token_secret must be at least {MIN_SECRET_BYTES} bytes"
            ));
        }
        let positive = [
            ("max_frame_bytes", self.max_frame_bytes),
            ("max_body_bytes", self.max_body_bytes),
            ("max_page", self.max_page as usize),
            ("max_page_bytes", self.max_page_bytes),
            ("max_sends_per_sec", self.max_sends_per_sec as usize),
            ("send_burst", self.send_burst as usize),
            ("max_requests_per_sec", self.max_requests_per_sec as usize),
            ("max_connections", self.max_connections),
            ("max_connections_per_user", self.max_connections_per_user),
            ("send_queue", self.send_queue),
            ("publish_queue", self.publish_queue),
            ("publish_batch", self.publish_batch),
            ("rectifier_max_buffered", self.rectifier_max_buffered),
            ("max_http_body_bytes", self.max_http_body_bytes),
            ("conv_cache_tail", self.conv_cache_tail),
            ("priority_queue", self.priority_queue),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("gateway.{name} must be greater than 0"));
        }
        if !SEND_QUEUE_BYTES_RANGE.contains(&self.send_queue_bytes) {
            return Err(format!(
                "gateway.send_queue_bytes must be between {} and {} bytes (it bounds what one slow reader may hold; got {})",
                SEND_QUEUE_BYTES_RANGE.start(),
                SEND_QUEUE_BYTES_RANGE.end(),
                self.send_queue_bytes
            ));
        }
        if self.max_body_bytes >= self.max_frame_bytes {
            return Err("gateway.max_body_bytes must be smaller than gateway.max_frame_bytes".into());
        }
        if self.max_connections_per_user > self.max_connections {
            return Err("gateway.max_connections_per_user must not exceed gateway.max_connections".into());
        }
        if self.max_connections_per_ip > self.max_connections {
            return Err(
                "gateway.max_connections_per_ip must not exceed gateway.max_connections (0 sets no cap)".into(),
            );
        }
        let nonzero = [
            ("rectifier_timeout", self.rectifier_timeout),
            ("heartbeat", self.heartbeat),
            ("hello_timeout", self.hello_timeout),
            ("idle_timeout", self.idle_timeout),
            ("close_timeout", self.close_timeout),
            ("http_header_timeout", self.http_header_timeout),
            ("http_body_timeout", self.http_body_timeout),
            ("http_receipt_timeout", self.http_receipt_timeout),
        ];
        if let Some((name, _)) = nonzero.iter().find(|(_, d)| d.is_zero()) {
            return Err(format!("gateway.{name} must be longer than 0"));
        }
        if self.poll_wait > Duration::from_millis(seqline_core::protocol::MAX_POLL_WAIT_MS) {
            return Err(format!(
                "gateway.poll_wait must be at most {} ms",
                seqline_core::protocol::MAX_POLL_WAIT_MS
            ));
        }
        if self.heartbeat >= self.presence_ttl {
            return Err("gateway.heartbeat must be shorter than gateway.presence_ttl".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> GatewayConfig {
        GatewayConfig {
            token_secret: "0123456789abcdef".into(),
            ..GatewayConfig::default()
        }
    }

    #[test]
    fn defaults_need_only_a_secret() {
        assert!(GatewayConfig::default().validate().is_err());
        assert_eq!(good().validate(), Ok(()));
    }

    #[test]
    fn cross_field_checks() {
        let c = GatewayConfig {
            heartbeat: Duration::from_secs(60),
            ..good()
        };
        assert!(c.validate().unwrap_err().contains("heartbeat"));
        let c = GatewayConfig {
            max_body_bytes: 70_000,
            ..good()
        };
        assert!(c.validate().unwrap_err().contains("max_body_bytes"));
        let c = GatewayConfig {
            send_queue: 0,
            ..good()
        };
        assert!(c.validate().unwrap_err().contains("send_queue"));
        let c = GatewayConfig {
            max_connections_per_ip: 10_001,
            ..good()
        };
        assert!(c.validate().unwrap_err().contains("max_connections_per_ip"));
        let c = GatewayConfig {
            max_connections_per_ip: 0,
            ..good()
        };
        assert_eq!(c.validate(), Ok(()), "0 sets no cap");
        let c = GatewayConfig {
            http_body_timeout: Duration::ZERO,
            ..good()
        };
        assert!(c.validate().unwrap_err().contains("http_body_timeout"));
    }

    #[test]
    fn the_send_queue_byte_budget_is_bounded() {
        for bad in [0, 100, 4095, 64 * 1024 * 1024 + 1, usize::MAX] {
            let c = GatewayConfig {
                send_queue_bytes: bad,
                ..good()
            };
            let err = c.validate().unwrap_err();
            assert!(
                err.contains("send_queue_bytes") && err.contains("between"),
                "{bad}: {err}"
            );
        }
        for ok in [4096, 512 * 1024, 64 * 1024 * 1024] {
            let c = GatewayConfig {
                send_queue_bytes: ok,
                ..good()
            };
            assert_eq!(c.validate(), Ok(()), "{ok}");
        }
        let c = GatewayConfig {
            close_timeout: Duration::ZERO,
            ..good()
        };
        assert!(c.validate().unwrap_err().contains("close_timeout"));
        let c: GatewayConfig = serde_json::from_str(r#"{"send_queue_bytes":131072,"close_timeout":"3s"}"#).unwrap();
        assert_eq!((c.send_queue_bytes, c.close_timeout), (131_072, Duration::from_secs(3)));
    }

    #[test]
    fn secret_is_masked_and_durations_read_as_text() {
        let c = good();
        assert!(!format!("{c:?}").contains("0123456789abcdef"));
        let json = r#"{"rectifier_timeout":"250ms","id":"gw-7","max_connections_per_ip":32}"#;
        let c: GatewayConfig = serde_json::from_str(json).unwrap();
        assert_eq!(c.rectifier_timeout, Duration::from_millis(250));
        assert_eq!(c.max_connections_per_ip, 32);
        assert!(format!("{c:?}").contains("max_connections_per_ip: 32"));
        assert_eq!(c.id.as_str(), "gw-7");
        assert!(serde_json::from_str::<GatewayConfig>(r#"{"nope":1}"#).is_err());
    }
}
