//! Waiting for a condition with a deadline instead of sleeping a fixed time.

use std::future::Future;
use std::time::Duration;

/// Polls `check` every few milliseconds until it returns `Some`, failing the
/// test with `what` after `deadline`.
pub async fn until<T, F, Fut>(deadline: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let end = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() >= end {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// [`until`] for tests without a runtime: polls `check` until it returns
/// `Some`, failing the test with `what` after `deadline`.
pub fn until_blocking<T>(deadline: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let end = std::time::Instant::now() + deadline;
    loop {
        if let Some(v) = check() {
            return v;
        }
        if std::time::Instant::now() >= end {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
