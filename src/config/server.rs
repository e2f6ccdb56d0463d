//! `chat_server`'s configuration.

use std::path::PathBuf;
use std::time::Duration;

use super::{shared_env_help, ConfigError, Env, RedisConfig};
use crate::rate_limit::Rate;

/// Everything `chat_server` needs to start.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// TCP port to listen on (argument `<port>`; 0 picks a free one).
    pub port: u16,
    /// Address to bind (`BIND_ADDR`, default `0.0.0.0`).
    pub bind_addr: String,
    pub db: DbConfig,
    pub redis: RedisConfig,
    /// Signs and checks messages on the admin channel
    /// ([`super::admin_channel_key`]).
    pub admin_channel_key: Vec<u8>,
    /// This pod's id (`HOSTNAME`; default: `chat-server-<pid>`). Routes
    /// cross-pod messages to this process, so it must be unique per process.
    pub pod_id: String,
    /// Most connections served at once (`MAX_CONNECTIONS`, default 10000);
    /// more are told the server is full and closed.
    pub max_connections: usize,
    /// Lines a client may have waiting to be written before it counts as
    /// stalled and is disconnected (`OUTBOUND_QUEUE`, default 256).
    pub outbound_queue: usize,
    /// How long a pod's presence outlives its last heartbeat
    /// (`PRESENCE_TTL_SECS`, default 15): users of a pod that died leave
    /// `online_users` within this plus one heartbeat (a third of it).
    pub presence_ttl: Duration,
    /// Bytes that may wait for a slow client (`OUTBOUND_QUEUE_BYTES`,
    /// default 256 KiB), whichever of this and `outbound_queue` is reached
    /// first.
    pub outbound_queue_bytes: usize,
    /// Password hashes computed at once (`HASH_WORKERS`). Each Argon2id
    /// worker keeps 19 MiB; the default fits the container's limits
    /// ([`default_hash_workers`]).
    pub hash_workers: usize,
    /// A login or signup whose hash waited longer than this in the queue is
    /// refused as busy (`HASH_QUEUE_TIMEOUT_SECS`, default 5).
    pub hash_queue_timeout: Duration,
    /// A connection that has not logged in within this is closed
    /// (`AUTH_TIMEOUT_SECS`, default 30).
    pub auth_timeout: Duration,
    /// A client whose host vanished (no FIN) is disconnected, and leaves
    /// presence, within this (`CLIENT_TIMEOUT_SECS`, default 45): TCP
    /// keepalive and `TCP_USER_TIMEOUT`.
    pub client_timeout: Duration,
    /// Failed logins after which a connection is closed
    /// (`LOGIN_ATTEMPTS_PER_CONNECTION`, default 3).
    pub login_attempts_per_connection: u32,
    /// On SIGTERM, how long connections get to finish what they are doing
    /// and flush what is queued for them before they are closed
    /// (`DRAIN_SECS`, default 10); the process exits at most 2 s later.
    pub drain: Duration,
    /// How long after its connection ended a protocol-2 session may be
    /// resumed (`RESUME_TTL_SECS`, default 600).
    pub resume_ttl: Duration,
    /// Per-session rate limits; `None` with `RATE_LIMITS=off`.
    pub limits: Option<RateLimits>,
    /// Replace a legacy (Python chatp) SHA-256 password hash by Argon2id
    /// at that user's first successful login (`LEGACY_PASSWORD_UPGRADE`,
    /// `on` by default). `off` keeps the database usable by the Python
    /// server for a rollback, at the cost of keeping weak hashes.
    pub upgrade_legacy_hashes: bool,
    /// Port of `/healthz`, `/readyz` and `/metrics` (`METRICS_PORT`,
    /// default 9090; `0` picks a free one, `off` serves none).
    pub metrics_port: Option<u16>,
    /// Log level (`LOG_LEVEL`: error, warn, info, debug; default info).
    pub log_level: log::LevelFilter,
    /// The TLS port, when `TLS_CERT_FILE` and `TLS_KEY_FILE` are set.
    pub tls: Option<TlsListen>,
    /// Serve the plaintext port too (`PLAINTEXT`, `on` by default; `off`
    /// needs TLS).
    pub plaintext: bool,
    /// Who may sign up (`REGISTRATION`: `open`, `invite`, `closed`).
    pub registration: Registration,
    /// Live sessions one user may have on all pods together
    /// (`MAX_SESSIONS_PER_USER`, 10); one more is refused with a reason.
    pub max_sessions_per_user: usize,
    /// Ended `sessions` rows are deleted this long after they ended
    /// (`SESSION_RETENTION_SECS`, 30 days), and each user keeps at most
    /// [`crate::db_manager::ENDED_SESSIONS_KEPT`] of them.
    pub session_retention: Duration,
    /// How often the janitor purges ended sessions and expired resume
    /// tokens (`SESSION_PURGE_SECS`, 600).
    pub purge_every: Duration,
    /// The web client's port (`WEB_PORT`; unset: none).
    pub web: Option<WebListen>,
    /// Test builds only: a client line that panics its thread.
    #[cfg(feature = "fault-hooks")]
    pub fault_panic_line: Option<String>,
}

