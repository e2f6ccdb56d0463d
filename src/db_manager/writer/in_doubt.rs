//! A group whose statement got no answer (the connection died with it
//! out): ended, then looked for, never guessed.

use std::thread;
use std::time::{Duration, Instant};

use super::conn::InDoubt;
use super::{Job, Message};
use crate::db_manager::{PgTarget, StoreError, StoreResult};

/// How long the writer keeps trying to learn whether a group whose
/// statement got no answer was committed, before it says it cannot tell.
const RESOLVE_FOR: Duration = Duration::from_secs(15);
/// Most rows read after the last known id when resolving a group.
const RESOLVE_SCAN: i64 = 100_000;

/// Whether the statement of `jobs` committed, asked from new connections
/// for up to [`RESOLVE_FOR`]: the old backend is ended (it can no longer
/// commit), then the group's rows are looked for after the last id known
/// before it. `Ok(ids)`: all there (stored); `Err`: none there (not stored)
/// or no answer ([`StoreError::OutcomeUnknown`]).
pub(super) fn resolve(pg: &PgTarget, doubt: &InDoubt, jobs: &[Job]) -> StoreResult<Vec<i64>> {
    let deadline = Instant::now() + RESOLVE_FOR;
    let mut wait = Duration::from_millis(100);
    loop {
        match find_rows(pg, doubt, jobs) {
            Ok(Some(found)) if found.len() == jobs.len() => {
                log::info!("the {} messages in flight had been committed", jobs.len());
                return Ok(found);
            }
            Ok(Some(found)) if found.is_empty() => {
                log::info!("the {} messages in flight were not committed", jobs.len());
                return Err(StoreError::Writer("the connection to PostgreSQL was lost; not stored".into()));
            }
            Ok(Some(found)) => {
                log::error!("{} of {} messages in flight found after a lost connection", found.len(), jobs.len());
                return Err(StoreError::OutcomeUnknown);
            }
            // The old backend is still there, or PostgreSQL cannot be asked.
            other => {
                if Instant::now() >= deadline {
                    log::error!("cannot tell whether {} messages in flight were committed: {other:?}", jobs.len());
                    return Err(StoreError::OutcomeUnknown);
                }
                thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// The ids of `jobs`' rows after `doubt.after_id`, in `jobs`' order (as
/// many as were found); `None` while the old backend is still running.
fn find_rows(pg: &PgTarget, doubt: &InDoubt, jobs: &[Job]) -> Result<Option<Vec<i64>>, postgres::Error> {
    let mut c = pg.connect()?;
    c.execute("SELECT pg_terminate_backend($1)", &[&doubt.backend_pid])?;
    let alive: bool =
        c.query_one("SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)", &[&doubt.backend_pid])?.get(0);
    if alive {
        return Ok(None);
    }
    let sql = match doubt.kind {
        0 => {
            "SELECT message_id::int8, conversation_id, sender_id, message_text FROM messages \
              WHERE message_id > $1::int8 ORDER BY message_id LIMIT $2::int8"
        }
        _ => {
            "SELECT broadcast_id::int8, 0, sender_id, message_text FROM broadcast_messages \
              WHERE broadcast_id > $1::int8 ORDER BY broadcast_id LIMIT $2::int8"
        }
    };
    let rows = c.query(sql, &[&doubt.after_id, &RESOLVE_SCAN])?;
    let mut used = vec![false; rows.len()];
    let mut ids = Vec::new();
    for job in jobs {
        let (conv, sender, text) = match &job.message {
            Message::Private { conversation_id, sender_id, text, .. } => (Some(*conversation_id), *sender_id, text),
            Message::Broadcast { sender_id, text, .. } => (None, *sender_id, text),
        };
        let hit = rows.iter().enumerate().position(|(i, r)| {
            !used[i]
                && conv.is_none_or(|c| r.get::<_, Option<i32>>(1) == Some(c))
                && r.get::<_, Option<i32>>(2) == Some(sender)
                && r.get::<_, String>(3) == *text
        });
        if let Some(i) = hit {
            used[i] = true;
            ids.push(rows[i].get(0));
        }
    }
    Ok(Some(ids))
}
