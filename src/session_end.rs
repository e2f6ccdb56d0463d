//! Ending a user's live sessions on every pod at once: an administrator
//! disabled, deleted or reset the account, or the user changed their
//! password in one session (the others end). One message on the Redis
//! channel `chat:admin` reaches every pod's listener; each closes its own
//! sessions of that user, after telling them why.
//!
//! Messages are signed (HMAC-SHA-256 with the admin channel key, which only
//! chat_server and chat_admin hold) and dated: a pod obeys only a message
//! whose signature checks and that is less than [`MAX_AGE`] old, so neither
//! a Redis password nor a captured message is enough to end anyone's
//! sessions. Refused ones are counted
//! (`chatp_admin_messages_refused_total`) and ignored.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::outbox::Outbox;
use crate::protocol::{self, text};
use crate::redis_store::Keys;

/// The format of a sealed message (its first line).
const VERSION: &str = "v1";

/// A message older (or further in the future, clocks differing) than this
/// is not obeyed: a captured one cannot be replayed later.
pub const MAX_AGE: Duration = Duration::from_secs(60);

/// Why a message on the admin channel was not obeyed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Malformed,
    BadSignature,
    Stale,
}

impl Refused {
    /// As `chatp_admin_messages_refused_total` labels it.
    pub fn label(self) -> &'static str {
        match self {
            Refused::Malformed => "malformed",
            Refused::BadSignature => "bad_signature",
            Refused::Stale => "stale",
        }
    }
}

fn signature(key: &[u8], ms: u128, payload: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(ms.to_string().as_bytes());
    mac.update(b"\n");
    mac.update(payload.as_bytes());
    mac
}

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
    /// `origin \n reason \n except-session-or-empty \n user`, unsigned.
    fn encode(&self) -> String {
        let except = self.except_session.map(|s| s.to_string()).unwrap_or_default();
        format!("{}\n{}\n{except}\n{}", self.origin, self.reason.code(), self.user)
    }

    fn decode(payload: &str) -> Option<EndSessions> {
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

    /// The message as published: `v1 \n unix-ms \n hex(HMAC(key, unix-ms
    /// \n payload)) \n payload`.
    pub fn seal(&self, key: &[u8], now: SystemTime) -> String {
        let ms = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
        let payload = self.encode();
        let mac = signature(key, ms, &payload).finalize().into_bytes();
        format!("{VERSION}\n{ms}\n{}\n{payload}", hex::encode(mac))
    }

    /// The message in `sealed`, if it is well formed, signed with `key` and
    /// dated within [`MAX_AGE`] of `now`.
    pub fn open(sealed: &str, key: &[u8], now: SystemTime) -> Result<EndSessions, Refused> {
        let mut parts = sealed.splitn(4, '\n');
        let (Some(VERSION), Some(ms), Some(mac), Some(payload)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Refused::Malformed);
        };
        let ms: u128 = ms.parse().map_err(|_| Refused::Malformed)?;
        let mac = hex::decode(mac).map_err(|_| Refused::Malformed)?;
        signature(key, ms, payload).verify_slice(&mac).map_err(|_| Refused::BadSignature)?;
        let now_ms = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
        if now_ms.abs_diff(ms) > MAX_AGE.as_millis() {
            return Err(Refused::Stale);
        }
        EndSessions::decode(payload).ok_or(Refused::Malformed)
    }

    /// Tells every pod (`chat:admin`), signed with `key`; how many heard it.
    pub fn publish(&self, conn: &mut impl redis::ConnectionLike, keys: &Keys, key: &[u8]) -> redis::RedisResult<i64> {
        redis::cmd("PUBLISH").arg(keys.admin_channel()).arg(self.seal(key, SystemTime::now())).query(conn)
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
        assert_eq!(EndSessions::decode(&e.encode()), Some(e.clone()));
        assert_eq!(EndSessions::decode("chat_admin\nlater\n\nb"), None);
        // Sealed: opened with the key, within the age; refused otherwise.
        let now = SystemTime::now();
        let sealed = e.seal(b"k1", now);
        assert_eq!(EndSessions::open(&sealed, b"k1", now + Duration::from_secs(5)), Ok(e.clone()));
        assert_eq!(EndSessions::open(&sealed, b"k2", now), Err(Refused::BadSignature));
        assert_eq!(EndSessions::open(&sealed, b"k1", now + MAX_AGE * 2), Err(Refused::Stale));
        // Another user in the payload (its last line), the MAC untouched.
        let forged = format!("{}\nceo", sealed.strip_suffix("\nb").expect("payload last"));
        assert_eq!(EndSessions::open(&forged, b"k1", now), Err(Refused::BadSignature));
        assert_eq!(EndSessions::open(&e.encode(), b"k1", now), Err(Refused::Malformed));
        assert_eq!(EndSessions::open("v1\nx\ny\nz", b"k1", now), Err(Refused::Malformed));
        assert_eq!(EndSessions::decode("chat_admin\ndisabled\nx\nb"), None);
        assert_eq!(EndSessions::decode("chat_admin\ndisabled\n\n"), None);
    }
}
