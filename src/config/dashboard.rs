//! `chat_dashboard`'s configuration: the stores' variables as chat_server
//! reads them, and the Kubernetes API as chat_autoscaler does (optional:
//! without it the dashboard shows what Redis and PostgreSQL know), and
//! who may see it: the login and the host names it answers to.

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
    /// `BIND_ADDR`: 0.0.0.0 in a Kubernetes pod (`KUBERNETES_SERVICE_HOST`
    /// set), 127.0.0.1 elsewhere; and `DASHBOARD_PORT` (8080; 0 picks one).
    pub bind_addr: String,
    pub port: u16,
    /// Time between two samples (`SAMPLE_SECS`, 5).
    pub sample_every: Duration,
    /// Samples kept for the charts (`HISTORY_SAMPLES`, 120: ten minutes).
    pub history: usize,
    /// `DASHBOARD_PASSWORD` (unset: no login) and `DASHBOARD_USER`
    /// (admin): HTTP basic auth, or the password as a bearer token.
    pub login: Option<Login>,
    /// Host names the dashboard answers to besides `localhost`
    /// (`DASHBOARD_ALLOWED_HOSTS`, comma-separated, empty); IP literals are
    /// always accepted. Lower case, without a trailing dot.
    pub allowed_hosts: Vec<String>,
    /// Whether the page and `/api/status` list the users online by name
    /// (`DASHBOARD_USER_NAMES`, on or off). By default on, but off when
    /// the dashboard has no login and listens beyond loopback: who can
    /// reach it there is not known, and names are personal data.
    pub user_names: bool,
    pub log_level: log::LevelFilter,
}

/// The dashboard's credentials. `Debug` does not show the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Login {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login").field("user", &self.user).field("password", &"<redacted>").finish()
    }
}

pub const DASHBOARD_ENV_HELP: &str = "\
Environment (defaults in brackets): the DB_* and REDIS_* variables of
chat_server, and
  NAMESPACE [chat-app]  DEPLOYMENT_NAME [chat-server]   the chat Deployment
  KUBE_API_URL, KUBE_TOKEN_FILE, KUBE_CA_FILE   as chat_autoscaler; in a
      cluster the ServiceAccount's; unset outside one: no Kubernetes parts
  BIND_ADDR [in a Kubernetes pod 0.0.0.0, elsewhere 127.0.0.1]
  DASHBOARD_PORT [8080]
  DASHBOARD_PASSWORD [unset: no login]   require HTTP basic auth (user
      DASHBOARD_USER [admin]) or `Authorization: Bearer <password>`;
      /healthz stays open
  DASHBOARD_ALLOWED_HOSTS [empty]   host names (comma-separated) accepted
      in the Host header besides localhost; IP addresses always are
  DASHBOARD_USER_NAMES [on; off without a login beyond loopback]   list
      the users online by name
  SAMPLE_SECS [5]  HISTORY_SAMPLES [120]  LOG_LEVEL [info]";

impl DashboardConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&Env(|name: &str| std::env::var(name).ok()))
    }

    pub fn from_lookup<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let configured = |n: &str| env.0(n).is_some_and(|v| !v.is_empty());
        let in_pod = configured("KUBERNETES_SERVICE_HOST");
        let kube = if configured("KUBE_API_URL") || in_pod { Some(KubeTarget::from_lookup(env)?) } else { None };
        let bind_addr = env.string("BIND_ADDR", if in_pod { "0.0.0.0" } else { "127.0.0.1" });
        let login = env.0("DASHBOARD_PASSWORD")
            .filter(|p| !p.is_empty())
            .map(|password| Login { user: env.string("DASHBOARD_USER", "admin"), password });
        let loopback =
            bind_addr == "localhost" || bind_addr.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
        Ok(DashboardConfig {
            db: DbConfig::from_lookup(env)?,
            redis: RedisConfig::from_lookup(env)?,
            kube,
            namespace: env.string("NAMESPACE", "chat-app"),
            deployment: env.string("DEPLOYMENT_NAME", "chat-server"),
            // Outside a pod nothing in front of it decides who reaches it.
            bind_addr,
            port: env.parsed("DASHBOARD_PORT", 8080, "a port number")?,
            sample_every: Duration::from_secs(env.positive("SAMPLE_SECS", 5)?),
            history: env.positive("HISTORY_SAMPLES", 120)? as usize,
            user_names: env.switch("DASHBOARD_USER_NAMES", login.is_some() || loopback)?,
            login,
            allowed_hosts: env
                .string("DASHBOARD_ALLOWED_HOSTS", "")
                .split(',')
                .map(|h| h.trim().trim_end_matches('.').to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect(),
            log_level: env.log_level()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> DashboardConfig {
        let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let env = Env(move |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()));
        DashboardConfig::from_lookup(&env).unwrap()
    }

    #[test]
    fn loopback_and_no_login_by_default_outside_a_pod() {
        let c = config(&[]);
        assert_eq!((c.bind_addr.as_str(), c.login.is_none(), c.allowed_hosts.len()), ("127.0.0.1", true, 0));
        let pod = config(&[("KUBERNETES_SERVICE_HOST", "10.96.0.1")]);
        assert_eq!(pod.bind_addr, "0.0.0.0");
        assert_eq!(config(&[("BIND_ADDR", "0.0.0.0")]).bind_addr, "0.0.0.0");
    }

    #[test]
    fn login_and_hosts_from_the_env() {
        let c = config(&[
            ("DASHBOARD_PASSWORD", "s3cret"),
            ("DASHBOARD_ALLOWED_HOSTS", " Dash.Example.org. ,,chat-dashboard "),
        ]);
        assert_eq!(c.login, Some(Login { user: "admin".into(), password: "s3cret".into() }));
        assert!(!format!("{c:?}").contains("s3cret"), "the password stays out of logs");
        assert_eq!(c.allowed_hosts, ["dash.example.org", "chat-dashboard"]);
        let c = config(&[("DASHBOARD_PASSWORD", "p"), ("DASHBOARD_USER", "ops")]);
        assert_eq!(c.login.unwrap().user, "ops");
    }

    #[test]
    fn names_of_users_hidden_by_default_only_without_a_login_beyond_loopback() {
        assert!(config(&[]).user_names, "loopback");
        assert!(config(&[("BIND_ADDR", "::1")]).user_names);
        assert!(!config(&[("BIND_ADDR", "0.0.0.0")]).user_names, "no login, reachable from elsewhere");
        assert!(!config(&[("KUBERNETES_SERVICE_HOST", "10.96.0.1")]).user_names);
        assert!(config(&[("BIND_ADDR", "0.0.0.0"), ("DASHBOARD_PASSWORD", "p")]).user_names, "a login");
        assert!(config(&[("BIND_ADDR", "0.0.0.0"), ("DASHBOARD_USER_NAMES", "on")]).user_names);
        assert!(!config(&[("DASHBOARD_PASSWORD", "p"), ("DASHBOARD_USER_NAMES", "off")]).user_names);
    }
}
