//! The pod's heartbeat thread, and the janitor that does its database work.
//!
//! Every third of `PRESENCE_TTL_SECS` the heartbeat refreshes this pod's
//! alive key, rewrites the pod's presence when a write was lost or the pod
//! finds it was reaped (its heartbeat came late: a CPU stall, SIGSTOP, a
//! Redis outage), and reaps pods that stopped. It never waits on
//! PostgreSQL: closing a dead pod's session rows, opening our own again
//! after we were reaped, and purging ended sessions' rows and expired resume
//! tokens (every `SESSION_PURGE_SECS`) go to the janitor thread.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};
use log::{info, warn};

use crate::db_manager::DbManager;

use super::Context;

/// How soon the heartbeat first tries again while presence needs
/// rewriting (then twice as long each time, up to its tick).
const RETRY: std::time::Duration = std::time::Duration::from_millis(250);

/// The `sessions` rows of this pod's live sessions.
#[derive(Default)]
pub struct SessionRows {
    live: Mutex<HashSet<i32>>,
}

impl SessionRows {
    fn lock(&self) -> MutexGuard<'_, HashSet<i32>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn opened(&self, id: i32) {
        self.lock().insert(id);
    }

    /// Ends a session's row. Under the same lock as [`SessionRows::reopen`],
    /// so a row that ends is never opened again behind its back.
    pub fn close(&self, db: &DbManager, id: i32) -> crate::db_manager::StoreResult<()> {
        let mut live = self.lock();
        live.remove(&id);
        db.end_session(id)
    }

    /// Opens again the rows another pod closed when it reaped us.
    fn reopen(&self, db: &DbManager) {
        let live = self.lock();
        let ids: Vec<i32> = live.iter().copied().collect();
        match db.reopen_sessions(&ids) {
            Ok(n) => info!("reopened {n} session rows closed while this pod was thought dead"),
            Err(e) => warn!("session rows of this pod stay closed: {e}"),
        }
    }
}

enum Chore {
    /// A pod was reaped: close its rows.
    EndPodSessions(String),
    /// We were reaped: open our live rows again.
    ReopenOwn,
    /// Ended sessions' rows past their retention, expired resume tokens.
    Purge,
}

/// Starts the heartbeat (and its janitor); dropping the sender stops both.
pub fn start(ctx: Arc<Context>) -> (Sender<()>, JoinHandle<()>) {
    let (tx, rx): (Sender<()>, Receiver<()>) = crossbeam_channel::bounded(0);
    let (chores, todo) = crossbeam_channel::unbounded::<Chore>();
    let janitor_ctx = Arc::clone(&ctx);
    let janitor = thread::Builder::new()
        .name("janitor".into())
        .spawn(move || {
            for chore in todo {
                match chore {
                    Chore::EndPodSessions(pod) => {
                        match janitor_ctx.db.end_pod_sessions(&pod) {
                            Ok(n) => {
                                info!("pod {pod} stopped its heartbeat: removed from presence, {n} sessions closed")
                            }
                            Err(e) => warn!("pod {pod} is dead but its sessions stay open: {e}"),
                        }
                        let ttl = janitor_ctx.resume_ttl.as_secs() as i64;
                        if let Err(e) = janitor_ctx.db.release_pod_resume_tokens(&pod, ttl) {
                            warn!("resume tokens of dead pod {pod}: {e}");
                        }
                    }
                    Chore::ReopenOwn => janitor_ctx.session_rows.reopen(&janitor_ctx.db),
                    Chore::Purge => purge(&janitor_ctx),
                }
            }
        })
        .expect("spawn janitor thread");
    let interval = ctx.presence.heartbeat_interval().min(ctx.purge_every);
    let handle = thread::Builder::new()
        .name("heartbeat".into())
        .spawn(move || {
            // The first purge soon after start, then every `purge_every`.
            let mut next_purge = Instant::now() + interval;
            let mut wait = interval;
            let mut retry: Option<std::time::Duration> = None;
            loop {
                crossbeam_channel::select! {
                    recv(rx) -> _ => break,
                    recv(ctx.presence.wakes()) -> _ => {}
                    default(wait) => {}
                }
                beat(&ctx, &chores);
                // Presence not rewritten yet (Redis down or just back): try
                // again soon, so other pods see this pod's users within
                // moments of Redis answering again.
                // Backing off to the normal tick in a long outage.
                retry = ctx.presence.is_dirty().then(|| retry.map_or(RETRY, |r| (r * 2).min(interval)));
                wait = retry.unwrap_or(interval);
                if Instant::now() >= next_purge {
                    next_purge = Instant::now() + ctx.purge_every;
                    let _ = chores.send(Chore::Purge);
                }
            }
            drop(chores);
            let _ = janitor.join();
        })
        .expect("spawn heartbeat thread");
    (tx, handle)
}

/// Deletes what no one will read again: rows of sessions that ended long
/// ago (or beyond each user's newest few), resume tokens past their expiry.
fn purge(ctx: &Context) {
    match ctx.db.purge_ended_sessions(ctx.session_retention.as_secs() as i64) {
        Ok((0, 0)) => {}
        Ok((sessions, tokens)) => info!("purged {sessions} ended sessions' rows and {tokens} expired resume tokens"),
        Err(e) => warn!("purging ended sessions: {e}"),
    }
}

fn beat(ctx: &Context, chores: &Sender<Chore>) {
    // Always refreshed first, even when a rewrite is due anyway: it is what
    // tells whether another pod reaped us (and closed our session rows).
    match ctx.presence.refresh() {
        Ok(false) => {}
        Ok(true) => {
            warn!("this pod was reaped while alive (late heartbeat): registering its sessions again");
            let _ = chores.send(Chore::ReopenOwn);
        }
        Err(e) => {
            warn!("heartbeat: {e}");
            ctx.presence.mark_dirty();
            return;
        }
    }
    if ctx.presence.is_dirty() {
        match ctx.router.resync_presence() {
            Ok(()) => info!("presence rewritten: {} users on this pod", ctx.router.session_counts().len()),
            Err(e) => {
                warn!("heartbeat: {e}");
                return;
            }
        }
    }
    match ctx.presence.reap() {
        Ok(reaped) => {
            for pod in reaped {
                let _ = chores.send(Chore::EndPodSessions(pod));
            }
        }
        Err(e) => warn!("heartbeat: {e}"),
    }
}
