//! chat_dashboard against real servers, Redis and PostgreSQL, the fake
//! Kubernetes API, and a real headless browser (Debian's chromium): the
//! JSON API, and the page after its scripts ran (the online count the test
//! made, charts with points), with no network beyond 127.0.0.1; and who
//! may see it: the login, the security headers, the Host check, the
//! default bind address.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::fake_kube::FakeKube;
use crate::ops::get;
use crate::support::{services, unique, PrivateService, Services, World};

const NAMESPACE: &str = "chat-app";
const DEPLOYMENT: &str = "chat-server";

struct DashboardProc {
    child: Child,
    port: u16,
    /// The address it logged it listens on.
    addr: String,
    /// Its log, line by line.
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for DashboardProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl DashboardProc {
    fn start(w: &World, kube: Option<&FakeKube>) -> DashboardProc {
        DashboardProc::start_with(w, kube, &[("BIND_ADDR", Some("127.0.0.1"))])
    }

    /// With these variables set (`Some`) or removed (`None`).
    fn start_with(w: &World, kube: Option<&FakeKube>, vars: &[(&str, Option<&str>)]) -> DashboardProc {
        let mut cmd = w.command(env!("CARGO_BIN_EXE_chat_dashboard"));
        cmd.env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("KUBE_API_URL")
            .env("NAMESPACE", NAMESPACE)
            .env("DEPLOYMENT_NAME", DEPLOYMENT)
            .env("DASHBOARD_PORT", "0")
            .env("SAMPLE_SECS", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(k) = kube {
            cmd.env("KUBE_API_URL", &k.url);
        }
        for (name, value) in vars {
            match value {
                Some(v) => cmd.env(name, v),
                None => cmd.env_remove(name),
            };
        }
        let mut child = cmd.spawn().expect("spawn chat_dashboard");
        let (tx, rx) = crossbeam_channel::bounded(1);
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let log2 = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("dashboard on http://").nth(1) {
                    let _ = tx.send(addr.split('/').next().unwrap().to_string());
                }
                log2.lock().unwrap().push(line);
            }
        });
        let addr = rx.recv_timeout(Duration::from_secs(30)).expect("chat_dashboard started");
        let port = addr.rsplit(':').next().unwrap().parse::<u16>().unwrap();
        DashboardProc { child, port, addr, log }
    }

    /// The log lines containing every one of `words`.
    fn log_lines(&self, words: &[&str]) -> Vec<String> {
        let log = self.log.lock().unwrap();
        log.iter().filter(|l| words.iter().all(|w| l.contains(w))).cloned().collect()
    }

    /// Waits for `n` more samples.
    fn wait_samples(&self, n: u64) {
        let (_, status) = self.json("/api/status");
        let at = status["at"].as_u64().unwrap();
        self.wait_status("more samples", |s| s["at"].as_u64() >= Some(at + n));
    }

    fn json(&self, path: &str) -> (u16, Value) {
        let (status, body) = get(self.port, path);
        (status, serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body}")))
    }

    /// Waits until `/api/status` satisfies `pred`; returns it.
    fn wait_status(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (_, status) = self.json("/api/status");
            if pred(&status) {
                return status;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}: {status:#}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Debian's chromium, headless, allowed to reach 127.0.0.1 only; fails if
/// the page did anything the Content-Security-Policy blocked (chromium logs
/// each violation to the console).
fn chromium(args: &[&str]) -> String {
    let bin = crate::browser::chromium_binary();
    let profile = std::env::temp_dir().join(unique("chromium-profile-"));
    let out = Command::new(&bin)
        .args(crate::browser::HEADLESS_LOCAL_ONLY)
        .args(["--virtual-time-budget=4000", "--enable-logging=stderr", "--v=0"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run chromium");
    let _ = std::fs::remove_dir_all(&profile);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "chromium failed: {stderr}");
    let blocked: Vec<&str> = stderr.lines().filter(|l| l.contains("Content Security Policy")).collect();
    assert!(blocked.is_empty(), "the page breaks its own Content-Security-Policy: {blocked:#?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The text of the element with `id` in a dumped DOM.
fn element_text<'a>(dom: &'a str, id: &str) -> Option<&'a str> {
    let start = dom.find(&format!("id=\"{id}\""))?;
    let rest = &dom[start..];
    let open_end = rest.find('>')? + 1;
    let close = rest[open_end..].find('<')?;
    Some(&rest[open_end..open_end + close])
}

/// The `data-points` attribute of the element with `id`.
fn chart_points(dom: &str, id: &str) -> usize {
    let start = dom.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no #{id} in the page"));
    let tag_end = start + dom[start..].find('>').unwrap();
    let tag = &dom[start..tag_end];
    tag.split("data-points=\"").nth(1).and_then(|v| v.split('"').next()).and_then(|v| v.parse().ok()).unwrap_or(0)
}

#[test]
fn the_dashboard_shows_users_pods_and_the_autoscaler_in_a_real_browser() {
    let w = World::new("dashboard");
    let (pod_a, pod_b) = (w.start_unlimited_server(), w.start_unlimited_server());
    let names: Vec<String> = (0..3).map(|i| unique(&format!("u{i}"))).collect();
    let mut clients = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let mut c = if i < 2 { pod_a.connect() } else { pod_b.connect() };
        c.signup(name, "pw");
        clients.push(c);
    }
    clients[0].open_conversation(&names[2]);
    clients[0].send("counted on the dashboard");
    clients[0].line();

    let kube = FakeKube::http(NAMESPACE, DEPLOYMENT, 2);
    kube.set_pods(&[(&pod_a.pod_id, true), (&pod_b.pod_id, true)]);
    // One real autoscaler tick: 3 users at 1 per pod is a scale-up to 3.
    let tick = w
        .command(env!("CARGO_BIN_EXE_chat_autoscaler"))
        .arg("--once")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env("NAMESPACE", NAMESPACE)
        .env("DEPLOYMENT_NAME", DEPLOYMENT)
        .env("KUBE_API_URL", &kube.url)
        .env("USERS_PER_POD", "1")
        .env("METRICS_PORT", "off")
        .output()
        .unwrap();
    assert!(tick.status.success(), "{}", String::from_utf8_lossy(&tick.stderr));

    let dash = DashboardProc::start(&w, Some(&kube));
    let status = dash.wait_status("3 users, a message, the tick", |s| {
        s["online_users"] == 3 && s["total_messages"].as_i64() >= Some(1) && s["autoscaler"]["last"].is_object()
    });
    assert_eq!(status["registered_users"], 3);
    assert_eq!(status["deployment"]["desired"], 3, "{status:#}");
    assert_eq!(status["deployment"]["ready"], 2);
    let pods = status["pods"].as_array().unwrap();
    let sessions = |pod: &str| pods.iter().find(|p| p["name"] == pod).map(|p| p["sessions"].clone());
    assert_eq!(sessions(&pod_a.pod_id), Some(2.into()), "{pods:?}");
    assert_eq!(sessions(&pod_b.pod_id), Some(1.into()));
    assert_eq!(pods[0]["phase"], "Running");
    let events = status["autoscaler"]["events"].as_array().unwrap();
    assert_eq!(events[0]["action"], "up");
    assert_eq!((events[0]["current"].clone(), events[0]["target"].clone()), (2.into(), 3.into()));
    for part in ["redis", "postgresql", "autoscaler", "kubernetes"] {
        assert_eq!(status["health"][part]["healthy"], true, "{part}: {:#}", status["health"]);
    }
    let (code, health) = dash.json("/api/health");
    assert_eq!((code, health["healthy"].clone()), (200, true.into()));

    // A second sample, so the charts have a line; then the browser.
    let first_at = status["at"].as_u64().unwrap();
    dash.wait_status("a later sample", |s| s["at"].as_u64() > Some(first_at));
    let (_, metrics) = dash.json("/api/metrics");
    assert!(metrics["points"].as_array().unwrap().len() >= 2, "{metrics}");
    let url = format!("http://127.0.0.1:{}/", dash.port);
    let dom = chromium(&["--dump-dom", &url]);
    assert_eq!(element_text(&dom, "online-users"), Some("3"), "{dom}");
    assert_eq!(element_text(&dom, "registered-users"), Some("3"));
    assert_eq!(element_text(&dom, "replicas"), Some("2 / 3"));
    assert!(chart_points(&dom, "chart-users") >= 2, "chart without points");
    assert!(dom.contains(&pod_a.pod_id) && dom.contains("action=up"), "pods and decisions shown");
    assert!(!get(dash.port, "/").1.contains("https://"), "the page loads nothing from elsewhere");

    // The screenshot docs/dashboard.md shows, taken the same way.
    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    chromium(&["--window-size=1280,1000", &format!("--screenshot={}", shot.display()), &url]);
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 20_000, "{} bytes", png.len());
}

#[test]
fn without_kubernetes_the_dashboard_shows_presence_and_says_so() {
    let w = World::new("dashboard_nokube");
    let server = w.start_server();
    let name = unique("solo");
    let mut c = server.connect();
    c.signup(&name, "pw");
    let dash = DashboardProc::start(&w, None);
    let status = dash.wait_status("the user", |s| s["online_users"] == 1);
    assert!(status["deployment"].is_null());
    assert_eq!(status["pods"][0]["name"], server.pod_id.as_str());
    assert_eq!(status["pods"][0]["sessions"], 1);
    assert_eq!(status["health"]["kubernetes"]["healthy"], false);
    assert!(status["health"]["kubernetes"]["detail"].as_str().unwrap().contains("not configured"));
    assert_eq!(status["health"]["autoscaler"]["healthy"], false);
    // The stores answer: healthy as a service.
    assert_eq!(dash.json("/api/health").0, 200);
    let dom = chromium(&["--dump-dom", &format!("http://127.0.0.1:{}/", dash.port)]);
    assert_eq!(element_text(&dom, "online-users"), Some("1"));
    assert!(dom.contains("Kubernetes: not configured"), "{dom}");
    assert_eq!(element_text(&dom, "replicas"), Some("1 (presence)"));
    // Not configured is not "not reachable".
    let deployment = element_text(&dom, "deployment").unwrap();
    assert!(deployment.starts_with("Kubernetes: not configured"), "{deployment}");
    assert!(!dom.contains("not reachable"), "{deployment}");
}

/// One request with these header lines: (status, head, body).
fn request(port: u16, path: &str, headers: &[&str]) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nConnection: close\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head.to_string(), body.to_string())
}

