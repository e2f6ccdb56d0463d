//! The WebSocket side of a web client's connection (`/ws` on `WEB_PORT`):
//! protocol lines travel one per text frame, in both directions, through
//! the same [`crate::connection::Connection`] and [`Outbox`] as the chat
//! port's lines.
//!
//! Frames are read and checked by tungstenite (masking, fragments, control
//! frames, UTF-8, sizes); its replies (pong, close) go out through the
//! connection's outbox, in order with everything else. Lines for the client
//! are framed by [`text_frame`] wherever they are written, so any thread
//! can queue one without touching the reader's state.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Instant;

use tungstenite::error::ProtocolError;
pub use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::frame::coding::{Data, OpCode};
use tungstenite::protocol::frame::FrameHeader;
use tungstenite::protocol::CloseFrame;
use tungstenite::protocol::{Role, WebSocketConfig};
use tungstenite::{Error, Message, WebSocket};

use crate::framing::Frame;
use crate::outbox::Outbox;
use crate::protocol::MAX_LINE_BYTES;

/// Bytes the reader takes from the socket at a time (every idle web client
/// holds its buffer).
const READ_BUFFER: usize = 1024;

/// Appends `line` to `out` as one unmasked, final text frame (server to
/// client).
pub fn text_frame(line: &[u8], out: &mut Vec<u8>) {
    let header = FrameHeader { opcode: OpCode::Data(Data::Text), ..FrameHeader::default() };
    // Formatting into a Vec cannot fail.
    let _ = header.format(line.len() as u64, out);
    out.extend_from_slice(line);
}

/// A close frame (server to client) with `code` and `reason`.
pub fn close_frame(code: CloseCode, reason: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let frame = tungstenite::protocol::frame::Frame::close(Some(CloseFrame { code, reason: reason.into() }));
    // Formatting into a Vec cannot fail.
    let _ = frame.format(&mut out);
    out
}

/// The socket a reader waits on, to bound each wait by a deadline.
pub trait Timed {
    fn stream(&self) -> &TcpStream;
}

/// What tungstenite reads from and writes to: the client's bytes (plain
/// or through TLS), and the outbox for its own frames.
pub struct WsIo<R> {
    pub incoming: R,
    pub outbox: Arc<Outbox>,
    /// Reads fail with `TimedOut` after this (not logged in in time), each
    /// read waiting at most until then: tungstenite reads on until a frame
    /// is whole, so a client sending a byte now and then must not restart
    /// the wait.
    pub deadline: Option<Instant>,
}

impl<R: Read + Timed> Read for WsIo<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(deadline) = self.deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"));
            }
            self.incoming.stream().set_read_timeout(Some(left))?;
        }
        self.incoming.read(buf)
    }
}

impl<R> Write for WsIo<R> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.outbox.send_raw(buf.to_vec()) {
            Ok(buf.len())
        } else {
            Err(io::Error::new(io::ErrorKind::BrokenPipe, "connection closed"))
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Why reading frames stopped.
#[derive(Debug)]
pub enum Stop {
    /// The client closed (a close frame, or the socket).
    Closed,
    /// The socket failed or timed out (`WouldBlock`/`TimedOut` under a
    /// read deadline).
    Io(io::Error),
    /// A message over the line limit: its payload is not read, so the
    /// connection cannot go on.
    TooLong,
    /// A message that is not UTF-8 (RFC 6455: the connection fails).
    InvalidUtf8,
    /// The client broke the protocol (unmasked frame, bad opcode): the
    /// connection cannot go on.
    Refused(String),
}

/// A web client's incoming frames, as lines.
pub struct WsReader<R: Read + Timed> {
    ws: WebSocket<WsIo<R>>,
}

impl<R: Read + Timed> WsReader<R> {
    /// Frames from `io`, `buffered` being bytes already read after the
    /// upgrade request.
    pub fn new(io: WsIo<R>, buffered: Vec<u8>) -> Self {
        let config = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER)
            .write_buffer_size(0)
            // A line's limit, whole or in fragments (a text frame is one line).
            .max_message_size(Some(MAX_LINE_BYTES))
            .max_frame_size(Some(MAX_LINE_BYTES));
        WsReader { ws: WebSocket::from_partially_read(io, buffered, Role::Server, Some(config)) }
    }

    pub fn incoming(&self) -> &R {
        &self.ws.get_ref().incoming
    }

    pub fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.ws.get_mut().deadline = deadline;
    }

    /// The next line the client sent; control frames are answered on the
    /// way (tungstenite queues the pong or the close reply).
    pub fn next(&mut self) -> Result<Frame, Stop> {
        loop {
            match self.ws.read() {
                Ok(Message::Text(text)) => return Ok(line_of(text.as_str())),
                Ok(Message::Binary(_)) => return Ok(Frame::NotText),
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => return Ok(Frame::Control),
                Ok(Message::Close(_)) => continue,
                Err(Error::ConnectionClosed | Error::AlreadyClosed) => return Err(Stop::Closed),
                // The peer went away without a close frame: an ordinary drop.
                Err(Error::Protocol(ProtocolError::ResetWithoutClosingHandshake)) => return Err(Stop::Closed),
                Err(Error::Io(e)) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(Stop::Closed),
                Err(Error::Io(e)) => return Err(Stop::Io(e)),
                Err(Error::Utf8(_)) => return Err(Stop::InvalidUtf8),
                Err(Error::Capacity(_)) => return Err(Stop::TooLong),
                Err(e) => return Err(Stop::Refused(format!("WebSocket protocol: {e}"))),
            }
        }
    }
}

/// A text frame as a line: one line, without NUL or line breaks (which
/// would split it for clients of the chat port).
fn line_of(text: &str) -> Frame {
    if text.contains('\0') {
        Frame::Nul
    } else if text.contains(['\n', '\r']) {
        Frame::LineBreak
    } else {
        Frame::Line(text.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_frames_have_the_lengths_rfc_6455_gives() {
        let mut out = Vec::new();
        text_frame(b"hi", &mut out);
        assert_eq!(out, [0x81, 2, b'h', b'i']);
        let long = vec![b'x'; 300];
        out.clear();
        text_frame(&long, &mut out);
        assert_eq!(&out[..4], &[0x81, 126, 1, 44]);
        assert_eq!(out.len(), 4 + 300);
        let huge = vec![b'y'; 70_000];
        out.clear();
        text_frame(&huge, &mut out);
        assert_eq!(&out[..2], &[0x81, 127]);
        assert_eq!(u64::from_be_bytes(out[2..10].try_into().unwrap()), 70_000);
    }

    #[test]
    fn a_frame_is_one_line_without_breaks_or_nul() {
        assert_eq!(line_of("hello"), Frame::Line("hello".into()));
        assert_eq!(line_of("a\nb"), Frame::LineBreak);
        assert_eq!(line_of("a\rb"), Frame::LineBreak);
        assert_eq!(line_of("a\0b"), Frame::Nul);
    }
}
