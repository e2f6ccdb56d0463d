//! A database made by the Python chatp (`../shared/python-era/schema.sql`,
//! read from there, never copied here), filled the way the original server
//! fills it: chatp starts on it, every old user logs in with their old
//! password, every old message shows in history in order, old groups work;
//! afterwards the migrated tables still take the original server's INSERTs,
//! and the migrated database has the same tables, columns and indexes as one
//! chatp created from nothing.

use std::path::PathBuf;

use chatp::protocol::{self, input, text};
use sha2::{Digest, Sha256};

use crate::support::{unique, World};

/// The Python chatp schema: `$CHATP_PYTHON_ERA_DIR/schema.sql`, else
/// `shared/python-era/schema.sql` in the nearest folder above the checkout
/// that has one (`../shared` beside it, as in the developers' tree).
fn python_era_schema() -> String {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let path = match std::env::var_os("CHATP_PYTHON_ERA_DIR") {
        Some(dir) => PathBuf::from(dir).join("schema.sql"),
        None => {
            manifest.ancestors().map(|d| d.join("shared/python-era/schema.sql")).find(|p| p.is_file()).unwrap_or_else(
                || panic!("no shared/python-era/schema.sql above {}; set CHATP_PYTHON_ERA_DIR", manifest.display()),
            )
        }
    };
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read the Python chatp schema {}: {e}", path.display()))
}

fn sha256_hex(password: &str) -> String {
    hex::encode(Sha256::digest(password.as_bytes()))
}

/// The timestamp of the n-th old message, as history prints it.
fn ts(n: u32) -> String {
    format!("2025-03-{:02} {:02}:{:02}:00", 1 + n / 600, (n / 60) % 10 + 8, n % 60)
}

/// What the old deployment holds, by name.
struct OldData {
    alice: String,
    bob: String,
    carol: String,
    group: String,
    group_id: i32,
    /// (timestamp, sender, text), oldest first.
    private: Vec<(String, String, String)>,
    broadcast: Vec<(String, String, String)>,
    group_messages: Vec<(String, String, String)>,
}

/// Fills `db` as the Python server would have: SHA-256 hashes, one
/// conversation, 55 broadcasts (more than one history screen), a group
/// with its creator as admin and two members, sessions open and closed.
fn fill_like_the_original(db: &mut postgres::Client) -> OldData {
    let (alice, bob, carol) = (unique("alice"), unique("bob"), unique("carol"));
    let mut ids = Vec::new();
    for (name, pass) in [(&alice, "legacy-pass-1"), (&bob, "legacy-pass-2"), (&carol, "legacy-pass-3")] {
        let row = db
            .query_one(
                "INSERT INTO users (username, password_hash) VALUES ($1, $2) RETURNING user_id",
                &[name, &sha256_hex(pass)],
            )
            .unwrap();
        ids.push(row.get::<_, i32>(0));
    }
    let (a, b, c) = (ids[0], ids[1], ids[2]);
    let conv: i32 = db
        .query_one(
            "INSERT INTO conversations (participant1_id, participant2_id) VALUES ($1, $2) RETURNING conversation_id",
            &[&a.min(b), &a.max(b)],
        )
        .unwrap()
        .get(0);
    let mut n = 0;
    let mut next_ts = || {
        n += 1;
        ts(n)
    };
    let mut private = Vec::new();
    for i in 0..6 {
        let (from_id, from) = if i % 2 == 0 { (a, &alice) } else { (b, &bob) };
        let (t, msg) = (next_ts(), format!("old dm {i}: with a colon"));
        db.execute(
            "INSERT INTO messages (conversation_id, sender_id, sender_username, message_text, timestamp) \
             VALUES ($1, $2, $3, $4, $5::text::timestamp)",
            &[&conv, &from_id, from, &msg, &t],
        )
        .unwrap();
        db.execute(
            "UPDATE conversations SET last_message_at = $2::text::timestamp WHERE conversation_id = $1",
            &[&conv, &t],
        )
        .unwrap();
        private.push((t, from.clone(), msg));
    }
    let mut broadcast = Vec::new();
    for i in 0..55 {
        let (from_id, from) = if i % 3 == 0 { (c, &carol) } else { (a, &alice) };
        let (t, msg) = (next_ts(), format!("old broadcast {i}"));
        db.execute(
            "INSERT INTO broadcast_messages (sender_id, sender_username, message_text, timestamp) \
             VALUES ($1, $2, $3, $4::text::timestamp)",
            &[&from_id, from, &msg, &t],
        )
        .unwrap();
        broadcast.push((t, from.clone(), msg));
    }
    let group = unique("oldteam");
    let group_id: i32 = db
        .query_one(
            "INSERT INTO groups (group_name, creator_id, description) VALUES ($1, $2, 'from the old days') \
             RETURNING group_id",
            &[&group, &a],
        )
        .unwrap()
        .get(0);
    for (user, role, joined) in [(a, "admin", "2025-02-01 09:00:00"), (b, "member", "2025-02-02 09:00:00")] {
        db.execute(
            "INSERT INTO group_members (group_id, user_id, role, joined_at) VALUES ($1, $2, $3, $4::text::timestamp)",
            &[&group_id, &user, &role, &joined],
        )
        .unwrap();
    }
    // carol joins the way the original's join does (default role, now).
    db.execute("INSERT INTO group_members (group_id, user_id) VALUES ($1, $2)", &[&group_id, &c]).unwrap();
    let mut group_messages = Vec::new();
    for (i, (from_id, from)) in [(a, &alice), (b, &bob), (c, &carol)].into_iter().enumerate() {
        let (t, msg) = (next_ts(), format!("old group message {i}"));
        db.execute(
            "INSERT INTO group_messages (group_id, sender_id, sender_username, message_text, timestamp) \
             VALUES ($1, $2, $3, $4, $5::text::timestamp)",
            &[&group_id, &from_id, from, &msg, &t],
        )
        .unwrap();
        group_messages.push((t, from.clone(), msg));
    }
    // One session ended at logout, one the old server left open.
    db.execute("INSERT INTO sessions (user_id) VALUES ($1)", &[&a]).unwrap();
    db.execute("UPDATE sessions SET logout_time = CURRENT_TIMESTAMP, is_active = FALSE WHERE user_id = $1", &[&a])
        .unwrap();
    db.execute("INSERT INTO sessions (user_id) VALUES ($1)", &[&b]).unwrap();
    OldData { alice, bob, carol, group, group_id, private, broadcast, group_messages }
}

