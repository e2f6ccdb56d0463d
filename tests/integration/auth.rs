//! Section 1 (authentication), sessions and password storage.

use chatp::protocol::{self, input, text};
use sha2::{Digest, Sha256};

use crate::support::{unique, World};

#[test]
fn signup_logout_then_login_again() {
    let w = World::new("auth");
    let server = w.start_server();
    let name = unique("ann");
    let mut c = server.connect();
    c.signup(&name, "pw1");
    c.send(input::BYE);
    c.expect_closed();

    let mut c = server.connect();
    c.login(&name, "pw1");
    // The stored hash is Argon2id, never the password.
    let hash: String =
        w.db().query_one("SELECT password_hash FROM users WHERE username = $1", &[&name]).unwrap().get(0);
    assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
}

#[test]
fn failures_say_nothing_about_which_part_was_wrong_and_allow_retry() {
    let w = World::new("auth");
    let server = w.start_server();
    let name = unique("bob");
    server.connect().signup(&name, "right");

    let mut c = server.connect();
    let invalid = protocol::auth_failed(text::INVALID_CREDENTIALS);
    assert_eq!(c.login_attempt(&name, "wrong"), invalid);
    assert_eq!(c.login_attempt(&unique("nobody"), "right"), invalid);
    c.send("HELLO");
    c.expect(&protocol::auth_failed(text::INVALID_CHOICE));
    c.login(&name, "right");
    // A refused sign-up counts as a failed login does: two failures and
    // a taken name close the connection.
    let mut c = server.connect();
    assert_eq!(c.login_attempt(&name, "wrong"), invalid);
    assert_eq!(c.login_attempt(&name, "wrong"), invalid);
    assert_eq!(c.signup_attempt(&name, "x"), protocol::auth_failed(text::TOO_MANY_FAILURES));
    c.expect_closed();
}

#[test]
fn signup_refuses_bad_names_and_empty_passwords() {
    let w = World::new("auth");
    let server = w.start_server();
    for bad in ["a:b", "a|b", "back", &"x".repeat(51)] {
        let reason = protocol::validate_username(bad).unwrap_err();
        assert_eq!(server.connect().signup_attempt(bad, "pw"), protocol::auth_failed(&reason));
    }
    assert_eq!(server.connect().signup_attempt(&unique("carl"), ""), protocol::auth_failed(text::PASSWORD_EMPTY));
    let count: i64 = w.db().query_one("SELECT COUNT(*) FROM users", &[]).unwrap().get(0);
    assert_eq!(count, 0);
}

#[test]
fn empty_line_or_eof_during_authentication_closes() {
    let w = World::new("auth");
    let server = w.start_server();
    let mut c = server.connect();
    c.send("");
    c.expect_closed();
    let mut c = server.connect();
    assert_eq!(c.login_attempt("x", "y"), protocol::auth_failed(text::INVALID_CREDENTIALS));
    c.send("");
    c.expect_closed();
}

#[test]
fn legacy_sha256_hash_logs_in_and_is_upgraded() {
    let w = World::new("auth");
    let server = w.start_server(); // applies the schema
    let name = unique("old");
    let legacy = hex::encode(Sha256::digest(b"python-era"));
    w.db().execute("INSERT INTO users (username, password_hash) VALUES ($1, $2)", &[&name, &legacy]).unwrap();

    let mut c = server.connect();
    assert_eq!(c.login_attempt(&name, "wrong"), protocol::auth_failed(text::INVALID_CREDENTIALS));
    c.login(&name, "python-era");
    let hash: String =
        w.db().query_one("SELECT password_hash FROM users WHERE username = $1", &[&name]).unwrap().get(0);
    assert!(hash.starts_with("$argon2id$"), "legacy hash not upgraded: {hash}");
    c.send(input::BYE);
    c.expect_closed();
    server.connect().login(&name, "python-era");
}

#[test]
fn a_session_row_per_login_closed_at_logout_and_at_eof() {
    let w = World::new("auth");
    let server = w.start_server();
    let name = unique("sam");
    let mut c = server.connect();
    c.signup(&name, "pw");
    let active = |w: &World| -> Vec<(bool, bool, Option<String>)> {
        w.db()
            .query(
                "SELECT s.is_active, s.logout_time IS NOT NULL, s.pod_id FROM sessions s \
                 JOIN users u USING (user_id) WHERE u.username = $1 ORDER BY session_id",
                &[&name],
            )
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect()
    };
    assert_eq!(active(&w), vec![(true, false, Some(server.pod_id.clone()))]);
    c.send(input::BYE);
    c.expect_closed();
    assert_eq!(active(&w)[0], (false, true, Some(server.pod_id.clone())));

    let mut c = server.connect();
    c.login(&name, "pw");
    drop(c); // EOF, no bye
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while active(&w)[1].0 {
        assert!(std::time::Instant::now() < deadline, "session not closed after EOF");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
