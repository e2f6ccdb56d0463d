//! Configuration: every environment variable chatp's binaries read, with
//! the original chatp names and defaults, built once into one typed config
//! per binary ([`ServerConfig`], [`AutoscalerConfig`]). Nothing else in the
//! crate calls `std::env::var`.

mod admin;
mod autoscaler;
mod bench;
mod dashboard;
mod server;

use std::fmt;

pub use admin::AdminConfig;
pub use autoscaler::{AutoscalerConfig, KubeTarget, Policy, AUTOSCALER_ENV_HELP, IN_CLUSTER_CA, IN_CLUSTER_TOKEN};
pub use bench::{BenchConfig, Scenario, BENCH_USAGE};
pub use dashboard::{DashboardConfig, Login, DASHBOARD_ENV_HELP};
pub use server::{
    default_hash_workers, DbConfig, RateLimits, Registration, ServerConfig, SslMode, TlsListen, WebListen,
    SERVER_ENV_HELP,
};

/// Redis connection (`REDIS_*`).
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `REDIS_HOST`, default `localhost`.
    pub host: String,
    /// `REDIS_PORT`, default 6379.
    pub port: u16,
    /// `REDIS_USERNAME`: the ACL user this component connects as (empty:
    /// the `default` user).
    pub username: Option<String>,
    /// `REDIS_PASSWORD`; empty means none.
    pub password: Option<String>,
    /// Prefix of every key and channel (`REDIS_KEY_PREFIX`, default empty),
    /// so several chatp deployments can share one Redis. Empty keeps the
    /// original key names (`online_users`).
    pub key_prefix: String,
    /// Connect with TLS (`REDIS_TLS`, default off), checking the
    /// certificate against `REDIS_CA_FILE` or the system's roots.
    pub tls: bool,
    /// `REDIS_CA_FILE`: PEM CA file for `REDIS_TLS`.
    pub ca_file: Option<std::path::PathBuf>,
    /// `REDIS_SENTINELS`: find the master through these sentinels
    /// (`REDIS_HOST`/`REDIS_PORT` are then not used).
    pub sentinel: Option<SentinelConfig>,
}

/// Redis Sentinel (`REDIS_SENTINELS`, `REDIS_MASTER_NAME`,
/// `REDIS_SENTINEL_USERNAME`, `REDIS_SENTINEL_PASSWORD`).
#[derive(Debug, Clone)]
pub struct SentinelConfig {
    pub sentinels: Vec<(String, u16)>,
    /// The master's name in the sentinels' configuration (default `mymaster`).
    pub master_name: String,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl SentinelConfig {
    fn from_lookup<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Option<Self>, ConfigError> {
        let Some(list) = env.0("REDIS_SENTINELS").filter(|v| !v.trim().is_empty()) else {
            return Ok(None);
        };
        let sentinels = parse_host_list(&list, 26379)
            .ok_or_else(|| ConfigError::new("REDIS_SENTINELS", &list, "host:port entries separated by commas"))?;
        Ok(Some(SentinelConfig {
            sentinels,
            master_name: env.string("REDIS_MASTER_NAME", "mymaster"),
            username: env.0("REDIS_SENTINEL_USERNAME").filter(|p| !p.is_empty()),
            password: env.0("REDIS_SENTINEL_PASSWORD").filter(|p| !p.is_empty()),
        }))
    }
}

impl RedisConfig {
    pub fn from_lookup<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(RedisConfig {
            host: env.string("REDIS_HOST", "localhost"),
            port: env.parsed("REDIS_PORT", 6379, "a port number")?,
            username: env.0("REDIS_USERNAME").filter(|p| !p.is_empty()),
            password: env.0("REDIS_PASSWORD").filter(|p| !p.is_empty()),
            key_prefix: env.string("REDIS_KEY_PREFIX", ""),
            tls: env.switch("REDIS_TLS", false)?,
            ca_file: env.0("REDIS_CA_FILE").filter(|v| !v.is_empty()).map(std::path::PathBuf::from),
            sentinel: SentinelConfig::from_lookup(env)?,
        })
    }
}

