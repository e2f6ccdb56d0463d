//! The writer's connection: its prepared statements, the group insert,
//! and what it knows when the connection dies with a statement out.

use std::time::{Duration, Instant};

use postgres::Statement;

use super::{Job, Message};
use crate::db_manager::PgTarget;

/// Idle time after which the connection is checked before use.
const VALIDATE_AFTER_IDLE: Duration = Duration::from_secs(1);

/// Each statement also writes its mark (a random token) with the ids it
/// stored, in the same transaction: after a lost connection, the mark is
/// there if and only if the group committed, with exactly its ids.
const INSERT_PRIVATE: &str = "\
    WITH m AS ( \
        INSERT INTO messages (conversation_id, sender_id, sender_username, message_text) \
        SELECT * FROM unnest($1::int4[], $2::int4[], $3::text[], $4::text[]) \
        RETURNING message_id, conversation_id), \
    u AS ( \
        UPDATE conversations SET last_message_at = CURRENT_TIMESTAMP \
        WHERE conversation_id IN (SELECT conversation_id FROM m) \
          AND (last_message_at IS NULL OR last_message_at < CURRENT_TIMESTAMP - interval '1 second')), \
    k AS (INSERT INTO chatp_write_marks (mark, ids) SELECT $5::text, array_agg(message_id::int8) FROM m) \
    SELECT message_id::int8 FROM m";

const INSERT_BROADCAST: &str = "\
    WITH b AS ( \
        INSERT INTO broadcast_messages (sender_id, sender_username, message_text) \
        SELECT * FROM unnest($1::int4[], $2::text[], $3::text[]) \
        RETURNING broadcast_id), \
    k AS (INSERT INTO chatp_write_marks (mark, ids) SELECT $4::text, array_agg(broadcast_id::int8) FROM b) \
    SELECT broadcast_id::int8 FROM b";

/// The writer's connection and its prepared statements.
pub(super) struct Conn {
    pub(super) client: postgres::Client,
    pub(super) private: Statement,
    pub(super) broadcast: Statement,
    pub(super) last_used: Instant,
    /// Its backend (to end it, and only it, when the connection is lost).
    pub(super) backend: Backend,
}

/// A backend as PostgreSQL knows it: its pid, and when it started (a pid is
/// reused by another backend after a restart; the pair is not).
#[derive(Debug, Clone)]
pub(super) struct Backend {
    pub(super) pid: i32,
    pub(super) started: String,
}

/// Why a group was not (known to be) committed.
pub(super) enum InsertError {
    /// Not committed: the statement failed, or never reached PostgreSQL.
    NotStored(postgres::Error),
    /// The connection died with the statement out: it may have committed.
    InDoubt(InDoubt),
}

/// What it takes to find out whether a group's statement committed.
pub(super) struct InDoubt {
    pub(super) backend: Backend,
    /// The statement's mark in `chatp_write_marks`.
    pub(super) mark: String,
    pub(super) error: postgres::Error,
}

/// A new statement's mark: 128 random bits.
fn new_mark() -> String {
    use rand_core::{OsRng, RngCore};
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

impl Conn {
    pub(super) fn open(pg: &PgTarget) -> Result<Conn, postgres::Error> {
        let mut client = pg.connect()?;
        // One plan per statement for the connection's life: a custom plan
        // (PostgreSQL's choice for some connections, kept once made) costs a
        // planning of the statement at every group, about 0.2 ms.
        if let Err(e) = client.batch_execute("SET plan_cache_mode = force_generic_plan") {
            log::info!("message writer keeps PostgreSQL's plan choice (before PostgreSQL 12): {e}");
        }
        let private = client.prepare(INSERT_PRIVATE)?;
        let broadcast = client.prepare(INSERT_BROADCAST)?;
        let row = client
            .query_one("SELECT pid, backend_start::text FROM pg_stat_activity WHERE pid = pg_backend_pid()", &[])?;
        let backend = Backend { pid: row.get(0), started: row.get(1) };
        Ok(Conn { client, private, broadcast, last_used: Instant::now(), backend })
    }

    /// Still connected: assumed within [`VALIDATE_AFTER_IDLE`] of its last
    /// use, checked with an empty query after that.
    pub(super) fn usable(&mut self) -> bool {
        !self.client.is_closed()
            && (self.last_used.elapsed() < VALIDATE_AFTER_IDLE || self.client.simple_query("").is_ok())
    }

    /// One statement, one round trip, one commit for `jobs`, all of one
    /// kind. Returns the new rows' ids, in the order of `jobs` (they come
    /// from one sequence, taken in the order of the unnested arrays).
    pub(super) fn insert(&mut self, jobs: &[Job]) -> Result<Vec<i64>, InsertError> {
        self.last_used = Instant::now();
        let mark = new_mark();
        match self.insert_statement(jobs, &mark) {
            Ok(rows) => {
                let mut ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
                ids.sort_unstable();
                Ok(ids)
            }
            // PostgreSQL answered with an error (a FATAL at shutdown
            // included): the statement failed. Otherwise the connection
            // broke with the statement out, and it may have committed.
            Err(error) if self.client.is_closed() && error.as_db_error().is_none() => {
                Err(InsertError::InDoubt(InDoubt { backend: self.backend.clone(), mark, error }))
            }
            Err(e) => Err(InsertError::NotStored(e)),
        }
    }

    fn insert_statement(&mut self, jobs: &[Job], mark: &str) -> Result<Vec<postgres::Row>, postgres::Error> {
        match jobs[0].message {
            Message::Private { .. } => {
                let (mut conv, mut ids, mut names, mut texts) = (vec![], vec![], vec![], vec![]);
                for j in jobs {
                    if let Message::Private { conversation_id, sender_id, sender, text } = &j.message {
                        conv.push(*conversation_id);
                        ids.push(*sender_id);
                        names.push(sender.as_str());
                        texts.push(text.as_str());
                    }
                }
                self.client.query(&self.private, &[&conv, &ids, &names, &texts, &mark])
            }
            Message::Broadcast { .. } => {
                let (mut ids, mut names, mut texts) = (vec![], vec![], vec![]);
                for j in jobs {
                    if let Message::Broadcast { sender_id, sender, text } = &j.message {
                        ids.push(*sender_id);
                        names.push(sender.as_str());
                        texts.push(text.as_str());
                    }
                }
                self.client.query(&self.broadcast, &[&ids, &names, &texts, &mark])
            }
        }
    }
}
