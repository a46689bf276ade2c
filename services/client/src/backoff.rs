//! Exponential backoff with jitter, and the token bucket that paces sends to
//! the rate the server announced.

use rand::Rng;
use std::time::{Duration, Instant};

/// Exponential backoff: attempt `n` waits about `base * 2^n`, capped at
/// `max`, minus a random share (`jitter`, 0.0-1.0) so that many clients
/// cut off at once do not come back at once.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    /// The first delay.
    pub base: Duration,
    /// The longest delay.
    pub max: Duration,
    /// Share of the delay that is random, 0.0 (none) to 1.0 (full jitter).
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(100),
            max: Duration::from_secs(5),
            jitter: 0.5,
        }
    }
}

impl Backoff {
    /// The delay before retry number `attempt` (0 = the first retry), always
    /// within [`Backoff::bounds`].
    pub fn delay(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        let (low, high) = self.bounds(attempt);
        if high <= low {
            return high;
        }
        let span = (high - low).as_nanos() as u64;
        low + Duration::from_nanos(rng.gen_range(0..=span))
    }

    /// The smallest and largest delay for retry number `attempt`.
    pub fn bounds(&self, attempt: u32) -> (Duration, Duration) {
        let factor = 1u32.checked_shl(attempt.min(30)).unwrap_or(u32::MAX);
        let high = self
            .base
            .saturating_mul(factor)
            .min(self.max)
            .max(self.base.min(self.max));
        let jitter = self.jitter.clamp(0.0, 1.0);
        let low = high.mul_f64(1.0 - jitter);
        (low, high)
    }
}

/// A token bucket: `rate` tokens a second, at most `rate` saved up. A rate
/// of 0 means no limit.
#[derive(Debug, Clone)]
pub struct Pacer {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl Pacer {
    /// A bucket refilling at `per_sec`, starting full.
    pub fn new(per_sec: u32, now: Instant) -> Self {
        let rate = f64::from(per_sec);
        Self {
            rate,
            tokens: rate.max(1.0),
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * self.rate).min(self.rate.max(1.0));
        self.last = now;
    }

    /// Takes a token if one is there.
    pub fn try_take(&mut self, now: Instant) -> bool {
        if self.rate <= 0.0 {
            return true;
        }
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// When the next token will be there (`now` when one already is).
    pub fn next_token_at(&mut self, now: Instant) -> Instant {
        if self.rate <= 0.0 {
            return now;
        }
        self.refill(now);
        if self.tokens >= 1.0 {
            now
        } else {
            now + Duration::from_secs_f64((1.0 - self.tokens) / self.rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn delays_grow_stay_in_bounds_and_cap() {
        let b = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(2),
            jitter: 0.5,
        };
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        for attempt in 0..40 {
            let (low, high) = b.bounds(attempt);
            assert!(high <= b.max && low <= high);
            for _ in 0..50 {
                let d = b.delay(attempt, &mut rng);
                assert!(d >= low && d <= high, "{attempt}: {d:?} not in {low:?}..{high:?}");
            }
        }
        assert_eq!(b.bounds(0), (Duration::from_millis(50), Duration::from_millis(100)));
        assert_eq!(b.bounds(3).1, Duration::from_millis(800));
        assert_eq!(b.bounds(10).1, Duration::from_secs(2));
        let none = Backoff { jitter: 0.0, ..b };
        assert_eq!(none.delay(1, &mut rng), Duration::from_millis(200));
    }

    #[test]
    fn pacer_limits_the_rate() {
        let t0 = Instant::now();
        let mut p = Pacer::new(10, t0);
        let taken = (0..100).filter(|_| p.try_take(t0)).count();
        assert_eq!(taken, 10);
        assert!(p.next_token_at(t0) > t0);
        let later = t0 + Duration::from_millis(250);
        assert_eq!((0..100).filter(|_| p.try_take(later)).count(), 2);
        let mut free = Pacer::new(0, t0);
        assert!((0..1000).all(|_| free.try_take(t0)));
        assert_eq!(free.next_token_at(t0), t0);
    }
}
