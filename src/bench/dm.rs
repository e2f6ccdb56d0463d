//! `dm`: P sender/receiver pairs, M private messages per sender, closed
//! loop (the next message after `SENT:`) or at a fixed total rate (latency
//! counted from the scheduled send time, so a stall is not hidden).

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::conn::BenchConn;
use super::stats::{Latencies, Summary};
use super::{pairs_in_conversation, receive, report_received, Clock, Received};
use crate::config::BenchConfig;
use crate::protocol::{Ack, Notification};

/// What one sender did.
#[derive(Default)]
struct Sent {
    sent: usize,
    acked: usize,
    /// `SENT:` said the recipient was offline.
    undelivered: usize,
    acks: Latencies,
    error: Option<String>,
}

pub fn run(cfg: &BenchConfig, deadline: Instant, summary: &mut Summary) {
    let (p, m) = (cfg.pairs, cfg.messages);
    summary.add("pairs", p);
    summary.add("messages", m);
    summary.add("mode", cfg.rate.map_or("closed".to_string(), |r| format!("rate{r}")));
    summary.add("cross_pod", cfg.recv_hosts != cfg.hosts);
    let Some((mut tx, mut rx, senders)) = pairs_in_conversation(cfg, deadline, summary) else {
        return;
    };

    let clock = Clock::new();
    let senders_done = AtomicUsize::new(0);
    let start = Instant::now();
    let (sent, received): (Vec<Sent>, Vec<Received>) = std::thread::scope(|scope| {
        let rx_threads: Vec<_> = rx
            .iter_mut()
            .zip(&senders)
            .map(|(conn, sender)| {
                let done = &senders_done;
                let payload = move |n| match n {
                    Notification::Message { sender: from, text } if from == *sender => Some(text),
                    _ => None,
                };
                scope.spawn(move || receive(conn, m, clock, deadline, || done.load(Ordering::SeqCst) == p, payload))
            })
            .collect();
        let tx_threads: Vec<_> = tx
            .iter_mut()
            .enumerate()
            .map(|(i, conn)| {
                let done = &senders_done;
                scope.spawn(move || {
                    // Fixed rate: each sender sends every p/R seconds, the
                    // senders spread evenly over that interval.
                    let schedule = cfg.rate.map(|r| {
                        let every = Duration::from_secs_f64(p as f64 / r);
                        (start + every.mul_f64(i as f64 / p as f64), every)
                    });
                    let out = send(conn, m, clock, deadline, schedule);
                    done.fetch_add(1, Ordering::SeqCst);
                    out
                })
            })
            .collect();
        let sent = tx_threads.into_iter().map(|t| t.join().unwrap_or_default()).collect();
        let received = rx_threads.into_iter().map(|t| t.join().expect("receiver thread")).collect();
        (sent, received)
    });

    let total_sent: usize = sent.iter().map(|s| s.sent).sum();
    let acked: usize = sent.iter().map(|s| s.acked).sum();
    let undelivered: usize = sent.iter().map(|s| s.undelivered).sum();
    summary.add("sent", total_sent);
    summary.add("acked", acked);
    report_received(received, start, "msgs_per_s", summary);
    let mut acks = Latencies::default();
    for s in sent {
        acks.merge(s.acks);
        if let Some(e) = s.error {
            summary.fail(format!("sender: {e}"));
        }
    }
    acks.report("ack", summary);
    if total_sent < p * m {
        summary.fail(format!("only {total_sent} of {} messages were sent before the timeout", p * m));
    }
    if acked < total_sent {
        summary.fail(format!("{} messages were never acknowledged", total_sent - acked));
    }
    if undelivered > 0 {
        summary.fail(format!("{undelivered} messages were acknowledged as saved for an offline recipient"));
    }
}

/// Sends `m` numbered messages: after each acknowledgement (closed loop),
/// or at `(first, every)` from a writer thread while this one reads acks.
fn send(
    conn: &mut BenchConn,
    m: usize,
    clock: Clock,
    deadline: Instant,
    schedule: Option<(Instant, Duration)>,
) -> Sent {
    let mut out = Sent::default();
    let result = match schedule {
        None => (0..m).try_for_each(|seq| {
            if Instant::now() >= deadline {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "run timed out"));
            }
            let t = Instant::now();
            conn.socket.send(&clock.payload(seq, t))?;
            out.sent += 1;
            read_ack(conn, &mut out)?;
            out.acks.record(t.elapsed());
            Ok(())
        }),
        Some((first, every)) => {
            let socket = conn.socket.clone();
            std::thread::scope(|scope| {
                let writer = scope.spawn(move || -> io::Result<usize> {
                    for seq in 0..m {
                        let at = first + every.mul_f64(seq as f64);
                        if at >= deadline {
                            return Ok(seq);
                        }
                        std::thread::sleep(at.saturating_duration_since(Instant::now()));
                        socket.send(&clock.payload(seq, at))?;
                    }
                    Ok(m)
                });
                let mut read = Ok(());
                while out.acked + out.undelivered < m && Instant::now() < deadline {
                    if let Err(e) = read_ack(conn, &mut out) {
                        read = Err(e);
                        break;
                    }
                    // Acks come in order: this one is for the message
                    // scheduled at `first + every * k`.
                    let k = (out.acked + out.undelivered - 1) as f64;
                    out.acks.record(Instant::now().saturating_duration_since(first + every.mul_f64(k)));
                }
                out.sent = writer.join().expect("writer thread")?;
                read
            })
        }
    };
    if let Err(e) = result {
        out.error = Some(e.to_string());
    }
    out
}

/// Reads up to the next `SENT:` and counts it.
fn read_ack(conn: &mut BenchConn, out: &mut Sent) -> io::Result<()> {
    match conn.read_ack()? {
        Ack::Sent { delivered: true } => out.acked += 1,
        Ack::Sent { delivered: false } => out.undelivered += 1,
        other => return Err(io::Error::other(format!("expected SENT, got {other:?}"))),
    }
    Ok(())
}
