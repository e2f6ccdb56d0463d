//! Section 1 of the protocol: login and signup, until one succeeds.
//!
//! Against abuse: the caller sets a deadline on the connection
//! (`AUTH_TIMEOUT_SECS`); after `LOGIN_ATTEMPTS_PER_CONNECTION` failed
//! attempts (logins, resumes and sign-ups alike) the connection is closed;
//! attempts on a name that keeps failing are queued one behind the other on
//! every pod ([`Throttle`]); resumes are limited per user; a hash that
//! cannot be computed in time is refused as busy; a user already at
//! `MAX_SESSIONS_PER_USER` gets no more. Passwords are never logged, and
//! neither is a name that might be one (unknown names, names that failed
//! validation).

use std::net::SocketAddr;

use log::{debug, error, info, warn};

use crate::config::Registration;
use crate::connection::{Connection, Ended, Step};
use crate::db_manager::SignupOutcome;
use crate::metrics::METRICS;
use crate::passwords::Verdict;
use crate::protocol::{self, text, AuthChoice, LastSeen};

use super::session::User;
use super::Context;

use super::throttle::Admission;
pub use super::throttle::Throttle;

/// A logged-in user, and for a resumed protocol-2 session, from where to
/// replay what they missed.
pub struct LoggedIn {
    pub user: User,
    pub resumed_after: Option<LastSeen>,
    /// The account's session epoch when the credentials were checked: a
    /// change that ends sessions moves it (checked again once registered).
    pub epoch: i64,
}

