//! Usernames by user id, kept once read: a message to a group of 5,000
//! needs every member's name to route it, and joining 5,000 members to
//! `users` at each message made PostgreSQL read the whole table (a hash
//! join, 24 ms with 100,000 users). A name never changes for its id (there
//! is no rename, and ids are not reused), so nothing kept goes stale.

use std::collections::HashMap;
use std::sync::Mutex;

use super::StoreResult;

/// Most names kept (about 60 bytes each); beyond, the map starts again.
const MAX_NAMES: usize = 200_000;

#[derive(Default)]
pub struct Names {
    by_id: Mutex<HashMap<i32, String>>,
}

impl Names {
    /// The names of `ids`, in their order; those not kept yet are read in
    /// one statement (`= ANY`, the primary key's index).
    pub fn of(&self, ids: &[i32], c: &mut postgres::Client) -> StoreResult<Vec<String>> {
        let missing: Vec<i32> = {
            let known = self.by_id.lock().unwrap_or_else(|e| e.into_inner());
            ids.iter().copied().filter(|id| !known.contains_key(id)).collect()
        };
        if !missing.is_empty() {
            let rows = c.query("SELECT user_id, username FROM users WHERE user_id = ANY($1)", &[&missing])?;
            let mut known = self.by_id.lock().unwrap_or_else(|e| e.into_inner());
            if known.len() + rows.len() > MAX_NAMES {
                known.clear();
            }
            known.extend(rows.iter().map(|r| (r.get(0), r.get(1))));
        }
        let known = self.by_id.lock().unwrap_or_else(|e| e.into_inner());
        Ok(ids.iter().filter_map(|id| known.get(id).cloned()).collect())
    }
}
