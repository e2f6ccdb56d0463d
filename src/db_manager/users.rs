//! Users and their sessions: lookups for login and signup (names unique as
//! people read them), password hashes, the `sessions` rows of live
//! connections.

use std::sync::LazyLock;

use postgres::types::Type;

use super::{is_unique_violation, resume, DbManager, StoreResult};
use crate::protocol::username_key;

/// A user row as authentication needs it.
#[derive(Debug, Clone)]
pub struct UserRecord {
    pub id: i32,
    pub username: String,
    pub password_hash: String,
    /// An administrator disabled the account (`chat_admin disable`).
    pub disabled: bool,
    /// Moves with every change that ends the user's sessions (password
    /// changed or reset, disabled): a login checked against an older epoch
    /// does not stand.
    pub epoch: i64,
}

/// Ended `sessions` rows kept per user (older ones are purged whatever
/// `SESSION_RETENTION_SECS` says): resumes cannot grow the table.
pub const ENDED_SESSIONS_KEPT: i64 = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignupOutcome {
    Created(i32),
    UsernameTaken,
    /// The invite code is unknown, used or expired.
    InviteInvalid,
}

/// Whether a user has the name `$1` or one that reads the same (key `$2`).
const NAME_TAKEN_SQL: &str = "SELECT EXISTS (SELECT 1 FROM users WHERE username = $1 OR username_key = $2)";

impl DbManager {
    // ------------------------------------------------------------ users

    pub fn find_user(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        let row = self.conn()?.query_opt(
            "SELECT user_id, username, password_hash, disabled_at IS NOT NULL, COALESCE(session_epoch, 0) \
             FROM users WHERE username = $1",
            &[&username],
        )?;
        Ok(row.map(|r| UserRecord {
            id: r.get(0),
            username: r.get(1),
            password_hash: r.get(2),
            disabled: r.get(3),
            epoch: r.get(4),
        }))
    }

    /// `user_id`'s session epoch and whether the account is disabled;
    /// `None`: deleted. Takes a share lock on the row for the statement, so
    /// a change being committed to it is waited for, then seen.
    pub fn session_epoch(&self, user_id: i32) -> StoreResult<Option<(i64, bool)>> {
        let row = self.conn()?.query_opt(
            "SELECT COALESCE(session_epoch, 0), disabled_at IS NOT NULL FROM users WHERE user_id = $1 FOR SHARE",
            &[&user_id],
        )?;
        Ok(row.map(|r| (r.get(0), r.get(1))))
    }

    /// Whether an invite code can still sign up an account (it is not
    /// taken here: [`DbManager::create_user`] takes it).
    pub fn invite_usable(&self, code: &str) -> StoreResult<bool> {
        let row = self.conn()?.query_one(
            "SELECT EXISTS (SELECT 1 FROM chatp_invites WHERE code_hash = $1 AND used_at IS NULL \
             AND (expires_at IS NULL OR expires_at > CURRENT_TIMESTAMP))",
            &[&resume::token_hash(code)],
        )?;
        Ok(row.get(0))
    }

    /// Whether a user has this name or one that reads the same
    /// ([`username_key`]).
    pub fn username_taken(&self, username: &str) -> StoreResult<bool> {
        let row = self.conn()?.query_one(NAME_TAKEN_SQL, &[&username, &username_key(username)])?;
        Ok(row.get(0))
    }

    /// Creates a user unless the name, or one that reads the same, exists
    /// (checked under a lock on the key, so two look-alike signups at once
    /// cannot both pass).
    /// With `invite`, the code is taken in the same transaction (one
    /// account per code, however many try it at once).
    pub fn create_user(&self, username: &str, password_hash: &str, invite: Option<&str>) -> StoreResult<SignupOutcome> {
        let key = username_key(username);
        let mut c = self.conn()?;
        let mut tx = c.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock(hashtext('user:' || $1))", &[&key])?;
        let taken = tx.query_one(NAME_TAKEN_SQL, &[&username, &key])?;
        if taken.get(0) {
            return Ok(SignupOutcome::UsernameTaken);
        }
        if let Some(code) = invite {
            let taken = tx.query_opt(
                "UPDATE chatp_invites SET used_at = CURRENT_TIMESTAMP WHERE code_hash = $1 AND used_at IS NULL \
                 AND (expires_at IS NULL OR expires_at > CURRENT_TIMESTAMP) RETURNING code_hash",
                &[&resume::token_hash(code)],
            )?;
            if taken.is_none() {
                return Ok(SignupOutcome::InviteInvalid);
            }
        }
        let res = tx.query_one(
            "INSERT INTO users (username, password_hash, username_key) VALUES ($1, $2, $3) RETURNING user_id",
            &[&username, &password_hash, &key],
        );
        match res {
            Ok(row) => {
                let id: i32 = row.get(0);
                if let Some(code) = invite {
                    tx.execute(
                        "UPDATE chatp_invites SET used_by = $2 WHERE code_hash = $1",
                        &[&resume::token_hash(code), &id],
                    )?;
                }
                tx.commit()?;
                Ok(SignupOutcome::Created(id))
            }
            Err(e) if is_unique_violation(&e) => Ok(SignupOutcome::UsernameTaken),
            Err(e) => Err(e.into()),
        }
    }

