//! Section 1 of the protocol: login and signup, until one succeeds.
//! Passwords are never logged.

use std::net::SocketAddr;

use log::{error, info, warn};

use crate::connection::{Connection, Ended, Step};
use crate::db_manager::SignupOutcome;
use crate::passwords::Verdict;
use crate::protocol::{self, input, text};

use super::session::User;
use super::Context;

/// Runs authentication; returns the user and their `sessions` row id.
pub fn authenticate(ctx: &Context, conn: &mut Connection, peer: SocketAddr) -> Step<(User, i32)> {
    conn.send(protocol::AUTH_REQUEST)?;
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
        if let Some(Accepted { user, success_line, legacy_upgrade }) = attempt {
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
}

fn read_credentials(conn: &mut Connection, prompt: &str) -> Step<(String, String)> {
    conn.send(prompt)?;
    let username = conn.read_line()?;
    let password = conn.read_line()?;
    Ok((username, password))
}

/// A user whose credentials passed.
struct Accepted {
    user: User,
    /// The `AUTH_SUCCESS` line, sent once their session is open.
    success_line: String,
    /// (legacy SHA-256 hash checked, its Argon2id replacement): stored only
    /// once the login has fully succeeded.
    legacy_upgrade: Option<(String, String)>,
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

/// `Ok(None)`: the attempt failed and the client was told why.
fn login(ctx: &Context, conn: &mut Connection, peer: SocketAddr) -> Step<Option<Accepted>> {
    let (username, password) = read_credentials(conn, protocol::LOGIN_PROMPT)?;
    let record = match ctx.db.find_user(&username) {
        Ok(r) => r,
        Err(e) => {
            error!("auth {peer}: login of {username:?} failed: {e}");
            conn.send(protocol::auth_failed(text::AUTH_UNAVAILABLE))?;
            return Ok(None);
        }
    };
    let verdict = ctx.hasher.verify(&password, record.as_ref().map(|r| r.password_hash.as_str()));
    match (record, verdict) {
        (Some(rec), Verdict::Valid { upgrade }) => {
            info!("auth {peer}: login ok for {}", rec.username);
            Ok(Some(Accepted {
                user: User { id: rec.id, name: rec.username },
                success_line: protocol::auth_success(text::LOGIN_OK),
                legacy_upgrade: upgrade.map(|new| (rec.password_hash, new)),
            }))
        }
        _ => {
            info!("auth {peer}: login failed for {username:?}");
            conn.send(protocol::auth_failed(text::INVALID_CREDENTIALS))?;
            Ok(None)
        }
    }
}

fn signup(ctx: &Context, conn: &mut Connection, peer: SocketAddr) -> Step<Option<Accepted>> {
    let (username, password) = read_credentials(conn, protocol::SIGNUP_PROMPT)?;
    let refuse = |conn: &mut Connection, reason: &str| -> Step<Option<Accepted>> {
        info!("auth {peer}: signup of {username:?} refused: {reason}");
        conn.send(protocol::auth_failed(reason))?;
        Ok(None)
    };
    if let Err(reason) = protocol::validate_username(&username) {
        return refuse(conn, &reason);
    }
    if password.is_empty() {
        return refuse(conn, text::PASSWORD_EMPTY);
    }
    // Cheap check first: no hashing for a name that is taken.
    match ctx.db.find_user_id(&username) {
        Ok(Some(_)) => return refuse(conn, text::USERNAME_TAKEN),
        Ok(None) => {}
        Err(e) => {
            error!("auth {peer}: signup of {username:?} failed: {e}");
            conn.send(protocol::auth_failed(text::AUTH_UNAVAILABLE))?;
            return Ok(None);
        }
    }
    let hash = ctx.hasher.hash(&password);
    match ctx.db.create_user(&username, &hash) {
        Ok(SignupOutcome::Created(id)) => {
            info!("auth {peer}: signup ok for {username}");
            let success_line = protocol::signup_success(&username);
            Ok(Some(Accepted { user: User { id, name: username }, success_line, legacy_upgrade: None }))
        }
        Ok(SignupOutcome::UsernameTaken) => refuse(conn, text::USERNAME_TAKEN),
        Err(e) => {
            error!("auth {peer}: signup of {username:?} failed: {e}");
            conn.send(protocol::auth_failed(text::AUTH_UNAVAILABLE))?;
            Ok(None)
        }
    }
}
