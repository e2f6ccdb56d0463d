//! A scale-down as users live it: three pods behind one address (a proxy
//! standing in for the Service), `chat_client` processes in conversations
//! across them, two pods stopped with SIGTERM in the middle. Every client
//! resumes on a pod that is left, back in its conversation; every message
//! is received exactly once; nothing is shown twice.

use std::time::{Duration, Instant};

use crate::client::ClientProc;
use crate::proxy::Proxy;
use crate::support::{unique, World, NO_RATE_LIMITS};

const PAIRS: usize = 4;
const ROUNDS: usize = 16;

#[test]
fn a_scale_down_is_one_status_line_for_chat_client_users() {
    scale_down(libc::SIGTERM);
}

/// A pod killed without a drain: what was acknowledged is never lost,
/// nothing is shown twice, what was not acknowledged is marked.
#[test]
fn a_killed_pod_loses_nothing_acknowledged() {
    scale_down(libc::SIGKILL);
}

fn scale_down(signal: libc::c_int) {
    let w = World::new("rollout");
    let env = [NO_RATE_LIMITS, ("DRAIN_SECS", "5"), ("PRESENCE_TTL_SECS", "3")];
    let mut pods: Vec<_> = (0..3).map(|_| w.start_server_with(&env)).collect();
    let service = Proxy::balance(pods.iter().map(|p| p.port).collect());
    let names: Vec<(String, String)> = (0..PAIRS).map(|_| (unique("s"), unique("r"))).collect();
    let mut clients: Vec<(ClientProc, ClientProc)> = names
        .iter()
        .map(|(s, r)| {
            let mut cs = ClientProc::start_with(service.port, &["--reconnect-for", "30"]);
            cs.signup(s, "pw");
            let mut cr = ClientProc::start_with(service.port, &["--reconnect-for", "30"]);
            cr.signup(r, "pw");
            (cs, cr)
        })
        .collect();
    // Each sender and receiver opens their conversation.
    for ((cs, cr), (s, r)) in clients.iter_mut().zip(&names) {
        for (c, other) in [(&mut *cs, r), (&mut *cr, s)] {
            c.type_line("1");
            c.wait_for("Type a username");
            c.type_line(other);
            c.wait_for("Type a message");
        }
    }
    let mut stopped = Vec::new();
    for round in 0..ROUNDS {
        if round == ROUNDS / 3 || round == 2 * ROUNDS / 3 {
            let pod = &mut pods[stopped.len()];
            // SAFETY: a signal to our own child, as Kubernetes sends it.
            unsafe { libc::kill(pod.child.id() as i32, signal) };
            stopped.push(Instant::now());
        }
        for (cs, _) in clients.iter_mut() {
            cs.type_line(&format!("m{round}"));
        }
        std::thread::sleep(Duration::from_millis(150));
    }
    // Every receiver gets every message of its sender, once.
    let mut resume_times = Vec::new();
    for ((cs, cr), (s, _)) in clients.iter_mut().zip(&names) {
        cr.wait_for(&format!("💬 {s}: m{}", ROUNDS - 1));
        cs.drain_output(Duration::from_millis(300));
        cr.drain_output(Duration::from_millis(300));
        let unconfirmed: Vec<&String> = cs.seen.iter().filter(|l| l.contains("Not confirmed")).collect();
        // A drain answers everything the client sent before it closed.
        if signal == libc::SIGTERM {
            assert!(unconfirmed.is_empty(), "{unconfirmed:?}");
        }
        for round in 0..ROUNDS {
            let line = format!("💬 {s}: m{round}");
            // "HH:MM 💬 s: m3", after a prompt or not.
            let times = cr.seen.iter().filter(|l| l.ends_with(&format!(" {line}"))).count();
            let maybe_lost = unconfirmed.iter().any(|l| l.ends_with(&format!(": m{round}")));
            assert!(times == 1 || (times == 0 && maybe_lost), "{line} shown {times} times:\n{}", cr.seen.join("\n"));
        }
        for c in [&*cs, &*cr] {
            assert!(!c.seen.iter().any(|l| l.contains("log in again")), "{}", c.seen.join("\n"));
            let lost = c.seen.iter().filter(|l| l.contains("Connection lost; reconnecting")).count();
            let back = c.seen.iter().filter(|l| l.contains("Reconnected; back where you were")).count();
            assert_eq!(lost, back, "{}", c.seen.join("\n"));
            resume_times.extend(c.resume_times());
        }
    }
    resume_times.sort();
    let worst = resume_times.last().copied().unwrap_or_default();
    eprintln!(
        "{} resumes after signal {signal} to 2 of 3 pods: median {:?}, worst {worst:?}",
        resume_times.len(),
        resume_times.get(resume_times.len() / 2).copied().unwrap_or_default()
    );
    assert!(resume_times.len() >= PAIRS, "most clients were on a stopped pod and resumed");
    assert!(worst < Duration::from_secs(5), "{worst:?}");
    if signal == libc::SIGTERM {
        for p in pods.iter_mut().take(2) {
            assert!(p.child.wait().unwrap().success());
        }
    }
}
