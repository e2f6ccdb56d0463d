//! Writing to a client: one [`Outbox`] per connection, shared by every
//! thread that has a line for that client (its own thread, other users'
//! threads, the pub/sub listener).
//!
//! Lines go into a bounded queue (grown on demand, so an idle connection
//! holds no buffer) and are written whole, in queue order, by whichever thread holds the outbox's small write lock, using
//! non-blocking `send(MSG_DONTWAIT)`: nobody ever blocks on another client's
//! socket. When the kernel's send buffer is full, the bytes left over wait
//! in the outbox and the pod's single [`Flusher`] thread finishes them when
//! `poll` says the socket is writable. A client that stops reading fills
//! its queue: notifications for it are then refused and it is disconnected
//! (`OUTBOUND_QUEUE` lines or `OUTBOUND_QUEUE_BYTES`, whichever comes
//! first; logged). A line fanned out to many clients is one immutable
//! [`Line::Shared`] in all their queues, not one copy each. Its own thread is not disconnected for a
//! full queue at once: it waits up to [`OWN_LINE_WAIT`] for room, which
//! only slows that one client down.

use std::collections::VecDeque;
use std::io;
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::tls::TlsSession;

/// How long a client's own thread waits for room in its full queue before
/// the client is declared stalled.
pub const OWN_LINE_WAIT: Duration = Duration::from_secs(30);

/// Bytes gathered from the queue into one `send` call.
const BATCH_BYTES: usize = 8 * 1024;

/// How long the flusher sleeps in `poll` before looking for new work.
const FLUSHER_TICK: Duration = Duration::from_millis(100);

/// Queue capacity kept after a burst; more is given back once it drains.
const KEPT_QUEUE_CAPACITY: usize = 8;

/// Bookkeeping cost of a queued line beyond its text (queue slot, `Arc`
/// header), counted against the byte limit so that tiny lines count too.
const LINE_OVERHEAD: usize = 32;

/// A line waiting for a client.
#[derive(Debug, Clone)]
pub enum Line {
    /// A reply to this client alone.
    Own(String),
    /// A notification; the same allocation sits in every recipient's queue.
    Shared(Arc<str>),
    /// Bytes already framed for the wire: an HTTP response head, a
    /// WebSocket control frame (pong, close). Written as they are.
    Raw(Vec<u8>),
}

impl Line {
    fn as_bytes(&self) -> &[u8] {
        match self {
            Line::Own(s) => s.as_bytes(),
            Line::Shared(s) => s.as_bytes(),
            Line::Raw(b) => b,
        }
    }

    /// Appends the line to `out` as the wire carries it: text lines end in
    /// `\n`, or travel one per WebSocket text frame (a notification queued
    /// with its `MSG_ID` line is two frames).
    fn frame_into(&self, websocket: bool, out: &mut Vec<u8>) {
        match self {
            Line::Raw(b) => out.extend_from_slice(b),
            _ if websocket => {
                for line in self.as_bytes().split(|&b| b == b'\n') {
                    crate::websocket::text_frame(line, out);
                }
            }
            _ => {
                out.extend_from_slice(self.as_bytes());
                out.push(b'\n');
            }
        }
    }

    /// What it counts against the queue's byte limit.
    fn cost(&self) -> usize {
        self.as_bytes().len() + 1 + LINE_OVERHEAD
    }
}

/// How much may wait for one client.
#[derive(Debug, Clone, Copy)]
pub struct QueueLimits {
    pub lines: usize,
    pub bytes: usize,
}

#[derive(Default)]
struct WriteState {
    /// Lines waiting, oldest first.
    queue: VecDeque<Line>,
    /// Sum of the queued lines' [`Line::cost`].
    queued_bytes: usize,
    /// Bytes taken from the queue but not yet accepted by the kernel.
    pending: Vec<u8>,
    /// How much of `pending` has been sent.
    sent: usize,
    /// The flusher is watching this outbox.
    watched: bool,
    /// Why the outbox was closed, if it was.
    closed: Option<String>,
}

