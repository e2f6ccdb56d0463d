//! A client that stops reading never blocks anyone else, and is
//! disconnected once its outbound queue overflows.

use std::time::{Duration, Instant};

use chatp::protocol::{self, input};

use crate::support::{unique, Client, World, NO_RATE_LIMITS};

#[test]
fn stalled_reader_is_disconnected_and_never_slows_the_sender() {
    let w = World::new("slow");
    let server = w.start_server_with(&[("OUTBOUND_QUEUE", "8"), NO_RATE_LIMITS]);
    let (sender, stalled) = (unique("s"), unique("z"));
    // A tiny receive buffer so the kernel holds little for the stalled one.
    let mut cz = Client::connect_with_rcvbuf(server.port, 4096);
    cz.signup(&stalled, "pw");
    let mut cs = server.connect();
    cs.signup(&sender, "pw");
    cs.open_broadcast();

    let big = "b".repeat(4000);
    let started = Instant::now();
    let mut sent = 0;
    let needle = format!("disconnect {stalled}@");
    while !server.log_text().contains(&needle) {
        assert!(sent < 5000, "stalled client never disconnected");
        cs.send(&big);
        // Every acknowledgement arrives (within LINE_TIMEOUT) while the
        // other client reads nothing.
        let ack = cs.line();
        assert!(ack.starts_with(&protocol::broadcast_sent(0, 0)[..20]), "{ack}");
        sent += 1;
    }
    eprintln!("stalled client dropped after {sent} broadcasts in {:?}", started.elapsed());
    assert!(server.log_text().contains("outbound queue full"), "{}", server.log_text());
    w.wait_online("stalled user offline", Duration::from_secs(5), |u| u == [sender.clone()]);
    cs.send(input::BACK);
    cs.expect_menu();
}

#[test]
fn sigterm_disconnects_everyone_and_leaves_presence() {
    let w = World::new("slow");
    let mut server = w.start_server();
    let name = unique("t");
    let mut c = server.connect();
    c.signup(&name, "pw");
    w.wait_online("online", Duration::from_secs(5), |u| u.len() == 1);
    // SAFETY: sending SIGTERM to our own child process.
    unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) };
    c.expect_closed();
    let status = server.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(w.online_users().is_empty());
    let open: i64 = w.db().query_one("SELECT COUNT(*) FROM sessions WHERE is_active", &[]).unwrap().get(0);
    assert_eq!(open, 0);
    let pods: Vec<String> = redis::cmd("SMEMBERS").arg(w.keys().pods()).query(&mut w.redis()).unwrap();
    assert!(pods.is_empty(), "{pods:?}");
}
