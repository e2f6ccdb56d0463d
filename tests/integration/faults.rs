//! Sick infrastructure, injected for real: Redis behind a proxy that goes
//! silent, a pod frozen with SIGSTOP past the presence TTL, PostgreSQL
//! holding a table lock, a client whose packets stop. In each case every
//! acknowledged message is in history exactly once, nothing refused is,
//! and live delivery and presence heal by themselves within a bound.

use std::time::{Duration, Instant};

use chatp::protocol;

use crate::proxy::Proxy;
use crate::support::{services, unique, Client, PrivateService, ServerProc, Services, World, NO_RATE_LIMITS};

const FAST: &[(&str, &str)] = &[("PRESENCE_TTL_SECS", "3"), NO_RATE_LIMITS];

/// How often each text is in `messages`.
fn stored_count(w: &World, text: &str) -> i64 {
    w.db().query_one("SELECT COUNT(*) FROM messages WHERE message_text = $1", &[&text]).unwrap().get(0)
}

/// Every acknowledged text is in history exactly once; no refused one is.
fn assert_history(w: &World, acked: &[String], refused: &[String]) {
    for m in acked {
        assert_eq!(stored_count(w, m), 1, "acknowledged {m:?}");
    }
    for m in refused {
        assert_eq!(stored_count(w, m), 0, "refused {m:?}");
    }
}

/// `a` on `p1` in a conversation with `b` on `p2`, one message ("before")
/// already across: (a, a's connection, b's connection).
fn conversation_across(p1: &ServerProc, p2: &ServerProc) -> (String, Client, Client) {
    let (a, b) = (unique("a"), unique("b"));
    let mut cb = p2.connect();
    cb.signup(&b, "pw");
    let mut ca = p1.connect();
    ca.signup(&a, "pw");
    ca.open_conversation(&b);
    assert!(send_dm(&mut ca, "before"));
    cb.expect(&protocol::message(&a, "before"));
    (a, ca, cb)
}

/// A user `a` in a conversation with another, `b`, on `server`: (a, a's
/// connection).
fn sender_in_a_conversation(server: &ServerProc) -> (String, Client) {
    let (a, b) = (unique("a"), unique("b"));
    server.connect().signup(&b, "pw");
    let mut ca = server.connect();
    ca.signup(&a, "pw");
    ca.open_conversation(&b);
    (a, ca)
}

/// Sends `text` in an open conversation; `true` if acknowledged (either
/// form of `SENT:`), `false` if refused with `ERROR:`.
fn send_dm(c: &mut Client, text: &str) -> bool {
    c.send(text);
    let answer = c.line();
    if answer == protocol::sent(true) || answer == protocol::sent(false) {
        true
    } else {
        assert!(answer.starts_with(&protocol::error("")), "{answer}");
        false
    }
}

/// Reads lines until one equals `line`, for up to `limit`.
fn wait_for_line(c: &mut Client, line: &str, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    c.stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut found = false;
    while Instant::now() < deadline {
        let mut buf = String::new();
        match std::io::BufRead::read_line(c.reader_mut(), &mut buf) {
            Ok(0) => break,
            Ok(_) if buf.trim_end_matches('\n') == line => {
                found = true;
                break;
            }
            _ => {}
        }
    }
    c.stream.set_read_timeout(Some(crate::support::LINE_TIMEOUT)).unwrap();
    found
}

