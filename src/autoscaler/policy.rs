//! The autoscaler's decision: a pure function of (users online, current
//! replicas, [`Policy`], clock, recent [`Recommendations`]).
//!
//! It follows the Kubernetes HPA rule:
//!
//! - the recommendation is `ceil(users / users_per_pod)`;
//! - scaling up follows the recommendation at once;
//! - scaling down goes only to the highest recommendation of the last
//!   `scale_down_delay` (the HPA's stabilization window), so a count that dips
//!   for one tick never removes a pod;
//! - the window starts with the current replicas on first sight, as the HPA
//!   does, so a restarted autoscaler never scales down on its first look;
//! - the result is clamped to `[min, max]` after stabilization, so a
//!   deployment scaled by hand beyond the bounds is brought back at once;
//! - a deployment scaled to 0 by hand is left alone (the HPA pauses too).
//!
//! The HPA's 10 % tolerance has no counterpart: the recommendation is
//! already a whole number of pods.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

/// The bounds and pace of scaling: read by `config`, decided on here.
pub use crate::config::Policy;

/// What to do with the deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Set the replicas to `Decision::target`, more than now.
    Up,
    /// Set the replicas to `Decision::target`, fewer than now.
    Down,
    /// Fewer pods are recommended, but a higher recommendation is still in
    /// the window: the first pod goes in `left` if the count stays low.
    PendingDown { left: Duration },
    /// The replicas are right.
    None,
    /// Replicas are 0: someone scaled the deployment down by hand.
    Paused,
}

/// One tick's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub users: usize,
    pub current: u32,
    /// The recommendation for this count alone: ceil(users / per pod), clamped.
    pub desired: u32,
    /// The replicas to set (equal to `current` unless Up or Down).
    pub target: u32,
    pub action: Action,
}

impl Action {
    /// As logs and metrics name it.
    pub fn label(&self) -> &'static str {
        match self {
            Action::Up => "up",
            Action::Down => "down",
            Action::PendingDown { .. } => "pending-down",
            Action::None => "none",
            Action::Paused => "paused",
        }
    }
}

impl Decision {
    /// Whether the deployment must be patched to `target`.
    pub fn changes_replicas(&self) -> bool {
        matches!(self.action, Action::Up | Action::Down)
    }
}

/// `users=7 current=2 desired=3 action=up target=3`, the body of the tick's
/// log line.
impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "users={} current={} desired={} ", self.users, self.current, self.desired)?;
        match self.action {
            Action::Up => write!(f, "action=up target={}", self.target),
            Action::Down => write!(f, "action=down target={}", self.target),
            Action::PendingDown { left } => {
                write!(f, "action=pending-down left={}s", left.as_secs_f64().ceil() as u64)
            }
            Action::None => write!(f, "action=none"),
            Action::Paused => {
                write!(f, "action=skipped reason=replicas are 0 (scaled by hand): paused until scaled up")
            }
        }
    }
}

/// Recommendations of the last `scale_down_delay`, oldest first.
#[derive(Debug, Default)]
pub struct Recommendations {
    seen: VecDeque<(Instant, u32)>,
    seeded: bool,
}

impl Recommendations {
    pub fn new() -> Self {
        Self::default()
    }

    fn record(&mut self, now: Instant, replicas: u32, window: Duration) {
        while self.seen.front().is_some_and(|&(t, _)| now.saturating_duration_since(t) >= window) {
            self.seen.pop_front();
        }
        if !window.is_zero() {
            self.seen.push_back((now, replicas));
        }
    }

    /// The highest recommendation in the window, or `fallback` if none.
    fn highest(&self, fallback: u32) -> u32 {
        self.seen.iter().map(|&(_, r)| r).max().unwrap_or(fallback)
    }

    /// How long until no recommendation of `at_least` or more is left.
    fn time_until_below(&self, at_least: u32, now: Instant, window: Duration) -> Duration {
        self.seen
            .iter()
            .filter(|&&(_, r)| r >= at_least)
            .map(|&(t, _)| (t + window).saturating_duration_since(now))
            .max()
            .unwrap_or_default()
    }
}

impl Policy {
    /// Pods for this many users alone: ceil(users / per pod) within bounds.
    pub fn desired(&self, users: usize) -> u32 {
        let per_pod = self.users_per_pod.max(1) as usize;
        let pods = users.div_ceil(per_pod).min(u32::MAX as usize) as u32;
        pods.clamp(self.min_replicas, self.max_replicas)
    }

