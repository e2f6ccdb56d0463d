//! Failed logins per username, on this pod: after a few, each further
//! attempt on that name waits a little longer (1 s, 2 s, 4 s, then 5 s),
//! before its password is checked. The owner is slowed down like anyone
//! else but never locked out; a brute force costs its own connections time
//! instead of everyone's hashing workers. Forgotten after a quiet spell.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures that cost nothing.
const FREE_FAILURES: u32 = 3;
/// The longest wait.
const MAX_DELAY: Duration = Duration::from_secs(5);
/// A name's failures are forgotten this long after the last one.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// Names remembered at most (a flood of made-up names cannot grow it).
const MAX_NAMES: usize = 100_000;

#[derive(Default)]
pub struct LoginThrottle {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl LoginThrottle {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u32, Instant)>> {
        self.failures.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How long an attempt on `name` waits before it is checked.
    pub fn delay(&self, name: &str, now: Instant) -> Duration {
        match self.lock().get(name) {
            Some(&(n, last)) if n >= FREE_FAILURES && now.saturating_duration_since(last) < FORGET_AFTER => {
                Duration::from_secs(1 << (n - FREE_FAILURES).min(3)).min(MAX_DELAY)
            }
            _ => Duration::ZERO,
        }
    }

    pub fn failed(&self, name: &str, now: Instant) {
        let mut map = self.lock();
        if map.len() >= MAX_NAMES && !map.contains_key(name) {
            map.retain(|_, (_, last)| now.saturating_duration_since(*last) < FORGET_AFTER);
            if map.len() >= MAX_NAMES {
                return;
            }
        }
        let entry = map.entry(name.to_string()).or_insert((0, now));
        if now.saturating_duration_since(entry.1) >= FORGET_AFTER {
            entry.0 = 0;
        }
        *entry = (entry.0.saturating_add(1), now);
    }

    pub fn succeeded(&self, name: &str) {
        self.lock().remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_grows_after_free_failures_and_is_capped() {
        let t = LoginThrottle::default();
        let now = Instant::now();
        let mut delays = Vec::new();
        for _ in 0..8 {
            delays.push(t.delay("alice", now).as_secs());
            t.failed("alice", now);
        }
        assert_eq!(delays, [0, 0, 0, 1, 2, 4, 5, 5]);
        assert_eq!(t.delay("bob", now), Duration::ZERO);
        // Forgotten after a quiet spell; a success clears it at once.
        assert_eq!(t.delay("alice", now + FORGET_AFTER), Duration::ZERO);
        t.succeeded("alice");
        assert_eq!(t.delay("alice", now), Duration::ZERO);
    }
}
