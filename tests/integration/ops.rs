//! The operational endpoints of a live chat_server: `/metrics` parsed as
//! Prometheus parses it, counters moving as users act; `/healthz`;
//! `/readyz` not ready while Redis is down and while the pod drains.

use std::io::{Read, Write};
use std::net::TcpStream;
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
