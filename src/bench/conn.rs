//! One load-generator connection: the protocol's client side, by line,
//! every read bounded by a timeout. One file descriptor per connection.
//! A host written `ws://host:port` is the web port: the same lines, one per
//! WebSocket text frame (masked, as a browser sends them).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tungstenite::protocol::frame::{Frame, FrameHeader};

use crate::protocol::{self, input, Ack, ServerLine};

/// Longest wait for a line during set-up.
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(30);

/// The socket, shared by the reader and writers without a second fd.
#[derive(Clone)]
pub struct Socket {
    stream: Arc<TcpStream>,
    /// Lines travel in WebSocket frames (the web port).
    websocket: bool,
}

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self.stream).read(buf)
    }
}

impl Socket {
    /// Writes one line (the newline added, or in a masked text frame).
    pub fn send(&self, line: &str) -> io::Result<()> {
        let mut buf = Vec::with_capacity(line.len() + 16);
        if self.websocket {
            let mut frame = Frame::message(line.as_bytes().to_vec(), OpCode::Data(Data::Text), true);
            frame.header_mut().mask = Some(rand_core::RngCore::next_u32(&mut rand_core::OsRng).to_be_bytes());
            frame.format(&mut buf).map_err(io::Error::other)?;
        } else {
            buf.extend_from_slice(line.as_bytes());
            buf.push(b'\n');
        }
        (&*self.stream).write_all(&buf)
    }

    pub fn set_read_timeout(&self, t: Duration) -> io::Result<()> {
        self.stream.set_read_timeout(Some(t))
    }
}

/// The server's bytes as lines: as they come, or taken out of WebSocket
/// text frames with a newline after each.
struct Incoming {
    socket: Socket,
    /// WebSocket bytes read and not yet a whole frame.
    raw: Vec<u8>,
    /// Lines taken out of frames and not yet read.
    lines: std::collections::VecDeque<u8>,
}

impl Incoming {
    /// Moves every whole frame of `raw` into `lines`; `false` at a close.
    fn unframe(&mut self) -> io::Result<bool> {
        loop {
            let mut cursor = io::Cursor::new(&self.raw);
            let Some((header, len)) = FrameHeader::parse(&mut cursor).map_err(io::Error::other)? else {
                return Ok(true);
            };
            let start = cursor.position() as usize;
            let end = start + len as usize;
            if self.raw.len() < end {
                return Ok(true);
            }
            match header.opcode {
                OpCode::Control(Control::Close) => return Ok(false),
                OpCode::Control(_) => {}
                OpCode::Data(_) => {
                    self.lines.extend(&self.raw[start..end]);
                    self.lines.push_back(b'\n');
                }
            }
            self.raw.drain(..end);
        }
    }
}

impl Read for Incoming {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.socket.websocket {
            return self.socket.read(buf);
        }
        while self.lines.is_empty() {
            if !self.unframe()? {
                return Ok(0);
            }
            if !self.lines.is_empty() {
                break;
            }
            let mut chunk = [0u8; 4096];
            let n = self.socket.read(&mut chunk)?;
            if n == 0 {
                return Ok(0);
            }
            self.raw.extend_from_slice(&chunk[..n]);
        }
        let n = self.lines.len().min(buf.len());
        for (slot, byte) in buf.iter_mut().zip(self.lines.drain(..n)) {
            *slot = byte;
        }
        Ok(n)
    }
}

/// A connection to chat_server.
pub struct BenchConn {
    pub socket: Socket,
    reader: BufReader<Incoming>,
    line: String,
}

/// The WebSocket handshake of `/ws`, read byte by byte so that no frame
/// after it is taken with it.
fn upgrade(mut stream: &TcpStream, addr: &str) -> io::Result<()> {
    let key = "Y2hhdF9iZW5jaCBrZXkhIQ==";
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes())?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 4096 {
        if stream.read(&mut byte)? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed during the WebSocket handshake"));
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    if !head.starts_with("HTTP/1.1 101") || !head.contains(&accept) {
        return Err(io::Error::other(format!("no WebSocket: {}", head.lines().next().unwrap_or_default())));
    }
    Ok(())
}

fn unexpected(what: &str, got: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("expected {what}, got {got:?}"))
}

impl BenchConn {
    /// Connects and reads `AUTH_REQUEST`.
    pub fn connect(host: &str) -> io::Result<BenchConn> {
        let (addr, websocket) = match host.strip_prefix("ws://") {
            Some(addr) => (addr, true),
            None => (host, false),
        };
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        let socket = Socket { stream: Arc::new(stream), websocket };
        socket.set_read_timeout(SETUP_TIMEOUT)?;
        if websocket {
            upgrade(&socket.stream, addr)?;
        }
        let reader = BufReader::with_capacity(
            4096,
            Incoming { socket: socket.clone(), raw: Vec::new(), lines: Default::default() },
        );
        let mut conn = BenchConn { socket, reader, line: String::new() };
        conn.expect(protocol::AUTH_REQUEST)?;
        Ok(conn)
    }

