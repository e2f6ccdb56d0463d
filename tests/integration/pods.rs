//! Several pods: two `chat_server` processes sharing PostgreSQL and Redis.

use std::time::{Duration, Instant};

use chatp::protocol::{self, input};

use crate::support::{unique, World, NO_RATE_LIMITS};

/// Short presence TTL so a dead pod is noticed quickly in tests.
const TTL: &[(&str, &str)] = &[("PRESENCE_TTL_SECS", "3"), NO_RATE_LIMITS];

#[test]
fn private_broadcast_and_group_messages_cross_pods_both_ways() {
    let w = World::new("pods");
    let (p1, p2) = (w.start_server_with(TTL), w.start_server_with(TTL));
    let (a, b) = (unique("a"), unique("b"));
    let mut cb = p2.connect();
    cb.signup(&b, "pw");
    let mut ca = p1.connect();
    ca.signup(&a, "pw");

    // a (pod 1) sees b (pod 2) online.
    ca.send(input::MENU_PRIVATE);
    ca.expect(protocol::CONTACT_LIST_START);
    ca.expect(&protocol::broadcast_contact());
    ca.expect(&protocol::contact(&b, true));
    ca.expect(protocol::CONTACT_LIST_END);
    ca.send(&b);
    ca.expect(&protocol::conversation_start(&b));
    ca.expect(protocol::CONVERSATION_READY);
    assert!(cb.open_conversation(&a).is_empty());
    for i in 0..20 {
        ca.send(&format!("a->b {i}: x"));
        ca.expect(&protocol::sent(true));
    }
    for i in 0..20 {
        cb.expect(&protocol::message(&a, &format!("a->b {i}: x")));
    }
    cb.send("b->a");
    cb.expect(&protocol::sent(true));
    ca.expect(&protocol::message(&b, "b->a"));
    ca.send(input::BACK);
    ca.lines_until(protocol::CONTACT_LIST_END);
    ca.send(input::BACK);
    ca.expect_menu();
    cb.send(input::BACK);
    cb.lines_until(protocol::CONTACT_LIST_END);
    cb.send(input::BACK);
    cb.expect_menu();

    // Broadcast both ways.
    ca.open_broadcast();
    ca.send("from pod 1");
    ca.expect(&protocol::broadcast_sent(1, 1));
    assert!(cb.line().starts_with(&format!("BROADCAST:{a}:from pod 1:")));
    cb.open_broadcast();
    cb.send("from pod 2");
    cb.expect(&protocol::broadcast_sent(1, 1));
    assert!(ca.line().starts_with(&format!("BROADCAST:{b}:from pod 2:")));
    ca.send(input::BACK);
    ca.expect_menu();
    cb.send(input::BACK);
    cb.expect_menu();

    // Group both ways.
    let group = unique("g");
    let id = ca.create_group(&group, "");
    cb.join_and_open_group(id, &group);
    ca.send("g1");
    ca.expect(&protocol::group_sent());
    cb.expect(&protocol::group_message(&group, &a, "g1"));
    cb.send("g2");
    cb.expect(&protocol::group_sent());
    ca.expect(&protocol::group_message(&group, &b, "g2"));
}

#[test]
fn users_of_a_killed_pod_leave_presence_within_thirty_seconds() {
    let w = World::new("pods");
    let p1 = w.start_server_with(TTL);
    let mut p2 = w.start_server_with(TTL);
    let (a, b) = (unique("a"), unique("b"));
    let mut ca = p1.connect();
    ca.signup(&a, "pw");
    let mut cb = p2.connect();
    cb.signup(&b, "pw");
    w.wait_online("both online", Duration::from_secs(5), |u| u.len() == 2);

    let killed = Instant::now();
    p2.kill(); // kill -9: no logout, no cleanup
    w.wait_online("b gone", Duration::from_secs(30), |u| u == [a.clone()]);
    eprintln!("dead pod's user left presence after {:?}", killed.elapsed());
    // The surviving pod closed the dead pod's session rows too.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let open: i64 = w
            .db()
            .query_one("SELECT COUNT(*) FROM sessions WHERE pod_id = $1 AND is_active", &[&p2.pod_id])
            .unwrap()
            .get(0);
        if open == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "dead pod's sessions still open");
        std::thread::sleep(Duration::from_millis(100));
    }
    // And a message to b is now saved for later, not "delivered".
    ca.open_conversation(&b);
    ca.send("are you back?");
    ca.expect(&protocol::sent(false));
    drop(cb);
}

