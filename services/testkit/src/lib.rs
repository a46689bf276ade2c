//! Contract suites for the ports (`Store`, `Log`, `Presence`), generic over
//! the implementation, so every adapter (embedded, ScyllaDB, Kafka, Redis)
//! is held to the same behaviour. Checks use fresh random ids, topics and
//! groups, so they can run against a shared server without cleanup.
//!
//! An adapter's test crate implements [`Harness`] (and [`LogHarness`]) and
//! calls [`store_tests!`], [`log_tests!`] and [`presence_tests!`], which
//! generate one `#[tokio::test]` per check (the calling crate needs `tokio`
//! with the `macros` and `rt-multi-thread` features):
//!
//! ```ignore
//! mod embedded {
//!     seqline_testkit::store_tests!(crate::StoreFixture::new());
//! }
//! ```
//!
//! # Layout
//! - [`harness`]: the [`Harness`] and [`LogHarness`] traits.
//! - [`fixtures`]: ids and values the checks build.
//! - [`store`]: the `Store` contract.
//! - [`log`]: the `Log` contract.
//! - [`presence`]: the `Presence` contract.
//! - [`wait`]: polling a condition with a deadline (no fixed sleeps).
//! - [`servers`]: private redis-server processes for tests (plain, or with
//!   TLS and a password).
//! - [`tls`]: a private CA and server certificates minted per test.
//! - [`kafka`]: Apache Kafka (KRaft, one node) for tests: the shared broker of
//!   the run and private brokers a test may kill and restart.
//! - [`cassandra`]: Apache Cassandra (the CQL server standing in for
//!   ScyllaDB) for tests: the shared node of the run and private nodes.

pub mod cassandra;
pub mod fixtures;
pub mod harness;
pub mod kafka;
pub mod log;
pub mod presence;
pub mod servers;
pub mod store;
pub mod tls;
pub mod wait;

pub use harness::{Harness, LogHarness};

/// Unwraps a port result in a check, failing the test with `what`.
#[track_caller]
pub fn ok<T>(result: seqline_core::Result<T>, what: &str) -> T {
    match result {
        Ok(v) => v,
        Err(e) => panic!("{what}: {e}"),
    }
}

/// Generates one `#[tokio::test]` per named check of a suite module.
#[doc(hidden)]
#[macro_export]
macro_rules! __contract_tests {
    ($module:ident, $harness:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let harness = $harness;
                $crate::$module::$name(&harness).await;
            }
        )*
    };
}
