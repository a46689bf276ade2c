//! Admission control: bounded work in flight.
//!
//! The sequencer acknowledges a send long before its timeline entries are
//! written and pushed; a gateway that admits every send at the rate the
//! sequencer acks lets the timeline writers and fanout fall ever further
//! behind, and deliveries lag by seconds. So the gateway watches two signals
//! it has in every deployment (embedded or separate roles on Kafka), and
//! while either is over its bound it refuses new `send` and `batch` frames
//! with `error rate_limited` and a `retry_after_ms` hint:
//!
//! - the delivery lag: how old the timeline entries it pushes to its devices
//!   are (now minus the message's server timestamp), averaged over a short
//!   window ([`LAG_WINDOW`]), against `max_delivery_lag`;
//! - the sends (and batch commands) it appended to the log that have no
//!   receipt yet, against `max_inflight_sends`.
//!
//! It refuses rather than holds: a held send would stall the connection's
//! task, which also writes the device's pushes and acks (the very traffic
//! that must keep flowing to catch up), and would hide the overload from the
//! client. A refusal is cheap, bounded, and tells the client when to come
//! back; the client resends the same message id, so nothing is lost or
//! doubled.

use crate::metrics::Metrics;
use seqline_core::protocol::{ErrorCode, ServerFrame};
use seqline_core::{ClientMsgId, ConversationId};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// Length of one averaging window of the delivery lag.
pub(crate) const LAG_WINDOW: Duration = Duration::from_millis(200);

/// Samples the current window needs before its mean counts.
const MIN_PARTIAL: u64 = 32;

/// Shortest and longest retry hint.
const MIN_RETRY: Duration = Duration::from_millis(50);
const MAX_RETRY: Duration = Duration::from_millis(1000);

/// A send with no receipt after this long is no longer counted in flight
/// (its receipt went to another gateway, or was lost with a restart; the
/// client resends it anyway).
const INFLIGHT_EXPIRY: Duration = Duration::from_secs(30);

/// The delivery lag averaged over windows of fixed length.
///
/// The estimate is the mean lag of the last complete window, or of the
/// current one once it has [`MIN_PARTIAL`] samples and reads higher (so a
/// backlog shows before its window ends). Silence is not taken as caught
/// up: a timeline writer far behind delivers in bursts with gaps between
/// them. Once a whole window passed without pushes, the last estimate
/// decays by the silent time (a millisecond per millisecond), so a gateway
/// whose devices get nothing more (because nothing more was admitted)
/// opens again after at most the lag it last saw.
#[derive(Debug)]
pub(crate) struct LagEstimator {
    window: Duration,
    start: Instant,
    sum_ms: u64,
    count: u64,
    /// The mean of the last complete window with samples, and when it ended.
    last: Option<(u64, Instant)>,
}

impl LagEstimator {
    /// An estimator averaging over `window`, starting at `now`.
    pub fn new(window: Duration, now: Instant) -> Self {
        Self {
            window: window.max(Duration::from_millis(1)),
            start: now,
            sum_ms: 0,
            count: 0,
            last: None,
        }
    }

    fn roll(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.start);
        if elapsed < self.window {
            return;
        }
        if let Some(mean) = self.sum_ms.checked_div(self.count) {
            self.last = Some((mean, self.start + self.window));
        }
        // Windows are aligned to the first one; empty ones are skipped.
        let windows = elapsed.as_nanos() / self.window.as_nanos().max(1);
        let skip = u32::try_from(windows).unwrap_or(u32::MAX);
        self.start += self.window.saturating_mul(skip);
        self.sum_ms = 0;
        self.count = 0;
    }

    /// Records `n` entries pushed with a total lag of `sum_ms`.
    pub fn record(&mut self, sum_ms: u64, n: u64, now: Instant) {
        self.roll(now);
        self.sum_ms = self.sum_ms.saturating_add(sum_ms);
        self.count = self.count.saturating_add(n);
    }

    /// The current estimate (see the type's documentation).
    pub fn estimate(&mut self, now: Instant) -> Duration {
        self.roll(now);
        let partial = if self.count >= MIN_PARTIAL {
            self.sum_ms.checked_div(self.count).unwrap_or(0)
        } else {
            0
        };
        let complete = match self.last {
            Some((mean, end)) => {
                let silent = now.saturating_duration_since(end);
                if self.count > 0 || silent <= self.window {
                    mean
                } else {
                    let decayed = (silent - self.window).as_millis();
                    mean.saturating_sub(u64::try_from(decayed).unwrap_or(u64::MAX))
                }
            }
            None => 0,
        };
        Duration::from_millis(complete.max(partial))
    }
}

