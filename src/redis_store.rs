//! Redis: the connection pool, and every key and channel name chatp uses
//! ([`Keys`]). Presence ([`crate::presence`]) and cross-pod routing
//! ([`crate::router`]) build their names only through [`Keys`].
//!
//! Keys (with the optional `REDIS_KEY_PREFIX` in front of each):
//!
//! | key | type | meaning |
//! |---|---|---|
//! | `online_users` | set | usernames with at least one live session (original name) |
//! | `presence:pods` | set | pod ids that hold or held sessions |
//! | `presence:pod:<pod>:alive` | string, TTL | the pod's heartbeat |
//! | `presence:pod:<pod>:users` | hash | username -> live sessions on that pod |
//! | `presence:user:<user>:pods` | set | pods where the user has sessions |
//! | `chat:pod:<pod>` | channel | lines for users on that pod |
//! | `chat:broadcast` | channel | broadcast lines, for every pod |

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::RedisConfig;
use crate::redis_sentinel::Sentinels;

/// Connect, read and write timeout of every Redis connection (800 ms: Redis
/// answers in well under a millisecond, and a sender must be answered within
/// a second whatever Redis does): a Redis that
/// hangs must not hang a user's thread.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(800);

/// Where [`Keys`] templates put the pod id or username (see `fill` in the
/// Lua scripts).
pub const PLACEHOLDER: &str = "{}";

/// Every Redis key and channel name.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Keys { prefix: prefix.to_string() }
    }
    /// The set of online usernames (`online_users`, as the original).
    pub fn online_users(&self) -> String {
        format!("{}online_users", self.prefix)
    }
    pub fn pods(&self) -> String {
        format!("{}presence:pods", self.prefix)
    }
    pub fn pod_alive(&self, pod: &str) -> String {
        format!("{}presence:pod:{pod}:alive", self.prefix)
    }
    pub fn pod_users(&self, pod: &str) -> String {
        format!("{}presence:pod:{pod}:users", self.prefix)
    }
    pub fn user_pods(&self, user: &str) -> String {
        format!("{}presence:user:{user}:pods", self.prefix)
    }
    pub fn pod_channel(&self, pod: &str) -> String {
        format!("{}chat:pod:{pod}", self.prefix)
    }
    pub fn broadcast_channel(&self) -> String {
        format!("{}chat:broadcast", self.prefix)
    }
    /// Presence changes, for the other pods ([`crate::remote_presence`]).
    pub fn presence_channel(&self) -> String {
        format!("{}chat:presence", self.prefix)
    }
    /// The autoscaler's last tick, for the dashboard.
    pub fn autoscaler_last(&self) -> String {
        format!("{}autoscaler:last", self.prefix)
    }
    /// The autoscaler's recent replica changes (a capped list).
    pub fn autoscaler_events(&self) -> String {
        format!("{}autoscaler:events", self.prefix)
    }
    /// A throttle's count for one subject (`kind`: login, resume; `digest`:
    /// hex of the name's digest), across pods.
    pub fn throttle(&self, kind: &str, digest: &str) -> String {
        format!("{}throttle:{kind}:{digest}", self.prefix)
    }
    /// Sessions to end on every pod ([`crate::session_end`]).
    pub fn admin_channel(&self) -> String {
        format!("{}chat:admin", self.prefix)
    }
}

#[derive(Debug)]
pub struct RedisError {
    /// What was being done, e.g. "marking alice online".
    pub action: String,
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl fmt::Display for RedisError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redis failed while {}: {}", self.action, self.source)
    }
}

impl std::error::Error for RedisError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.source.as_ref())
    }
}

pub type RedisResult<T> = Result<T, RedisError>;

/// Wraps an error with what was being done.
pub fn failed<E: std::error::Error + Send + Sync + 'static>(action: impl Into<String>) -> impl FnOnce(E) -> RedisError {
    move |e| RedisError { action: action.into(), source: Box::new(e) }
}

/// Opens connections with [`REDIS_TIMEOUT`] on connect, read and write, to
/// `REDIS_HOST` or to the master the sentinels name
/// ([`crate::redis_sentinel`]).
#[derive(Debug, Clone)]
pub struct RedisConnector {
    route: Route,
    /// Shared by every clone (the pool's, the subscriber's).
    gate: Arc<Gate>,
}

#[derive(Debug, Clone)]
enum Route {
    Direct(redis::Client),
    Sentinel { sentinels: Sentinels, servers: ServerClients },
}

/// How a client to one server is made: TLS or not, the CA, the ACL user.
#[derive(Debug, Clone)]
struct ServerClients {
    tls: bool,
    root_cert: Option<Vec<u8>>,
    auth: redis::RedisConnectionInfo,
}

