//! Resume tokens and the replay of what a resuming client missed
//! (protocol 2, docs/PROTOCOL.md). A token is 128 random bits, given to the
//! client once; only its SHA-256 is stored.

use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};

use super::{DbManager, StoreResult};
use crate::protocol::{self, LastSeen, MessageKind};

/// Most messages one resume replays (the oldest first; a later resume
/// continues from the last one the client saw).
pub const REPLAY_LIMIT: i64 = 1000;

pub(super) fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A stored message a resuming client missed, as its notification line.
#[derive(Debug, Clone)]
pub struct Missed {
    pub kind: MessageKind,
    pub id: i64,
    pub line: String,
}

/// Who a taken token belonged to, and from where to replay.
#[derive(Debug, Clone)]
pub struct Resumed {
    pub user_id: i32,
    pub username: String,
    /// Never older than the start of the session the token came from.
    pub baseline: LastSeen,
    /// The account's session epoch when the token was taken.
    pub epoch: i64,
}

impl DbManager {
    /// A new token for a live session of `user_id` on `pod_id`; replays of
    /// it start after `baseline` (`None`: the newest ids now).
    pub fn issue_resume_token(&self, user_id: i32, pod_id: &str, baseline: Option<LastSeen>) -> StoreResult<String> {
        let mut bytes = [0u8; 16];
        OsRng.fill_bytes(&mut bytes);
        let token = hex::encode(bytes);
        // NULL baselines: the newest ids now (the session starts here).
        let (p, b, g) = match baseline {
            Some(l) => (Some(l.private), Some(l.broadcast), Some(l.group)),
            None => (None, None, None),
        };
        self.conn()?.execute(
            "INSERT INTO chatp_resume_tokens (token_hash, user_id, pod_id, last_private, last_broadcast, last_group) \
             SELECT $1, $2, $3, \
                    COALESCE($4::int8, (SELECT COALESCE(MAX(message_id), 0) FROM messages)), \
                    COALESCE($5::int8, (SELECT COALESCE(MAX(broadcast_id), 0) FROM broadcast_messages)), \
                    COALESCE($6::int8, (SELECT COALESCE(MAX(message_id), 0) FROM group_messages))",
            &[&token_hash(&token), &user_id, &pod_id, &p, &b, &g],
        )?;
        Ok(token)
    }

    /// Takes `username`'s token (single use): the user and baseline, if it
    /// exists, is theirs and has not expired.
    pub fn take_resume_token(&self, username: &str, token: &str) -> StoreResult<Option<Resumed>> {
        let row = self.conn()?.query_opt(
            "DELETE FROM chatp_resume_tokens t USING users u \
             WHERE t.token_hash = $1 AND u.user_id = t.user_id AND u.username = $2 AND u.disabled_at IS NULL \
               AND (t.expires_at IS NULL OR t.expires_at > CURRENT_TIMESTAMP) \
             RETURNING u.user_id, u.username, t.last_private, t.last_broadcast, t.last_group, \
                       COALESCE(u.session_epoch, 0)",
            &[&token_hash(token), &username],
        )?;
        Ok(row.map(|r| Resumed {
            user_id: r.get(0),
            username: r.get(1),
            baseline: LastSeen { private: r.get(2), broadcast: r.get(3), group: r.get(4) },
            epoch: r.get(5),
        }))
    }

    /// The connection of `token` ended without `bye`: it may resume within
    /// `ttl_secs`.
    pub fn release_resume_token(&self, token: &str, ttl_secs: i64) -> StoreResult<()> {
        self.conn()?.execute(
            "UPDATE chatp_resume_tokens SET expires_at = CURRENT_TIMESTAMP + make_interval(secs => $2) \
             WHERE token_hash = $1",
            &[&token_hash(token), &(ttl_secs as f64)],
        )?;
        Ok(())
    }

