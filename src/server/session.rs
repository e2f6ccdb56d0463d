//! A logged-in client: who it is, its connection, and the pod's services.
//! The screens take a `&mut Session`.

use log::error;

use crate::connection::{Connection, Step};
use crate::db_manager::StoreResult;
use crate::protocol::{self, text};

use super::Context;

/// An authenticated user.
#[derive(Debug, Clone)]
pub struct User {
    pub id: i32,
    pub name: String,
}

pub struct Session<'a> {
    pub ctx: &'a Context,
    pub conn: Connection,
    pub user: User,
}

impl Session<'_> {
    /// Unwraps a storage result; on failure logs it, tells the client
    /// `ERROR:<reason>` and gives `None` (the screen then goes back).
    pub fn stored<T>(&self, what: &str, r: StoreResult<T>, reason: &str) -> Step<Option<T>> {
        match r {
            Ok(v) => Ok(Some(v)),
            Err(e) => {
                error!("{} ({}): {what}: {e}", self.user.name, self.conn.outbox().label());
                self.conn.send(protocol::error(reason))?;
                Ok(None)
            }
        }
    }

    /// [`Session::stored`] for reads that fill a screen.
    pub fn loaded<T>(&self, what: &str, r: StoreResult<T>) -> Step<Option<T>> {
        self.stored(what, r, text::STORAGE_UNAVAILABLE)
    }

    /// Sends a screen's history: opening line, entries, closing token.
    pub fn send_history(&self, start: String, entries: &[crate::db_manager::HistoryEntry], ready: &str) -> Step {
        self.conn.send(start)?;
        for h in entries {
            self.conn.send(protocol::history_line(&h.timestamp, &h.sender, &h.text))?;
        }
        self.conn.send(ready)
    }
}
