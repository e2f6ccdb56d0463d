//! `chat_bench`: a load generator speaking the chatp protocol, with threads
//! (no async runtime). One scenario per file; each is bounded in count and
//! time, and reports one [`Summary`] line.

mod auth;
mod broadcast;
pub mod conn;
mod dm;
mod drill;
mod idle;
mod pingpong;
mod proc_stats;
mod resume;
mod seed;
pub mod stats;

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::{BenchConfig, Scenario};
use crate::protocol::{self, Notification};
use conn::BenchConn;
use stats::{Latencies, Summary};

/// Password of every user a run creates.
const PASSWORD: &str = "bench-password-1";

/// Runs the configured scenario.
pub fn run(cfg: &BenchConfig) -> Summary {
    let mut summary = Summary::default();
    summary.add("scenario", cfg.scenario.name());
    let deadline = Instant::now() + cfg.timeout;
    match cfg.scenario {
        Scenario::Signup | Scenario::Login => auth::run(cfg, deadline, &mut summary),
        Scenario::Dm => dm::run(cfg, deadline, &mut summary),
        Scenario::Broadcast => broadcast::run(cfg, deadline, &mut summary),
        Scenario::Idle => idle::run(cfg, deadline, &mut summary),
        Scenario::Resume => resume::run(cfg, deadline, &mut summary),
        Scenario::Drill => drill::run(cfg, deadline, &mut summary),
        Scenario::Seed => seed::run(cfg, &mut summary),
        Scenario::Pingpong => pingpong::run(cfg, &mut summary),
    }
    summary
}

/// Runs `task(0..n)`, `concurrency` at a time, until `deadline`; results
/// in order (None: not started before the deadline).
fn parallel<T: Send>(
    n: usize,
    concurrency: usize,
    deadline: Instant,
    task: impl Fn(usize) -> T + Sync,
) -> Vec<Option<T>> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<T>>> = Mutex::new((0..n).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..concurrency.min(n).max(1) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n || Instant::now() >= deadline {
                    return;
                }
                let r = task(i);
                results.lock().unwrap()[i] = Some(r);
            });
        }
    });
    results.into_inner().unwrap()
}

/// Users connected and authenticated, with what it cost.
struct Connected {
    conns: Vec<BenchConn>,
    latencies: Latencies,
    failed: usize,
    elapsed: Duration,
    first_error: Option<String>,
}

/// Connects and signs up (or logs in) every name, `concurrency` at a time;
/// connection i goes to `hosts[i % len]`.
fn connect_users(hosts: &[String], names: &[String], signup: bool, concurrency: usize, deadline: Instant) -> Connected {
    connect_with_password(hosts, names, (signup, PASSWORD), concurrency, deadline)
}

/// [`connect_users`] with another password than the bench's own.
fn connect_with_password(
    hosts: &[String],
    names: &[String],
    (signup, password): (bool, &str),
    concurrency: usize,
    deadline: Instant,
) -> Connected {
    let start = Instant::now();
    let results = parallel(names.len(), concurrency, deadline, |i| -> io::Result<(BenchConn, Duration)> {
        let t = Instant::now();
        let mut c = BenchConn::connect(&hosts[i % hosts.len()])?;
        c.authenticate(signup, &names[i], password)?;
        Ok((c, t.elapsed()))
    });
    let elapsed = start.elapsed();
    let mut out =
        Connected { conns: Vec::new(), latencies: Latencies::default(), failed: 0, elapsed, first_error: None };
    for r in results {
        match r {
            Some(Ok((c, t))) => {
                out.conns.push(c);
                out.latencies.record(t);
            }
            Some(Err(e)) => {
                out.failed += 1;
                out.first_error.get_or_insert(e.to_string());
            }
            None => {
                out.failed += 1;
                out.first_error.get_or_insert("timed out before starting".into());
            }
        }
    }
    out
}