#[test]
fn redis_going_silent_heals_cross_pod_delivery() {
    let w = World::new("faults");
    let proxy = Proxy::start(w.services.redis_port);
    let proxy_port = proxy.port.to_string();
    let via_proxy = [FAST, &[("REDIS_PORT", proxy_port.as_str())]].concat();
    let (p1, p2) = (w.start_server_with(&via_proxy), w.start_server_with(&via_proxy));
    let (a, mut ca, mut cb) = conversation_across(&p1, &p2);

    // Every Redis connection of both pods goes silent (no FIN, no RST).
    proxy.freeze();
    let frozen = Instant::now();
    // Let the proxy's pumps notice (they poll every 50 ms).
    std::thread::sleep(Duration::from_millis(200));
    let mut acked = vec!["before".to_string()];
    let mut refused = Vec::new();
    let mut healed = None;
    for i in 0.. {
        assert!(frozen.elapsed() < Duration::from_secs(30), "cross-pod delivery did not come back");
        let msg = format!("during {i}");
        if send_dm(&mut ca, &msg) {
            acked.push(msg.clone());
        } else {
            refused.push(msg.clone());
        }
        if wait_for_line(&mut cb, &protocol::message(&a, &msg), Duration::from_millis(500)) {
            healed = Some(frozen.elapsed());
            break;
        }
    }
    let healed = healed.unwrap();
    eprintln!("Redis black hole: cross-pod delivery back after {healed:?}");
    assert!(healed < Duration::from_secs(15), "{healed:?}");
    assert!(p2.log_text().contains("pub/sub"), "{}", p2.log_text());
    // Both users are online again on presence (rewritten after reconnect).
    w.wait_online("both back", Duration::from_secs(10), |u| u.len() == 2);
    assert_history(&w, &acked, &refused);
}