/// `host:port` entries separated by commas (`DB_HOST`, `REDIS_SENTINELS`),
/// `default_port` where an entry has none; IPv6 as `[::1]:5432`, `[::1]` or
/// a bare `::1`. `None` for a malformed entry or an empty list.
pub fn parse_host_list(value: &str, default_port: u16) -> Option<Vec<(String, u16)>> {
    let port = |p: &str| p.parse().ok().filter(|p| *p > 0);
    value
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|entry| {
            if let Some(rest) = entry.strip_prefix('[') {
                let (host, after) = rest.split_once(']')?;
                let p = match after {
                    "" => default_port,
                    _ => port(after.strip_prefix(':')?)?,
                };
                return (!host.is_empty()).then(|| (host.to_string(), p));
            }
            match entry.split(':').count() {
                1 => Some((entry.to_string(), default_port)),
                2 => {
                    let (host, p) = entry.split_once(':')?;
                    (!host.is_empty()).then_some(())?;
                    Some((host.to_string(), port(p)?))
                }
                _ => Some((entry.to_string(), default_port)), // a bare IPv6 address
            }
        })
        .collect::<Option<Vec<_>>>()
        .filter(|v| !v.is_empty())
}

/// The key that signs and checks messages on the admin channel
/// (`chat:admin`): `ADMIN_CHANNEL_KEY` when set, else derived from the
/// PostgreSQL credentials of chat_server and chat_admin, which are the only
/// components that hold them (and could change the accounts directly
/// anyway). Whoever has only the Redis password cannot forge one.
pub fn admin_channel_key<F: Fn(&str) -> Option<String>>(env: &Env<F>, db: &server::DbConfig) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    match env.0("ADMIN_CHANNEL_KEY").filter(|k| !k.is_empty()) {
        Some(key) => key.into_bytes(),
        None => {
            let mut h = Sha256::new();
            for part in ["chatp admin channel", &db.host, &db.name, &db.user, &db.password] {
                h.update(part.as_bytes());
                h.update([0]);
            }
            h.finalize().to_vec()
        }
    }
}

/// The Redis and log variables, as every binary's `--help` lists them
/// (a macro, so the help texts can be `concat!`ed constants).
macro_rules! shared_env_help {
    () => {
        "
  REDIS_HOST [localhost]  REDIS_PORT [6379]  REDIS_USERNAME [default]
  REDIS_PASSWORD [empty: none]
  REDIS_TLS [off]  REDIS_CA_FILE [system roots]  TLS to Redis, checked
  REDIS_SENTINELS [unset]  host:port,... of Redis sentinels: the master is
                           found through them (REDIS_HOST is not used)
  REDIS_MASTER_NAME [mymaster]  REDIS_SENTINEL_USERNAME, _PASSWORD [none]
  REDIS_KEY_PREFIX [empty]   prefix of every Redis key and channel; must be
                             the same for chat_server and chat_autoscaler
  LOG_LEVEL [info]   off, error, warn, info, debug"
    };
}
use shared_env_help;

/// A variable that is set but cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub variable: String,
    pub value: String,
    /// What would be valid, e.g. "a port number".
    pub expected: String,
}

impl ConfigError {
    pub fn new(variable: &str, value: &str, expected: &str) -> Self {
        ConfigError { variable: variable.into(), value: value.into(), expected: expected.into() }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={:?} is not valid: expected {}", self.variable, self.value, self.expected)
    }
}

impl std::error::Error for ConfigError {}

/// Reads variables through a lookup function, so tests need no process env.
pub struct Env<F: Fn(&str) -> Option<String>>(pub F);

