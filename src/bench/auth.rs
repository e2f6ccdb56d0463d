//! `signup` and `login`: N users, c at a time: rate, latency of connect +
//! authentication, and the server's CPU time per authentication.

use std::time::Instant;

use super::proc_stats::ProcStats;
use super::stats::{rate, Summary};
use super::{connect_users, names};
use crate::config::{BenchConfig, Scenario};

pub fn run(cfg: &BenchConfig, deadline: Instant, summary: &mut Summary) {
    let users = names(&cfg.prefix, "u", cfg.users);
    summary.add("users", cfg.users);
    summary.add("concurrency", cfg.concurrency);
    let login = cfg.scenario == Scenario::Login;
    if login {
        // Set-up: the users must exist; not measured.
        let setup = connect_users(&cfg.hosts, &users, true, cfg.concurrency, deadline);
        if setup.all_up("signups", summary).is_none() {
            return;
        }
    }
    let before = cfg.server_pid.and_then(ProcStats::read);
    let done = connect_users(&cfg.hosts, &users, !login, cfg.concurrency, deadline);
    let after = cfg.server_pid.and_then(ProcStats::read);
    let ok = done.conns.len();
    summary.add("ok", ok);
    summary.add("failed", done.failed);
    summary.add("per_s", rate(ok, done.elapsed));
    if let (Some(b), Some(a)) = (before, after) {
        let cpu_ms = (a.cpu - b.cpu).as_secs_f64() * 1000.0 / ok.max(1) as f64;
        summary.add("server_cpu_ms_each", format!("{cpu_ms:.2}"));
    }
    done.latencies.report("latency", summary);
    if let Some(e) = done.first_error {
        summary.fail(format!("{} of {} failed: {e}", done.failed, cfg.users));
    }
}