impl ServerClients {
    fn client(&self, host: &str, port: u16, auth: &redis::RedisConnectionInfo) -> redis::RedisResult<redis::Client> {
        let addr = if self.tls {
            redis::ConnectionAddr::TcpTls { host: host.to_string(), port, insecure: false, tls_params: None }
        } else {
            redis::ConnectionAddr::Tcp(host.to_string(), port)
        };
        let info = redis::ConnectionInfo { addr, redis: auth.clone() };
        match (&self.root_cert, self.tls) {
            (Some(ca), true) => redis::Client::build_with_tls(
                info,
                redis::TlsCertificates { client_tls: None, root_cert: Some(ca.clone()) },
            ),
            _ => redis::Client::open(info),
        }
    }
}

fn with_timeouts(client: &redis::Client) -> redis::RedisResult<redis::Connection> {
    let conn = client.get_connection_with_timeout(REDIS_TIMEOUT)?;
    conn.set_read_timeout(Some(REDIS_TIMEOUT))?;
    conn.set_write_timeout(Some(REDIS_TIMEOUT))?;
    Ok(conn)
}

impl RedisConnector {
    pub fn new(cfg: &RedisConfig) -> RedisResult<Self> {
        let root_cert = match (&cfg.ca_file, cfg.tls) {
            (Some(ca), true) => {
                Some(std::fs::read(ca).map_err(failed(format!("reading REDIS_CA_FILE {}", ca.display())))?)
            }
            _ => None,
        };
        let auth = redis::RedisConnectionInfo {
            username: cfg.username.clone(),
            password: cfg.password.clone(),
            ..Default::default()
        };
        let servers = ServerClients { tls: cfg.tls, root_cert, auth };
        let route = match &cfg.sentinel {
            None => Route::Direct(
                servers.client(&cfg.host, cfg.port, &servers.auth).map_err(failed("setting up its address"))?,
            ),
            Some(sentinel) => Route::Sentinel {
                sentinels: Sentinels::new(sentinel, &|host, port, auth| servers.client(host, port, auth))
                    .map_err(failed("setting up REDIS_SENTINELS"))?,
                servers,
            },
        };
        Ok(RedisConnector { route, gate: Arc::default() })
    }

    pub fn connect(&self) -> redis::RedisResult<redis::Connection> {
        match &self.route {
            Route::Direct(client) => with_timeouts(client),
            Route::Sentinel { sentinels, servers } => {
                sentinels.connect_master(|host, port| with_timeouts(&servers.client(host, port, &servers.auth)?))
            }
        }
    }
}

/// A pooled connection that remembers a timeout or I/O error: redis-rs
/// keeps a connection "open" after a read timeout, so one whose Redis went
/// silent (no FIN, no RST) would go back to the pool and cost every later
/// user the timeout again. A failed one is dropped when it is returned.
pub struct PooledRedis {
    conn: redis::Connection,
    failed: bool,
    gate: Arc<Gate>,
    /// The gate's generation when this connection was made.
    generation: u64,
}

impl PooledRedis {
    fn track<T>(&mut self, r: redis::RedisResult<T>) -> redis::RedisResult<T> {
        if let Err(e) = &r {
            // A timeout condemns this connection only (one slow command is
            // not an outage); a refused, reset or closed connection, or
            // READONLY (the server turned replica in a failover), is Redis
            // gone from here: the gate shuts for every caller.
            if e.is_timeout() {
                self.failed = true;
            } else if e.is_io_error()
                || e.is_connection_dropped()
                || e.is_unrecoverable_error()
                || e.kind() == redis::ErrorKind::ReadOnly
            {
                self.failed = true;
                self.gate.trip();
            }
        }
        r
    }
}

impl redis::ConnectionLike for PooledRedis {
    fn req_packed_command(&mut self, cmd: &[u8]) -> redis::RedisResult<redis::Value> {
        let r = self.conn.req_packed_command(cmd);
        self.track(r)
    }
    fn req_packed_commands(
        &mut self,
        cmd: &[u8],
        offset: usize,
        count: usize,
    ) -> redis::RedisResult<Vec<redis::Value>> {
        let r = self.conn.req_packed_commands(cmd, offset, count);
        self.track(r)
    }
    fn get_db(&self) -> i64 {
        self.conn.get_db()
    }
    fn check_connection(&mut self) -> bool {
        self.conn.check_connection()
    }
    fn is_open(&self) -> bool {
        !self.failed && self.conn.is_open()
    }
}

impl r2d2::ManageConnection for RedisConnector {
    type Connection = PooledRedis;
    type Error = redis::RedisError;

    /// A failed connect shuts the gate. The generation is read once the
    /// connection is made: one that took longer than a probe's wait is
    /// still lent to the next probe, not thrown away.
    fn connect(&self) -> Result<PooledRedis, redis::RedisError> {
        let conn = RedisConnector::connect(self).inspect_err(|_| self.gate.trip())?;
        Ok(PooledRedis { conn, failed: false, gate: Arc::clone(&self.gate), generation: self.gate.generation() })
    }
    /// Checked at each checkout, without a round trip: a connection made
    /// before the last failure is dropped rather than lent.
    fn is_valid(&self, conn: &mut PooledRedis) -> Result<(), redis::RedisError> {
        if conn.generation == self.gate.generation() {
            Ok(())
        } else {
            Err(redis::RedisError::from((redis::ErrorKind::IoError, "made before Redis last failed")))
        }
    }
    fn has_broken(&self, conn: &mut PooledRedis) -> bool {
        !redis::ConnectionLike::is_open(conn)
    }
}

