//! The web client's files, embedded in chat_server (nothing is fetched
//! from another host), and the headers every answer of the web port
//! carries.

use crate::http::Response;

const INDEX_HTML: &str = include_str!("../../web/index.html");
const APP_JS: &str = include_str!("../../web/app.js");
const APP_CSS: &str = include_str!("../../web/app.css");

/// Scripts and styles from the page's own files only (nothing inline, no
/// eval), connections to its own origin only (the WebSocket), no frames
/// around it, no plugins, no forms posted anywhere.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The file at `path`, or 404; with the security headers.
pub fn response(path: &str, tls: bool) -> Response {
    let response = match path {
        "/" | "/index.html" => Response::new(200, "text/html; charset=utf-8", INDEX_HTML),
        "/app.js" => Response::new(200, "text/javascript; charset=utf-8", APP_JS),
        "/app.css" => Response::new(200, "text/css; charset=utf-8", APP_CSS),
        _ => Response::text(404, "not found\n"),
    };
    let response = response
        .with_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        .with_header("X-Frame-Options", "DENY")
        .with_header("Referrer-Policy", "no-referrer")
        .with_header("Cache-Control", "no-cache");
    if tls {
        response.with_header("Strict-Transport-Security", "max-age=31536000")
    } else {
        response
    }
}
