//! One client connection: a framed line reader on the socket and the
//! connection's [`Outbox`]. The only place that reads from a client socket.

use std::io::{self, BufRead, BufReader, Read};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Instant;

use crate::framing::{Frame, LineFramer};
use crate::http::request::{Head, ParseError};
use crate::outbox::Outbox;
use crate::protocol::{self, text};
use crate::rate_limit::{Rate, TokenBucket};
use crate::websocket::{close_frame, CloseCode, Stop, WsIo, WsReader};

/// Read buffer per connection. Small, as every idle connection holds one;
/// longer lines are gathered by the framer.
const READ_BUFFER: usize = 1024;

/// Why a session ended.
#[derive(Debug)]
pub enum Ended {
    /// The client closed its side (EOF).
    Eof,
    /// The client typed `bye` (or gave up during authentication).
    Logout,
    /// The connection was closed by the server (reason kept).
    Closed(String),
    /// A read failed (e.g. connection reset).
    Io(io::Error),
    /// The read deadline passed (not logged in in time).
    TimedOut,
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ended::Eof => write!(f, "client closed the connection"),
            Ended::Logout => write!(f, "logout"),
            Ended::Closed(reason) => write!(f, "closed by server: {reason}"),
            Ended::Io(e) => write!(f, "read error: {e}"),
            Ended::TimedOut => write!(f, "deadline passed"),
        }
    }
}

pub type Step<T = ()> = Result<T, Ended>;

/// The client's socket, read directly or through its TLS session.
pub struct Incoming {
    stream: Arc<TcpStream>,
    outbox: Arc<Outbox>,
}

impl crate::websocket::Timed for Incoming {
    fn stream(&self) -> &TcpStream {
        &self.stream
    }
}

impl Read for Incoming {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(tls) = self.outbox.tls() else {
            return (&*self.stream).read(buf);
        };
        let read = tls.read(&self.stream, buf);
        if tls.wants_write() {
            // An alert or a key update to answer: the outbox sends it.
            self.outbox.flush();
        }
        read
    }
}

/// Where lines come from: `\n`-ended lines on the socket, or WebSocket
/// text frames (the web port's `/ws`).
enum Source {
    Lines { reader: BufReader<Incoming>, framer: LineFramer },
    WebSocket(Box<WsReader<Incoming>>),
}

impl Source {
    fn stream(&self) -> &TcpStream {
        match self {
            Source::Lines { reader, .. } => &reader.get_ref().stream,
            Source::WebSocket(ws) => &ws.incoming().stream,
        }
    }
}

pub struct Connection {
    source: Source,
    outbox: Arc<Outbox>,
    /// Reads fail with [`Ended::TimedOut`] after this (authentication).
    deadline: Option<Instant>,
    /// Lines beyond this rate are read late (the client is slowed down).
    pace: Option<TokenBucket>,
    /// No password may be sent here (plain `ws://` from beyond loopback).
    refuse_passwords: bool,
}

impl Connection {
    pub fn new(stream: Arc<TcpStream>, outbox: Arc<Outbox>) -> Self {
        let incoming = Incoming { stream, outbox: Arc::clone(&outbox) };
        Connection {
            source: Source::Lines {
                reader: BufReader::with_capacity(READ_BUFFER, incoming),
                framer: LineFramer::new(),
            },
            outbox,
            deadline: None,
            pace: None,
            refuse_passwords: false,
        }
    }

