//! Framing rules, the main menu, and the end of a connection.

use std::time::Duration;

use chatp::protocol::{self, input, text, MAX_LINE_BYTES};

use crate::support::{unique, World};

#[test]
fn over_long_and_invalid_utf8_lines_are_refused_and_the_session_goes_on() {
    let w = World::new("framing");
    let server = w.start_server();
    let mut c = server.connect();
    // Before login too.
    c.send(&"x".repeat(MAX_LINE_BYTES + 1));
    c.expect(&protocol::error(text::LINE_TOO_LONG));
    c.signup(&unique("fr"), "pw");

    c.send(&"y".repeat(1_000_000));
    c.expect(&protocol::error(text::LINE_TOO_LONG));
    c.send_raw(b"\xff\xfe\xfd\n");
    c.expect(&protocol::error(text::INVALID_UTF8));
    // A line of exactly the limit is a line (here an unknown menu option),
    // and \r\n is accepted.
    c.send(&"z".repeat(MAX_LINE_BYTES));
    c.expect(&protocol::invalid_option());
    c.expect_menu();
    c.send_raw(b"  \r\n");
    c.expect_menu();
    c.send_raw(format!("{}\r\n", input::MENU_BROADCAST).as_bytes());
    c.expect(&protocol::broadcast_start());
}

#[test]
fn menu_redisplays_on_empty_line_and_rejects_unknown_options() {
    let w = World::new("framing");
    let server = w.start_server();
    let mut c = server.connect();
    c.signup(&unique("menu"), "pw");
    c.send("");
    c.expect_menu();
    c.send("9");
    c.expect(&protocol::invalid_option());
    c.expect_menu();
    c.send(input::BYE);
    c.expect_closed();
}

#[test]
fn eof_and_reset_end_the_session_and_clear_presence() {
    let w = World::new("framing");
    let server = w.start_server();
    let (a, b) = (unique("eof"), unique("rst"));
    let mut ca = server.connect();
    ca.signup(&a, "pw");
    let mut cb = server.connect();
    cb.signup(&b, "pw");
    w.wait_online("both online", Duration::from_secs(5), |u| u.contains(&a) && u.contains(&b));

    drop(ca); // EOF
    w.wait_online("EOF user offline", Duration::from_secs(5), |u| !u.contains(&a) && u.contains(&b));
    cb.reset(); // RST, like a crashed client
    w.wait_online("reset user offline", Duration::from_secs(5), |u| u.is_empty());
    server.wait_log(&format!("disconnect {a}@"));
    server.wait_log(&format!("disconnect {b}@"));
}

#[test]
fn start_up_failure_names_the_service() {
    let w = World::new("framing");
    let out = w.server_command().env("DB_HOST", "127.0.0.1").env("DB_PORT", "1").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot reach PostgreSQL at 127.0.0.1:1/"), "{err}");
    // The cause, not the pool's "timed out waiting for connection".
    assert!(err.contains("Connection refused"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    let out = w.server_command().env("DB_PASS", "not-the-password").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("password authentication failed for user"), "{err}");

    let out = w.server_command().env("REDIS_HOST", "127.0.0.1").env("REDIS_PORT", "1").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot reach Redis at 127.0.0.1:1"), "{err}");
    assert!(err.to_lowercase().contains("connection refused"), "{err}");
}

#[test]
fn every_binary_says_its_version() {
    for bin in [
        env!("CARGO_BIN_EXE_chat_server"),
        env!("CARGO_BIN_EXE_chat_client"),
        env!("CARGO_BIN_EXE_chat_autoscaler"),
        env!("CARGO_BIN_EXE_chat_bench"),
        env!("CARGO_BIN_EXE_chat_admin"),
    ] {
        let out = std::process::Command::new(bin).arg("--version").output().unwrap();
        assert!(out.status.success(), "{bin}");
        let name = std::path::Path::new(bin).file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("{name} {}", env!("CARGO_PKG_VERSION")) + " (chatp)"
        );
    }
}
