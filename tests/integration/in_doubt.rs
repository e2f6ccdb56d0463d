//! The message writer's in-doubt resolution (issue 24): its PostgreSQL
//! connection cut by a proxy at a chosen message, the answer is what
//! PostgreSQL holds, never a guess from rows that look alike.

use chatp::protocol::{self, text};

use crate::proxy::{Cut, Proxy};
use crate::support::{services, unique, Client, ServerProc, World, NO_RATE_LIMITS};

/// A server whose PostgreSQL connections go through `proxy` (in the clear,
/// so the proxy can see which statement carries a message), and two users
/// in a conversation.
fn setup(w: &World, proxy: &Proxy) -> (ServerProc, Client, String, String) {
    let port = proxy.port.to_string();
    let server = w.start_server_with(&[NO_RATE_LIMITS, ("DB_PORT", &port), ("DB_SSLMODE", "disable")]);
    let (a, b) = (unique("a"), unique("b"));
    server.connect().signup(&b, "pw");
    let mut ca = server.connect();
    ca.signup(&a, "pw");
    ca.open_conversation(&b);
    // The writer's connection is open.
    ca.send("warm up");
    ca.expect(&protocol::sent(false));
    (server, ca, a, b)
}

fn rows_with(w: &World, text: &str) -> i64 {
    w.db().query_one("SELECT count(*) FROM messages WHERE message_text = $1", &[&text]).unwrap().get(0)
}

#[test]
fn a_message_committed_before_the_cut_is_found_after_any_number_of_other_rows() {
    let w = World::new("doubt_far");
    let proxy = Proxy::start(services().db_port);
    let (_server, mut ca, _a, _b) = setup(&w, &proxy);
    // Another writer (another pod) stores 100,001 rows meanwhile.
    w.db()
        .batch_execute(
            "INSERT INTO messages (conversation_id, sender_id, sender_username, message_text) \
             SELECT conversation_id, sender_id, sender_username, 'elsewhere' FROM messages, generate_series(1, 100001)",
        )
        .unwrap();
    proxy.cut_on(Cut { pattern: b"committed-then-cut".to_vec(), forward: true });
    ca.send("committed-then-cut");
    assert_eq!(ca.line(), protocol::sent(false), "stored, so acknowledged");
    assert_eq!(rows_with(&w, "committed-then-cut"), 1);
}

#[test]
fn a_message_that_never_arrived_is_not_stored_even_if_the_same_text_is_there() {
    let w = World::new("doubt_twin");
    let proxy = Proxy::start(services().db_port);
    let (_server, mut ca, _a, _b) = setup(&w, &proxy);
    // The same sender sent the same text to the same contact from another
    // pod a moment ago.
    w.db()
        .batch_execute(
            "INSERT INTO messages (conversation_id, sender_id, sender_username, message_text) \
             SELECT conversation_id, sender_id, sender_username, 'on my way' FROM messages LIMIT 1",
        )
        .unwrap();
    proxy.cut_on(Cut { pattern: b"on my way".to_vec(), forward: false });
    ca.send("on my way");
    assert_eq!(ca.line(), protocol::error(text::STORE_FAILED), "never reached PostgreSQL: not stored");
    assert_eq!(rows_with(&w, "on my way"), 1, "only the other pod's");
    // And the next one goes through.
    ca.send("next");
    assert_eq!(ca.line(), protocol::sent(false));
}
