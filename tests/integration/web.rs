//! The web port (`WEB_PORT`) without a browser: its files and headers, the
//! WebSocket upgrade and its Origin check, frames as lines, and a web user
//! talking with a terminal user on another pod. (The page itself runs in a
//! real Chromium in `web_client.rs`.)

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use chatp::protocol::{self, input, text};
use tungstenite::client::IntoClientRequest;
use tungstenite::{Message, WebSocket};

use crate::support::{unique, World, NO_RATE_LIMITS};

const WEB: (&str, &str) = ("WEB_PORT", "0");

/// A protocol-2 client over the web port's WebSocket, as a page opens it.
pub struct WsClient {
    ws: WebSocket<TcpStream>,
}

impl WsClient {
    /// Opens `/ws` with `origin` (`None`: no Origin, not a browser).
    pub fn open(port: u16, origin: Option<&str>) -> Result<WsClient, tungstenite::Error> {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut request = format!("ws://127.0.0.1:{port}/ws").into_client_request().unwrap();
        if let Some(origin) = origin {
            request.headers_mut().insert("Origin", origin.parse().unwrap());
        }
        let (ws, _) = tungstenite::client(request, stream).map_err(|e| match e {
            tungstenite::HandshakeError::Failure(e) => e,
            tungstenite::HandshakeError::Interrupted(_) => panic!("handshake interrupted"),
        })?;
        let mut c = WsClient { ws };
        c.expect(protocol::AUTH_REQUEST);
        Ok(c)
    }

    /// Opens `/ws` as the chat's own page does.
    pub fn connect(port: u16) -> WsClient {
        WsClient::open(port, Some(&format!("http://127.0.0.1:{port}"))).expect("WebSocket from the page's origin")
    }

    pub fn send(&mut self, line: &str) {
        self.ws.send(Message::text(line)).unwrap();
    }

    /// The next line (text frame); pings are answered by tungstenite.
    pub fn next(&mut self) -> Option<String> {
        loop {
            match self.ws.read() {
                Ok(Message::Text(t)) => return Some(t.to_string()),
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => continue,
            }
        }
    }

    pub fn line(&mut self) -> String {
        self.next().expect("a line, not the end of the connection")
    }

    pub fn expect(&mut self, expected: &str) {
        assert_eq!(self.line(), expected);
    }

    pub fn lines_until(&mut self, end: &str) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            let l = self.line();
            if l == end {
                return out;
            }
            out.push(l);
        }
    }

    /// `HELLO:2`, then signs up and reads up to the main menu's end.
    pub fn signup(&mut self, user: &str, password: &str) {
        self.send(&protocol::hello());
        self.expect(&protocol::hello());
        self.line(); // REGISTRATION:
        self.send(input::SIGNUP);
        self.expect(protocol::SIGNUP_PROMPT);
        self.send(user);
        self.send(password);
        self.expect(&protocol::signup_success(user));
        self.lines_until(protocol::MAIN_MENU_END);
    }
}

