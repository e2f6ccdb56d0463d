//! Issue 22, defence in depth, against real servers: a panic in a
//! connection's thread gives everything back; account changes end logins
//! and resumes that were in flight; invite codes are checked first;
//! wrong current passwords are throttled; rate limits and a session cap
//! per user; resumes throttled; ended sessions purged.

use std::time::{Duration, Instant};

use chatp::protocol::{self, input, text, LastSeen, ServerLine};

use crate::accounts::{admin_ok, ended_with};
use crate::ops::{get, ops_port, sample, wait_status};
use crate::support::{unique, Client, World};

/// The line the test build's fault hook panics on.
const PANIC_LINE: &str = "please-panic-now";

fn needs_fault_hooks() {
    assert!(
        chatp::fault::ENABLED,
        "this test needs the test-only fault hooks: cargo test --features fault-hooks (scripts/test.sh does)"
    );
}

/// A protocol-2 sign-up; returns the session token.
fn signup_v2(c: &mut Client, user: &str, password: &str) -> String {
    c.hello();
    c.send(input::SIGNUP);
    c.expect(protocol::SIGNUP_PROMPT);
    c.send(user);
    c.send(password);
    c.expect(&protocol::signup_success(user));
    let line = c.line();
    let ServerLine::Session(token) = protocol::parse_server_line(&line) else {
        panic!("expected SESSION, got {line:?}")
    };
    let token = token.to_string();
    c.lines_until(protocol::MAIN_MENU_END);
    token
}

fn live_sessions(w: &World, user: &str) -> i64 {
    w.db()
        .query_one(
            "SELECT count(*) FROM sessions s JOIN users u USING (user_id) WHERE u.username = $1 AND s.is_active",
            &[&user],
        )
        .unwrap()
        .get(0)
}

#[test]
fn a_panicking_connection_gives_back_its_slot_session_and_presence_and_the_pod_serves_on() {
    needs_fault_hooks();
    let w = World::new("panic");
    let server = w.start_server_with(&[("MAX_CONNECTIONS", "3"), ("CHATP_FAULT_PANIC_ON_LINE", PANIC_LINE)]);
    let ops = ops_port(&server);
    let (ann, bob) = (unique("ann"), unique("bob"));
    server.connect().signup(&bob, "pw-b");

    // The lines that panicked the authentication parser once, three times
    // each: whatever they get, the slots come back.
    for line in ["INVITE", "INVITE ", " INVITE"].repeat(3) {
        let mut c = server.connect();
        c.send(line);
        c.send("");
        c.stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        while c.next_line().is_some() {}
    }
    // Before login: ten panics in a row on a pod of three slots.
    for _ in 0..10 {
        let mut c = server.connect();
        c.send(PANIC_LINE);
        c.expect_closed();
    }
    // After login, in the main menu of a protocol-2 session.
    let mut a = server.connect();
    let token = signup_v2(&mut a, &ann, "pw-a");
    w.wait_online("ann online", Duration::from_secs(5), |u| u.contains(&ann));
    assert_eq!(live_sessions(&w, &ann), 1);
    a.send(PANIC_LINE);
    a.expect_closed();

    // Everything ann's connection held is given back: presence, the
    // session row; its token still resumes (it was not a logout).
    w.wait_online("ann offline", Duration::from_secs(5), |u| !u.contains(&ann));
    assert_eq!(live_sessions(&w, &ann), 0);
    assert_eq!(sample(ops, "chatp_thread_panics_total", &[]), 11.0);
    assert_eq!(sample(ops, "chatp_connections", &[("state", "logged_in")]), 0.0);
    assert_eq!(sample(ops, "chatp_connections", &[("state", "authenticating")]), 0.0);
    let log = server.log_text();
    assert!(log.contains("its thread panicked"), "the panic is logged with the peer:\n{log}");
    // All three slots are free: three users at once, and the pod is ready.
    let mut held = Vec::new();
    let mut r = Client::connect(server.port);
    r.hello();
    r.send(&protocol::resume(&ann, &token, LastSeen::default()));
    assert_eq!(r.line(), protocol::auth_success(text::RESUMED));
    held.push(r);
    for _ in 0..2 {
        let mut c = server.connect();
        c.login(&bob, "pw-b");
        held.push(c);
    }
    // Full now: /readyz says so (a pod that cannot take a login is not
    // ready); one more client is told.
    let why = wait_status(ops, "/readyz", 503, Duration::from_secs(5));
    assert!(why.contains("full"), "{why}");
    assert_eq!(get(ops, "/healthz").0, 200);
    let extra = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    extra.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut told = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(extra), &mut told).unwrap();
    assert_eq!(told.trim_end(), protocol::error(text::SERVER_FULL));
    drop(held);
    wait_status(ops, "/readyz", 200, Duration::from_secs(5));
}