/// Runs authentication. The `sessions` row it opens goes to `session_row`
/// as soon as it exists, so that whoever holds that slot closes it.
pub fn authenticate(
    ctx: &Context,
    conn: &mut Connection,
    peer: SocketAddr,
    session_row: &mut Option<i32>,
) -> Step<LoggedIn> {
    conn.send(protocol::AUTH_REQUEST)?;
    let mut failures = 0;
    let mut invite: Option<String> = None;
    loop {
        let choice = conn.read_line()?;
        let speaks_sessions = conn.outbox().speaks_sessions();
        let attempt = match protocol::parse_auth_choice(&choice) {
            AuthChoice::Quit => return Err(Ended::Logout),
            AuthChoice::Login | AuthChoice::Signup if conn.refuses_passwords() => {
                // Asked before the password is sent: it never crosses.
                conn.send(protocol::auth_failed(text::PASSWORD_NEEDS_TLS))?;
                continue;
            }
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
        let (user, success_line, legacy_upgrade, resumed_after, epoch) = match attempt {
            Attempt::Accepted { user, success_line, legacy_upgrade, epoch, .. } => {
                (user, success_line, legacy_upgrade, None, epoch)
            }
            Attempt::Resumed { user, after, epoch } => {
                (user, protocol::auth_success(text::RESUMED), None, Some(after), epoch)
            }
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
        match ctx.db.create_session(user.id, &ctx.pod_id, ctx.max_sessions_per_user) {
            Ok(Some(session_id)) => {
                *session_row = Some(session_id);
                conn.send(success_line)?;
                if let Some((old, new)) = legacy_upgrade {
                    upgrade_legacy_hash(ctx, peer, &user, &old, &new);
                }
                return Ok(LoggedIn { user, resumed_after, epoch });
            }
            Ok(None) => {
                info!("auth {peer}: {} refused: {} sessions already", user.name, ctx.max_sessions_per_user);
                conn.send(protocol::auth_failed(text::TOO_MANY_SESSIONS))?;
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
        /// The account's session epoch when the credentials were checked.
        epoch: i64,
    },
    /// A resume token was taken: replay after `after`.
    Resumed { user: User, after: LastSeen, epoch: i64 },
    /// A failed login, resume or sign-up (counts against the connection).
    Failed(String),
    /// No decision (PostgreSQL or the hashing workers could not answer):
    /// does not count.
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
    let admitted = ctx.throttle.login_attempt(&username);
    match admitted {
        Admission::Go(wait) if wait.is_zero() => {}
        Admission::Go(wait) => std::thread::sleep(wait),
        Admission::Refused(_) => {
            info!("auth {peer}: login refused unchecked: too many attempts on that name");
            return Ok(Attempt::Failed(text::TOO_MANY_ATTEMPTS.into()));
        }
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
            ctx.throttle.login_succeeded(&username);
            info!("auth {peer}: login ok for {}", rec.username);
            Ok(Attempt::Accepted {
                user: User { id: rec.id, name: rec.username },
                success_line: protocol::auth_success(text::LOGIN_OK),
                legacy_upgrade: upgrade.map(|new| (rec.password_hash, new)),
                signup: false,
                epoch: rec.epoch,
            })
        }
        (record, _) => {
            ctx.throttle.login_failed(&username, admitted);
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
    if let Some(limits) = ctx.limits {
        // Before the token is taken: a refused resume can be tried again.
        if let Admission::Refused(after) = ctx.throttle.resume(username, limits.resume) {
            info!("auth {peer}: resume refused for {after:?}: too many resumes of that user");
            return Attempt::Failed(text::TOO_MANY_RESUMES.into());
        }
    }
    match ctx.db.take_resume_token(username, token) {
        Ok(Some(r)) => {
            info!("auth {peer}: session of {} resumed", r.username);
            let after = LastSeen {
                private: last.private.max(r.baseline.private),
                broadcast: last.broadcast.max(r.baseline.broadcast),
                group: last.group.max(r.baseline.group),
            };
            Attempt::Resumed { user: User { id: r.user_id, name: r.username }, after, epoch: r.epoch }
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
    // Every refusal below counts against the connection, as a failed login
    // does. Who may sign up is settled first, before anything reads the name
    // or costs a hash: a bogus invite code gets the same answer, at the same
    // cost, whether the name is taken or free.
    let refuse = |reason: &str| -> Step<Attempt> { Ok(Attempt::Failed(reason.into())) };
    let invite = match (ctx.registration, invite) {
        (Registration::Open, _) => None,
        (Registration::Closed, _) => {
            info!("auth {peer}: signup refused: registration closed");
            return refuse(text::SIGNUP_CLOSED);
        }
        (Registration::Invite, None) => {
            info!("auth {peer}: signup refused: no invite code");
            let reason =
                if conn.outbox().speaks_sessions() { text::INVITE_REQUIRED } else { text::INVITE_REQUIRED_OLD_CLIENT };
            return refuse(reason);
        }
        (Registration::Invite, Some(code)) => match ctx.db.invite_usable(code) {
            Ok(true) => Some(code),
            Ok(false) => {
                info!("auth {peer}: signup refused: invite code unknown, used or expired");
                return refuse(text::INVITE_INVALID);
            }
            Err(e) => {
                error!("auth {peer}: signup failed: {e}");
                return Ok(Attempt::Refused(text::AUTH_UNAVAILABLE.into()));
            }
        },
    };
    if let Err(reason) = protocol::validate_username(&username) {
        // Not logged with the name: it may be a password.
        info!("auth {peer}: signup refused: invalid name");
        return refuse(&reason);
    }
    let refuse_name = |reason: &str| -> Step<Attempt> {
        info!("auth {peer}: signup of {username:?} refused: {reason}");
        refuse(reason)
    };
    if password.is_empty() {
        return refuse_name(text::PASSWORD_EMPTY);
    }
    // Cheap check first: no hashing for a name that is taken.
    match ctx.db.username_taken(&username) {
        Ok(true) => return refuse_name(text::USERNAME_TAKEN),
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
                epoch: 0,
            })
        }
        Ok(SignupOutcome::UsernameTaken) => refuse_name(text::USERNAME_TAKEN),
        Ok(SignupOutcome::InviteInvalid) => refuse_name(text::INVITE_INVALID),
        Err(e) => {
            error!("auth {peer}: signup of {username:?} failed: {e}");
            Ok(Attempt::Refused(text::AUTH_UNAVAILABLE.into()))
        }
    }
}
