//! `chat_autoscaler`'s configuration: the original variable names and
//! defaults, checked at start (a bad value stops it with one line).

use std::path::PathBuf;
use std::time::Duration;

use super::{shared_env_help, ConfigError, Env, RedisConfig};

/// The bounds and pace of scaling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Fewest pods (`MIN_REPLICAS`, default 1, at least 1).
    pub min_replicas: u32,
    /// Most pods (`MAX_REPLICAS`, default 10, at least `min_replicas`).
    pub max_replicas: u32,
    /// Users one pod is for (`USERS_PER_POD`, default 3, at least 1).
    pub users_per_pod: u32,
    /// Stabilization window for scaling down (`SCALE_DOWN_DELAY`, default
    /// 60 s; 0 scales down at once).
    pub scale_down_delay: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy { min_replicas: 1, max_replicas: 10, users_per_pod: 3, scale_down_delay: Duration::from_secs(60) }
    }
}

/// The ServiceAccount token a pod gets mounted.
pub const IN_CLUSTER_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";
/// The cluster CA a pod gets mounted.
pub const IN_CLUSTER_CA: &str = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";

/// Everything `chat_autoscaler` needs to start.
#[derive(Debug, Clone)]
pub struct AutoscalerConfig {
    /// Where the server's presence lives; `REDIS_KEY_PREFIX` must match the
    /// server's.
    pub redis: RedisConfig,
    /// Namespace of the Deployment (`NAMESPACE`, default `chat-app`).
    pub namespace: String,
    /// The Deployment to scale (`DEPLOYMENT_NAME`, default `chat-server`).
    pub deployment: String,
    /// Bounds and pace (`MIN_REPLICAS`, `MAX_REPLICAS`, `USERS_PER_POD`,
    /// `SCALE_DOWN_DELAY`).
    pub policy: Policy,
    /// Time between ticks (`CHECK_INTERVAL` seconds, default 10).
    pub check_interval: Duration,
    /// The Kubernetes API and its credentials.
    pub kube: KubeTarget,
    /// Port of `/healthz` and `/metrics` (`METRICS_PORT`, default 9090;
    /// `off` for none).
    pub metrics_port: Option<u16>,
    /// `LOG_LEVEL`, default info.
    pub log_level: log::LevelFilter,
}

/// Where the Kubernetes API is and how to authenticate to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeTarget {
    /// `KUBE_API_URL`; in a cluster (no `KUBE_API_URL`):
    /// `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`.
    pub url: String,
    /// `KUBE_TOKEN_FILE`; in a cluster the ServiceAccount token. None: no
    /// `Authorization` header (`kubectl proxy` adds its own).
    pub token_file: Option<PathBuf>,
    /// `KUBE_CA_FILE`; in a cluster the ServiceAccount's `ca.crt`. None:
    /// the Mozilla roots.
    pub ca_file: Option<PathBuf>,
}

/// The variables `chat_autoscaler --help` lists, with their defaults.
pub const AUTOSCALER_ENV_HELP: &str = concat!(
    "\
Environment (defaults in brackets):
  NAMESPACE [chat-app]   DEPLOYMENT_NAME [chat-server]
  MIN_REPLICAS [1]  MAX_REPLICAS [10]  USERS_PER_POD [3]
  CHECK_INTERVAL [10]    seconds between two looks at the user count
  SCALE_DOWN_DELAY [60]  seconds a lower count must last before pods go
  KUBE_API_URL [in a cluster: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT]
                 e.g. http://127.0.0.1:8001 behind `kubectl proxy`
  KUBE_TOKEN_FILE [in a cluster: the ServiceAccount token; else none]
  KUBE_CA_FILE [in a cluster: the ServiceAccount ca.crt; else public roots]
  METRICS_PORT [9090]  /healthz, /readyz, /metrics (0: any free port; off)",
    shared_env_help!()
);

impl AutoscalerConfig {
    /// Builds the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&Env(|name| std::env::var(name).ok()))
    }

    pub fn from_lookup<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let min_replicas = env.positive("MIN_REPLICAS", 1)?;
        let max_replicas = env.positive("MAX_REPLICAS", 10)?;
        if min_replicas > max_replicas {
            let expected = format!("at most MAX_REPLICAS ({max_replicas})");
            return Err(ConfigError::new("MIN_REPLICAS", &min_replicas.to_string(), &expected));
        }
        let policy = Policy {
            min_replicas: to_u32("MIN_REPLICAS", min_replicas)?,
            max_replicas: to_u32("MAX_REPLICAS", max_replicas)?,
            users_per_pod: to_u32("USERS_PER_POD", env.positive("USERS_PER_POD", 3)?)?,
            scale_down_delay: Duration::from_secs(env.parsed("SCALE_DOWN_DELAY", 60, "a whole number of seconds")?),
        };
        Ok(AutoscalerConfig {
            redis: RedisConfig::from_lookup(env)?,
            namespace: dns_name(env, "NAMESPACE", "chat-app", 63, "a namespace name (a-z, 0-9, '-')")?,
            deployment: dns_name(env, "DEPLOYMENT_NAME", "chat-server", 253, "a deployment name (a-z, 0-9, '-', '.')")?,
            policy,
            check_interval: Duration::from_secs(env.positive("CHECK_INTERVAL", 10)?),
            kube: KubeTarget::from_lookup(env)?,
            metrics_port: env.metrics_port()?,
            log_level: env.log_level()?,
        })
    }
}

