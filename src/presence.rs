//! Presence in Redis: who is online, across every pod.
//!
//! `online_users` keeps its original meaning (a set of usernames), so tools
//! that count it stay right. Behind it, each pod keeps a hash of its users'
//! live session counts and each user a set of the pods holding their
//! sessions; a user leaves `online_users` when their last session on any pod
//! ends. Every change is one Lua script, so pods never see half an update,
//! and session counts commute (a logout processed before a login of the same
//! user still ends with the right state).
//!
//! A pod that dies without logging its users out (kill -9, node loss) stops
//! refreshing `presence:pod:<pod>:alive` (TTL `PRESENCE_TTL_SECS`, refreshed
//! every third of it). Every heartbeat of every pod, and every count, runs
//! the reaper: pods whose alive key is gone lose their users. So a dead
//! pod's users are gone within TTL + TTL/3 (20 s with the default 15 s).
//!
//! The autoscaler counts live users ([`OnlineCounter`]) without changing
//! anything: `online_users` less the users whose only pods stopped their
//! heartbeat. Reaping stays with the pods, whose heartbeat also closes the
//! dead pod's session rows.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use crate::redis_store::{failed, Keys, RedisConnector, RedisPool, RedisResult, LUA_FILL, PLACEHOLDER};

/// A session starts. KEYS: online_users, pods, pod users, user pods, pod
/// alive. ARGV: username, pod, ttl seconds, presence channel (the user's
/// first session on this pod is published there).
static SESSION_UP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
redis.call('HINCRBY', KEYS[3], ARGV[1], 1)
if redis.call('SADD', KEYS[4], ARGV[2]) == 1 then
  redis.call('PUBLISH', ARGV[4], 'up\n' .. ARGV[2] .. '\n' .. ARGV[1])
end
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('SET', KEYS[5], '1', 'EX', ARGV[3])
return 1
"#,
    )
});

/// A session ends. KEYS: online_users, pod users, user pods.
/// ARGV: username, pod, presence channel (the user's last session on this
/// pod ending is published there).
static SESSION_DOWN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local n = redis.call('HINCRBY', KEYS[2], ARGV[1], -1)
if n <= 0 then
  redis.call('HDEL', KEYS[2], ARGV[1])
  if redis.call('SREM', KEYS[3], ARGV[2]) == 1 then
    redis.call('PUBLISH', ARGV[3], 'down\n' .. ARGV[2] .. '\n' .. ARGV[1])
  end
  if redis.call('SCARD', KEYS[3]) == 0 then redis.call('SREM', KEYS[1], ARGV[1]) end
end
return n
"#,
    )
});

/// Drops a pod's users from presence. Expects `fill`; `online` is the
/// online_users key, `tmpl_users`/`tmpl_user_pods` key templates.
const LUA_DROP_POD: &str = r#"
local function drop_pod(pod, users_key, online, tmpl_user_pods)
  for _, u in ipairs(redis.call('HKEYS', users_key)) do
    local up = fill(tmpl_user_pods, u)
    redis.call('SREM', up, pod)
    if redis.call('SCARD', up) == 0 then redis.call('SREM', online, u) end
  end
  redis.call('DEL', users_key)
end
"#;

/// Reaps dead pods, then counts. KEYS: pods, online_users. ARGV: alive,
/// pod users, user pods templates, presence channel. Returns {online
/// count, reaped pods...}. A reaped pod is announced as rewritten
/// (`resync`), so the other pods read its users (none) again.
static REAP_AND_COUNT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{LUA_FILL}{LUA_DROP_POD}{}",
        r#"
local out = {0}
for _, pod in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', fill(ARGV[1], pod)) == 0 then
    drop_pod(pod, fill(ARGV[2], pod), KEYS[2], ARGV[3])
    redis.call('SREM', KEYS[1], pod)
    redis.call('PUBLISH', ARGV[4], 'resync\n' .. pod)
    table.insert(out, pod)
  end
end
out[1] = redis.call('SCARD', KEYS[2])
return out
"#
    ))
});

