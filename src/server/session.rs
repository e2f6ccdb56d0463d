//! A logged-in client: who it is, its connection, and the pod's services.
//! The screens take a `&mut Session`.

use std::sync::Arc;
use std::time::Instant;

use log::{debug, error};

use crate::connection::{Connection, Step};
use crate::db_manager::{StoreError, StoreResult};
use crate::metrics::METRICS;
use crate::protocol::{self, text};

use super::user_limits::Buckets;

use super::Context;

/// An authenticated user.
#[derive(Debug, Clone)]
pub struct User {
    pub id: i32,
    pub name: String,
}

pub struct Session<'a> {
    pub ctx: &'a Context,
    pub conn: Connection,
    pub user: User,
    /// The protocol-2 resume token of this session.
    pub resume_token: Option<String>,
    /// Per kind of message, when limits are on: the user's, shared by
    /// all their sessions on this pod.
    limits: Option<Arc<Buckets>>,
    /// Wrong current passwords given at `PASSWORD` in this session.
    pub wrong_passwords: u32,
}

/// What a line would store and send to others.
#[derive(Debug, Clone, Copy)]
pub enum Outgoing {
    Private = 0,
    Group = 1,
    Broadcast = 2,
}

impl Outgoing {
    /// As metrics label it.
    pub fn label(self) -> &'static str {
        match self {
            Outgoing::Private => "private",
            Outgoing::Group => "group",
            Outgoing::Broadcast => "broadcast",
        }
    }
}

impl<'a> Session<'a> {
    pub fn new(ctx: &'a Context, conn: Connection, user: User, resume_token: Option<String>) -> Self {
        let limits = ctx.limits.map(|l| ctx.user_limits.buckets(user.id, &l));
        Session { ctx, conn, user, resume_token, limits, wrong_passwords: 0 }
    }

    /// Whether a message may be stored and sent: no control characters,
    /// within its rate limit. If not, the client is told why (`ERROR:`).
    pub fn admit(&mut self, kind: Outgoing, message: &str) -> Step<bool> {
        if protocol::has_control_chars(message) {
            self.conn.send(protocol::error(text::CONTROL_CHARS))?;
            return Ok(false);
        }
        if let Some(buckets) = &self.limits {
            let admitted = buckets.lock().unwrap_or_else(|e| e.into_inner())[kind as usize].try_take(Instant::now());
            if !admitted {
                debug!("{}: {kind:?} message over the rate limit, refused", self.user.name);
                METRICS.rate_limited.with_label_values(&[kind.label()]).inc();
                self.conn.send(protocol::error(text::RATE_LIMITED))?;
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Unwraps a storage result; on failure logs it, tells the client
    /// `ERROR:<reason>` and gives `None` (the screen then goes back).
    pub fn stored<T>(&self, what: &str, r: StoreResult<T>, reason: &str) -> Step<Option<T>> {
        match r {
            Ok(v) => Ok(Some(v)),
            Err(e) => {
                METRICS.storage_errors.with_label_values(&["postgresql"]).inc();
                error!("{} ({}): {what}: {e}", self.user.name, self.conn.outbox().label());
                let reason = match e {
                    StoreError::OutcomeUnknown => text::STORE_UNKNOWN,
                    _ => reason,
                };
                self.conn.send(protocol::error(reason))?;
                Ok(None)
            }
        }
    }

    /// [`Session::stored`] for a message: counts it (stored, time to
    /// commit) by kind.
    pub fn stored_message<T>(&self, kind: Outgoing, since: Instant, r: StoreResult<T>) -> Step<Option<T>> {
        if r.is_ok() {
            Self::count_stored(kind, since);
        }
        self.stored(&format!("storing a {} message", kind.label()), r, text::STORE_FAILED)
    }

    /// A message of `kind` that arrived at `since` is committed.
    pub fn count_stored(kind: Outgoing, since: Instant) {
        METRICS.stored.with_label_values(&[kind.label()]).inc();
        METRICS.store_seconds.with_label_values(&[kind.label()]).observe(since.elapsed().as_secs_f64());
    }

    /// [`Session::stored`] for reads that fill a screen.
    pub fn loaded<T>(&self, what: &str, r: StoreResult<T>) -> Step<Option<T>> {
        self.stored(what, r, text::STORAGE_UNAVAILABLE)
    }

    /// Sends a screen's history: opening line, entries, closing token.
    pub fn send_history(&self, start: String, entries: &[crate::db_manager::HistoryEntry], ready: &str) -> Step {
        // Protocol 2: times in UTC (a trailing Z), for the client's own zone.
        let utc = self.conn.outbox().speaks_sessions();
        let mut lines = vec![start];
        lines.extend(
            entries.iter().map(|h| protocol::history_line(if utc { &h.utc } else { &h.timestamp }, &h.sender, &h.text)),
        );
        lines.push(ready.to_string());
        self.conn.send_all(lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_exported_from_the_start() {
        for k in [Outgoing::Private, Outgoing::Group, Outgoing::Broadcast] {
            assert!(crate::metrics::MESSAGE_KINDS.contains(&k.label()), "{}", k.label());
        }
        for k in [protocol::MessageKind::Private, protocol::MessageKind::Group, protocol::MessageKind::Broadcast] {
            assert!(crate::metrics::MESSAGE_KINDS.contains(&k.as_str()), "{}", k.as_str());
        }
    }
}
