//! Section 1 of the protocol: login and signup, until one succeeds.
//!
//! Against abuse: the caller sets a deadline on the connection
//! (`AUTH_TIMEOUT_SECS`); after `LOGIN_ATTEMPTS_PER_CONNECTION` failed
//! attempts the connection is closed; attempts on a name that keeps failing
//! wait longer each time ([`LoginThrottle`]); a hash that cannot be computed
//! in time is refused as busy. Passwords are never logged, and neither is a
//! name that might be one (unknown names, names that failed validation).

use std::net::SocketAddr;
use std::time::Instant;

use log::{debug, error, info, warn};

use crate::config::Registration;
use crate::connection::{Connection, Ended, Step};
use crate::db_manager::SignupOutcome;
use crate::metrics::METRICS;
use crate::passwords::Verdict;
use crate::protocol::{self, text, AuthChoice, LastSeen};

use super::session::User;
use super::Context;

pub use super::login_throttle::LoginThrottle;

/// A logged-in user, their `sessions` row, and for a resumed protocol-2
/// session, from where to replay what they missed.
pub struct LoggedIn {
    pub user: User,
    pub session_id: i32,
    pub resumed_after: Option<LastSeen>,
}

/// Runs authentication.
pub fn authenticate(ctx: &Context, conn: &mut Connection, peer: SocketAddr) -> Step<LoggedIn> {
    conn.send(protocol::AUTH_REQUEST)?;
    let mut failures = 0;
    let mut invite: Option<String> = None;
    loop {
        let choice = conn.read_line()?;
        let speaks_sessions = conn.outbox().speaks_sessions();
        let attempt = match protocol::parse_auth_choice(&choice) {
            AuthChoice::Quit => return Err(Ended::Logout),
            AuthChoice::Login => login(ctx, conn, peer)?,
            AuthChoice::Signup => signup(ctx, conn, peer, invite.take().as_deref())?,
            AuthChoice::Hello(v) if v >= protocol::PROTOCOL_VERSION && !speaks_sessions => {
                conn.outbox().set_speaks_sessions();
                conn.send(protocol::hello())?;
                conn.send(protocol::registration(ctx.registration.as_str()))?;
                continue;
            }
            AuthChoice::Invite(code) if speaks_sessions => {
                invite = Some(code);
                continue;
            }
            AuthChoice::Resume { username, token, last } if speaks_sessions => {
                resume(ctx, peer, &username, &token, last)
            }
            AuthChoice::Hello(_) | AuthChoice::Resume { .. } | AuthChoice::Invite(_) | AuthChoice::Invalid => {
                conn.send(protocol::auth_failed(text::INVALID_CHOICE))?;
                continue;
            }
        };
        let result = match &attempt {
            Attempt::Accepted { signup: true, .. } => "signup",
            Attempt::Accepted { .. } => "ok",
            Attempt::Resumed { .. } => "resumed",
            Attempt::Failed(_) => "failed",
            Attempt::Refused(_) => "refused",
        };
        METRICS.logins.with_label_values(&[result]).inc();
        let (user, success_line, legacy_upgrade, resumed_after) = match attempt {
            Attempt::Accepted { user, success_line, legacy_upgrade, .. } => (user, success_line, legacy_upgrade, None),
            Attempt::Resumed { user, after } => (user, protocol::auth_success(text::RESUMED), None, Some(after)),
            Attempt::Failed(reason) => {
                failures += 1;
                if failures >= ctx.login_attempts_per_connection {
                    info!("auth {peer}: {failures} failed attempts; closing");
                    conn.send(protocol::auth_failed(text::TOO_MANY_FAILURES))?;
                    return Err(Ended::Closed("too many failed attempts".into()));
                }
                conn.send(protocol::auth_failed(&reason))?;
                continue;
            }
            Attempt::Refused(reason) => {
                conn.send(protocol::auth_failed(&reason))?;
                continue;
            }
        };
        match ctx.db.create_session(user.id, &ctx.pod_id) {
            Ok(session_id) => {
                conn.send(success_line)?;
                if let Some((old, new)) = legacy_upgrade {
                    upgrade_legacy_hash(ctx, peer, &user, &old, &new);
                }
                return Ok(LoggedIn { user, session_id, resumed_after });
            }
            Err(e) => {
                error!("auth {peer}: cannot open a session for {}: {e}", user.name);
                conn.send(protocol::auth_failed(text::AUTH_UNAVAILABLE))?;
            }
        }
    }
}