/// Counts live users, read-only. KEYS: pods, online_users. ARGV: alive,
/// pod users, user pods templates. Returns {live users, dead pods...}.
static COUNT_LIVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{LUA_FILL}{}",
        r#"
local dead, out = {}, {0}
for _, pod in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', fill(ARGV[1], pod)) == 0 then
    dead[pod] = true
    table.insert(out, pod)
  end
end
local gone, seen = 0, {}
for i = 2, #out do
  for _, u in ipairs(redis.call('HKEYS', fill(ARGV[2], out[i]))) do
    if not seen[u] then
      seen[u] = true
      local live = false
      for _, p in ipairs(redis.call('SMEMBERS', fill(ARGV[3], u))) do
        if not dead[p] then live = true; break end
      end
      if not live and redis.call('SISMEMBER', KEYS[2], u) == 1 then gone = gone + 1 end
    end
  end
end
out[1] = redis.call('SCARD', KEYS[2]) - gone
return out
"#
    ))
});

/// Replaces everything Redis holds for one pod by the pod's own truth.
/// KEYS: online_users, pods, pod users, pod alive. ARGV: pod, ttl seconds
/// (0: the pod is leaving), user pods template, then user, count pairs.
static RESYNC_POD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{LUA_FILL}{LUA_DROP_POD}{}",
        r#"
local pod = ARGV[1]
drop_pod(pod, KEYS[3], KEYS[1], ARGV[3])
for i = 5, #ARGV, 2 do
  local u = ARGV[i]
  redis.call('HSET', KEYS[3], u, ARGV[i + 1])
  redis.call('SADD', fill(ARGV[3], u), pod)
  redis.call('SADD', KEYS[1], u)
end
if tonumber(ARGV[2]) > 0 then
  redis.call('SADD', KEYS[2], pod)
  redis.call('SET', KEYS[4], '1', 'EX', ARGV[2])
else
  redis.call('SREM', KEYS[2], pod)
  redis.call('DEL', KEYS[4])
end
redis.call('PUBLISH', ARGV[4], 'resync\n' .. pod)
return 1
"#
    ))
});

/// Reaps pods that stopped their heartbeat and returns
/// (live users, reaped pod ids).
fn reap_and_count(conn: &mut impl redis::ConnectionLike, keys: &Keys) -> RedisResult<(usize, Vec<String>)> {
    count_with(&REAP_AND_COUNT, conn, keys)
}

/// (live users, pods whose heartbeat stopped), changing nothing.
fn count_live(conn: &mut redis::Connection, keys: &Keys) -> RedisResult<(usize, Vec<String>)> {
    count_with(&COUNT_LIVE, conn, keys)
}

fn count_with(
    script: &Script,
    conn: &mut impl redis::ConnectionLike,
    keys: &Keys,
) -> RedisResult<(usize, Vec<String>)> {
    let mut out: Vec<redis::Value> = script
        .key(keys.pods())
        .key(keys.online_users())
        .arg(keys.pod_alive(PLACEHOLDER))
        .arg(keys.pod_users(PLACEHOLDER))
        .arg(keys.user_pods(PLACEHOLDER))
        .arg(keys.presence_channel())
        .invoke(conn)
        .map_err(failed("counting online users"))?;
    if out.is_empty() {
        return Ok((0, Vec::new()));
    }
    let count: usize = redis::from_redis_value(&out.remove(0)).map_err(failed("reading the online count"))?;
    let reaped: Vec<String> = out.iter().filter_map(|v| redis::from_redis_value(v).ok()).collect();
    Ok((count, reaped))
}

/// Live sessions per pod whose heartbeat is alive. KEYS: pods. ARGV: alive
/// and pod users templates. Returns {pod, sessions, pod, sessions, ...}.
static SESSIONS_PER_POD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{LUA_FILL}{}",
        r#"
local out = {}
for _, pod in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', fill(ARGV[1], pod)) == 1 then
    local n = 0
    for _, v in ipairs(redis.call('HVALS', fill(ARGV[2], pod))) do n = n + tonumber(v) end
    table.insert(out, pod)
    table.insert(out, n)
  end
end
return out
"#
    ))
});