    /// Replaces a legacy hash; only if it is still the one that was checked.
    pub fn upgrade_password_hash(&self, user_id: i32, old_hash: &str, new_hash: &str) -> StoreResult<()> {
        self.conn()?.execute(
            "UPDATE users SET password_hash = $3 WHERE user_id = $1 AND password_hash = $2",
            &[&user_id, &old_hash, &new_hash],
        )?;
        Ok(())
    }

    /// The contact list of `user_id`: every other user by name when there
    /// are at most `max`; beyond, the people `user_id` has conversations
    /// with (most recent first), then the others by name, `max` in all, and
    /// how many users are not listed. Each statement reads at most `max + 1`
    /// rows through an index, however many users there are.
    pub fn contact_page(&self, user_id: i32, max: usize) -> StoreResult<(Vec<String>, i64)> {
        // One statement: the names in order, the recent partners, and how
        // many users there are (counted while small, PostgreSQL's estimate
        // beyond: a count of 100,000 users is a sequential scan).
        static SQL: LazyLock<String> = LazyLock::new(|| {
            format!(
                "SELECT ARRAY(SELECT username FROM users WHERE user_id <> $1 ORDER BY username LIMIT $3), \
                        ARRAY(SELECT u.username FROM conversations c \
                              JOIN users u ON u.user_id = CASE WHEN c.participant1_id = $1 THEN c.participant2_id \
                                                               ELSE c.participant1_id END \
                              WHERE (c.participant1_id = $1 OR c.participant2_id = $1) AND u.user_id <> $1 \
                              ORDER BY c.last_message_at DESC NULLS LAST LIMIT $2), \
                        {}",
                super::stats::rows("users")
            )
        });
        let rows = self.conn()?.query_typed(
            SQL.as_str(),
            &[(&user_id, Type::INT4), (&(max as i64), Type::INT8), (&(max as i64 + 1), Type::INT8)],
        )?;
        // A SELECT without FROM: always one row.
        let Some(row) = rows.first() else { return Ok((Vec::new(), 0)) };
        let (by_name, mut names, all): (Vec<String>, Vec<String>, i64) = (row.get(0), row.get(1), row.get(2));
        if by_name.len() <= max {
            return Ok((by_name, 0));
        }
        let recent: std::collections::HashSet<String> = names.iter().cloned().collect();
        names.extend(by_name.into_iter().filter(|n| !recent.contains(n)).take(max.saturating_sub(recent.len())));
        let more = (all - 1 - names.len() as i64).max(0);
        Ok((names, more))
    }

