//! `seed`: fills a database the way a big team's would look after a few
//! years, to measure every screen on it (BENCHMARKS.md, "A big team's
//! database"). Only the original Python chatp's tables and columns are
//! written, so the result is a Python-era database: the first chat_server
//! started on it migrates it (Part 2 of schema.sql), as it would a real
//! one. The rows are generated inside PostgreSQL (`INSERT ... SELECT` over
//! `generate_series`, in batches of one transaction each): nothing crosses
//! the wire but the statements, which is faster than COPY from here.
//!
//! Shape, for N users, G groups, M messages:
//! - users `u000001`...: all with the password `pw` (one Argon2id hash),
//!   created over three years;
//! - 2 private conversations per user (N*2), with 60% of the messages,
//!   the newest 1% of them unread;
//! - groups with a long tail of members: group g has max(3, 5000 / g^0.6)
//!   (the first has 5,000; about 500,000 memberships for 10,000 groups),
//!   35% of the messages, the busiest groups the biggest;
//! - the broadcast channel, 5% of the messages;
//! - 10 ended session rows per user.
//!
//! The database must be empty of chatp data (the tables are created if
//! missing); the run states how long each part took.

use std::time::Instant;

use super::stats::Summary;
use crate::config::{BenchConfig, DbConfig, Env};
use crate::db_manager::PgTarget;

/// Messages per INSERT statement (one transaction each).
const BATCH: i64 = 500_000;

/// Where Part 2 (chatp's migrations) begins in schema.sql: seed creates
/// Part 1 only, the original tables.
const PART2: &str = "-- ------------------------------------------------- Part 2";

pub fn run(cfg: &BenchConfig, summary: &mut Summary) {
    if let Err(e) = seed(cfg, summary) {
        summary.fail(format!("seeding: {e}"));
    }
}

/// Every seeded user's password.
pub const PASSWORD: &str = "pw";

/// The name of seeded user `i` (from 1), as the users' statement makes it.
pub fn username(i: usize) -> String {
    format!("u{i:06}")
}

