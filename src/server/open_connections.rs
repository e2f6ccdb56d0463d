//! Every open client connection of the pod, logged in or not, so a
//! shutdown can close them all (the router knows only logged-in ones).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::outbox::Outbox;

#[derive(Default)]
pub struct OpenConnections {
    next: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Outbox>>>,
}

/// Removes its connection from the table when dropped.
pub struct Registered<'a> {
    table: &'a OpenConnections,
    id: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.table.open.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.id);
    }
}

impl OpenConnections {
    pub fn add(&self, outbox: &Arc<Outbox>) -> Registered<'_> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.open.lock().unwrap_or_else(|e| e.into_inner()).insert(id, Arc::clone(outbox));
        Registered { table: self, id }
    }

    /// Closes every open connection: their threads wake and end.
    pub fn close_all(&self, reason: &str) {
        let all: Vec<Arc<Outbox>> = self.open.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
        for o in all {
            o.close(reason);
        }
    }
}
