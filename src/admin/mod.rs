//! `chat_admin`: accounts from the command line, against the database (and
//! Redis, to end live sessions on every pod at once). Every result is one
//! JSON object per line on stdout, for scripts; errors go to stderr.

mod command;

use std::io::BufRead;

use serde_json::{json, Value};

use crate::config::AdminConfig;
use crate::db_manager::{DbManager, SignupOutcome};
use crate::redis_store::{Keys, RedisConnector};
use crate::session_end::{EndReason, EndSessions};

pub use command::{parse, Command, USAGE};

/// How a command failed, and the exit code it gives.
#[derive(Debug)]
pub enum Failure {
    /// Bad arguments (exit 2).
    Usage(String),
    /// The command could not be done: no such user, a name taken, the
    /// database unreachable (exit 1).
    Failed(String),
    /// The database changed, but the pods could not be told to end the
    /// user's live sessions (exit 3): they end at their next reconnect.
    PodsNotTold { done: Value, why: String },
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Usage(_) => 2,
            Failure::Failed(_) => 1,
            Failure::PodsNotTold { .. } => 3,
        }
    }
}

/// What a run printed: result lines.
pub type Output = Vec<Value>;

/// Runs `cmd`; `stdin` gives a password for `--password-stdin`.
pub fn run(cfg: &AdminConfig, cmd: &Command, stdin: &mut dyn BufRead) -> Result<Output, Failure> {
    let db = DbManager::connect(&cfg.db, "chat_admin").map_err(|e| {
        Failure::Failed(format!("cannot reach PostgreSQL at {}/{}: {e}", cfg.db.address(), cfg.db.name))
    })?;
    let failed = |e: crate::db_manager::StoreError| Failure::Failed(e.to_string());
    let no_user = |name: &str| Failure::Failed(format!("no user named {name:?}"));
    match cmd {
        Command::AddUser { name, password_stdin } => {
            crate::protocol::validate_username(name).map_err(Failure::Failed)?;
            let (password, generated) = password(*password_stdin, stdin)?;
            let hash = crate::passwords::hash_password(&password);
            match db.create_user(name, &hash, None).map_err(failed)? {
                SignupOutcome::Created(_) => {}
                SignupOutcome::UsernameTaken | SignupOutcome::InviteInvalid => {
                    return Err(Failure::Failed(format!("a user named {name:?} (or one that reads the same) exists")))
                }
            }
            let mut out = json!({"action": "added", "user": name});
            if generated {
                out["password"] = json!(password);
            }
            Ok(vec![out])
        }
        Command::ResetPassword { name, password_stdin } => {
            let (password, generated) = password(*password_stdin, stdin)?;
            let hash = crate::passwords::hash_password(&password);
            if !db.set_password_hash(name, &hash, None).map_err(failed)? {
                return Err(no_user(name));
            }
            let mut out = json!({"action": "password_reset", "user": name});
            if generated {
                out["password"] = json!(password);
            }
            end_sessions(cfg, name, EndReason::PasswordReset, out)
        }
        Command::Disable { name } => {
            if !db.set_disabled(name, true).map_err(failed)? {
                return Err(no_user(name));
            }
            end_sessions(cfg, name, EndReason::Disabled, json!({"action": "disabled", "user": name}))
        }
        Command::Enable { name } => {
            if !db.set_disabled(name, false).map_err(failed)? {
                return Err(no_user(name));
            }
            Ok(vec![json!({"action": "enabled", "user": name})])
        }
        Command::Delete { name } => {
            if !db.delete_user(name).map_err(failed)? {
                return Err(no_user(name));
            }
            end_sessions(cfg, name, EndReason::Deleted, json!({"action": "deleted", "user": name}))
        }
        Command::List => Ok(db
            .accounts()
            .map_err(failed)?
            .into_iter()
            .map(|a| {
                json!({
                    "user": a.username,
                    "created_at": a.created_at,
                    "last_login": a.last_login,
                    "disabled": a.disabled,
                })
            })
            .collect()),
        Command::Invite { count, expires_hours, note } => Ok(db
            .create_invites(*count, *expires_hours, note.as_deref())
            .map_err(failed)?
            .into_iter()
            .map(|code| json!({"invite": code, "expires_in_hours": expires_hours, "note": note}))
            .collect()),
    }
}

/// The password from stdin, or a new random one (`true`: generated).
fn password(from_stdin: bool, stdin: &mut dyn BufRead) -> Result<(String, bool), Failure> {
    if from_stdin {
        let mut line = String::new();
        stdin.read_line(&mut line).map_err(|e| Failure::Failed(format!("reading the password: {e}")))?;
        let password = line.trim_end_matches(['\n', '\r']).to_string();
        if password.is_empty() {
            return Err(Failure::Failed("the password on stdin is empty".into()));
        }
        return Ok((password, false));
    }
    // 20 of 57 letters and digits a person can type apart: 116 bits.
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    Ok((crate::passwords::random_text(ALPHABET, 20), true))
}

/// Tells every pod to end `user`'s sessions; `done` reports how many pods
/// heard it.
fn end_sessions(cfg: &AdminConfig, user: &str, reason: EndReason, mut done: Value) -> Result<Output, Failure> {
    let end = EndSessions { origin: "chat_admin".into(), reason, except_session: None, user: user.into() };
    let told = RedisConnector::new(&cfg.redis).map_err(|e| e.to_string()).and_then(|c| {
        let mut conn = c.connect().map_err(|e| e.to_string())?;
        end.publish(&mut conn, &Keys::new(&cfg.redis.key_prefix), &cfg.admin_channel_key).map_err(|e| e.to_string())
    });
    match told {
        Ok(pods) => {
            done["pods_told"] = json!(pods);
            Ok(vec![done])
        }
        Err(why) => Err(Failure::PodsNotTold {
            done,
            why: format!(
                "Redis at {}:{} unreachable ({why}): live sessions end at their next reconnect",
                cfg.redis.host, cfg.redis.port
            ),
        }),
    }
}