fn read_credentials(conn: &mut Connection, prompt: &str) -> Step<(String, String)> {
    conn.send(prompt)?;
    let username = conn.read_line()?;
    let password = conn.read_line()?;
    Ok((username, password))
}

/// How one login or signup attempt ended.
enum Attempt {
    /// The credentials passed.
    Accepted {
        user: User,
        /// The `AUTH_SUCCESS` line, sent once their session is open.
        success_line: String,
        /// (legacy SHA-256 hash checked, its Argon2id replacement): stored
        /// only once the login has fully succeeded.
        legacy_upgrade: Option<(String, String)>,
        /// A new account rather than a login.
        signup: bool,
    },
    /// A resume token was taken: replay after `after`.
    Resumed { user: User, after: LastSeen },
    /// A failed login or resume (counts against the connection).
    Failed(String),
    /// A refused signup, or no decision (PostgreSQL or the hashing workers
    /// could not answer): does not count.
    Refused(String),
}

/// Replaces a legacy hash after a successful login (unless
/// `LEGACY_PASSWORD_UPGRADE=off` keeps them for a rollback to Python chatp).
fn upgrade_legacy_hash(ctx: &Context, peer: SocketAddr, user: &User, old: &str, new: &str) {
    if !ctx.upgrade_legacy_hashes {
        return;
    }
    match ctx.db.upgrade_password_hash(user.id, old, new) {
        Ok(()) => info!("auth {peer}: upgraded {}'s legacy SHA-256 hash to Argon2id", user.name),
        Err(e) => warn!("auth {peer}: could not upgrade {}'s legacy hash: {e}", user.name),
    }
}

fn login(ctx: &Context, conn: &mut Connection, peer: SocketAddr) -> Step<Attempt> {
    let (username, password) = read_credentials(conn, protocol::LOGIN_PROMPT)?;
    let delay = ctx.login_throttle.delay(&username, Instant::now());
    if !delay.is_zero() {
        std::thread::sleep(delay);
    }
    let record = match ctx.db.find_user(&username) {
        Ok(r) => r,
        Err(e) => {
            error!("auth {peer}: login failed: {e}");
            return Ok(Attempt::Refused(text::AUTH_UNAVAILABLE.into()));
        }
    };
    let verdict = ctx.hasher.verify(&password, record.as_ref().map(|r| r.password_hash.as_str()));
    match (record, verdict) {
        (_, Verdict::Busy) => {
            warn!("auth {peer}: login refused: hashing workers busy");
            Ok(Attempt::Refused(text::AUTH_BUSY.into()))
        }
        (Some(rec), Verdict::Valid { .. }) if rec.disabled => {
            // Said only to whoever knows the password.
            info!("auth {peer}: login refused: {} is disabled", rec.username);
            Ok(Attempt::Refused(text::ACCOUNT_DISABLED.into()))
        }
        (Some(rec), Verdict::Valid { upgrade }) => {
            ctx.login_throttle.succeeded(&username);
            info!("auth {peer}: login ok for {}", rec.username);
            Ok(Attempt::Accepted {
                user: User { id: rec.id, name: rec.username },
                success_line: protocol::auth_success(text::LOGIN_OK),
                legacy_upgrade: upgrade.map(|new| (rec.password_hash, new)),
                signup: false,
            })
        }
        (record, _) => {
            ctx.login_throttle.failed(&username, Instant::now());
            match record {
                // A real name, so not a password typed in the wrong field.
                Some(rec) => info!("auth {peer}: wrong password for {}", rec.username),
                None => debug!("auth {peer}: login failed for a name that does not exist"),
            }
            Ok(Attempt::Failed(text::INVALID_CREDENTIALS.into()))
        }
    }
}