/// The value of a header field in a response head (case-insensitive name).
fn field<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().filter_map(|l| l.split_once(':')).find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim())
}

#[test]
fn the_dashboard_asks_for_its_login_sends_security_headers_and_refuses_foreign_hosts() {
    let w = World::new("dashboard_security");
    let dash = DashboardProc::start_with(
        &w,
        None,
        &[
            ("BIND_ADDR", Some("127.0.0.1")),
            ("DASHBOARD_PASSWORD", Some("s3cret")),
            ("DASHBOARD_ALLOWED_HOSTS", Some("dash.example.org")),
        ],
    );
    let port = dash.port;
    // admin:s3cret, admin:wrong
    let (good, bad) = ("Authorization: Basic YWRtaW46czNjcmV0", "Authorization: Basic YWRtaW46d3Jvbmc=");
    let mut heads = Vec::new();

    let (status, head, _) = request(port, "/", &["Host: localhost"]);
    assert_eq!(status, 401, "no login: {head}");
    assert!(field(&head, "WWW-Authenticate").is_some_and(|v| v.starts_with("Basic ")), "{head}");
    heads.push(head);
    let (status, head, _) = request(port, "/api/status", &["Host: localhost", bad]);
    assert_eq!(status, 401, "a wrong password");
    heads.push(head);
    let (status, head, body) = request(port, "/", &[&format!("Host: 127.0.0.1:{port}"), good]);
    assert_eq!(status, 200);
    assert!(body.contains("id=\"online-users\""), "the page");
    heads.push(head);
    let (status, head, body) =
        request(port, "/api/status", &["Host: dash.example.org:8080", "Authorization: Bearer s3cret"]);
    assert_eq!(status, 200, "the password as a bearer token, an allowed host: {body}");
    heads.push(head);
    let (status, head, _) = request(port, "/healthz", &["Host: 10.1.2.3:8080"]);
    assert_eq!(status, 200, "probes need no login");
    heads.push(head);
    // DNS rebinding: a page of evil.example whose name now points here.
    let (status, head, _) = request(port, "/api/status", &["Host: evil.example:8080", good]);
    assert_eq!(status, 421, "a foreign Host header");
    heads.push(head);

    for head in &heads {
        let csp = field(head, "Content-Security-Policy").unwrap_or_else(|| panic!("no CSP: {head}"));
        assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{csp}");
        assert_eq!(field(head, "X-Content-Type-Options"), Some("nosniff"), "{head}");
        assert_eq!(field(head, "X-Frame-Options"), Some("DENY"), "{head}");
        assert_eq!(field(head, "Referrer-Policy"), Some("no-referrer"), "{head}");
    }
}

