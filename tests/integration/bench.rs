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
