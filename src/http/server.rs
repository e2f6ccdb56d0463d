//! One thread serving HTTP on non-blocking sockets with poll(2): a cap on
//! open connections (the oldest is closed when a new one would pass it), a
//! deadline for the request head and one for writing the answer, one
//! request per connection (`Connection: close`). What a connection costs is
//! bounded (its buffer is at most [`MAX_HEAD`] plus its answer), whatever
//! the clients do; the handler runs on this thread, so it must answer from
//! memory.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use log::warn;

use super::request::{parse_request, Head, Method, MAX_HEAD};

/// What one server allows.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Open connections; a new one past this closes the oldest.
    pub max_connections: usize,
    /// From accept to the end of the request head.
    pub head_timeout: Duration,
    /// From the end of the head to the last byte of the answer.
    pub write_timeout: Duration,
}

impl Default for Limits {
    /// 256 connections (a few probes and scrapers need a handful; every one
    /// costs an fd and at most 8 KiB of head), 2 s for the head (a probe
    /// sends it at once; the kubelet waits 1 s for the answer), 5 s to
    /// write (a /metrics scrape is tens of KiB).
    fn default() -> Self {
        Limits { max_connections: 256, head_timeout: Duration::from_secs(2), write_timeout: Duration::from_secs(5) }
    }
}

/// An answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    /// Fields besides Content-Type, Content-Length and Connection.
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Response { status, content_type, headers: Vec::new(), body: body.into() }
    }

    /// A plain-text answer.
    pub fn text(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Response::new(status, "text/plain; charset=utf-8", body)
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Status line, fields and (unless for HEAD) the body.
    pub fn to_bytes(&self, method: Method) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\
             X-Content-Type-Options: nosniff\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len()
        );
        for (name, value) in &self.headers {
            // Values are ours, but a line break in one would split the head.
            let value: String = value.chars().filter(|c| !c.is_control()).collect();
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        out.push_str("\r\n");
        let mut out = out.into_bytes();
        if method == Method::Get {
            out.extend_from_slice(&self.body);
        }
        out
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        421 => "Misdirected Request",
        500 => "Internal Server Error",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// A running server; dropping it stops its thread and closes its
/// connections (within [`POLL_EVERY`]).
pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// The longest poll(2) wait: how soon a stop is seen.
const POLL_EVERY: Duration = Duration::from_millis(200);

/// Accepts per loop turn: connections already open are read between two
/// batches, so a flood of new ones delays a probe's answer by one batch.
const ACCEPT_BATCH: usize = 32;

/// Listen backlog: a burst of connections waits in the kernel instead of
/// having its SYNs dropped (a dropped SYN is retried after 1 s).
const BACKLOG: i32 = 1024;

impl Server {
    /// Listens on `bind` and serves every request head with `handler` on a
    /// thread named `name`.
    pub fn start(
        name: &str,
        bind: &str,
        limits: Limits,
        handler: impl FnMut(&Head) -> Response + Send + 'static,
    ) -> io::Result<Server> {
        let listener = TcpListener::bind(bind)?;
        // SAFETY: listen(2) again on our own bound socket only changes its
        // backlog.
        unsafe { libc::listen(listener.as_raw_fd(), BACKLOG) };
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let mut lp = Loop { listener, limits, handler, conns: Vec::new(), stop: Arc::clone(&stop) };
        let thread = thread::Builder::new().name(name.into()).spawn(move || lp.run())?;
        Ok(Server { addr, stop, thread: Some(thread) })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

enum Stage {
    /// Reading the head; what came so far.
    Reading(Vec<u8>),
    /// Writing the answer from `at`.
    Writing {
        out: Vec<u8>,
        at: usize,
    },
    Done,
}

struct Conn {
    stream: TcpStream,
    stage: Stage,
    deadline: Instant,
}

struct Loop<H> {
    listener: TcpListener,
    limits: Limits,
    handler: H,
    /// In accept order: the first is the oldest.
    conns: Vec<Conn>,
    stop: Arc<AtomicBool>,
}

impl<H: FnMut(&Head) -> Response> Loop<H> {
    fn run(&mut self) {
        let mut fds: Vec<libc::pollfd> = Vec::new();
        while !self.stop.load(Ordering::SeqCst) {
            fds.clear();
            fds.push(libc::pollfd { fd: self.listener.as_raw_fd(), events: libc::POLLIN, revents: 0 });
            for c in &self.conns {
                let events = match c.stage {
                    Stage::Writing { .. } => libc::POLLOUT,
                    _ => libc::POLLIN,
                };
                fds.push(libc::pollfd { fd: c.stream.as_raw_fd(), events, revents: 0 });
            }
            let now = Instant::now();
            let wait = self.conns.iter().map(|c| c.deadline.saturating_duration_since(now)).min().unwrap_or(POLL_EVERY);
            let wait_ms = wait.min(POLL_EVERY).as_millis() as i32 + 1;
            // SAFETY: `fds` is a live, correctly sized array of pollfd.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, wait_ms) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() != ErrorKind::Interrupted {
                    warn!("http: poll: {e}");
                    thread::sleep(Duration::from_millis(50));
                }
                continue;
            }
            // Connections already open first: a probe accepted in the last
            // turn is answered before the next batch is accepted.
            for (c, fd) in self.conns.iter_mut().zip(fds.iter().skip(1)) {
                if fd.revents != 0 {
                    step(c, &mut self.handler, self.limits);
                }
            }
            let now = Instant::now();
            self.conns.retain(|c| !matches!(c.stage, Stage::Done) && c.deadline > now);
            if fds.first().is_some_and(|l| l.revents != 0) {
                self.accept();
            }
        }
    }

    fn accept(&mut self) {
        for _ in 0..ACCEPT_BATCH {
            let stream = match self.listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted || e.kind() == ErrorKind::ConnectionAborted => continue,
                Err(e) => {
                    // Out of fds, most likely: what is open gets served.
                    warn!("http: accept: {e}");
                    return;
                }
            };
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            if self.conns.len() >= self.limits.max_connections.max(1) {
                self.conns.remove(0);
            }
            let deadline = Instant::now() + self.limits.head_timeout;
            let mut conn = Conn { stream, stage: Stage::Reading(Vec::new()), deadline };
            // The head is often there already.
            step(&mut conn, &mut self.handler, self.limits);
            if !matches!(conn.stage, Stage::Done) {
                self.conns.push(conn);
            }
        }
    }
}

