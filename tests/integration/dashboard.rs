//! chat_dashboard against real servers, Redis and PostgreSQL, the fake
//! Kubernetes API, and a real headless browser (Debian's chromium): the
//! JSON API, and the page after its scripts ran (the online count the test
//! made, charts with points), with no network beyond 127.0.0.1.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::fake_kube::FakeKube;
use crate::ops::get;
use crate::support::{unique, World};

const NAMESPACE: &str = "chat-app";
const DEPLOYMENT: &str = "chat-server";

struct DashboardProc {
    child: Child,
    port: u16,
}

impl Drop for DashboardProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl DashboardProc {
    fn start(w: &World, kube: Option<&FakeKube>) -> DashboardProc {
        let mut cmd = w.command(env!("CARGO_BIN_EXE_chat_dashboard"));
        cmd.env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("KUBE_API_URL")
            .env("NAMESPACE", NAMESPACE)
            .env("DEPLOYMENT_NAME", DEPLOYMENT)
            .env("BIND_ADDR", "127.0.0.1")
            .env("DASHBOARD_PORT", "0")
            .env("SAMPLE_SECS", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(k) = kube {
            cmd.env("KUBE_API_URL", &k.url);
        }
        let mut child = cmd.spawn().expect("spawn chat_dashboard");
        let (tx, rx) = crossbeam_channel::bounded(1);
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("dashboard on http://").nth(1) {
                    let port = addr.split('/').next().unwrap().rsplit(':').next().unwrap().parse::<u16>().unwrap();
                    let _ = tx.send(port);
                }
            }
        });
        let port = rx.recv_timeout(Duration::from_secs(30)).expect("chat_dashboard started");
        DashboardProc { child, port }
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

/// Debian's chromium, headless, allowed to reach 127.0.0.1 only.
fn chromium(args: &[&str]) -> String {
    let bin = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(Path::new(&bin).exists(), "{bin} missing: scripts/test.sh installs Debian's chromium");
    let profile = std::env::temp_dir().join(unique("chromium-profile-"));
    let out = Command::new(&bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
            "--virtual-time-budget=4000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run chromium");
    let _ = std::fs::remove_dir_all(&profile);
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
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

    // The screenshot the README shows, taken the same way.
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
}
