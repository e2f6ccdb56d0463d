//! Section 3: contacts and one-to-one conversations.

use std::time::Duration;

use chatp::protocol::{self, input, text, HISTORY_LIMIT};

use crate::support::{unique, World};

#[test]
fn contact_list_has_broadcast_first_then_users_by_name_with_presence() {
    let w = World::new("private");
    let server = w.start_server();
    let (a, b, c) = (unique("a"), unique("b"), unique("c"));
    server.connect().signup(&c, "pw"); // offline after this connection ends
    let mut cb = server.connect();
    cb.signup(&b, "pw");
    let mut ca = server.connect();
    ca.signup(&a, "pw");
    w.wait_online("c offline", Duration::from_secs(5), |u| !u.contains(&c));

    ca.send(input::MENU_PRIVATE);
    ca.expect(protocol::CONTACT_LIST_START);
    ca.expect(&protocol::broadcast_contact());
    ca.expect(&protocol::contact(&b, true));
    ca.expect(&protocol::contact(&c, false));
    ca.expect(protocol::CONTACT_LIST_END);
    ca.send(&unique("ghost"));
    ca.expect(&protocol::contact_not_found());
    ca.expect(protocol::CONTACT_LIST_START);
    ca.lines_until(protocol::CONTACT_LIST_END);
    ca.send(input::BACK);
    ca.expect_menu();
}

#[test]
fn messages_with_colons_reach_the_online_recipient_and_are_acknowledged() {
    let w = World::new("private");
    let server = w.start_server();
    let (a, b) = (unique("a"), unique("b"));
    let mut cb = server.connect();
    cb.signup(&b, "pw");
    let mut ca = server.connect();
    ca.signup(&a, "pw");
    assert!(ca.open_conversation(&b).is_empty());

    let text_with_colons = "meet at 10:30: room B:12";
    ca.send(text_with_colons);
    ca.expect(&protocol::sent(true));
    cb.expect(&protocol::message(&a, text_with_colons));
    // `bye` in a conversation is a message, not a logout.
    ca.send(input::BYE);
    ca.expect(&protocol::sent(true));
    cb.expect(&protocol::message(&a, input::BYE));
    // Back to the contact list, then the menu.
    ca.send(input::BACK);
    ca.expect(protocol::CONTACT_LIST_START);
    ca.lines_until(protocol::CONTACT_LIST_END);
    ca.send("");
    ca.expect_menu();
}

#[test]
fn offline_recipient_finds_the_message_in_history_after_login() {
    let w = World::new("private");
    let server = w.start_server();
    let (a, b) = (unique("a"), unique("b"));
    server.connect().signup(&b, "pw");
    w.wait_online("b offline", Duration::from_secs(5), |u| !u.contains(&b));
    let mut ca = server.connect();
    ca.signup(&a, "pw");
    ca.open_conversation(&b);
    ca.send("are you there: hello?");
    ca.expect(&protocol::sent(false));

    let mut cb = server.connect();
    cb.login(&b, "pw");
    let history = cb.open_conversation(&a);
    assert_eq!(history.len(), 1);
    let ts_end = history[0].find("] ").expect("timestamp");
    let ts = &history[0][1..ts_end];
    assert_eq!(history[0], protocol::history_line(ts, &a, "are you there: hello?"));
    assert!(ts.len() == 19 && ts.as_bytes()[4] == b'-' && ts.as_bytes()[13] == b':', "{ts}");
}

#[test]
fn history_is_the_last_fifty_in_sending_order() {
    let w = World::new("private");
    let server = w.start_unlimited_server();
    let (a, b) = (unique("a"), unique("b"));
    server.connect().signup(&b, "pw");
    let mut ca = server.connect();
    ca.signup(&a, "pw");
    ca.open_conversation(&b);
    let total = HISTORY_LIMIT as usize + 5;
    for i in 0..total {
        ca.send(&format!("m{i}"));
        ca.expect(&protocol::sent(false));
    }
    // Same timestamps for many rows: the order must come from the ids.
    w.db().execute("UPDATE messages SET timestamp = '2024-01-02 03:04:05'", &[]).unwrap();
    ca.send(input::BACK);
    ca.lines_until(protocol::CONTACT_LIST_END);
    ca.send(&b);
    ca.expect(&protocol::conversation_start(&b));
    let history = ca.lines_until(protocol::CONVERSATION_READY);
    let expected: Vec<String> = (total - HISTORY_LIMIT as usize..total)
        .map(|i| protocol::history_line("2024-01-02 03:04:05", &a, &format!("m{i}")))
        .collect();
    assert_eq!(history, expected);
}

#[test]
fn a_user_logged_in_twice_receives_on_both_sessions() {
    let w = World::new("private");
    let server = w.start_server();
    let (a, b) = (unique("a"), unique("b"));
    let mut b1 = server.connect();
    b1.signup(&b, "pw");
    let mut b2 = server.connect();
    b2.login(&b, "pw");
    let mut ca = server.connect();
    ca.signup(&a, "pw");
    ca.open_conversation(&b);
    ca.send("to both");
    ca.expect(&protocol::sent(true));
    b1.expect(&protocol::message(&a, "to both"));
    b2.expect(&protocol::message(&a, "to both"));
    // One session ends: still online through the other.
    b1.send(input::BYE);
    b1.expect_closed();
    assert!(w.online_users().contains(&b));
    ca.send("still there");
    ca.expect(&protocol::sent(true));
    b2.expect(&protocol::message(&a, "still there"));
    let _ = text::DELIVERED;
}

