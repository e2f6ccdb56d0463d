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
        if let Some((user, success_line)) = attempt {
            match ctx.db.create_session(user.id, &ctx.pod_id) {
                Ok(session_id) => {
                    conn.send(success_line)?;
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

/// A user whose credentials passed, and the `AUTH_SUCCESS` line to send
/// once their session is open.
type Accepted = Option<(User, String)>;

/// `Ok(None)`: the attempt failed and the client was told why.
fn login(ctx: &Context, conn: &mut Connection, peer: SocketAddr) -> Step<Accepted> {
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
            if let Some(new_hash) = upgrade {
                match ctx.db.upgrade_password_hash(rec.id, &rec.password_hash, &new_hash) {
                    Ok(()) => info!("auth {peer}: upgraded {}'s legacy SHA-256 hash to Argon2id", rec.username),
                    Err(e) => warn!("auth {peer}: could not upgrade {}'s legacy hash: {e}", rec.username),
                }
            }
            info!("auth {peer}: login ok for {}", rec.username);
            Ok(Some((User { id: rec.id, name: rec.username }, protocol::auth_success(text::LOGIN_OK))))
        }
        _ => {
            info!("auth {peer}: login failed for {username:?}");
            conn.send(protocol::auth_failed(text::INVALID_CREDENTIALS))?;
            Ok(None)
        }
    }
}

fn signup(ctx: &Context, conn: &mut Connection, peer: SocketAddr) -> Step<Accepted> {
    let (username, password) = read_credentials(conn, protocol::SIGNUP_PROMPT)?;
    let refuse = |conn: &mut Connection, reason: &str| -> Step<Accepted> {
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
            let line = protocol::signup_success(&username);
            Ok(Some((User { id, name: username }, line)))
        }
        Ok(SignupOutcome::UsernameTaken) => refuse(conn, text::USERNAME_TAKEN),
        Err(e) => {
            error!("auth {peer}: signup of {username:?} failed: {e}");
            conn.send(protocol::auth_failed(text::AUTH_UNAVAILABLE))?;
            Ok(None)
        }
    }
}
