//! `chat_dashboard`: a web page and a JSON API showing a chatp deployment
//! live. A sampler thread looks every `SAMPLE_SECS` ([`sample`]); the HTTP
//! thread ([`crate::http`]) serves the latest look and the history kept for
//! the charts, to those [`access`] lets in. The page and its chart library
//! (uPlot, from the npm registry, MIT) are embedded: nothing is fetched
//! from elsewhere.

pub mod access;
mod http;
pub mod sample;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread;

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
    pub messages_per_second: Option<f64>,
}

/// What the page and the API read.
#[derive(Default)]
pub struct State {
    pub latest: Option<Snapshot>,
    pub history: VecDeque<Point>,
}

impl State {
    fn record(&mut self, snapshot: Snapshot, keep: usize) {
        let pods = match &snapshot.deployment {
            Some(_) => snapshot.pods.iter().filter(|p| p.pod.ready).count(),
            None => snapshot.pods.len(),
        };
        self.history.push_back(Point {
            at: snapshot.at,
            online_users: snapshot.online_users,
            pods,
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
    let state = Arc::new(Mutex::new(State::default()));
    // The first sample before the first page.
    let first = sources.sample();
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
            state.lock().unwrap_or_else(|e| e.into_inner()).record(snapshot, keep);
        })
        .map_err(|e| e.to_string())?;
    Ok(Dashboard { http: server })
}
