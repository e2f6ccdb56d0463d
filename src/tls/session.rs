//! One TLS connection on our thread model: a thread blocked reading the
//! socket and other threads writing to it at the same time, on one fd.
//!
//! The rustls state sits behind a mutex that is never held while waiting
//! for the network: a reader takes it only to hand over the bytes it read
//! and take out plaintext; a writer takes it to seal plaintext into TLS
//! records and sends them itself (the server's outbox, without blocking;
//! the client's write thread, blocking). Records that rustls produces on
//! its own (alerts, key updates) are sent by whoever writes next; the
//! reader asks for that with [`TlsSession::wants_write`].

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

/// Bytes read from the socket at a time. With the plaintext buffer empty
/// whenever more is read, this bounds what one read decrypts.
const RAW_READ: usize = 4096;

pub struct TlsSession {
    conn: Mutex<rustls::Connection>,
}

impl TlsSession {
    /// Runs the handshake on `stream` until it completes, fails, or
    /// `deadline` passes (however slowly the peer dribbles its bytes).
    /// Leaves the socket with no timeouts.
    pub fn handshake(
        stream: &TcpStream,
        conn: impl Into<rustls::Connection>,
        deadline: Instant,
    ) -> io::Result<TlsSession> {
        let mut conn = conn.into();
        let result = drive_handshake(stream, &mut conn, deadline);
        let _ = stream.set_read_timeout(None);
        let _ = stream.set_write_timeout(None);
        result.map(|()| TlsSession { conn: Mutex::new(conn) })
    }

    fn lock(&self) -> MutexGuard<'_, rustls::Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Plaintext from the peer, blocking on `stream` (without the lock)
    /// until some arrives. `Ok(0)`: the peer closed (with or without
    /// `close_notify`). A TLS error is `InvalidData`, and its alert waits
    /// to be sent ([`TlsSession::wants_write`]).
    ///
    /// Never inlined: its 4 KiB buffer must not enlarge the frame of the
    /// plaintext read path (a frame over a page is probed, page by page, and
    /// stays resident in every idle connection's stack).
    #[inline(never)]
    pub fn read(&self, stream: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let mut raw = [0u8; RAW_READ];
        loop {
            match self.lock().reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            let n = (&*stream).read(&mut raw)?;
            let mut conn = self.lock();
            if n == 0 {
                // EOF: rustls decides between close_notify seen (Ok(0)) and
                // a truncated stream (UnexpectedEof): both end the session.
                let _ = conn.read_tls(&mut io::empty());
                let _ = conn.process_new_packets();
                return Ok(0);
            }
            let mut offered = &raw[..n];
            while !offered.is_empty() {
                let took = conn.read_tls(&mut offered)?;
                conn.process_new_packets().map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                if took == 0 {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "TLS receive buffer full"));
                }
            }
        }
    }

    /// Records rustls wants sent (an alert, a key update, a session ticket).
    pub fn wants_write(&self) -> bool {
        self.lock().wants_write()
    }

    /// Seals `plain` into TLS records appended to `out`, together with any
    /// record rustls has waiting. `plain` may be empty.
    pub fn seal(&self, plain: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        let mut conn = self.lock();
        if !plain.is_empty() {
            conn.writer().write_all(plain)?;
        }
        while conn.wants_write() {
            conn.write_tls(out)?;
        }
        Ok(())
    }

    /// Queues `close_notify`; [`TlsSession::seal`] then sends it.
    pub fn close_notify(&self) {
        self.lock().send_close_notify();
    }
}

fn drive_handshake(stream: &TcpStream, conn: &mut rustls::Connection, deadline: Instant) -> io::Result<()> {
    let timed_out = || io::Error::new(io::ErrorKind::TimedOut, "TLS handshake not finished in time");
    while conn.is_handshaking() || conn.wants_write() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out());
        }
        if conn.wants_write() {
            stream.set_write_timeout(Some(left))?;
            conn.write_tls(&mut &*stream).map_err(|e| map_timeout(e, timed_out))?;
            continue;
        }
        stream.set_read_timeout(Some(left))?;
        let n = conn.read_tls(&mut &*stream).map_err(|e| map_timeout(e, timed_out))?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "peer closed during the TLS handshake"));
        }
        if let Err(e) = conn.process_new_packets() {
            // Tell the peer why (best effort), then fail.
            let _ = stream.set_write_timeout(Some(left.min(std::time::Duration::from_secs(1))));
            while conn.wants_write() && conn.write_tls(&mut &*stream).is_ok() {}
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
    }
    Ok(())
}

fn map_timeout(e: io::Error, timed_out: impl Fn() -> io::Error) -> io::Error {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => timed_out(),
        _ => e,
    }
}
