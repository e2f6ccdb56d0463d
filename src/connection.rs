//! One client connection: a framed line reader on the socket and the
//! connection's [`Outbox`]. The only place that reads from a client socket.

use std::io::{self, BufRead, BufReader, Read};
use std::net::TcpStream;
use std::sync::Arc;

use crate::framing::{Frame, LineFramer};
use crate::outbox::Outbox;
use crate::protocol::{self, text};

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
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ended::Eof => write!(f, "client closed the connection"),
            Ended::Logout => write!(f, "logout"),
            Ended::Closed(reason) => write!(f, "closed by server: {reason}"),
            Ended::Io(e) => write!(f, "read error: {e}"),
        }
    }
}

pub type Step<T = ()> = Result<T, Ended>;

struct SharedStream(Arc<TcpStream>);

impl Read for SharedStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self.0).read(buf)
    }
}

pub struct Connection {
    reader: BufReader<SharedStream>,
    framer: LineFramer,
    outbox: Arc<Outbox>,
}

impl Connection {
    pub fn new(stream: Arc<TcpStream>, outbox: Arc<Outbox>) -> Self {
        Connection {
            reader: BufReader::with_capacity(READ_BUFFER, SharedStream(stream)),
            framer: LineFramer::new(),
            outbox,
        }
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

    pub fn send_all<I: IntoIterator<Item = String>>(&self, lines: I) -> Step {
        lines.into_iter().try_for_each(|l| self.send(l))
    }

    /// The next client line, trimmed. Over-long and non-UTF-8 lines are
    /// answered with `ERROR:` and skipped; EOF ends the session.
    pub fn read_line(&mut self) -> Step<String> {
        loop {
            let frame = self.next_frame()?;
            match frame {
                Frame::Line(line) => return Ok(line.trim().to_string()),
                Frame::TooLong => self.send(protocol::error(text::LINE_TOO_LONG))?,
                Frame::InvalidUtf8 => self.send(protocol::error(text::INVALID_UTF8))?,
            }
        }
    }

    fn next_frame(&mut self) -> Step<Frame> {
        loop {
            if self.reader.buffer().is_empty() {
                // About to wait for the client: keep only a shallow stack.
                crate::sys::release_unused_stack();
            }
            let data = match self.reader.fill_buf() {
                Ok(d) => d,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
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
