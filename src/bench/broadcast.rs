//! `broadcast`: one sender, R receivers, M broadcasts in a closed loop (the
//! next after `BROADCAST_SENT:`): deliveries per second, latency, losses.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use super::conn::BenchConn;
use super::stats::{Latencies, Summary};
use super::{connect_users, names, receive, report_received, Clock};
use crate::config::BenchConfig;
use crate::protocol::{Ack, Notification};

pub fn run(cfg: &BenchConfig, deadline: Instant, summary: &mut Summary) {
    let (r, m) = (cfg.receivers, cfg.messages);
    summary.add("receivers", r);
    summary.add("messages", m);
    let receivers = names(&cfg.prefix, "r", r);
    let sender = format!("{}s0", cfg.prefix);
    let Some(mut rx) =
        connect_users(&cfg.recv_hosts, &receivers, true, cfg.concurrency, deadline).all_up("receivers", summary)
    else {
        return;
    };
    let Some(mut tx) =
        connect_users(&cfg.hosts, std::slice::from_ref(&sender), true, 1, deadline).all_up("sender", summary)
    else {
        return;
    };
    let mut conn = tx.remove(0);
    if let Err(e) = conn.open_broadcast() {
        return summary.fail(format!("opening the broadcast channel: {e}"));
    }

    let clock = Clock::new();
    let sender_done = AtomicBool::new(false);
    let start = Instant::now();
    let (sent, received) = std::thread::scope(|scope| {
        let threads: Vec<_> = rx
            .iter_mut()
            .map(|c| {
                let (done, sender) = (&sender_done, sender.as_str());
                let payload = move |n| match n {
                    Notification::Broadcast { sender: from, text, .. } if from == sender => Some(text),
                    _ => None,
                };
                scope.spawn(move || receive(c, m, clock, deadline, || done.load(Ordering::SeqCst), payload))
            })
            .collect();
        let sent = send(&mut conn, m, r, clock, deadline);
        sender_done.store(true, Ordering::SeqCst);
        let received: Vec<_> = threads.into_iter().map(|t| t.join().expect("receiver thread")).collect();
        (sent, received)
    });

    let (count, short, acks, error) = sent;
    summary.add("sent", count);
    report_received(received, start, "deliveries_per_s", summary);
    acks.report("ack", summary);
    if let Some(e) = error {
        summary.fail(format!("sender: {e}"));
    }
    if count < m {
        summary.fail(format!("only {count} of {m} broadcasts were sent"));
    }
    if short > 0 {
        summary.fail(format!("{short} broadcasts reached fewer than the {r} receivers"));
    }
}

/// Sends `m` broadcasts, each after the last one's `BROADCAST_SENT:`;
/// returns (sent, acks that reached fewer than `r` users, ack latencies, error).
fn send(
    conn: &mut BenchConn,
    m: usize,
    r: usize,
    clock: Clock,
    deadline: Instant,
) -> (usize, usize, Latencies, Option<String>) {
    let (mut sent, mut short, mut acks) = (0, 0, Latencies::default());
    let result = (0..m).try_for_each(|seq| -> io::Result<()> {
        if Instant::now() >= deadline {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "run timed out"));
        }
        let t = Instant::now();
        conn.socket.send(&clock.payload(seq, t))?;
        sent += 1;
        if let Ack::BroadcastSent { reached, .. } = conn.read_ack()? {
            if reached < r {
                short += 1;
            }
        }
        acks.record(t.elapsed());
        Ok(())
    });
    (sent, short, acks, result.err().map(|e| e.to_string()))
}