impl Connected {
    /// All up, or the run fails with the first error.
    fn all_up(self, what: &str, summary: &mut Summary) -> Option<Vec<BenchConn>> {
        if self.failed > 0 {
            summary.add(format!("{what}_failed"), self.failed);
            summary.fail(format!(
                "{} of {what} could not log in: {}",
                self.failed,
                self.first_error.unwrap_or_default()
            ));
            return None;
        }
        Some(self.conns)
    }
}

/// `cfg.pairs` senders (on `hosts`) and receivers (on `recv_hosts`) signed
/// up, each sender in its conversation with its receiver: (senders'
/// connections, receivers' connections, senders' names). `None`: the run
/// failed (said in `summary`).
fn pairs_in_conversation(
    cfg: &BenchConfig,
    deadline: Instant,
    summary: &mut Summary,
) -> Option<(Vec<BenchConn>, Vec<BenchConn>, Vec<String>)> {
    let senders = names(&cfg.prefix, "s", cfg.pairs);
    let receivers = names(&cfg.prefix, "r", cfg.pairs);
    let rx =
        connect_users(&cfg.recv_hosts, &receivers, true, cfg.concurrency, deadline).all_up("receivers", summary)?;
    let mut tx = connect_users(&cfg.hosts, &senders, true, cfg.concurrency, deadline).all_up("senders", summary)?;
    for (conn, receiver) in tx.iter_mut().zip(&receivers) {
        if let Err(e) = conn.open_conversation(receiver) {
            summary.fail(format!("opening a conversation: {e}"));
            return None;
        }
    }
    Some((tx, rx, senders))
}

/// Usernames `<prefix><role><i>` for i in 0..n.
fn names(prefix: &str, role: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{role}{i}")).collect()
}

/// Message texts carry their sequence number and send time, measured on
/// this process's clock: `<seq> <microseconds since epoch>`.
#[derive(Clone, Copy)]
struct Clock {
    epoch: Instant,
}

impl Clock {
    fn new() -> Clock {
        Clock { epoch: Instant::now() }
    }

    fn payload(&self, seq: usize, at: Instant) -> String {
        format!("{seq} {}", at.duration_since(self.epoch).as_micros())
    }

    /// (seq, time since it was sent).
    fn parse(&self, text: &str) -> Option<(usize, Duration)> {
        let (seq, micros) = text.split_once(' ')?;
        let sent = self.epoch + Duration::from_micros(micros.parse().ok()?);
        Some((seq.parse().ok()?, Instant::now().saturating_duration_since(sent)))
    }
}

/// What a receiver saw of one sender's numbered messages.
#[derive(Debug, Default, Clone)]
struct Sequence {
    seen: Vec<u32>,
    received: usize,
    out_of_order: usize,
    highest: Option<usize>,
}

impl Sequence {
    fn new(expected: usize) -> Sequence {
        Sequence { seen: vec![0; expected], ..Default::default() }
    }

    fn record(&mut self, seq: usize) {
        self.received += 1;
        if let Some(s) = self.seen.get_mut(seq) {
            *s += 1;
        }
        if self.highest.is_some_and(|h| seq < h) {
            self.out_of_order += 1;
        }
        self.highest = self.highest.max(Some(seq));
    }

    fn distinct(&self) -> usize {
        self.seen.iter().filter(|&&n| n > 0).count()
    }

    fn lost(&self) -> usize {
        self.seen.len() - self.distinct()
    }

    fn duplicated(&self) -> usize {
        self.seen.iter().map(|&n| n.saturating_sub(1) as usize).sum()
    }

    fn complete(&self) -> bool {
        self.distinct() == self.seen.len()
    }
}

/// How long receivers wait for stragglers once every sender is done.
const DRAIN: Duration = Duration::from_secs(5);
/// How often a waiting receiver looks at the clock.
const POLL: Duration = Duration::from_millis(100);

/// What one receiver saw.
struct Received {
    seq: Sequence,
    latencies: Latencies,
    /// When the last message came.
    last: Option<Instant>,
    error: Option<String>,
}

