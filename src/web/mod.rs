//! The web port (`WEB_PORT`): the browser client's page and files, and the
//! `/ws` upgrade after which the connection is a chat connection like any
//! other (same session, limits and drain), its lines in WebSocket frames.
//!
//! One request per connection, read within the login time. The upgrade is
//! refused to a page of another origin than the page's own or
//! `WEB_ALLOWED_ORIGINS` (cross-site WebSocket hijacking: any page a user
//! visits could otherwise open a chat connection in their name).

mod assets;
mod origin;

use std::net::SocketAddr;

use crate::config::WebListen;
use crate::connection::{Connection, Step};
use crate::http::{Head, Method, Response};

pub use origin::origin_allowed;

/// What the request turned out to be.
pub enum Served {
    /// A file or a refusal was sent; the connection ends.
    Answered,
    /// The connection is now a WebSocket carrying chat lines.
    Upgraded,
}

/// Reads the one request of a web-port connection and answers it.
pub fn serve(conn: &mut Connection, web: &WebListen, peer: SocketAddr, tls: bool) -> Step<Served> {
    let (head, after) = conn.read_request_head()?;
    let head = match head {
        Ok(head) => head,
        Err(e) => return answer(conn, Method::Get, Response::text(e.status(), "bad request\n")),
    };
    if head.path != "/ws" {
        return answer(conn, head.method, assets::response(&head.path, tls));
    }
    if let Err(refusal) = check_upgrade(&head, web, tls) {
        log::info!("web {peer}: WebSocket refused: {}", String::from_utf8_lossy(&refusal.body).trim());
        return answer(conn, head.method, refusal);
    }
    let key = head.header("sec-websocket-key").unwrap_or_default();
    let accepted = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        tungstenite::handshake::derive_accept_key(key.as_bytes())
    );
    if !conn.outbox().send_raw(accepted.into_bytes()) {
        return Err(crate::connection::Ended::Eof);
    }
    conn.upgrade_to_websocket(after);
    if !tls && !peer.ip().is_loopback() && !web.passwords_without_tls {
        conn.set_refuse_passwords();
    }
    Ok(Served::Upgraded)
}

/// Sends `response` and lets it leave before the connection closes.
fn answer(conn: &Connection, method: Method, response: Response) -> Step<Served> {
    let outbox = conn.outbox();
    if outbox.send_raw(response.to_bytes(method)) {
        outbox.drain(std::time::Duration::from_secs(2));
    }
    Ok(Served::Answered)
}

/// A WebSocket handshake as RFC 6455 has it, from an allowed origin; else
/// the answer that says why not.
fn check_upgrade(head: &Head, web: &WebListen, tls: bool) -> Result<(), Response> {
    let has_token = |name: &str, token: &str| {
        head.header(name).is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    };
    if head.method != Method::Get || !has_token("upgrade", "websocket") || !has_token("connection", "upgrade") {
        return Err(Response::text(400, "a WebSocket upgrade is expected here\n"));
    }
    if head.header("sec-websocket-version") != Some("13") {
        return Err(Response::text(426, "WebSocket version 13 only\n").with_header("Sec-WebSocket-Version", "13"));
    }
    // 16 random bytes in base64.
    let key = head.header("sec-websocket-key").unwrap_or_default();
    if key.len() != 24 || !key.ends_with("==") {
        return Err(Response::text(400, "Sec-WebSocket-Key is not 16 bytes in base64\n"));
    }
    if !origin_allowed(head.header("origin"), head.header("host"), tls, &web.allowed_origins) {
        return Err(Response::text(403, "this origin may not open the chat: add it to WEB_ALLOWED_ORIGINS\n"));
    }
    Ok(())
}
