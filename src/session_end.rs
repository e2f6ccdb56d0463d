//! Ending a user's live sessions on every pod at once: an administrator
//! disabled, deleted or reset the account, or the user changed their
//! password in one session (the others end). One message on the Redis
//! channel `chat:admin` reaches every pod's listener; each closes its own
//! sessions of that user, after telling them why.

use std::sync::Arc;

use crate::outbox::Outbox;
use crate::protocol::{self, text};
use crate::redis_store::Keys;

/// Why the sessions end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    Disabled,
    Deleted,
    PasswordReset,
    PasswordChanged,
    /// This pod could not confirm a login that was in flight (PostgreSQL
    /// did not answer); never sent to other pods.
    Unconfirmed,
}

impl EndReason {
    fn code(self) -> &'static str {
        match self {
            EndReason::Disabled => "disabled",
            EndReason::Deleted => "deleted",
            EndReason::PasswordReset => "password_reset",
            EndReason::PasswordChanged => "password_changed",
            EndReason::Unconfirmed => "unconfirmed",
        }
    }

    fn parse(code: &str) -> Option<EndReason> {
        [EndReason::Disabled, EndReason::Deleted, EndReason::PasswordReset, EndReason::PasswordChanged]
            .into_iter()
            .find(|r| r.code() == code)
    }

    /// What the person is told.
    pub fn text(self) -> &'static str {
        match self {
            EndReason::Disabled => text::ENDED_DISABLED,
            EndReason::Deleted => text::ENDED_DELETED,
            EndReason::PasswordReset => text::ENDED_PASSWORD_RESET,
            EndReason::PasswordChanged => text::ENDED_PASSWORD_CHANGED,
            EndReason::Unconfirmed => text::ENDED_UNCONFIRMED,
        }
    }
}

/// End `user`'s sessions but the one whose `sessions` row is `except`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndSessions {
    /// Who sent it (a pod id, or `chat_admin`): a pod applies its own at
    /// once and skips the echo.
    pub origin: String,
    pub reason: EndReason,
    pub except_session: Option<i32>,
    pub user: String,
}

impl EndSessions {
    /// `origin \n reason \n except-session-or-empty \n user`.
    pub fn encode(&self) -> String {
        let except = self.except_session.map(|s| s.to_string()).unwrap_or_default();
        format!("{}\n{}\n{except}\n{}", self.origin, self.reason.code(), self.user)
    }

    pub fn decode(payload: &str) -> Option<EndSessions> {
        let mut parts = payload.splitn(4, '\n');
        let origin = parts.next()?.to_string();
        let reason = EndReason::parse(parts.next()?)?;
        let except_session = match parts.next()? {
            "" => None,
            id => Some(id.parse().ok()?),
        };
        let user = parts.next().filter(|u| !u.is_empty())?.to_string();
        Some(EndSessions { origin, reason, except_session, user })
    }

    /// Tells every pod (`chat:admin`); how many heard it.
    pub fn publish(&self, conn: &mut impl redis::ConnectionLike, keys: &Keys) -> redis::RedisResult<i64> {
        redis::cmd("PUBLISH").arg(keys.admin_channel()).arg(self.encode()).query(conn)
    }

    /// Ends the sessions among `outboxes` (one user's, on this pod) that
    /// this names; how many.
    pub fn apply(&self, outboxes: &[Arc<Outbox>]) -> usize {
        let mut ended = 0;
        for o in outboxes.iter().filter(|o| self.except_session.is_none_or(|s| o.session_id() != Some(s))) {
            // Protocol 2: do not resume. The original client shows ERROR.
            let line: Arc<str> = if o.speaks_sessions() {
                protocol::session_end(self.reason.text()).into()
            } else {
                protocol::error(self.reason.text()).into()
            };
            o.notify(&line);
            // Its thread reads EOF next, cleans up and flushes the line.
            o.stop_reading();
            ended += 1;
        }
        crate::metrics::METRICS.admin_kicks.inc_by(ended as u64);
        ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_garbage() {
        let e = EndSessions {
            origin: "pod-1".into(),
            reason: EndReason::PasswordChanged,
            except_session: Some(42),
            user: "ann:x".into(),
        };
        assert_eq!(EndSessions::decode(&e.encode()), Some(e));
        let e = EndSessions {
            origin: "chat_admin".into(),
            reason: EndReason::Disabled,
            except_session: None,
            user: "b".into(),
        };
        assert_eq!(EndSessions::decode(&e.encode()), Some(e));
        assert_eq!(EndSessions::decode("chat_admin\nlater\n\nb"), None);
        assert_eq!(EndSessions::decode("chat_admin\ndisabled\nx\nb"), None);
        assert_eq!(EndSessions::decode("chat_admin\ndisabled\n\n"), None);
    }
}
