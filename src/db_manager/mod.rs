//! PostgreSQL: the connection pool and every SQL statement of chatp, as
//! parameterised statements behind domain functions. Nothing else in the
//! crate writes SQL.
//!
//! Every function runs in autocommit or in its own transaction, so when it
//! returns `Ok` the row is committed: callers acknowledge only after that.
//! Private and broadcast messages go through the [`writer`], which commits
//! the messages of many senders in one statement.

mod accounts;
mod groups;
mod names;
mod resume;
mod schema;
mod stats;
mod target;
mod users;
mod writer;

use std::fmt;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use postgres::error::SqlState;
use r2d2::{Pool, PooledConnection};
use r2d2_postgres::PostgresConnectionManager;

use crate::config::DbConfig;
use crate::protocol::HISTORY_LIMIT;
pub use accounts::Account;
pub use groups::{CreateGroupOutcome, GroupMember, GroupSummary, JoinOutcome, LeaveOutcome};
pub use resume::{Missed, Resumed};
pub use stats::Totals;
pub use target::PgTarget;
pub use users::{SignupOutcome, UserRecord, ENDED_SESSIONS_KEPT};
use writer::{Message, Writer};

/// The original schema plus our idempotent migrations (`schema.sql`).
pub const SCHEMA_SQL: &str = include_str!("../../schema.sql");

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

/// The pool, the message writer and the statements. Cheap to clone (both
/// are shared).
#[derive(Clone)]
pub struct DbManager {
    pool: Pool<Manager>,
    writer: Arc<Writer>,
    names: Arc<names::Names>,
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
        let migrator = match &cfg.migration {
            Some((user, password)) => {
                let mut owner = target.clone();
                owner.config.user(user).password(password);
                Some(owner.connect().map_err(StoreError::Connect)?)
            }
            None => None,
        };
        let db = DbManager { pool, writer: Arc::new(Writer::start(target)), names: Arc::default() };
        db.apply_schema(migrator)?;
        db.fill_username_keys()?;
        Ok(db)
    }

    /// Whether `DB_USER` is a PostgreSQL superuser.
    pub fn is_superuser(&self) -> StoreResult<bool> {
        let row = self.conn()?.query_one("SELECT rolsuper FROM pg_roles WHERE rolname = current_user", &[])?;
        Ok(row.get(0))
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
            // Each participant column through its own index, whatever plan
            // a prepared statement settles on.
            "SELECT m.sender_username, COUNT(*) FROM messages m \
             WHERE m.conversation_id IN \
                   (SELECT conversation_id FROM conversations WHERE participant1_id = $1 \
                    UNION ALL SELECT conversation_id FROM conversations WHERE participant2_id = $1) \
               AND m.sender_id IS DISTINCT FROM $1 AND m.is_read IS NOT TRUE \
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
}