#[test]
fn redis_stopped_for_ten_seconds_then_restarted_empty() {
    let (redis, port) = PrivateService::start("redis");
    let w = World::on(Services { redis_port: port, ..services() }, "faults");
    let (p1, p2) = (w.start_server_with(FAST), w.start_server_with(FAST));
    let (a, mut ca, mut cb) = conversation_across(&p1, &p2);

    redis.run("stop");
    let stopped = Instant::now();
    let mut acked = vec!["before".to_string()];
    // Ten seconds without Redis: messages are still stored and answered
    // (as not delivered: no pod could be told), each within a second: a
    // sender never waits on Redis.
    let mut i = 0;
    let mut slowest = Duration::ZERO;
    while stopped.elapsed() < Duration::from_secs(10) {
        let msg = format!("while down {i}");
        let t = Instant::now();
        assert!(send_dm(&mut ca, &msg), "{msg}");
        slowest = slowest.max(t.elapsed());
        acked.push(msg);
        i += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(slowest < Duration::from_secs(1), "an answer took {slowest:?} while Redis was down");
    redis.run("start");
    let restarted = Instant::now();
    // Presence comes back from the pods (Redis restarted empty).
    w.wait_online("both back", Duration::from_secs(10), |u| u.len() == 2);
    let present = restarted.elapsed();
    let mut healed = None;
    for i in 0..40 {
        let msg = format!("after {i}");
        assert!(send_dm(&mut ca, &msg));
        acked.push(msg.clone());
        if wait_for_line(&mut cb, &protocol::message(&a, &msg), Duration::from_millis(250)) {
            healed = Some(restarted.elapsed());
            break;
        }
    }
    let healed = healed.expect("cross-pod delivery never came back after the restart");
    eprintln!("Redis restarted: presence back after {present:?}, cross-pod delivery after {healed:?}");
    // The subscriber retries every half second at most, and its reconnect
    // rewrites the pod's presence at once.
    assert!(healed < Duration::from_secs(2), "{healed:?}");
    assert_history(&w, &acked, &[]);
}

#[test]
fn a_pod_frozen_past_the_ttl_comes_back_into_presence() {
    let w = World::new("faults");
    let (p1, p2) = (w.start_server_with(FAST), w.start_server_with(FAST));
    let (a, b) = (unique("a"), unique("b"));
    let mut ca = p1.connect();
    ca.signup(&a, "pw");
    let mut cb = p2.connect();
    cb.signup(&b, "pw");
    w.wait_online("both", Duration::from_secs(5), |u| u.len() == 2);

    let pid = p1.child.id() as i32;
    // SAFETY: signals to our own child process.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    // p2 reaps the silent pod: a leaves presence, a's session row closes.
    w.wait_online("a reaped", Duration::from_secs(15), |u| u == [b.clone()]);
    let open = |w: &World| -> i64 {
        w.db()
            .query_one(
                "SELECT COUNT(*) FROM sessions s JOIN users u USING (user_id) WHERE u.username = $1 AND s.is_active",
                &[&a],
            )
            .unwrap()
            .get(0)
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while open(&w) != 0 {
        assert!(Instant::now() < deadline, "a's session row was never closed by the reaper");
        std::thread::sleep(Duration::from_millis(100));
    }
    unsafe { libc::kill(pid, libc::SIGCONT) };
    let woke = Instant::now();
    // Back within one heartbeat (1 s with a 3 s TTL), plus margin.
    w.wait_online("a back", Duration::from_secs(5), |u| u.len() == 2);
    eprintln!("pod resumed: its user back in presence after {:?}", woke.elapsed());
    // Reachable: b's message to a is delivered live and counted delivered.
    cb.open_conversation(&a);
    // Reachable: b's messages to a are delivered live as soon as p1 has
    // resubscribed, and acknowledged as delivered only when they are.
    let mut reached = None;
    for i in 0..10 {
        let msg = format!("welcome back {i}");
        cb.send(&msg);
        let delivered = cb.line() == protocol::sent(true);
        let arrived = wait_for_line(&mut ca, &protocol::message(&b, &msg), Duration::from_millis(300));
        assert!(arrived || !delivered, "{msg} acknowledged as delivered but never arrived");
        if arrived && delivered {
            reached = Some(woke.elapsed());
            break;
        }
    }
    let reached = reached.expect("a never became reachable after SIGCONT");
    eprintln!("pod resumed: its user reachable after {reached:?}");
    assert!(reached < Duration::from_secs(3), "{reached:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while open(&w) != 1 {
        assert!(Instant::now() < deadline, "a's session row was not reopened");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(p1.log_text().contains("reaped while alive"), "{}", p1.log_text());
}

#[test]
fn a_table_lock_in_postgresql_never_costs_or_doubles_an_acknowledged_message() {
    let w = World::new("faults");
    let server = w.start_server_with(&[NO_RATE_LIMITS]);
    let (_, mut ca) = sender_in_a_conversation(&server);
    assert!(send_dm(&mut ca, "unlocked 0"));

    // Another session holds messages exclusively for 7 s (lock_timeout 5 s).
    let mut locker = w.db();
    let holder = std::thread::spawn(move || {
        let mut tx = locker.transaction().unwrap();
        tx.batch_execute("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE").unwrap();
        std::thread::sleep(Duration::from_secs(7));
        tx.commit().unwrap();
    });
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let (mut acked, mut refused) = (vec!["unlocked 0".to_string()], Vec::new());
    for i in 0..3 {
        let msg = format!("locked {i}");
        if send_dm(&mut ca, &msg) {
            acked.push(msg);
        } else {
            refused.push(msg);
        }
    }
    let waited = started.elapsed();
    holder.join().unwrap();
    for i in 1..3 {
        let msg = format!("unlocked {i}");
        assert!(send_dm(&mut ca, &msg), "{msg} after the lock was released");
        acked.push(msg);
    }
    eprintln!("table lock: {} acknowledged, {} refused, first answers after {waited:?}", acked.len(), refused.len());
    assert!(!refused.is_empty(), "a 7 s lock with lock_timeout 5 s refuses something");
    assert!(waited < Duration::from_secs(20), "{waited:?}");
    assert_history(&w, &acked, &refused);
}

#[test]
fn a_client_whose_packets_stop_leaves_presence_within_the_bound() {
    let w = World::new("faults");
    let server = w.start_server_with(&[NO_RATE_LIMITS, ("CLIENT_TIMEOUT_SECS", "3")]);
    let proxy = Proxy::start(server.port);
    let (a, gone) = (unique("a"), unique("gone"));
    let mut cg = Client::connect(proxy.port);
    cg.signup(&gone, "pw");
    let mut ca = server.connect();
    ca.signup(&a, "pw");
    w.wait_online("both", Duration::from_secs(5), |u| u.len() == 2);
    ca.open_conversation(&gone);

    proxy.freeze();
    let frozen = Instant::now();
    // Messages keep coming for the vanished user; nothing acknowledges them.
    let text = "m".repeat(3000);
    let mut sent = 0;
    while w.online_users().len() == 2 {
        assert!(frozen.elapsed() < Duration::from_secs(40), "the vanished client is still online");
        assert!(send_dm(&mut ca, &text));
        sent += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    let left = frozen.elapsed();
    eprintln!("vanished client left presence after {left:?} ({sent} messages sent to it meanwhile)");
    // TCP_USER_TIMEOUT on the closed window (seen by a read or a write), or
    // the outbound queue filling up, whichever comes first.
    let log = server.log_text();
    let gone = format!("disconnect {gone}@");
    assert!(log.lines().any(|l| l.contains(&gone)), "{log}");
    assert!(left < Duration::from_secs(30), "{left:?}");
    // Further messages say so.
    ca.send("after");
    ca.expect(&protocol::sent(false));
    drop(cg);
}

#[test]
fn a_pod_that_cannot_migrate_waits_without_stopping_the_others() {
    let w = World::new("faults");
    let p1 = w.start_server_with(&[NO_RATE_LIMITS]);
    let (_, mut ca) = sender_in_a_conversation(&p1);
    // A second pod finds an older schema version, while a long read (as
    // pg_dump does) holds a lock its ALTER TABLE needs.
    let mut db = w.db();
    db.execute("UPDATE chatp_schema SET version = 'older'", &[]).unwrap();
    let mut reader = w.db();
    let mut long_read = reader.transaction().unwrap();
    long_read.query("SELECT COUNT(*) FROM users", &[]).unwrap();
    let w2 = World { services: w.services.clone(), db_name: w.db_name.clone(), prefix: w.prefix.clone() };
    let second = std::thread::spawn(move || w2.start_server_with(&[NO_RATE_LIMITS]));
    std::thread::sleep(Duration::from_millis(500));
    // Meanwhile the first pod goes on storing messages, each within a
    // lock wait of the migration (500 ms) at worst.
    let mut slowest = Duration::ZERO;
    for i in 0..8 {
        let t = Instant::now();
        assert!(send_dm(&mut ca, &format!("during migration {i}")));
        slowest = slowest.max(t.elapsed());
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(!second.is_finished(), "the second pod migrated through a held lock");
    long_read.commit().unwrap();
    let p2 = second.join().unwrap();
    eprintln!("while a pod waited to migrate, the slowest acknowledgement on another took {slowest:?}");
    assert!(slowest < Duration::from_secs(2), "{slowest:?}");
    assert!(p2.log_text().contains("waits for a table lock"), "{}", p2.log_text());
    let version: String = db.query_one("SELECT version FROM chatp_schema", &[]).unwrap().get(0);
    assert_ne!(version, "older");
    // The next start finds the version and takes no lock at all.
    let mut reader = w.db();
    let mut long_read = reader.transaction().unwrap();
    long_read.query("SELECT COUNT(*) FROM users", &[]).unwrap();
    let p3 = w.start_server_with(&[NO_RATE_LIMITS]);
    assert!(!p3.log_text().contains("waits for a table lock"), "{}", p3.log_text());
    long_read.commit().unwrap();
}

/// A Redis of the test's own (no persistence), killed on drop.
struct RedisProc(std::process::Child);

impl RedisProc {
    /// `redis-server [conf] --port PORT ... extra`: a config file must come
    /// first.
    fn start(port: u16, conf: Option<&std::path::Path>, extra: &[&str]) -> RedisProc {
        let mut cmd = std::process::Command::new("redis-server");
        cmd.args(conf)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(std::env::temp_dir())
            .args(extra)
            .stdout(std::process::Stdio::null());
        let child = cmd.spawn().expect("redis-server (scripts/services.sh installs it)");
        wait_port(port);
        RedisProc(child)
    }
}

impl Drop for RedisProc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Redis Sentinel (issue 24): a master, a replica and a sentinel, the pods
/// given only the sentinel. The master is killed (-9) under a conversation
/// across pods; the sentinel promotes the replica, every message is
/// answered within a second throughout, and live delivery comes back within
/// seconds of the promotion with nothing acknowledged lost.
#[test]
fn pods_follow_a_sentinel_failover() {
    let (master_port, replica_port, sentinel_port) = (free_port(), free_port(), free_port());
    let mut master = RedisProc::start(master_port, None, &[]);
    let _replica = RedisProc::start(replica_port, None, &["--replicaof", "127.0.0.1", &master_port.to_string()]);
    let name = unique("m");
    let conf = std::env::temp_dir().join(format!("{name}.conf"));
    std::fs::write(
        &conf,
        format!(
            "sentinel monitor {name} 127.0.0.1 {master_port} 1\n\
             sentinel down-after-milliseconds {name} 500\nsentinel failover-timeout {name} 2000\n"
        ),
    )
    .unwrap();
    let _sentinel = RedisProc::start(sentinel_port, Some(&conf), &["--sentinel"]);
    // The replica has caught up before anything is written.
    let mut replica =
        redis::Client::open(format!("redis://127.0.0.1:{replica_port}/")).unwrap().get_connection().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while redis::cmd("INFO")
        .arg("replication")
        .query::<String>(&mut replica)
        .unwrap()
        .contains("master_link_status:down")
    {
        assert!(Instant::now() < deadline, "the replica never synced");
        std::thread::sleep(Duration::from_millis(100));
    }

    let w = World::on(Services { redis_port: master_port, ..services() }, "faults");
    let sentinels = format!("127.0.0.1:{sentinel_port}");
    let env = [("REDIS_SENTINELS", sentinels.as_str()), ("REDIS_MASTER_NAME", name.as_str()), FAST[0], FAST[1]];
    // REDIS_HOST points nowhere: only the sentinel can lead the pods to Redis.
    let env = [env.as_slice(), &[("REDIS_HOST", "127.0.0.9"), ("REDIS_PORT", "1")]].concat();
    let (p1, p2) = (w.start_server_with(&env), w.start_server_with(&env));
    let (a, mut ca, mut cb) = conversation_across(&p1, &p2);

    let _ = master.0.kill();
    let killed = Instant::now();
    let mut acked = vec!["before".to_string()];
    let mut slowest = Duration::ZERO;
    let mut healed = None;
    for i in 0..150 {
        let msg = format!("failover {i}");
        let t = Instant::now();
        assert!(send_dm(&mut ca, &msg), "{msg}");
        slowest = slowest.max(t.elapsed());
        acked.push(msg.clone());
        if wait_for_line(&mut cb, &protocol::message(&a, &msg), Duration::from_millis(100)) {
            healed = Some(killed.elapsed());
            break;
        }
    }
    let healed = healed.expect("cross-pod delivery never came back after the failover");
    eprintln!("Sentinel failover: cross-pod delivery back {healed:?} after the kill; slowest answer {slowest:?}");
    assert!(slowest < Duration::from_secs(1), "an answer took {slowest:?} during the failover");
    assert!(healed < Duration::from_secs(10), "{healed:?}");
    drop(master);
    // The pods write to the promoted replica now (the sentinel closed the
    // replica's client connections when it promoted it).
    drop(replica);
    let mut promoted =
        redis::Client::open(format!("redis://127.0.0.1:{replica_port}/")).unwrap().get_connection().unwrap();
    let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut promoted).unwrap();
    assert_eq!(redis::from_redis_value::<String>(&role[0]).unwrap(), "master");
    let online: Vec<String> = redis::cmd("SMEMBERS").arg(w.keys().online_users()).query(&mut promoted).unwrap();
    assert_eq!(online.len(), 2, "{online:?}");
    assert_history(&w, &acked, &[]);
    let _ = std::fs::remove_file(conf);
}
