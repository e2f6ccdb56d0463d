//! Counts for chat_dashboard: registered users and stored messages.

use super::{DbManager, StoreResult};

/// What the database holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Totals {
    pub registered_users: i64,
    /// Private, broadcast and group messages together.
    pub messages: i64,
    pub private_messages: i64,
    pub broadcast_messages: i64,
    pub group_messages: i64,
    /// The sum of the three tables' highest ids: it grows by one per
    /// message stored, so its change gives the rate exactly, and reading it
    /// costs an index lookup however big the tables are.
    #[serde(skip)]
    pub message_ids: i64,
}

/// A table's rows: counted while PostgreSQL's estimate (`reltuples`, kept
/// by autovacuum) says it holds fewer than this, estimated beyond. A count
/// of 10,000,000 messages every sample would cost PostgreSQL a third of a
/// core; the estimate costs a catalogue lookup.
pub const EXACT_BELOW: i64 = 100_000;

/// `count(*)` of `table` when small (or never analysed), else the estimate.
pub(super) fn rows(table: &str) -> String {
    counted_or_estimated(table, &format!("SELECT count(*) FROM {table}"), EXACT_BELOW)
}

/// The rows of `relation` (a table, or a partial index for the rows it
/// covers): `count` while PostgreSQL's estimate is under `exact_below` (or
/// there is none yet), the estimate beyond. The scalar subquery is an init
/// plan, run only when the branch needs it.
pub(super) fn counted_or_estimated(relation: &str, count: &str, exact_below: i64) -> String {
    format!(
        "(SELECT CASE WHEN c.reltuples < 0 OR c.reltuples < {exact_below} THEN ({count}) \
                      ELSE c.reltuples::bigint END FROM pg_class c WHERE c.oid = '{relation}'::regclass)"
    )
}

impl DbManager {
    pub fn totals(&self) -> StoreResult<Totals> {
        let sql = format!(
            "SELECT {}, {}, {}, {}, \
                    COALESCE((SELECT max(message_id) FROM messages), 0)::bigint \
                    + COALESCE((SELECT max(broadcast_id) FROM broadcast_messages), 0) \
                    + COALESCE((SELECT max(message_id) FROM group_messages), 0)",
            rows("users"),
            rows("messages"),
            rows("broadcast_messages"),
            rows("group_messages")
        );
        let row = self.conn()?.query_one(sql.as_str(), &[])?;
        let (private, broadcast, group): (i64, i64, i64) = (row.get(1), row.get(2), row.get(3));
        Ok(Totals {
            registered_users: row.get(0),
            messages: private + broadcast + group,
            private_messages: private,
            broadcast_messages: broadcast,
            group_messages: group,
            message_ids: row.get(4),
        })
    }
}
