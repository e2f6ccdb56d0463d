//! One client connection: a framed line reader on the socket and the
//! connection's [`Outbox`]. The only place that reads from a client socket.

use std::io::{self, BufRead, BufReader, Read};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Instant;

use crate::framing::{Frame, LineFramer};
use crate::outbox::Outbox;
use crate::protocol::{self, text};
use crate::rate_limit::{Rate, TokenBucket};

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
struct Incoming {
    stream: Arc<TcpStream>,
    outbox: Arc<Outbox>,
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

pub struct Connection {
    reader: BufReader<Incoming>,
    framer: LineFramer,
    outbox: Arc<Outbox>,
    /// Reads fail with [`Ended::TimedOut`] after this (authentication).
    deadline: Option<Instant>,
    /// Lines beyond this rate are read late (the client is slowed down).
    pace: Option<TokenBucket>,
}

impl Connection {
    pub fn new(stream: Arc<TcpStream>, outbox: Arc<Outbox>) -> Self {
        Connection {
            reader: BufReader::with_capacity(READ_BUFFER, Incoming { stream, outbox: Arc::clone(&outbox) }),
            framer: LineFramer::new(),
            outbox,
            deadline: None,
            pace: None,
        }
    }

    /// Reads after `deadline` fail with [`Ended::TimedOut`], however the
    /// client dribbles its bytes; `None` lifts it.
    pub fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.deadline = deadline;
        if deadline.is_none() {
            let _ = self.reader.get_ref().stream.set_read_timeout(None);
        }
    }

    /// Paces every line read from now on to `rate` (`None`: no pacing).
    pub fn set_pace(&mut self, rate: Option<Rate>) {
        self.pace = rate.map(|r| TokenBucket::new(r, Instant::now()));
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
            }
        }
    }

    fn next_frame(&mut self) -> Step<Frame> {
        loop {
            if self.reader.buffer().is_empty() {
                if let Some(deadline) = self.deadline {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(Ended::TimedOut);
                    }
                    let _ = self.reader.get_ref().stream.set_read_timeout(Some(left));
                }
                // About to wait for the client: keep only a shallow stack.
                crate::sys::release_unused_stack();
            }
            let data = match self.reader.fill_buf() {
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
                if let Some(frame) = self.framer.finish() {
                    return Ok(frame);
                }
                return Err(self.ended_by_server().unwrap_or(Ended::Eof));
            }
            let (used, frame) = self.framer.push(data);
            self.reader.consume(used);
            if let Some(frame) = frame {
                return Ok(frame);
            }
        }
    }
}