/// chat_server's web port: the browser client's page and its WebSocket.
#[derive(Debug, Clone, Default)]
pub struct WebListen {
    /// `WEB_PORT` (0 picks a free one). With TLS configured it serves
    /// https/wss with the chat port's certificate.
    pub port: u16,
    /// The only origins whose pages may open `/ws` when set; unset, the
    /// page's own
    /// (`WEB_ALLOWED_ORIGINS`, comma-separated, e.g.
    /// `https://chat.example.com`).
    pub allowed_origins: Vec<String>,
    /// Passwords over plain `ws://` from beyond loopback
    /// (`WEB_PASSWORDS_WITHOUT_TLS`, `refuse` by default; `accept` when a
    /// proxy in front terminates TLS).
    pub passwords_without_tls: bool,
}

/// chat_server's TLS port.
#[derive(Debug, Clone)]
pub struct TlsListen {
    /// `TLS_CERT_FILE`: PEM certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// `TLS_KEY_FILE`: PEM private key.
    pub key_file: PathBuf,
    /// `TLS_PORT`, default 30443 (0 picks a free one).
    pub port: u16,
    /// How often the files are checked for a new certificate
    /// (`TLS_RELOAD_SECS`, default 10).
    pub reload_every: Duration,
    /// A handshake not finished within this is dropped
    /// (`TLS_HANDSHAKE_SECS`, default 10; never more than the login time).
    pub handshake_timeout: Duration,
}

/// Who may create an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    /// Anyone who reaches the port (the original behaviour).
    Open,
    /// A signup needs a one-time invite code (`chat_admin invite`).
    Invite,
    /// Only `chat_admin add-user` creates accounts.
    Closed,
}

impl Registration {
    pub fn as_str(self) -> &'static str {
        match self {
            Registration::Open => "open",
            Registration::Invite => "invite",
            Registration::Closed => "closed",
        }
    }
}

/// How PostgreSQL connections use TLS (`DB_SSLMODE`, as libpq).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plaintext only.
    Disable,
    /// TLS when the server offers it, unchecked; plaintext otherwise (the
    /// default, as libpq's).
    Prefer,
    /// TLS or nothing; the certificate is checked against
    /// `DB_SSLROOTCERT` if that is set (as libpq), not otherwise.
    Require,
    /// TLS, certificate signed by a trusted CA.
    VerifyCa,
    /// TLS, certificate signed by a trusted CA and issued for `DB_HOST`.
    VerifyFull,
}

