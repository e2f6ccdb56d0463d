//! `chat_autoscaler` against the fake Kubernetes API, counting users that
//! the server's own presence code put in the real Redis.

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chatp::config::RedisConfig;
use chatp::presence::Presence;
use chatp::redis_store::{connect_pool, Keys, RedisConnector};
use serde_json::Value;

use crate::fake_kube::FakeKube;
use crate::support::{redis_conn, services, unique, Services};

const NAMESPACE: &str = "chat-test";
const DEPLOYMENT: &str = "chat-server";

/// A Redis key prefix of its own, and pods that log users in through
/// `chatp::presence`.
struct Users {
    services: Services,
    prefix: String,
}

impl Users {
    fn new() -> Users {
        Users { services: services(), prefix: unique("as_") + ":" }
    }

    /// A pod whose presence key lives `ttl` (never refreshed here: with a
    /// short ttl, it is a pod that crashed).
    fn pod(&self, ttl: Duration) -> Presence {
        let cfg = RedisConfig {
            host: self.services.redis_host.clone(),
            port: self.services.redis_port,
            username: None,
            password: None,
            key_prefix: self.prefix.clone(),
            tls: false,
            ca_file: None,
            sentinel: None,
        };
        let pool = connect_pool(RedisConnector::new(&cfg).unwrap(), 2).expect("connect to test Redis");
        Presence::new(pool, Keys::new(&self.prefix), unique("pod-"), ttl)
    }

    /// Logs `n` new users in on `pod`; returns their names.
    fn log_in(&self, pod: &Presence, n: usize) -> Vec<String> {
        let names: Vec<String> = (0..n).map(|_| unique("u")).collect();
        for name in &names {
            pod.session_up(name).unwrap();
        }
        names
    }

    /// `chat_autoscaler` on this Redis prefix and `kube`, fast ticks.
    fn autoscaler(&self, kube: &FakeKube, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_chat_autoscaler"));
        cmd.args(args)
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env("REDIS_HOST", &self.services.redis_host)
            .env("REDIS_PORT", self.services.redis_port.to_string())
            .env("REDIS_KEY_PREFIX", &self.prefix)
            .env("NAMESPACE", NAMESPACE)
            .env("DEPLOYMENT_NAME", DEPLOYMENT)
            .env("KUBE_API_URL", &kube.url)
            .env("CHECK_INTERVAL", "1")
            .env("METRICS_PORT", "0")
            .env("LOG_LEVEL", "info")
            .stdin(Stdio::null());
        if let Some(ca) = &kube.ca_file {
            cmd.env("KUBE_CA_FILE", ca);
        }
        if let Some(token) = &kube.token_file {
            cmd.env("KUBE_TOKEN_FILE", token);
        }
        cmd
    }

