//! The operational endpoints, on their own port (`METRICS_PORT`) and thread
//! (tiny_http, synchronous): `/healthz` (the process answers), `/readyz`
//! (it accepts users: PostgreSQL and Redis answer and it is not draining;
//! 503 with the reason otherwise), `/metrics` (Prometheus text format).

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread;

use log::{info, warn};
use tiny_http::{Header, Response, Server};

use super::Context;
use crate::metrics::METRICS;

/// Starts the endpoints; returns where they listen.
pub fn start(ctx: Arc<Context>, bind: &str) -> std::io::Result<SocketAddr> {
    let server = Server::http(bind).map_err(std::io::Error::other)?;
    let addr = server.server_addr().to_ip().ok_or_else(|| std::io::Error::other("not an IP address"))?;
    thread::Builder::new().name("ops-http".into()).spawn(move || {
        for request in server.incoming_requests() {
            let (status, body, content_type) = match request.url() {
                "/healthz" => (200, "ok\n".to_string(), "text/plain"),
                "/readyz" => match readiness(&ctx) {
                    Ok(()) => (200, "ready\n".to_string(), "text/plain"),
                    Err(why) => (503, format!("not ready: {why}\n"), "text/plain"),
                },
                "/metrics" => (200, METRICS.render(), "text/plain; version=0.0.4"),
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

/// Why the pod should get no new users, if it should not.
fn readiness(ctx: &Context) -> Result<(), String> {
    if ctx.is_draining() {
        return Err("draining".into());
    }
    ctx.db.ping().map_err(|e| format!("PostgreSQL: {e}"))?;
    ctx.presence.ping().map_err(|e| format!("Redis: {e}"))?;
    Ok(())
}
