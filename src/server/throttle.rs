//! Throttles that hold across connections and pods (kept in Redis, so ten
//! pods give an attacker no more than one):
//!
//! - failed logins per username: after a few, each further attempt on that
//!   name takes the next free slot of 1 s, 2 s, 4 s, then 5 s, one after the
//!   other whatever connection or pod it comes from, and waits for it before
//!   its password is checked. A slot counts as a failure when it is taken
//!   (until a success clears the name), so parallel attempts space out as
//!   one connection's would: N parallel connections get no more guesses
//!   than one. An attempt whose slot is more than [`MAX_QUEUE`] away is
//!   refused at once, unchecked. The owner is slowed like anyone else (while
//!   an attack lasts, queued behind it), never locked out for longer than
//!   the queue; forgotten after a quiet spell.
//! - resumes per user: a token bucket (`RESUME_BURST`, `RESUME_RATE`).
//!
//! Keys are a digest of the name as people read it ([`username_key`]), so a
//! name of any length costs the same few bytes. When Redis cannot answer,
//! the same rules hold on this pod alone, in a map bounded in entries.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use log::debug;
use redis::Script;
use sha2::{Digest, Sha256};

use crate::protocol::username_key;
use crate::rate_limit::{Rate, TokenBucket};
use crate::redis_store::{Keys, RedisPool};

/// Failures that cost nothing.
const FREE_FAILURES: u32 = 3;
/// The first wait after them; it doubles per failure up to [`MAX_DELAY`].
const BASE_DELAY: Duration = Duration::from_secs(1);
const MAX_DELAY: Duration = Duration::from_secs(5);
/// A name's failures are forgotten this long after the last one.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// An attempt is refused rather than queued behind others for longer
/// than this: one longest step, so parallel attempts can take at most the
/// next slot ahead, as one connection would.
pub const MAX_QUEUE: Duration = MAX_DELAY;
/// Subjects remembered on this pod while Redis is away (16-byte keys:
/// about 6 MB at most).
const MAX_LOCAL: usize = 100_000;

/// Whether an attempt may go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// After waiting this long (zero: at once). A login attempt that waits
    /// was counted as a failure when its slot was taken.
    Go(Duration),
    /// Not now: try again after this long.
    Refused(Duration),
}

impl Admission {
    /// A login attempt that took a slot (and was counted then).
    fn counted(self) -> bool {
        matches!(self, Admission::Go(w) if !w.is_zero())
    }
}

/// `KEYS[1]` the name's key; `ARGV`: free failures, base and max delay,
/// forget after, max queue (ms). Returns the wait (>= 0; > 0 counted as a
/// failure) or minus the retry-after (< 0). Redis's clock, so pods need not
/// agree on the time.
static LOGIN_SLOT: std::sync::LazyLock<Script> = std::sync::LazyLock::new(|| {
    Script::new(
        r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
local free = tonumber(ARGV[1])
if n < free then return 0 end
local step = math.min(tonumber(ARGV[2]) * 2 ^ math.min(n - free, 16), tonumber(ARGV[3]))
local nxt = tonumber(redis.call('HGET', KEYS[1], 'next') or '0')
local start = math.max(now, nxt)
local wait = start + step - now
if wait > tonumber(ARGV[5]) then return -math.max(1, wait - step) end
redis.call('HSET', KEYS[1], 'next', start + step, 'n', n + 1)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return wait
"#,
    )
});

/// A token bucket as a theoretical arrival time (GCRA): `KEYS[1]`;
/// `ARGV`: ms per token, burst. 0: go; > 0: refused, retry after (ms).
static BUCKET: std::sync::LazyLock<Script> = std::sync::LazyLock::new(|| {
    Script::new(
        r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local e = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now)
local new = tat + e
if new - now > burst * e then return math.max(1, new - now - burst * e) end
redis.call('SET', KEYS[1], new, 'PX', math.ceil(new - now) + 1000)
return 0
"#,
    )
});

/// A subject's key: 16 bytes of SHA-256 of the name as people read it.
fn digest(name: &str) -> [u8; 16] {
    let full = Sha256::digest(username_key(name).as_bytes());
    let mut d = [0u8; 16];
    d.copy_from_slice(&full[..16]);
    d
}