impl SslMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Per-session rate limits (a burst, then a rate per second).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimits {
    /// Private messages (`MESSAGE_BURST` 10, `MESSAGE_RATE` 5/s); over it:
    /// `ERROR:Rate limited`, not stored.
    pub message: Rate,
    /// Group messages (`GROUP_BURST` 10, `GROUP_RATE` 2/s).
    pub group: Rate,
    /// Broadcasts (`BROADCAST_BURST` 5, `BROADCAST_RATE` 1/s).
    pub broadcast: Rate,
    /// Every line after login (`LINE_BURST` 40, `LINE_RATE` 20/s); over it,
    /// lines are read late (the client is slowed down), never refused.
    pub line: Rate,
    /// Resumes of one user, on every pod together (`RESUME_BURST` 10,
    /// `RESUME_RATE` 0.2/s, one every 5 s after the burst); over it the
    /// resume is refused (the token stays good) and the client waits.
    pub resume: Rate,
}

/// PostgreSQL connection (`DB_*`).
#[derive(Debug, Clone)]
pub struct DbConfig {
    /// `DB_HOST`, default `localhost`.
    pub host: String,
    /// `DB_PORT`, default 5432.
    pub port: u16,
    /// `DB_NAME`, default `chatdb`.
    pub name: String,
    /// `DB_USER`, default `chatuser`.
    pub user: String,
    /// `DB_PASS`, default `chatpass`.
    pub password: String,
    /// Connections in the pool (`DB_POOL_SIZE`, default 16).
    pub pool_size: u32,
    /// `DB_SSLMODE`: disable, prefer (default), require, verify-ca,
    /// verify-full.
    pub sslmode: SslMode,
    /// `DB_SSLROOTCERT`: the CA file (PEM) certificates are checked
    /// against; the system's roots when unset.
    pub sslrootcert: Option<PathBuf>,
    /// The role that owns the schema and runs the migrations at start
    /// (`DB_MIGRATION_USER`, `DB_MIGRATION_PASS`); unset: `DB_USER`.
    pub migration: Option<(String, String)>,
    /// The servers `DB_HOST` lists (`host[:port]`, commas between; `DB_PORT`
    /// where no port is given), tried in order as libpq does.
    pub hosts: Vec<(String, u16)>,
    /// Only a server that accepts writes will do (`DB_TARGET_SESSION_ATTRS`
    /// `read-write`; the default when `DB_HOST` lists several, `any`
    /// otherwise): after a failover, connections find the new primary.
    pub read_write: bool,
}

impl DbConfig {
    /// `host:port,...` for messages.
    pub fn address(&self) -> String {
        self.hosts.iter().map(|(h, p)| format!("{h}:{p}")).collect::<Vec<_>>().join(",")
    }
}

impl DbConfig {
    pub fn from_lookup<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let host = env.string("DB_HOST", "localhost");
        let port = env.parsed("DB_PORT", 5432, "a port number")?;
        let hosts = super::parse_host_list(&host, port)
            .ok_or_else(|| ConfigError::new("DB_HOST", &host, "host or host:port entries separated by commas"))?;
        let read_write =
            env.choice("DB_TARGET_SESSION_ATTRS", hosts.len() > 1, &[("any", false), ("read-write", true)])?;
        Ok(DbConfig {
            hosts,
            read_write,
            host,
            port,
            name: env.string("DB_NAME", "chatdb"),
            user: env.string("DB_USER", "chatuser"),
            password: env.0("DB_PASS").unwrap_or_else(|| "chatpass".into()),
            pool_size: env.positive("DB_POOL_SIZE", 16)? as u32,
            sslmode: env.choice(
                "DB_SSLMODE",
                SslMode::Prefer,
                &[
                    ("disable", SslMode::Disable),
                    ("prefer", SslMode::Prefer),
                    ("require", SslMode::Require),
                    ("verify-ca", SslMode::VerifyCa),
                    ("verify-full", SslMode::VerifyFull),
                ],
            )?,
            sslrootcert: env.0("DB_SSLROOTCERT").filter(|v| !v.is_empty()).map(PathBuf::from),
            migration: env.0("DB_MIGRATION_USER")
                .filter(|v| !v.is_empty())
                .map(|user| (user, env.0("DB_MIGRATION_PASS").unwrap_or_default())),
        })
    }
}

