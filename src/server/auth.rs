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

use crate::connection::{Connection, Ended, Step};
use crate::db_manager::SignupOutcome;
use crate::passwords::Verdict;
use crate::protocol::{self, input, text};

use super::session::User;
use super::Context;

pub use super::login_throttle::LoginThrottle;

/// Runs authentication; returns the user and their `sessions` row id.
pub fn authenticate(ctx: &Context, conn: &mut Connection, peer: SocketAddr) -> Step<(User, i32)> {
    conn.send(protocol::AUTH_REQUEST)?;
    let mut failures = 0;
    loop {
        let choice = conn.read_line()?;
        let attempt = match choice.as_str() {
            "" => return Err(Ended::Logout),
            input::LOGIN => login(ctx, conn, peer)?,
            input::SIGNUP => signup(ctx, conn, peer)?,
            _ => {
                conn.send(protocol::auth_failed(text::INVALID_CHOICE))?;
                continue;
            }
        };
        let (user, success_line, legacy_upgrade) = match attempt {
            Attempt::Accepted { user, success_line, legacy_upgrade } => (user, success_line, legacy_upgrade),
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
                return Ok((user, session_id));
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
    },
    /// A failed login (counts against the connection).
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
        (Some(rec), Verdict::Valid { upgrade }) => {
            ctx.login_throttle.succeeded(&username);
            info!("auth {peer}: login ok for {}", rec.username);
            Ok(Attempt::Accepted {
                user: User { id: rec.id, name: rec.username },
                success_line: protocol::auth_success(text::LOGIN_OK),
                legacy_upgrade: upgrade.map(|new| (rec.password_hash, new)),
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

fn signup(ctx: &Context, conn: &mut Connection, peer: SocketAddr) -> Step<Attempt> {
    let (username, password) = read_credentials(conn, protocol::SIGNUP_PROMPT)?;
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
    match ctx.db.create_user(&username, &hash) {
        Ok(SignupOutcome::Created(id)) => {
            info!("auth {peer}: signup ok for {username}");
            let success_line = protocol::signup_success(&username);
            Ok(Attempt::Accepted { user: User { id, name: username }, success_line, legacy_upgrade: None })
        }
        Ok(SignupOutcome::UsernameTaken) => refuse(text::USERNAME_TAKEN),
        Err(e) => {
            error!("auth {peer}: signup of {username:?} failed: {e}");
            Ok(Attempt::Refused(text::AUTH_UNAVAILABLE.into()))
        }
    }
}
