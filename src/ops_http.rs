//! The operational endpoints of chatp's long-running binaries, on their own
//! port (`METRICS_PORT`) and thread ([`crate::http`]): `/healthz` (the
//! process answers), `/readyz` (the binary's readiness as a checker thread
//! last found it; 503 with the reason when not ready), `/metrics`
//! (Prometheus text format). No request touches PostgreSQL or Redis: what
//! clients send cannot slow the probes down or pile up connections.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use log::info;

use crate::http::{Head, Limits, Response, Server};

/// How often the checker evaluates readiness.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// A verdict older than this is not trusted: the check is stuck (a store
/// that does not answer), and the pod is reported not ready.
pub const STALE_AFTER: Duration = Duration::from_secs(5);

/// The last verdict of the readiness check.
#[derive(Clone)]
struct Verdict {
    at: Instant,
    result: Result<(), String>,
}

/// The endpoints and the readiness checker; dropping it stops both.
pub struct Ops {
    http: Server,
    _checker: Checker,
}

impl Ops {
    pub fn addr(&self) -> SocketAddr {
        self.http.addr()
    }
}

/// The thread evaluating readiness every [`CHECK_EVERY`].
struct Checker {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Checker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serves the endpoints on `bind`: `ready` is evaluated once before the
/// port opens, then every [`CHECK_EVERY`] on a thread of its own; `metrics`
/// renders the text format (from memory).
pub fn start(
    bind: &str,
    ready: impl Fn() -> Result<(), String> + Send + 'static,
    metrics: fn() -> String,
) -> std::io::Result<Ops> {
    let verdict = Arc::new(Mutex::new(Verdict { at: Instant::now(), result: ready() }));
    let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
    let shared = Arc::clone(&verdict);
    let thread = thread::Builder::new().name("readiness".into()).spawn(move || check_loop(ready, &shared, &stopped))?;
    let checker = Checker { stop: Some(stop), thread: Some(thread) };
    let http = Server::start("ops-http", bind, Limits::default(), move |head: &Head| {
        let last = verdict.lock().unwrap_or_else(|e| e.into_inner()).clone();
        answer(&head.path, &last, Instant::now(), metrics)
    })?;
    info!("health and metrics on http://{} (/healthz, /readyz, /metrics)", http.addr());
    Ok(Ops { http, _checker: checker })
}

fn check_loop(ready: impl Fn() -> Result<(), String>, verdict: &Mutex<Verdict>, stopped: &Receiver<()>) {
    while let Err(crossbeam_channel::RecvTimeoutError::Timeout) = stopped.recv_timeout(CHECK_EVERY) {
        let result = ready();
        *verdict.lock().unwrap_or_else(|e| e.into_inner()) = Verdict { at: Instant::now(), result };
    }
}

fn answer(path: &str, last: &Verdict, now: Instant, metrics: fn() -> String) -> Response {
    match path {
        "/healthz" => Response::text(200, "ok\n"),
        "/readyz" => {
            let age = now.saturating_duration_since(last.at);
            match &last.result {
                _ if age > STALE_AFTER => {
                    Response::text(503, format!("not ready: readiness check unanswered for {}s\n", age.as_secs()))
                }
                Ok(()) => Response::text(200, "ready\n"),
                Err(why) => Response::text(503, format!("not ready: {why}\n")),
            }
        }
        "/metrics" => Response::new(200, "text/plain; version=0.0.4", metrics()),
        _ => Response::text(404, "not found\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(r: &Response) -> String {
        String::from_utf8_lossy(&r.body).into_owned()
    }

    #[test]
    fn readyz_answers_the_last_verdict_until_it_goes_stale() {
        let now = Instant::now();
        let fresh = Verdict { at: now, result: Ok(()) };
        let metrics = || "m 1\n".to_string();
        assert_eq!(answer("/readyz", &fresh, now, metrics).status, 200);
        let down = Verdict { at: now, result: Err("Redis: refused".into()) };
        let r = answer("/readyz", &down, now, metrics);
        assert_eq!((r.status, body(&r)), (503, "not ready: Redis: refused\n".into()));
        let r = answer("/readyz", &fresh, now + STALE_AFTER + Duration::from_secs(2), metrics);
        assert_eq!((r.status, body(&r)), (503, "not ready: readiness check unanswered for 7s\n".into()));
        assert_eq!(answer("/healthz", &down, now, metrics).status, 200);
        assert_eq!(body(&answer("/metrics", &fresh, now, metrics)), "m 1\n");
        assert_eq!(answer("/x", &fresh, now, metrics).status, 404);
    }
}
