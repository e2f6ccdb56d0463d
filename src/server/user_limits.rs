//! Rate limits per user on this pod: every session of one user takes its
//! messages from the same buckets, so opening more sessions buys no more
//! messages (and `MAX_SESSIONS_PER_USER` bounds what other pods add).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use crate::config::RateLimits;
use crate::rate_limit::TokenBucket;

/// One user's buckets: private, group, broadcast messages.
pub type Buckets = Mutex<[TokenBucket; 3]>;

/// The buckets of the users with a session on this pod. An entry lives as
/// long as one of its user's sessions holds it.
#[derive(Default)]
pub struct UserLimits {
    users: Mutex<HashMap<i32, Weak<Buckets>>>,
}

impl UserLimits {
    /// `user_id`'s buckets, shared with their other sessions here.
    pub fn buckets(&self, user_id: i32, limits: &RateLimits) -> Arc<Buckets> {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = users.get(&user_id).and_then(Weak::upgrade) {
            return b;
        }
        // Entries of users who left go when the map has doubled since.
        if users.len() >= 64 && users.len().is_power_of_two() {
            users.retain(|_, w| w.strong_count() > 0);
        }
        let now = Instant::now();
        let b = Arc::new(Mutex::new([
            TokenBucket::new(limits.message, now),
            TokenBucket::new(limits.group, now),
            TokenBucket::new(limits.broadcast, now),
        ]));
        users.insert(user_id, Arc::downgrade(&b));
        b
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.users.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rate_limit::Rate;

    #[test]
    fn sessions_of_one_user_share_their_buckets() {
        let r = Rate { burst: 5.0, per_sec: 0.001 };
        let limits = RateLimits { message: r, group: r, broadcast: r, line: r, resume: r };
        let table = UserLimits::default();
        let sessions: Vec<_> = (0..8).map(|_| table.buckets(7, &limits)).collect();
        let now = Instant::now();
        let taken = sessions.iter().cycle().take(40).filter(|b| b.lock().unwrap()[2].try_take(now)).count();
        assert_eq!(taken, 5, "8 sessions together get one user's burst");
        let other = table.buckets(8, &limits);
        assert!(other.lock().unwrap()[2].try_take(now), "another user has their own");
        drop(sessions);
        drop(other);
        for id in 100..200 {
            drop(table.buckets(id, &limits));
        }
        assert!(table.len() < 102, "entries of users who left are dropped: {}", table.len());
    }
}
