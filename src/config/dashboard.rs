//! `chat_dashboard`'s configuration: the stores' variables as chat_server
//! reads them, and the Kubernetes API as chat_autoscaler does (optional:
//! without it the dashboard shows what Redis and PostgreSQL know).

use std::time::Duration;

use super::{ConfigError, DbConfig, Env, KubeTarget, RedisConfig};

#[derive(Debug, Clone)]
pub struct DashboardConfig {
    pub db: DbConfig,
    pub redis: RedisConfig,
    /// `None` outside a cluster without `KUBE_API_URL`.
    pub kube: Option<KubeTarget>,
    /// `NAMESPACE` (chat-app) and `DEPLOYMENT_NAME` (chat-server): the chat
    /// Deployment, as the autoscaler names it.
    pub namespace: String,
    pub deployment: String,
    /// `BIND_ADDR` (0.0.0.0) and `DASHBOARD_PORT` (8080; 0 picks one).
    pub bind_addr: String,
    pub port: u16,
    /// Time between two samples (`SAMPLE_SECS`, 5).
    pub sample_every: Duration,
    /// Samples kept for the charts (`HISTORY_SAMPLES`, 120: ten minutes).
    pub history: usize,
    pub log_level: log::LevelFilter,
}

pub const DASHBOARD_ENV_HELP: &str = "\
Environment (defaults in brackets): the DB_* and REDIS_* variables of
chat_server, and
  NAMESPACE [chat-app]  DEPLOYMENT_NAME [chat-server]   the chat Deployment
  KUBE_API_URL, KUBE_TOKEN_FILE, KUBE_CA_FILE   as chat_autoscaler; in a
      cluster the ServiceAccount's; unset outside one: no Kubernetes parts
  BIND_ADDR [0.0.0.0]  DASHBOARD_PORT [8080]
  SAMPLE_SECS [5]  HISTORY_SAMPLES [120]  LOG_LEVEL [info]";

impl DashboardConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&Env(|name: &str| std::env::var(name).ok()))
    }

    pub fn from_lookup<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let configured = |n: &str| env.0(n).is_some_and(|v| !v.is_empty());
        let kube = if configured("KUBE_API_URL") || configured("KUBERNETES_SERVICE_HOST") {
            Some(KubeTarget::from_lookup(env)?)
        } else {
            None
        };
        Ok(DashboardConfig {
            db: DbConfig::from_lookup(env)?,
            redis: RedisConfig::from_lookup(env)?,
            kube,
            namespace: env.string("NAMESPACE", "chat-app"),
            deployment: env.string("DEPLOYMENT_NAME", "chat-server"),
            bind_addr: env.string("BIND_ADDR", "0.0.0.0"),
            port: env.parsed("DASHBOARD_PORT", 8080, "a port number")?,
            sample_every: Duration::from_secs(env.positive("SAMPLE_SECS", 5)?),
            history: env.positive("HISTORY_SAMPLES", 120)? as usize,
            log_level: env.log_level()?,
        })
    }
}
