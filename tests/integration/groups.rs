//! Section 5: groups from creation to `/leave`.

use std::time::Duration;

use chatp::protocol::{self, input, text};

use crate::support::{unique, World};

#[test]
fn group_life_from_creation_to_leave() {
    let w = World::new("groups");
    let server = w.start_server();
    let (a, b) = (unique("a"), unique("b"));
    let group = unique("team");
    let mut cb = server.connect();
    cb.signup(&b, "pw");
    let mut ca = server.connect();
    ca.signup(&a, "pw");

    // Nothing yet: the empty screens read one line and return.
    ca.send(input::MENU_MY_GROUPS);
    ca.expect_all(&[
        protocol::MY_GROUPS_START.to_string(),
        protocol::no_my_groups(),
        protocol::MY_GROUPS_END.to_string(),
    ]);
    ca.send("anything");
    ca.expect_menu();
    ca.send(input::MENU_BROWSE_GROUPS);
    ca.expect_all(&[
        protocol::BROWSE_GROUPS_START.to_string(),
        protocol::no_groups_available(),
        protocol::BROWSE_GROUPS_END.to_string(),
    ]);
    ca.send("");
    ca.expect_menu();

    let id = ca.create_group(&group, "our: team");
    // b browses: sees it with "Join", joins, enters.
    cb.send(input::MENU_BROWSE_GROUPS);
    cb.expect(protocol::BROWSE_GROUPS_START);
    cb.expect(&protocol::browse_group(id, &group, Some("our: team"), 1, false));
    cb.expect(protocol::BROWSE_GROUPS_END);
    cb.send(&id.to_string());
    cb.expect(&protocol::must_join_first());
    cb.lines_until(protocol::BROWSE_GROUPS_END);
    cb.send(&format!("join:{id}"));
    cb.expect(&protocol::join_success());
    cb.expect(protocol::BROWSE_GROUPS_START);
    cb.expect(&protocol::browse_group(id, &group, Some("our: team"), 2, true));
    cb.expect(protocol::BROWSE_GROUPS_END);
    cb.send(&format!("join:{id}"));
    cb.expect(&protocol::join_failed(text::ALREADY_MEMBER));
    cb.lines_until(protocol::BROWSE_GROUPS_END);
    cb.send("join:999999");
    cb.expect(&protocol::join_failed(text::GROUP_NOT_FOUND));
    cb.lines_until(protocol::BROWSE_GROUPS_END);
    cb.send("join:x");
    cb.expect(&protocol::invalid_join());
    cb.lines_until(protocol::BROWSE_GROUPS_END);
    cb.send("nonsense");
    cb.expect(&protocol::invalid_selection());
    cb.lines_until(protocol::BROWSE_GROUPS_END);
    cb.send(&id.to_string());
    cb.expect(&protocol::group_chat_start(&group, id));
    cb.expect(protocol::GROUP_CHAT_READY);

    // Messages both ways, texts with ':' kept whole.
    ca.send("hi: team");
    ca.expect(&protocol::group_sent());
    cb.expect(&protocol::group_message(&group, &a, "hi: team"));
    cb.send("");
    cb.send("hello");
    cb.expect(&protocol::group_sent());
    ca.expect(&protocol::group_message(&group, &b, "hello"));

    ca.send(input::MEMBERS);
    ca.expect(protocol::GROUP_MEMBERS_START);
    let members = ca.lines_until(protocol::GROUP_MEMBERS_END);
    assert_eq!(members.len(), 2);
    let day = &members[0][members[0].rfind('|').unwrap() + 1..];
    assert_eq!(members[0], protocol::group_member(&a, true, day));
    assert!(members[1].starts_with(&protocol::group_member(&b, false, "")), "{members:?}");

    // b leaves: back to the browse list; a's group now has one member.
    cb.send(input::LEAVE);
    cb.expect(&protocol::leave_result(text::LEFT_GROUP));
    cb.expect(protocol::BROWSE_GROUPS_START);
    cb.expect(&protocol::browse_group(id, &group, Some("our: team"), 1, false));
    cb.expect(protocol::BROWSE_GROUPS_END);
    ca.send("anyone?");
    ca.expect(&protocol::group_sent());
    cb.expect_silence(Duration::from_millis(300));

    // a leaves (last member): the group closes and disappears.
    ca.send(input::BACK);
    ca.expect_menu();
    ca.send(input::MENU_MY_GROUPS);
    ca.expect(protocol::MY_GROUPS_START);
    ca.expect(&protocol::my_group(id, &group, Some("our: team"), 1, true));
    ca.expect(protocol::MY_GROUPS_END);
    ca.send("abc");
    ca.expect(&protocol::invalid_selection());
    ca.lines_until(protocol::MY_GROUPS_END);
    ca.send(&id.to_string());
    ca.expect(&protocol::group_chat_start(&group, id));
    let history = ca.lines_until(protocol::GROUP_CHAT_READY);
    assert_eq!(history.len(), 3, "{history:?}");
    assert!(history[0].ends_with(&format!("] {a}: hi: team")));
    ca.send(input::LEAVE);
    ca.expect(&protocol::leave_result(text::LEFT_GROUP_CLOSED));
    ca.expect_all(&[
        protocol::MY_GROUPS_START.to_string(),
        protocol::no_my_groups(),
        protocol::MY_GROUPS_END.to_string(),
    ]);
    ca.send("");
    ca.expect_menu();
    // The name is free again.
    ca.create_group(&group, "");
}

