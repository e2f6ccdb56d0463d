//! A TCP proxy on 127.0.0.1 that a test can freeze: the connections it
//! holds then stop forwarding in both directions and are never closed (no
//! FIN, no RST), as when a node or a network path dies. Connections made
//! after the freeze are forwarded normally (the service is reachable
//! again, as after a failover). Its accepted sockets have small receive
//! buffers, so a peer writing to a frozen connection soon meets a closed
//! window.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Proxy {
    pub port: u16,
    /// Connections with a number below this are frozen.
    frozen_below: Arc<AtomicU64>,
    accepted: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    /// Frozen sockets, kept open until the proxy is dropped.
    held: Arc<Mutex<Vec<TcpStream>>>,
    /// A cut armed by [`Proxy::cut_on`], taken by the first connection
    /// whose client sends its pattern.
    cut: Arc<Mutex<Option<Cut>>>,
}

/// Where a connection is cut: when its client sends `pattern`, the client
/// side is closed; `forward`: the bytes reach the server first (what they
/// ask may be done, its answer never arrives); else they are dropped.
#[derive(Debug, Clone)]
pub struct Cut {
    pub pattern: Vec<u8>,
    pub forward: bool,
}

fn small_rcvbuf(fd: i32) {
    let bytes: libc::c_int = 4096;
    // SAFETY: setsockopt on an open socket with a pointer to a live c_int.
    unsafe {
        libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, (&bytes as *const libc::c_int).cast(), 4);
    }
}

impl Proxy {
    pub fn start(target_port: u16) -> Proxy {
        Self::balance(vec![target_port])
    }

    /// A Service in front of several pods: each new connection goes to the
    /// next port that accepts it (round robin), as kube-proxy sends clients
    /// to the pods that are still there.
    pub fn balance(target_ports: Vec<u16>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        small_rcvbuf(listener.as_raw_fd());
        let port = listener.local_addr().unwrap().port();
        let proxy = Proxy {
            port,
            frozen_below: Arc::new(AtomicU64::new(0)),
            accepted: Arc::new(AtomicU64::new(0)),
            stop: Arc::new(AtomicBool::new(false)),
            held: Arc::new(Mutex::new(Vec::new())),
            cut: Arc::default(),
        };
        let (frozen_below, accepted, stop, held, cut) = (
            Arc::clone(&proxy.frozen_below),
            Arc::clone(&proxy.accepted),
            Arc::clone(&proxy.stop),
            Arc::clone(&proxy.held),
            Arc::clone(&proxy.cut),
        );
        std::thread::spawn(move || {
            let mut next = 0;
            for client in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let server = (0..target_ports.len()).find_map(|_| {
                    next = (next + 1) % target_ports.len();
                    TcpStream::connect(("127.0.0.1", target_ports[next])).ok()
                });
                let Some(server) = server else { continue };
                let n = accepted.fetch_add(1, Ordering::SeqCst);
                let dead = Arc::new(AtomicBool::new(false));
                for (from, to, upstream) in [(&client, &server, true), (&server, &client, false)] {
                    let (from, to) = (from.try_clone().unwrap(), to.try_clone().unwrap());
                    let (frozen_below, stop, held) = (Arc::clone(&frozen_below), Arc::clone(&stop), Arc::clone(&held));
                    let (cut, dead) = (upstream.then(|| Arc::clone(&cut)), Arc::clone(&dead));
                    std::thread::spawn(move || {
                        pump(n, from, to, &Flags { frozen_below: &frozen_below, stop: &stop, held: &held, cut, dead })
                    });
                }
            }
        });
        proxy
    }

    /// Freezes every connection made so far.
    pub fn freeze(&self) {
        self.frozen_below.store(self.accepted.load(Ordering::SeqCst), Ordering::SeqCst);
    }

    /// Arms a cut: the first connection whose client sends `cut.pattern`.
    pub fn cut_on(&self, cut: Cut) {
        *self.cut.lock().unwrap() = Some(cut);
    }
}

/// What a pump shares with the proxy and its twin.
struct Flags<'a> {
    frozen_below: &'a AtomicU64,
    stop: &'a AtomicBool,
    held: &'a Mutex<Vec<TcpStream>>,
    /// The client-to-server pump: the cut it may take.
    cut: Option<Arc<Mutex<Option<Cut>>>>,
    /// The connection was cut: nothing more goes to the client.
    dead: Arc<AtomicBool>,
}

fn pump(n: u64, mut from: TcpStream, mut to: TcpStream, f: &Flags<'_>) {
    let (frozen_below, stop, held) = (f.frozen_below, f.stop, f.held);
    from.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut buf = [0u8; 16 * 1024];
    loop {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        if f.dead.load(Ordering::SeqCst) {
            // Cut: the client's side is closed; the server's answer (if
            // any) is read and dropped, then that side closes too.
            if f.cut.is_none() {
                std::thread::sleep(Duration::from_secs(1));
            }
            let _ = from.shutdown(Shutdown::Both);
            let _ = to.shutdown(Shutdown::Both);
            return;
        }
        if n < frozen_below.load(Ordering::SeqCst) {
            // Silent from now on: keep both sockets open, read nothing.
            held.lock().unwrap().extend([from, to]);
            return;
        }
        match from.read(&mut buf) {
            Ok(0) => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(k) => {
                let hit = f.cut.as_ref().and_then(|c| {
                    let mut armed = c.lock().unwrap();
                    let hit = armed.as_ref().is_some_and(|c| buf[..k].windows(c.pattern.len()).any(|w| w == c.pattern));
                    if hit {
                        armed.take()
                    } else {
                        None
                    }
                });
                if let Some(cut) = hit {
                    if cut.forward {
                        let _ = to.write_all(&buf[..k]);
                    }
                    // The client side goes at once, whatever follows.
                    let _ = from.shutdown(Shutdown::Both);
                    f.dead.store(true, Ordering::SeqCst);
                    if !cut.forward {
                        let _ = to.shutdown(Shutdown::Both);
                    }
                    return;
                }
                if to.write_all(&buf[..k]).is_err() {
                    return;
                }
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => {
                let _ = to.shutdown(Shutdown::Both);
                return;
            }
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        self.held.lock().unwrap().clear();
    }
}
