//! The schema: `schema.sql` applied once per version (recorded in
//! `chatp_schema`), under a lock shared by pods starting together, and the
//! one-off fills a migration needs. Its statements run in one transaction,
//! but for indexes built `CONCURRENTLY` on the original tables, which run
//! after it, one by one, while writes go on (a build a crash left invalid is
//! dropped and done again). The migration runs as `DB_MIGRATION_USER` when
//! that is set (the role that owns the schema), else as `DB_USER`.

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

/// `schema.sql` as statements: (in the transaction, built concurrently).
fn statements() -> (String, Vec<String>) {
    let (mut transactional, mut concurrent) = (String::new(), Vec::new());
    let mut current = String::new();
    for line in SCHEMA_SQL.lines() {
        let code = line.trim();
        if code.starts_with("--") || code.is_empty() {
            continue;
        }
        current.push_str(line);
        current.push('\n');
        if code.ends_with(';') {
            let statement = std::mem::take(&mut current);
            if statement.contains(" CONCURRENTLY ") {
                concurrent.push(statement);
            } else {
                transactional.push_str(&statement);
            }
        }
    }
    (transactional, concurrent)
}

/// Rows updated per statement by the first migration's fill, so that no
/// row lock or statement lasts long on a large table.
const FILL_BATCH: i32 = 10_000;

/// The Python chatp never set `is_read`: what it stored counts as read, so
/// unread counts start with chatp. In batches of ids, each committed alone
/// (the writes of a running Python server or chatp pod go on meanwhile);
/// done again in full if interrupted, since the version is recorded last.
fn mark_python_messages_read(c: &mut postgres::Client) -> Result<(), postgres::Error> {
    let last: i32 = c.query_one("SELECT COALESCE(MAX(message_id), 0) FROM messages", &[])?.get(0);
    let mut from = 0;
    while from < last {
        c.execute(
            "UPDATE messages SET is_read = TRUE WHERE message_id > $1 AND message_id <= $2 AND is_read IS NOT TRUE",
            &[&from, &from.saturating_add(FILL_BATCH)],
        )?;
        from = from.saturating_add(FILL_BATCH);
    }
    Ok(())
}

/// The index a `CREATE INDEX CONCURRENTLY IF NOT EXISTS <name> ON ...` builds.
fn index_name(statement: &str) -> Option<&str> {
    statement.split_once(" IF NOT EXISTS ")?.1.split_whitespace().next()
}

fn migrate(c: &mut postgres::Client, version: &str) -> Result<(), postgres::Error> {
    // A session lock: the concurrent builds run outside any transaction.
    // Tried, not waited for: a statement blocked in pg_advisory_lock holds
    // a snapshot, and CREATE INDEX CONCURRENTLY in the twin pod that holds
    // the lock waits for every older snapshot to end (a deadlock when two
    // pods start together).
    while !c.query_one("SELECT pg_try_advisory_lock($1)", &[&SCHEMA_LOCK_KEY])?.get::<_, bool>(0) {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let result = migrate_locked(c, version);
    let _ = c.execute("SELECT pg_advisory_unlock($1)", &[&SCHEMA_LOCK_KEY]);
    result
}

fn migrate_locked(c: &mut postgres::Client, version: &str) -> Result<(), postgres::Error> {
    // A twin pod may have migrated while we waited for the lock.
    if recorded_version(c)?.as_deref() == Some(version) {
        return Ok(());
    }
    let first_time = recorded_version(c)?.is_none();
    let (transactional, concurrent) = statements();
    let mut tx = c.transaction()?;
    // Only a short wait for table locks: a pod that starts behind a long
    // transaction gives up and tries again rather than hold up writes.
    tx.batch_execute(&format!("SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = '{MIGRATION_LOCK_TIMEOUT}'"))?;
    tx.batch_execute(&transactional)?;
    // Committed at once: its ALTER TABLEs lock their tables (and, through
    // the foreign keys, every insert that names a user) until then.
    tx.commit()?;
    // Building an index on a large old table may take long; writes go on.
    c.batch_execute("SET statement_timeout = 0; SET lock_timeout = 0")?;
    if first_time {
        mark_python_messages_read(c)?;
    }
    for statement in &concurrent {
        if let Some(name) = index_name(statement) {
            let invalid: bool = c
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_class x ON x.oid = i.indexrelid \
                     WHERE x.relname = $1 AND NOT i.indisvalid)",
                    &[&name],
                )?
                .get(0);
            if invalid {
                log::warn!("index {name} was left invalid by an interrupted build: building it again");
                c.batch_execute(&format!("DROP INDEX CONCURRENTLY IF EXISTS {name}"))?;
            }
        }
        c.batch_execute(statement)?;
    }
    c.batch_execute("RESET statement_timeout; RESET lock_timeout")?;
    c.execute(
        "INSERT INTO chatp_schema (id, version) VALUES (1, $1) \
         ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version, applied_at = CURRENT_TIMESTAMP",
        &[&version],
    )?;
    Ok(())
}

impl DbManager {
    /// Brings the database to `schema.sql`, unless it is there already
    /// (then nothing is locked). The statements wait at most
    /// [`MIGRATION_LOCK_TIMEOUT`] for a table lock, so a pod that starts
    /// behind a long transaction (or `pg_dump`) never holds up the other
    /// pods' writes; it gives up, waits and tries again.
    /// `migrator`: a connection as the schema's owner (`DB_MIGRATION_USER`);
    /// `None`: a pooled one.
    pub(super) fn apply_schema(&self, mut migrator: Option<postgres::Client>) -> StoreResult<()> {
        let version = schema_version();
        let mut wait = Duration::from_secs(1);
        loop {
            let mut pooled;
            let c: &mut postgres::Client = match migrator.as_mut() {
                Some(c) => c,
                None => {
                    pooled = self.conn()?;
                    &mut pooled
                }
            };
            if recorded_version(c)?.as_deref() == Some(version.as_str()) {
                return Ok(());
            }
            match migrate(c, &version) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_on_the_original_tables_are_built_concurrently_outside_the_transaction() {
        let (transactional, concurrent) = statements();
        assert!(!transactional.contains("CONCURRENTLY"));
        assert!(transactional.contains("CREATE TABLE IF NOT EXISTS messages"));
        let names: Vec<&str> = concurrent.iter().filter_map(|s| index_name(s)).collect();
        assert_eq!(names.len(), concurrent.len(), "{concurrent:?}");
        assert!(names.contains(&"idx_messages_history"), "{names:?}");
        assert!(names.contains(&"idx_users_username_key"), "{names:?}");
    }
}
