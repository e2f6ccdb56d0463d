//! `drill`: the load of a failover drill (`scripts/ha-drill.sh`). P
//! sender/receiver pairs send at a fixed total rate for `-s` seconds and
//! nothing that goes wrong stops them: every answer (`SENT:` delivered or
//! offline, `ERROR:`) and every live delivery is written with its wall-clock
//! time to the `--events` file, for the drill to line up with the moment it
//! killed or promoted something and with what PostgreSQL holds afterwards.
//!
//! Lines of the file: `sent PAIR SEQ MS`, `ack PAIR SEQ delivered|offline
//! MS`, `refused PAIR SEQ MS TEXT`, `recv PAIR SEQ MS`, `gone PAIR MS
//! ERROR` (a connection lost); MS is Unix time in milliseconds. The text of
//! message SEQ of pair PAIR is `SEQ <microseconds>` (as `dm`).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::conn::BenchConn;
use super::stats::Summary;
use super::{pairs_in_conversation, Clock};
use crate::config::BenchConfig;
use crate::protocol::{self, Ack, ServerLine};

type Events = Arc<Mutex<BufWriter<File>>>;

fn now_ms() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis()
}

fn log(events: &Events, line: String) {
    let mut w = events.lock().unwrap_or_else(|e| e.into_inner());
    let _ = writeln!(w, "{line}");
}

pub fn run(cfg: &BenchConfig, deadline: Instant, summary: &mut Summary) {
    let Some(path) = &cfg.events else {
        return summary.fail("drill needs --events FILE");
    };
    let events: Events = match File::create(path) {
        Ok(f) => Arc::new(Mutex::new(BufWriter::new(f))),
        Err(e) => return summary.fail(format!("{}: {e}", path.display())),
    };
    let p = cfg.pairs;
    let rate = cfg.rate.unwrap_or(500.0);
    let every = Duration::from_secs_f64(p as f64 / rate);
    let m = (cfg.hold.as_secs_f64() / every.as_secs_f64()).ceil() as usize;
    summary.add("pairs", p);
    summary.add("rate", rate);
    let Some((mut tx, mut rx, senders)) = pairs_in_conversation(cfg, deadline, summary) else {
        return;
    };
    let clock = Clock::new();
    let start = Instant::now();
    let end = start + cfg.hold;
    // Answers and deliveries still come this long after the last send.
    let linger = end + Duration::from_secs(10);
    let senders_done = AtomicUsize::new(0);
    let counts: Vec<(usize, usize)> = std::thread::scope(|scope| {
        for (pair, (conn, sender)) in rx.iter_mut().zip(&senders).enumerate() {
            let events = Arc::clone(&events);
            let done = &senders_done;
            scope.spawn(move || {
                receive(conn, pair, sender, clock, linger, || done.load(Ordering::SeqCst) == p, &events)
            });
        }
        let threads: Vec<_> = tx
            .iter_mut()
            .enumerate()
            .map(|(pair, conn)| {
                let events = Arc::clone(&events);
                let first = start + every.mul_f64(pair as f64 / p as f64);
                let done = &senders_done;
                scope.spawn(move || {
                    let out = send(conn, pair, m, clock, (first, every), linger, &events);
                    done.fetch_add(1, Ordering::SeqCst);
                    out
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap_or_default()).collect()
    });
    let _ = events.lock().unwrap_or_else(|e| e.into_inner()).flush();
    summary.add("sent", counts.iter().map(|c| c.0).sum::<usize>());
    summary.add("answered", counts.iter().map(|c| c.1).sum::<usize>());
}

/// Sends `m` messages on schedule from a writer thread while this one logs
/// the answers, which come in order. Returns (sent, answered).
fn send(
    conn: &mut BenchConn,
    pair: usize,
    m: usize,
    clock: Clock,
    (first, every): (Instant, Duration),
    linger: Instant,
    events: &Events,
) -> (usize, usize) {
    let socket = conn.socket.clone();
    let _ = conn.socket.set_read_timeout(Duration::from_millis(200));
    std::thread::scope(|scope| {
        let writer = scope.spawn(move || {
            for seq in 0..m {
                std::thread::sleep((first + every.mul_f64(seq as f64)).saturating_duration_since(Instant::now()));
                let text = clock.payload(seq, Instant::now());
                if socket.send(&text).is_err() {
                    return seq;
                }
                log(events, format!("sent {pair} {seq} {}", now_ms()));
            }
            m
        });
        let mut answered = 0;
        while Instant::now() < linger && (!writer.is_finished() || answered < m) {
            let line = match conn.read_line() {
                Ok(line) => line.to_string(),
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => continue,
                Err(e) => {
                    log(events, format!("gone {pair} {} {e}", now_ms()));
                    break;
                }
            };
            let seq = answered;
            match (protocol::parse_ack(&line), protocol::parse_server_line(&line)) {
                (Some(Ack::Sent { delivered }), _) => {
                    let how = if delivered { "delivered" } else { "offline" };
                    log(events, format!("ack {pair} {seq} {how} {}", now_ms()));
                }
                (_, ServerLine::Problem(_)) => log(events, format!("refused {pair} {seq} {} {line}", now_ms())),
                _ => continue,
            }
            answered += 1;
        }
        let sent = writer.join().unwrap_or(0);
        (sent, answered)
    })
}

/// Logs the deliveries of `sender`'s messages until `linger`, or until the
/// senders are done and nothing came for a second.
fn receive(
    conn: &mut BenchConn,
    pair: usize,
    sender: &str,
    clock: Clock,
    linger: Instant,
    senders_done: impl Fn() -> bool,
    events: &Events,
) {
    let _ = conn.socket.set_read_timeout(Duration::from_millis(200));
    let mut last = Instant::now();
    while Instant::now() < linger && !(senders_done() && last.elapsed() > Duration::from_secs(1)) {
        match conn.read_line() {
            Ok(line) => {
                last = Instant::now();
                if let Some(protocol::Notification::Message { sender: from, text }) = protocol::parse_notification(line)
                {
                    if from == sender {
                        if let Some((seq, _)) = clock.parse(&text) {
                            log(events, format!("recv {pair} {seq} {}", now_ms()));
                        }
                    }
                }
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
            Err(e) => {
                log(events, format!("gone {pair} {} {e}", now_ms()));
                return;
            }
        }
    }
}
