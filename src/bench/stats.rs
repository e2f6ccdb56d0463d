//! Figures of a run: latency percentiles and the one summary line.

use std::fmt::{self, Display};
use std::time::Duration;

/// Latency samples in microseconds.
#[derive(Debug, Default, Clone)]
pub struct Latencies {
    micros: Vec<u64>,
}

impl Latencies {
    pub fn record(&mut self, d: Duration) {
        self.micros.push(d.as_micros().min(u64::MAX as u128) as u64);
    }

    pub fn merge(&mut self, other: Latencies) {
        self.micros.extend(other.micros);
    }

    pub fn len(&self) -> usize {
        self.micros.len()
    }

    pub fn is_empty(&self) -> bool {
        self.micros.is_empty()
    }

    /// Adds `<name>_p50_ms`, `_p90_ms`, `_p99_ms` and `_max_ms` to `summary`.
    pub fn report(mut self, name: &str, summary: &mut Summary) {
        self.micros.sort_unstable();
        let ms = |us: u64| format!("{:.3}", us as f64 / 1000.0);
        for (label, q) in [("p50", 0.50), ("p90", 0.90), ("p99", 0.99)] {
            summary.add(format!("{name}_{label}_ms"), self.percentile(q).map_or("-".into(), ms));
        }
        summary.add(format!("{name}_max_ms"), self.micros.last().copied().map_or("-".into(), ms));
    }

    /// Nearest-rank percentile of sorted samples.
    fn percentile(&self, q: f64) -> Option<u64> {
        if self.micros.is_empty() {
            return None;
        }
        let rank = ((q * self.micros.len() as f64).ceil() as usize).clamp(1, self.micros.len());
        Some(self.micros[rank - 1])
    }
}

/// The run's one line: `key=value` pairs in order, and whether it failed.
#[derive(Debug, Default)]
pub struct Summary {
    fields: Vec<(String, String)>,
    pub failures: Vec<String>,
}

impl Summary {
    pub fn add(&mut self, key: impl Into<String>, value: impl Display) {
        self.fields.push((key.into(), value.to_string()));
    }

    /// Marks the run failed (exit code 1) and says why, on stderr.
    pub fn fail(&mut self, why: impl Into<String>) {
        self.failures.push(why.into());
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (k, v)) in self.fields.iter().enumerate() {
            write!(f, "{}{k}={v}", if i == 0 { "" } else { " " })?;
        }
        Ok(())
    }
}

/// Events per second over `elapsed`.
pub fn rate(count: usize, elapsed: Duration) -> String {
    format!("{:.0}", count as f64 / elapsed.as_secs_f64().max(1e-9))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut l = Latencies::default();
        for us in 1..=100u64 {
            l.record(Duration::from_micros(us * 1000));
        }
        let mut s = Summary::default();
        l.report("lat", &mut s);
        assert_eq!(s.to_string(), "lat_p50_ms=50.000 lat_p90_ms=90.000 lat_p99_ms=99.000 lat_max_ms=100.000");
        let mut s = Summary::default();
        Latencies::default().report("e", &mut s);
        assert_eq!(s.get("e_p99_ms"), Some("-"));
    }
}