/// `RESUME`: no password, no hashing; the token is taken (single use).
fn resume(ctx: &Context, peer: SocketAddr, username: &str, token: &str, last: LastSeen) -> Attempt {
    match ctx.db.take_resume_token(username, token) {
        Ok(Some(r)) => {
            info!("auth {peer}: session of {} resumed", r.username);
            let after = LastSeen {
                private: last.private.max(r.baseline.private),
                broadcast: last.broadcast.max(r.baseline.broadcast),
                group: last.group.max(r.baseline.group),
            };
            Attempt::Resumed { user: User { id: r.user_id, name: r.username }, after }
        }
        Ok(None) => {
            info!("auth {peer}: resume refused (unknown, used or expired token)");
            Attempt::Failed(text::RESUME_REFUSED.into())
        }
        Err(e) => {
            error!("auth {peer}: resume failed: {e}");
            Attempt::Refused(text::AUTH_UNAVAILABLE.into())
        }
    }
}

fn signup(ctx: &Context, conn: &mut Connection, peer: SocketAddr, invite: Option<&str>) -> Step<Attempt> {
    let (username, password) = read_credentials(conn, protocol::SIGNUP_PROMPT)?;
    // Who may sign up, before anything costs a hash.
    let invite = match (ctx.registration, invite) {
        (Registration::Open, _) => None,
        (Registration::Closed, _) => {
            info!("auth {peer}: signup refused: registration closed");
            return Ok(Attempt::Refused(text::SIGNUP_CLOSED.into()));
        }
        (Registration::Invite, None) => {
            info!("auth {peer}: signup refused: no invite code");
            let reason =
                if conn.outbox().speaks_sessions() { text::INVITE_REQUIRED } else { text::INVITE_REQUIRED_OLD_CLIENT };
            return Ok(Attempt::Refused(reason.into()));
        }
        (Registration::Invite, Some(code)) => Some(code),
    };
    if let Err(reason) = protocol::validate_username(&username) {
        // Not logged with the name: it may be a password.
        info!("auth {peer}: signup refused: invalid name");
        return Ok(Attempt::Refused(reason));
    }
    let refuse = |reason: &str| -> Step<Attempt> {
        info!("auth {peer}: signup of {username:?} refused: {reason}");
        Ok(Attempt::Refused(reason.into()))
    };
    if password.is_empty() {
        return refuse(text::PASSWORD_EMPTY);
    }
    // Cheap check first: no hashing for a name that is taken.
    match ctx.db.username_taken(&username) {
        Ok(true) => return refuse(text::USERNAME_TAKEN),
        Ok(false) => {}
        Err(e) => {
            error!("auth {peer}: signup of {username:?} failed: {e}");
            return Ok(Attempt::Refused(text::AUTH_UNAVAILABLE.into()));
        }
    }
    let Some(hash) = ctx.hasher.hash(&password) else {
        warn!("auth {peer}: signup refused: hashing workers busy");
        return Ok(Attempt::Refused(text::AUTH_BUSY.into()));
    };
    match ctx.db.create_user(&username, &hash, invite) {
        Ok(SignupOutcome::Created(id)) => {
            info!("auth {peer}: signup ok for {username}");
            let success_line = protocol::signup_success(&username);
            Ok(Attempt::Accepted {
                user: User { id, name: username },
                success_line,
                legacy_upgrade: None,
                signup: true,
            })
        }
        Ok(SignupOutcome::UsernameTaken) => refuse(text::USERNAME_TAKEN),
        Ok(SignupOutcome::InviteInvalid) => refuse(text::INVITE_INVALID),
        Err(e) => {
            error!("auth {peer}: signup of {username:?} failed: {e}");
            Ok(Attempt::Refused(text::AUTH_UNAVAILABLE.into()))
        }
    }
}
