#![allow(clippy::unwrap_used)]
//! `RedisPresence` over TLS (`rediss://`) with a password, against a real
//! `redis-server` configured with a certificate minted by the test: the
//! whole presence contract holds over that link, and every wrong setting
//! (password, CA, scheme) is refused with an error that names it, before
//! anything is written.

use async_trait::async_trait;
use seqline_core::ids::{DeviceId, GatewayId, UserId};
use seqline_core::ports::Presence;
use seqline_core::Error;
use seqline_redis::{RedisOptions, RedisPresence};
use seqline_testkit::servers::{self, ServerProcess};
use seqline_testkit::tls::TestCerts;
use seqline_testkit::Harness;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

const PASSWORD: &str = "s3cret with spaces";

/// A TLS-only, password-protected server and the certificates it uses.
struct SecureRedis {
    server: ServerProcess,
    certs: TestCerts,
    dir: PathBuf,
}

impl SecureRedis {
    fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("seqline-redis-tls-{}", uuid::Uuid::new_v4().simple()));
        let certs = TestCerts::mint(&dir);
        let server = servers::redis_tls(&certs, PASSWORD);
        Self { server, certs, dir }
    }

    /// Options for `rediss://` with `password` (percent-encoded) and the
    /// test CA.
    fn options(&self, password: &str) -> RedisOptions {
        let encoded: String = password
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        let mut o = RedisOptions::new(format!("rediss://:{encoded}@{}", self.server.addr))
            .with_prefix(format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]));
        o.tls_ca = Some(self.certs.ca.clone());
        o.connect_timeout = Duration::from_secs(2);
        o
    }
}

impl Drop for SecureRedis {
    fn drop(&mut self) {
        self.server.kill();
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

struct TlsFixture {
    redis: SecureRedis,
    options: RedisOptions,
}

impl TlsFixture {
    fn new() -> Self {
        let redis = SecureRedis::start();
        let options = redis.options(PASSWORD);
        Self { redis, options }
    }
}

#[async_trait]
impl Harness<dyn Presence> for TlsFixture {
    async fn open(&self) -> Arc<dyn Presence> {
        let _ = &self.redis;
        Arc::new(RedisPresence::connect(self.options.clone()).await.unwrap())
    }
}

mod contract_over_tls {
    seqline_testkit::presence_tests!(crate::TlsFixture::new());
}

fn refusal(r: seqline_core::Result<RedisPresence>) -> Error {
    match r {
        Ok(_) => panic!("the connection was accepted"),
        Err(e) => e,
    }
}

/// Counts the keys on the server, over a raw TLS link with the right
/// settings (looking behind the adapter's back).
async fn keys(redis: &SecureRedis) -> usize {
    let certs = redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(std::fs::read(&redis.certs.ca).unwrap()),
    };
    let client = redis::Client::build_with_tls(redis.options(PASSWORD).url.as_str(), certs).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("DBSIZE").query_async::<usize>(&mut conn).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_refused_as_a_configuration_error_and_writes_nothing() {
    let redis = SecureRedis::start();
    let e = refusal(RedisPresence::connect(redis.options("not the password")).await);
    eprintln!("refused: {e}");
    assert!(
        matches!(e, Error::Config(_)),
        "a wrong password is a configuration error: {e:?}"
    );
    assert!(
        e.to_string().to_lowercase().contains("pass"),
        "the error names the password: {e}"
    );
    assert!(
        !e.to_string().contains("not the password"),
        "the error must not print the password: {e}"
    );
    assert_eq!(keys(&redis).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_certificate_from_an_unknown_ca_is_refused() {
    let redis = SecureRedis::start();
    // Without the test CA the server's certificate chains to no trusted root.
    let mut o = redis.options(PASSWORD);
    o.tls_ca = None;
    let e = refusal(RedisPresence::connect(o).await);
    eprintln!("refused: {e}");
    assert!(
        e.to_string().to_lowercase().contains("certificate"),
        "the error says the certificate was not trusted: {e}"
    );
    // A CA file that is not there is named.
    let mut o = redis.options(PASSWORD);
    o.tls_ca = Some(redis.dir.join("missing-ca.pem"));
    let e = refusal(RedisPresence::connect(o).await);
    assert!(matches!(e, Error::Config(_)), "{e:?}");
    assert!(e.to_string().contains("missing-ca.pem"), "{e}");
    assert_eq!(keys(&redis).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_text_to_the_tls_port_is_refused() {
    let redis = SecureRedis::start();
    let mut o = RedisOptions::new(format!("redis://:x@{}", redis.server.addr));
    o.connect_timeout = Duration::from_secs(2);
    o.response_timeout = Duration::from_secs(2);
    let e = refusal(RedisPresence::connect(o).await);
    eprintln!("refused: {e}");
    assert_eq!(keys(&redis).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_registered_over_tls_with_the_password_given_apart_from_the_url_is_found_again() {
    let redis = SecureRedis::start();
    // The password as a secret file hands it over: outside the URL.
    let mut o = redis.options(PASSWORD);
    o.url = format!("rediss://{}", redis.server.addr);
    o.password = Some(PASSWORD.into());
    let p = RedisPresence::connect(o).await.unwrap();
    let (user, device, gateway) = (
        UserId::parse("alice").unwrap(),
        DeviceId::parse("phone").unwrap(),
        GatewayId::parse("gw-1").unwrap(),
    );
    p.register(&user, &device, &gateway, Duration::from_secs(30))
        .await
        .unwrap();
    let found = p.lookup(std::slice::from_ref(&user)).await.unwrap();
    assert_eq!(found[&user].len(), 1);
    assert_eq!(keys(&redis).await, 1);
}
