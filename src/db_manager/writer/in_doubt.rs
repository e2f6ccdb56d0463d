//! A group whose statement got no answer (the connection died with it
//! out): ended, then looked for by its mark, never guessed.

use std::thread;
use std::time::{Duration, Instant};

use super::conn::InDoubt;
use super::Job;
use crate::db_manager::{PgTarget, StoreError, StoreResult};

/// How long the writer keeps trying to learn whether a group whose
/// statement got no answer was committed, before it says it cannot tell.
const RESOLVE_FOR: Duration = Duration::from_secs(15);

/// Whether the statement of `jobs` committed, asked from new connections
/// for up to [`RESOLVE_FOR`]: the old backend is ended (it can no longer
/// commit), then the statement's mark is looked for: it was written in the
/// same transaction as the rows, with their ids. `Ok(ids)`: stored;
/// `Err`: not stored, or no answer ([`StoreError::OutcomeUnknown`]).
pub(super) fn resolve(pg: &PgTarget, doubt: &InDoubt, jobs: &[Job]) -> StoreResult<Vec<i64>> {
    let deadline = Instant::now() + RESOLVE_FOR;
    let mut wait = Duration::from_millis(100);
    loop {
        match find_mark(pg, doubt) {
            Ok(Some(Some(mut ids))) if ids.len() == jobs.len() => {
                log::info!("the {} messages in flight had been committed", jobs.len());
                ids.sort_unstable();
                return Ok(ids);
            }
            Ok(Some(None)) => {
                log::info!("the {} messages in flight were not committed", jobs.len());
                return Err(StoreError::Writer("the connection to PostgreSQL was lost; not stored".into()));
            }
            Ok(Some(Some(ids))) => {
                log::error!("a mark holds {} ids for {} messages in flight", ids.len(), jobs.len());
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

/// The ids the statement's mark holds (`Some(None)`: no mark, not
/// committed); `None` while the old backend is still running. Only that
/// backend is ended: the same pid with another start time is another
/// backend (PostgreSQL restarted), which is left alone.
fn find_mark(pg: &PgTarget, doubt: &InDoubt) -> Result<Option<Option<Vec<i64>>>, postgres::Error> {
    let mut c = pg.connect()?;
    let (pid, started) = (&doubt.backend.pid, &doubt.backend.started);
    let alive: bool = c
        .query_one(
            "SELECT EXISTS (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE pid = $1 AND backend_start::text = $2)",
            &[pid, started],
        )?
        .get(0);
    if alive {
        let still: bool = c
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND backend_start::text = $2)",
                &[pid, started],
            )?
            .get(0);
        if still {
            return Ok(None);
        }
    }
    let row = c.query_opt("SELECT ids FROM chatp_write_marks WHERE mark = $1", &[&doubt.mark])?;
    Ok(Some(row.map(|r| r.get(0))))
}
