//! PostgreSQL: the connection pool and every SQL statement of chatp, as
//! parameterised statements behind domain functions. Nothing else in the
//! crate writes SQL.
//!
//! Every function runs in autocommit or in its own transaction, so when it
//! returns `Ok` the row is committed: callers acknowledge only after that.
//! Private and broadcast messages go through the [`writer`], which commits
//! the messages of many senders in one statement.

mod accounts;
mod resume;
mod stats;
mod target;
mod writer;

use std::fmt;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use postgres::error::SqlState;
use r2d2::{Pool, PooledConnection};
use r2d2_postgres::PostgresConnectionManager;

use crate::config::DbConfig;
use crate::protocol::{username_key, HISTORY_LIMIT};
pub use accounts::Account;
pub use resume::{Missed, Resumed};
pub use stats::Totals;
pub use target::PgTarget;
use writer::{Message, Writer};

/// The original schema plus our idempotent migrations (`schema.sql`).
pub const SCHEMA_SQL: &str = include_str!("../../schema.sql");

/// Serialises schema application between pods starting together
/// (`CREATE TABLE IF NOT EXISTS` is not safe against a concurrent twin).
const SCHEMA_LOCK_KEY: i64 = 0x63_68_61_74_70; // "chatp"

/// How long a request waits for a pooled connection before it fails.
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a statement runs (`statement_timeout` of every connection).
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a statement waits for a lock (`lock_timeout`).
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(5);
type Manager = PostgresConnectionManager<target::Tls>;
type Conn = PooledConnection<Manager>;

#[derive(Debug)]
pub enum StoreError {
    /// The first connection failed (the cause as PostgreSQL or the network
    /// gave it: a wrong password, a refused port).
    Connect(postgres::Error),
    /// No connection could be had (PostgreSQL down or the pool exhausted).
    Unavailable(r2d2::Error),
    /// A statement failed.
    Query(postgres::Error),
    /// A statement of the message writer failed (its error, as text: the
    /// writer answers every sender of a group with it).
    Writer(String),
    /// TLS to PostgreSQL cannot be set up (`DB_SSLROOTCERT` unusable).
    Tls(String),
    /// The message writer has stopped (the server is shutting down), or
    /// the message waited too long in its queue and was cancelled unwritten.
    WriterStopped,
    /// PostgreSQL went away during the `COMMIT` and could not be asked
    /// afterwards: the message may or may not be stored.
    OutcomeUnknown,
}

impl StoreError {
    /// The same error for another waiter (`postgres::Error` is not `Clone`).
    pub fn again(&self) -> StoreError {
        match self {
            StoreError::OutcomeUnknown => StoreError::OutcomeUnknown,
            StoreError::WriterStopped => StoreError::WriterStopped,
            other => StoreError::Writer(other.to_string()),
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Connect(e) => write!(f, "{}", connect_error_text(e)),
            StoreError::Unavailable(e) => write!(f, "PostgreSQL unavailable: {e}"),
            StoreError::Query(e) => write!(f, "PostgreSQL statement failed: {e}"),
            StoreError::Writer(e) => write!(f, "PostgreSQL statement failed: {e}"),
            StoreError::Tls(e) => write!(f, "{e}"),
            StoreError::WriterStopped => write!(f, "the message writer is not answering"),
            StoreError::OutcomeUnknown => write!(f, "PostgreSQL went away during COMMIT; outcome unknown"),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Unavailable(e) => Some(e),
            StoreError::Query(e) | StoreError::Connect(e) => Some(e),
            StoreError::Writer(_) | StoreError::Tls(_) | StoreError::WriterStopped | StoreError::OutcomeUnknown => None,
        }
    }
}

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        StoreError::Query(e)
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A connection error as a person needs it: the server's own message
/// (`password authentication failed for user "x"`, `database "y" does not
/// exist`) or the network's (`Connection refused`), not the driver's
/// wrapper text.
fn connect_error_text(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return db.message().to_string();
    }
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