fn seed(cfg: &BenchConfig, summary: &mut Summary) -> Result<(), String> {
    let db = DbConfig::from_lookup(&Env(|k| std::env::var(k).ok())).map_err(|e| e.to_string())?;
    let target = PgTarget::new(&db, "chat_bench seed")?;
    let mut c = target.connect().map_err(|e| format!("connecting to PostgreSQL: {e}"))?;
    let err = |e: postgres::Error| e.to_string();
    c.batch_execute("SET statement_timeout = 0").map_err(err)?;
    let schema = include_str!("../../schema.sql");
    let original = schema.split(PART2).next().unwrap_or(schema);
    // The tables first, their indexes once the rows are in (much faster
    // than maintaining them row by row).
    let (indexes, tables): (Vec<&str>, Vec<&str>) =
        original.split_inclusive(';').partition(|st| st.trim_start().starts_with("CREATE INDEX"));
    c.batch_execute(&tables.concat()).map_err(err)?;
    let existing: i64 = c.query_one("SELECT count(*) FROM users", &[]).map_err(err)?.get(0);
    if existing > 0 {
        return Err(format!("the database already holds {existing} users: seed an empty one"));
    }
    let (n, groups, m) = (cfg.users as i64, cfg.groups as i64, cfg.messages as i64);
    let start = Instant::now();
    let hash = crate::passwords::hash_password(PASSWORD);
    step(
        &mut c,
        summary,
        "users",
        "INSERT INTO users (username, password_hash, created_at) \
         SELECT 'u' || lpad(i::text, 6, '0'), $2::text, now() - interval '3 years' * (1 - i::float8 / $1::int8) \
         FROM generate_series(1, $1::int8) i",
        &[&n, &hash],
    )?;
    // Conversation c joins user (c mod N) + 1 with a partner 1 + c/N*1009 +
    // (c*7 mod 997) further on: distinct pairs, spread over everyone.
    step(
        &mut c,
        summary,
        "conversations",
        "INSERT INTO conversations (participant1_id, participant2_id, created_at, last_message_at) \
         SELECT DISTINCT ON (LEAST(a, b), GREATEST(a, b)) LEAST(a, b), GREATEST(a, b), \
                now() - interval '3 years', now() - interval '1 day' * (c % 1000) \
         FROM (SELECT c, (c % $1::int8) + 1 AS a, \
                      ((c % $1::int8) + 1 + (c / $1::int8) * 1009 + (c * 7) % 997) % $1::int8 + 1 AS b \
               FROM generate_series(0, 2 * $1::int8 - 1) c) p WHERE a <> b",
        &[&n],
    )?;
    step(
        &mut c,
        summary,
        "groups",
        "INSERT INTO groups (group_name, creator_id, created_at, description) \
         SELECT 'group ' || g, (g * 7919) % $2::int8 + 1, now() - interval '3 years', 'seeded group ' || g \
         FROM generate_series(1, $1::int8) g",
        &[&groups, &n],
    )?;
    // Member k of group g: user ((g*7919 + k*4729) mod N) + 1 (4729 is
    // prime to 100,000, so a group's members are distinct); member 0 is
    // its admin.
    step(
        &mut c,
        summary,
        "group_members",
        "INSERT INTO group_members (group_id, user_id, role, joined_at) \
         SELECT g, (g * 7919 + k * 4729) % $2::int8 + 1, CASE WHEN k = 0 THEN 'admin' ELSE 'member' END, \
                now() - interval '3 years' \
         FROM generate_series(1, $1::int8) g, \
              generate_series(0, GREATEST(3, LEAST($2::int8, floor(5000 / power(g::float8, 0.6))::int8)) - 1) k \
         ON CONFLICT DO NOTHING",
        &[&groups, &n],
    )?;
    let conversations: i64 = c.query_one("SELECT count(*) FROM conversations", &[]).map_err(err)?.get(0);
    let private = m * 60 / 100;
    let group = m * 35 / 100;
    let broadcast = m - private - group;
    let t = Instant::now();
    for from in (0..private).step_by(BATCH as usize) {
        let to = (from + BATCH).min(private);
        c.execute(
            "INSERT INTO messages (conversation_id, sender_id, sender_username, message_text, timestamp, is_read) \
             SELECT cv.conversation_id, s.user_id, s.username, 'message ' || i, \
                    now() - interval '3 years' * (1 - i::float8 / $3::int8), i < $3::int8 * 99 / 100 \
             FROM generate_series($1::int8, $2::int8 - 1) i \
             JOIN conversations cv ON cv.conversation_id = (i % $4::int8) + 1 \
             JOIN users s ON s.user_id = CASE WHEN i % 2 = 0 THEN cv.participant1_id ELSE cv.participant2_id END",
            &[&from, &to, &private, &conversations],
        )
        .map_err(|e| format!("messages: {e}"))?;
    }
    summary.add("messages_s", format!("{:.1}", t.elapsed().as_secs_f64()));
    let t = Instant::now();
    for from in (0..group).step_by(BATCH as usize) {
        let to = (from + BATCH).min(group);
        // Busy groups are big: group floor(G * r^3) + 1 for r spread over
        // [0, 1); the sender is one of its members.
        c.execute(
            "INSERT INTO group_messages (group_id, sender_id, sender_username, message_text, timestamp) \
             SELECT g, u.user_id, u.username, 'group message ' || i, now() - interval '3 years' * (1 - i::float8 / $3::int8) \
             FROM (SELECT i, floor($4::int8 * power(((i * 2654435761) % 1000003)::float8 / 1000003, 3))::int8 + 1 AS g \
                   FROM generate_series($1::int8, $2::int8 - 1) i) x \
             JOIN users u ON u.user_id = (g * 7919 + (i % GREATEST(3, LEAST($5::int8, floor(5000 / power(g::float8, 0.6))::int8))) * 4729) % $5::int8 + 1",
            &[&from, &to, &group, &groups, &n],
        )
        .map_err(|e| format!("group messages: {e}"))?;
    }
    summary.add("group_messages_s", format!("{:.1}", t.elapsed().as_secs_f64()));
    step(
        &mut c,
        summary,
        "broadcast",
        "INSERT INTO broadcast_messages (sender_id, sender_username, message_text, timestamp) \
         SELECT u.user_id, u.username, 'broadcast ' || i, now() - interval '3 years' * (1 - i::float8 / $1::int8) \
         FROM generate_series(0, $1::int8 - 1) i JOIN users u ON u.user_id = (i * 7) % $2::int8 + 1",
        &[&broadcast, &n],
    )?;
    step(
        &mut c,
        summary,
        "sessions",
        "INSERT INTO sessions (user_id, login_time, logout_time, is_active) \
         SELECT i % $1::int8 + 1, now() - interval '1 hour' * i / 10, now() - interval '1 hour' * i / 10 + interval '30 minutes', false \
         FROM generate_series(0, 10 * $1::int8 - 1) i",
        &[&n],
    )?;
    let t = Instant::now();
    c.batch_execute(&indexes.concat()).map_err(err)?;
    summary.add("indexes_s", format!("{:.1}", t.elapsed().as_secs_f64()));
    let t = Instant::now();
    c.batch_execute("ANALYZE").map_err(err)?;
    summary.add("analyze_s", format!("{:.1}", t.elapsed().as_secs_f64()));
    summary.add("users", n);
    summary.add("groups", groups);
    summary.add("messages", m);
    summary.add("seconds", format!("{:.1}", start.elapsed().as_secs_f64()));
    let size: String =
        c.query_one("SELECT pg_size_pretty(pg_database_size(current_database()))", &[]).map_err(err)?.get(0);
    summary.add("database_size", size.replace(' ', ""));
    Ok(())
}

type Params<'a> = &'a [&'a (dyn postgres::types::ToSql + Sync)];

/// Runs one filling statement and records how long it took.
fn step(c: &mut postgres::Client, summary: &mut Summary, what: &str, sql: &str, params: Params) -> Result<(), String> {
    let t = Instant::now();
    c.execute(sql, params).map_err(|e| format!("{what}: {e}"))?;
    summary.add(format!("{what}_s"), format!("{:.1}", t.elapsed().as_secs_f64()));
    Ok(())
}