/// After a failure, how long no one asks the pool for a connection; then
/// one caller at a time tries, for at most [`PROBE_TIMEOUT`].
const RETRY_AFTER: Duration = Duration::from_millis(200);
const PROBE_TIMEOUT: Duration = Duration::from_millis(250);

/// Whether Redis failed moments ago. While it is down, callers get an error
/// at once instead of each waiting out a timeout: a sender's answer never
/// waits on a Redis that is gone, restarting or failing over (the message
/// is stored; only live delivery to other pods is missed).
#[derive(Debug, Default)]
struct Gate {
    state: Mutex<GateState>,
}

#[derive(Debug, Default)]
struct GateState {
    down_at: Option<Instant>,
    probing: bool,
    /// Bumped at each failure: a pooled connection made before it may be
    /// to a Redis that is gone (restarted, failed over) and is not lent
    /// again, so one outage costs each caller at most one failure.
    generation: u64,
}

impl Gate {
    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `Some((timeout, probing))`: try, waiting at most that (as the one
    /// prober while the gate is shut); `None`: fail at once.
    fn admit(&self) -> Option<(Duration, bool)> {
        let mut s = self.lock();
        match s.down_at {
            None => Some((REDIS_TIMEOUT, false)),
            Some(at) if at.elapsed() >= RETRY_AFTER && !s.probing => {
                s.probing = true;
                Some((PROBE_TIMEOUT, true))
            }
            Some(_) => None,
        }
    }

    /// The probe found no connection: shut for another [`RETRY_AFTER`]
    /// (connections already made stay valid).
    fn probe_failed(&self) {
        let mut s = self.lock();
        s.down_at = Some(Instant::now());
        s.probing = false;
    }

    fn trip(&self) {
        let mut s = self.lock();
        s.down_at = Some(Instant::now());
        s.probing = false;
        s.generation += 1;
    }

    fn generation(&self) -> u64 {
        self.lock().generation
    }

    fn up(&self) {
        let mut s = self.lock();
        s.down_at = None;
        s.probing = false;
    }
}

/// Redis could not be reached just now (or moments ago).
#[derive(Debug)]
pub struct Unavailable(String);

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unavailable {}

/// A pool of Redis connections (cheap to clone) behind a [`Gate`].
#[derive(Clone)]
pub struct RedisPool {
    pool: r2d2::Pool<RedisConnector>,
    gate: Arc<Gate>,
}

impl RedisPool {
    pub fn get(&self) -> Result<r2d2::PooledConnection<RedisConnector>, Unavailable> {
        let Some((timeout, probing)) = self.gate.admit() else {
            return Err(Unavailable("unreachable moments ago; tried again shortly".into()));
        };
        match self.pool.get_timeout(timeout) {
            Ok(conn) => {
                self.gate.up();
                Ok(conn)
            }
            Err(e) => {
                // Not an outage by itself (every connection may be busy): a
                // failed connect or command has shut the gate if Redis is gone.
                if probing {
                    self.gate.probe_failed();
                }
                Err(Unavailable(e.to_string()))
            }
        }
    }
}

/// Builds the pool and checks that Redis answers; a first connection is
/// made alone so that its failure gives the cause (refused, wrong
/// password), not the pool's timeout.
pub fn connect_pool(connector: RedisConnector, size: u32) -> RedisResult<RedisPool> {
    let mut first = connector.connect().map_err(failed("connecting"))?;
    redis::cmd("PING").query::<String>(&mut first).map_err(failed("answering PING"))?;
    let gate = Arc::clone(&connector.gate);
    let pool = r2d2::Pool::builder()
        .max_size(size)
        .min_idle(Some(1))
        .connection_timeout(REDIS_TIMEOUT)
        .test_on_check_out(true)
        // Failures surface as our own errors, once, with context.
        .error_handler(Box::new(r2d2::NopErrorHandler))
        .build(connector)
        .map_err(failed("connecting"))?;
    let pool = RedisPool { pool, gate };
    let mut conn = pool.get().map_err(failed("connecting"))?;
    redis::cmd("PING").query::<String>(&mut *conn).map_err(failed("answering PING"))?;
    Ok(pool)
}

/// The Lua helper every script starts with: `fill(template, value)` puts
/// `value` where the template has [`PLACEHOLDER`] (plain text, no patterns).
pub const LUA_FILL: &str = r#"
local function fill(t, v)
  local i = string.find(t, '{}', 1, true)
  return string.sub(t, 1, i - 1) .. v .. string.sub(t, i + 2)
end
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn original_key_names_without_prefix() {
        let k = Keys::new("");
        assert_eq!(k.online_users(), "online_users");
        assert_eq!(k.user_pods("ann"), "presence:user:ann:pods");
        let p = Keys::new("t1:");
        assert_eq!(p.online_users(), "t1:online_users");
        assert_eq!(p.pod_channel(PLACEHOLDER), "t1:chat:pod:{}");
    }
}