    /// Decides and records this tick's recommendation in `recent`.
    pub fn decide(&self, users: usize, current: u32, now: Instant, recent: &mut Recommendations) -> Decision {
        let window = self.scale_down_delay;
        if !recent.seeded && current > 0 {
            recent.seeded = true;
            recent.record(now, current, window);
        }
        let desired = self.desired(users);
        recent.record(now, desired, window);
        let decision = |target, action| Decision { users, current, desired, target, action };
        if current == 0 {
            return decision(0, Action::Paused);
        }
        if desired > current {
            return decision(desired, Action::Up);
        }
        let target = recent.highest(desired).min(current).clamp(self.min_replicas, self.max_replicas);
        if target < current {
            decision(target, Action::Down)
        } else if target > current {
            decision(target, Action::Up)
        } else if desired < current {
            decision(current, Action::PendingDown { left: recent.time_until_below(current, now, window) })
        } else {
            decision(current, Action::None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn every_action_is_exported_from_the_start() {
        let all = [Action::Up, Action::Down, Action::PendingDown { left: secs(1) }, Action::None, Action::Paused];
        for a in all {
            assert!(crate::metrics::AUTOSCALER_ACTIONS.contains(&a.label()), "{}", a.label());
        }
    }

    #[test]
    fn desired_is_ceil_of_users_per_pod_within_bounds() {
        let p = Policy::default();
        let table = [(0, 1), (1, 1), (3, 1), (4, 2), (6, 2), (7, 3), (28, 10), (30, 10), (31, 10), (10_000, 10)];
        for (users, pods) in table {
            assert_eq!(p.desired(users), pods, "{users} users");
        }
        let p = Policy { min_replicas: 2, max_replicas: 4, users_per_pod: 5, ..Policy::default() };
        for (users, pods) in [(0, 2), (5, 2), (11, 3), (16, 4), (100, 4)] {
            assert_eq!(p.desired(users), pods, "{users} users, 5 per pod, 2..4");
        }
    }

    /// One tick per row: (seconds since start, users, current replicas) ->
    /// expected action and target.
    fn run(policy: &Policy, ticks: &[(u64, usize, u32, Action, u32)]) {
        let t0 = Instant::now();
        let mut recent = Recommendations::new();
        for &(at, users, current, action, target) in ticks {
            let d = policy.decide(users, current, t0 + secs(at), &mut recent);
            assert_eq!((d.action, d.target), (action, target), "at {at}s with {users} users, {current} pods: {d}");
        }
    }

    #[test]
    fn scales_up_at_once() {
        run(
            &Policy::default(),
            &[
                (0, 0, 1, Action::None, 1),
                (10, 4, 1, Action::Up, 2),
                (20, 29, 2, Action::Up, 10),
                (30, 99, 10, Action::None, 10),
            ],
        );
    }

    #[test]
    fn scales_down_only_after_the_window() {
        let pending = |left| Action::PendingDown { left: secs(left) };
        run(
            &Policy::default(),
            &[
                // first sight: the window starts with the current 3 pods
                (0, 9, 3, Action::None, 3),
                (10, 2, 3, pending(50), 3),
                (30, 2, 3, pending(30), 3),
                (59, 2, 3, pending(1), 3),
                (60, 2, 3, Action::Down, 1),
            ],
        );
    }

    #[test]
    fn a_dip_for_one_tick_removes_no_pod() {
        let pending = |left| Action::PendingDown { left: secs(left) };
        run(
            &Policy::default(),
            &[
                (0, 6, 2, Action::None, 2),
                (10, 6, 2, Action::None, 2),
                (20, 0, 2, pending(50), 2),
                (30, 6, 2, Action::None, 2),
                // 60 s after the last count of 6 users, not after the dip
                (80, 0, 2, pending(10), 2),
                (90, 0, 2, Action::Down, 1),
            ],
        );
    }

    #[test]
    fn scales_down_step_by_step_to_the_highest_recent_recommendation() {
        run(
            &Policy { scale_down_delay: secs(30), ..Policy::default() },
            &[
                (0, 12, 4, Action::None, 4),
                (10, 6, 4, Action::PendingDown { left: secs(20) }, 4),
                (20, 1, 4, Action::PendingDown { left: secs(10) }, 4),
                // 4 left the window; 2 (at 10 s) is still in it
                (30, 1, 4, Action::Down, 2),
                (40, 1, 2, Action::Down, 1),
            ],
        );
    }

    #[test]
    fn zero_delay_scales_down_at_once() {
        let p = Policy { scale_down_delay: Duration::ZERO, ..Policy::default() };
        run(&p, &[(0, 1, 5, Action::Down, 1), (1, 4, 1, Action::Up, 2), (2, 0, 2, Action::Down, 1)]);
    }

    #[test]
    fn bounds_apply_to_replicas_set_by_hand() {
        let p = Policy { min_replicas: 2, max_replicas: 5, ..Policy::default() };
        // above max: back to max at once, then the window applies
        run(&p, &[(0, 0, 8, Action::Down, 5), (10, 0, 5, Action::PendingDown { left: secs(50) }, 5)]);
        // below min: up to min
        run(&p, &[(0, 0, 1, Action::Up, 2)]);
    }

    #[test]
    fn zero_replicas_pause_scaling() {
        run(&Policy::default(), &[(0, 9, 0, Action::Paused, 0), (10, 9, 3, Action::None, 3)]);
    }

    #[test]
    fn log_line_names_users_current_desired_and_action() {
        let mut recent = Recommendations::new();
        let p = Policy::default();
        let now = Instant::now();
        assert_eq!(p.decide(7, 2, now, &mut recent).to_string(), "users=7 current=2 desired=3 action=up target=3");
        assert_eq!(
            p.decide(1, 3, now + secs(1), &mut recent).to_string(),
            "users=1 current=3 desired=1 action=pending-down left=59s"
        );
    }
}
