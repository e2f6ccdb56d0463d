//! `chat_autoscaler`: keeps one chat pod per few online users. Each tick
//! is fetch (users online from Redis presence, replicas from the Kubernetes
//! API), decide ([`policy`], pure), apply (PATCH the scale when it changes),
//! and one log line.

pub mod kube_api;
mod policy;
pub mod report;

use std::fmt;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use crate::config::AutoscalerConfig;
use crate::presence::OnlineCounter;
use crate::redis_store::{Keys, RedisConnector, RedisError};
use kube_api::{DeploymentRef, KubeApi, ScaleError};
pub use policy::{Action, Decision, Policy, Recommendations};

/// Longest wait between two tries after failures.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// The autoscaler: its sources, its memory of recent recommendations.
pub struct Autoscaler {
    policy: Policy,
    check_interval: Duration,
    counter: OnlineCounter,
    kube: KubeApi,
    recent: Recommendations,
    dry_run: bool,
}

/// Why the autoscaler could not start, or a tick made no change it should
/// have made.
#[derive(Debug)]
pub enum Cause {
    Redis(RedisError),
    Kube(Box<ScaleError>),
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Redis(e) => write!(f, "{e}"),
            Cause::Kube(e) => write!(f, "{e}"),
        }
    }
}

/// A failed tick, with what it saw before failing.
#[derive(Debug)]
pub struct TickError {
    pub users: Option<usize>,
    /// The decision, when the failure was applying it.
    pub decision: Option<Decision>,
    pub cause: Cause,
}

/// The tick's log line: `users=7 current=? action=skipped reason=...`, or
/// the decision followed by `failed=...` when the PATCH failed; the reason
/// runs to the end of the line.
impl fmt::Display for TickError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cause = &self.cause;
        match (&self.decision, self.users) {
            (Some(d), _) => write!(f, "{d} failed={cause}"),
            (None, Some(users)) => write!(f, "users={users} current=? action=skipped reason={cause}"),
            (None, None) => write!(f, "users=? current=? action=skipped reason={cause}"),
        }
    }
}

impl std::error::Error for TickError {}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Cause::Redis(e) => Some(e),
            Cause::Kube(e) => Some(e.as_ref()),
        }
    }
}

impl Autoscaler {
    /// Builds the clients; connects to nothing yet.
    pub fn new(cfg: &AutoscalerConfig, dry_run: bool) -> Result<Self, Cause> {
        let connector = RedisConnector::new(&cfg.redis).map_err(Cause::Redis)?;
        let target = DeploymentRef { namespace: cfg.namespace.clone(), name: cfg.deployment.clone() };
        Ok(Autoscaler {
            policy: cfg.policy.clone(),
            check_interval: cfg.check_interval,
            counter: OnlineCounter::new(connector, Keys::new(&cfg.redis.key_prefix)),
            kube: KubeApi::new(&cfg.kube, target).map_err(|e| Cause::Kube(Box::new(e)))?,
            recent: Recommendations::new(),
            dry_run,
        })
    }

    /// One look: count, read the replicas, decide, apply. Without a count
    /// nothing is decided (an unknown count never removes a pod).
    pub fn tick(&mut self, now: Instant) -> Result<Decision, TickError> {
        let users =
            self.counter.count().map_err(|e| TickError { users: None, decision: None, cause: Cause::Redis(e) })?;
        let current = self.kube.replicas().map_err(|e| TickError {
            users: Some(users),
            decision: None,
            cause: Cause::Kube(Box::new(e)),
        })?;
        let decision = self.policy.decide(users, current, now, &mut self.recent);
        if decision.target < current && !self.dry_run {
            self.mark_pods_for_removal();
        }
        if decision.changes_replicas() && !self.dry_run {
            self.kube.set_replicas(decision.target).map_err(|e| TickError {
                users: Some(users),
                decision: Some(decision.clone()),
                cause: Cause::Kube(Box::new(e)),
            })?;
        }
        Ok(decision)
    }