#[test]
fn the_dashboard_listens_on_loopback_by_default_outside_kubernetes() {
    let w = World::new("dashboard_bind");
    let dash = DashboardProc::start_with(&w, None, &[("BIND_ADDR", None)]);
    assert!(dash.addr.starts_with("127.0.0.1:"), "listens on {}", dash.addr);
    assert_eq!(get(dash.port, "/healthz").0, 200);
}

/// The attribute `name` of the element with `id`.
fn attribute(dom: &str, id: &str, name: &str) -> String {
    let start = dom.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no #{id} in the page"));
    let tag_start = dom[..start].rfind('<').unwrap();
    let tag = &dom[tag_start..start + dom[start..].find('>').unwrap()];
    let value = tag.split(&format!(" {name}=\"")).nth(1).and_then(|v| v.split('"').next());
    value.unwrap_or_else(|| panic!("no {name} on #{id}: {tag}")).to_string()
}

#[test]
fn the_dashboard_shows_its_uptime_the_pod_scaling_and_who_is_online_by_name() {
    let w = World::new("dashboard_features");
    let server = w.start_server();
    let mut names: Vec<String> = ["zoe", "adam"].iter().map(|n| unique(n)).collect();
    let mut clients = Vec::new();
    for name in &names {
        let mut c = server.connect();
        c.signup(name, "pw");
        clients.push(c);
    }
    names.sort();
    // Three replicas desired, one of them ready; later two.
    let kube = FakeKube::http(NAMESPACE, DEPLOYMENT, 3);
    kube.set_pods(&[(&server.pod_id, true), ("chat-server-b", false), ("chat-server-c", false)]);
    let dash = DashboardProc::start(&w, Some(&kube));
    let status = dash.wait_status("both users", |s| s["online_users"] == 2);
    assert_eq!(status["online_user_names"], serde_json::json!(names), "{status:#}");
    assert_eq!(status["user_names_shown"], true);
    let uptime = status["uptime_seconds"].as_u64().unwrap_or_else(|| panic!("no uptime: {status:#}"));
    assert!(status["started_at"].as_u64().is_some_and(|t| t <= status["at"].as_u64().unwrap()), "{status:#}");
    dash.wait_samples(1);
    kube.set_pods(&[(&server.pod_id, true), ("chat-server-b", true), ("chat-server-c", false)]);
    dash.wait_status("two ready", |s| s["deployment"]["ready"] == 2);
    dash.wait_samples(1);
    let (_, later) = dash.json("/api/status");
    assert!(later["uptime_seconds"].as_u64() > Some(uptime), "uptime grows: {uptime} then {}", later["uptime_seconds"]);

    // Both series over time, with the fake's values.
    let (_, metrics) = dash.json("/api/metrics");
    let points = metrics["points"].as_array().unwrap();
    let replicas: Vec<(u64, u64)> = points
        .iter()
        .map(|p| (p["desired_replicas"].as_u64().unwrap(), p["ready_replicas"].as_u64().unwrap()))
        .collect();
    assert!(replicas.contains(&(3, 1)) && replicas.ends_with(&[(3, 2)]), "{replicas:?}");

    let dom = chromium(&["--dump-dom", &format!("http://127.0.0.1:{}/", dash.port)]);
    assert_eq!(attribute(&dom, "chart-scaling", "data-series"), "desired replicas,ready replicas", "{dom}");
    assert_eq!(attribute(&dom, "chart-scaling", "data-latest"), "3,2");
    assert!(chart_points(&dom, "chart-scaling") >= 3);
    let shown = element_text(&dom, "uptime").unwrap();
    let seconds = |s: &str| s.strip_suffix('s').and_then(|n| n.parse::<u64>().ok());
    assert!(seconds(shown).is_some_and(|s| s >= uptime), "uptime card: {shown:?}");
    let list = dom.split("id=\"online-names\"").nth(1).unwrap().split("</ul>").next().unwrap();
    let listed: Vec<&str> = list.split("<li>").skip(1).map(|li| li.split("</li>").next().unwrap()).collect();
    assert_eq!(listed, names, "users online by name: {list}");
}

