//! `idle`: C logged-in connections held S seconds: how many came up and
//! stayed up, and the server's memory and threads before, during and after.

use std::io::{self, Read};
use std::time::Instant;

use super::proc_stats::ProcStats;
use super::stats::{rate, Summary};
use super::{connect_with_password, names};
use crate::config::BenchConfig;

pub fn run(cfg: &BenchConfig, deadline: Instant, summary: &mut Summary) {
    let c = cfg.connections;
    summary.add("connections", c);
    summary.add("hold_s", cfg.hold.as_secs());
    // Warm-up: every password-hashing worker has run once, so the memory it
    // keeps is in the "before" figure, not counted per connection.
    // New users, or seed's (logged in: a database as big as seed makes it).
    let users = |part: &str, n: usize| -> (Vec<String>, bool, &str) {
        if cfg.seeded_logins {
            ((1..=n).map(super::seed::username).collect(), false, super::seed::PASSWORD)
        } else {
            (names(&cfg.prefix, part, n), true, super::PASSWORD)
        }
    };
    let (warm_names, signup, password) = users("w", cfg.concurrency);
    let warm = connect_with_password(&cfg.hosts, &warm_names, (signup, password), cfg.concurrency, deadline);
    drop(warm);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let before = cfg.server_pid.and_then(ProcStats::read);

    let (idle_names, signup, password) = users("i", c);
    let up = connect_with_password(&cfg.hosts, &idle_names, (signup, password), cfg.concurrency, deadline);
    summary.add("up", up.conns.len());
    summary.add("failed", up.failed);
    summary.add("logins_per_s", rate(up.conns.len(), up.elapsed));
    if let Some(e) = &up.first_error {
        summary.fail(format!("{} of {c} connections did not come up: {e}", up.failed));
    }
    std::thread::sleep(cfg.hold.min(deadline.saturating_duration_since(Instant::now())) / 2);
    let during = cfg.server_pid.and_then(ProcStats::read);
    std::thread::sleep(cfg.hold.min(deadline.saturating_duration_since(Instant::now())) / 2);

    // Still connected: a read finds nothing to read, not the end of stream.
    let mut alive = 0;
    for conn in &up.conns {
        let mut socket = conn.socket.clone();
        let _ = socket.set_read_timeout(std::time::Duration::from_millis(1));
        if matches!(socket.read(&mut [0u8; 1]), Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut))
        {
            alive += 1;
        }
    }
    summary.add("alive_after_hold", alive);
    if alive < up.conns.len() {
        summary.fail(format!("{} connections were closed while idle", up.conns.len() - alive));
    }
    let count = up.conns.len();
    drop(up);
    std::thread::sleep(std::time::Duration::from_secs(2));
    let after = cfg.server_pid.and_then(ProcStats::read);

    if let (Some(b), Some(d), Some(a)) = (before, during, after) {
        summary.add("rss_before_kib", b.rss_kib);
        summary.add("rss_during_kib", d.rss_kib);
        summary.add("rss_after_kib", a.rss_kib);
        summary.add("threads_before", b.threads);
        summary.add("threads_during", d.threads);
        summary.add("threads_after", a.threads);
        let per_conn = (d.rss_kib.saturating_sub(b.rss_kib)) as f64 / count.max(1) as f64;
        summary.add("rss_per_conn_kib", format!("{per_conn:.1}"));
    }
}