/// One HTTP request to the web port; the whole answer.
fn http(port: u16, request: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn the_web_port_serves_the_page_and_its_files_under_a_strict_policy() {
    let w = World::new("web_files");
    let pod = w.start_server_with(&[WEB]);
    let port = pod.web_port.expect("web port");
    let page = http(port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
    assert!(page.contains("Content-Type: text/html; charset=utf-8\r\n"));
    let csp = page.lines().find(|l| l.starts_with("Content-Security-Policy: ")).expect("a CSP");
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
    assert!(page.contains("X-Frame-Options: DENY\r\n"));
    assert!(page.contains("<script") && page.contains("app.js"), "the page loads its script");
    let js = http(port, "GET /app.js HTTP/1.1\r\n\r\n");
    assert!(js.starts_with("HTTP/1.1 200 OK\r\n") && js.contains("text/javascript"), "{js}");
    assert!(http(port, "GET /app.css HTTP/1.1\r\n\r\n").contains("text/css"));
    let escape = http(port, "GET /../../etc/passwd HTTP/1.1\r\n\r\n");
    assert!(escape.starts_with("HTTP/1.1 404 ") || escape.starts_with("HTTP/1.1 400 "), "{escape}");
    assert!(http(port, "HEAD / HTTP/1.1\r\n\r\n").ends_with("\r\n\r\n"), "HEAD: no body");
    // A plain GET of /ws is not an upgrade.
    assert!(http(port, "GET /ws HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 400 "));
    // The chat port still speaks lines.
    pod.connect();
}

#[test]
fn a_page_of_another_origin_cannot_open_the_chat() {
    let w = World::new("web_origin");
    let pod = w.start_server_with(&[WEB, ("WEB_ALLOWED_ORIGINS", "https://chat.example.com")]);
    let port = pod.web_port.unwrap();
    for hostile in ["http://evil.example", "null", &format!("http://127.0.0.1:{}", port + 1)] {
        match WsClient::open(port, Some(hostile)) {
            Err(tungstenite::Error::Http(r)) => assert_eq!(r.status(), 403, "{hostile}"),
            Err(e) => panic!("{hostile}: refused otherwise: {e}"),
            Ok(_) => panic!("a page of {hostile} opened the chat"),
        }
    }
    // With an allow-list, it alone decides (a DNS-rebinding page names any Host).
    assert!(WsClient::open(port, Some(&format!("http://127.0.0.1:{port}"))).is_err());
    WsClient::open(port, Some("https://chat.example.com")).expect("an allowed origin");
    WsClient::open(port, None).expect("not a browser: no Origin");
    assert!(pod.log_text().contains("WebSocket refused: this origin may not open the chat"));
    let open = w.start_server_with(&[WEB]);
    WsClient::connect(open.web_port.unwrap());
}

#[test]
fn a_frame_is_one_line_and_the_line_limit_holds() {
    let w = World::new("web_frames");
    let pod = w.start_server_with(&[WEB]);
    let port = pod.web_port.unwrap();
    let mut c = WsClient::connect(port);
    c.ws.send(Message::binary(b"LOGIN".to_vec())).unwrap();
    c.expect(&protocol::error(text::NOT_TEXT));
    // A line break would make two lines of one for the chat port's clients.
    c.send("LOGIN\nsomeone");
    c.expect(&protocol::error(text::LINE_BREAK));
    c.send("a\0b");
    c.expect(&protocol::error(text::NUL_BYTE));
    c.ws.send(Message::Ping(b"still there?".to_vec().into())).unwrap();
    c.send(&protocol::hello());
    c.expect(&protocol::hello());
    assert!(c.line().starts_with("REGISTRATION:"));
    // Over the line limit: the connection ends (its payload is never read).
    c.send(&"x".repeat(protocol::MAX_LINE_BYTES + 1));
    c.expect(&protocol::error(text::LINE_TOO_LONG));
    assert_eq!(c.next(), None, "a frame over the limit closes the connection");
    let mut again = WsClient::connect(port);
    again.send(&protocol::hello());
    again.expect(&protocol::hello());
}

#[test]
fn a_web_user_and_a_terminal_user_on_two_pods_talk() {
    let w = World::new("web_talk");
    let (web_pod, tcp_pod) = (w.start_server_with(&[WEB, NO_RATE_LIMITS]), w.start_unlimited_server());
    let (alice, bob) = (unique("webalice"), unique("termbob"));
    let mut a = WsClient::connect(web_pod.web_port.unwrap());
    a.signup(&alice, "pw");
    let mut b = tcp_pod.connect();
    b.signup(&bob, "pw");
    a.send(input::MENU_PRIVATE);
    a.expect(protocol::CONTACT_LIST_START);
    a.lines_until(protocol::CONTACT_LIST_END);
    a.send(&bob);
    a.expect(&protocol::conversation_start(&bob));
    a.lines_until(protocol::CONVERSATION_READY);
    let hostile = "<script>alert(1)</script> \u{202e}olleh";
    a.send(hostile);
    let ack = a.line();
    assert!(ack.starts_with("MSG_ID:") || ack.starts_with("SENT"), "acknowledged: {ack}");
    let got = b.line();
    assert!(got.contains(&alice) && got.ends_with(hostile), "{got}");
    b.open_conversation(&alice);
    b.send("hello from the terminal");
    b.line();
    let mut seen = Vec::new();
    while let Some(l) = a.next() {
        seen.push(l.clone());
        if l.contains("hello from the terminal") {
            break;
        }
    }
    assert!(seen.iter().any(|l| l.contains(&bob) && l.ends_with("hello from the terminal")), "{seen:?}");
}

#[test]
fn a_websocket_that_never_logs_in_is_closed_however_it_trickles() {
    let w = World::new("web_deadline");
    let pod = w.start_server_with(&[WEB, ("AUTH_TIMEOUT_SECS", "2")]);
    for partial_frame in [false, true] {
        let mut c = WsClient::connect(pod.web_port.unwrap());
        c.ws.get_mut().set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        if partial_frame {
            // A masked text frame announcing 100 bytes, then its bytes one at a time.
            c.ws.get_mut().write_all(&[0x81, 0x80 | 100, 1, 2, 3, 4]).unwrap();
        }
        let start = std::time::Instant::now();
        // Every 300 ms a ping or a byte: every read of the server finds something.
        let closed = loop {
            let sent = if partial_frame {
                c.ws.get_mut().write_all(b"x").is_ok()
            } else {
                c.ws.send(Message::Ping(b"here".to_vec().into())).is_ok()
            };
            if !sent {
                break start.elapsed();
            }
            let mut byte = [0u8; 1];
            let ended = if partial_frame {
                matches!(c.ws.get_mut().read(&mut byte), Ok(0))
            } else {
                match c.ws.read() {
                    Ok(Message::Close(_)) => true,
                    Err(tungstenite::Error::Io(e)) => e.kind() != std::io::ErrorKind::WouldBlock,
                    Err(_) => true,
                    Ok(_) => false,
                }
            };
            if ended {
                break start.elapsed();
            }
            if partial_frame {
                std::thread::sleep(Duration::from_millis(300));
            }
            assert!(start.elapsed() < Duration::from_secs(10), "a trickling WebSocket outlived the login time");
        };
        assert!(closed >= Duration::from_millis(1500) && closed < Duration::from_secs(5), "closed after {closed:?}");
    }
}
