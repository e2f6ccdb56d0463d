//! Accounts as an administrator and a user's own password screen see them:
//! invite codes, disabling, deleting, password changes, the user list.
//! What ends live sessions is the caller's (Redis reaches every pod); here
//! only the rows change, and the resume tokens that would bring a session
//! back are dropped in the same statement, which also moves the user's
//! session epoch: a login or resume in flight sees it once registered and
//! ends itself (`server::user_thread`).

use super::resume::token_hash;
use super::{DbManager, StoreResult};

/// One row of `chat_admin list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub username: String,
    /// `YYYY-MM-DD HH:MM:SS` (UTC).
    pub created_at: String,
    pub last_login: Option<String>,
    pub disabled: bool,
}

const STAMP: &str = "'YYYY-MM-DD HH24:MI:SS'";

impl DbManager {
    /// Replaces `username`'s password hash and drops their resume tokens
    /// but `keep_token` (the session that changed it). `false`: no such user.
    pub fn set_password_hash(&self, username: &str, hash: &str, keep_token: Option<&str>) -> StoreResult<bool> {
        let keep = keep_token.map(token_hash).unwrap_or_default();
        let row = self.conn()?.query_opt(
            "WITH u AS (UPDATE users SET password_hash = $2, session_epoch = COALESCE(session_epoch, 0) + 1 \
                        WHERE username = $1 RETURNING user_id), \
                  t AS (DELETE FROM chatp_resume_tokens WHERE user_id IN (SELECT user_id FROM u) \
                        AND token_hash <> $3) \
             SELECT user_id FROM u",
            &[&username, &hash, &keep],
        )?;
        Ok(row.is_some())
    }

    /// Disables (or enables again) `username`; disabling drops their resume
    /// tokens. `false`: no such user.
    pub fn set_disabled(&self, username: &str, disabled: bool) -> StoreResult<bool> {
        let row = self.conn()?.query_opt(
            "WITH u AS (UPDATE users SET disabled_at = CASE WHEN $2 THEN COALESCE(disabled_at, CURRENT_TIMESTAMP) END, \
                        session_epoch = COALESCE(session_epoch, 0) + CASE WHEN $2 THEN 1 ELSE 0 END \
                        WHERE username = $1 RETURNING user_id), \
                  t AS (DELETE FROM chatp_resume_tokens WHERE $2 AND user_id IN (SELECT user_id FROM u)) \
             SELECT user_id FROM u",
            &[&username, &disabled],
        )?;
        Ok(row.is_some())
    }

    /// Deletes `username`. Their groups are left first (an admin's role
    /// passes to the longest member; a group left empty closes); then the
    /// row goes with what the original schema ties to it: sessions, resume
    /// tokens, their private conversations (both sides), the broadcasts and
    /// group messages they sent. Groups they created stay. `false`: no such
    /// user.
    pub fn delete_user(&self, username: &str) -> StoreResult<bool> {
        let Some(id) = self.find_user_id(username)? else { return Ok(false) };
        let groups = self.conn()?.query("SELECT group_id FROM group_members WHERE user_id = $1", &[&id])?;
        for g in groups {
            self.leave_group(g.get(0), id)?;
        }
        Ok(self.conn()?.execute("DELETE FROM users WHERE user_id = $1", &[&id])? == 1)
    }

    /// Every account, by name.
    pub fn accounts(&self) -> StoreResult<Vec<Account>> {
        let rows = self.conn()?.query(
            &format!(
                "SELECT username, to_char(created_at, {STAMP}), to_char(last_login, {STAMP}), disabled_at IS NOT NULL \
                 FROM users ORDER BY username"
            ),
            &[],
        )?;
        Ok(rows
            .iter()
            .map(|r| Account {
                username: r.get(0),
                created_at: r.get::<_, Option<String>>(1).unwrap_or_default(),
                last_login: r.get(2),
                disabled: r.get(3),
            })
            .collect())
    }

    /// `count` new one-time invite codes, valid for `hours` (`None`: until
    /// used). Only their hashes are stored: this is the one time they are
    /// seen.
    pub fn create_invites(&self, count: usize, hours: Option<u32>, note: Option<&str>) -> StoreResult<Vec<String>> {
        let codes: Vec<String> = (0..count).map(|_| new_code()).collect();
        let hashes: Vec<String> = codes.iter().map(|c| token_hash(c)).collect();
        let hours = hours.map(f64::from);
        self.conn()?.execute(
            "INSERT INTO chatp_invites (code_hash, expires_at, note) \
             SELECT h, CURRENT_TIMESTAMP + make_interval(hours => $2::float8::int4), $3 FROM unnest($1::text[]) AS h",
            &[&hashes, &hours, &note],
        )?;
        Ok(codes)
    }
}

/// 10 random bytes as 16 letters and digits in groups of four
/// (`k7qm-2xdp-...`): easy to read out, 80 bits.
fn new_code() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let code = crate::passwords::random_text(ALPHABET, 16);
    code.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join("-")
}
