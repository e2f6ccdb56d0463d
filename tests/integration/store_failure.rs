//! PostgreSQL stopped mid-session: never `SENT:` for a message that was not
//! stored, and service resumes when PostgreSQL is back. Uses a private
//! PostgreSQL so stopping it does not disturb the other tests.

use std::time::Duration;

use chatp::protocol::{self, text};

use crate::support::{services, unique, PrivateService, Services, World};

#[test]
fn no_ack_without_a_stored_row_and_recovery_after_restart() {
    let (pg, port) = PrivateService::start("pg");
    let svc = Services { db_port: port, db_host: "127.0.0.1".into(), ..services() };
    let w = World::on(svc, "storefail");
    let server = w.start_server();
    let (a, b) = (unique("a"), unique("b"));
    let mut cb = server.connect();
    cb.signup(&b, "pw");
    let mut ca = server.connect();
    ca.signup(&a, "pw");
    ca.open_conversation(&b);
    cb.open_conversation(&a);
    ca.send("before");
    ca.expect(&protocol::sent(true));
    cb.expect(&protocol::message(&a, "before"));

    pg.run("stop");
    ca.send("during outage");
    ca.expect(&protocol::error(text::STORE_FAILED));
    cb.expect_silence(Duration::from_millis(300));
    // The session goes on: another try fails the same way, no SENT.
    ca.send("during outage 2");
    ca.expect(&protocol::error(text::STORE_FAILED));

    pg.run("start");
    ca.send("after");
    ca.expect(&protocol::sent(true));
    cb.expect(&protocol::message(&a, "after"));

    let texts: Vec<String> = w
        .db()
        .query("SELECT message_text FROM messages ORDER BY message_id", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(texts, ["before", "after"]);
    server.wait_log("storing a private message");
}

/// Messages of several senders are committed together; one that cannot be
/// stored (its conversation row is gone) gets `ERROR:` alone, and the
/// others are stored and delivered.
#[test]
fn one_unstorable_message_fails_alone() {
    let w = World::new("badrow");
    let server = w.start_unlimited_server();
    let (a, b, c, d) = (unique("a"), unique("b"), unique("c"), unique("d"));
    let mut clients: Vec<_> = [&a, &b, &c, &d]
        .iter()
        .map(|u| {
            let mut cl = server.connect();
            cl.signup(u, "pw");
            cl
        })
        .collect();
    clients[0].open_conversation(&b);
    clients[2].open_conversation(&d);
    w.db()
        .execute(
            "DELETE FROM conversations WHERE participant1_id IN (SELECT user_id FROM users WHERE username = $1) \
             OR participant2_id IN (SELECT user_id FROM users WHERE username = $1)",
            &[&a],
        )
        .unwrap();

    // c's lines and a's line reach the writer at about the same moment
    // (in the same group more often than not).
    for i in 0..20 {
        clients[2].send(&format!("ok {i}"));
    }
    clients[0].send("lost");
    clients[0].expect(&protocol::error(text::STORE_FAILED));
    for i in 0..20 {
        clients[2].expect(&protocol::sent(true));
        clients[3].expect(&protocol::message(&c, &format!("ok {i}")));
    }
    clients[1].expect_silence(Duration::from_millis(300));
    let stored: i64 = w.db().query_one("SELECT COUNT(*) FROM messages", &[]).unwrap().get(0);
    assert_eq!(stored, 20);
}