    fn once(&self, kube: &FakeKube, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = self.autoscaler(kube, args);
        cmd.arg("--once").envs(env.iter().copied());
        cmd.output().expect("run chat_autoscaler")
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn scale_path() -> String {
    format!("/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{DEPLOYMENT}/scale")
}

/// Waits until `what` holds, polling.
fn wait_for(what: &str, timeout: Duration, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn scales_to_one_pod_per_three_users_with_the_real_api_calls() {
    let users = Users::new();
    let pod = users.pod(Duration::from_secs(60));
    users.log_in(&pod, 7);
    let kube = FakeKube::https(NAMESPACE, DEPLOYMENT, 1, "token-1");

    let out = users.once(&kube, &[], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("users=7 current=1 desired=3 action=up target=3"), "{}", stderr(&out));
    assert_eq!(kube.replicas(), 3);
    let requests = kube.requests();
    let methods: Vec<&str> = requests.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(methods, ["GET", "PATCH"]);
    for r in &requests {
        assert_eq!(r.path, scale_path());
        assert_eq!(r.header("authorization"), Some("Bearer token-1"));
        assert_eq!(r.header("accept"), Some("application/json"));
        assert_eq!(r.status, 200);
    }
    let patch = &requests[1];
    assert_eq!(patch.header("content-type"), Some("application/merge-patch+json"));
    assert_eq!(serde_json::from_str::<Value>(&patch.body).unwrap(), serde_json::json!({"spec": {"replicas": 3}}));

    // Right size already: read, no PATCH.
    let out = users.once(&kube, &[], &[]);
    assert!(
        out.status.success() && stderr(&out).contains("users=7 current=3 desired=3 action=none"),
        "{}",
        stderr(&out)
    );
    assert_eq!(kube.patches(), [3]);

    // A dry run decides and logs, and changes nothing.
    users.log_in(&pod, 3);
    let out = users.once(&kube, &["--dry-run"], &[]);
    let log = stderr(&out);
    assert!(out.status.success() && log.contains("users=10 current=3 desired=4 action=up target=4 dry-run"), "{log}");
    assert_eq!((kube.replicas(), kube.patches()), (3, vec![3]));
}

#[test]
fn users_of_a_crashed_pod_leave_the_count() {
    let users = Users::new();
    let live = users.pod(Duration::from_secs(60));
    let on_live = users.log_in(&live, 4);
    let crashed = users.pod(Duration::from_secs(1));
    users.log_in(&crashed, 6);
    // Also on the crashed pod, but still live on the other: counted.
    crashed.session_up(&on_live[0]).unwrap();
    // The crashed pod never refreshes its heartbeat.
    std::thread::sleep(Duration::from_millis(1500));
    let kube = FakeKube::https(NAMESPACE, DEPLOYMENT, 1, "t");

    let out = users.once(&kube, &[], &[]);
    assert!(out.status.success() && stderr(&out).contains("users=4 current=1 desired=2 action=up"), "{}", stderr(&out));
    assert_eq!(kube.patches(), [2]);
    // The autoscaler only reads: reaping (and closing the dead pod's session
    // rows) is left to the chat pods' heartbeats.
    let online: usize = redis::cmd("SCARD")
        .arg(Keys::new(&users.prefix).online_users())
        .query(&mut redis_conn(&users.services))
        .unwrap();
    assert_eq!(online, 10);
}

#[test]
fn api_errors_are_one_line_that_names_the_fix() {
    let users = Users::new();
    let pod = users.pod(Duration::from_secs(60));
    users.log_in(&pod, 5);
    // (injected failure, extra env, what the line must say)
    type Row<'a> = (Option<(&'a str, u16)>, &'a [(&'a str, &'a str)], &'a str);
    let table: [Row; 5] = [
        (
            Some(("GET", 401)),
            &[],
            "401 Unauthorized: cannot get deployments/scale \"chat-server\" in namespace \"chat-test\"",
        ),
        (Some(("GET", 403)), &[], "403 Forbidden: the ServiceAccount may not get deployments/scale \"chat-server\""),
        (
            Some(("PATCH", 403)),
            &[],
            "403 Forbidden: the ServiceAccount may not patch deployments/scale \"chat-server\"",
        ),
        (
            None,
            &[("NAMESPACE", "elsewhere")],
            "no deployment \"chat-server\" in namespace \"elsewhere\" (check NAMESPACE and DEPLOYMENT_NAME)",
        ),
        (Some(("GET", 500)), &[], "answered 500: etcdserver: request timed out"),
    ];
    for (failure, env, says) in table {
        let kube = FakeKube::https(NAMESPACE, DEPLOYMENT, 1, "t");
        if let Some((method, status)) = failure {
            kube.fail_next(Some(method), status);
        }
        let out = users.once(&kube, &[], env);
        let log = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{failure:?}: {log}");
        let lines: Vec<&str> = log.lines().filter(|l| l.contains("WARN")).collect();
        assert_eq!(lines.len(), 1, "{failure:?}: one line, got {log}");
        assert!(lines[0].contains(says), "{failure:?}: {log}");
        assert_eq!(kube.replicas(), 1, "{failure:?}: nothing changed");
    }
}

#[test]
fn an_unknown_count_never_scales() {
    let users = Users::new();
    let kube = FakeKube::https(NAMESPACE, DEPLOYMENT, 5, "t");
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let out = users.once(&kube, &[], &[("REDIS_PORT", &closed_port.to_string())]);
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(log.contains("users=? current=? action=skipped reason=Redis failed while connecting"), "{log}");
    assert!(kube.requests().is_empty(), "no decision without a count: {:?}", kube.requests());
}

#[test]
fn works_through_kubectl_proxy_without_a_token() {
    let users = Users::new();
    let pod = users.pod(Duration::from_secs(60));
    users.log_in(&pod, 4);
    let kube = FakeKube::http(NAMESPACE, DEPLOYMENT, 1);
    let out = users.once(&kube, &[], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(kube.patches(), [2]);
    assert!(kube.requests().iter().all(|r| r.header("authorization").is_none()));
}

#[test]
fn loop_follows_the_count_rereads_a_rotated_token_and_survives_a_500() {
    let users = Users::new();
    let pod = users.pod(Duration::from_secs(60));
    let names = users.log_in(&pod, 4);
    // A second pod with nobody on it: removed first.
    let empty = users.pod(Duration::from_secs(60));
    empty.resync(&[], false).unwrap();
    let kube = FakeKube::https(NAMESPACE, DEPLOYMENT, 1, "token-1");
    let mut child = users
        .autoscaler(&kube, &[])
        .env("SCALE_DOWN_DELAY", "4")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn chat_autoscaler");
    let log = Arc::new(Mutex::new(String::new()));
    let reader = {
        let (stderr, log) = (child.stderr.take().unwrap(), Arc::clone(&log));
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                log.lock().unwrap().push_str(&(line + "\n"));
            }
        })
    };
    let log_text = || log.lock().unwrap().clone();

    wait_for("scale up to 2", Duration::from_secs(10), || kube.replicas() == 2);
    // Its /metrics say what it saw and did.
    let text = log_text();
    let addr = text.split("health and metrics on http://").nth(1).expect("metrics address logged");
    let port: u16 = addr.split_whitespace().next().unwrap().rsplit(':').next().unwrap().parse().unwrap();
    assert!(crate::ops::sample(port, "chatp_autoscaler_decisions_total", &[("action", "up")]) >= 1.0);
    assert_eq!(crate::ops::sample(port, "chatp_autoscaler_users", &[]), 4.0);
    assert_eq!(crate::ops::sample(port, "chatp_autoscaler_replicas", &[("of", "target")]), 2.0);
    kube.rotate_token("token-2");
    kube.fail_next(Some("GET"), 500);
    for name in &names[1..] {
        pod.session_down(name).unwrap();
    }
    wait_for("scale down to 1", Duration::from_secs(20), || kube.replicas() == 1);

    // SIGTERM stops it at once, with exit code 0.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    reader.join().unwrap();
    let log = log_text();
    assert!(status.success(), "{log}");
    assert_eq!(kube.patches(), [2, 1], "{log}");
    // Before the scale-down, each pod's deletion cost is its session count.
    let patch_log = kube.patch_log();
    let down = patch_log.iter().position(|p| p == "scale=1").unwrap();
    let mut costs = patch_log[..down].iter().filter(|p| p.starts_with("pod=")).cloned().collect::<Vec<_>>();
    costs.sort();
    let mut expected = vec![format!("pod={} cost=1", pod.pod_id()), format!("pod={} cost=0", empty.pod_id())];
    expected.sort();
    assert_eq!(costs[costs.len() - 2..], expected, "{patch_log:?}");
    assert!(log.contains(&format!("{}=0", empty.pod_id())), "{log}");
    assert!(log.contains("answered 500"), "{log}");
    assert!(log.contains("users=1 current=2 desired=1 action=pending-down"), "{log}");
    let after_rotation: Vec<_> =
        kube.requests().into_iter().skip_while(|r| r.header("authorization") == Some("Bearer token-1")).collect();
    assert!(!after_rotation.is_empty(), "{log}");
    assert!(
        after_rotation.iter().all(|r| r.header("authorization") == Some("Bearer token-2") && r.status != 401),
        "{after_rotation:?}"
    );
}