/// Reads numbered messages until all `m` came, or the senders are done and
/// [`DRAIN`] has passed, or the deadline. `payload` picks the message text
/// out of a line that is one of the expected notifications.
fn receive(
    conn: &mut BenchConn,
    m: usize,
    clock: Clock,
    deadline: Instant,
    senders_done: impl Fn() -> bool,
    payload: impl Fn(Notification) -> Option<String>,
) -> Received {
    let mut out = Received { seq: Sequence::new(m), latencies: Latencies::default(), last: None, error: None };
    if let Err(e) = conn.socket.set_read_timeout(POLL) {
        out.error = Some(e.to_string());
        return out;
    }
    let mut done_at: Option<Instant> = None;
    while !out.seq.complete() {
        match conn.read_line() {
            Ok(line) => {
                let Some(text) = protocol::parse_notification(line).and_then(&payload) else { continue };
                if let Some((seq, age)) = clock.parse(&text) {
                    out.seq.record(seq);
                    out.latencies.record(age);
                    out.last = Some(Instant::now());
                }
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                let now = Instant::now();
                if senders_done() && now >= *done_at.get_or_insert(now + DRAIN) || now >= deadline {
                    break;
                }
            }
            Err(e) => {
                out.error = Some(e.to_string());
                break;
            }
        }
    }
    out
}

/// Adds what receivers saw: deliveries, losses, duplicates, reordering,
/// the rate from `start` to the last delivery (under `rate_key`), and the
/// end-to-end latency; fails the run on any loss, duplicate or error.
fn report_received(received: Vec<Received>, start: Instant, rate_key: &str, summary: &mut Summary) {
    let seqs: Vec<Sequence> = received.iter().map(|r| r.seq.clone()).collect();
    report_sequences(&seqs, summary);
    let delivered: usize = seqs.iter().map(Sequence::distinct).sum();
    let last = received.iter().filter_map(|r| r.last).max().unwrap_or(start);
    let elapsed = last.duration_since(start);
    summary.add("seconds", format!("{:.3}", elapsed.as_secs_f64()));
    summary.add(rate_key, stats::rate(delivered, elapsed));
    let mut latencies = Latencies::default();
    for r in received {
        latencies.merge(r.latencies);
        if let Some(e) = r.error {
            summary.fail(format!("receiver: {e}"));
        }
    }
    latencies.report("latency", summary);
}

/// Sums of many receivers' sequences, added to the summary; fails the run
/// on any loss or duplicate.
fn report_sequences(seqs: &[Sequence], summary: &mut Summary) {
    let lost: usize = seqs.iter().map(Sequence::lost).sum();
    let duplicated: usize = seqs.iter().map(Sequence::duplicated).sum();
    summary.add("delivered", seqs.iter().map(Sequence::distinct).sum::<usize>());
    summary.add("lost", lost);
    summary.add("duplicated", duplicated);
    summary.add("out_of_order", seqs.iter().map(|s| s.out_of_order).sum::<usize>());
    if lost > 0 {
        summary.fail(format!("{lost} messages never arrived"));
    }
    if duplicated > 0 {
        summary.fail(format!("{duplicated} messages arrived twice"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_count_losses_duplicates_and_reordering() {
        let mut s = Sequence::new(5);
        for seq in [0, 1, 3, 2, 3] {
            s.record(seq);
        }
        assert_eq!((s.distinct(), s.lost(), s.duplicated(), s.out_of_order), (4, 1, 1, 1));
        assert!(!s.complete());
    }

    #[test]
    fn payload_round_trip() {
        let clock = Clock::new();
        let text = clock.payload(42, Instant::now());
        let (seq, age) = clock.parse(&text).unwrap();
        assert_eq!(seq, 42);
        assert!(age < Duration::from_secs(1));
        assert!(clock.parse("hello").is_none());
    }
}
