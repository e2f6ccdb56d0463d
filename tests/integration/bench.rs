//! `chat_bench` smoke runs: every scenario, a few users and messages, on
//! real servers; each must exit 0 (nothing lost) and report its figures.
//! Never a throughput threshold: that is `scripts/bench.sh`'s job.

use std::collections::HashMap;
use std::process::Command;

use crate::support::{unique, World};

fn bench(args: &[&str], ports: &[u16]) -> HashMap<String, String> {
    let host = |p: &u16| format!("127.0.0.1:{p}");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chat_bench"));
    cmd.args(args).args(["--hosts", &host(&ports[0]), "--prefix", &unique("bn"), "--timeout", "60"]);
    if let Some(recv) = ports.get(1) {
        cmd.args(["--recv-hosts", &host(recv)]);
    }
    let out = cmd.output().expect("run chat_bench");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "chat_bench {args:?} failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.lines().count(), 1, "one summary line: {stdout}");
    stdout.split_whitespace().filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.into(), v.into())).collect()
}

#[test]
fn every_scenario_runs_without_loss() {
    let world = World::new("bench");
    // chat_bench sends as fast as the server answers: no per-user limits.
    let a = world.start_unlimited_server();
    let b = world.start_unlimited_server();
    let pid = a.child.id().to_string();

    let s = bench(&["signup", "-n", "4", "-c", "2"], &[a.port]);
    assert_eq!((s["ok"].as_str(), s["failed"].as_str()), ("4", "0"));
    let s = bench(&["login", "-n", "4", "-c", "2", "--pid", &pid], &[a.port]);
    assert_eq!(s["ok"], "4");
    assert!(s["server_cpu_ms_each"].parse::<f64>().is_ok(), "{s:?}");

    for (args, ports) in [
        (vec!["dm", "-p", "2", "-m", "20"], vec![a.port]),
        (vec!["dm", "-p", "2", "-m", "20"], vec![a.port, b.port]),
        (vec!["dm", "-p", "2", "-m", "10", "--rate", "200"], vec![a.port]),
    ] {
        let s = bench(&args, &ports);
        let sent = if args.contains(&"--rate") { "20" } else { "40" };
        assert_eq!((s["sent"].as_str(), s["acked"].as_str(), s["delivered"].as_str()), (sent, sent, sent), "{args:?}");
        assert_eq!((s["lost"].as_str(), s["duplicated"].as_str()), ("0", "0"), "{args:?}");
        assert_eq!(s["cross_pod"], (ports.len() == 2).to_string());
    }

    let s = bench(&["broadcast", "-r", "3", "-m", "10"], &[a.port]);
    assert_eq!((s["delivered"].as_str(), s["lost"].as_str()), ("30", "0"));

    // Sessions made on a, resumed on b: no Argon2 on the way.
    let b_pid = b.child.id().to_string();
    let s = bench(&["resume", "-n", "4", "-c", "2", "--pid", &b_pid], &[a.port, b.port]);
    assert_eq!((s["ok"].as_str(), s["failed"].as_str()), ("4", "0"), "{s:?}");
    assert!(s["server_cpu_ms_each"].parse::<f64>().is_ok(), "{s:?}");

    // The failover drill's load: every send, answer and delivery logged.
    let events = std::env::temp_dir().join(unique("drill-events"));
    let path = events.to_str().expect("temp path");
    let s = bench(&["drill", "-p", "2", "--rate", "100", "-s", "1", "--events", path], &[a.port, b.port]);
    assert_eq!((s["sent"].as_str(), s["answered"].as_str()), ("100", "100"), "{s:?}");
    let log = std::fs::read_to_string(&events).expect("drill events");
    let _ = std::fs::remove_file(&events);
    let count = |kind: &str| log.lines().filter(|l| l.starts_with(kind)).count();
    assert_eq!((count("sent "), count("ack "), count("recv "), count("refused ")), (100, 100, 100, 0), "{log}");
    assert!(log.lines().filter(|l| l.starts_with("ack ")).all(|l| l.contains(" delivered ")), "{log}");

    let s = bench(&["idle", "-c", "5", "-s", "1", "--pid", &pid], &[a.port]);
    assert_eq!((s["up"].as_str(), s["alive_after_hold"].as_str()), ("5", "5"));
    assert!(s["rss_per_conn_kib"].parse::<f64>().is_ok(), "{s:?}");
}