#[test]
fn bad_configuration_stops_it_with_one_line() {
    let users = Users::new();
    let kube = FakeKube::http(NAMESPACE, DEPLOYMENT, 1);
    for (var, value) in [("MIN_REPLICAS", "5"), ("USERS_PER_POD", "0"), ("CHECK_INTERVAL", "soon")] {
        let mut cmd = users.autoscaler(&kube, &[]);
        if var == "MIN_REPLICAS" {
            cmd.env("MAX_REPLICAS", "2");
        }
        let out = cmd.env(var, value).output().unwrap();
        let log = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{var}: {log}");
        assert_eq!(log.lines().count(), 1, "{log}");
        assert!(log.starts_with(&format!("chat_autoscaler: {var}=")), "{log}");
    }
    let help = Command::new(env!("CARGO_BIN_EXE_chat_autoscaler")).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for var in [
        "NAMESPACE",
        "DEPLOYMENT_NAME",
        "REDIS_HOST",
        "REDIS_PORT",
        "REDIS_PASSWORD",
        "MIN_REPLICAS",
        "MAX_REPLICAS",
        "USERS_PER_POD",
        "CHECK_INTERVAL",
        "SCALE_DOWN_DELAY",
        "KUBE_API_URL",
        "KUBE_TOKEN_FILE",
        "KUBE_CA_FILE",
        "--once",
        "--dry-run",
    ] {
        assert!(help.contains(var), "--help lacks {var}");
    }
    assert!(kube.requests().is_empty());
}