fn history(entries: &[(String, String, String)]) -> Vec<String> {
    entries.iter().map(|(t, s, m)| protocol::history_line(t, s, m)).collect()
}

fn password_hash(db: &mut postgres::Client, user: &str) -> String {
    db.query_one("SELECT password_hash FROM users WHERE username = $1", &[&user]).unwrap().get(0)
}

#[test]
fn a_python_chatp_database_works_unchanged() {
    let w = World::new("python_era");
    let mut db = w.db();
    db.batch_execute(&python_era_schema()).expect("the Python chatp schema applies");
    let old = fill_like_the_original(&mut db);
    let counts_before = row_counts(&mut db);
    let server = w.start_server();
    // Nothing the old server wrote was changed by the migrations (but the
    // flag it never set: its messages count as read from now on).
    assert_eq!(row_counts(&mut db), counts_before);
    let unread: i64 = db.query_one("SELECT COUNT(*) FROM messages WHERE is_read IS NOT TRUE", &[]).unwrap().get(0);
    assert_eq!(unread, 0);

    // Wrong password: refused, the old hash untouched.
    let mut ca = server.connect();
    assert_eq!(ca.login_attempt(&old.alice, "legacy-pass-2"), protocol::auth_failed(text::INVALID_CREDENTIALS));
    assert_eq!(password_hash(&mut db, &old.alice), sha256_hex("legacy-pass-1"));
    ca.send(input::LOGIN);
    ca.expect(protocol::LOGIN_PROMPT);
    ca.send(&old.alice);
    ca.send("legacy-pass-1");
    ca.expect(&protocol::auth_success(text::LOGIN_OK));
    ca.expect_menu();
    // Upgraded to Argon2id once the login succeeded (session row open).
    assert!(password_hash(&mut db, &old.alice).starts_with("$argon2id$"));
    let open: i64 = db
        .query_one(
            "SELECT COUNT(*) FROM sessions s JOIN users u USING (user_id) \
             WHERE u.username = $1 AND s.is_active AND s.pod_id IS NOT NULL",
            &[&old.alice],
        )
        .unwrap()
        .get(0);
    assert_eq!(open, 1);

    // Old private history, oldest first, exactly as stored.
    assert_eq!(ca.open_conversation(&old.bob), history(&old.private));
    ca.send("new dm after the move");
    ca.expect(&protocol::sent(false));
    ca.send(input::BACK);
    ca.lines_until(protocol::CONTACT_LIST_END);
    ca.send(input::BACK);
    ca.expect_menu();

    // The channel: the last 50 of 55 old broadcasts, in order.
    assert_eq!(ca.open_broadcast(), history(&old.broadcast[5..]));
    ca.send(input::BACK);
    ca.expect_menu();

    // The old group: listed with alice as admin, its history, its members.
    ca.send(input::MENU_MY_GROUPS);
    ca.expect(protocol::MY_GROUPS_START);
    ca.expect(&protocol::my_group(old.group_id, &old.group, Some("from the old days"), 3, true));
    ca.expect(protocol::MY_GROUPS_END);
    ca.send(&old.group_id.to_string());
    ca.expect(&protocol::group_chat_start(&old.group, old.group_id));
    assert_eq!(ca.lines_until(protocol::GROUP_CHAT_READY), history(&old.group_messages));
    ca.send(input::MEMBERS);
    ca.expect(protocol::GROUP_MEMBERS_START);
    let members = ca.lines_until(protocol::GROUP_MEMBERS_END);
    assert_eq!(
        members[..2],
        [protocol::group_member(&old.alice, true, "2025-02-01"), protocol::group_member(&old.bob, false, "2025-02-02")]
    );
    assert!(members[2].starts_with(&protocol::group_member(&old.carol, false, "")), "{members:?}");
    assert_eq!(members.len(), 3);

    // bob (still a SHA-256 user) logs in and is in the group; a new group
    // message reaches him live and lands after the old ones.
    let mut cb = server.connect();
    cb.login(&old.bob, "legacy-pass-2");
    cb.send(input::MENU_MY_GROUPS);
    cb.expect(protocol::MY_GROUPS_START);
    cb.expect(&protocol::my_group(old.group_id, &old.group, Some("from the old days"), 3, false));
    cb.expect(protocol::MY_GROUPS_END);
    cb.send(&old.group_id.to_string());
    cb.expect(&protocol::group_chat_start(&old.group, old.group_id));
    cb.lines_until(protocol::GROUP_CHAT_READY);
    ca.send("new group message");
    ca.expect(&protocol::group_sent());
    cb.expect(&protocol::group_message(&old.group, &old.alice, "new group message"));

    // alice, the old admin, leaves: bob (the longest member) becomes admin.
    ca.send(input::LEAVE);
    ca.expect(&protocol::leave_result(text::LEFT_GROUP));
    ca.expect_all(&[
        protocol::MY_GROUPS_START.to_string(),
        protocol::no_my_groups(),
        protocol::MY_GROUPS_END.to_string(),
    ]);
    cb.send(input::MEMBERS);
    cb.expect(protocol::GROUP_MEMBERS_START);
    let members = cb.lines_until(protocol::GROUP_MEMBERS_END);
    assert_eq!(members[0], protocol::group_member(&old.bob, true, "2025-02-02"));
    assert_eq!(members.len(), 2, "{members:?}");
    cb.send(input::BACK);
    cb.expect(protocol::MY_GROUPS_START);
    cb.expect(&protocol::my_group(old.group_id, &old.group, Some("from the old days"), 2, true));
    cb.expect(protocol::MY_GROUPS_END);
    cb.send(input::BACK);
    cb.expect_menu();
    let mut expected_dm = history(&old.private);
    let new_dm = cb.open_conversation(&old.alice).pop().unwrap();
    assert!(new_dm.ends_with(&format!("] {}: new dm after the move", old.alice)), "{new_dm}");
    expected_dm.push(new_dm);

    // alice logs in again: her Argon2id hash now works.
    ca.send(input::BACK);
    ca.expect_menu();
    ca.send(input::BYE);
    let mut ca = server.connect();
    ca.login(&old.alice, "legacy-pass-1");
    assert_eq!(ca.open_conversation(&old.bob), expected_dm);
    drop(server);

    the_original_server_still_writes(&mut db);
    same_schema_as_a_fresh_database(&mut db);
}

