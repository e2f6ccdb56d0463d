//! Protocol 2: a user changes their own password from the main menu
//! (`PASSWORD`). The current password is checked as a login is; the new one
//! ends the user's other sessions on every pod and their resume tokens,
//! and this session goes on.

use log::{error, info, warn};

use crate::connection::Step;
use crate::passwords::Verdict;
use crate::protocol::{self, text};
use crate::session_end::{EndReason, EndSessions};

use super::session::Session;

pub fn run(s: &mut Session) -> Step {
    if !s.conn.outbox().speaks_sessions() {
        return s.conn.send(protocol::invalid_option());
    }
    s.conn.send(protocol::PASSWORD_PROMPT)?;
    let current = s.conn.read_line()?;
    let new = s.conn.read_line()?;
    let reply = change(s, &current, &new);
    s.conn.send(reply)
}

/// The answer line: `PASSWORD_CHANGED` or `PASSWORD_FAILED:<why>`.
fn change(s: &Session, current: &str, new: &str) -> String {
    let (ctx, name) = (s.ctx, s.user.name.as_str());
    if new.is_empty() {
        return protocol::password_failed(text::PASSWORD_EMPTY);
    }
    let stored = match ctx.db.find_user(name) {
        Ok(Some(rec)) => rec.password_hash,
        Ok(None) => return protocol::password_failed(text::ENDED_DELETED),
        Err(e) => {
            error!("{name}: password change failed: {e}");
            return protocol::password_failed(text::AUTH_UNAVAILABLE);
        }
    };
    match ctx.hasher.verify(current, Some(&stored)) {
        Verdict::Valid { .. } => {}
        Verdict::Busy => return protocol::password_failed(text::AUTH_BUSY),
        _ => {
            info!("{name}: password change refused: wrong current password");
            return protocol::password_failed(text::PASSWORD_WRONG);
        }
    }
    let Some(hash) = ctx.hasher.hash(new) else {
        return protocol::password_failed(text::AUTH_BUSY);
    };
    match ctx.db.set_password_hash(name, &hash, s.resume_token.as_deref()) {
        Ok(true) => {}
        Ok(false) => return protocol::password_failed(text::ENDED_DELETED),
        Err(e) => {
            error!("{name}: password change failed: {e}");
            return protocol::password_failed(text::AUTH_UNAVAILABLE);
        }
    }
    info!("{name} changed their password");
    let end = EndSessions {
        origin: ctx.pod_id.clone(),
        reason: EndReason::PasswordChanged,
        except_session: s.conn.outbox().session_id(),
        user: name.to_string(),
    };
    if let Err(e) = ctx.router.end_sessions(&end) {
        // Their resume tokens are gone; sessions on other pods end at the
        // next reconnect.
        warn!("{name}: other pods not told to end their sessions: {e}");
    }
    protocol::password_changed()
}
