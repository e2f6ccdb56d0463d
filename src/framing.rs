//! Client line framing: bytes in, lines out, in memory (no socket here).
//!
//! Lines end with `\n` (a `\r` before it is dropped). A line longer than
//! [`MAX_LINE_BYTES`] is reported once as [`Frame::TooLong`] as soon as it
//! is known, and its remaining bytes are discarded up to the next `\n`; a
//! line that is not UTF-8 is reported as [`Frame::InvalidUtf8`], one with a
//! NUL byte as [`Frame::Nul`]. None ends
//! the stream: the caller answers `ERROR:` and goes on.

use crate::protocol::MAX_LINE_BYTES;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A complete line, without its terminator and not yet trimmed.
    Line(String),
    TooLong,
    InvalidUtf8,
    /// A line with a NUL byte (no text chatp stores may hold one).
    Nul,
    /// A WebSocket text frame holding a line break (a frame is one line).
    LineBreak,
    /// A WebSocket binary frame (lines travel in text frames).
    NotText,
    /// A WebSocket control frame (ping, pong), already answered: no line,
    /// but paced as one.
    Control,
}

#[derive(Debug, Default)]
pub struct LineFramer {
    buf: Vec<u8>,
    /// Inside an over-long line already reported: drop bytes until `\n`.
    discarding: bool,
}

impl LineFramer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes bytes from `data`; returns how many were consumed and the
    /// frame completed by them, if any. Call again with the rest.
    pub fn push(&mut self, data: &[u8]) -> (usize, Option<Frame>) {
        let newline = data.iter().position(|&b| b == b'\n');
        let chunk_end = newline.unwrap_or(data.len());
        let consumed = newline.map_or(data.len(), |i| i + 1);
        if self.discarding {
            if newline.is_some() {
                self.discarding = false;
            }
            return (consumed, None);
        }
        // A `\r` may precede the `\n`, so hold one byte more than the limit.
        if self.buf.len() + chunk_end > MAX_LINE_BYTES + 1 {
            self.buf = Vec::new();
            self.discarding = newline.is_none();
            return (consumed, Some(Frame::TooLong));
        }
        self.buf.extend_from_slice(&data[..chunk_end]);
        match newline {
            Some(_) => (consumed, Some(self.take_line())),
            None => (consumed, None),
        }
    }

    /// End of stream: a last line without `\n` is still a line.
    pub fn finish(&mut self) -> Option<Frame> {
        if self.discarding || self.buf.is_empty() {
            self.discarding = false;
            return None;
        }
        Some(self.take_line())
    }

    fn take_line(&mut self) -> Frame {
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        if self.buf.len() > MAX_LINE_BYTES {
            self.buf.clear();
            return Frame::TooLong;
        }
        // Keep a small buffer for the next line; give back a large one.
        let bytes = if self.buf.capacity() > 256 {
            std::mem::take(&mut self.buf)
        } else {
            let b = self.buf.clone();
            self.buf.clear();
            b
        };
        if bytes.contains(&0) {
            return Frame::Nul;
        }
        match String::from_utf8(bytes) {
            Ok(s) => Frame::Line(s),
            Err(_) => Frame::InvalidUtf8,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(input: &[&[u8]]) -> Vec<Frame> {
        let mut f = LineFramer::new();
        let mut out = Vec::new();
        for chunk in input {
            let mut rest: &[u8] = chunk;
            while !rest.is_empty() {
                let (n, frame) = f.push(rest);
                rest = &rest[n..];
                out.extend(frame);
            }
        }
        out.extend(f.finish());
        out
    }

    fn line(s: &str) -> Frame {
        Frame::Line(s.to_string())
    }

    #[test]
    fn splits_lines_and_accepts_crlf() {
        assert_eq!(frames(&[b"a\nb\r\n", b"\n"]), vec![line("a"), line("b"), line("")]);
        assert_eq!(frames(&[b"he", b"llo\nwor", b"ld"]), vec![line("hello"), line("world")]);
    }

    #[test]
    fn limit_is_4096_bytes_without_terminator() {
        let ok = "x".repeat(MAX_LINE_BYTES);
        let input = format!("{ok}\r\n{ok}\n");
        assert_eq!(frames(&[input.as_bytes()]), vec![line(&ok), line(&ok)]);
        let long = "y".repeat(MAX_LINE_BYTES + 1);
        let input = format!("{long}\nnext\n");
        assert_eq!(frames(&[input.as_bytes()]), vec![Frame::TooLong, line("next")]);
    }

    #[test]
    fn huge_line_reported_once_in_pieces() {
        let chunk = vec![b'z'; 3000];
        let mut input: Vec<&[u8]> = vec![&chunk; 10];
        input.push(b"\nafter\n");
        assert_eq!(frames(&input), vec![Frame::TooLong, line("after")]);
    }

    #[test]
    fn invalid_utf8_is_reported_and_stream_goes_on() {
        assert_eq!(frames(&[b"\xff\xfe\nok\n"]), vec![Frame::InvalidUtf8, line("ok")]);
        assert_eq!(frames(&[b"a\0b\nok\n"]), vec![Frame::Nul, line("ok")]);
    }
}
