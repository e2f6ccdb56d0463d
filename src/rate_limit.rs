//! Token buckets: a burst, then a steady rate. One per session and kind of
//! line (see `server::session::Limits`); pure, with the clock passed in.

use std::time::{Duration, Instant};

/// A rate with a burst; `None` where limits are off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Lines allowed at once after a quiet spell.
    pub burst: f64,
    /// Lines per second after that.
    pub per_sec: f64,
}

#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: Rate,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(rate: Rate, now: Instant) -> Self {
        TokenBucket { rate, tokens: rate.burst, last: now }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate.per_sec).min(self.rate.burst);
        self.last = now;
    }

    /// Takes a token if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Takes a token, now or in the future: how long the caller must wait
    /// before acting on it (zero within the burst).
    pub fn take_or_wait(&mut self, now: Instant) -> Duration {
        self.refill(now);
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate.per_sec)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_steady_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(Rate { burst: 10.0, per_sec: 5.0 }, t0);
        assert_eq!((0..12).filter(|_| b.try_take(t0)).count(), 10);
        // 200 ms later one more; a second later five more.
        assert!(b.try_take(t0 + Duration::from_millis(200)));
        assert!(!b.try_take(t0 + Duration::from_millis(250)));
        let later = t0 + Duration::from_millis(1250);
        assert_eq!((0..10).filter(|_| b.try_take(later)).count(), 5);
        // A long pause refills to the burst, never beyond.
        assert_eq!((0..30).filter(|_| b.try_take(later + Duration::from_secs(60))).count(), 10);
    }

    #[test]
    fn waiting_paces_lines_at_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(Rate { burst: 2.0, per_sec: 10.0 }, t0);
        assert_eq!(b.take_or_wait(t0), Duration::ZERO);
        assert_eq!(b.take_or_wait(t0), Duration::ZERO);
        assert_eq!(b.take_or_wait(t0), Duration::from_millis(100));
        assert_eq!(b.take_or_wait(t0), Duration::from_millis(200));
    }
}