/// The handler's answer; a panic in it costs this request (500), not the
/// server's thread.
fn answer<H: FnMut(&Head) -> Response>(handler: &mut H, head: &Head) -> Response {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(head))) {
        Ok(r) => r,
        Err(_) => {
            warn!("http: the handler of {} panicked", head.path);
            Response::text(500, "internal error\n")
        }
    }
}

/// Reads or writes what the socket allows now.
fn step<H: FnMut(&Head) -> Response>(c: &mut Conn, handler: &mut H, limits: Limits) {
    if let Stage::Reading(buf) = &mut c.stage {
        let mut chunk = [0u8; 4096];
        let answer = loop {
            match c.stream.read(&mut chunk) {
                Ok(0) => {
                    c.stage = Stage::Done;
                    return;
                }
                Ok(n) => {
                    buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
                    match parse_request(buf) {
                        Ok(None) if buf.len() <= MAX_HEAD => continue,
                        Ok(None) => break Response::text(431, "request head too large\n").to_bytes(Method::Get),
                        Ok(Some(head)) => break answer(handler, &head).to_bytes(head.method),
                        Err(e) => break Response::text(e.status(), format!("{e}\n")).to_bytes(Method::Get),
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => {
                    c.stage = Stage::Done;
                    return;
                }
            }
        };
        c.stage = Stage::Writing { out: answer, at: 0 };
        c.deadline = Instant::now() + limits.write_timeout;
    }
    if let Stage::Writing { out, at } = &mut c.stage {
        while let Some(rest) = out.get(*at..).filter(|r| !r.is_empty()) {
            match c.stream.write(rest) {
                Ok(0) => break,
                Ok(n) => *at += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        let _ = c.stream.shutdown(Shutdown::Write);
        c.stage = Stage::Done;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(addr: SocketAddr, request: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(request).unwrap();
        let mut reply = String::new();
        let _ = s.read_to_string(&mut reply);
        reply
    }

    #[test]
    fn answers_heads_and_refuses_the_rest() {
        let server = Server::start("http-test", "127.0.0.1:0", Limits::default(), |h: &Head| {
            assert!(h.path != "/panic", "a bug in a handler");
            Response::text(200, format!("{}\n", h.path)).with_header("X-Test", "a\r\nInjected: b")
        })
        .unwrap();
        let reply = exchange(server.addr(), b"GET /healthz?x HTTP/1.1\r\nHost: localhost\r\n\r\n");
        assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
        assert!(
            reply.contains("\r\nConnection: close\r\n") && reply.contains("\r\nX-Content-Type-Options: nosniff\r\n")
        );
        assert!(reply.contains("\r\nX-Test: aInjected: b\r\n"), "{reply}");
        assert!(reply.ends_with("\r\n\r\n/healthz\n"), "{reply}");
        let head = exchange(server.addr(), b"HEAD /x HTTP/1.0\r\n\r\n");
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n") && head.ends_with("Content-Length: 3\r\nConnection: close\r\nX-Content-Type-Options: nosniff\r\nX-Test: aInjected: b\r\n\r\n"), "{head}");
        assert!(exchange(server.addr(), b"POST / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405 "));
        assert!(exchange(server.addr(), b"GET /panic HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 500 "));
        assert!(exchange(server.addr(), b"GET /after HTTP/1.1\r\n\r\n").ends_with("/after\n"), "still serving");
        // Pipelined requests: the first is answered, whole; the rest are
        // not read.
        let pipelined = b"GET /one HTTP/1.1\r\n\r\n".repeat(1500);
        assert!(exchange(server.addr(), &pipelined).ends_with("\r\n\r\n/one\n"));
        let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
        big.resize(MAX_HEAD + 100, b'a');
        assert!(exchange(server.addr(), &big).starts_with("HTTP/1.1 431 "));
    }

    #[test]
    fn half_sent_heads_are_closed_at_the_deadline_and_the_oldest_gives_way() {
        let limits = Limits {
            max_connections: 4,
            head_timeout: Duration::from_millis(1500),
            write_timeout: Duration::from_secs(1),
        };
        let server = Server::start("http-test", "127.0.0.1:0", limits, |_: &Head| Response::text(200, "ok")).unwrap();
        let mut idle: Vec<TcpStream> = (0..6).map(|_| TcpStream::connect(server.addr()).unwrap()).collect();
        for s in &mut idle {
            s.write_all(b"GET / HTTP/1.1\r\n").unwrap();
            s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        }
        // The two oldest were closed when the fifth and sixth came.
        let started = Instant::now();
        let mut buf = [0u8; 16];
        assert_eq!(idle[0].read(&mut buf).unwrap_or(0), 0);
        assert!(started.elapsed() < Duration::from_millis(1000), "closed at once, not at the deadline");
        // The newest are closed by the head deadline.
        assert_eq!(idle[5].read(&mut buf).unwrap_or(0), 0);
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(1000) && waited < Duration::from_secs(4), "{waited:?}");
        assert!(exchange(server.addr(), b"GET / HTTP/1.1\r\n\r\n").ends_with("ok"));
    }
}