    /// The next line, without its newline; `UnexpectedEof` when the server
    /// closed, `WouldBlock`/`TimedOut` after the read timeout.
    pub fn read_line(&mut self) -> io::Result<&str> {
        self.line.clear();
        if self.reader.read_line(&mut self.line)? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "server closed the connection"));
        }
        let end = self.line.trim_end_matches(['\r', '\n']).len();
        self.line.truncate(end);
        Ok(&self.line)
    }

    pub fn expect(&mut self, expected: &str) -> io::Result<()> {
        let got = self.read_line()?;
        if got != expected {
            return Err(unexpected(expected, got));
        }
        Ok(())
    }

    /// Reads lines until one satisfying `done`.
    pub fn until(&mut self, what: &str, done: impl Fn(&ServerLine) -> bool) -> io::Result<()> {
        loop {
            let line = self.read_line()?;
            if done(&protocol::parse_server_line(line)) {
                return Ok(());
            }
            if let ServerLine::Problem(p) | ServerLine::AuthFailed(p) = protocol::parse_server_line(line) {
                return Err(unexpected(what, p));
            }
        }
    }

    /// Reads up to the next acknowledgement (`SENT:`, `BROADCAST_SENT:`...),
    /// skipping notifications; a refusal or error line is an error.
    pub fn read_ack(&mut self) -> io::Result<Ack> {
        loop {
            let line = self.read_line()?;
            if let Some(ack) = protocol::parse_ack(line) {
                return Ok(ack);
            }
            if let ServerLine::Problem(p) = protocol::parse_server_line(line) {
                return Err(io::Error::other(format!("server said {p:?}")));
            }
        }
    }

    /// `HELLO:2`: the session gets a resume token.
    pub fn hello(&mut self) -> io::Result<()> {
        self.socket.send(&protocol::hello())?;
        self.expect(&protocol::hello())?;
        match protocol::parse_server_line(self.read_line()?) {
            ServerLine::Registration(_) => Ok(()),
            _ => Err(unexpected("REGISTRATION after HELLO", &self.line)),
        }
    }

    /// Protocol 2: `RESUME` with `token`, then waits for the menu. Returns
    /// the new token.
    pub fn resume(&mut self, name: &str, token: &str) -> io::Result<String> {
        self.hello()?;
        self.socket.send(&protocol::resume(name, token, protocol::LastSeen::default()))?;
        match protocol::parse_server_line(self.read_line()?) {
            ServerLine::AuthSuccess(_) => {}
            _ => return Err(unexpected("a resumed session", &self.line)),
        }
        let token = self.session_token()?;
        self.until("the main menu", |l| matches!(l, ServerLine::MainMenuEnd))?;
        Ok(token)
    }

    /// The `SESSION:` line that follows `AUTH_SUCCESS` in protocol 2.
    pub fn session_token(&mut self) -> io::Result<String> {
        match protocol::parse_server_line(self.read_line()?) {
            ServerLine::Session(t) => Ok(t.to_string()),
            _ => Err(unexpected("a SESSION line", &self.line)),
        }
    }

    /// Protocol 2: `HELLO:2`, `SIGNUP` as `name`, the menu; returns the
    /// session's resume token.
    pub fn signup_with_token(&mut self, name: &str, password: &str) -> io::Result<String> {
        self.hello()?;
        self.socket.send(input::SIGNUP)?;
        self.expect(protocol::SIGNUP_PROMPT)?;
        self.socket.send(name)?;
        self.socket.send(password)?;
        match protocol::parse_server_line(self.read_line()?) {
            ServerLine::AuthSuccess(_) => {}
            _ => return Err(unexpected("a successful signup", &self.line)),
        }
        let token = self.session_token()?;
        self.until("the main menu", |l| matches!(l, ServerLine::MainMenuEnd))?;
        Ok(token)
    }

    /// `SIGNUP` or `LOGIN` as `name`, then waits for the end of the menu.
    pub fn authenticate(&mut self, signup: bool, name: &str, password: &str) -> io::Result<()> {
        let (choice, prompt) =
            if signup { (input::SIGNUP, protocol::SIGNUP_PROMPT) } else { (input::LOGIN, protocol::LOGIN_PROMPT) };
        self.socket.send(choice)?;
        self.expect(prompt)?;
        self.socket.send(name)?;
        self.socket.send(password)?;
        match protocol::parse_server_line(self.read_line()?) {
            ServerLine::AuthSuccess(_) => {}
            _ => return Err(unexpected("a successful login", &self.line)),
        }
        self.until("the main menu", |l| matches!(l, ServerLine::MainMenuEnd))
    }

    /// From the main menu into the conversation with `contact`.
    pub fn open_conversation(&mut self, contact: &str) -> io::Result<()> {
        self.socket.send(input::MENU_PRIVATE)?;
        self.until("the contact list", |l| matches!(l, ServerLine::ContactListEnd))?;
        self.socket.send(contact)?;
        self.until("the conversation", |l| matches!(l, ServerLine::ConversationReady))
    }

    /// From the main menu into the broadcast channel.
    pub fn open_broadcast(&mut self) -> io::Result<()> {
        self.socket.send(input::MENU_BROADCAST)?;
        self.until("the broadcast channel", |l| matches!(l, ServerLine::ConversationReady))
    }
}