/// The names of the users with a session on a pod whose heartbeat is
/// alive, read-only. KEYS: pods. ARGV: alive and pod users templates.
static LIVE_NAMES: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{LUA_FILL}{}",
        r#"
local out, seen = {}, {}
for _, pod in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', fill(ARGV[1], pod)) == 1 then
    for _, u in ipairs(redis.call('HKEYS', fill(ARGV[2], pod))) do
      if not seen[u] then seen[u] = true; table.insert(out, u) end
    end
  end
end
return out
"#
    ))
});

/// Counts the users with a live session on any pod, for the autoscaler:
/// one connection of its own, opened again after any failure.
pub struct OnlineCounter {
    connector: RedisConnector,
    conn: Option<redis::Connection>,
    keys: Keys,
}

impl OnlineCounter {
    /// Connects lazily: a Redis that is down at start is retried per count.
    pub fn new(connector: RedisConnector, keys: Keys) -> Self {
        OnlineCounter { connector, conn: None, keys }
    }

    /// Opens the counter's connection on first use and after a failure.
    fn connect(&mut self) -> RedisResult<()> {
        if self.conn.is_none() {
            self.conn = Some(self.connector.connect().map_err(failed("connecting"))?);
        }
        Ok(())
    }

    /// (pod, live sessions) for every pod with a heartbeat, read-only: the
    /// autoscaler marks the emptiest pods to be removed first.
    pub fn sessions_per_pod(&mut self) -> RedisResult<Vec<(String, u64)>> {
        self.connect()?;
        let conn = self.conn.as_mut().expect("connected above");
        let flat: RedisResult<Vec<redis::Value>> = SESSIONS_PER_POD
            .key(self.keys.pods())
            .arg(self.keys.pod_alive(PLACEHOLDER))
            .arg(self.keys.pod_users(PLACEHOLDER))
            .invoke(conn)
            .map_err(failed("reading sessions per pod"));
        let flat = flat.inspect_err(|_| self.conn = None)?;
        Ok(flat
            .chunks(2)
            .filter_map(|pair| match pair {
                [pod, n] => Some((redis::from_redis_value(pod).ok()?, redis::from_redis_value(n).ok()?)),
                _ => None,
            })
            .collect())
    }

    /// The names of the users online on a pod with a heartbeat, sorted
    /// (the dashboard's list), read-only.
    pub fn online_names(&mut self) -> RedisResult<Vec<String>> {
        self.connect()?;
        let conn = self.conn.as_mut().expect("connected above");
        let names: RedisResult<Vec<String>> = LIVE_NAMES
            .key(self.keys.pods())
            .arg(self.keys.pod_alive(PLACEHOLDER))
            .arg(self.keys.pod_users(PLACEHOLDER))
            .invoke(conn)
            .map_err(failed("reading the names online"));
        let mut names = names.inspect_err(|_| self.conn = None)?;
        names.sort();
        Ok(names)
    }

    /// Runs `f` on the counter's connection (opened if needed; dropped
    /// after a failure).
    pub fn with_conn<T>(
        &mut self,
        f: impl FnOnce(&mut redis::Connection, &Keys) -> redis::RedisResult<T>,
    ) -> RedisResult<T> {
        self.connect()?;
        let conn = self.conn.as_mut().expect("connected above");
        let r = f(conn, &self.keys).map_err(failed("reading or writing"));
        r.inspect_err(|_| self.conn = None)
    }

    /// Users online now, not counting those whose only pods stopped their
    /// heartbeat (the pods reap them; this only reads).
    pub fn count(&mut self) -> RedisResult<usize> {
        self.connect()?;
        let conn = self.conn.as_mut().expect("connected above");
        match count_live(conn, &self.keys) {
            Ok((count, dead)) => {
                if !dead.is_empty() {
                    log::info!("not counted: users of pods without heartbeat {dead:?}");
                }
                Ok(count)
            }
            Err(e) => {
                self.conn = None;
                Err(e)
            }
        }
    }
}

