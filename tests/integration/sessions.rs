//! Protocol 2 on a real server (docs/PROTOCOL.md): `HELLO:2`, resume
//! tokens, ids on notifications, `RESUME` with the replay of what was
//! missed, and the drain on SIGTERM. Protocol-1 clients see none of it.

use std::time::{Duration, Instant};

use chatp::protocol::{self, input, text, LastSeen, MessageKind, ServerLine};

use crate::support::{unique, Client, World, NO_RATE_LIMITS};

/// Says `HELLO:2` and reads the answer (registration open).
fn hello(c: &mut Client) {
    assert_eq!(c.hello(), "open");
}

/// The token of a `SESSION:` line.
fn session_token(c: &mut Client) -> String {
    let line = c.line();
    match protocol::parse_server_line(&line) {
        ServerLine::Session(token) => token.to_string(),
        _ => panic!("expected SESSION:, got {line:?}"),
    }
}

/// Signs up speaking protocol 2; returns the token.
fn signup_v2(c: &mut Client, user: &str) -> String {
    hello(c);
    c.send(input::SIGNUP);
    c.expect(protocol::SIGNUP_PROMPT);
    c.send(user);
    c.send("pw");
    c.expect(&protocol::signup_success(user));
    let token = session_token(c);
    c.expect(&protocol::unread(&[]));
    c.expect_menu();
    token
}

/// The next `MSG_ID` line and the notification after it.
fn notification(c: &mut Client) -> (MessageKind, i64, String) {
    let line = c.line();
    let ServerLine::MsgId(kind, id) = protocol::parse_server_line(&line) else {
        panic!("expected MSG_ID, got {line:?}");
    };
    (kind, id, c.line())
}

fn resume(port: u16, user: &str, token: &str, last: LastSeen) -> (Client, String) {
    let mut c = Client::connect(port);
    hello(&mut c);
    c.send(&protocol::resume(user, token, last));
    let answer = c.line();
    (c, answer)
}

#[test]
fn ids_tokens_resume_and_replay() {
    let w = World::new("sessions");
    let server = w.start_unlimited_server();
    let (a, b, old) = (unique("a"), unique("b"), unique("old"));
    let mut ca = server.connect();
    let token = signup_v2(&mut ca, &a);
    // A protocol-1 client of the same server sees the original lines only.
    let mut co = server.connect();
    co.signup(&old, "pw");
    let mut cb = server.connect();
    cb.signup(&b, "pw");
    cb.open_conversation(&a);
    cb.send("one: with colon");
    cb.expect(&protocol::sent(true));
    let (kind, first_id, line) = notification(&mut ca);
    assert_eq!((kind, line), (MessageKind::Private, protocol::message(&b, "one: with colon")));
    cb.send(input::BACK);
    cb.lines_until(protocol::CONTACT_LIST_END);
    cb.send(input::BACK);
    cb.expect_menu();
    cb.open_broadcast();
    cb.send("to all");
    cb.line();
    let (kind, _, line) = notification(&mut ca);
    assert_eq!(kind, MessageKind::Broadcast);
    assert!(line.starts_with(&format!("BROADCAST:{b}:to all:")), "{line}");
    assert!(co.line().starts_with(&format!("BROADCAST:{b}:to all:")), "protocol 1 gets no MSG_ID");

    // a's connection dies; b writes twice and broadcasts meanwhile.
    ca.reset();
    w.wait_online("a gone", Duration::from_secs(5), |u| !u.contains(&a));
    cb.send(input::BACK);
    cb.expect_menu();
    cb.open_conversation(&a);
    for m in ["missed 1", "missed 2"] {
        cb.send(m);
        cb.expect(&protocol::sent(false));
    }
    let last = LastSeen { private: first_id, ..LastSeen::default() };
    let (mut ca, answer) = resume(server.port, &a, &token, last);
    assert_eq!(answer, protocol::auth_success(text::RESUMED));
    let new_token = session_token(&mut ca);
    assert_ne!(new_token, token);
    // The broadcast a had processed is not in `last`, so it comes again,
    // then the two missed messages, in order, before the menu.
    let replay: Vec<(MessageKind, String)> = (0..3).map(|_| notification(&mut ca)).map(|(k, _, l)| (k, l)).collect();
    assert_eq!(replay[0].0, MessageKind::Broadcast);
    assert_eq!(
        replay[1..],
        [
            (MessageKind::Private, protocol::message(&b, "missed 1")),
            (MessageKind::Private, protocol::message(&b, "missed 2"))
        ]
    );
    ca.expect_menu();
    w.wait_online("a back", Duration::from_secs(5), |u| u.contains(&a));

    // The used token, b's name with a's token, a made-up token: refused.
    for (user, tok) in [(&a, &token), (&b, &new_token), (&a, &"0".repeat(32))] {
        let (_, answer) = resume(server.port, user, tok, LastSeen::default());
        assert_eq!(answer, protocol::auth_failed(text::RESUME_REFUSED), "{user} {tok}");
    }
    // RESUME without HELLO:2 is not a choice.
    let mut c = server.connect();
    c.send(&protocol::resume(&a, &new_token, LastSeen::default()));
    c.expect(&protocol::auth_failed(text::INVALID_CHOICE));
    // bye revokes the token.
    ca.send(input::BYE);
    ca.expect_closed();
    let (_, answer) = resume(server.port, &a, &new_token, LastSeen::default());
    assert_eq!(answer, protocol::auth_failed(text::RESUME_REFUSED));
}

