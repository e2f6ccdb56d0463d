//! The dashboard's HTTP side: the page, its embedded assets, and the JSON
//! API of the original chatp dashboard (`/api/status`, `/api/metrics`,
//! `/api/health`), plus `/healthz` for the probes.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use log::{info, warn};
use serde_json::json;
use tiny_http::{Header, Response, Server};

use super::State;

const PAGE: &str = include_str!("page.html");
const UPLOT_JS: &str = include_str!("assets/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("assets/uPlot.min.css");
const UPLOT_LICENSE: &str = include_str!("assets/uPlot.LICENSE");

pub fn start(bind: &str, state: Arc<Mutex<State>>, sample_every: Duration) -> std::io::Result<SocketAddr> {
    let server = Server::http(bind).map_err(std::io::Error::other)?;
    let addr = server.server_addr().to_ip().ok_or_else(|| std::io::Error::other("not an IP address"))?;
    thread::Builder::new().name("dashboard-http".into()).spawn(move || {
        for request in server.incoming_requests() {
            let path = request.url().split('?').next().unwrap_or_default().to_string();
            let (status, body, content_type) = answer(&path, &state, sample_every);
            let header = Header::from_bytes("Content-Type", content_type).expect("a valid header");
            let no_cache = Header::from_bytes("Cache-Control", "no-store").expect("a valid header");
            let response =
                Response::from_string(body).with_status_code(status).with_header(header).with_header(no_cache);
            if let Err(e) = request.respond(response) {
                warn!("dashboard: {e}");
            }
        }
    })?;
    info!("dashboard on http://{addr}/ (API: /api/status, /api/metrics, /api/health)");
    Ok(addr)
}

fn answer(path: &str, state: &Mutex<State>, sample_every: Duration) -> (u16, String, &'static str) {
    const JSON: &str = "application/json";
    let state = state.lock().unwrap_or_else(|e| e.into_inner());
    match path {
        "/" | "/index.html" => (200, PAGE.to_string(), "text/html; charset=utf-8"),
        "/assets/uPlot.iife.min.js" => (200, UPLOT_JS.to_string(), "text/javascript; charset=utf-8"),
        "/assets/uPlot.min.css" => (200, UPLOT_CSS.to_string(), "text/css; charset=utf-8"),
        "/assets/uPlot.LICENSE" => (200, UPLOT_LICENSE.to_string(), "text/plain; charset=utf-8"),
        "/healthz" => (200, "ok\n".into(), "text/plain"),
        "/api/status" => match &state.latest {
            Some(s) => (200, serde_json::to_string(s).unwrap_or_default(), JSON),
            None => (503, json!({"error": "no sample yet"}).to_string(), JSON),
        },
        "/api/metrics" => {
            let body = json!({
                "sample_seconds": sample_every.as_secs(),
                "points": state.history,
            });
            (200, body.to_string(), JSON)
        }
        "/api/health" => match &state.latest {
            Some(s) => {
                let h = &s.health;
                // The service works while its stores do; the autoscaler and
                // the Kubernetes API are reported, not required.
                let healthy = h.redis.healthy && h.postgresql.healthy;
                let body = json!({"healthy": healthy, "at": s.at, "checks": h});
                (if healthy { 200 } else { 503 }, body.to_string(), JSON)
            }
            None => (503, json!({"healthy": false, "error": "no sample yet"}).to_string(), JSON),
        },
        _ => (404, json!({"error": "not found"}).to_string(), JSON),
    }
}