fn row_counts(db: &mut postgres::Client) -> Vec<i64> {
    [
        "users",
        "conversations",
        "messages",
        "broadcast_messages",
        "sessions",
        "groups",
        "group_members",
        "group_messages",
    ]
    .iter()
    .map(|t| db.query_one(&format!("SELECT COUNT(*) FROM {t}"), &[]).unwrap().get(0))
    .collect()
}

/// The INSERT and UPDATE statements of the Python server, on the migrated
/// tables (the rollback case).
fn the_original_server_still_writes(db: &mut postgres::Client) {
    let mut tx = db.transaction().unwrap();
    let user = unique("python");
    let u: i32 = tx
        .query_one(
            "INSERT INTO users (username, password_hash) VALUES ($1, $2) RETURNING user_id",
            &[&user, &sha256_hex("p")],
        )
        .unwrap()
        .get(0);
    let other: i32 = tx.query_one("SELECT MIN(user_id) FROM users", &[]).unwrap().get(0);
    let conv: i32 = tx
        .query_one(
            "INSERT INTO conversations (participant1_id, participant2_id) VALUES ($1, $2) RETURNING conversation_id",
            &[&other.min(u), &other.max(u)],
        )
        .unwrap()
        .get(0);
    tx.execute(
        "INSERT INTO messages (conversation_id, sender_id, sender_username, message_text) VALUES ($1, $2, $3, 'hi')",
        &[&conv, &u, &user],
    )
    .unwrap();
    tx.execute("UPDATE conversations SET last_message_at = CURRENT_TIMESTAMP WHERE conversation_id = $1", &[&conv])
        .unwrap();
    tx.query_one(
        "INSERT INTO broadcast_messages (sender_id, sender_username, message_text) VALUES ($1, $2, 'all') \
         RETURNING broadcast_id",
        &[&u, &user],
    )
    .unwrap();
    let s: i32 = tx.query_one("INSERT INTO sessions (user_id) VALUES ($1) RETURNING session_id", &[&u]).unwrap().get(0);
    tx.execute("UPDATE sessions SET logout_time = CURRENT_TIMESTAMP, is_active = FALSE WHERE session_id = $1", &[&s])
        .unwrap();
    let g: i32 = tx
        .query_one(
            "INSERT INTO groups (group_name, creator_id, description) VALUES ($1, $2, NULL) RETURNING group_id",
            &[&unique("pygroup"), &u],
        )
        .unwrap()
        .get(0);
    tx.execute("INSERT INTO group_members (group_id, user_id, role) VALUES ($1, $2, 'admin')", &[&g, &u]).unwrap();
    tx.execute(
        "INSERT INTO group_messages (group_id, sender_id, sender_username, message_text) VALUES ($1, $2, $3, 'g')",
        &[&g, &u, &user],
    )
    .unwrap();
    let message_type: String =
        tx.query_one("SELECT message_type FROM messages WHERE conversation_id = $1", &[&conv]).unwrap().get(0);
    assert_eq!(message_type, "private");
    tx.rollback().unwrap();
}

