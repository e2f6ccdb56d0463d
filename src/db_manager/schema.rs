//! The schema: `schema.sql` applied once per version (recorded in
//! `chatp_schema`), under a lock shared by pods starting together, and the
//! one-off fills a migration needs.

use std::time::Duration;

use postgres::error::SqlState;

use super::{DbManager, StoreResult, SCHEMA_SQL};
use crate::protocol::username_key;

/// Serialises schema application between pods starting together
/// (`CREATE TABLE IF NOT EXISTS` is not safe against a concurrent twin).
const SCHEMA_LOCK_KEY: i64 = 0x63_68_61_74_70; // "chatp"

/// Longest a migration statement waits for a table lock.
const MIGRATION_LOCK_TIMEOUT: &str = "500ms";

/// The digest of `schema.sql` recorded in `chatp_schema`.
fn schema_version() -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(SCHEMA_SQL.as_bytes())[..8])
}

/// The version `chatp_schema` records, if the table exists.
fn recorded_version(c: &mut impl postgres::GenericClient) -> Result<Option<String>, postgres::Error> {
    let exists: bool = c.query_one("SELECT to_regclass('chatp_schema') IS NOT NULL", &[])?.get(0);
    if !exists {
        return Ok(None);
    }
    Ok(c.query_opt("SELECT version FROM chatp_schema WHERE id = 1", &[])?.map(|r| r.get(0)))
}

fn migrate(c: &mut postgres::Client, version: &str) -> Result<(), postgres::Error> {
    let mut tx = c.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK_KEY])?;
    // A twin pod may have migrated while we waited for the lock.
    if recorded_version(&mut tx)?.as_deref() == Some(version) {
        return tx.commit();
    }
    let first_time = recorded_version(&mut tx)?.is_none();
    // Building an index on a large old table may take long: no statement
    // timeout here, only a short wait for locks.
    tx.batch_execute(&format!("SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = '{MIGRATION_LOCK_TIMEOUT}'"))?;
    tx.batch_execute(SCHEMA_SQL)?;
    if first_time {
        // The Python chatp never set is_read: what it stored counts as read,
        // so unread counts start with chatp.
        tx.execute("UPDATE messages SET is_read = TRUE WHERE is_read IS NOT TRUE", &[])?;
    }
    tx.execute(
        "INSERT INTO chatp_schema (id, version) VALUES (1, $1) \
         ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version, applied_at = CURRENT_TIMESTAMP",
        &[&version],
    )?;
    tx.commit()
}

impl DbManager {
    /// Brings the database to `schema.sql`, unless it is there already
    /// (then nothing is locked). The statements wait at most
    /// [`MIGRATION_LOCK_TIMEOUT`] for a table lock, so a pod that starts
    /// behind a long transaction (or `pg_dump`) never holds up the other
    /// pods' writes; it gives up, waits and tries again.
    pub(super) fn apply_schema(&self) -> StoreResult<()> {
        let version = schema_version();
        let mut wait = Duration::from_secs(1);
        loop {
            let mut c = self.conn()?;
            if recorded_version(&mut *c)?.as_deref() == Some(version.as_str()) {
                return Ok(());
            }
            match migrate(&mut c, &version) {
                Ok(()) => {
                    log::info!("schema.sql applied (version {version})");
                    return Ok(());
                }
                Err(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => {
                    log::warn!("schema migration waits for a table lock held elsewhere; retrying in {wait:?}");
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(30));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Fills `username_key` where it is missing (rows of a Python chatp
    /// database, or written by the Python server since).
    pub(super) fn fill_username_keys(&self) -> StoreResult<u64> {
        let mut c = self.conn()?;
        let rows = c.query("SELECT user_id, username FROM users WHERE username_key IS NULL", &[])?;
        if rows.is_empty() {
            return Ok(0);
        }
        let ids: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
        let keys: Vec<String> = rows.iter().map(|r| username_key(r.get(1))).collect();
        Ok(c.execute(
            "UPDATE users u SET username_key = k.key FROM unnest($1::int4[], $2::text[]) AS k(id, key) \
             WHERE u.user_id = k.id",
            &[&ids, &keys],
        )?)
    }
}
