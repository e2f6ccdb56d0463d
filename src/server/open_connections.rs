//! Every open client connection of the pod, logged in or not, so a
//! shutdown can close them all (the router knows only logged-in ones).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::outbox::Outbox;
use crate::protocol;

#[derive(Default)]
pub struct OpenConnections {
    next: AtomicU64,
    /// Each connection's outbox, and whether it has logged in.
    open: Mutex<HashMap<u64, (Arc<Outbox>, Arc<AtomicBool>)>>,
}

/// Removes its connection from the table when dropped.
pub struct Registered<'a> {
    table: &'a OpenConnections,
    id: u64,
    logged_in: Arc<AtomicBool>,
}

impl Registered<'_> {
    pub fn logged_in(&self) {
        self.logged_in.store(true, Ordering::SeqCst);
    }
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.table.open.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.id);
    }
}

impl OpenConnections {
    pub fn add(&self, outbox: &Arc<Outbox>) -> Registered<'_> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let logged_in = Arc::new(AtomicBool::new(false));
        self.open.lock().unwrap_or_else(|e| e.into_inner()).insert(id, (Arc::clone(outbox), Arc::clone(&logged_in)));
        Registered { table: self, id, logged_in }
    }

    fn all(&self) -> Vec<(Arc<Outbox>, bool)> {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.values().map(|(o, l)| (Arc::clone(o), l.load(Ordering::SeqCst))).collect()
    }

    /// The start of a drain: connections not logged in are closed.
    /// Protocol-2 clients get `SERVER_SHUTDOWN`: they stop sending and
    /// close their side, so every line they sent is still served and
    /// answered. Protocol-1 connections are read no further. Either way the
    /// thread finishes the request at hand, flushes and ends.
    pub fn drain(&self) {
        let line: Arc<str> = Arc::from(protocol::server_shutdown().as_str());
        for (o, logged_in) in self.all() {
            if !logged_in {
                o.close("server shutting down");
            } else if o.speaks_sessions() {
                o.notify(&line);
            } else {
                o.stop_reading();
            }
        }
    }

    /// Closes every open connection: their threads wake and end.
    pub fn close_all(&self, reason: &str) {
        for (o, _) in self.all() {
            o.close(reason);
        }
    }
}