fn is_unique_violation(e: &postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

/// A user row as authentication needs it.
#[derive(Debug, Clone)]
pub struct UserRecord {
    pub id: i32,
    pub username: String,
    pub password_hash: String,
    /// An administrator disabled the account (`chat_admin disable`).
    pub disabled: bool,
}

/// One line of history.
#[derive(Debug, Clone)]
pub struct HistoryEntry {
    /// `YYYY-MM-DD HH:MM:SS`, as stored (the database's time zone).
    pub timestamp: String,
    /// `YYYY-MM-DD HH:MM:SSZ`: the same moment in UTC (protocol 2).
    pub utc: String,
    pub sender: String,
    pub text: String,
}

/// A group as the group screens show it.
#[derive(Debug, Clone)]
pub struct GroupSummary {
    pub id: i32,
    pub name: String,
    pub description: Option<String>,
    pub member_count: i64,
    /// For "my groups": the user is its admin. For "browse": unused.
    pub is_admin: bool,
    /// The user is a member.
    pub is_member: bool,
}

#[derive(Debug, Clone)]
pub struct GroupMember {
    pub username: String,
    pub is_admin: bool,
    /// `YYYY-MM-DD`
    pub joined: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignupOutcome {
    Created(i32),
    UsernameTaken,
    /// The invite code is unknown, used or expired.
    InviteInvalid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateGroupOutcome {
    Created(i32),
    NameTaken,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinOutcome {
    Joined,
    AlreadyMember,
    NotFound,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaveOutcome {
    Left,
    /// The last member left; the group is now inactive.
    LeftAndClosed,
    NotMember,
}

/// The pool, the message writer and the statements. Cheap to clone (both
/// are shared).
#[derive(Clone)]
pub struct DbManager {
    pool: Pool<Manager>,
    writer: Arc<Writer>,
}

/// The last [`HISTORY_LIMIT`] rows of a message table, oldest first, read
/// as the original reads them (newest first by timestamp) with the row id
/// `key` ordering messages that share a timestamp (those committed in one
/// statement); timestamps as the protocol prints them.
fn history_sql(table: &str, key: &str, filter: &str) -> String {
    format!(
        "SELECT ts, sender_username, message_text, utc FROM ( \
           SELECT {key} AS id, timestamp AS t, COALESCE(to_char(timestamp, 'YYYY-MM-DD HH24:MI:SS'), '') AS ts, \
                  COALESCE(to_char((timestamp AT TIME ZONE current_setting('TimeZone')) AT TIME ZONE 'UTC', \
                                   'YYYY-MM-DD HH24:MI:SS\"Z\"'), '') AS utc, \
                  sender_username, message_text \
           FROM {table} {filter} ORDER BY timestamp DESC, {key} DESC LIMIT {HISTORY_LIMIT} \
         ) h ORDER BY t, id"
    )
}

/// Whether a user has the name `$1` or one that reads the same (key `$2`).
const NAME_TAKEN_SQL: &str = "SELECT EXISTS (SELECT 1 FROM users WHERE username = $1 OR username_key = $2)";

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
    /// Connects, checks one connection and applies the schema.
    pub fn connect(cfg: &DbConfig, application: &str) -> StoreResult<Self> {
        let target = PgTarget::new(cfg, application).map_err(StoreError::Tls)?;
        // One connection first, for the real cause if it fails (the pool
        // would only say it timed out).
        target.connect().map_err(StoreError::Connect)?;
        let pool = Pool::builder()
            .max_size(cfg.pool_size)
            .min_idle(Some(1))
            .connection_timeout(CHECKOUT_TIMEOUT)
            // Checked at checkout (one empty query): after PostgreSQL
            // restarts, idle pooled connections are dead, and a user must not
            // get an error for that.
            .test_on_check_out(true)
            // Failures surface as our own errors, once, with context.
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .build(PostgresConnectionManager::new(target.config.clone(), target.tls.clone()))
            .map_err(StoreError::Unavailable)?;
        let db = DbManager { pool, writer: Arc::new(Writer::start(target)) };
        db.apply_schema()?;
        db.fill_username_keys()?;
        Ok(db)
    }

    /// PostgreSQL answers (readiness), within a second.
    pub fn ping(&self) -> StoreResult<()> {
        let mut c = self.pool.get_timeout(Duration::from_secs(1)).map_err(StoreError::Unavailable)?;
        c.simple_query("")?;
        Ok(())
    }

    fn conn(&self) -> StoreResult<Conn> {
        self.pool.get().map_err(StoreError::Unavailable)
    }

    /// Brings the database to `schema.sql`, unless it is there already
    /// (then nothing is locked). The statements wait at most
    /// [`MIGRATION_LOCK_TIMEOUT`] for a table lock, so a pod that starts
    /// behind a long transaction (or `pg_dump`) never holds up the other
    /// pods' writes; it gives up, waits and tries again.
    fn apply_schema(&self) -> StoreResult<()> {
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

    // ------------------------------------------------------------ users

    pub fn find_user(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        let row = self.conn()?.query_opt(
            "SELECT user_id, username, password_hash, disabled_at IS NOT NULL FROM users WHERE username = $1",
            &[&username],
        )?;
        Ok(row.map(|r| UserRecord { id: r.get(0), username: r.get(1), password_hash: r.get(2), disabled: r.get(3) }))
    }

    /// Whether a user has this name or one that reads the same
    /// ([`username_key`]).
    pub fn username_taken(&self, username: &str) -> StoreResult<bool> {
        let row = self.conn()?.query_one(NAME_TAKEN_SQL, &[&username, &username_key(username)])?;
        Ok(row.get(0))
    }

    /// Creates a user unless the name, or one that reads the same, exists
    /// (checked under a lock on the key, so two look-alike signups at once
    /// cannot both pass).
    /// With `invite`, the code is taken in the same transaction (one
    /// account per code, however many try it at once).
    pub fn create_user(&self, username: &str, password_hash: &str, invite: Option<&str>) -> StoreResult<SignupOutcome> {
        let key = username_key(username);
        let mut c = self.conn()?;
        let mut tx = c.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock(hashtext('user:' || $1))", &[&key])?;
        let taken = tx.query_one(NAME_TAKEN_SQL, &[&username, &key])?;
        if taken.get(0) {
            return Ok(SignupOutcome::UsernameTaken);
        }
        if let Some(code) = invite {
            let taken = tx.query_opt(
                "UPDATE chatp_invites SET used_at = CURRENT_TIMESTAMP WHERE code_hash = $1 AND used_at IS NULL \
                 AND (expires_at IS NULL OR expires_at > CURRENT_TIMESTAMP) RETURNING code_hash",
                &[&resume::token_hash(code)],
            )?;
            if taken.is_none() {
                return Ok(SignupOutcome::InviteInvalid);
            }
        }
        let res = tx.query_one(
            "INSERT INTO users (username, password_hash, username_key) VALUES ($1, $2, $3) RETURNING user_id",
            &[&username, &password_hash, &key],
        );
        match res {
            Ok(row) => {
                let id: i32 = row.get(0);
                if let Some(code) = invite {
                    tx.execute(
                        "UPDATE chatp_invites SET used_by = $2 WHERE code_hash = $1",
                        &[&resume::token_hash(code), &id],
                    )?;
                }
                tx.commit()?;
                Ok(SignupOutcome::Created(id))
            }
            Err(e) if is_unique_violation(&e) => Ok(SignupOutcome::UsernameTaken),
            Err(e) => Err(e.into()),
        }
    }

    /// Fills `username_key` where it is missing (rows of a Python chatp
    /// database, or written by the Python server since).
    fn fill_username_keys(&self) -> StoreResult<u64> {
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

    /// Replaces a legacy hash; only if it is still the one that was checked.
    pub fn upgrade_password_hash(&self, user_id: i32, old_hash: &str, new_hash: &str) -> StoreResult<()> {
        self.conn()?.execute(
            "UPDATE users SET password_hash = $3 WHERE user_id = $1 AND password_hash = $2",
            &[&user_id, &old_hash, &new_hash],
        )?;
        Ok(())
    }

    /// Every user but `user_id`, by name.
    pub fn other_usernames(&self, user_id: i32) -> StoreResult<Vec<String>> {
        let rows =
            self.conn()?.query("SELECT username FROM users WHERE user_id <> $1 ORDER BY username", &[&user_id])?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    pub fn find_user_id(&self, username: &str) -> StoreResult<Option<i32>> {
        let row = self.conn()?.query_opt("SELECT user_id FROM users WHERE username = $1", &[&username])?;
        Ok(row.map(|r| r.get(0)))
    }

    // --------------------------------------------------------- sessions

    /// Opens a `sessions` row for a login on `pod_id`; stamps `last_login`.
    pub fn create_session(&self, user_id: i32, pod_id: &str) -> StoreResult<i32> {
        let row = self.conn()?.query_one(
            "WITH s AS (INSERT INTO sessions (user_id, pod_id) VALUES ($1, $2) RETURNING session_id), \
                  u AS (UPDATE users SET last_login = CURRENT_TIMESTAMP WHERE user_id = $1) \
             SELECT session_id FROM s",
            &[&user_id, &pod_id],
        )?;
        Ok(row.get(0))
    }

    pub fn end_session(&self, session_id: i32) -> StoreResult<()> {
        self.conn()?.execute(
            "UPDATE sessions SET logout_time = CURRENT_TIMESTAMP, is_active = FALSE \
             WHERE session_id = $1 AND is_active",
            &[&session_id],
        )?;
        Ok(())
    }

    /// Opens again rows of live sessions that another pod closed when it
    /// took this pod for dead.
    pub fn reopen_sessions(&self, session_ids: &[i32]) -> StoreResult<u64> {
        Ok(self.conn()?.execute(
            "UPDATE sessions SET logout_time = NULL, is_active = TRUE WHERE session_id = ANY($1) AND NOT is_active",
            &[&session_ids],
        )?)
    }

    /// Closes every session a pod left open (it died, or restarts).
    pub fn end_pod_sessions(&self, pod_id: &str) -> StoreResult<u64> {
        Ok(self.conn()?.execute(
            "UPDATE sessions SET logout_time = CURRENT_TIMESTAMP, is_active = FALSE \
             WHERE pod_id = $1 AND is_active",
            &[&pod_id],
        )?)
    }

    // ---------------------------------------------------- conversations

    pub fn get_or_create_conversation(&self, user_a: i32, user_b: i32) -> StoreResult<i32> {
        let (p1, p2) = (user_a.min(user_b), user_a.max(user_b));
        let mut c = self.conn()?;
        // ON CONFLICT needs the unique constraint; the select-first path
        // keeps this cheap when the conversation exists (the usual case).
        let select = "SELECT conversation_id FROM conversations WHERE participant1_id = $1 AND participant2_id = $2";
        if let Some(row) = c.query_opt(select, &[&p1, &p2])? {
            return Ok(row.get(0));
        }
        let inserted = c.query_opt(
            "INSERT INTO conversations (participant1_id, participant2_id) VALUES ($1, $2) \
             ON CONFLICT (participant1_id, participant2_id) DO NOTHING RETURNING conversation_id",
            &[&p1, &p2],
        )?;
        match inserted {
            Some(row) => Ok(row.get(0)),
            None => Ok(c.query_one(select, &[&p1, &p2])?.get(0)),
        }
    }

    /// Stores a private message; `Ok(its id)` means committed.
    pub fn save_private_message(
        &self,
        conversation_id: i32,
        sender_id: i32,
        sender: &str,
        text: &str,
    ) -> StoreResult<i64> {
        self.writer.save(Message::Private { conversation_id, sender_id, sender: sender.into(), text: text.into() })
    }

    /// Unread private messages to `user_id`, by sender (by name).
    pub fn unread_by_sender(&self, user_id: i32) -> StoreResult<Vec<(String, i64)>> {
        let rows = self.conn()?.query(
            "SELECT m.sender_username, COUNT(*) FROM messages m \
             JOIN conversations c ON c.conversation_id = m.conversation_id \
             WHERE $1 IN (c.participant1_id, c.participant2_id) AND m.sender_id IS DISTINCT FROM $1 \
               AND m.is_read IS NOT TRUE \
             GROUP BY m.sender_username ORDER BY m.sender_username",
            &[&user_id],
        )?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Marks what the other participant wrote in a conversation as read by
    /// `user_id` (the original schema's `messages.is_read`).
    pub fn mark_conversation_read(&self, conversation_id: i32, user_id: i32) -> StoreResult<()> {
        self.conn()?.execute(
            "UPDATE messages SET is_read = TRUE \
             WHERE conversation_id = $1 AND sender_id IS DISTINCT FROM $2 AND is_read IS NOT TRUE",
            &[&conversation_id, &user_id],
        )?;
        Ok(())
    }

    /// The last [`HISTORY_LIMIT`] messages by insertion order, oldest first.
    pub fn recent_conversation_messages(&self, conversation_id: i32) -> StoreResult<Vec<HistoryEntry>> {
        static SQL: LazyLock<String> =
            LazyLock::new(|| history_sql("messages", "message_id", "WHERE conversation_id = $1"));
        self.history(&SQL, &[&conversation_id])
    }

    fn history(&self, sql: &str, params: &[&(dyn postgres::types::ToSql + Sync)]) -> StoreResult<Vec<HistoryEntry>> {
        let rows = self.conn()?.query(sql, params)?;
        Ok(rows
            .iter()
            .map(|r| HistoryEntry { timestamp: r.get(0), sender: r.get(1), text: r.get(2), utc: r.get(3) })
            .collect())
    }

    // -------------------------------------------------------- broadcast

    /// Stores a broadcast; `Ok(its id)` means committed.
    pub fn save_broadcast_message(&self, sender_id: i32, sender: &str, text: &str) -> StoreResult<i64> {
        self.writer.save(Message::Broadcast { sender_id, sender: sender.into(), text: text.into() })
    }

    pub fn recent_broadcast_messages(&self) -> StoreResult<Vec<HistoryEntry>> {
        static SQL: LazyLock<String> = LazyLock::new(|| history_sql("broadcast_messages", "broadcast_id", ""));
        self.history(&SQL, &[])
    }

    // ----------------------------------------------------------- groups

    /// The active groups `user_id` belongs to, oldest first.
    pub fn user_groups(&self, user_id: i32) -> StoreResult<Vec<GroupSummary>> {
        let rows = self.conn()?.query(
            "SELECT g.group_id, g.group_name, g.description, \
                    (SELECT COUNT(*) FROM group_members c WHERE c.group_id = g.group_id), \
                    gm.role = 'admin' \
             FROM groups g JOIN group_members gm ON gm.group_id = g.group_id \
             WHERE gm.user_id = $1 AND g.is_active ORDER BY g.group_id",
            &[&user_id],
        )?;
        Ok(rows
            .iter()
            .map(|r| GroupSummary {
                id: r.get(0),
                name: r.get(1),
                description: r.get(2),
                member_count: r.get(3),
                is_admin: r.get::<_, Option<bool>>(4).unwrap_or(false),
                is_member: true,
            })
            .collect())
    }

    /// Every active group, oldest first, with whether `user_id` is in it.
    pub fn all_groups(&self, user_id: i32) -> StoreResult<Vec<GroupSummary>> {
        let rows = self.conn()?.query(
            "SELECT g.group_id, g.group_name, g.description, \
                    (SELECT COUNT(*) FROM group_members c WHERE c.group_id = g.group_id), \
                    EXISTS (SELECT 1 FROM group_members m WHERE m.group_id = g.group_id AND m.user_id = $1) \
             FROM groups g WHERE g.is_active ORDER BY g.group_id",
            &[&user_id],
        )?;
        Ok(rows
            .iter()
            .map(|r| GroupSummary {
                id: r.get(0),
                name: r.get(1),
                description: r.get(2),
                member_count: r.get(3),
                is_admin: false,
                is_member: r.get(4),
            })
            .collect())
    }

    /// The name of an active group `user_id` belongs to; `None` otherwise.
    pub fn member_group_name(&self, group_id: i32, user_id: i32) -> StoreResult<Option<String>> {
        let row = self.conn()?.query_opt(
            "SELECT g.group_name FROM groups g JOIN group_members gm ON gm.group_id = g.group_id \
             WHERE g.group_id = $1 AND gm.user_id = $2 AND g.is_active",
            &[&group_id, &user_id],
        )?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Creates a group with `creator` as its admin. Names are unique among
    /// active groups (checked under a lock on the name).
    pub fn create_group(&self, name: &str, description: Option<&str>, creator: i32) -> StoreResult<CreateGroupOutcome> {
        let mut c = self.conn()?;
        let mut tx = c.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock(hashtext('group:' || $1))", &[&name])?;
        let taken = tx.query_opt("SELECT 1 FROM groups WHERE group_name = $1 AND is_active", &[&name])?;
        if taken.is_some() {
            return Ok(CreateGroupOutcome::NameTaken);
        }
        let id: i32 = tx
            .query_one(
                "INSERT INTO groups (group_name, description, creator_id) VALUES ($1, $2, $3) RETURNING group_id",
                &[&name, &description, &creator],
            )?
            .get(0);
        tx.execute("INSERT INTO group_members (group_id, user_id, role) VALUES ($1, $2, 'admin')", &[&id, &creator])?;
        tx.commit()?;
        Ok(CreateGroupOutcome::Created(id))
    }

    pub fn join_group(&self, group_id: i32, user_id: i32) -> StoreResult<JoinOutcome> {
        let row = self.conn()?.query_one(
            "WITH g AS (SELECT group_id FROM groups WHERE group_id = $1 AND is_active), \
                  ins AS (INSERT INTO group_members (group_id, user_id, role) \
                          SELECT group_id, $2, 'member' FROM g \
                          ON CONFLICT (group_id, user_id) DO NOTHING RETURNING 1) \
             SELECT EXISTS (SELECT 1 FROM g), EXISTS (SELECT 1 FROM ins)",
            &[&group_id, &user_id],
        )?;
        Ok(match (row.get(0), row.get(1)) {
            (false, _) => JoinOutcome::NotFound,
            (true, true) => JoinOutcome::Joined,
            (true, false) => JoinOutcome::AlreadyMember,
        })
    }

    /// Leaves a group. An admin who leaves hands the role to the longest
    /// member; the last member to leave closes the group.
    pub fn leave_group(&self, group_id: i32, user_id: i32) -> StoreResult<LeaveOutcome> {
        let mut c = self.conn()?;
        let mut tx = c.transaction()?;
        // Lock the group row so concurrent leaves see each other.
        if tx.query_opt("SELECT 1 FROM groups WHERE group_id = $1 AND is_active FOR UPDATE", &[&group_id])?.is_none() {
            return Ok(LeaveOutcome::NotMember);
        }
        let left = tx.query_opt(
            "DELETE FROM group_members WHERE group_id = $1 AND user_id = $2 RETURNING role",
            &[&group_id, &user_id],
        )?;
        let Some(left) = left else {
            return Ok(LeaveOutcome::NotMember);
        };
        let remaining: i64 =
            tx.query_one("SELECT COUNT(*) FROM group_members WHERE group_id = $1", &[&group_id])?.get(0);
        let outcome = if remaining == 0 {
            tx.execute("UPDATE groups SET is_active = FALSE WHERE group_id = $1", &[&group_id])?;
            LeaveOutcome::LeftAndClosed
        } else {
            if left.get::<_, Option<String>>(0).as_deref() == Some("admin") {
                tx.execute(
                    "UPDATE group_members SET role = 'admin' WHERE group_id = $1 AND user_id = ( \
                       SELECT user_id FROM group_members WHERE group_id = $1 \
                       AND NOT EXISTS (SELECT 1 FROM group_members a WHERE a.group_id = $1 AND a.role = 'admin') \
                       ORDER BY joined_at, membership_id LIMIT 1)",
                    &[&group_id],
                )?;
            }
            LeaveOutcome::Left
        };
        tx.commit()?;
        Ok(outcome)
    }

    /// Members, admins first, then by join time.
    pub fn group_members(&self, group_id: i32) -> StoreResult<Vec<GroupMember>> {
        let rows = self.conn()?.query(
            "SELECT u.username, gm.role = 'admin', COALESCE(to_char(gm.joined_at, 'YYYY-MM-DD'), '') \
             FROM group_members gm JOIN users u ON u.user_id = gm.user_id \
             WHERE gm.group_id = $1 ORDER BY (gm.role = 'admin') IS TRUE DESC, gm.joined_at, gm.membership_id",
            &[&group_id],
        )?;
        Ok(rows
            .iter()
            .map(|r| GroupMember {
                username: r.get(0),
                is_admin: r.get::<_, Option<bool>>(1).unwrap_or(false),
                joined: r.get(2),
            })
            .collect())
    }

    /// Stores a group message and returns its id and the members at that
    /// moment (one statement, so the list matches the commit). `None`: the
    /// sender is no longer a member of an active group and nothing was
    /// stored.
    pub fn save_group_message(
        &self,
        group_id: i32,
        sender_id: i32,
        sender: &str,
        text: &str,
    ) -> StoreResult<Option<(i64, Vec<String>)>> {
        let rows = self.conn()?.query(
            "WITH ok AS (SELECT 1 FROM group_members gm JOIN groups g ON g.group_id = gm.group_id \
                         WHERE gm.group_id = $1 AND gm.user_id = $2 AND g.is_active), \
                  ins AS (INSERT INTO group_messages (group_id, sender_id, sender_username, message_text) \
                          SELECT $1, $2, $3, $4 FROM ok RETURNING message_id) \
             SELECT u.username, (SELECT message_id::int8 FROM ins) FROM group_members gm \
             JOIN users u ON u.user_id = gm.user_id \
             WHERE gm.group_id = $1 AND EXISTS (SELECT 1 FROM ins)",
            &[&group_id, &sender_id, &sender, &text],
        )?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        Ok(Some((first.get(1), rows.iter().map(|r| r.get(0)).collect())))
    }

    pub fn recent_group_messages(&self, group_id: i32) -> StoreResult<Vec<HistoryEntry>> {
        static SQL: LazyLock<String> =
            LazyLock::new(|| history_sql("group_messages", "message_id", "WHERE group_id = $1"));
        self.history(&SQL, &[&group_id])
    }
}