/// Tables, columns (type, nullability, default), constraints and indexes.
fn schema_of(db: &mut postgres::Client) -> Vec<String> {
    let mut out: Vec<String> = db
        .query(
            "SELECT table_name || '.' || column_name || ' ' || data_type || ' ' || \
                    COALESCE(character_maximum_length::text, '') || ' ' || is_nullable || ' ' || \
                    COALESCE(column_default, '') \
             FROM information_schema.columns WHERE table_schema = 'public'",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for sql in [
        "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public'",
        "SELECT conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid) \
         FROM pg_constraint WHERE connamespace = 'public'::regnamespace",
    ] {
        out.extend(db.query(sql, &[]).unwrap().iter().map(|r| r.get::<_, String>(0)));
    }
    out.sort();
    out
}

fn same_schema_as_a_fresh_database(migrated: &mut postgres::Client) {
    let fresh = World::new("fresh_schema");
    drop(fresh.start_server());
    let (old, new) = (schema_of(migrated), schema_of(&mut fresh.db()));
    assert!(old.iter().any(|l| l.starts_with("users.last_login ")), "{old:#?}");
    assert!(old.iter().any(|l| l.starts_with("broadcast_messages.broadcast_id ")), "{old:#?}");
    assert_eq!(old, new, "a migrated Python chatp database and a fresh one differ");
}