/// This pod's view of presence.
pub struct Presence {
    pool: RedisPool,
    keys: Keys,
    pod_id: String,
    ttl: Duration,
    /// A write failed: Redis may be missing some of this pod's sessions.
    /// The next heartbeat replaces the pod's state as a whole.
    dirty: AtomicBool,
    /// Wakes the heartbeat for a rewrite now ([`Presence::rewrite_now`]).
    wake: (crossbeam_channel::Sender<()>, crossbeam_channel::Receiver<()>),
}

impl Presence {
    pub fn new(pool: RedisPool, keys: Keys, pod_id: String, ttl: Duration) -> Self {
        Presence { pool, keys, pod_id, ttl, dirty: AtomicBool::new(false), wake: crossbeam_channel::bounded(1) }
    }

    pub fn pod_id(&self) -> &str {
        &self.pod_id
    }

    /// How often [`Presence::heartbeat`] should run.
    pub fn heartbeat_interval(&self) -> Duration {
        (self.ttl / 3).max(Duration::from_millis(200))
    }

    fn conn(&self, action: &str) -> RedisResult<r2d2::PooledConnection<RedisConnector>> {
        self.pool.get().map_err(failed(action.to_string()))
    }

    fn mark_dirty_on_err<T>(&self, r: RedisResult<T>) -> RedisResult<T> {
        if r.is_err() {
            self.dirty.store(true, Ordering::SeqCst);
        }
        r
    }

    /// A session of `user` started on this pod.
    pub fn session_up(&self, user: &str) -> RedisResult<()> {
        let action = format!("marking {user} online");
        let r = self.conn(&action).and_then(|mut c| {
            SESSION_UP
                .key(self.keys.online_users())
                .key(self.keys.pods())
                .key(self.keys.pod_users(&self.pod_id))
                .key(self.keys.user_pods(user))
                .key(self.keys.pod_alive(&self.pod_id))
                .arg(user)
                .arg(&self.pod_id)
                .arg(self.ttl.as_secs().max(1))
                .arg(self.keys.presence_channel())
                .invoke::<i64>(&mut *c)
                .map(drop)
                .map_err(failed(action.clone()))
        });
        self.mark_dirty_on_err(r)
    }

    /// A session of `user` on this pod ended.
    pub fn session_down(&self, user: &str) -> RedisResult<()> {
        let action = format!("marking {user} offline");
        let r = self.conn(&action).and_then(|mut c| {
            SESSION_DOWN
                .key(self.keys.online_users())
                .key(self.keys.pod_users(&self.pod_id))
                .key(self.keys.user_pods(user))
                .arg(user)
                .arg(&self.pod_id)
                .arg(self.keys.presence_channel())
                .invoke::<i64>(&mut *c)
                .map(drop)
                .map_err(failed(action.clone()))
        });
        self.mark_dirty_on_err(r)
    }

    /// Replaces Redis's record of this pod with `sessions` (user, live
    /// sessions here). With `leaving`, the pod also leaves the pod set.
    pub fn resync(&self, sessions: &[(String, usize)], leaving: bool) -> RedisResult<()> {
        let action = "rewriting this pod's presence";
        let mut c = self.conn(action)?;
        let ttl = if leaving { 0 } else { self.ttl.as_secs().max(1) };
        let mut inv = RESYNC_POD.prepare_invoke();
        inv.key(self.keys.online_users())
            .key(self.keys.pods())
            .key(self.keys.pod_users(&self.pod_id))
            .key(self.keys.pod_alive(&self.pod_id))
            .arg(&self.pod_id)
            .arg(ttl)
            .arg(self.keys.user_pods(PLACEHOLDER))
            .arg(self.keys.presence_channel());
        for (user, n) in sessions {
            inv.arg(user).arg(*n);
        }
        inv.invoke::<i64>(&mut *c).map_err(failed(action))?;
        self.dirty.store(false, Ordering::SeqCst);
        Ok(())
    }