/// A name's failures on this pod (while Redis is away).
#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    next: Instant,
    last: Instant,
}

#[derive(Default)]
struct Local {
    logins: HashMap<[u8; 16], Failures>,
    resumes: HashMap<[u8; 16], TokenBucket>,
}

pub struct Throttle {
    redis: Option<(RedisPool, Keys)>,
    local: Mutex<Local>,
}

fn delay_after(failures: u32) -> Duration {
    if failures < FREE_FAILURES {
        return Duration::ZERO;
    }
    (BASE_DELAY * (1u32 << (failures - FREE_FAILURES).min(16))).min(MAX_DELAY)
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

impl Throttle {
    /// Kept in Redis (`pool`), or on this pod alone with `None` (tests).
    pub fn new(redis: Option<(RedisPool, Keys)>) -> Self {
        Throttle { redis, local: Mutex::default() }
    }

    fn local(&self) -> std::sync::MutexGuard<'_, Local> {
        self.local.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on a pooled Redis connection; `None` when Redis cannot
    /// answer (the caller falls back to this pod's map).
    fn with_redis<T>(
        &self,
        f: impl FnOnce(&mut crate::redis_store::PooledRedis, &Keys) -> redis::RedisResult<T>,
    ) -> Option<T> {
        let (pool, keys) = self.redis.as_ref()?;
        let mut conn = pool.get().ok()?;
        match f(&mut conn, keys) {
            Ok(v) => Some(v),
            Err(e) => {
                debug!("throttle: Redis did not answer ({e}); this pod's count applies");
                None
            }
        }
    }

    /// Takes the next slot for a login attempt on `name`.
    pub fn login_attempt(&self, name: &str) -> Admission {
        let d = digest(name);
        let from_redis = self.with_redis(|c, keys| {
            LOGIN_SLOT
                .key(keys.throttle("login", &hex::encode(d)))
                .arg(FREE_FAILURES)
                .arg(ms(BASE_DELAY))
                .arg(ms(MAX_DELAY))
                .arg(ms(FORGET_AFTER))
                .arg(ms(MAX_QUEUE))
                .invoke::<i64>(c)
        });
        match from_redis {
            Some(w) if w >= 0 => Admission::Go(Duration::from_millis(w as u64)),
            Some(w) => Admission::Refused(Duration::from_millis(w.unsigned_abs())),
            None => self.local_login_attempt(d, Instant::now()),
        }
    }

    fn local_login_attempt(&self, d: [u8; 16], now: Instant) -> Admission {
        let mut local = self.local();
        let Some(f) = local.logins.get_mut(&d) else { return Admission::Go(Duration::ZERO) };
        if now.saturating_duration_since(f.last) >= FORGET_AFTER || f.count < FREE_FAILURES {
            return Admission::Go(Duration::ZERO);
        }
        let step = delay_after(f.count);
        let start = f.next.max(now);
        let wait = start + step - now;
        if wait > MAX_QUEUE {
            return Admission::Refused((wait - step).max(Duration::from_millis(1)));
        }
        f.next = start + step;
        f.count = f.count.saturating_add(1);
        f.last = now;
        Admission::Go(wait)
    }

    /// A wrong password (or name) for `name`, on an attempt that
    /// [`Throttle::login_attempt`] admitted as `admitted`.
    pub fn login_failed(&self, name: &str, admitted: Admission) {
        if admitted.counted() {
            return;
        }
        let d = digest(name);
        let counted = self.with_redis(|c, keys| {
            let key = keys.throttle("login", &hex::encode(d));
            redis::pipe()
                .cmd("HINCRBY")
                .arg(&key)
                .arg("n")
                .arg(1)
                .ignore()
                .cmd("PEXPIRE")
                .arg(&key)
                .arg(ms(FORGET_AFTER))
                .ignore()
                .query::<()>(c)
        });
        if counted.is_none() {
            self.local_login_failed(d, Instant::now());
        }
    }

    fn local_login_failed(&self, d: [u8; 16], now: Instant) {
        let mut local = self.local();
        if local.logins.len() >= MAX_LOCAL && !local.logins.contains_key(&d) {
            local.logins.retain(|_, f| now.saturating_duration_since(f.last) < FORGET_AFTER);
            if local.logins.len() >= MAX_LOCAL {
                return;
            }
        }
        let f = local.logins.entry(d).or_insert(Failures { count: 0, next: now, last: now });
        if now.saturating_duration_since(f.last) >= FORGET_AFTER {
            f.count = 0;
        }
        f.count = f.count.saturating_add(1);
        f.last = now;
    }

    /// The right password for `name`: its failures are forgotten.
    pub fn login_succeeded(&self, name: &str) {
        let d = digest(name);
        let _ =
            self.with_redis(|c, keys| redis::cmd("DEL").arg(keys.throttle("login", &hex::encode(d))).query::<()>(c));
        self.local().logins.remove(&d);
    }

    /// Whether `user` may resume now (`rate`: `RESUME_BURST`/`RESUME_RATE`).
    pub fn resume(&self, user: &str, rate: Rate) -> Admission {
        let d = digest(user);
        let per_token = (1000.0 / rate.per_sec).ceil().max(1.0) as u64;
        let from_redis = self.with_redis(|c, keys| {
            BUCKET.key(keys.throttle("resume", &hex::encode(d))).arg(per_token).arg(rate.burst as u64).invoke::<i64>(c)
        });
        match from_redis {
            Some(0) => Admission::Go(Duration::ZERO),
            Some(retry) => Admission::Refused(Duration::from_millis(retry.unsigned_abs())),
            None => {
                let now = Instant::now();
                let mut local = self.local();
                if local.resumes.len() >= MAX_LOCAL && !local.resumes.contains_key(&d) {
                    local.resumes.clear();
                }
                let bucket = local.resumes.entry(d).or_insert_with(|| TokenBucket::new(rate, now));
                if bucket.try_take(now) {
                    Admission::Go(Duration::ZERO)
                } else {
                    Admission::Refused(Duration::from_secs_f64(1.0 / rate.per_sec))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_slots_grow_after_free_failures_and_serialise_parallel_attempts() {
        let t = Throttle::new(None);
        let now = Instant::now();
        let d = digest("alice");
        let mut delays = Vec::new();
        for i in 0..8u32 {
            let at = now + Duration::from_secs(100) * i;
            let admitted = t.local_login_attempt(d, at);
            match admitted {
                Admission::Go(w) => delays.push(w.as_secs()),
                other => panic!("refused: {other:?}"),
            }
            // What login_failed does without Redis.
            if !admitted.counted() {
                t.local_login_failed(d, at);
            }
        }
        assert_eq!(delays, [0, 0, 0, 1, 2, 4, 5, 5]);
        // Attempts at the same instant queue one behind the other, and the
        // queue is bounded: 5 s, 10 s, then refused.
        let later = now + Duration::from_secs(10_000);
        assert_eq!(t.local_login_attempt(d, later), Admission::Go(Duration::ZERO));
        // Parallel attempts space out as one connection's: 1, 1+2 s, then
        // the next (3+4 s) would wait over MAX_QUEUE and is refused.
        let t2 = Throttle::new(None);
        for _ in 0..3 {
            t2.local_login_failed(d, now);
        }
        let waits: Vec<Admission> = (0..3).map(|_| t2.local_login_attempt(d, now)).collect();
        let s = Duration::from_secs;
        assert_eq!(waits[..2], [Admission::Go(s(1)), Admission::Go(s(3))]);
        assert!(matches!(waits[2], Admission::Refused(_)), "{waits:?}");
        // Another name is not slowed; a success clears the name.
        assert_eq!(t2.local_login_attempt(digest("bob"), now), Admission::Go(Duration::ZERO));
        t2.login_succeeded("alice");
        assert_eq!(t2.local_login_attempt(d, now), Admission::Go(Duration::ZERO));
    }

    #[test]
    fn keys_are_small_whatever_the_name() {
        assert_eq!(digest(&"x".repeat(4096)).len(), 16);
        // Look-alikes share a key.
        assert_eq!(digest("alice"), digest("ＡＬＩＣＥ"));
    }
}