#[test]
fn names_are_hidden_without_a_login_beyond_loopback_unless_turned_on() {
    let w = World::new("dashboard_names");
    let server = w.start_server();
    let name = unique("private");
    let mut c = server.connect();
    c.signup(&name, "pw");
    let dash = DashboardProc::start_with(&w, None, &[("BIND_ADDR", Some("0.0.0.0"))]);
    let status = dash.wait_status("the user", |s| s["online_users"] == 1);
    assert_eq!((status["user_names_shown"].clone(), status["online_user_names"].clone()), (false.into(), Value::Null));
    assert!(!get(dash.port, "/api/status").1.contains(&name));
    let dom = chromium(&["--dump-dom", &format!("http://127.0.0.1:{}/", dash.port)]);
    assert!(!dom.contains(&name), "{dom}");
    assert!(element_text(&dom, "online-names-note").unwrap().contains("DASHBOARD_USER_NAMES"), "{dom}");
    drop(dash);
    let vars = [("BIND_ADDR", Some("0.0.0.0")), ("DASHBOARD_USER_NAMES", Some("on"))];
    let dash = DashboardProc::start_with(&w, None, &vars);
    let status = dash.wait_status("the user", |s| s["online_users"] == 1);
    assert_eq!(status["online_user_names"], serde_json::json!([name]));
}