    /// One tick with its log line; true if it succeeded.
    /// Before a scale-down: each chat pod's deletion cost is its live
    /// session count, so the ReplicaSet removes the emptiest pods and the
    /// fewest users have to resume elsewhere. Best effort: a failure is
    /// logged and the scale-down goes on.
    fn mark_pods_for_removal(&mut self) {
        let pods = match self.counter.sessions_per_pod() {
            Ok(p) => p,
            Err(e) => return log::warn!("pod deletion costs not set: {e}"),
        };
        let mut marked = Vec::new();
        for (pod, sessions) in &pods {
            match self.kube.set_deletion_cost(pod, *sessions) {
                Ok(()) => marked.push(format!("{pod}={sessions}")),
                Err(e) => log::warn!("pod deletion cost of {pod} not set: {e}"),
            }
        }
        log::info!("pod-deletion-cost {}", marked.join(" "));
    }

    pub fn tick_and_log(&mut self) -> bool {
        let m = &crate::metrics::AUTOSCALER_METRICS;
        match self.tick(Instant::now()) {
            Ok(d) => {
                m.users.set(d.users as i64);
                m.replicas.with_label_values(&["current"]).set(d.current as i64);
                m.replicas.with_label_values(&["desired"]).set(d.desired as i64);
                m.replicas.with_label_values(&["target"]).set(d.target as i64);
                m.decisions.with_label_values(&[d.action.label()]).inc();
                self.log(Ok(d))
            }
            Err(e) => {
                let source = match e.cause {
                    Cause::Redis(_) => "redis",
                    Cause::Kube(_) => "kubernetes",
                };
                m.errors.with_label_values(&[source]).inc();
                self.log(Err(e))
            }
        }
    }

    fn log(&mut self, result: Result<Decision, TickError>) -> bool {
        let at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let (ok, report) = match &result {
            Ok(d) => {
                let line = if d.changes_replicas() && self.dry_run {
                    format!("{d} dry-run=not-patched")
                } else {
                    d.to_string()
                };
                log::info!("{line}");
                let action = if self.dry_run && d.changes_replicas() { "dry-run" } else { d.action.label() };
                let report = report::TickReport {
                    at,
                    ok: true,
                    users: Some(d.users),
                    current: Some(d.current),
                    desired: Some(d.desired),
                    target: Some(d.target),
                    action: action.into(),
                    line,
                };
                (true, report)
            }
            Err(e) => {
                log::warn!("{e}");
                let d = e.decision.as_ref();
                let report = report::TickReport {
                    at,
                    ok: false,
                    users: e.users,
                    current: d.map(|d| d.current),
                    desired: d.map(|d| d.desired),
                    target: d.map(|d| d.target),
                    action: "failed".into(),
                    line: e.to_string(),
                };
                (false, report)
            }
        };
        // For the dashboard; it expires after three missed ticks.
        let ttl = self.check_interval.as_secs().max(1) * 3;
        if let Err(e) = self.counter.with_conn(|c, keys| report::write(c, keys, &report, ttl)) {
            log::debug!("tick not recorded for the dashboard: {e}");
        }
        ok
    }

    /// Ticks every `CHECK_INTERVAL` until `stop` receives or closes. After
    /// failures the wait doubles, up to [`MAX_BACKOFF`].
    pub fn run(&mut self, stop: &Receiver<()>) {
        let mut failures = 0u32;
        loop {
            let wait = if self.tick_and_log() {
                failures = 0;
                self.check_interval
            } else {
                failures += 1;
                let wait = backoff(self.check_interval, failures);
                if wait > self.check_interval {
                    log::info!("{failures} failed ticks in a row: next try in {}s", wait.as_secs());
                }
                wait
            };
            match stop.recv_timeout(wait) {
                Err(RecvTimeoutError::Timeout) => continue,
                Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }
}

/// Wait after `failures` failed ticks in a row: the interval, then twice
/// it, four times... up to [`MAX_BACKOFF`] (never below the interval).
fn backoff(interval: Duration, failures: u32) -> Duration {
    let factor = 1u32 << failures.saturating_sub(1).min(10);
    (interval * factor).min(MAX_BACKOFF.max(interval))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_interval_up_to_five_minutes() {
        let s = Duration::from_secs;
        let waits: Vec<u64> = (1..=7).map(|f| backoff(s(10), f).as_secs()).collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(backoff(s(600), 3), s(600));
    }
}
