//! The operational endpoints of chatp's long-running binaries, on their own
//! port (`METRICS_PORT`) and thread (tiny_http, synchronous): `/healthz`
//! (the process answers), `/readyz` (the binary's own readiness; 503 with
//! the reason when not ready), `/metrics` (Prometheus text format).

use std::net::SocketAddr;
use std::thread;

use log::{info, warn};
use tiny_http::{Header, Response, Server};

/// Serves the endpoints on `bind`; returns where they listen.
pub fn start(
    bind: &str,
    ready: impl Fn() -> Result<(), String> + Send + 'static,
    metrics: fn() -> String,
) -> std::io::Result<SocketAddr> {
    let server = Server::http(bind).map_err(std::io::Error::other)?;
    let addr = server.server_addr().to_ip().ok_or_else(|| std::io::Error::other("not an IP address"))?;
    thread::Builder::new().name("ops-http".into()).spawn(move || {
        for request in server.incoming_requests() {
            let (status, body, content_type) = match request.url() {
                "/healthz" => (200, "ok\n".to_string(), "text/plain"),
                "/readyz" => match ready() {
                    Ok(()) => (200, "ready\n".to_string(), "text/plain"),
                    Err(why) => (503, format!("not ready: {why}\n"), "text/plain"),
                },
                "/metrics" => (200, metrics(), "text/plain; version=0.0.4"),
                _ => (404, "not found\n".to_string(), "text/plain"),
            };
            let header = Header::from_bytes("Content-Type", content_type).expect("a valid header");
            if let Err(e) = request.respond(Response::from_string(body).with_status_code(status).with_header(header)) {
                warn!("ops endpoint: {e}");
            }
        }
    })?;
    info!("health and metrics on http://{addr} (/healthz, /readyz, /metrics)");
    Ok(addr)
}
