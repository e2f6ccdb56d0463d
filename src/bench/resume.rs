//! `resume`: what a drained pod's users cost the pods that take them. N
//! users sign up speaking protocol 2 on the first host and drop their
//! connections; then they all resume on `--recv-hosts` (default: the last
//! host), c at a time: rate, latency, and that pod's CPU per resume (no
//! password, no Argon2).

use std::io;
use std::time::{Duration, Instant};

use super::conn::BenchConn;
use super::proc_stats::ProcStats;
use super::stats::{rate, Latencies, Summary};
use super::{names, parallel, PASSWORD};
use crate::config::BenchConfig;

pub fn run(cfg: &BenchConfig, deadline: Instant, summary: &mut Summary) {
    let users = names(&cfg.prefix, "u", cfg.users);
    summary.add("users", cfg.users);
    summary.add("concurrency", cfg.concurrency);
    let first = &cfg.hosts[0];
    let last = cfg.recv_hosts.last().unwrap_or(&cfg.hosts[cfg.hosts.len() - 1]);
    // Set-up, not measured: sessions on the first host, then dropped.
    let tokens = parallel(users.len(), cfg.concurrency, deadline, |i| -> io::Result<String> {
        BenchConn::connect(first)?.signup_with_token(&users[i], PASSWORD)
    });
    let tokens: Vec<String> = match tokens.into_iter().collect::<Option<io::Result<Vec<_>>>>() {
        Some(Ok(t)) => t,
        Some(Err(e)) => return summary.fail(format!("a signup failed: {e}")),
        None => return summary.fail("timed out during the signups"),
    };
    let before = cfg.server_pid.and_then(ProcStats::read);
    let start = Instant::now();
    let results = parallel(users.len(), cfg.concurrency, deadline, |i| -> io::Result<(BenchConn, Duration)> {
        let t = Instant::now();
        let mut c = BenchConn::connect(last)?;
        c.resume(&users[i], &tokens[i])?;
        Ok((c, t.elapsed()))
    });
    let elapsed = start.elapsed();
    let after = cfg.server_pid.and_then(ProcStats::read);
    let mut latencies = Latencies::default();
    let (mut ok, mut first_error) = (0, None);
    for r in results {
        match r {
            Some(Ok((_, t))) => {
                ok += 1;
                latencies.record(t);
            }
            Some(Err(e)) => {
                first_error.get_or_insert(e.to_string());
            }
            None => {
                first_error.get_or_insert("timed out before starting".to_string());
            }
        }
    }
    summary.add("ok", ok);
    summary.add("failed", users.len() - ok);
    summary.add("per_s", rate(ok, elapsed));
    if let (Some(b), Some(a)) = (before, after) {
        let cpu_ms = (a.cpu - b.cpu).as_secs_f64() * 1000.0 / ok.max(1) as f64;
        summary.add("server_cpu_ms_each", format!("{cpu_ms:.2}"));
    }
    latencies.report("latency", summary);
    if let Some(e) = first_error {
        summary.fail(format!("{} of {} resumes failed: {e}", users.len() - ok, users.len()));
    }
}