    /// Reads after `deadline` fail with [`Ended::TimedOut`], however the
    /// client dribbles its bytes; `None` lifts it.
    pub fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.deadline = deadline;
        if let Source::WebSocket(ws) = &mut self.source {
            ws.set_deadline(deadline);
        }
        if deadline.is_none() {
            let _ = self.source.stream().set_read_timeout(None);
        }
    }

    /// Paces every line read from now on to `rate` (`None`: no pacing).
    pub fn set_pace(&mut self, rate: Option<Rate>) {
        self.pace = rate.map(|r| TokenBucket::new(r, Instant::now()));
    }

    /// No login, sign-up or password change here: the connection is not
    /// encrypted and crosses a network.
    pub fn set_refuse_passwords(&mut self) {
        self.refuse_passwords = true;
    }

    pub fn refuses_passwords(&self) -> bool {
        self.refuse_passwords
    }

    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }

    fn ended_by_server(&self) -> Option<Ended> {
        self.outbox.close_reason().map(Ended::Closed)
    }

    /// Sends one line to this client.
    pub fn send(&self, line: impl Into<String>) -> Step {
        if self.outbox.send_own(line.into()) {
            Ok(())
        } else {
            Err(self.ended_by_server().unwrap_or(Ended::Eof))
        }
    }

    /// Sends lines together (one write while they fit the socket).
    pub fn send_all<I: IntoIterator<Item = String>>(&self, lines: I) -> Step {
        if self.outbox.send_own_all(lines) {
            Ok(())
        } else {
            Err(self.ended_by_server().unwrap_or(Ended::Eof))
        }
    }

    /// The next client line, trimmed. Over-long and non-UTF-8 lines are
    /// answered with `ERROR:` and skipped; EOF ends the session.
    pub fn read_line(&mut self) -> Step<String> {
        loop {
            let frame = self.next_frame()?;
            if let Some(pace) = &mut self.pace {
                let wait = pace.take_or_wait(Instant::now());
                if !wait.is_zero() {
                    std::thread::sleep(wait);
                }
            }
            match frame {
                Frame::Line(line) => {
                    let line = line.trim().to_string();
                    crate::fault::on_client_line(&line);
                    return Ok(line);
                }
                Frame::TooLong => self.send(protocol::error(text::LINE_TOO_LONG))?,
                Frame::InvalidUtf8 => self.send(protocol::error(text::INVALID_UTF8))?,
                Frame::Nul => self.send(protocol::error(text::NUL_BYTE))?,
                Frame::LineBreak => self.send(protocol::error(text::LINE_BREAK))?,
                Frame::NotText => self.send(protocol::error(text::NOT_TEXT))?,
                Frame::Control => {}
            }
        }
    }

    /// Before a read that may wait: arms the deadline on the socket (or
    /// says it has passed) and trims the stack an idle wait keeps.
    fn before_waiting(&self) -> Step {
        if let Some(deadline) = self.deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Ended::TimedOut);
            }
            let _ = self.source.stream().set_read_timeout(Some(left));
        }
        // About to wait for the client: keep only a shallow stack.
        crate::sys::release_unused_stack();
        Ok(())
    }

    /// A read error under a deadline that only means "not yet".
    fn is_deadline_tick(&self, e: &io::Error) -> bool {
        self.deadline.is_some() && matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
    }

    fn next_frame(&mut self) -> Step<Frame> {
        if matches!(self.source, Source::WebSocket(_)) {
            return self.next_ws_frame();
        }
        loop {
            let Source::Lines { reader, .. } = &self.source else { unreachable!("lines source") };
            if reader.buffer().is_empty() {
                self.before_waiting()?;
            }
            let Source::Lines { reader, framer } = &mut self.source else { unreachable!("lines source") };
            let data = match reader.fill_buf() {
                Ok(d) => d,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if self.deadline.is_some()
                        && matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) =>
                {
                    continue
                }
                Err(e) => return Err(self.ended_by_server().unwrap_or(Ended::Io(e))),
            };
            if data.is_empty() {
                if let Some(frame) = framer.finish() {
                    return Ok(frame);
                }
                return Err(self.ended_by_server().unwrap_or(Ended::Eof));
            }
            let (used, frame) = framer.push(data);
            reader.consume(used);
            if let Some(frame) = frame {
                return Ok(frame);
            }
        }
    }

    fn next_ws_frame(&mut self) -> Step<Frame> {
        loop {
            self.before_waiting()?;
            let Source::WebSocket(ws) = &mut self.source else { unreachable!("WebSocket source") };
            match ws.next() {
                Ok(frame) => return Ok(frame),
                Err(Stop::Io(e)) if e.kind() == io::ErrorKind::Interrupted || self.is_deadline_tick(&e) => continue,
                Err(Stop::Io(e)) => return Err(self.ended_by_server().unwrap_or(Ended::Io(e))),
                Err(Stop::Closed) => return Err(self.ended_by_server().unwrap_or(Ended::Eof)),
                Err(Stop::TooLong) => {
                    return Err(self.fail_websocket(
                        text::LINE_TOO_LONG,
                        CloseCode::Size,
                        "a message over the line limit",
                    ))
                }
                Err(Stop::InvalidUtf8) => {
                    return Err(self.fail_websocket(text::INVALID_UTF8, CloseCode::Invalid, "a message not UTF-8"))
                }
                Err(Stop::Refused(why)) => {
                    self.outbox.close(&why);
                    return Err(Ended::Closed(why));
                }
            }
        }
    }

    /// Ends a WebSocket the client broke: says why as the chat port would,
    /// then closes with `code` as RFC 6455 has it.
    fn fail_websocket(&self, said: &str, code: CloseCode, why: &str) -> Ended {
        let _ = self.send(protocol::error(said));
        self.outbox.send_raw(close_frame(code, said));
        self.outbox.drain(std::time::Duration::from_secs(1));
        let why = format!("WebSocket: {why}");
        self.outbox.close(&why);
        Ended::Closed(why)
    }

    /// The HTTP request head the client sends first (the web port), read
    /// within the deadline; with the bytes that came after it.
    pub fn read_request_head(&mut self) -> Step<(Result<Head, ParseError>, Vec<u8>)> {
        let mut got = Vec::new();
        let under_deadline = self.deadline.is_some();
        loop {
            self.before_waiting()?;
            let Source::Lines { reader, .. } = &mut self.source else {
                return Err(Ended::Closed("an HTTP request after the upgrade".into()));
            };
            let data = match reader.fill_buf() {
                Ok(d) => d,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if under_deadline && matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    continue
                }
                Err(e) => return Err(Ended::Io(e)),
            };
            if data.is_empty() {
                return Err(Ended::Eof);
            }
            got.extend_from_slice(data);
            let n = data.len();
            reader.consume(n);
            match crate::http::request::parse_request(&got) {
                Ok(None) => continue,
                Ok(Some(head)) => {
                    let after = crate::http::request::head_len(&got).map_or(Vec::new(), |end| got.split_off(end));
                    return Ok((Ok(head), after));
                }
                Err(e) => return Ok((Err(e), Vec::new())),
            }
        }
    }

    /// From now on lines are WebSocket text frames (`buffered`: bytes the
    /// client sent after its upgrade request). The outbox frames its lines
    /// too.
    pub fn upgrade_to_websocket(&mut self, buffered: Vec<u8>) {
        let Source::Lines { reader, .. } = &self.source else { return };
        let incoming = Incoming { stream: Arc::clone(&reader.get_ref().stream), outbox: Arc::clone(&self.outbox) };
        self.outbox.set_websocket();
        let io = WsIo { incoming, outbox: Arc::clone(&self.outbox), deadline: self.deadline };
        self.source = Source::WebSocket(Box::new(WsReader::new(io, buffered)));
    }
}