/// Issue 26: a team of thousands gets a contact list it can read. Beyond
/// `CONTACT_LIST_MAX` other users the list shows the people one has talked
/// to (most recent first), then the others by name, and says how many more
/// there are: as a row the original client prints like a contact
/// (protocol 1), as `CONTACT_LIST_MORE:<n>` for protocol 2. A name beyond
/// the cut still opens its conversation; with fewer users the list is the
/// original's, every one by name.
#[test]
fn a_big_team_gets_a_bounded_contact_list_and_reaches_anyone_by_name() {
    let w = World::new("contacts_big");
    let server = w.start_server();
    let (me, friend) = (unique("me"), unique("zz_friend"));
    let mut c = server.connect();
    c.signup(&me, "pw");
    // A conversation with a user who sorts last by name.
    server.connect().signup(&friend, "pw");
    let history = c.open_conversation(&friend);
    assert!(history.is_empty(), "{history:?}");
    c.send("hello");
    c.line();
    c.send(input::BACK);
    c.lines_until(protocol::CONTACT_LIST_END);
    c.send(input::BACK);
    c.lines_until(protocol::MAIN_MENU_END);

    let extra = protocol::CONTACT_LIST_MAX + 50;
    w.db()
        .execute(
            "INSERT INTO users (username, password_hash, username_key) \
             SELECT 'bulk' || lpad(i::text, 4, '0'), 'x', 'bulk' || lpad(i::text, 4, '0') \
             FROM generate_series(1, $1) i",
            &[&(extra as i32)],
        )
        .unwrap();
    let others = extra as i64 + 1;

    // Protocol 1: the original's rows only.
    c.send(input::MENU_PRIVATE);
    c.expect(protocol::CONTACT_LIST_START);
    let rows = c.lines_until(protocol::CONTACT_LIST_END);
    assert_eq!(rows.len(), 1 + protocol::CONTACT_LIST_MAX + 1, "broadcast, the cut list, the 'more' row");
    assert_eq!(rows[1], protocol::contact(&friend, false), "the person talked to comes first: {:?}", &rows[..3]);
    assert_eq!(rows[2], protocol::contact("bulk0001", false), "then the others by name");
    let more = others - protocol::CONTACT_LIST_MAX as i64;
    assert_eq!(rows.last().unwrap(), &protocol::contact_list_more_row(more));
    // A name not listed opens its conversation; a made-up one does not.
    let unlisted = format!("bulk{extra:04}");
    assert!(!rows.iter().any(|r| r.starts_with(&format!("{unlisted}|"))));
    c.send(&unlisted);
    c.expect(&protocol::conversation_start(&unlisted));
    c.lines_until(protocol::CONVERSATION_READY);
    c.send(input::BACK);
    c.lines_until(protocol::CONTACT_LIST_END);
    c.send("nobody-at-all");
    c.expect(&protocol::contact_not_found());
    c.lines_until(protocol::CONTACT_LIST_END);
    c.send(&me);
    c.expect(&protocol::contact_not_found());

    // Protocol 2: the count as its own line.
    let mut p2 = server.connect();
    p2.hello();
    let answer = p2.login_attempt(&friend, "pw");
    assert_eq!(answer, protocol::auth_success(text::LOGIN_OK));
    p2.lines_until(protocol::MAIN_MENU_END);
    p2.send(input::MENU_PRIVATE);
    p2.expect(protocol::CONTACT_LIST_START);
    let rows = p2.lines_until(protocol::CONTACT_LIST_END);
    assert_eq!(rows.len(), 1 + protocol::CONTACT_LIST_MAX + 1);
    assert!(rows[1].starts_with(&format!("{me}|online|")), "{:?}", &rows[..3]);
    assert_eq!(rows.last().unwrap(), &protocol::contact_list_more(more));

    // Protocol 2: typing the start of a name narrows the list to it, case
    // aside; a long match is cut with its count; nothing matching is not
    // found; a name from the narrowed list opens its conversation.
    let narrowed = |c: &mut crate::support::Client, typed: &str| -> Vec<String> {
        c.send(typed);
        c.expect(protocol::CONTACT_LIST_START);
        c.expect(&protocol::contact_list_matches(typed));
        c.expect(&protocol::broadcast_contact());
        c.lines_until(protocol::CONTACT_LIST_END)
    };
    let rows = narrowed(&mut p2, "BULK00");
    assert_eq!(rows.len(), 99, "bulk0001..bulk0099: {:?}", &rows[..2]);
    assert!(rows[0].starts_with("bulk0001|offline|") && rows[98].starts_with("bulk0099|"));
    let rows = narrowed(&mut p2, "bulk");
    assert_eq!(rows.len(), protocol::CONTACT_LIST_MAX + 1);
    assert_eq!(rows.last().unwrap(), &protocol::contact_list_more(extra as i64 - protocol::CONTACT_LIST_MAX as i64));
    p2.send("nobody-at-all");
    p2.expect(&protocol::contact_not_found());
    p2.lines_until(protocol::CONTACT_LIST_END);
    narrowed(&mut p2, "bulk01");
    p2.send("bulk0123");
    p2.expect(&protocol::conversation_start("bulk0123"));
    // Protocol 1 keeps the original: what is not a name is not found.
    c.lines_until(protocol::CONTACT_LIST_END);
    c.send("bulk00");
    c.expect(&protocol::contact_not_found());
}
