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
use std::time::Duration;

use crate::config::RedisConfig;

/// Connect, read and write timeout of every Redis connection: a Redis that
/// hangs must not hang a user's thread.
pub const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

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

/// Opens connections with [`REDIS_TIMEOUT`] on connect, read and write.
#[derive(Debug, Clone)]
pub struct RedisConnector {
    client: redis::Client,
}

impl RedisConnector {
    pub fn new(cfg: &RedisConfig) -> RedisResult<Self> {
        let addr = if cfg.tls {
            redis::ConnectionAddr::TcpTls { host: cfg.host.clone(), port: cfg.port, insecure: false, tls_params: None }
        } else {
            redis::ConnectionAddr::Tcp(cfg.host.clone(), cfg.port)
        };
        let info = redis::ConnectionInfo {
            addr,
            redis: redis::RedisConnectionInfo {
                username: cfg.username.clone(),
                password: cfg.password.clone(),
                ..Default::default()
            },
        };
        let client = match (&cfg.ca_file, cfg.tls) {
            (Some(ca), true) => {
                let root_cert = std::fs::read(ca).map_err(failed(format!("reading REDIS_CA_FILE {}", ca.display())))?;
                let certs = redis::TlsCertificates { client_tls: None, root_cert: Some(root_cert) };
                redis::Client::build_with_tls(info, certs).map_err(failed("setting up TLS"))?
            }
            _ => redis::Client::open(info).map_err(failed("reading its address"))?,
        };
        Ok(RedisConnector { client })
    }

    pub fn connect(&self) -> redis::RedisResult<redis::Connection> {
        let conn = self.client.get_connection_with_timeout(REDIS_TIMEOUT)?;
        conn.set_read_timeout(Some(REDIS_TIMEOUT))?;
        conn.set_write_timeout(Some(REDIS_TIMEOUT))?;
        Ok(conn)
    }
}

/// A pooled connection that remembers a timeout or I/O error: redis-rs
/// keeps a connection "open" after a read timeout, so one whose Redis went
/// silent (no FIN, no RST) would go back to the pool and cost every later
/// user the timeout again. A failed one is dropped when it is returned.
pub struct PooledRedis {
    conn: redis::Connection,
    failed: bool,
}

impl PooledRedis {
    fn track<T>(&mut self, r: redis::RedisResult<T>) -> redis::RedisResult<T> {
        if let Err(e) = &r {
            if e.is_timeout() || e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error() {
                self.failed = true;
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

    fn connect(&self) -> Result<PooledRedis, redis::RedisError> {
        Ok(PooledRedis { conn: RedisConnector::connect(self)?, failed: false })
    }
    fn is_valid(&self, conn: &mut PooledRedis) -> Result<(), redis::RedisError> {
        redis::cmd("PING").query(conn)
    }
    fn has_broken(&self, conn: &mut PooledRedis) -> bool {
        !redis::ConnectionLike::is_open(conn)
    }
}

/// A pool of Redis connections (cheap to clone).
pub type RedisPool = r2d2::Pool<RedisConnector>;

/// Builds the pool and checks that Redis answers; a first connection is
/// made alone so that its failure gives the cause (refused, wrong
/// password), not the pool's timeout.
pub fn connect_pool(connector: RedisConnector, size: u32) -> RedisResult<RedisPool> {
    let mut first = connector.connect().map_err(failed("connecting"))?;
    redis::cmd("PING").query::<String>(&mut first).map_err(failed("answering PING"))?;
    let pool = r2d2::Pool::builder()
        .max_size(size)
        .min_idle(Some(1))
        .connection_timeout(REDIS_TIMEOUT)
        .test_on_check_out(false)
        // Failures surface as our own errors, once, with context.
        .error_handler(Box::new(r2d2::NopErrorHandler))
        .build(connector)
        .map_err(failed("connecting"))?;
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