#[test]
fn logins_and_resumes_in_flight_when_an_account_change_commits_do_not_survive_it() {
    let w = World::new("in_flight");
    let server = w.start_unlimited_server();
    let port = server.port;
    let (ann, dan) = (unique("ann"), unique("dan"));
    let mut owner = server.connect();
    let stolen = signup_v2(&mut owner, &ann, "old-pw");
    // The owner's connection drops: its token (which the attacker copied)
    // can resume.
    drop(owner);
    std::thread::sleep(Duration::from_millis(300));

    // The attacker resumes while a lock on `sessions` holds every new
    // session row back; meanwhile the password is reset.
    let mut blocker = w.db();
    let mut tx = blocker.transaction().unwrap();
    tx.execute("LOCK TABLE sessions IN SHARE MODE", &[]).unwrap();
    let attacker = std::thread::spawn({
        let (ann, stolen) = (ann.clone(), stolen.clone());
        move || {
            let mut c = Client::connect(port);
            c.hello();
            c.send(&protocol::resume(&ann, &stolen, LastSeen::default()));
            c
        }
    });
    std::thread::sleep(Duration::from_millis(800));
    admin_ok(&w, &["reset-password", &ann, "--password-stdin"], Some("new-pw\n"));
    std::thread::sleep(Duration::from_millis(300));
    tx.commit().unwrap();
    let mut a = attacker.join().unwrap();
    // Answered AUTH_SUCCESS and a token before the check, then ended.
    assert_eq!(a.line(), protocol::auth_success(text::RESUMED));
    let line = a.line();
    let ServerLine::Session(token_after) = protocol::parse_server_line(&line) else {
        panic!("expected SESSION, got {line:?}")
    };
    let token_after = token_after.to_string();
    ended_with(&mut a, &protocol::session_end(text::ENDED_PASSWORD_CHANGED));
    // Neither token resumes; no session of ann stays open.
    for token in [&stolen, &token_after] {
        let mut c = Client::connect(port);
        c.hello();
        c.send(&protocol::resume(&ann, token, LastSeen::default()));
        assert_eq!(c.line(), protocol::auth_failed(text::RESUME_REFUSED));
    }
    assert_eq!(live_sessions(&w, &ann), 0);
    server.connect().login(&ann, "new-pw");

    // A user disabled while their login is in flight keeps no session.
    admin_ok(&w, &["add-user", &dan, "--password-stdin"], Some("pw\n"));
    let mut tx = blocker.transaction().unwrap();
    tx.execute("LOCK TABLE sessions IN SHARE MODE", &[]).unwrap();
    let login = std::thread::spawn({
        let dan = dan.clone();
        move || {
            let mut c = Client::connect(port);
            c.send(input::LOGIN);
            c.send(&dan);
            c.send("pw");
            c
        }
    });
    std::thread::sleep(Duration::from_millis(800));
    admin_ok(&w, &["disable", &dan], None);
    std::thread::sleep(Duration::from_millis(300));
    tx.commit().unwrap();
    let mut d = login.join().unwrap();
    d.expect(protocol::LOGIN_PROMPT);
    assert_eq!(d.line(), protocol::auth_success(text::LOGIN_OK));
    // The original client's protocol: ERROR with the reason, then closed,
    // before any menu.
    ended_with(&mut d, &protocol::error(text::ENDED_DISABLED));
    assert_eq!(live_sessions(&w, &dan), 0);
}

#[test]
fn a_bogus_invite_code_says_the_same_for_any_name_and_refusals_count() {
    let w = World::new("invite_first");
    let server = w.start_server_with(&[("REGISTRATION", "invite")]);
    let taken = unique("taken");
    admin_ok(&w, &["add-user", &taken, "--password-stdin"], Some("pw\n"));
    let bogus = protocol::auth_failed(text::INVITE_INVALID);
    let mut c = server.connect();
    c.hello();
    // The code is checked before the name: a taken name, a free one and
    // an invalid one all get the invite's answer.
    for name in [taken.as_str(), &unique("free")] {
        c.send(&protocol::invite("not-a-code"));
        assert_eq!(c.signup_attempt(name, "pw"), bogus, "{name}");
    }
    // The third refusal closes the connection, as failed logins do.
    c.send(&protocol::invite("not-a-code"));
    assert_eq!(c.signup_attempt("a:b", "pw"), protocol::auth_failed(text::TOO_MANY_FAILURES));
    c.expect_closed();
    // No account was made, and no hash computed (none asked of the pool).
    let log = server.log_text();
    assert!(!log.contains("signup of"), "a name was looked at:\n{log}");
}

#[test]
fn wrong_current_passwords_are_throttled_and_the_third_ends_the_session() {
    let w = World::new("pw_guess");
    let server = w.start_unlimited_server();
    let ann = unique("ann");
    let mut c = server.connect();
    let token = signup_v2(&mut c, &ann, "right");
    let wrong = protocol::password_failed(text::PASSWORD_WRONG);
    let started = Instant::now();
    for i in 0..3 {
        c.send(input::CHANGE_PASSWORD);
        c.expect(protocol::PASSWORD_PROMPT);
        c.send(&format!("guess{i}"));
        c.send("new");
        if i < 2 {
            assert_eq!(c.line(), wrong);
            c.lines_until(protocol::MAIN_MENU_END);
        } else {
            assert_eq!(c.line(), protocol::password_failed(text::PASSWORD_TOO_MANY_WRONG));
        }
    }
    c.expect_closed();
    // The guesses counted as failed logins on the name: the next login
    // waits its turn (1 s after three failures).
    let t = Instant::now();
    server.connect().login(&ann, "right");
    assert!(t.elapsed() >= Duration::from_millis(900), "not throttled: {:?}", t.elapsed());
    eprintln!("3 wrong current passwords in {:?}", started.elapsed());
    // The session's token died with it: a thief cannot come back for more.
    let mut r = server.connect();
    r.hello();
    r.send(&protocol::resume(&ann, &token, LastSeen::default()));
    assert_eq!(r.line(), protocol::auth_failed(text::RESUME_REFUSED));
    // The password is unchanged.
    server.connect().login(&ann, "right");
}