/// The write side of one client connection.
pub struct Outbox {
    stream: Arc<TcpStream>,
    /// Set once the client's TLS handshake is done: lines are sealed into
    /// records on their way out.
    tls: OnceLock<Arc<TlsSession>>,
    /// Most the queue holds.
    limits: QueueLimits,
    state: Mutex<WriteState>,
    /// Signalled when the queue has room again or the outbox closes.
    room: Condvar,
    flusher: Sender<Arc<Outbox>>,
    /// For logs: who this is (address, later the username).
    label: Mutex<String>,
    /// The client said `HELLO:2`: it gets `MSG_ID` lines with notifications.
    sessions: std::sync::atomic::AtomicBool,
    /// Lines go out as WebSocket text frames (the web port's `/ws`).
    websocket: std::sync::atomic::AtomicBool,
    /// Its `sessions` row once logged in (0 before).
    session_id: std::sync::atomic::AtomicI32,
}

impl Outbox {
    pub fn new(stream: Arc<TcpStream>, limits: QueueLimits, flusher: &Flusher, label: String) -> Arc<Self> {
        Arc::new(Outbox {
            stream,
            tls: OnceLock::new(),
            limits: QueueLimits { lines: limits.lines.max(1), bytes: limits.bytes.max(1) },
            state: Mutex::new(WriteState::default()),
            room: Condvar::new(),
            flusher: flusher.sender(),
            label: Mutex::new(label),
            sessions: std::sync::atomic::AtomicBool::new(false),
            websocket: std::sync::atomic::AtomicBool::new(false),
            session_id: std::sync::atomic::AtomicI32::new(0),
        })
    }

    /// From now on lines go out through `tls` (set once, right after the
    /// handshake, before any line is queued).
    pub fn set_tls(&self, tls: Arc<TlsSession>) {
        let _ = self.tls.set(tls);
    }

    pub fn tls(&self) -> Option<&Arc<TlsSession>> {
        self.tls.get()
    }

