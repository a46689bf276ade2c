//! How a client connects, resends and keeps its cursor.

use crate::backoff::Backoff;
use crate::cursor::{CursorStore, MemoryCursor};
use std::time::Duration;

/// How sends are retried.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ResendPolicy {
    /// Transmissions of one message before it fails with an unknown outcome.
    pub max_attempts: u32,
    /// Wait after `rate_limited` / `unavailable` answers.
    pub backoff: Backoff,
    /// Wait between an ack timeout (`request_timeout` without an answer)
    /// and the resend: retry `n` of the backoff, where `n` counts the
    /// device's earlier ack timeouts in a row (an ack or a refusal from the
    /// sequencer starts over at 0). The default has full jitter (0 to
    /// 0.5 s, doubling up to 0 to 15 s), so devices whose sends timed out
    /// together do not resend together.
    pub timeout_backoff: Backoff,
}

impl Default for ResendPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 10,
            backoff: Backoff::default(),
            timeout_backoff: Backoff {
                base: Duration::from_millis(500),
                max: Duration::from_secs(15),
                jitter: 1.0,
            },
        }
    }
}

/// Everything [`crate::Client::connect`] needs.
pub struct ClientConfig {
    /// WebSocket URL, `ws://host:port/v1/ws`.
    pub url: String,
    /// The signed device token (never logged).
    pub token: String,
    /// Where the device cursor is kept.
    pub cursor: Box<dyn CursorStore>,
    /// How sends are retried.
    pub resend: ResendPolicy,
    /// Wait between reconnection attempts.
    pub reconnect: Backoff,
    /// A connected device pings this often; a pong head above the cursor
    /// triggers a sync. Silence for twice this (plus the request timeout)
    /// drops the connection as dead.
    pub ping_interval: Duration,
    /// How long a send waits for its ack, and a request for its answer,
    /// before it is resent (sends) or fails (requests).
    pub request_timeout: Duration,
    /// How long a connection attempt (TCP, upgrade, hello) may take.
    pub connect_timeout: Duration,
    /// How often the cursor is stored and reported to the server.
    pub cursor_interval: Duration,
    /// Capacity of the event stream (see [`crate::EventStream`]).
    pub event_capacity: usize,
    /// Most messages waiting for their ack; further sends wait for room.
    pub outbox_capacity: usize,
    /// Attach a vector clock per conversation to every send.
    pub vector_clocks: bool,
    /// Page size asked for when syncing (the server clamps it).
    pub sync_page: Option<u32>,
    /// Page size asked for when pulling a followed conversation. Membership
    /// messages of a huge group name up to a thousand users each, so pages
    /// are kept well below the WebSocket frame limit.
    pub conv_page: Option<u32>,
    /// How long a long-poll over followed conversations waits on the server
    /// (bounded by the server, at most 30 s).
    pub poll_wait: Duration,
}

impl ClientConfig {
    /// Defaults for `url` and `token`, with an in-memory cursor starting at 0.
    pub fn new(url: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            token: token.into(),
            cursor: Box::new(MemoryCursor::default()),
            resend: ResendPolicy::default(),
            reconnect: Backoff {
                base: Duration::from_millis(200),
                max: Duration::from_secs(5),
                jitter: 0.5,
            },
            ping_interval: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            cursor_interval: Duration::from_secs(1),
            event_capacity: 1024,
            outbox_capacity: 1024,
            vector_clocks: false,
            sync_page: None,
            conv_page: Some(100),
            poll_wait: Duration::from_secs(25),
        }
    }

    /// The same configuration with another cursor store.
    pub fn with_cursor(mut self, cursor: impl CursorStore) -> Self {
        self.cursor = Box::new(cursor);
        self
    }
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("url", &self.url)
            .field("token", &"***")
            .field("resend", &self.resend)
            .field("reconnect", &self.reconnect)
            .field("ping_interval", &self.ping_interval)
            .field("request_timeout", &self.request_timeout)
            .field("outbox_capacity", &self.outbox_capacity)
            .field("vector_clocks", &self.vector_clocks)
            .finish_non_exhaustive()
    }
}