    /// `bye`: the token is gone.
    pub fn revoke_resume_token(&self, token: &str) -> StoreResult<()> {
        self.conn()?.execute("DELETE FROM chatp_resume_tokens WHERE token_hash = $1", &[&token_hash(token)])?;
        Ok(())
    }

    /// A pod died (or restarts): the tokens of its connections start their
    /// `ttl_secs`; long-expired tokens are dropped.
    pub fn release_pod_resume_tokens(&self, pod_id: &str, ttl_secs: i64) -> StoreResult<u64> {
        let mut c = self.conn()?;
        c.execute("DELETE FROM chatp_resume_tokens WHERE expires_at < CURRENT_TIMESTAMP - interval '1 day'", &[])?;
        Ok(c.execute(
            "UPDATE chatp_resume_tokens SET expires_at = CURRENT_TIMESTAMP + make_interval(secs => $2) \
             WHERE pod_id = $1 AND expires_at IS NULL",
            &[&pod_id, &(ttl_secs as f64)],
        )?)
    }

    /// What `user_id` missed after `last`: messages of others to them, in
    /// the broadcast channel and in their groups, oldest first.
    ///
    /// The private part starts from the user's conversations (participant
    /// indexes) and reads each one's messages after the baseline through
    /// the conversation's index, so it never reads other users' messages.
    /// Joined the other way round, with `messages` not analysed since a bulk
    /// of new rows, PostgreSQL chose a parallel sequential scan of the whole
    /// table: 47-99 ms per resume (80 resumes/s against 640-670 now, same
    /// instance, same state).
    pub fn missed_messages(&self, user_id: i32, last: LastSeen) -> StoreResult<Vec<Missed>> {
        let rows = self.conn()?.query(
            "SELECT kind, id, sender, body, grp, ms FROM ( \
               SELECT 0 AS kind, m.message_id::int8 AS id, m.sender_username AS sender, m.message_text AS body, \
                      NULL::text AS grp, m.timestamp AS t \
               FROM conversations c CROSS JOIN LATERAL ( \
                 SELECT * FROM messages m \
                 WHERE m.conversation_id = c.conversation_id AND m.message_id > $2::int8 \
                   AND m.sender_id IS DISTINCT FROM $1 \
                 ORDER BY m.message_id LIMIT $5::int8) m \
               WHERE $1 IN (c.participant1_id, c.participant2_id) \
               UNION ALL \
               SELECT 1, b.broadcast_id::int8, b.sender_username, b.message_text, NULL, b.timestamp \
               FROM broadcast_messages b WHERE b.broadcast_id > $3::int8 AND b.sender_id IS DISTINCT FROM $1 \
               UNION ALL \
               SELECT 2, gm.message_id::int8, gm.sender_username, gm.message_text, g.group_name, gm.timestamp \
               FROM group_messages gm JOIN groups g ON g.group_id = gm.group_id \
               JOIN group_members mem ON mem.group_id = gm.group_id AND mem.user_id = $1 \
               WHERE gm.message_id > $4::int8 AND gm.sender_id IS DISTINCT FROM $1 \
             ) r, LATERAL (SELECT COALESCE((EXTRACT(EPOCH FROM r.t) * 1000)::int8, 0) AS ms) x \
             ORDER BY r.t, r.kind, r.id LIMIT $5::int8",
            &[&user_id, &last.private, &last.broadcast, &last.group, &REPLAY_LIMIT],
        )?;
        Ok(rows
            .iter()
            .map(|r| {
                let (kind, id, sender, body): (i32, i64, String, String) = (r.get(0), r.get(1), r.get(2), r.get(3));
                let (kind, line) = match kind {
                    0 => (MessageKind::Private, protocol::message(&sender, &body)),
                    1 => (MessageKind::Broadcast, protocol::broadcast(&sender, &body, r.get::<_, i64>(5) as u128)),
                    _ => (MessageKind::Group, protocol::group_message(&r.get::<_, String>(4), &sender, &body)),
                };
                Missed { kind, id, line }
            })
            .collect())
    }
}