/// `chat_bench seed` fills an empty database as a big team's, with the
/// original Python chatp's tables only; chat_server then migrates it and
/// its seeded users log in (password `pw`) and find their history.
#[test]
fn seed_fills_a_python_era_database_that_chat_server_takes_over() {
    let w = World::new("seed");
    let out = w
        .command(env!("CARGO_BIN_EXE_chat_bench"))
        .args(["seed", "-n", "6000", "--groups", "8", "-m", "3000"])
        .output()
        .expect("run chat_bench seed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let s: HashMap<&str, &str> = stdout.split_whitespace().filter_map(|kv| kv.split_once('=')).collect();
    assert!(s["seconds"].parse::<f64>().is_ok(), "{stdout}");
    let count = |sql: &str| -> i64 { w.db().query_one(sql, &[]).unwrap().get(0) };
    assert_eq!(count("SELECT count(*) FROM users"), 6000);
    assert_eq!(count("SELECT count(*) FROM groups"), 8);
    let messages = count("SELECT (SELECT count(*) FROM messages) + (SELECT count(*) FROM group_messages) + (SELECT count(*) FROM broadcast_messages)");
    assert_eq!(messages, 3000);
    // Only the original's tables: chatp's own are made by its migration.
    assert_eq!(count("SELECT count(*) FROM pg_tables WHERE tablename = 'chatp_schema'"), 0);
    // A long tail: the first group is the biggest.
    let sizes: Vec<i64> = w
        .db()
        .query("SELECT count(*) FROM group_members GROUP BY group_id ORDER BY group_id", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(sizes[0] == 5000 && sizes[7] < 2000, "a long tail: {sizes:?}");

    let server = w.start_server();
    let mut c = server.connect();
    c.login("u000001", "pw");
    assert_eq!(count("SELECT count(*) FROM pg_tables WHERE tablename = 'chatp_schema'"), 1);
    // Someone u000001 has a conversation with, and its history.
    let partner: String = w
        .db()
        .query_one(
            "SELECT u.username FROM conversations c JOIN users u \
             ON u.user_id = CASE WHEN c.participant1_id = 1 THEN c.participant2_id ELSE c.participant1_id END \
             WHERE 1 IN (c.participant1_id, c.participant2_id) LIMIT 1",
            &[],
        )
        .unwrap()
        .get(0);
    let history = c.open_conversation(&partner);
    assert!(!history.is_empty(), "no history with {partner}");

    // /members of the 5,000-member group: a screenful and how many more (its
    // admin is member 0, user 7919 mod 6000 + 1).
    let mut admin = server.connect();
    admin.login("u001920", "pw");
    admin.send(chatp::protocol::input::MENU_MY_GROUPS);
    admin.lines_until(chatp::protocol::MY_GROUPS_END);
    admin.send("1");
    admin.lines_until(chatp::protocol::GROUP_CHAT_READY);
    admin.send("/members");
    admin.expect(chatp::protocol::GROUP_MEMBERS_START);
    let rows = admin.lines_until(chatp::protocol::GROUP_MEMBERS_END);
    assert_eq!(rows.len(), chatp::protocol::GROUP_MEMBERS_MAX + 1);
    assert!(rows[0].starts_with("u001920|"), "the admin first: {}", rows[0]);
    assert_eq!(
        rows.last().unwrap(),
        &chatp::protocol::group_members_more_row(5000 - chatp::protocol::GROUP_MEMBERS_MAX as i64)
    );
    // Protocol 1: "/members 2" is a message, as the original.
    admin.send("/members 2");
    admin.expect(&chatp::protocol::group_sent());

    // Protocol 2: pages of the list.
    let per_page = chatp::protocol::GROUP_MEMBERS_MAX as i64;
    let mut p2 = server.connect();
    p2.hello();
    p2.login_attempt("u001920", "pw");
    p2.lines_until(chatp::protocol::MAIN_MENU_END);
    p2.send(chatp::protocol::input::MENU_MY_GROUPS);
    p2.lines_until(chatp::protocol::MY_GROUPS_END);
    p2.send("1");
    p2.lines_until(chatp::protocol::GROUP_CHAT_READY);
    let pages = 5000 / per_page;
    p2.send("/members 2");
    p2.expect(chatp::protocol::GROUP_MEMBERS_START);
    p2.expect(&chatp::protocol::group_members_page(2, pages));
    let rows = p2.lines_until(chatp::protocol::GROUP_MEMBERS_END);
    assert_eq!(rows.len() as i64, per_page + 1);
    assert_eq!(rows.last().unwrap(), &chatp::protocol::group_members_more(5000 - 2 * per_page));
    p2.send(&format!("/members {pages}"));
    p2.expect(chatp::protocol::GROUP_MEMBERS_START);
    p2.expect(&chatp::protocol::group_members_page(pages, pages));
    let last = p2.lines_until(chatp::protocol::GROUP_MEMBERS_END);
    assert_eq!(last.len() as i64, per_page, "the last page, nothing after it");
    assert!(last.iter().all(|r| !rows.contains(r)), "pages do not overlap");
}
