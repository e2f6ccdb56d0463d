//! The operational endpoints of a live chat_server: `/metrics` parsed as
//! Prometheus parses it, counters moving as users act; `/healthz`;
//! `/readyz` not ready while Redis is down and while the pod drains;
//! `/healthz` fast, threads and memory flat while 1,000 hostile clients
//! hold the port.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chatp::protocol::{self, input};

use crate::support::{services, unique, PrivateService, ServerProc, Services, World};

/// The port of the server's `/healthz`, `/readyz`, `/metrics`.
pub fn ops_port(server: &ServerProc) -> u16 {
    server.wait_log("health and metrics on http://");
    let log = server.log_text();
    let addr = log.split("health and metrics on http://").nth(1).unwrap().split_whitespace().next().unwrap();
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

/// `GET path`: (status, body).
pub fn get(port: u16, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    let status = reply.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = reply.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// A sample of `/metrics` with these labels (0 if absent).
pub fn sample(port: u16, name: &str, labels: &[(&str, &str)]) -> f64 {
    let (status, body) = get(port, "/metrics");
    assert_eq!(status, 200);
    let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).expect("valid text format");
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => v,
            prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

pub(crate) fn wait_status(port: u16, path: &str, want: u16, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let (status, body) = get(port, path);
        if status == want {
            return body;
        }
        assert!(Instant::now() < deadline, "{path} stayed {status}: {body}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn metrics_move_as_users_act_and_probes_answer() {
    let w = World::new("ops");
    let server = w.start_server();
    let port = ops_port(&server);
    assert_eq!(get(port, "/healthz"), (200, "ok\n".to_string()));
    assert_eq!(get(port, "/readyz").0, 200);
    assert_eq!(get(port, "/nothing").0, 404);

    let stored = || sample(port, "chatp_messages_stored_total", &[("kind", "private")]);
    let before = stored();
    let (a, b) = (unique("a"), unique("b"));
    let mut cb = server.connect();
    cb.signup(&b, "pw");
    let mut ca = server.connect();
    ca.signup(&a, "pw");
    assert_eq!(sample(port, "chatp_connections", &[("state", "logged_in")]), 2.0);
    assert!(sample(port, "chatp_logins_total", &[("result", "signup")]) >= 2.0);
    ca.open_conversation(&b);
    for i in 0..3 {
        ca.send(&format!("m{i}"));
        ca.expect(&protocol::sent(true));
    }
    assert_eq!(stored() - before, 3.0);
    assert_eq!(sample(port, "chatp_notifications_delivered_total", &[("kind", "private")]), 3.0);
    assert_eq!(sample(port, "chatp_store_seconds_count", &[("kind", "private")]), 3.0);
    ca.send(input::BACK);
    ca.lines_until(protocol::CONTACT_LIST_END);
    ca.send(input::BACK);
    ca.expect_menu();
    ca.send(input::BYE);
    ca.expect_closed();
    let deadline = Instant::now() + Duration::from_secs(5);
    while sample(port, "chatp_connections", &[("state", "logged_in")]) != 1.0 {
        assert!(Instant::now() < deadline, "the logged-in gauge did not go down");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn readyz_says_why_while_redis_is_down_and_while_draining() {
    let (redis, redis_port) = PrivateService::start("redis");
    let w = World::on(Services { redis_port, ..services() }, "ops");
    let mut server = w.start_server_with(&[("DRAIN_SECS", "4")]);
    let port = ops_port(&server);
    wait_status(port, "/readyz", 200, Duration::from_secs(5));
    redis.run("stop");
    let why = wait_status(port, "/readyz", 503, Duration::from_secs(10));
    assert!(why.contains("Redis"), "{why}");
    assert_eq!(get(port, "/healthz").0, 200, "alive all the same");
    redis.run("start");
    wait_status(port, "/readyz", 200, Duration::from_secs(15));

    // A protocol-2 client that never closes its side keeps the drain open.
    let mut c = server.connect();
    c.hello();
    c.send(input::SIGNUP);
    c.expect(protocol::SIGNUP_PROMPT);
    c.send(&unique("d"));
    c.send("pw");
    c.lines_until(protocol::MAIN_MENU_END);
    // SAFETY: SIGTERM to our own child.
    unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) };
    let why = wait_status(port, "/readyz", 503, Duration::from_secs(3));
    assert!(why.contains("draining"), "{why}");
    assert!(server.child.wait().unwrap().success());
}

#[test]
fn every_known_series_is_exported_at_zero_from_the_start() {
    let w = World::new("ops_zero");
    let server = w.start_server();
    let (status, body) = get(ops_port(&server), "/metrics");
    assert_eq!(status, 200);
    for series in [
        "chatp_logins_total{result=\"failed\"} 0",
        "chatp_logins_total{result=\"resumed\"} 0",
        "chatp_messages_stored_total{kind=\"group\"} 0",
        "chatp_rate_limited_total{kind=\"broadcast\"} 0",
        "chatp_storage_errors_total{service=\"redis\"} 0",
        "chatp_tls_handshakes_total{result=\"timeout\"} 0",
        "chatp_tls_certificate_reloads_total{result=\"failed\"} 0",
        "chatp_notifications_delivered_total{kind=\"private\"} 0",
        "chatp_thread_panics_total 0",
    ] {
        assert!(body.lines().any(|l| l == series), "no {series:?} in:\n{body}");
    }
}

/// `Threads` and `VmRSS` (KiB) of a process, from /proc.
pub fn threads_and_rss(pid: u32) -> (usize, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> usize {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    (field("Threads:"), field("VmRSS:"))
}

/// What one hostile client does, by its index.
#[derive(Clone, Copy)]
enum Hostile {
    /// Sends half a head and waits.
    HalfSent,
    /// Sends a header line every 300 ms, never the end of the head.
    SlowWriter,
    /// Sends `/readyz` requests back to back as fast as the socket takes
    /// them, reading nothing it does not have to.
    Pipeliner,
}

/// `count` hostile clients on `port` until `stop`, spread over a few
/// threads; each reconnects when the server closes it. Counts connections.
fn hostile_clients(
    port: u16,
    count: usize,
    stop: Arc<AtomicBool>,
    opened: Arc<AtomicUsize>,
) -> Vec<std::thread::JoinHandle<()>> {
    const THREADS: usize = 4;
    (0..THREADS)
        .map(|t| {
            let (stop, opened) = (Arc::clone(&stop), Arc::clone(&opened));
            std::thread::spawn(move || {
                let kinds = [Hostile::HalfSent, Hostile::SlowWriter, Hostile::Pipeliner];
                let mine: Vec<Hostile> = (t..count).step_by(THREADS).map(|i| kinds[i % 3]).collect();
                let mut socks: Vec<Option<TcpStream>> = mine.iter().map(|_| None).collect();
                let pipelined = b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n".repeat(64);
                let mut sink = [0u8; 16 * 1024];
                let mut round = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    round += 1;
                    // At most 25 (re)connections per thread and round: a
                    // flood, but one that leaves the 2 cores to the others.
                    let mut connects = 0;
                    for (kind, slot) in mine.iter().zip(socks.iter_mut()) {
                        if slot.is_none() {
                            if connects == 25 {
                                continue;
                            }
                            connects += 1;
                            let Ok(s) = TcpStream::connect(("127.0.0.1", port)) else { continue };
                            s.set_nonblocking(true).unwrap();
                            opened.fetch_add(1, Ordering::Relaxed);
                            let first: &[u8] = match kind {
                                Hostile::HalfSent | Hostile::SlowWriter => b"GET /readyz HTTP/1.1\r\nHost: x\r\n",
                                Hostile::Pipeliner => &pipelined,
                            };
                            let _ = (&s).write(first);
                            *slot = Some(s);
                            continue;
                        }
                        let Some(s) = slot.as_mut() else { continue };
                        let closed = match s.read(&mut sink) {
                            Ok(0) => true,
                            Ok(_) => false,
                            Err(e) => e.kind() != ErrorKind::WouldBlock,
                        };
                        let write_failed = match kind {
                            Hostile::HalfSent => false,
                            Hostile::SlowWriter if round.is_multiple_of(6) => {
                                s.write(b"X-Slow: 1\r\n").is_err_and(|e| e.kind() != ErrorKind::WouldBlock)
                            }
                            Hostile::SlowWriter => false,
                            Hostile::Pipeliner => s.write(&pipelined).is_err_and(|e| e.kind() != ErrorKind::WouldBlock),
                        };
                        if closed || write_failed {
                            *slot = None;
                        }
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
        })
        .collect()
}

#[test]
fn healthz_answers_fast_while_a_thousand_hostile_clients_hold_the_ops_port() {
    let w = World::new("ops_hostile");
    let server = w.start_server();
    let port = ops_port(&server);
    let pid = server.child.id();
    assert_eq!(get(port, "/readyz").0, 200);
    let (threads_before, rss_before) = threads_and_rss(pid);

    let stop = Arc::new(AtomicBool::new(false));
    let opened = Arc::new(AtomicUsize::new(0));
    let attackers = hostile_clients(port, 1000, Arc::clone(&stop), Arc::clone(&opened));
    let (mut slowest, mut max_threads, mut max_rss) = (Duration::ZERO, threads_before, rss_before);
    let mut answered = 0;
    let started = Instant::now();
    // Let the attack build up, then probe as the kubelet would for 6 s.
    std::thread::sleep(Duration::from_secs(1));
    while started.elapsed() < Duration::from_secs(7) {
        let asked = Instant::now();
        let (status, body) = get(port, "/healthz");
        let took = asked.elapsed();
        assert_eq!((status, body.as_str()), (200, "ok\n"));
        slowest = slowest.max(took);
        answered += 1;
        let (threads, rss) = threads_and_rss(pid);
        (max_threads, max_rss) = (max_threads.max(threads), max_rss.max(rss));
        std::thread::sleep(Duration::from_millis(250));
    }
    stop.store(true, Ordering::SeqCst);
    for a in attackers {
        a.join().unwrap();
    }
    let opened = opened.load(Ordering::Relaxed);
    eprintln!(
        "hostile ops clients: {opened} connections opened in 7 s; /healthz slowest of {answered}: {slowest:?}; \
         threads {threads_before} -> max {max_threads}; VmRSS {rss_before} -> max {max_rss} KiB"
    );
    assert!(opened >= 1000, "the attack reached the port: {opened} connections");
    assert!(slowest < Duration::from_secs(1), "/healthz took {slowest:?} under attack (the liveness probe waits 1 s)");
    assert!(max_threads <= threads_before + 2, "threads {threads_before} -> {max_threads}: one per connection?");
    assert!(max_rss < rss_before + 32 * 1024, "VmRSS {rss_before} -> {max_rss} KiB");
    assert_eq!(get(port, "/readyz").0, 200, "still ready after the attack");
}
