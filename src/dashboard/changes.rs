//! The log of the sources' health: one line when Redis, PostgreSQL or the
//! Kubernetes API goes down (with the cause) and one when it is back,
//! never a line per sample. A Kubernetes API that is not configured is not
//! a failure and is not logged here (the start line says it).

use log::warn;

use super::sample::Health;

/// A source's state as last logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Up,
    Down,
}

/// What a sample changed in a source's state: the line to log, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Down(String),
    Back(String),
}

/// The sources' states, one per logged source.
#[derive(Debug, Default)]
pub struct HealthLog {
    redis: Option<Seen>,
    postgresql: Option<Seen>,
    kubernetes: Option<Seen>,
}

impl HealthLog {
    /// Compares a sample's health with the states seen so far; returns the
    /// changes (a source down at the first sample is one; up is not).
    pub fn observe(&mut self, health: &Health, kube_configured: bool) -> Vec<Change> {
        let mut changes = Vec::new();
        let mut step = |seen: &mut Option<Seen>, name: &str, healthy: bool, detail: &str| {
            let now = if healthy { Seen::Up } else { Seen::Down };
            match (*seen, now) {
                (None | Some(Seen::Up), Seen::Down) => changes.push(Change::Down(format!("{name} down: {detail}"))),
                (Some(Seen::Down), Seen::Up) => changes.push(Change::Back(format!("{name} back up: {detail}"))),
                _ => {}
            }
            *seen = Some(now);
        };
        step(&mut self.redis, "Redis", health.redis.healthy, &health.redis.detail);
        step(&mut self.postgresql, "PostgreSQL", health.postgresql.healthy, &health.postgresql.detail);
        if kube_configured {
            step(&mut self.kubernetes, "Kubernetes API", health.kubernetes.healthy, &health.kubernetes.detail);
        }
        changes
    }

    /// [`observe`](Self::observe), then logs the changes: both at `WARN`,
    /// so that a log kept at that level (`scripts/run.sh` runs the
    /// dashboard with `LOG_LEVEL=warn`) never shows a source down for good.
    pub fn log(&mut self, health: &Health, kube_configured: bool) {
        for change in self.observe(health, kube_configured) {
            match change {
                Change::Down(line) | Change::Back(line) => warn!("{line}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dashboard::sample::Check;

    fn health(redis: bool, pg: bool, kube: bool) -> Health {
        let check = |healthy: bool, detail: &str| Check { healthy, detail: detail.into() };
        Health {
            redis: check(redis, if redis { "0 users online on 1 pods" } else { "connecting: refused" }),
            postgresql: check(pg, if pg { "1 users, 2 messages" } else { "db error: gone" }),
            autoscaler: check(false, "no report"),
            kubernetes: check(kube, if kube { "1 of 1 replicas ready" } else { "not reachable: refused" }),
        }
    }

    #[test]
    fn each_change_is_reported_once_with_its_cause() {
        let mut log = HealthLog::default();
        assert_eq!(log.observe(&health(true, true, true), true), []);
        assert_eq!(
            log.observe(&health(false, true, true), true),
            [Change::Down("Redis down: connecting: refused".into())]
        );
        for _ in 0..5 {
            assert_eq!(log.observe(&health(false, true, true), true), [], "still down: nothing more");
        }
        let back = log.observe(&health(true, true, false), true);
        assert_eq!(
            back,
            [
                Change::Back("Redis back up: 0 users online on 1 pods".into()),
                Change::Down("Kubernetes API down: not reachable: refused".into())
            ]
        );
        assert_eq!(log.observe(&health(true, true, false), true), []);
    }

    #[test]
    fn down_at_start_is_reported_and_kubernetes_unconfigured_never_is() {
        let mut log = HealthLog::default();
        assert_eq!(
            log.observe(&health(true, false, false), false),
            [Change::Down("PostgreSQL down: db error: gone".into())]
        );
        assert_eq!(log.observe(&health(true, false, false), false), []);
        assert_eq!(log.observe(&health(true, true, false), false).len(), 1);
    }
}