impl KubeTarget {
    pub(super) fn from_lookup<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let path = |name: &str| env.0(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        if let Some(url) = env.0("KUBE_API_URL").filter(|v| !v.is_empty()) {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ConfigError::new("KUBE_API_URL", &url, "an http:// or https:// URL"));
            }
            return Ok(KubeTarget { url, token_file: path("KUBE_TOKEN_FILE"), ca_file: path("KUBE_CA_FILE") });
        }
        let Some(host) = env.0("KUBERNETES_SERVICE_HOST").filter(|v| !v.is_empty()) else {
            return Err(ConfigError::new(
                "KUBE_API_URL",
                "",
                "the API server's URL outside a cluster (e.g. http://127.0.0.1:8001 behind `kubectl proxy`)",
            ));
        };
        let port: u16 = env.parsed("KUBERNETES_SERVICE_PORT", 443, "a port number")?;
        let host = if host.contains(':') { format!("[{host}]") } else { host };
        Ok(KubeTarget {
            url: format!("https://{host}:{port}"),
            token_file: Some(path("KUBE_TOKEN_FILE").unwrap_or_else(|| IN_CLUSTER_TOKEN.into())),
            ca_file: Some(path("KUBE_CA_FILE").unwrap_or_else(|| IN_CLUSTER_CA.into())),
        })
    }
}

fn to_u32(name: &str, v: u64) -> Result<u32, ConfigError> {
    u32::try_from(v).map_err(|_| ConfigError::new(name, &v.to_string(), "a smaller number"))
}

/// A Kubernetes object name (RFC 1123): lowercase letters, digits, '-'
/// (and '.' where `max` allows a subdomain), starting and ending with a
/// letter or digit. Checked because it goes into the API path.
fn dns_name<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
    name: &str,
    default: &str,
    max: usize,
    expected: &str,
) -> Result<String, ConfigError> {
    let v = env.string(name, default);
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (c == '.' && max > 63);
    let edges_ok =
        v.starts_with(|c: char| c.is_ascii_alphanumeric()) && v.ends_with(|c: char| c.is_ascii_alphanumeric());
    if v.len() > max || !edges_ok || !v.chars().all(allowed) {
        return Err(ConfigError::new(name, &v, expected));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<AutoscalerConfig, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        AutoscalerConfig::from_lookup(&Env(move |k| map.get(k).cloned()))
    }

    const IN_CLUSTER: [(&str, &str); 2] =
        [("KUBERNETES_SERVICE_HOST", "10.96.0.1"), ("KUBERNETES_SERVICE_PORT", "443")];

    #[test]
    fn defaults_are_the_original_ones() {
        let c = config(&IN_CLUSTER).unwrap();
        assert_eq!((c.namespace.as_str(), c.deployment.as_str()), ("chat-app", "chat-server"));
        assert_eq!(c.policy, Policy::default());
        assert_eq!(c.policy.scale_down_delay, Duration::from_secs(60));
        assert_eq!(c.check_interval, Duration::from_secs(10));
        assert_eq!((c.redis.host.as_str(), c.redis.port), ("localhost", 6379));
        assert_eq!(
            c.kube,
            KubeTarget {
                url: "https://10.96.0.1:443".into(),
                token_file: Some(IN_CLUSTER_TOKEN.into()),
                ca_file: Some(IN_CLUSTER_CA.into()),
            }
        );
    }

    #[test]
    fn outside_a_cluster_kube_api_url_is_used_as_given() {
        let c = config(&[("KUBE_API_URL", "http://127.0.0.1:8001")]).unwrap();
        assert_eq!(c.kube, KubeTarget { url: "http://127.0.0.1:8001".into(), token_file: None, ca_file: None });
        let c = config(&[("KUBERNETES_SERVICE_HOST", "fd00::1"), ("KUBERNETES_SERVICE_PORT", "6443")]).unwrap();
        assert_eq!(c.kube.url, "https://[fd00::1]:6443");
        assert_eq!(config(&[]).unwrap_err().variable, "KUBE_API_URL");
    }

    #[test]
    fn bad_values_name_the_variable() {
        let bad = |vars: &[(&str, &str)]| {
            let all: Vec<(&str, &str)> = IN_CLUSTER.iter().chain(vars).copied().collect();
            config(&all).unwrap_err().to_string()
        };
        assert_eq!(
            bad(&[("MIN_REPLICAS", "5"), ("MAX_REPLICAS", "2")]),
            "MIN_REPLICAS=\"5\" is not valid: expected at most MAX_REPLICAS (2)"
        );
        assert_eq!(
            bad(&[("USERS_PER_POD", "0")]),
            "USERS_PER_POD=\"0\" is not valid: expected a whole number greater than 0"
        );
        assert!(bad(&[("CHECK_INTERVAL", "ten")]).starts_with("CHECK_INTERVAL=\"ten\""));
        assert!(bad(&[("SCALE_DOWN_DELAY", "-1")]).starts_with("SCALE_DOWN_DELAY="));
        assert!(bad(&[("MIN_REPLICAS", "0")]).starts_with("MIN_REPLICAS="));
        assert!(bad(&[("NAMESPACE", "../kube-system")]).starts_with("NAMESPACE="));
        assert!(bad(&[("DEPLOYMENT_NAME", "Chat")]).starts_with("DEPLOYMENT_NAME="));
        assert!(bad(&[("KUBE_API_URL", "127.0.0.1:8001")]).starts_with("KUBE_API_URL="));
        assert_eq!(
            config(&[("KUBE_API_URL", "http://x"), ("SCALE_DOWN_DELAY", "0")]).unwrap().policy.scale_down_delay,
            Duration::ZERO
        );
    }
}