/// A message to a user on another pod is answered without waiting for
/// Redis; once that pod is killed (and long before it is reaped), at most
/// one more message is answered "delivered": the next ones say the
/// recipient is offline, and the recipient finds them all after logging in
/// again.
#[test]
fn messages_to_a_killed_pod_are_saved_for_later_before_it_is_reaped() {
    let w = World::new("pods_killed_answer");
    // The default TTL (30 s): the dead pod stays in presence for the test.
    let (p1, mut p2) = (w.start_server_with(&[NO_RATE_LIMITS]), w.start_server_with(&[NO_RATE_LIMITS]));
    let (ann, bob) = (unique("ann"), unique("bob"));
    let mut b = p1.connect();
    b.signup(&bob, "pw");
    let mut a = p2.connect();
    a.signup(&ann, "pw");
    std::thread::sleep(Duration::from_millis(100));
    b.open_conversation(&ann);
    b.send("before");
    b.expect(&protocol::sent(true));
    a.expect(&protocol::message(&bob, "before"));

    let killed = Instant::now();
    p2.kill();
    drop(a);
    let mut answers = Vec::new();
    for i in 0..5 {
        b.send(&format!("after {i}"));
        answers.push(b.line());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(killed.elapsed() < Duration::from_secs(10), "{:?}", killed.elapsed());
    assert!(w.online_users().contains(&ann), "the dead pod must still be in presence for this test to mean anything");
    let delivered = answers.iter().filter(|l| **l == protocol::sent(true)).count();
    assert!(delivered <= 1, "{answers:?}");
    assert_eq!(answers.last().unwrap(), &protocol::sent(false), "{answers:?}");
    let mut a = p1.connect();
    a.login(&ann, "pw");
    let history = a.open_conversation(&bob);
    for i in 0..5 {
        let text = format!("after {i}");
        assert!(history.iter().any(|h| h.contains(&text)), "{text} not in {history:?}");
    }
}

/// A message to a user served by the sender's pod skips Redis only while
/// no other pod holds a session of theirs: a second session elsewhere gets
/// every message, from its login on, also after a restart of that pod.
#[test]
fn a_recipient_on_two_pods_gets_every_message_on_both() {
    let w = World::new("pods_two_sessions");
    let (p1, mut p2) = (w.start_server_with(TTL), w.start_server_with(TTL));
    let (ann, bob) = (unique("ann"), unique("bob"));
    let mut ann_here = p1.connect();
    ann_here.signup(&ann, "pw");
    let mut b = p1.connect();
    b.signup(&bob, "pw");
    b.open_conversation(&ann);
    let mut round = 0;
    let mut send = |b: &mut crate::support::Client| {
        round += 1;
        let text = format!("round {round}");
        b.send(&text);
        assert_eq!(b.line(), protocol::sent(true));
        protocol::message(&bob, &text)
    };
    // Only here: delivered here.
    let m = send(&mut b);
    ann_here.expect(&m);
    // A second session on the other pod gets the next message too.
    let mut ann_there = p2.connect();
    ann_there.login(&ann, "pw");
    std::thread::sleep(Duration::from_millis(100));
    let m = send(&mut b);
    ann_here.expect(&m);
    ann_there.expect(&m);
    // It logs out: the session here still gets them.
    ann_there.send(input::BYE);
    ann_there.expect_closed();
    let m = send(&mut b);
    ann_here.expect(&m);
    // The other pod restarts with the same id and ann logs in there again.
    let pod_id = p2.pod_id.clone();
    p2.kill();
    let p2 = w.start_server_with(&[TTL[0], TTL[1], ("HOSTNAME", &pod_id)]);
    let mut ann_back = p2.connect();
    ann_back.login(&ann, "pw");
    std::thread::sleep(Duration::from_millis(100));
    let m = send(&mut b);
    ann_here.expect(&m);
    ann_back.expect(&m);
}