/// Why sends are refused now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slow {
    /// Deliveries lag by this much (over `max_delivery_lag`).
    Lag(Duration),
    /// This many sends wait for their receipt (at `max_inflight_sends`).
    InFlight(usize),
}

impl Slow {
    /// The message of the `rate_limited` error.
    pub fn reason(self) -> String {
        match self {
            Slow::Lag(lag) => format!(
                "the server is behind on deliveries ({} ms); resend it later",
                lag.as_millis()
            ),
            Slow::InFlight(n) => format!("{n} sends wait for the sequencer; resend it later"),
        }
    }
}

/// The `rate_limited` error refusing the send (or batch, named by its
/// first command) `id` for now, with its retry hint.
pub(crate) fn refusal(id: &str, conv: Option<ConversationId>, slow: Slow, retry: Duration) -> ServerFrame {
    let mut frame = ServerFrame::send_error(id, conv, ErrorCode::RateLimited, slow.reason());
    if let ServerFrame::Error { retry_after_ms, .. } = &mut frame {
        *retry_after_ms = Some(retry.as_millis() as u64);
    }
    frame
}

struct InFlight {
    sent: HashMap<ClientMsgId, Instant>,
    last_sweep: Instant,
}

/// The admission state of one gateway.
pub(crate) struct Admission {
    max_lag: Duration,
    max_inflight: usize,
    lag: Mutex<(LagEstimator, Pace)>,
    inflight: Mutex<InFlight>,
    /// Refusing on `max_inflight_sends` now.
    capped: AtomicBool,
    metrics: Arc<Metrics>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Admission {
    /// Admission with the given bounds (zero turns a bound off).
    pub fn new(max_lag: Duration, max_inflight: usize, metrics: Arc<Metrics>) -> Self {
        Self::new_at(max_lag, max_inflight, metrics, Instant::now())
    }

    fn new_at(max_lag: Duration, max_inflight: usize, metrics: Arc<Metrics>, now: Instant) -> Self {
        Self {
            max_lag,
            max_inflight,
            lag: Mutex::new((LagEstimator::new(LAG_WINDOW, now), Pace::new(now))),
            inflight: Mutex::new(InFlight {
                sent: HashMap::new(),
                last_sweep: now,
            }),
            capped: AtomicBool::new(false),
            metrics,
        }
    }

    /// A push frame of `n` entries, with lags (ms) adding up to `sum_ms`,
    /// was written to a device.
    pub fn pushed(&self, sum_ms: u64, n: u64) {
        self.pushed_at(sum_ms, n, Instant::now());
    }

    fn pushed_at(&self, sum_ms: u64, n: u64, now: Instant) {
        if n == 0 || self.max_lag.is_zero() {
            return;
        }
        lock(&self.lag).0.record(sum_ms, n, now);
    }

    /// Sends `ids` were handed to the publisher.
    pub fn sent(&self, ids: impl IntoIterator<Item = ClientMsgId>) {
        self.sent_at(ids, Instant::now());
    }

    fn sent_at(&self, ids: impl IntoIterator<Item = ClientMsgId>, now: Instant) {
        if self.max_inflight == 0 {
            return;
        }
        let mut f = lock(&self.inflight);
        for id in ids {
            f.sent.insert(id, now);
        }
        self.metrics.admission_inflight.set(f.sent.len() as u64);
    }

    /// The receipt of `id` arrived (or its append failed).
    pub fn settled(&self, id: &ClientMsgId) {
        if self.max_inflight == 0 {
            return;
        }
        let mut f = lock(&self.inflight);
        if f.sent.remove(id).is_some() {
            self.metrics.admission_inflight.set(f.sent.len() as u64);
        }
    }

    fn inflight(&self, now: Instant) -> usize {
        let mut f = lock(&self.inflight);
        if now.saturating_duration_since(f.last_sweep) >= Duration::from_secs(1) {
            f.last_sweep = now;
            f.sent
                .retain(|_, at| now.saturating_duration_since(*at) < INFLIGHT_EXPIRY);
            self.metrics.admission_inflight.set(f.sent.len() as u64);
        }
        f.sent.len()
    }

    /// Whether `n` more sends may go now; if not, why, and how long the
    /// client should wait before resending.
    pub fn check(&self, n: usize) -> Result<(), (Slow, Duration)> {
        self.check_at(n, Instant::now())
    }

    fn check_at(&self, n: usize, now: Instant) -> Result<(), (Slow, Duration)> {
        let mut slow = None;
        if !self.max_lag.is_zero() {
            let mut guard = lock(&self.lag);
            let (estimator, pace) = &mut *guard;
            let lag = estimator.estimate(now);
            self.metrics.admission_lag_ms.set(lag.as_millis() as u64);
            if let Some(limited) = pace.adjust(lag, self.max_lag, now) {
                let rate = pace.rate.round() as u64;
                if limited {
                    warn!(
                        lag_ms = lag.as_millis() as u64,
                        max_ms = self.max_lag.as_millis() as u64,
                        rate,
                        "admission slowing: deliveries lag; sends over the admitted rate are answered rate_limited"
                    );
                } else {
                    info!(
                        rate,
                        "admission back to normal: deliveries keep up; every send is accepted again"
                    );
                }
            }
            self.metrics
                .admission_rate
                .set(if pace.limited { pace.rate.round() as u64 } else { 0 });
            if let Err(wait) = pace.try_take(n, now) {
                // At least the lag itself: many clients refused at once and
                // coming back within the bucket's refill would mostly be
                // refused again, and answering them costs what the
                // deliveries need.
                slow = Some((Slow::Lag(lag), wait.max(lag).clamp(MIN_RETRY, MAX_RETRY)));
            }
            let limited = pace.limited;
            drop(guard);
            self.metrics
                .admission_slowing
                .set(u64::from(limited || self.capped.load(Ordering::Acquire)));
        }
        if slow.is_none() && self.max_inflight > 0 {
            let inflight = self.inflight(now);
            let over = inflight.saturating_add(n) > self.max_inflight && inflight > 0;
            if self.capped.swap(over, Ordering::AcqRel) != over {
                if over {
                    warn!(
                        inflight,
                        max = self.max_inflight,
                        "admission slowing: too many sends wait for receipts; sends are answered rate_limited"
                    );
                } else {
                    info!("admission: sends in flight under the cap again");
                }
                self.metrics.admission_slowing.set(u64::from(over));
            }
            if over {
                slow = Some((Slow::InFlight(inflight), MIN_RETRY));
            }
        }
        match slow {
            Some(s) => {
                self.metrics.admission_refused.inc();
                Err(s)
            }
            None => Ok(()),
        }
    }
}

/// The rate sends are admitted at while deliveries lag: when a window ends
/// with the lag over the bound and not falling, the rate drops to 70%
/// (starting from the rate admitted in that window); while under it, it grows by 10% plus 20/s,
/// until it is well above what is asked for (twice the admitted rate plus
/// 100/s) and the limit is lifted. Refusing everything while the lag is
/// over the bound would make every client come back at once when it ends:
/// a rate spreads them out. Sends within the rate go through a token bucket
/// of a tenth of a second's worth.
#[derive(Debug)]
pub(crate) struct Pace {
    limited: bool,
    /// Sends per second admitted while limited.
    rate: f64,
    tokens: f64,
    refilled: Instant,
    /// The start of the current adjustment window.
    tick: Instant,
    /// Sends admitted since `tick`.
    admitted: u64,
    /// The lag at the last adjustment.
    last_lag: Duration,
}

/// Lowest admitted rate, sends per second.
const MIN_RATE: f64 = 20.0;

impl Pace {
    fn new(now: Instant) -> Self {
        Self {
            limited: false,
            rate: 0.0,
            tokens: 0.0,
            refilled: now,
            tick: now,
            admitted: 0,
            last_lag: Duration::ZERO,
        }
    }

