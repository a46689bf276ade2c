//! A private `redis-server` per test (or the one named by
//! `SEQLINE_TEST_REDIS`), a latency proxy, and the contract harness.

#![allow(dead_code, clippy::unwrap_used)]

mod proxy;
mod server;

pub use proxy::LatencyProxy;
pub use server::RedisServer;

use async_trait::async_trait;
use seqline_core::ports::Presence;
use seqline_redis::{RedisOptions, RedisPresence};
use seqline_testkit::Harness;
use std::sync::Arc;

/// The server the tests of one harness talk to.
pub enum Backend {
    /// Started by this test, killed when dropped.
    Own(RedisServer),
    /// Named by `SEQLINE_TEST_REDIS`, shared (keys use a fresh prefix).
    External(String),
}

impl Backend {
    /// `SEQLINE_TEST_REDIS` if set, else a fresh private server.
    pub fn from_env() -> Self {
        match std::env::var("SEQLINE_TEST_REDIS") {
            Ok(url) if !url.is_empty() => Backend::External(url),
            _ => Backend::Own(RedisServer::start()),
        }
    }

    pub fn url(&self) -> String {
        match self {
            Backend::Own(s) => s.url(),
            Backend::External(url) => url.clone(),
        }
    }
}

/// A key prefix no other test uses.
pub fn fresh_prefix() -> String {
    format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// Options for `url` with a fresh prefix and short timeouts.
pub fn options(url: &str) -> RedisOptions {
    let mut o = RedisOptions::new(url).with_prefix(fresh_prefix());
    o.connect_timeout = std::time::Duration::from_millis(500);
    o.response_timeout = std::time::Duration::from_millis(1000);
    o
}

/// The contract harness: one backend, one prefix, reopened at will.
pub struct PresenceFixture {
    pub backend: Backend,
    pub options: RedisOptions,
}

impl PresenceFixture {
    pub fn new() -> Self {
        let backend = Backend::from_env();
        let options = options(&backend.url());
        Self { backend, options }
    }
}

#[async_trait]
impl Harness<dyn Presence> for PresenceFixture {
    async fn open(&self) -> Arc<dyn Presence> {
        Arc::new(RedisPresence::connect(self.options.clone()).await.unwrap())
    }
}

/// A plain connection for looking behind the adapter's back.
pub async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(url).unwrap();
    client.get_multiplexed_async_connection().await.unwrap()
}