#[test]
fn members_are_taken_at_send_time() {
    let w = World::new("groups");
    let server = w.start_server();
    let (a, c) = (unique("a"), unique("c"));
    let group = unique("late");
    let mut ca = server.connect();
    ca.signup(&a, "pw");
    let id = ca.create_group(&group, "");
    // c joins after a opened the chat.
    let mut cc = server.connect();
    cc.signup(&c, "pw");
    cc.join_and_open_group(id, &group);
    ca.send("welcome");
    ca.expect(&protocol::group_sent());
    cc.expect(&protocol::group_message(&group, &a, "welcome"));
}

#[test]
fn create_group_refusals() {
    let w = World::new("groups");
    let server = w.start_server();
    let group = unique("dup");
    let mut ca = server.connect();
    ca.signup(&unique("a"), "pw");
    ca.create_group(&group, "first");
    ca.send(input::BACK);
    ca.expect_menu();
    let mut attempt = |name: &str, desc: &str| {
        ca.send(input::MENU_CREATE_GROUP);
        ca.expect(protocol::CREATE_GROUP_PROMPT);
        ca.send(name);
        ca.send(desc);
        let l = ca.line();
        ca.expect_menu();
        l
    };
    assert_eq!(attempt(&group, ""), protocol::create_failed(text::GROUP_NAME_TAKEN));
    assert_eq!(attempt("a:b", ""), protocol::create_failed(&protocol::validate_group_name("a:b").unwrap_err()));
    assert_eq!(attempt(&unique("ok"), "x|y"), protocol::create_failed(text::DESCRIPTION_PIPE));
    // Empty name or back: straight back to the menu.
    ca.send(input::MENU_CREATE_GROUP);
    ca.expect(protocol::CREATE_GROUP_PROMPT);
    ca.send("");
    ca.expect_menu();
}

/// Issue 26: with more than `BROWSE_GROUPS_MAX` groups, browsing shows the
/// newest ones (oldest first, as the original orders them) and says how
/// many older ones there are, as a row the original client prints like a
/// group (protocol 1) or `BROWSE_GROUPS_MORE:<n>` (protocol 2); any group
/// can still be joined by its id.
#[test]
fn browsing_many_groups_shows_the_newest_and_joins_any_by_id() {
    let w = World::new("groups_big");
    let server = w.start_server();
    let extra = protocol::BROWSE_GROUPS_MAX as i32 + 30;
    w.db()
        .execute(
            "INSERT INTO groups (group_name, description) SELECT 'g' || i, 'bulk' FROM generate_series(1, $1) i",
            &[&extra],
        )
        .unwrap();
    let ids: Vec<i32> =
        w.db().query("SELECT group_id FROM groups ORDER BY group_id", &[]).unwrap().iter().map(|r| r.get(0)).collect();
    let mut c = server.connect();
    c.signup(&unique("browser"), "pw");
    c.send(input::MENU_BROWSE_GROUPS);
    c.expect(protocol::BROWSE_GROUPS_START);
    let rows = c.lines_until(protocol::BROWSE_GROUPS_END);
    assert_eq!(rows.len(), protocol::BROWSE_GROUPS_MAX + 1, "the newest groups and the 'more' row");
    let newest = &ids[ids.len() - protocol::BROWSE_GROUPS_MAX..];
    assert!(rows[0].starts_with(&format!("{}|", newest[0])), "oldest of the newest first: {}", rows[0]);
    assert!(rows[protocol::BROWSE_GROUPS_MAX - 1].starts_with(&format!("{}|", ids.last().unwrap())));
    assert_eq!(rows.last().unwrap(), &protocol::browse_more_row(30));
    // The oldest group, not listed, joined by its id.
    c.send(&format!("{}{}", input::JOIN_PREFIX, ids[0]));
    c.expect(&protocol::join_success());

    let mut p2 = server.connect();
    p2.hello();
    p2.signup_attempt(&unique("browser2"), "pw");
    p2.lines_until(protocol::MAIN_MENU_END);
    p2.send(input::MENU_BROWSE_GROUPS);
    p2.expect(protocol::BROWSE_GROUPS_START);
    let rows = p2.lines_until(protocol::BROWSE_GROUPS_END);
    assert_eq!(rows.last().unwrap(), &protocol::browse_groups_more(30));

    // Protocol 2: the start of a group's name narrows the list (case
    // aside, in name order): g1, g10..g19, g100..g130.
    p2.send("G1");
    p2.expect(protocol::BROWSE_GROUPS_START);
    p2.expect(&protocol::browse_groups_matches("G1"));
    let rows = p2.lines_until(protocol::BROWSE_GROUPS_END);
    assert_eq!(rows.len(), 1 + 10 + 31, "{rows:?}");
    assert!(rows[0].contains("|g1|") && rows[1].contains("|g10|") && rows[2].contains("|g100|"), "{rows:?}");
    p2.send("no such group");
    p2.expect(&protocol::invalid_selection());
    p2.lines_until(protocol::BROWSE_GROUPS_END);

    // Protocol 2: pages, newest first: page 2 holds the 30 oldest groups.
    p2.send(&format!("{}2", input::PAGE_PREFIX));
    p2.expect(protocol::BROWSE_GROUPS_START);
    p2.expect(&protocol::browse_groups_page(2, 2));
    let rows = p2.lines_until(protocol::BROWSE_GROUPS_END);
    assert_eq!(rows.len(), 30, "{rows:?}");
    assert!(rows[0].starts_with(&format!("{}|", ids[0])) && rows[29].starts_with(&format!("{}|", ids[29])));
}