    /// At the end of each window, adjusts the rate to `lag`; returns the new
    /// state when the limit starts or ends.
    fn adjust(&mut self, lag: Duration, max: Duration, now: Instant) -> Option<bool> {
        let elapsed = now.saturating_duration_since(self.tick);
        if elapsed < LAG_WINDOW {
            return None;
        }
        let measured = self.admitted as f64 / elapsed.as_secs_f64();
        self.tick = now;
        self.admitted = 0;
        let was = self.limited;
        let rising = lag >= self.last_lag;
        self.last_lag = lag;
        if lag > max {
            if !self.limited {
                self.limited = true;
                self.rate = (measured * 0.7).max(MIN_RATE);
                self.tokens = 0.0;
                self.refilled = now;
            } else if rising {
                // A lag already falling shows the last cut working (the
                // lag trails the admitted rate by the pipeline's delay):
                // cut again only while it still rises.
                self.rate = (self.rate * 0.7).max(MIN_RATE);
            }
        } else if self.limited {
            self.rate = self.rate * 1.1 + 20.0;
            if self.rate >= 2.0 * measured + 100.0 {
                self.limited = false;
            }
        }
        (was != self.limited).then_some(self.limited)
    }

    /// Takes `n` sends' worth, or says how long until there is enough.
    fn try_take(&mut self, n: usize, now: Instant) -> Result<(), Duration> {
        let n64 = n as u64;
        if !self.limited {
            self.admitted += n64;
            return Ok(());
        }
        let need = n as f64;
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.refilled = now;
        self.tokens = (self.tokens + elapsed * self.rate).min((self.rate / 10.0).max(need));
        if self.tokens >= need {
            self.tokens -= need;
            self.admitted += n64;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((need - self.tokens) / self.rate.max(MIN_RATE)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Duration = LAG_WINDOW;
    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_estimate_is_the_last_complete_windows_mean() {
        let t0 = Instant::now();
        let mut e = LagEstimator::new(W, t0);
        assert_eq!(e.estimate(t0), Duration::ZERO);
        e.record(100, 1, t0);
        e.record(300, 1, t0 + MS);
        // The window is not over: nothing to say yet.
        assert_eq!(e.estimate(t0 + W - MS), Duration::ZERO);
        let t1 = t0 + W;
        assert_eq!(e.estimate(t1), Duration::from_millis(200));
        // The next window's samples replace it once that window is over.
        e.record(5000, 100, t1 + MS);
        assert_eq!(e.estimate(t1 + W - MS), Duration::from_millis(200));
        assert_eq!(e.estimate(t1 + W), Duration::from_millis(50));
    }

    #[test]
    fn silence_decays_the_estimate_instead_of_clearing_it() {
        let t0 = Instant::now();
        let mut e = LagEstimator::new(W, t0);
        e.record(900, 1, t0);
        assert_eq!(e.estimate(t0 + W), Duration::from_millis(900));
        assert_eq!(e.estimate(t0 + W * 2), Duration::from_millis(900));
        // A whole window without pushes: it decays by the silent time.
        assert_eq!(e.estimate(t0 + W * 2 + MS * 300), Duration::from_millis(600));
        assert_eq!(e.estimate(t0 + W * 2 + MS * 900), Duration::ZERO);
        // After a long silence, new samples count from a fresh window.
        let t1 = t0 + W * 13 + W / 3;
        e.record(40, 1, t1);
        assert_eq!(e.estimate(t1 + W), Duration::from_millis(40));
    }

    #[test]
    fn a_backlog_shows_before_its_window_ends() {
        let t0 = Instant::now();
        let mut e = LagEstimator::new(W, t0);
        e.record(10 * 20, 20, t0);
        assert_eq!(e.estimate(t0 + W), Duration::from_millis(10));
        // A few old entries are not enough to say anything yet...
        e.record(5000, 1, t0 + W);
        assert_eq!(e.estimate(t0 + W + MS), Duration::from_millis(10));
        // ...many are.
        e.record(2000 * MIN_PARTIAL, MIN_PARTIAL, t0 + W + MS);
        assert!(e.estimate(t0 + W + MS * 2) > Duration::from_millis(1900));
    }

    #[test]
    fn while_deliveries_lag_sends_are_admitted_at_a_falling_rate_then_all_again() {
        let t0 = Instant::now();
        let metrics = Arc::new(Metrics::default());
        let a = Admission::new_at(Duration::from_millis(300), 0, Arc::clone(&metrics), t0);
        // 100 sends in the first window: 500 per second asked for.
        for i in 0..100u32 {
            assert_eq!(a.check_at(1, t0 + MS * i), Ok(()));
        }
        a.pushed_at(2 * 800, 2, t0);
        // The window ends with the lag over the bound: the rate drops to
        // 70% of 500/s, with an empty bucket.
        let (slow, retry) = a.check_at(1, t0 + W).unwrap_err();
        assert_eq!(slow, Slow::Lag(Duration::from_millis(800)));
        assert_eq!(retry, Duration::from_millis(800), "the hint is at least the lag");
        assert!(slow.reason().contains("800 ms"), "{}", slow.reason());
        assert_eq!(metrics.admission_slowing.get(), 1);
        assert_eq!(metrics.admission_lag_ms.get(), 800);
        assert_eq!(metrics.admission_rate.get(), 350);
        // 350/s: 35 sends in the next 100 ms (the bucket holds a tenth of
        // a second), then none.
        let t1 = t0 + W + MS * 100;
        a.pushed_at(2 * 800, 2, t0 + W);
        assert_eq!((0..50).filter(|_| a.check_at(1, t1).is_ok()).count(), 35);
        // Still lagging at the end of the next window: 70% again.
        a.pushed_at(900, 1, t0 + W + MS * 150);
        let _ = a.check_at(1, t0 + W * 2);
        assert_eq!(metrics.admission_rate.get(), 245);
        // Caught up: the rate grows until it is well above what is asked
        // for, and the limit is lifted.
        let mut t = t0 + W * 2;
        for _ in 0..10 {
            a.pushed_at(10, 1, t);
            t += W;
            let _ = a.check_at(1, t);
            if metrics.admission_slowing.get() == 0 {
                break;
            }
        }
        assert_eq!(metrics.admission_slowing.get(), 0);
        assert_eq!(metrics.admission_rate.get(), 0);
        assert!((0..1000).all(|_| a.check_at(1, t).is_ok()));
    }

    #[test]
    fn in_flight_sends_are_capped_until_their_receipts_come() {
        let t0 = Instant::now();
        let metrics = Arc::new(Metrics::default());
        let a = Admission::new_at(Duration::ZERO, 3, Arc::clone(&metrics), t0);
        let ids: Vec<_> = (0..3).map(|_| ClientMsgId::random()).collect();
        assert_eq!(a.check_at(3, t0), Ok(()));
        a.sent_at(ids.clone(), t0);
        assert_eq!(metrics.admission_inflight.get(), 3);
        let (slow, retry) = a.check_at(1, t0).unwrap_err();
        assert_eq!((slow, retry), (Slow::InFlight(3), MIN_RETRY));
        a.settled(&ids[0]);
        assert_eq!(a.check_at(1, t0), Ok(()));
        assert!(a.check_at(2, t0).is_err(), "a batch counts all its commands");
        // A resend of an id still in flight counts once.
        a.sent_at([ids[1]], t0);
        assert_eq!(metrics.admission_inflight.get(), 2);
        // Receipts that never come stop counting after a while.
        let later = t0 + INFLIGHT_EXPIRY + Duration::from_secs(1);
        assert_eq!(a.check_at(3, later), Ok(()));
        assert_eq!(metrics.admission_inflight.get(), 0);
    }

    #[test]
    fn a_batch_larger_than_the_cap_goes_when_nothing_is_in_flight() {
        let a = Admission::new(Duration::ZERO, 2, Arc::new(Metrics::default()));
        assert_eq!(a.check(5), Ok(()));
    }

    #[test]
    fn the_refusal_names_the_send_and_carries_the_hint() {
        let conv = ConversationId::parse("g:x").unwrap();
        let frame = refusal("m-1", Some(conv.clone()), Slow::InFlight(7), Duration::from_millis(250));
        let json = serde_json::to_value(&frame).unwrap();
        assert_eq!(json["code"], "rate_limited");
        assert_eq!(json["id"], "m-1");
        assert_eq!(json["conv"], "g:x");
        assert_eq!(json["retry_after_ms"], 250);
        assert!(json["message"]
            .as_str()
            .unwrap()
            .starts_with("message m-1: 7 sends wait"));
    }
}
