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
    /// The names of `ids`, in their order (an id with no user left out).
    pub fn of(&self, ids: &[i32], c: &mut postgres::Client) -> StoreResult<Vec<String>> {
        let mut named = self.named(ids, c)?;
        Ok(ids.iter().filter_map(|id| named.remove(id)).collect())
    }

    /// The name of each of `ids` that has a user; those not kept yet are
    /// read in one statement (`= ANY`, the primary key's index).
    pub fn named(&self, ids: &[i32], c: &mut postgres::Client) -> StoreResult<HashMap<i32, String>> {
        let mut named = HashMap::with_capacity(ids.len());
        let missing: Vec<i32> = {
            let known = self.by_id.lock().unwrap_or_else(|e| e.into_inner());
            for id in ids {
                if let Some(name) = known.get(id) {
                    named.insert(*id, name.clone());
                }
            }
            ids.iter().copied().filter(|id| !named.contains_key(id)).collect()
        };
        if missing.is_empty() {
            return Ok(named);
        }
        let rows = c.query("SELECT user_id, username FROM users WHERE user_id = ANY($1)", &[&missing])?;
        let mut known = self.by_id.lock().unwrap_or_else(|e| e.into_inner());
        if known.len() + rows.len() > MAX_NAMES {
            known.clear();
        }
        for r in &rows {
            let (id, name): (i32, String) = (r.get(0), r.get(1));
            known.insert(id, name.clone());
            named.insert(id, name);
        }
        Ok(named)
    }
}