#[test]
fn rate_limits_hold_per_user_across_sessions_and_sessions_per_user_are_capped() {
    let w = World::new("per_user");
    let server = w.start_server_with(&[("MAX_SESSIONS_PER_USER", "8"), ("BROADCAST_BURST", "5")]);
    let ann = unique("ann");
    server.connect().signup(&ann, "pw");
    let mut sessions: Vec<Client> = (0..8)
        .map(|_| {
            let mut c = server.connect();
            c.login(&ann, "pw");
            c.open_broadcast();
            c
        })
        .collect();
    // One more is refused with the reason (and may log in once one ends).
    let mut ninth = server.connect();
    assert_eq!(ninth.login_attempt(&ann, "pw"), protocol::auth_failed(text::TOO_MANY_SESSIONS));
    // 40 broadcasts over 8 sessions: one user's burst, not eight.
    let mut accepted = 0;
    for i in 0..40 {
        let c = &mut sessions[i % 8];
        c.send(&format!("b{i}"));
        // Skip the other sessions' broadcasts; the answer is an
        // acknowledgement or the refusal.
        let answer = loop {
            let l = c.line();
            if l == protocol::error(text::RATE_LIMITED) || protocol::parse_ack(&l).is_some() {
                break l;
            }
        };
        if answer != protocol::error(text::RATE_LIMITED) {
            accepted += 1;
        }
    }
    assert!((5..=6).contains(&accepted), "{accepted} of 40 broadcasts accepted");
    drop(sessions.pop());
    std::thread::sleep(Duration::from_millis(500));
    ninth.login(&ann, "pw");
}

#[test]
fn resumes_are_throttled_per_user_and_ended_sessions_are_purged() {
    let w = World::new("purge");
    let server = w.start_server_with(&[
        ("RESUME_BURST", "3"),
        ("RESUME_RATE", "2"),
        ("SESSION_PURGE_SECS", "1"),
        ("RESUME_TTL_SECS", "2"),
    ]);
    let ann = unique("ann");
    let mut c = server.connect();
    let mut token = signup_v2(&mut c, &ann, "pw");
    // Resume after resume: three go, the fourth is refused at once (its
    // token still good), and goes after the rate's wait.
    let mut refused = 0;
    for _ in 0..4 {
        drop(c);
        let mut r = Client::connect(server.port);
        r.hello();
        r.send(&protocol::resume(&ann, &token, LastSeen::default()));
        let answer = r.line();
        if answer == protocol::auth_failed(text::TOO_MANY_RESUMES) {
            refused += 1;
            std::thread::sleep(Duration::from_millis(700));
            r.send(&protocol::resume(&ann, &token, LastSeen::default()));
            assert_eq!(r.line(), protocol::auth_success(text::RESUMED));
        } else {
            assert_eq!(answer, protocol::auth_success(text::RESUMED));
        }
        let line = r.line();
        let ServerLine::Session(t) = protocol::parse_server_line(&line) else { panic!("expected SESSION: {line:?}") };
        token = t.to_string();
        r.lines_until(protocol::MAIN_MENU_END);
        c = r;
    }
    assert_eq!(refused, 1);
    // Logins and logouts: ended rows beyond the newest 20 per user go, and
    // expired resume tokens too, at the next purge (every second here).
    c.send(input::BYE);
    for _ in 0..30 {
        let mut l = server.connect();
        l.login(&ann, "pw");
        l.send(input::BYE);
        l.expect_closed();
    }
    let dropped = {
        let mut d = server.connect();
        signup_v2(&mut d, &unique("gone"), "pw");
        d
    };
    drop(dropped); // its token expires after RESUME_TTL_SECS
    let deadline = Instant::now() + Duration::from_secs(10);
    let (mut rows, mut tokens) = (0i64, 0i64);
    while Instant::now() < deadline {
        let mut db = w.db();
        rows = db
            .query_one("SELECT count(*) FROM sessions s JOIN users u USING (user_id) WHERE u.username = $1", &[&ann])
            .unwrap()
            .get(0);
        tokens = db.query_one("SELECT count(*) FROM chatp_resume_tokens", &[]).unwrap().get(0);
        if rows <= chatp::db_manager::ENDED_SESSIONS_KEPT && tokens == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(rows <= chatp::db_manager::ENDED_SESSIONS_KEPT, "{rows} session rows of ann kept");
    assert_eq!(tokens, 0, "expired resume tokens are purged");
}
