//! Issue 26: no screen reads a big table from end to end (searches by the
//! start of a name included). On a seeded
//! database with sequential scans priced out (`enable_seqscan = off`, so
//! PostgreSQL takes one only when no index can serve), users go through
//! every screen; PostgreSQL's own counters (`pg_stat_user_tables`) must
//! show no sequential scan of the tables that grow with the team.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chatp::protocol::{self, input};

use crate::support::{Client, World};

/// The tables that grow with a team.
const BIG: &[&str] = &[
    "users",
    "conversations",
    "messages",
    "groups",
    "group_members",
    "group_messages",
    "broadcast_messages",
    "sessions",
];

/// Sequential scans per big table, once no other backend is connected to
/// the test's database (a backend's counts reach the statistics when it
/// exits).
fn seq_scans(w: &World) -> HashMap<String, i64> {
    let mut db = w.db();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let others: i64 = db
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
                &[],
            )
            .unwrap()
            .get(0);
        if others == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{others} backends still connected");
        std::thread::sleep(Duration::from_millis(100));
    }
    db.batch_execute("SELECT pg_stat_clear_snapshot()").unwrap();
    db.query("SELECT relname::text, seq_scan FROM pg_stat_user_tables WHERE relname = ANY($1)", &[&BIG])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[test]
fn every_screen_reads_the_big_tables_through_indexes() {
    let w = World::new("plans");
    let out = w
        .command(env!("CARGO_BIN_EXE_chat_bench"))
        .args(["seed", "-n", "6000", "--groups", "8", "-m", "3000"])
        .output()
        .expect("run chat_bench seed");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The first start migrates (its fills may scan); then sequential scans
    // are priced out for every later connection.
    drop(w.start_server());
    w.db().batch_execute(&format!("ALTER DATABASE {} SET enable_seqscan = off", w.db_name)).unwrap();
    let before = seq_scans(&w);

    let server = w.start_server_with(&[("SESSION_PURGE_SECS", "100000")]);
    // Protocol 2: the unread summary at login, the contact list, a
    // conversation (history, marked read, a message), the broadcast channel.
    let mut c = Client::connect(server.port);
    c.hello();
    assert_eq!(c.login_attempt("u000001", "pw"), protocol::auth_success(protocol::text::LOGIN_OK));
    c.lines_until(protocol::MAIN_MENU_END);
    c.send(input::MENU_PRIVATE);
    c.expect(protocol::CONTACT_LIST_START);
    let rows = c.lines_until(protocol::CONTACT_LIST_END);
    let partner = rows[1].split('|').next().unwrap().to_string();
    c.send(&partner);
    c.expect(&protocol::conversation_start(&partner));
    c.lines_until(protocol::CONVERSATION_READY);
    c.send("through an index");
    assert!(c.line().starts_with("SENT:"));
    c.send(input::BACK);
    c.lines_until(protocol::CONTACT_LIST_END);
    // Finding people and groups by the start of their names.
    c.send("u0001");
    c.expect(protocol::CONTACT_LIST_START);
    c.expect(&protocol::contact_list_matches("u0001"));
    c.lines_until(protocol::CONTACT_LIST_END);
    c.send(input::BACK);
    c.lines_until(protocol::MAIN_MENU_END);
    c.send(input::MENU_BROWSE_GROUPS);
    c.lines_until(protocol::BROWSE_GROUPS_END);
    c.send("group 1");
    c.expect(protocol::BROWSE_GROUPS_START);
    c.expect(&protocol::browse_groups_matches("group 1"));
    c.lines_until(protocol::BROWSE_GROUPS_END);
    c.send(input::BACK);
    c.lines_until(protocol::MAIN_MENU_END);
    c.open_broadcast();
    // Group 1's admin (member 0: user 7919 mod 6000 + 1): my groups, the
    // 5,000-member chat, a message to it, /members.
    let mut a = Client::connect(server.port);
    a.login("u001920", "pw");
    a.send(input::MENU_MY_GROUPS);
    a.lines_until(protocol::MY_GROUPS_END);
    a.send("1");
    a.lines_until(protocol::GROUP_CHAT_READY);
    a.send("to five thousand");
    a.expect(&protocol::group_sent());
    a.send("/members");
    a.lines_until(protocol::GROUP_MEMBERS_END);
    drop((c, a));
    drop(server);

    let after = seq_scans(&w);
    let scanned: Vec<String> = BIG
        .iter()
        .filter(|t| after.get(**t) != before.get(**t))
        .map(|t| format!("{t}: {:?} -> {:?}", before.get(*t), after.get(*t)))
        .collect();
    assert!(scanned.is_empty(), "sequential scans while going through the screens: {scanned:?}");
}