    /// Other users whose names start with `typed` (as people read names:
    /// [`crate::protocol::username_key`]), by name, at most `max`, and how
    /// many more; a range of the byte-ordered index on the key.
    pub fn contacts_with_prefix(&self, user_id: i32, typed: &str, max: usize) -> StoreResult<(Vec<String>, i64)> {
        let low = crate::protocol::username_key(typed);
        let high = format!("{low}\u{10FFFF}");
        let range = "username_key COLLATE \"C\" >= $2 AND username_key COLLATE \"C\" < $3 AND user_id <> $1";
        let mut c = self.conn()?;
        let names: Vec<String> = c
            .query(
                format!("SELECT username FROM users WHERE {range} ORDER BY username_key COLLATE \"C\" LIMIT $4")
                    .as_str(),
                &[&user_id, &low, &high, &(max as i64 + 1)],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if names.len() <= max {
            return Ok((names, 0));
        }
        let all: i64 =
            c.query_one(format!("SELECT count(*) FROM users WHERE {range}").as_str(), &[&user_id, &low, &high])?.get(0);
        Ok((names[..max].to_vec(), all - max as i64))
    }

    pub fn find_user_id(&self, username: &str) -> StoreResult<Option<i32>> {
        let row = self.conn()?.query_opt("SELECT user_id FROM users WHERE username = $1", &[&username])?;
        Ok(row.map(|r| r.get(0)))
    }

    // --------------------------------------------------------- sessions

    /// Opens a `sessions` row for a login on `pod_id` and stamps
    /// `last_login`, unless the user already has `max` live sessions on
    /// chatp's pods (`None`). Logins of one user are counted one at a time
    /// (a transaction lock on the user), so parallel ones cannot all pass.
    pub fn create_session(&self, user_id: i32, pod_id: &str, max: usize) -> StoreResult<Option<i32>> {
        let mut c = self.conn()?;
        let mut tx = c.transaction()?;
        // The two-key lock space: (1, user) is "opening a session of user".
        tx.execute("SELECT pg_advisory_xact_lock(1, $1)", &[&user_id])?;
        // Rows of the Python server (no pod) are never closed by it: not counted.
        let row = tx.query_opt(
            "WITH live AS (SELECT count(*) AS n FROM sessions WHERE user_id = $1 AND is_active AND pod_id IS NOT NULL), \
                  s AS (INSERT INTO sessions (user_id, pod_id) SELECT $1, $2 FROM live WHERE n < $3 \
                        RETURNING session_id), \
                  u AS (UPDATE users SET last_login = CURRENT_TIMESTAMP WHERE user_id = $1 \
                        AND EXISTS (SELECT 1 FROM s)) \
             SELECT session_id FROM s",
            &[&user_id, &pod_id, &(max as i64)],
        )?;
        tx.commit()?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Deletes ended `sessions` rows that ended more than `retention_secs`
    /// ago, and beyond each user's newest [`ENDED_SESSIONS_KEPT`]; resume
    /// tokens that have expired (how many of each); and the message
    /// writer's marks older than an hour.
    pub fn purge_ended_sessions(&self, retention_secs: i64) -> StoreResult<(u64, u64)> {
        let mut c = self.conn()?;
        let sessions = c.execute(
            "DELETE FROM sessions s WHERE NOT s.is_active AND s.pod_id IS NOT NULL AND ( \
                s.logout_time < CURRENT_TIMESTAMP - make_interval(secs => $1) \
                OR s.session_id IN (SELECT session_id FROM ( \
                    SELECT session_id, row_number() OVER (PARTITION BY user_id ORDER BY session_id DESC) AS k \
                    FROM sessions WHERE NOT is_active AND pod_id IS NOT NULL) old WHERE old.k > $2))",
            &[&(retention_secs as f64), &ENDED_SESSIONS_KEPT],
        )?;
        let tokens = c.execute("DELETE FROM chatp_resume_tokens WHERE expires_at < CURRENT_TIMESTAMP", &[])?;
        // The writer's marks are read within seconds of their write, if ever.
        c.execute("DELETE FROM chatp_write_marks WHERE written_at < CURRENT_TIMESTAMP - interval '1 hour'", &[])?;
        Ok((sessions, tokens))
    }

    pub fn end_session(&self, session_id: i32) -> StoreResult<()> {
        self.conn()?.execute(
            "UPDATE sessions SET logout_time = CURRENT_TIMESTAMP, is_active = FALSE \
             WHERE session_id = $1 AND is_active",
            &[&session_id],
        )?;
        Ok(())
    }

    /// Opens again rows of live sessions that another pod closed when it
    /// took this pod for dead.
    pub fn reopen_sessions(&self, session_ids: &[i32]) -> StoreResult<u64> {
        Ok(self.conn()?.execute(
            "UPDATE sessions SET logout_time = NULL, is_active = TRUE WHERE session_id = ANY($1) AND NOT is_active",
            &[&session_ids],
        )?)
    }

    /// Closes every session a pod left open (it died, or restarts).
    pub fn end_pod_sessions(&self, pod_id: &str) -> StoreResult<u64> {
        Ok(self.conn()?.execute(
            "UPDATE sessions SET logout_time = CURRENT_TIMESTAMP, is_active = FALSE \
             WHERE pod_id = $1 AND is_active",
            &[&pod_id],
        )?)
    }
}
