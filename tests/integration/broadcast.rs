//! Section 4: the broadcast channel.

use std::time::Duration;

use chatp::protocol::{self, input, Notification};

use crate::support::{unique, World};

#[test]
fn broadcast_reaches_every_other_online_user_and_counts_them() {
    let w = World::new("bcast");
    let server = w.start_server();
    let (a, b, c, d) = (unique("a"), unique("b"), unique("c"), unique("d"));
    server.connect().signup(&d, "pw"); // registered, offline
    let mut cb = server.connect();
    cb.signup(&b, "pw");
    let mut cc = server.connect();
    cc.signup(&c, "pw");
    let mut ca = server.connect();
    ca.signup(&a, "pw");
    w.wait_online("three online", Duration::from_secs(5), |u| u.len() == 3);

    assert!(ca.open_broadcast().is_empty());
    let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
    ca.send("hello all: it's 9:00");
    ca.expect(&protocol::broadcast_sent(2, 2));
    for rx in [&mut cb, &mut cc] {
        match protocol::parse_notification(&rx.line()) {
            Some(Notification::Broadcast { sender, text, unix_ms }) => {
                assert_eq!((sender.as_str(), text.as_str()), (a.as_str(), "hello all: it's 9:00"));
                assert!(unix_ms >= before, "{unix_ms} < {before}");
            }
            other => panic!("expected a broadcast, got {other:?}"),
        }
    }
    ca.expect_silence(Duration::from_millis(200)); // the sender gets no copy

    // History for a later reader, oldest first.
    ca.send("second");
    ca.expect(&protocol::broadcast_sent(2, 2));
    cb.line();
    cc.line();
    ca.send(input::BACK);
    ca.expect_menu();
    let mut cd = server.connect();
    cd.login(&d, "pw");
    let history = cd.open_broadcast();
    assert_eq!(history.len(), 2);
    assert!(history[0].ends_with(&format!("] {a}: hello all: it's 9:00")), "{history:?}");
    assert!(history[1].ends_with(&format!("] {a}: second")), "{history:?}");
}

#[test]
fn broadcast_from_the_contact_list_and_empty_line_leaves() {
    let w = World::new("bcast");
    let server = w.start_server();
    let mut ca = server.connect();
    ca.signup(&unique("a"), "pw");
    ca.send(input::MENU_PRIVATE);
    ca.lines_until(protocol::CONTACT_LIST_END);
    ca.send(input::BROADCAST);
    ca.expect(&protocol::broadcast_start());
    ca.expect(protocol::CONVERSATION_READY);
    ca.send("alone");
    ca.expect(&protocol::broadcast_sent(0, 0));
    ca.send("");
    ca.expect_menu();
}
