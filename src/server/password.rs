//! Protocol 2: a user changes their own password from the main menu
//! (`PASSWORD`). The current password is checked as a login is; the new one
//! ends the user's other sessions on every pod and their resume tokens,
//! and this session goes on. Wrong current passwords are throttled with
//! failed logins on the same name (a stolen resume token is no faster way to
//! guess), and the third in a session ends it.

use log::{error, info, warn};

use crate::connection::{Ended, Step};
use crate::passwords::Verdict;
use crate::protocol::{self, text};
use crate::session_end::{EndReason, EndSessions};

use super::session::Session;
use super::throttle::Admission;

/// Wrong current passwords one session may give before it is ended.
const WRONG_PASSWORDS_PER_SESSION: u32 = 3;

pub fn run(s: &mut Session) -> Step {
    if !s.conn.outbox().speaks_sessions() {
        return s.conn.send(protocol::invalid_option());
    }
    if s.conn.refuses_passwords() {
        return s.conn.send(protocol::password_failed(text::PASSWORD_NEEDS_TLS));
    }
    s.conn.send(protocol::PASSWORD_PROMPT)?;
    let current = s.conn.read_line()?;
    let new = s.conn.read_line()?;
    let reply = change(s, &current, &new);
    if s.wrong_passwords >= WRONG_PASSWORDS_PER_SESSION {
        info!("{}: {} wrong current passwords; ending the session", s.user.name, s.wrong_passwords);
        // Whoever guesses with a stolen token cannot resume and go on.
        if let Some(token) = s.resume_token.take() {
            if let Err(e) = s.ctx.db.revoke_resume_token(&token) {
                warn!("{}: resume token not revoked: {e}", s.user.name);
            }
        }
        s.conn.send(protocol::password_failed(text::PASSWORD_TOO_MANY_WRONG))?;
        return Err(Ended::Closed("too many wrong passwords".into()));
    }
    s.conn.send(reply)
}

/// The answer line: `PASSWORD_CHANGED` or `PASSWORD_FAILED:<why>`.
fn change(s: &mut Session, current: &str, new: &str) -> String {
    let (ctx, name) = (s.ctx, s.user.name.clone());
    let name = name.as_str();
    if new.is_empty() {
        return protocol::password_failed(text::PASSWORD_EMPTY);
    }
    let admitted = ctx.throttle.login_attempt(name);
    match admitted {
        Admission::Go(wait) if wait.is_zero() => {}
        Admission::Go(wait) => std::thread::sleep(wait),
        Admission::Refused(_) => {
            s.wrong_passwords += 1;
            return protocol::password_failed(text::TOO_MANY_ATTEMPTS);
        }
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
            ctx.throttle.login_failed(name, admitted);
            s.wrong_passwords += 1;
            return protocol::password_failed(text::PASSWORD_WRONG);
        }
    }
    ctx.throttle.login_succeeded(name);
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
