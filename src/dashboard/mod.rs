//! `chat_dashboard`: a web page and a JSON API showing a chatp deployment
//! live. A sampler thread looks every `SAMPLE_SECS` ([`sample`]) and logs
//! each source going down or coming back ([`changes`]); the HTTP
//! thread ([`crate::http`]) serves the latest look and the history kept for
//! the charts, to those [`access`] lets in. The page and its chart library
//! (uPlot, from the npm registry, MIT) are embedded: nothing is fetched
//! from elsewhere.

pub mod access;
pub mod changes;
mod http;
pub mod sample;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::config::DashboardConfig;
use sample::{Snapshot, Sources};

/// One point of the charts.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Point {
    pub at: u64,
    pub online_users: Option<usize>,
    /// Ready chat pods (Kubernetes), or pods with a heartbeat (presence).
    pub pods: usize,
    /// The Deployment's `spec.replicas` and `status.readyReplicas`, when
    /// the Kubernetes API answered: the pod-scaling chart.
    pub desired_replicas: Option<u32>,
    pub ready_replicas: Option<u32>,
    pub messages_per_second: Option<f64>,
}

/// What the page and the API read.
pub struct State {
    pub latest: Option<Snapshot>,
    pub history: VecDeque<Point>,
    /// When the dashboard started: its uptime.
    pub started: Instant,
    /// The same, Unix seconds.
    pub started_at: u64,
}

impl State {
    fn new() -> State {
        let started_at = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        State { latest: None, history: VecDeque::new(), started: Instant::now(), started_at }
    }

    fn record(&mut self, snapshot: Snapshot, keep: usize) {
        let pods = match &snapshot.deployment {
            Some(_) => snapshot.pods.iter().filter(|p| p.pod.ready).count(),
            None => snapshot.pods.len(),
        };
        self.history.push_back(Point {
            at: snapshot.at,
            online_users: snapshot.online_users,
            pods,
            desired_replicas: snapshot.deployment.as_ref().map(|d| d.desired),
            ready_replicas: snapshot.deployment.as_ref().map(|d| d.ready),
            messages_per_second: snapshot.messages_per_second,
        });
        while self.history.len() > keep {
            self.history.pop_front();
        }
        self.latest = Some(snapshot);
    }
}

/// The running dashboard: dropping it stops its HTTP thread.
pub struct Dashboard {
    http: crate::http::Server,
}

impl Dashboard {
    /// Where the page is.
    pub fn addr(&self) -> SocketAddr {
        self.http.addr()
    }
}

/// Starts sampling and serving.
pub fn start(cfg: &DashboardConfig) -> Result<Dashboard, String> {
    let mut sources = Sources::new(cfg)?;
    let state = Arc::new(Mutex::new(State::new()));
    let mut health_log = changes::HealthLog::default();
    // The first sample before the first page.
    let first = sources.sample();
    health_log.log(&first.health, sources.kube_configured());
    state.lock().unwrap_or_else(|e| e.into_inner()).record(first, cfg.history);
    let bind = format!("{}:{}", cfg.bind_addr, cfg.port);
    let access = access::Access::new(cfg.login.as_ref(), &cfg.allowed_hosts);
    let server = http::start(&bind, Arc::clone(&state), cfg.sample_every, access)
        .map_err(|e| format!("cannot listen on {bind}: {e}"))?;
    let (every, keep) = (cfg.sample_every, cfg.history);
    thread::Builder::new()
        .name("sampler".into())
        .spawn(move || loop {
            thread::sleep(every);
            let snapshot = sources.sample();
            health_log.log(&snapshot.health, sources.kube_configured());
            state.lock().unwrap_or_else(|e| e.into_inner()).record(snapshot, keep);
        })
        .map_err(|e| e.to_string())?;
    Ok(Dashboard { http: server })
}