#[test]
fn a_redis_stopped_then_started_is_logged_once_down_and_once_back() {
    let (redis, port) = PrivateService::start("redis");
    let w = World::on(Services { redis_port: port, ..services() }, "dashboard_redis");
    let dash = DashboardProc::start(&w, None);
    dash.wait_status("Redis up", |s| s["health"]["redis"]["healthy"] == true);
    redis.run("stop");
    dash.wait_status("Redis down", |s| s["health"]["redis"]["healthy"] == false);
    dash.wait_samples(4);
    assert_eq!(dash.log_lines(&["Redis down"]).len(), 1, "{:#?}", dash.log.lock().unwrap());
    redis.run("start");
    dash.wait_status("Redis back", |s| s["health"]["redis"]["healthy"] == true);
    dash.wait_samples(4);
    let (down, back) = (dash.log_lines(&["Redis down"]), dash.log_lines(&["Redis back up"]));
    assert_eq!((down.len(), back.len()), (1, 1), "{:#?}", dash.log.lock().unwrap());
    let cause = down[0].split("Redis down: ").nth(1).unwrap_or_default();
    assert!(down[0].contains("WARN") && cause.contains("Redis failed while"), "the cause: {}", down[0]);
    assert!(dash.log_lines(&["PostgreSQL"]).is_empty(), "PostgreSQL never went down");
}

#[test]
fn a_kubernetes_api_down_is_said_once_in_the_page_and_in_the_log() {
    let w = World::new("dashboard_kube_down");
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{closed}");
    let dash = DashboardProc::start_with(&w, None, &[("BIND_ADDR", Some("127.0.0.1")), ("KUBE_API_URL", Some(&url))]);
    let status = dash.wait_status("a sample", |s| s["health"]["kubernetes"]["healthy"] == false);
    let detail = status["health"]["kubernetes"]["detail"].as_str().unwrap();
    assert_eq!(detail.matches("not reachable").count(), 1, "{detail}");
    dash.wait_samples(3);
    let dom = chromium(&["--dump-dom", &format!("http://127.0.0.1:{}/", dash.port)]);
    let deployment = element_text(&dom, "deployment").unwrap();
    assert!(deployment.starts_with("Kubernetes: not reachable: "), "{deployment}");
    assert_eq!(deployment.matches("not reachable").count(), 1, "{deployment}");
    assert_eq!(dash.log_lines(&["Kubernetes API down: not reachable"]).len(), 1, "{:#?}", dash.log.lock().unwrap());
}

/// Issue 26: the dashboard's counts cost PostgreSQL a catalogue lookup once
/// a table is big (10,000,000 messages were a third of a core at one
/// sample a second): beyond 100,000 rows it shows PostgreSQL's estimate,
/// and the rate comes from the highest ids, still exact.
#[test]
fn big_tables_are_estimated_and_the_rate_stays_exact() {
    let w = World::new("dashboard_big");
    let _server = w.start_server();
    let mut admin = w.db_as_superuser();
    // As if autovacuum had analysed 5,000,000 messages (and does not again).
    admin
        .batch_execute(
            "ALTER TABLE messages SET (autovacuum_enabled = false); \
             UPDATE pg_class SET reltuples = 5000000 WHERE oid = 'messages'::regclass",
        )
        .unwrap();
    let insert = |n: i32| {
        w.db()
            .execute(
                "INSERT INTO messages (sender_username, message_text) SELECT 'x', 'm' FROM generate_series(1, $1)",
                &[&n],
            )
            .unwrap();
    };
    insert(3);
    let dash = DashboardProc::start(&w, None);
    let status = dash.wait_status("the estimate", |s| s["total_messages"] == 5_000_000);
    assert_eq!(status["registered_users"], 0, "small tables are counted: {status:#}");
    // 40 more rows between samples: the rate sees them although the total
    // (an estimate) does not move.
    dash.wait_samples(1);
    insert(40);
    let later = dash.wait_status("the rate", |s| s["messages_per_second"].as_f64().is_some_and(|r| r > 0.0));
    assert_eq!(later["total_messages"], 5_000_000, "{later:#}");
}