    /// From now on lines go out as WebSocket text frames (set once, right
    /// after the upgrade's answer is queued).
    pub fn set_websocket(&self) {
        self.websocket.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn is_websocket(&self) -> bool {
        self.websocket.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Queues bytes already framed for the wire (see [`Line::Raw`]) from
    /// the client's own thread, and writes them.
    pub fn send_raw(self: &Arc<Self>, bytes: Vec<u8>) -> bool {
        if !self.queue_own(Line::Raw(bytes)) {
            return false;
        }
        self.flush();
        !self.is_closed()
    }

    /// The client speaks protocol 2 (sessions, ids, resume).
    pub fn set_speaks_sessions(&self) {
        self.sessions.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn set_session_id(&self, id: i32) {
        self.session_id.store(id, std::sync::atomic::Ordering::SeqCst);
    }

    /// The `sessions` row of this connection, once logged in.
    pub fn session_id(&self) -> Option<i32> {
        Some(self.session_id.load(std::sync::atomic::Ordering::SeqCst)).filter(|id| *id != 0)
    }

    pub fn speaks_sessions(&self) -> bool {
        self.sessions.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn set_label(&self, label: String) {
        *self.label.lock().unwrap_or_else(|e| e.into_inner()) = label;
    }

    pub fn label(&self) -> String {
        self.label.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn lock(&self) -> MutexGuard<'_, WriteState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Why the outbox was closed, if it was.
    pub fn close_reason(&self) -> Option<String> {
        self.lock().closed.clone()
    }

    pub fn is_closed(&self) -> bool {
        self.lock().closed.is_some()
    }

    /// The queue cannot take `line` (an empty queue takes any line).
    fn is_full_for(&self, st: &WriteState, line_cost: usize) -> bool {
        !st.queue.is_empty() && (st.queue.len() >= self.limits.lines || st.queued_bytes + line_cost > self.limits.bytes)
    }

    /// Queues a line for another user (never blocks). `false`: the client
    /// is gone or stalled (and is now disconnected).
    pub fn notify(self: &Arc<Self>, line: &Arc<str>) -> bool {
        let line = Line::Shared(Arc::clone(line));
        {
            let mut st = self.lock();
            if st.closed.is_some() {
                return false;
            }
            if self.is_full_for(&st, line.cost()) {
                drop(st);
                crate::metrics::METRICS.outbound_drops.inc();
                self.close("outbound queue full (client not reading)");
                return false;
            }
            st.queued_bytes += line.cost();
            st.queue.push_back(line);
        }
        self.flush();
        true
    }

    /// Queues a line from the client's own thread, waiting for room if the
    /// client is slow. `false`: the client is gone or stalled.
    pub fn send_own(self: &Arc<Self>, line: String) -> bool {
        self.send_own_all(std::iter::once(line))
    }

    /// Queues lines from the client's own thread (waiting for room as
    /// [`Outbox::send_own`] does) and writes them together: a list of 100
    /// rows is one write, not 100.
    pub fn send_own_all(self: &Arc<Self>, lines: impl IntoIterator<Item = String>) -> bool {
        for line in lines {
            if !self.queue_own(Line::Own(line)) {
                return false;
            }
        }
        self.flush();
        !self.is_closed()
    }

    /// Queues one line of the client's own, flushing and waiting while the
    /// queue is full. `false`: the client is gone or stalled.
    fn queue_own(self: &Arc<Self>, line: Line) -> bool {
        let cost = line.cost();
        let mut st = self.lock();
        if self.is_full_for(&st, cost) {
            drop(st);
            self.flush();
            st = self.lock();
            let (guard, wait) = self
                .room
                .wait_timeout_while(st, OWN_LINE_WAIT, |s| self.is_full_for(s, cost) && s.closed.is_none())
                .unwrap_or_else(|e| e.into_inner());
            st = guard;
            if wait.timed_out() {
                drop(st);
                crate::metrics::METRICS.outbound_drops.inc();
                self.close("outbound queue full for 30 s (client not reading)");
                return false;
            }
        }
        if st.closed.is_some() {
            return false;
        }
        st.queued_bytes += cost;
        st.queue.push_back(line);
        true
    }

    /// Writes what can be written without blocking. Holds the write lock
    /// only around non-blocking sends.
    pub fn flush(self: &Arc<Self>) {
        let mut st = self.lock();
        loop {
            if st.closed.is_some() {
                return;
            }
            if st.sent == st.pending.len() {
                let w = &mut *st;
                w.pending.clear();
                w.sent = 0;
                let websocket = self.is_websocket();
                while w.pending.len() < BATCH_BYTES {
                    let Some(line) = w.queue.pop_front() else { break };
                    w.queued_bytes -= line.cost();
                    line.frame_into(websocket, &mut w.pending);
                }
                if !w.pending.is_empty() {
                    self.room.notify_all();
                }
                if let Some(tls) = self.tls.get() {
                    // Seal the batch, with any record rustls has waiting
                    // (an alert, a key update) even when the batch is empty.
                    let plain = std::mem::take(&mut w.pending);
                    if let Err(e) = tls.seal(&plain, &mut w.pending) {
                        let reason = format!("TLS write failed: {e}");
                        drop(st);
                        self.close(&reason);
                        return;
                    }
                }
                if w.queue.is_empty() && w.queue.capacity() > KEPT_QUEUE_CAPACITY {
                    w.queue = VecDeque::new();
                }
                if st.pending.is_empty() {
                    // Give back a buffer a burst made large.
                    if st.pending.capacity() > BATCH_BYTES * 2 {
                        st.pending = Vec::new();
                    }
                    return;
                }
            }
            let from = st.sent;
            match send_nonblocking(&self.stream, &st.pending[from..]) {
                Ok(n) => st.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if !st.watched {
                        st.watched = true;
                        drop(st);
                        let _ = self.flusher.send(Arc::clone(self));
                    }
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let reason = format!("write failed: {e}");
                    drop(st);
                    self.close(&reason);
                    return;
                }
            }
        }
    }

    /// True when nothing waits to be written.
    fn is_drained(&self) -> bool {
        let st = self.lock();
        st.sent == st.pending.len() && st.queue.is_empty()
    }

    /// Closes the connection: the client's thread wakes from its read and
    /// ends the session. The first reason wins.
    pub fn close(&self, reason: &str) {
        let mut st = self.lock();
        if st.closed.is_none() {
            st.closed = Some(reason.to_string());
            st.queue = VecDeque::new();
            st.queued_bytes = 0;
            drop(st);
            self.room.notify_all();
            let _ = self.stream.shutdown(Shutdown::Both);
        }
    }

    /// Reads from the client end (a draining server): its thread sees EOF
    /// once it has read what arrived; writing goes on.
    pub fn stop_reading(&self) {
        let _ = self.stream.shutdown(Shutdown::Read);
    }

    /// Waits (up to `timeout`) until queued lines are written, e.g. before
    /// closing a connection at logout.
    pub fn drain(self: &Arc<Self>, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        self.flush();
        while !self.is_drained() && !self.is_closed() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
    }
}

/// `send(2)` with `MSG_DONTWAIT`: never blocks, whatever the socket mode,
/// so the client's own thread can keep a blocking read on the same socket.
fn send_nonblocking(stream: &TcpStream, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: the fd is owned by `stream`, alive for the call; `buf` is a
    // valid slice for `buf.len()` bytes.
    let n = unsafe {
        libc::send(stream.as_raw_fd(), buf.as_ptr().cast(), buf.len(), libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// The pod's one thread that finishes writes to clients whose socket was
/// full, when `poll` says they can take more.
pub struct Flusher {
    tx: Option<Sender<Arc<Outbox>>>,
    handle: Option<thread::JoinHandle<()>>,
}

impl Flusher {
    pub fn start() -> Self {
        let (tx, rx) = crossbeam_channel::unbounded::<Arc<Outbox>>();
        let handle = thread::Builder::new()
            .name("flusher".into())
            .spawn(move || flusher_loop(rx))
            .expect("spawn flusher thread");
        Flusher { tx: Some(tx), handle: Some(handle) }
    }

    fn sender(&self) -> Sender<Arc<Outbox>> {
        self.tx.clone().expect("flusher running")
    }

    /// Ends the thread once every outbox is gone (call after the
    /// connections have ended) and joins it.
    pub fn stop(mut self) {
        self.tx = None;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn flusher_loop(rx: Receiver<Arc<Outbox>>) {
    let mut watched: Vec<Arc<Outbox>> = Vec::new();
    loop {
        if watched.is_empty() {
            match rx.recv() {
                Ok(o) => watched.push(o),
                Err(_) => return,
            }
        }
        watched.extend(rx.try_iter());
        let mut fds: Vec<libc::pollfd> = watched
            .iter()
            .map(|o| libc::pollfd { fd: o.stream.as_raw_fd(), events: libc::POLLOUT, revents: 0 })
            .collect();
        // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, FLUSHER_TICK.as_millis() as i32) };
        if ready < 0 {
            thread::sleep(Duration::from_millis(10));
            continue;
        }
        let mut still = Vec::with_capacity(watched.len());
        for (o, pfd) in watched.drain(..).zip(fds.iter()) {
            if o.is_closed() {
                continue;
            }
            if pfd.revents != 0 {
                // Take the outbox off the watch list first: flush puts it
                // back (sends it to us again) if the socket fills up again.
                o.lock().watched = false;
                o.flush();
            } else {
                still.push(o);
            }
        }
        watched = still;
        match rx.recv_timeout(Duration::ZERO) {
            Ok(o) => watched.push(o),
            Err(RecvTimeoutError::Disconnected) if watched.is_empty() => return,
            Err(_) => {}
        }
    }
}