#[test]
fn tokens_expire_after_their_time() {
    let w = World::new("sessions");
    let server = w.start_server_with(&[("RESUME_TTL_SECS", "1")]);
    let a = unique("a");
    let mut ca = server.connect();
    let token = signup_v2(&mut ca, &a);
    ca.reset();
    std::thread::sleep(Duration::from_millis(2500));
    let (_, answer) = resume(server.port, &a, &token, LastSeen::default());
    assert_eq!(answer, protocol::auth_failed(text::RESUME_REFUSED));
}

#[test]
fn sigterm_drains_acknowledgements_then_says_shutdown_and_exits() {
    let w = World::new("sessions");
    let mut server = w.start_server_with(&[NO_RATE_LIMITS, ("DRAIN_SECS", "5")]);
    let (a, b, old) = (unique("a"), unique("b"), unique("old"));
    let mut ca = server.connect();
    let token = signup_v2(&mut ca, &a);
    let mut co = server.connect();
    co.signup(&old, "pw");
    let mut idle = server.connect();
    server.connect().signup(&b, "pw");
    ca.open_conversation(&b);
    // Messages in flight when SIGTERM comes: each acknowledged one is stored.
    let burst: String = (0..50).map(|i| format!("in flight {i}\n")).collect();
    ca.send_raw(burst.as_bytes());
    let started = Instant::now();
    // SAFETY: sending SIGTERM to our own child process.
    unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) };
    let mut acked = 0;
    let mut shutdown_seen = false;
    while let Some(l) = ca.next_line() {
        if l == protocol::sent(false) {
            acked += 1;
        } else if matches!(protocol::parse_server_line(&l), ServerLine::ServerShutdown(_)) {
            shutdown_seen = true;
        }
    }
    assert!(shutdown_seen, "a protocol-2 client is told");
    let stored: i64 =
        w.db().query_one("SELECT COUNT(*) FROM messages WHERE sender_username = $1", &[&a]).unwrap().get(0);
    assert_eq!(stored, acked, "every acknowledged message is stored, every stored one acknowledged");
    // Protocol 1: no new line, just the end; not logged in: closed at once.
    assert_eq!(co.next_line(), None);
    idle.expect_closed();
    let status = server.child.wait().unwrap();
    assert!(status.success());
    let took = started.elapsed();
    eprintln!("drain: {acked} of 50 in-flight messages acknowledged; exit after {took:?}");
    assert!(took < Duration::from_secs(8), "{took:?}");
    // The session can be resumed on another pod.
    let other = w.start_server();
    let (mut c, answer) = resume(other.port, &a, &token, LastSeen::default());
    assert_eq!(answer, protocol::auth_success(text::RESUMED));
    session_token(&mut c);
    c.expect_menu();
}

#[test]
fn unread_messages_are_counted_at_login_and_in_the_contact_list() {
    let w = World::new("sessions");
    let server = w.start_unlimited_server();
    let (a, b) = (unique("a"), unique("b"));
    let mut ca = server.connect();
    signup_v2(&mut ca, &a);
    ca.send(input::BYE);
    ca.expect_closed();
    let mut cb = server.connect();
    cb.signup(&b, "pw");
    cb.open_conversation(&a);
    for m in ["while away 1", "while away 2"] {
        cb.send(m);
        cb.expect(&protocol::sent(false));
    }
    // a logs in speaking protocol 2: told at once, and in the contact list.
    let mut ca = server.connect();
    hello(&mut ca);
    ca.send(input::LOGIN);
    ca.expect(protocol::LOGIN_PROMPT);
    ca.send(&a);
    ca.send("pw");
    ca.expect(&protocol::auth_success(text::LOGIN_OK));
    session_token(&mut ca);
    ca.expect(&protocol::unread(&[(b.clone(), 2)]));
    ca.expect_menu();
    ca.send(input::MENU_PRIVATE);
    ca.expect(protocol::CONTACT_LIST_START);
    ca.expect(&protocol::broadcast_contact());
    ca.expect(&protocol::contact_with_unread(&b, true, 2));
    ca.expect(protocol::CONTACT_LIST_END);
    // Opening the conversation reads them.
    ca.send(&b);
    ca.expect(&protocol::conversation_start(&b));
    // History times in UTC, marked with a Z.
    let history = ca.lines_until(protocol::CONVERSATION_READY);
    assert_eq!(history.len(), 2);
    for (h, text) in history.iter().zip(["while away 1", "while away 2"]) {
        assert!(h.len() > 22 && &h[20..22] == "Z]" && h.ends_with(&format!("] {b}: {text}")), "{h}");
    }
    ca.send(input::BACK);
    ca.expect(protocol::CONTACT_LIST_START);
    ca.expect(&protocol::broadcast_contact());
    ca.expect(&protocol::contact_with_unread(&b, true, 0));
    ca.expect(protocol::CONTACT_LIST_END);
    let unread: i64 = w.db().query_one("SELECT COUNT(*) FROM messages WHERE is_read IS NOT TRUE", &[]).unwrap().get(0);
    assert_eq!(unread, 0);
    // A protocol-1 client's rows keep their two fields.
    cb.send(input::BACK);
    cb.expect(protocol::CONTACT_LIST_START);
    cb.expect(&protocol::broadcast_contact());
    cb.expect(&protocol::contact(&a, true));
}
