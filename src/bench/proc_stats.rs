//! The server's memory, threads and CPU time, from `/proc/<pid>`.

use std::time::Duration;

/// One reading of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStats {
    pub rss_kib: u64,
    pub threads: u64,
    /// User plus system CPU time so far.
    pub cpu: Duration,
}

impl ProcStats {
    pub fn read(pid: u32) -> Option<ProcStats> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        Some(ProcStats {
            rss_kib: field(&status, "VmRSS:")?,
            threads: field(&status, "Threads:")?,
            cpu: cpu_time(&stat)?,
        })
    }
}

/// A `Name:   value kB` line of /proc/<pid>/status.
fn field(status: &str, name: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(name))?;
    line[name.len()..].split_whitespace().next()?.parse().ok()
}

/// utime + stime of /proc/<pid>/stat (fields 14 and 15, after the command
/// name in parentheses, which may hold spaces).
fn cpu_time(stat: &str) -> Option<Duration> {
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(Duration::from_millis(ticks * 1000 / hz))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = ProcStats::read(std::process::id()).unwrap();
        assert!(me.rss_kib > 0 && me.threads >= 1);
        assert!(cpu_time("1 (a b) S 0 0 0 0 0 0 0 0 0 0 250 50 0 0").is_some());
    }
}
