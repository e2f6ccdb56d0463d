//! Who may join (REGISTRATION, invite codes), chat_admin against the real
//! database and Redis, and a user's own password change: sessions of a
//! disabled, deleted or re-passworded user end on every pod at once.

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use chatp::protocol::{self, input, text, ServerLine};
use serde_json::Value;

use crate::client::ClientProc;
use crate::support::{unique, Client, World, NO_RATE_LIMITS};

/// `chat_admin args` on this world's database and Redis: exit code, the
/// JSON lines it printed, stderr.
fn admin(w: &World, args: &[&str], stdin: Option<&str>) -> (i32, Vec<Value>, String) {
    let mut child = w
        .command(env!("CARGO_BIN_EXE_chat_admin"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run chat_admin");
    if let Some(input) = stdin {
        child.stdin.as_mut().unwrap().write_all(input.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect();
    (out.status.code().unwrap_or(-1), lines, String::from_utf8_lossy(&out.stderr).into_owned())
}

pub(crate) fn admin_ok(w: &World, args: &[&str], stdin: Option<&str>) -> Vec<Value> {
    let (code, lines, err) = admin(w, args, stdin);
    assert_eq!(code, 0, "chat_admin {args:?}: {err}");
    lines
}

/// A protocol-2 login; returns the session token.
fn login_v2(c: &mut Client, user: &str, password: &str) -> String {
    c.hello();
    c.send(input::LOGIN);
    c.expect(protocol::LOGIN_PROMPT);
    c.send(user);
    c.send(password);
    c.expect(&protocol::auth_success(text::LOGIN_OK));
    let line = c.line();
    let ServerLine::Session(token) = protocol::parse_server_line(&line) else {
        panic!("expected SESSION, got {line:?}")
    };
    let token = token.to_string();
    c.lines_until(protocol::MAIN_MENU_END);
    token
}

/// The connection gets `line` and then closes, within a couple of seconds.
pub(crate) fn ended_with(c: &mut Client, line: &str) {
    c.stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(c.next_line().as_deref(), Some(line));
    c.expect_closed();
}

#[test]
fn closed_and_invite_registration_refuse_with_the_reason() {
    let w = World::new("reg_modes");
    let closed = w.start_server_with(&[("REGISTRATION", "closed")]);
    let mut c = closed.connect();
    assert_eq!(c.signup_attempt(&unique("x"), "pw"), protocol::auth_failed(text::SIGNUP_CLOSED));
    let mut c = closed.connect();
    assert_eq!(c.hello(), "closed");
    // chat_admin still adds people; they log in.
    let name = unique("carl");
    admin_ok(&w, &["add-user", &name, "--password-stdin"], Some("pw-carl\n"));
    closed.connect().login(&name, "pw-carl");

    let invite = w.start_server_with(&[("REGISTRATION", "invite")]);
    let mut old = invite.connect();
    assert_eq!(old.signup_attempt(&unique("x"), "pw"), protocol::auth_failed(text::INVITE_REQUIRED_OLD_CLIENT));
    let mut c = invite.connect();
    assert_eq!(c.hello(), "invite");
    assert_eq!(c.signup_attempt(&unique("x"), "pw"), protocol::auth_failed(text::INVITE_REQUIRED));
    c.send(&protocol::invite("not-a-code"));
    assert_eq!(c.signup_attempt(&unique("x"), "pw"), protocol::auth_failed(text::INVITE_INVALID));

    let codes = admin_ok(&w, &["invite", "--count", "2", "--expires-hours", "1", "--note", "test"], None);
    let code = |i: usize| codes[i]["invite"].as_str().unwrap().to_string();
    assert_eq!(codes.len(), 2);
    let ivy = unique("ivy");
    c.send(&protocol::invite(&code(0)));
    assert_eq!(c.signup_attempt(&ivy, "pw"), protocol::signup_success(&ivy));
    c.lines_until(protocol::MAIN_MENU_END);
    // One account per code.
    let mut again = invite.connect();
    again.hello();
    again.send(&protocol::invite(&code(0)));
    assert_eq!(again.signup_attempt(&unique("y"), "pw"), protocol::auth_failed(text::INVITE_INVALID));
    // An expired code is refused.
    w.db().execute("UPDATE chatp_invites SET expires_at = CURRENT_TIMESTAMP - interval '1 second'", &[]).unwrap();
    again.send(&protocol::invite(&code(1)));
    assert_eq!(again.signup_attempt(&unique("y"), "pw"), protocol::auth_failed(text::INVITE_INVALID));
    let used_by: Option<i32> = w.db().query_one("SELECT count(used_by)::int4 FROM chatp_invites", &[]).unwrap().get(0);
    assert_eq!(used_by, Some(1));
}

#[test]
fn chat_client_asks_for_the_invite_code() {
    let w = World::new("reg_client");
    let server = w.start_server_with(&[("REGISTRATION", "invite")]);
    let code = admin_ok(&w, &["invite"], None)[0]["invite"].as_str().unwrap().to_string();
    let mut c = ClientProc::start(server.port);
    let name = unique("una");
    c.wait_for("2. Sign Up");
    for l in ["2", &name, "pw", "pw"] {
        c.type_line(l);
    }
    c.wait_for("Invite code:");
    c.type_line(&code);
    c.wait_for(&format!("Welcome {name}!"));
}

#[test]
fn chat_admin_adds_lists_resets_enables_and_deletes() {
    let w = World::new("admin_cmds");
    let server = w.start_unlimited_server();
    let (ann, bob) = (unique("ann"), unique("bob"));
    let added = admin_ok(&w, &["add-user", &ann], None);
    let generated = added[0]["password"].as_str().expect("a generated password").to_string();
    assert!(generated.len() >= 16);
    admin_ok(&w, &["add-user", &bob, "--password-stdin"], Some("pw-bob\n"));
    let (code, _, err) = admin(&w, &["add-user", &bob.to_uppercase()], None);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("exists"), "{err}");
    let (code, _, err) = admin(&w, &["disable", "nobody-here"], None);
    assert_eq!((code, err.contains("no user named \"nobody-here\"")), (1, true), "{err}");
    let (code, _, _) = admin(&w, &["delete", &bob], None);
    assert_eq!(code, 2, "delete without --yes");

    let mut a = server.connect();
    a.login(&ann, &generated);
    let listed = admin_ok(&w, &["list"], None);
    let row = listed.iter().find(|r| r["user"] == ann.as_str()).unwrap();
    assert!(row["last_login"].is_string(), "{row}");
    assert_eq!(row["disabled"], false);

    // A reset ends the live session (original client: ERROR, then closed).
    let reset = admin_ok(&w, &["reset-password", &ann, "--password-stdin"], Some("new-pw\n"));
    assert_eq!(reset[0]["pods_told"], 1);
    ended_with(&mut a, &protocol::error(text::ENDED_PASSWORD_RESET));
    assert_eq!(server.connect().login_attempt(&ann, &generated), protocol::auth_failed(text::INVALID_CREDENTIALS));
    server.connect().login(&ann, "new-pw");

    // Delete: bob's group passes to ann, the conversation goes with him.
    let mut b = server.connect();
    b.login(&bob, "pw-bob");
    let group_name = unique("g");
    let group = b.create_group(&group_name, "d");
    b.send(input::BACK);
    b.lines_until(protocol::MAIN_MENU_END);
    let mut a = server.connect();
    a.login(&ann, "new-pw");
    a.join_and_open_group(group, &group_name);
    let mut a = server.connect();
    a.login(&ann, "new-pw");
    a.open_conversation(&bob);
    a.send("hello bob");
    assert_eq!(a.line(), protocol::sent(true));
    b.expect(&protocol::message(&ann, "hello bob"));
    admin_ok(&w, &["delete", &bob, "--yes"], None);
    ended_with(&mut b, &protocol::error(text::ENDED_DELETED));
    let mut db = w.db();
    let role: String = db
        .query_one("SELECT m.role FROM group_members m JOIN users u USING (user_id) WHERE m.group_id = $1", &[&group])
        .unwrap()
        .get(0);
    assert_eq!(role, "admin");
    let left: i64 = db.query_one("SELECT count(*) FROM messages WHERE message_text = 'hello bob'", &[]).unwrap().get(0);
    assert_eq!(left, 0);
    assert!(!admin_ok(&w, &["list"], None).iter().any(|r| r["user"] == bob.as_str()));
}

#[test]
fn disabling_a_user_ends_their_sessions_on_every_pod_at_once() {
    let w = World::new("admin_disable");
    let (pod_a, pod_b) = (w.start_unlimited_server(), w.start_unlimited_server());
    let dan = unique("dan");
    admin_ok(&w, &["add-user", &dan, "--password-stdin"], Some("pw\n"));
    let mut on_a = pod_a.connect(); // the original client's protocol
    on_a.login(&dan, "pw");
    let mut on_b = pod_b.connect(); // protocol 2
    let token = login_v2(&mut on_b, &dan, "pw");
    drop(pod_a.connect());

    let started = Instant::now();
    let out = admin_ok(&w, &["disable", &dan], None);
    assert_eq!(out[0]["pods_told"], 2);
    ended_with(&mut on_a, &protocol::error(text::ENDED_DISABLED));
    ended_with(&mut on_b, &protocol::session_end(text::ENDED_DISABLED));
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "{took:?}");
    eprintln!("disable: both sessions ended {took:?} after chat_admin started");
    w.wait_online("dan offline", Duration::from_secs(5), |u| !u.contains(&dan));

    // No way back in: login and resume refused.
    assert_eq!(pod_a.connect().login_attempt(&dan, "pw"), protocol::auth_failed(text::ACCOUNT_DISABLED));
    let mut r = pod_b.connect();
    r.hello();
    r.send(&protocol::resume(&dan, &token, Default::default()));
    assert_eq!(r.line(), protocol::auth_failed(text::RESUME_REFUSED));
    assert_eq!(admin_ok(&w, &["list"], None).iter().find(|r| r["user"] == dan.as_str()).unwrap()["disabled"], true);

    admin_ok(&w, &["enable", &dan], None);
    pod_b.connect().login(&dan, "pw");
}

#[test]
fn changing_ones_password_ends_the_other_sessions_only() {
    let w = World::new("own_password");
    let (pod_a, pod_b) = (w.start_server_with(&[NO_RATE_LIMITS]), w.start_server_with(&[NO_RATE_LIMITS]));
    let pat = unique("pat");
    admin_ok(&w, &["add-user", &pat, "--password-stdin"], Some("old-pw\n"));
    let mut here = pod_a.connect();
    let token = login_v2(&mut here, &pat, "old-pw");
    let mut there = pod_b.connect();
    login_v2(&mut there, &pat, "old-pw");

    here.send(input::CHANGE_PASSWORD);
    here.expect(protocol::PASSWORD_PROMPT);
    here.send("wrong");
    here.send("new-pw");
    assert_eq!(here.line(), protocol::password_failed(text::PASSWORD_WRONG));
    here.lines_until(protocol::MAIN_MENU_END);
    here.send(input::CHANGE_PASSWORD);
    here.expect(protocol::PASSWORD_PROMPT);
    here.send("old-pw");
    here.send("new-pw");
    assert_eq!(here.line(), protocol::password_changed());
    here.lines_until(protocol::MAIN_MENU_END);
    ended_with(&mut there, &protocol::session_end(text::ENDED_PASSWORD_CHANGED));

    // This session goes on, and its token still resumes it.
    here.send(input::MENU_BROADCAST);
    here.lines_until(protocol::CONVERSATION_READY);
    drop(here);
    let mut back = pod_a.connect();
    back.hello();
    std::thread::sleep(Duration::from_millis(300));
    back.send(&protocol::resume(&pat, &token, Default::default()));
    assert_eq!(back.line(), protocol::auth_success(text::RESUMED));
    assert_eq!(pod_b.connect().login_attempt(&pat, "old-pw"), protocol::auth_failed(text::INVALID_CREDENTIALS));
    pod_b.connect().login(&pat, "new-pw");

    // The original client keeps its menu: PASSWORD is not an option there.
    let mut old = pod_b.connect();
    old.login(&pat, "new-pw");
    old.send(input::CHANGE_PASSWORD);
    assert_eq!(old.line(), protocol::invalid_option());
}

#[test]
fn chat_client_changes_the_password_and_the_other_client_is_told() {
    let w = World::new("client_password");
    let server = w.start_server();
    let name = unique("cara");
    admin_ok(&w, &["add-user", &name, "--password-stdin"], Some("old-pw\n"));
    let login = |c: &mut ClientProc| {
        c.wait_for("2. Sign Up");
        for l in ["1", &name, "old-pw"] {
            c.type_line(l);
        }
        c.wait_for("'/password' to change your password");
    };
    let (mut first, mut second) = (ClientProc::start(server.port), ClientProc::start(server.port));
    login(&mut first);
    login(&mut second);
    first.type_line("/password");
    for l in ["old-pw", "new-pw", "new-pw"] {
        first.type_line(l);
    }
    first.wait_for(&format!("✅ {}", text::PASSWORD_CHANGED));
    second.wait_for(&format!("⛔ {}", text::ENDED_PASSWORD_CHANGED));
    // Ended for good: no reconnection, exit 1.
    assert_eq!(second.exit_code(), 1);
    assert!(!second.seen.iter().any(|l| l.contains("reconnecting")), "{:?}", second.seen);
    server.connect().login(&name, "new-pw");
}

#[test]
fn times_are_utc_whatever_postgresqls_time_zone() {
    let w = World::new("admin_utc");
    // A PostgreSQL configured for India (+05:30), as an operator's may be.
    let mut db = w.db();
    let name: String = db.query_one("SELECT current_database()", &[]).unwrap().get(0);
    db.batch_execute(&format!("ALTER DATABASE \"{name}\" SET timezone = 'Asia/Kolkata'")).unwrap();
    let server = w.start_server();
    let ann = unique("ann");
    server.connect().signup(&ann, "pw");
    server.connect().login(&ann, "pw");
    let listed = admin_ok(&w, &["list"], None);
    let row = listed.iter().find(|r| r["user"] == ann.as_str()).unwrap();
    for field in ["created_at", "last_login"] {
        let stamp = row[field].as_str().unwrap_or_else(|| panic!("{field} missing: {row}"));
        let off: f64 = w
            .db()
            .query_one("SELECT extract(epoch FROM $1::text::timestamp - (now() AT TIME ZONE 'UTC'))::float8", &[&stamp])
            .unwrap()
            .get(0);
        assert!(off.abs() < 120.0, "{field} {stamp} is {off} s away from UTC now");
    }
}

#[test]
fn a_forged_admin_message_ends_nothing_and_is_counted() {
    let w = World::new("admin_forged");
    let server = w.start_unlimited_server();
    let ann = unique("ann");
    let mut a = server.connect();
    a.signup(&ann, "pw");
    // Someone with the Redis password (and nothing else) tries the old,
    // unsigned format, a made-up signature, and a replay of a genuine
    // message signed with another deployment's key.
    let channel = w.keys().admin_channel();
    let end = chatp::session_end::EndSessions {
        origin: "chat_admin".into(),
        reason: chatp::session_end::EndReason::Disabled,
        except_session: None,
        user: ann.clone(),
    };
    let now = std::time::SystemTime::now();
    for forged in [
        format!("chat_admin\ndisabled\n\n{ann}"),
        format!("v1\n1\n{}\nchat_admin\ndisabled\n\n{ann}", "00".repeat(32)),
        end.seal(b"another deployment's key", now),
    ] {
        let heard: i64 = redis::cmd("PUBLISH").arg(&channel).arg(forged).query(&mut w.redis()).unwrap();
        assert_eq!(heard, 1, "the pod listens on {channel}");
    }
    a.expect_silence(Duration::from_millis(500));
    // Still served.
    a.open_broadcast();
    let ops = crate::ops::ops_port(&server);
    let refused = |why| crate::ops::sample(ops, "chatp_admin_messages_refused_total", &[("why", why)]);
    assert_eq!(refused("malformed") + refused("bad_signature"), 3.0);
    // chat_admin, which holds the key, still ends it.
    admin_ok(&w, &["disable", &ann], None);
    a.stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut told = false;
    while let Some(l) = a.next_line() {
        told |= l == protocol::error(text::ENDED_DISABLED);
    }
    assert!(told);
}
