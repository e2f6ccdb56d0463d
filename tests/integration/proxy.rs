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
        };
        let (frozen_below, accepted, stop, held) = (
            Arc::clone(&proxy.frozen_below),
            Arc::clone(&proxy.accepted),
            Arc::clone(&proxy.stop),
            Arc::clone(&proxy.held),
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
                for (from, to) in [(&client, &server), (&server, &client)] {
                    let (from, to) = (from.try_clone().unwrap(), to.try_clone().unwrap());
                    let (frozen_below, stop, held) = (Arc::clone(&frozen_below), Arc::clone(&stop), Arc::clone(&held));
                    std::thread::spawn(move || pump(n, from, to, &frozen_below, &stop, &held));
                }
            }
        });
        proxy
    }

    /// Freezes every connection made so far.
    pub fn freeze(&self) {
        self.frozen_below.store(self.accepted.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

fn pump(
    n: u64,
    mut from: TcpStream,
    mut to: TcpStream,
    frozen_below: &AtomicU64,
    stop: &AtomicBool,
    held: &Mutex<Vec<TcpStream>>,
) {
    from.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut buf = [0u8; 16 * 1024];
    loop {
        if stop.load(Ordering::SeqCst) {
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
