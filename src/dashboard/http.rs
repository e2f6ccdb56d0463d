//! The dashboard's HTTP side: the page, its embedded assets, and the JSON
//! API of the original chatp dashboard (`/api/status`, `/api/metrics`,
//! `/api/health`), plus `/healthz` for the probes. Served by
//! [`crate::http`] (bounded connections and reading time); every answer
//! carries the security headers, a foreign `Host` gets 421 and, with a
//! login configured, everything but `/healthz` asks for it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use log::{info, warn};
use serde_json::json;

use super::access::Access;
use super::State;
use crate::http::{Head, Limits, Response, Server};

const PAGE: &str = include_str!("page.html");
const PAGE_JS: &str = include_str!("assets/dashboard.js");
const PAGE_CSS: &str = include_str!("assets/dashboard.css");
const UPLOT_JS: &str = include_str!("assets/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("assets/uPlot.min.css");
const UPLOT_LICENSE: &str = include_str!("assets/uPlot.LICENSE");

/// Scripts, styles and API calls from the dashboard itself only, nothing
/// inline, no frames around it, no forms, no plugins.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Sent with every answer.
const SECURITY_HEADERS: &[(&str, &str)] = &[
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
];

/// Serves the dashboard on `bind` until dropped.
pub fn start(bind: &str, state: Arc<Mutex<State>>, sample_every: Duration, access: Access) -> std::io::Result<Server> {
    let login = access.login_required();
    let server = Server::start("dashboard-http", bind, Limits::default(), move |head: &Head| {
        let mut response = guarded(head, &access, |path| answer(path, &state, sample_every));
        for (name, value) in SECURITY_HEADERS {
            response = response.with_header(name, *value);
        }
        response
    })?;
    if !login && !server.addr().ip().is_loopback() {
        warn!("the dashboard listens on {} without a login: set DASHBOARD_PASSWORD", server.addr());
    }
    let login = if login { "login required" } else { "no login (DASHBOARD_PASSWORD unset)" };
    info!("dashboard on http://{}/ (API: /api/status, /api/metrics, /api/health; {login})", server.addr());
    Ok(server)
}

/// The Host check, then the login (but for `/healthz`), then `route`.
fn guarded(head: &Head, access: &Access, route: impl FnOnce(&str) -> Response) -> Response {
    if !access.host_allowed(head.header("host")) {
        return Response::text(421, "unknown host: add it to DASHBOARD_ALLOWED_HOSTS\n");
    }
    if head.path != "/healthz" && !access.authorized(head.header("authorization")) {
        return Response::text(401, "login required\n")
            .with_header("WWW-Authenticate", "Basic realm=\"chatp dashboard\", charset=\"UTF-8\"");
    }
    route(&head.path)
}

fn answer(path: &str, state: &Mutex<State>, sample_every: Duration) -> Response {
    const JSON: &str = "application/json";
    let state = state.lock().unwrap_or_else(|e| e.into_inner());
    let json = |status: u16, body: String| Response::new(status, JSON, body);
    match path {
        "/" | "/index.html" => Response::new(200, "text/html; charset=utf-8", PAGE),
        "/assets/dashboard.js" => Response::new(200, "text/javascript; charset=utf-8", PAGE_JS),
        "/assets/dashboard.css" => Response::new(200, "text/css; charset=utf-8", PAGE_CSS),
        "/assets/uPlot.iife.min.js" => Response::new(200, "text/javascript; charset=utf-8", UPLOT_JS),
        "/assets/uPlot.min.css" => Response::new(200, "text/css; charset=utf-8", UPLOT_CSS),
        "/assets/uPlot.LICENSE" => Response::text(200, UPLOT_LICENSE),
        "/healthz" => Response::text(200, "ok\n"),
        "/api/status" => match &state.latest {
            Some(s) => {
                let mut body = serde_json::to_value(s).unwrap_or_default();
                // The dashboard's own, at the time of the request.
                body["started_at"] = state.started_at.into();
                body["uptime_seconds"] = state.started.elapsed().as_secs().into();
                json(200, body.to_string())
            }
            None => json(503, json!({"error": "no sample yet"}).to_string()),
        },
        "/api/metrics" => {
            let body = json!({
                "sample_seconds": sample_every.as_secs(),
                "points": state.history,
            });
            json(200, body.to_string())
        }
        "/api/health" => match &state.latest {
            Some(s) => {
                let h = &s.health;
                // The service works while its stores do; the autoscaler and
                // the Kubernetes API are reported, not required.
                let healthy = h.redis.healthy && h.postgresql.healthy;
                let body = json!({"healthy": healthy, "at": s.at, "checks": h});
                json(if healthy { 200 } else { 503 }, body.to_string())
            }
            None => json(503, json!({"healthy": false, "error": "no sample yet"}).to_string()),
        },
        _ => json(404, json!({"error": "not found"}).to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Login;
    use crate::http::Method;

    fn head(path: &str, headers: &[(&str, &str)]) -> Head {
        Head {
            method: Method::Get,
            path: path.into(),
            headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
        }
    }

    #[test]
    fn foreign_hosts_then_missing_logins_are_refused_healthz_needs_no_login() {
        let access = Access::new(Some(&Login { user: "admin".into(), password: "pw".into() }), &[]);
        let ok = |_: &str| Response::text(200, "ok");
        let status = |h: &Head| guarded(h, &access, ok).status;
        assert_eq!(status(&head("/", &[("host", "evil.example:8080"), ("authorization", "Bearer pw")])), 421);
        assert_eq!(status(&head("/", &[("host", "localhost:8080")])), 401);
        assert_eq!(status(&head("/api/status", &[("host", "127.0.0.1"), ("authorization", "Bearer pw")])), 200);
        assert_eq!(status(&head("/healthz", &[("host", "10.0.0.7:8080")])), 200);
        assert_eq!(status(&head("/healthz", &[("host", "evil.example")])), 421);
    }

    #[test]
    fn the_page_has_nothing_inline_for_the_policy_to_block() {
        for inline in ["<script>", "<style", " style=", " onclick=", " onload=", "javascript:"] {
            assert!(!PAGE.contains(inline), "{inline} in page.html: the Content-Security-Policy blocks it");
        }
        assert!(!PAGE_JS.contains("style=\\\"") && !PAGE_JS.contains(" style="), "inline style in dashboard.js");
    }
}
