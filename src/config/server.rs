//! `chat_server`'s configuration.

use std::time::Duration;

use super::{shared_env_help, ConfigError, Env, RedisConfig};

/// Everything `chat_server` needs to start.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// TCP port to listen on (argument `<port>`; 0 picks a free one).
    pub port: u16,
    /// Address to bind (`BIND_ADDR`, default `0.0.0.0`).
    pub bind_addr: String,
    pub db: DbConfig,
    pub redis: RedisConfig,
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
    /// Password hashes computed at once (`HASH_WORKERS`, default: cores).
    /// Each Argon2id hash holds 19 MiB while it runs.
    pub hash_workers: usize,
    /// Replace a legacy (Python chatp) SHA-256 password hash by Argon2id
    /// at that user's first successful login (`LEGACY_PASSWORD_UPGRADE`,
    /// `on` by default). `off` keeps the database usable by the Python
    /// server for a rollback, at the cost of keeping weak hashes.
    pub upgrade_legacy_hashes: bool,
    /// Log level (`LOG_LEVEL`: error, warn, info, debug; default info).
    pub log_level: log::LevelFilter,
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
}

/// The variables `chat_server --help` lists, with their defaults.
pub const SERVER_ENV_HELP: &str = concat!(
    "\
Environment (defaults in brackets):
  DB_HOST [localhost]  DB_PORT [5432]  DB_NAME [chatdb]
  DB_USER [chatuser]   DB_PASS [chatpass]   DB_POOL_SIZE [16]
  HOSTNAME [chat-server-<pid>]  this pod's id, unique per server process
  BIND_ADDR [0.0.0.0]  MAX_CONNECTIONS [10000]  OUTBOUND_QUEUE [256]
  PRESENCE_TTL_SECS [15]  HASH_WORKERS [cores]
  LEGACY_PASSWORD_UPGRADE [on]  off keeps Python chatp's SHA-256 hashes",
    shared_env_help!()
);

impl ServerConfig {
    /// Builds the configuration from the process environment.
    pub fn from_env(port: u16) -> Result<Self, ConfigError> {
        Self::from_lookup(port, &Env(|name| std::env::var(name).ok()))
    }

    pub fn from_lookup<F: Fn(&str) -> Option<String>>(port: u16, env: &Env<F>) -> Result<Self, ConfigError> {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(ServerConfig {
            port,
            bind_addr: env.string("BIND_ADDR", "0.0.0.0"),
            db: DbConfig {
                host: env.string("DB_HOST", "localhost"),
                port: env.parsed("DB_PORT", 5432, "a port number")?,
                name: env.string("DB_NAME", "chatdb"),
                user: env.string("DB_USER", "chatuser"),
                password: env.0("DB_PASS").unwrap_or_else(|| "chatpass".into()),
                pool_size: env.positive("DB_POOL_SIZE", 16)? as u32,
            },
            redis: RedisConfig::from_lookup(env)?,
            pod_id: env.string("HOSTNAME", &format!("chat-server-{}", std::process::id())),
            max_connections: env.positive("MAX_CONNECTIONS", 10_000)? as usize,
            outbound_queue: env.positive("OUTBOUND_QUEUE", 256)? as usize,
            presence_ttl: Duration::from_secs(env.positive("PRESENCE_TTL_SECS", 15)?),
            hash_workers: env.positive("HASH_WORKERS", cores as u64)? as usize,
            upgrade_legacy_hashes: env.switch("LEGACY_PASSWORD_UPGRADE", true)?,
            log_level: env.log_level()?,
        })
    }
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
    fn legacy_password_upgrade_is_a_switch() {
        assert!(config(&[]).unwrap().upgrade_legacy_hashes);
        assert!(!config(&[("LEGACY_PASSWORD_UPGRADE", "off")]).unwrap().upgrade_legacy_hashes);
        assert!(config(&[("LEGACY_PASSWORD_UPGRADE", "ON")]).unwrap().upgrade_legacy_hashes);
        let e = config(&[("LEGACY_PASSWORD_UPGRADE", "maybe")]).unwrap_err();
        assert_eq!(e.to_string(), "LEGACY_PASSWORD_UPGRADE=\"maybe\" is not valid: expected on or off");
    }
}