/// The variables `chat_server --help` lists, with their defaults.
pub const SERVER_ENV_HELP: &str = concat!(
    "\
Environment (defaults in brackets):
  DB_HOST [localhost]  DB_PORT [5432]  DB_NAME [chatdb]
  DB_HOST may list servers, host[:port] separated by commas, tried in order
  DB_TARGET_SESSION_ATTRS [read-write with several hosts, else any]
  DB_USER [chatuser]   DB_PASS [chatpass]   DB_POOL_SIZE [16]
  DB_SSLMODE [prefer]  disable, prefer, require, verify-ca, verify-full
  DB_SSLROOTCERT [system roots]  CA file (PEM) for the verify modes
  DB_MIGRATION_USER, DB_MIGRATION_PASS [DB_USER]  the schema's owner, for
                  the migrations at start
  HOSTNAME [chat-server-<pid>]  this pod's id, unique per server process
  BIND_ADDR [0.0.0.0]  MAX_CONNECTIONS [10000]  OUTBOUND_QUEUE [256]
  OUTBOUND_QUEUE_BYTES [262144]  PRESENCE_TTL_SECS [15]
  HASH_WORKERS [from the container's CPU and memory, at most 4]
  HASH_QUEUE_TIMEOUT_SECS [5]  AUTH_TIMEOUT_SECS [30]  CLIENT_TIMEOUT_SECS [45]
  LOGIN_ATTEMPTS_PER_CONNECTION [3]  DRAIN_SECS [10]  RESUME_TTL_SECS [600]
  RATE_LIMITS [on]  MESSAGE_BURST [10] MESSAGE_RATE [5]  GROUP_BURST [10]
  GROUP_RATE [2]  BROADCAST_BURST [5] BROADCAST_RATE [1]  LINE_BURST [40]
  LINE_RATE [20]  RESUME_BURST [10] RESUME_RATE [0.2]  bursts in lines (resumes),
                  rates per second; one user's resumes count on all pods
  WEB_PORT [off]  the web client (page and /ws; https/wss with TLS set)
  WEB_ALLOWED_ORIGINS [the page's own]  set: the only origins that may open /ws
  WEB_PASSWORDS_WITHOUT_TLS [refuse]  accept: passwords over plain ws from
                  beyond loopback (TLS ended by a proxy in front)
  MAX_SESSIONS_PER_USER [10]  SESSION_RETENTION_SECS [2592000]
  SESSION_PURGE_SECS [600]  ended sessions' rows kept, purge cadence
  LEGACY_PASSWORD_UPGRADE [on]  off keeps Python chatp's SHA-256 hashes
  METRICS_PORT [9090]  /healthz, /readyz, /metrics (0: any free port; off)
  TLS_CERT_FILE, TLS_KEY_FILE [unset]  PEM files; both set: a TLS port
  TLS_PORT [30443]  TLS_RELOAD_SECS [10]  TLS_HANDSHAKE_SECS [10]
  PLAINTEXT [on]  off: no plaintext port (needs TLS)
  REGISTRATION [open]  open, invite (signup needs a code), closed
  ADMIN_CHANNEL_KEY [derived from the DB_* credentials]  signs chat:admin",
    shared_env_help!()
);

impl ServerConfig {
    /// Builds the configuration from the process environment.
    pub fn from_env(port: u16) -> Result<Self, ConfigError> {
        Self::from_lookup(port, &Env(|name| std::env::var(name).ok()))
    }

    pub fn from_lookup<F: Fn(&str) -> Option<String>>(port: u16, env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(ServerConfig {
            port,
            bind_addr: env.string("BIND_ADDR", "0.0.0.0"),
            db: DbConfig::from_lookup(env)?,
            redis: RedisConfig::from_lookup(env)?,
            admin_channel_key: super::admin_channel_key(env, &DbConfig::from_lookup(env)?),
            pod_id: env.string("HOSTNAME", &format!("chat-server-{}", std::process::id())),
            max_connections: env.positive("MAX_CONNECTIONS", 10_000)? as usize,
            outbound_queue: env.positive("OUTBOUND_QUEUE", 256)? as usize,
            presence_ttl: Duration::from_secs(env.positive("PRESENCE_TTL_SECS", 15)?),
            outbound_queue_bytes: env.positive("OUTBOUND_QUEUE_BYTES", 256 * 1024)? as usize,
            hash_workers: env.positive("HASH_WORKERS", default_hash_workers() as u64)? as usize,
            hash_queue_timeout: Duration::from_secs(env.positive("HASH_QUEUE_TIMEOUT_SECS", 5)?),
            auth_timeout: Duration::from_secs(env.positive("AUTH_TIMEOUT_SECS", 30)?),
            client_timeout: Duration::from_secs(env.positive("CLIENT_TIMEOUT_SECS", 45)?),
            login_attempts_per_connection: env.positive("LOGIN_ATTEMPTS_PER_CONNECTION", 3)? as u32,
            drain: Duration::from_secs(env.positive("DRAIN_SECS", 10)?),
            resume_ttl: Duration::from_secs(env.positive("RESUME_TTL_SECS", 600)?),
            limits: if env.switch("RATE_LIMITS", true)? {
                Some(RateLimits {
                    message: env.rate("MESSAGE", 10.0, 5.0)?,
                    group: env.rate("GROUP", 10.0, 2.0)?,
                    broadcast: env.rate("BROADCAST", 5.0, 1.0)?,
                    line: env.rate("LINE", 40.0, 20.0)?,
                    resume: env.rate("RESUME", 10.0, 0.2)?,
                })
            } else {
                None
            },
            upgrade_legacy_hashes: env.switch("LEGACY_PASSWORD_UPGRADE", true)?,
            metrics_port: env.metrics_port()?,
            log_level: env.log_level()?,
            tls: tls_listen(env)?,
            plaintext: env.switch("PLAINTEXT", true)?,
            web: web_listen(env)?,
            max_sessions_per_user: env.positive("MAX_SESSIONS_PER_USER", 10)? as usize,
            session_retention: Duration::from_secs(env.positive("SESSION_RETENTION_SECS", 30 * 24 * 3600)?),
            purge_every: Duration::from_secs(env.positive("SESSION_PURGE_SECS", 600)?),
            #[cfg(feature = "fault-hooks")]
            fault_panic_line: env.0("CHATP_FAULT_PANIC_ON_LINE").filter(|v| !v.is_empty()),
            registration: env.choice(
                "REGISTRATION",
                Registration::Open,
                &[("open", Registration::Open), ("invite", Registration::Invite), ("closed", Registration::Closed)],
            )?,
        })
        .and_then(|c: ServerConfig| {
            if !c.plaintext && c.tls.is_none() {
                return Err(ConfigError::new("PLAINTEXT", "off", "on unless TLS_CERT_FILE and TLS_KEY_FILE are set"));
            }
            Ok(c)
        })
    }
}

fn web_listen<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Option<WebListen>, ConfigError> {
    if env.0("WEB_PORT").is_none_or(|v| v.is_empty() || v == "off") {
        return Ok(None);
    }
    let allowed_origins = env.0("WEB_ALLOWED_ORIGINS")
        .unwrap_or_default()
        .split(',')
        .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
        .filter(|o| !o.is_empty())
        .collect::<Vec<_>>();
    if let Some(bad) = allowed_origins.iter().find(|o| !(o.starts_with("https://") || o.starts_with("http://"))) {
        return Err(ConfigError::new("WEB_ALLOWED_ORIGINS", bad, "origins such as https://chat.example.com"));
    }
    Ok(Some(WebListen {
        port: env.parsed("WEB_PORT", 0, "a port number, or off")?,
        allowed_origins,
        passwords_without_tls: env.choice(
            "WEB_PASSWORDS_WITHOUT_TLS",
            false,
            &[("refuse", false), ("accept", true)],
        )?,
    }))
}

fn tls_listen<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Option<TlsListen>, ConfigError> {
    let path = |name: &str| env.0(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    let (cert, key) = match (path("TLS_CERT_FILE"), path("TLS_KEY_FILE")) {
        (None, None) => return Ok(None),
        (Some(cert), Some(key)) => (cert, key),
        (Some(_), None) => return Err(ConfigError::new("TLS_KEY_FILE", "", "set, as TLS_CERT_FILE is")),
        (None, Some(_)) => return Err(ConfigError::new("TLS_CERT_FILE", "", "set, as TLS_KEY_FILE is")),
    };
    Ok(Some(TlsListen {
        cert_file: cert,
        key_file: key,
        port: env.parsed("TLS_PORT", 30443, "a port number")?,
        reload_every: Duration::from_secs(env.positive("TLS_RELOAD_SECS", 10)?),
        handshake_timeout: Duration::from_secs(env.positive("TLS_HANDSHAKE_SECS", 10)?),
    }))
}

/// Memory each hashing worker keeps (Argon2id's 19 MiB work area) plus
/// room for the rest of the pod, per worker.
const HASH_WORKER_BUDGET: u64 = 64 * 1024 * 1024;

/// Hashing workers that fit the container: its CPUs (`available_parallelism`
/// follows the cgroup CPU quota), one per 64 MiB of its memory limit
/// (cgroup v2 `memory.max`, v1 `memory.limit_in_bytes`), at most 4.
pub fn default_hash_workers() -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let by_memory = crate::sys::memory_limit_bytes().map_or(usize::MAX, |m| (m / HASH_WORKER_BUDGET).max(1) as usize);
    cpus.min(by_memory).clamp(1, 4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<ServerConfig, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        ServerConfig::from_lookup(30080, &Env(move |k| map.get(k).cloned()))
    }

    #[test]
    fn several_database_hosts_want_the_primary_and_sentinels_replace_redis_host() {
        let c = config(&[("DB_HOST", "pg-a,pg-b:5433"), ("DB_PORT", "6000")]).unwrap();
        assert_eq!(c.db.hosts, vec![("pg-a".to_string(), 6000), ("pg-b".to_string(), 5433)]);
        assert!(c.db.read_write);
        assert!(!config(&[]).unwrap().db.read_write);
        let any = config(&[("DB_HOST", "a,b"), ("DB_TARGET_SESSION_ATTRS", "any")]).unwrap();
        assert!(!any.db.read_write);
        assert_eq!(config(&[("DB_HOST", "a,b:x")]).unwrap_err().variable, "DB_HOST");
        assert_eq!(config(&[("DB_TARGET_SESSION_ATTRS", "primary")]).unwrap_err().variable, "DB_TARGET_SESSION_ATTRS");
        let s = config(&[("REDIS_SENTINELS", "s1,s2:26380"), ("REDIS_MASTER_NAME", "chat")]).unwrap();
        let sentinel = s.redis.sentinel.expect("sentinels");
        assert_eq!(sentinel.sentinels, vec![("s1".to_string(), 26379), ("s2".to_string(), 26380)]);
        assert_eq!(sentinel.master_name, "chat");
        assert_eq!(config(&[("REDIS_SENTINELS", "s1:")]).unwrap_err().variable, "REDIS_SENTINELS");
    }

    #[test]
    fn defaults_are_the_original_ones() {
        let c = config(&[]).unwrap();
        assert_eq!((c.db.host.as_str(), c.db.port, c.db.name.as_str()), ("localhost", 5432, "chatdb"));
        assert_eq!((c.db.user.as_str(), c.db.password.as_str()), ("chatuser", "chatpass"));
        assert_eq!((c.redis.host.as_str(), c.redis.port, c.redis.password.clone()), ("localhost", 6379, None));
        assert_eq!(c.redis.key_prefix, "");
        assert_eq!(c.presence_ttl, Duration::from_secs(15));
    }

    #[test]
    fn bad_values_name_the_variable() {
        let e = config(&[("DB_PORT", "five")]).unwrap_err();
        assert_eq!(e.to_string(), "DB_PORT=\"five\" is not valid: expected a port number");
        assert_eq!(config(&[("MAX_CONNECTIONS", "0")]).unwrap_err().variable, "MAX_CONNECTIONS");
        assert_eq!(config(&[("REDIS_PASSWORD", "s3")]).unwrap().redis.password.as_deref(), Some("s3"));
    }

    #[test]
    fn rate_limits_default_and_off() {
        let l = config(&[]).unwrap().limits.unwrap();
        assert_eq!(l.message, Rate { burst: 10.0, per_sec: 5.0 });
        assert_eq!(l.broadcast, Rate { burst: 5.0, per_sec: 1.0 });
        let l = config(&[("GROUP_RATE", "0.5"), ("GROUP_BURST", "3")]).unwrap().limits.unwrap();
        assert_eq!(l.group, Rate { burst: 3.0, per_sec: 0.5 });
        assert!(config(&[("RATE_LIMITS", "off")]).unwrap().limits.is_none());
        assert_eq!(config(&[("LINE_RATE", "0")]).unwrap_err().variable, "LINE_RATE");
        assert_eq!(config(&[("MESSAGE_BURST", "0.5")]).unwrap_err().variable, "MESSAGE_BURST");
        assert!((1..=4).contains(&config(&[]).unwrap().hash_workers));
    }

    #[test]
    fn tls_needs_both_files_and_plaintext_off_needs_tls() {
        assert!(config(&[]).unwrap().tls.is_none());
        let c = config(&[("TLS_CERT_FILE", "/c.pem"), ("TLS_KEY_FILE", "/k.pem"), ("PLAINTEXT", "off")]).unwrap();
        assert_eq!(c.tls.unwrap().port, 30443);
        assert!(!c.plaintext);
        assert_eq!(config(&[("TLS_CERT_FILE", "/c.pem")]).unwrap_err().variable, "TLS_KEY_FILE");
        assert_eq!(config(&[("PLAINTEXT", "off")]).unwrap_err().variable, "PLAINTEXT");
    }

    #[test]
    fn registration_and_sslmode_take_their_words() {
        assert_eq!(config(&[]).unwrap().registration, Registration::Open);
        assert_eq!(config(&[("REGISTRATION", "invite")]).unwrap().registration, Registration::Invite);
        let e = config(&[("REGISTRATION", "sometimes")]).unwrap_err();
        assert_eq!(e.to_string(), "REGISTRATION=\"sometimes\" is not valid: expected one of open, invite, closed");
        assert_eq!(config(&[]).unwrap().db.sslmode, SslMode::Prefer);
        assert_eq!(config(&[("DB_SSLMODE", "verify-full")]).unwrap().db.sslmode, SslMode::VerifyFull);
        assert_eq!(config(&[("DB_SSLMODE", "allow")]).unwrap_err().variable, "DB_SSLMODE");
    }

    #[test]
    fn legacy_password_upgrade_is_a_switch() {
        assert!(config(&[]).unwrap().upgrade_legacy_hashes);
        assert!(!config(&[("LEGACY_PASSWORD_UPGRADE", "off")]).unwrap().upgrade_legacy_hashes);
        assert!(config(&[("LEGACY_PASSWORD_UPGRADE", "ON")]).unwrap().upgrade_legacy_hashes);
        let e = config(&[("LEGACY_PASSWORD_UPGRADE", "maybe")]).unwrap_err();
        assert_eq!(e.to_string(), "LEGACY_PASSWORD_UPGRADE=\"maybe\" is not valid: expected on or off");
    }
}
