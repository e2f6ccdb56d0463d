//! Counts for chat_dashboard: registered users and stored messages.

use super::{DbManager, StoreResult};

/// What the database holds, counted now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Totals {
    pub registered_users: i64,
    /// Private, broadcast and group messages together.
    pub messages: i64,
    pub private_messages: i64,
    pub broadcast_messages: i64,
    pub group_messages: i64,
}

impl DbManager {
    pub fn totals(&self) -> StoreResult<Totals> {
        let row = self.conn()?.query_one(
            "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM messages), \
                    (SELECT count(*) FROM broadcast_messages), (SELECT count(*) FROM group_messages)",
            &[],
        )?;
        let (private, broadcast, group): (i64, i64, i64) = (row.get(1), row.get(2), row.get(3));
        Ok(Totals {
            registered_users: row.get(0),
            messages: private + broadcast + group,
            private_messages: private,
            broadcast_messages: broadcast,
            group_messages: group,
        })
    }
}
