//! One look at the deployment: presence and the autoscaler's report from
//! Redis, counts from PostgreSQL, the Deployment and its pods from the
//! Kubernetes API. A source that fails leaves its part empty and says why
//! in `health`; the others still show.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::autoscaler::kube_api::{DeploymentRef, DeploymentStatus, KubeApi, PodStatus};
use crate::autoscaler::report::{self, TickReport};
use crate::config::DashboardConfig;
use crate::db_manager::{DbManager, Totals};
use crate::presence::OnlineCounter;
use crate::redis_store::{Keys, RedisConnector};

/// Whether a part answers, and what it said.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Check {
    pub healthy: bool,
    pub detail: String,
}

impl Check {
    fn ok(detail: impl Into<String>) -> Check {
        Check { healthy: true, detail: detail.into() }
    }
    fn failed(detail: impl Into<String>) -> Check {
        Check { healthy: false, detail: detail.into() }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Health {
    pub redis: Check,
    pub postgresql: Check,
    pub autoscaler: Check,
    pub kubernetes: Check,
}

/// A chat pod: from the Kubernetes API when it answers, else from presence
/// (`phase` "unknown").
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PodView {
    #[serde(flatten)]
    pub pod: PodStatus,
    /// Live sessions on it, from presence.
    pub sessions: Option<u64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AutoscalerView {
    /// Its last tick (gone after three missed ticks).
    pub last: Option<TickReport>,
    /// Recent replica changes, newest first.
    pub events: Vec<TickReport>,
}

/// Everything one sample saw.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Snapshot {
    /// Unix seconds.
    pub at: u64,
    pub online_users: Option<usize>,
    /// The users online by name, sorted; `None` when Redis failed or
    /// `DASHBOARD_USER_NAMES` is off (then `user_names_shown` is false).
    pub online_user_names: Option<Vec<String>>,
    pub user_names_shown: bool,
    pub registered_users: Option<i64>,
    pub total_messages: Option<i64>,
    pub totals: Option<Totals>,
    /// Stored messages per second since the previous sample.
    pub messages_per_second: Option<f64>,
    pub deployment: Option<DeploymentStatus>,
    pub pods: Vec<PodView>,
    pub autoscaler: AutoscalerView,
    pub health: Health,
}

/// The sources, connected lazily and again after failures.
pub struct Sources {
    db_config: crate::config::DbConfig,
    db: Option<DbManager>,
    counter: OnlineCounter,
    kube: Option<Result<KubeApi, String>>,
    previous: Option<(u64, i64)>,
    user_names: bool,
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Sources {
    pub fn new(cfg: &DashboardConfig) -> Result<Sources, String> {
        let connector = RedisConnector::new(&cfg.redis).map_err(|e| e.to_string())?;
        let kube = cfg.kube.as_ref().map(|k| {
            KubeApi::new(k, DeploymentRef { namespace: cfg.namespace.clone(), name: cfg.deployment.clone() })
                .map_err(|e| e.to_string())
        });
        Ok(Sources {
            db_config: cfg.db.clone(),
            db: None,
            counter: OnlineCounter::new(connector, Keys::new(&cfg.redis.key_prefix)),
            kube,
            previous: None,
            user_names: cfg.user_names,
        })
    }

    /// Whether a Kubernetes API is configured (in a cluster, or
    /// `KUBE_API_URL`).
    pub fn kube_configured(&self) -> bool {
        self.kube.is_some()
    }

    /// Takes one sample.
    pub fn sample(&mut self) -> Snapshot {
        let at = now_secs();
        let online = self.counter.count();
        let sessions = self.counter.sessions_per_pod();
        let reports = self.counter.with_conn(report::read);
        let names = if self.user_names { Some(self.counter.online_names()) } else { None };
        let names_failed = names.as_ref().and_then(|n| n.as_ref().err());
        let redis = match (&online, &sessions, &reports, names_failed) {
            (Ok(n), Ok(pods), Ok(_), None) => Check::ok(format!("{n} users online on {} pods", pods.len())),
            (Err(e), _, _, _) | (_, Err(e), _, _) | (_, _, Err(e), _) | (_, _, _, Some(e)) => {
                Check::failed(e.to_string())
            }
        };
        let totals = self.totals();
        let postgresql = match &totals {
            Ok(t) => Check::ok(format!("{} users, {} messages", t.registered_users, t.messages)),
            Err(e) => Check::failed(e.clone()),
        };
        let messages_per_second = totals.as_ref().ok().and_then(|t| {
            let rate = self
                .previous
                .filter(|(t0, _)| at > *t0)
                .map(|(t0, m0)| (t.message_ids - m0).max(0) as f64 / (at - t0) as f64);
            self.previous = Some((at, t.message_ids));
            rate
        });
        let (last, events) = reports.unwrap_or((None, Vec::new()));
        let autoscaler = match &last {
            Some(r) if r.ok => Check::ok(format!("{}s ago: {}", at.saturating_sub(r.at), r.line)),
            Some(r) => Check::failed(format!("{}s ago: {}", at.saturating_sub(r.at), r.line)),
            None => Check::failed("no report in the last three ticks (not running, or not deployed)"),
        };
        let sessions = sessions.unwrap_or_default();
        let (deployment, kube_pods, kubernetes) = self.kubernetes();
        let session_count = |pod: &str| sessions.iter().find(|(p, _)| p == pod).map(|(_, n)| *n);
        let pods = match kube_pods {
            Some(pods) => pods.into_iter().map(|p| PodView { sessions: session_count(&p.name), pod: p }).collect(),
            // Without the API: the pods presence knows (those with a heartbeat).
            None => sessions
                .iter()
                .map(|(name, n)| PodView {
                    pod: PodStatus {
                        name: name.clone(),
                        phase: "unknown".into(),
                        ready: true,
                        restarts: 0,
                        created: String::new(),
                        node: String::new(),
                        ip: String::new(),
                    },
                    sessions: Some(*n),
                })
                .collect(),
        };
        Snapshot {
            at,
            online_users: online.ok(),
            online_user_names: names.and_then(Result::ok),
            user_names_shown: self.user_names,
            registered_users: totals.as_ref().ok().map(|t| t.registered_users),
            total_messages: totals.as_ref().ok().map(|t| t.messages),
            totals: totals.ok(),
            messages_per_second,
            deployment,
            pods,
            autoscaler: AutoscalerView { last, events },
            health: Health { redis, postgresql, autoscaler, kubernetes },
        }
    }

    fn totals(&mut self) -> Result<Totals, String> {
        if self.db.is_none() {
            self.db = Some(DbManager::connect(&self.db_config, "chat_dashboard").map_err(|e| e.to_string())?);
        }
        let db = self.db.as_ref().expect("connected above");
        db.totals().map_err(|e| e.to_string())
    }

    fn kubernetes(&self) -> (Option<DeploymentStatus>, Option<Vec<PodStatus>>, Check) {
        let api = match &self.kube {
            None => {
                let why = "not configured (outside a cluster, no KUBE_API_URL): pods shown from presence";
                return (None, None, Check::failed(why));
            }
            Some(Err(e)) => return (None, None, Check::failed(e.clone())),
            Some(Ok(api)) => api,
        };
        let deployment = match api.deployment_status() {
            Ok(d) => d,
            Err(e) => return (None, None, Check::failed(format!("not reachable: {e}"))),
        };
        match api.pods(&deployment.selector) {
            Ok(pods) => {
                let detail = format!("{} of {} replicas ready", deployment.ready, deployment.desired);
                (Some(deployment), Some(pods), Check::ok(detail))
            }
            Err(e) => (Some(deployment), None, Check::failed(e)),
        }
    }
}