    /// (pod, its users) for every pod in the pod set but this one: the
    /// snapshot [`crate::remote_presence`] starts from.
    pub fn other_pods_users(&self) -> RedisResult<Vec<(String, Vec<String>)>> {
        let action = "reading the other pods' users";
        let mut c = self.conn(action)?;
        let pods: Vec<String> = redis::cmd("SMEMBERS").arg(self.keys.pods()).query(&mut *c).map_err(failed(action))?;
        let pods: Vec<String> = pods.into_iter().filter(|p| *p != self.pod_id).collect();
        if pods.is_empty() {
            return Ok(Vec::new());
        }
        // Every pod's users in one round trip.
        let mut pipe = redis::pipe();
        for pod in &pods {
            pipe.cmd("HKEYS").arg(self.keys.pod_users(pod));
        }
        let users: Vec<Vec<String>> = pipe.query(&mut *c).map_err(failed(action))?;
        Ok(pods.into_iter().zip(users).collect())
    }

    /// Marks presence as needing a full rewrite (Redis restarted or a write
    /// was lost); the next heartbeat does it.
    pub fn mark_dirty(&self) {
        self.dirty.store(true, Ordering::SeqCst);
    }

    /// Redis is back (the subscriber reconnected, perhaps to a new master
    /// or to a Redis that restarted empty): the heartbeat rewrites this
    /// pod's presence at once rather than at its next tick, so that other
    /// pods find this pod's users online again within moments.
    pub fn rewrite_now(&self) {
        self.mark_dirty();
        let _ = self.wake.0.try_send(());
    }

    /// What the heartbeat waits on besides its tick ([`Presence::rewrite_now`]).
    pub fn wakes(&self) -> &crossbeam_channel::Receiver<()> {
        &self.wake.1
    }

    /// A write was lost or Redis came back: the pod's state must be
    /// rewritten as a whole ([`Presence::resync`]).
    pub fn is_dirty(&self) -> bool {
        self.dirty.load(Ordering::SeqCst)
    }

    /// Refreshes this pod's heartbeat. `Ok(true)`: this pod had been reaped
    /// (its heartbeat was late: CPU stall, SIGSTOP, a Redis outage) and its
    /// users are missing from presence; the caller rewrites them at once.
    pub fn refresh(&self) -> RedisResult<bool> {
        let action = "refreshing the heartbeat";
        let mut c = self.conn(action)?;
        let (added,): (i64,) = redis::pipe()
            .set_ex(self.keys.pod_alive(&self.pod_id), 1, self.ttl.as_secs().max(1))
            .ignore()
            .sadd(self.keys.pods(), &self.pod_id)
            .query(&mut *c)
            .map_err(failed(action))?;
        // The reaper removes a dead pod from the pod set: being added back
        // means we were reaped.
        if added == 1 {
            self.mark_dirty();
        }
        Ok(added == 1)
    }

    /// Reaps pods whose heartbeat stopped; returns them.
    pub fn reap(&self) -> RedisResult<Vec<String>> {
        let mut c = self.conn("reaping dead pods")?;
        Ok(reap_and_count(&mut *c, &self.keys)?.1)
    }

    /// Redis answers (readiness).
    pub fn ping(&self) -> RedisResult<()> {
        let mut c = self.conn("answering PING")?;
        redis::cmd("PING").query::<String>(&mut *c).map(drop).map_err(failed("answering PING"))
    }

    /// The usernames online on any pod.
    /// Which of `names` are online (one pipelined round trip; the whole
    /// set may hold 100,000 names).
    pub fn online_among(&self, names: &[String]) -> RedisResult<HashSet<String>> {
        if names.is_empty() {
            return Ok(HashSet::new());
        }
        let action = "reading who is online";
        let mut c = self.conn(action)?;
        let mut pipe = redis::pipe();
        for n in names {
            pipe.sismember(self.keys.online_users(), n);
        }
        let flags: Vec<bool> = pipe.query(&mut *c).map_err(failed(action))?;
        Ok(names.iter().zip(flags).filter(|(_, on)| *on).map(|(n, _)| n.clone()).collect())
    }

    pub fn online_users(&self) -> RedisResult<HashSet<String>> {
        let action = "reading online users";
        let mut c = self.conn(action)?;
        redis::cmd("SMEMBERS").arg(self.keys.online_users()).query(&mut *c).map_err(failed(action))
    }
}