impl<F: Fn(&str) -> Option<String>> Env<F> {
    fn string(&self, name: &str, default: &str) -> String {
        self.0(name).filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_string())
    }

    fn parsed<T: std::str::FromStr>(&self, name: &str, default: T, expected: &str) -> Result<T, ConfigError> {
        match self.0(name).filter(|v| !v.is_empty()) {
            None => Ok(default),
            Some(v) => v.trim().parse().map_err(|_| ConfigError::new(name, &v, expected)),
        }
    }

    fn log_level(&self) -> Result<log::LevelFilter, ConfigError> {
        let level = self.string("LOG_LEVEL", "info");
        level.parse().map_err(|_| ConfigError::new("LOG_LEVEL", &level, "one of off, error, warn, info, debug, trace"))
    }

    /// `on`/`off` (also `true`/`false`, `1`/`0`, `yes`/`no`).
    fn switch(&self, name: &str, default: bool) -> Result<bool, ConfigError> {
        match self.0(name).filter(|v| !v.is_empty()) {
            None => Ok(default),
            Some(v) => match v.trim().to_ascii_lowercase().as_str() {
                "on" | "true" | "1" | "yes" => Ok(true),
                "off" | "false" | "0" | "no" => Ok(false),
                _ => Err(ConfigError::new(name, &v, "on or off")),
            },
        }
    }

    /// `<KIND>_BURST` (whole lines, at least 1) and `<KIND>_RATE` (lines per
    /// second, above 0).
    fn rate(&self, kind: &str, burst: f64, per_sec: f64) -> Result<crate::rate_limit::Rate, ConfigError> {
        let burst_var = format!("{kind}_BURST");
        let burst = self.positive(&burst_var, burst as u64)? as f64;
        let rate_var = format!("{kind}_RATE");
        let per_sec = self.parsed(&rate_var, per_sec, "a number of lines per second above 0")?;
        if !(per_sec > 0.0 && per_sec.is_finite()) {
            return Err(ConfigError::new(&rate_var, &per_sec.to_string(), "a number of lines per second above 0"));
        }
        Ok(crate::rate_limit::Rate { burst, per_sec })
    }

    /// `METRICS_PORT`: a port (0 picks a free one), `off` for none; 9090.
    fn metrics_port(&self) -> Result<Option<u16>, ConfigError> {
        match self.0("METRICS_PORT").filter(|v| !v.is_empty()).as_deref() {
            Some("off") => Ok(None),
            _ => Ok(Some(self.parsed("METRICS_PORT", 9090, "a port number or off")?)),
        }
    }

    /// One of a fixed set of words (case-insensitive).
    fn choice<T: Copy>(&self, name: &str, default: T, words: &[(&str, T)]) -> Result<T, ConfigError> {
        let Some(v) = self.0(name).filter(|v| !v.is_empty()) else { return Ok(default) };
        let wanted = v.trim().to_ascii_lowercase();
        words.iter().find(|(w, _)| *w == wanted).map(|(_, t)| *t).ok_or_else(|| {
            let names: Vec<&str> = words.iter().map(|(w, _)| *w).collect();
            ConfigError::new(name, &v, &format!("one of {}", names.join(", ")))
        })
    }

    fn positive(&self, name: &str, default: u64) -> Result<u64, ConfigError> {
        let expected = "a whole number greater than 0";
        let v = self.parsed(name, default, expected)?;
        if v == 0 {
            return Err(ConfigError::new(name, "0", expected));
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::parse_host_list;

    #[test]
    fn host_lists_parse_with_the_default_port() {
        assert_eq!(
            parse_host_list("a:1, b ,c:26380", 26379),
            Some(vec![("a".into(), 1), ("b".into(), 26379), ("c".into(), 26380)])
        );
        assert_eq!(parse_host_list("", 1), None);
        assert_eq!(parse_host_list("a:x", 1), None);
        assert_eq!(parse_host_list("a:0", 1), None);
        assert_eq!(parse_host_list(":5", 1), None);
        assert_eq!(parse_host_list("::1", 5432), Some(vec![("::1".into(), 5432)]));
        assert_eq!(
            parse_host_list("[::1]:6000,[fe80::2]", 5432),
            Some(vec![("::1".into(), 6000), ("fe80::2".into(), 5432)])
        );
        assert_eq!(parse_host_list("[::1", 1), None);
        assert_eq!(parse_host_list("[::1]x", 1), None);
    }
}
