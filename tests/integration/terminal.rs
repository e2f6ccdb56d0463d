//! `chat_client` in a real pseudo-terminal, typed into key by key as a
//! person does: a notification arriving mid-line leaves the half line on
//! screen and it is sent whole; arrow keys edit; a long paste is refused
//! whole, never cut.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chatp::protocol;

use crate::support::{unique, World, LINE_TIMEOUT};

/// A process on the slave side of a pty; the test holds the master.
struct Pty {
    master: File,
    child: Child,
    screen: Arc<Mutex<String>>,
}

impl Pty {
    fn spawn(cmd: &mut Command) -> Pty {
        let (mut master, mut slave) = (0, 0);
        let size = libc::winsize { ws_row: 24, ws_col: 100, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: openpty fills two fds; the pointers are to live locals.
        let rc = unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), &size) };
        assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: fresh fds from openpty, each owned once here.
        let (master, slave) = unsafe { (File::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        let io = |fd: &OwnedFd| Stdio::from(fd.try_clone().unwrap());
        cmd.stdin(io(&slave)).stdout(io(&slave)).stderr(io(&slave));
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                libc::ioctl(0, libc::TIOCSCTTY, 0);
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn in a pty");
        drop(slave);
        let screen = Arc::new(Mutex::new(String::new()));
        let (mut reader, mut answer) = (master.try_clone().unwrap(), master.try_clone().unwrap());
        let seen = Arc::clone(&screen);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                // A terminal answers "where is the cursor?".
                if text.contains("\x1b[6n") {
                    let _ = answer.write_all(b"\x1b[1;1R");
                }
                seen.lock().unwrap().push_str(&text);
            }
        });
        Pty { master, child, screen }
    }

    /// Types `keys` one key at a time, as a person does (an escape
    /// sequence is one key).
    fn keys(&mut self, keys: &str) {
        let mut rest = keys;
        while !rest.is_empty() {
            let n = if rest.starts_with("\x1b[") { 3 } else { rest.chars().next().unwrap().len_utf8() };
            self.master.write_all(&rest.as_bytes()[..n]).unwrap();
            self.master.flush().unwrap();
            rest = &rest[n..];
            std::thread::sleep(Duration::from_millis(15));
        }
    }

    /// Writes `text` at once, as a terminal delivers a paste.
    fn paste(&mut self, text: &str) {
        self.master.write_all(text.as_bytes()).unwrap();
        self.master.flush().unwrap();
    }

    /// What was written to the terminal, without its control sequences
    /// (cursor moves, line clears): the text a person reads, in order.
    fn screen(&self) -> String {
        strip_csi(&self.screen.lock().unwrap())
    }

    /// Waits until the screen shows `needle` after byte `from`; returns
    /// where it ends.
    fn wait_for(&self, needle: &str, from: usize) -> usize {
        let deadline = Instant::now() + LINE_TIMEOUT;
        loop {
            let s = self.screen();
            if let Some(i) = s.get(from..).and_then(|rest| rest.find(needle)) {
                return from + i + needle.len();
            }
            assert!(Instant::now() < deadline, "screen never showed {needle:?}:\n{}", s.escape_debug());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn strip_csi(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        } else if c != '\r' {
            out.push(c);
        }
    }
    out
}

impl Drop for Pty {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn typing_survives_notifications_arrows_edit_and_long_pastes_are_refused() {
    let w = World::new("terminal");
    let server = w.start_server();
    let (a, b) = (unique("a"), unique("b"));
    let mut cb = server.connect();
    cb.signup(&b, "pw");
    let mut pty =
        Pty::spawn(Command::new(env!("CARGO_BIN_EXE_chat_client")).args(["127.0.0.1", &server.port.to_string()]));
    let at = pty.wait_for("Choose 1 or 2:", 0);
    pty.keys("2\r");
    let at = pty.wait_for("Username:", at);
    pty.keys(&format!("{a}\r"));
    let at = pty.wait_for("Password:", at);
    pty.keys("pw\r");
    let at = pty.wait_for("Confirm password:", at);
    pty.keys("pw\r");
    let at = pty.wait_for("Choose 1-5", at);
    pty.keys("1\r");
    let at = pty.wait_for("Type a username", at);
    pty.keys(&format!("{b}\r"));
    let at = pty.wait_for("Type a message", at);

    // Half a line typed, then a message arrives.
    pty.keys("hello wor");
    let at = pty.wait_for("hello wor", at);
    cb.open_conversation(&a);
    cb.send("ping: are you there?");
    cb.expect(&protocol::sent(true));
    let at = pty.wait_for("ping: are you there?", at);
    // The half line is drawn again under the notification, then finished.
    let at = pty.wait_for("hello wor", at);
    pty.keys("ld\r");
    cb.expect(&protocol::message(&a, "hello world"));

    // Left arrow, then a correction in the middle of the line.
    pty.keys("helo\x1b[Dl\r");
    cb.expect(&protocol::message(&a, "hello"));
    // Home, End.
    pty.keys("orld\x1b[Hw\x1b[F!\r");
    cb.expect(&protocol::message(&a, "world!"));

    // A 5,000-character paste: refused whole, nothing sent.
    pty.paste(&"p".repeat(5000));
    std::thread::sleep(Duration::from_millis(300));
    pty.keys("\r");
    pty.wait_for("Not sent: the line is 5000 bytes; the limit is 4096 bytes", at);
    cb.expect_silence(Duration::from_millis(300));
    let raw = pty.screen.lock().unwrap().clone();
    assert!(!raw.contains("^[[D"), "escape codes shown as text:\n{}", raw.escape_debug());
}

#[test]
fn a_line_and_its_enter_in_one_read_are_sent_whole() {
    let w = World::new("terminal_ime");
    let server = w.start_server();
    let (a, b) = (unique("a"), unique("b"));
    let mut cb = server.connect();
    cb.signup(&b, "pw");
    let mut pty =
        Pty::spawn(Command::new(env!("CARGO_BIN_EXE_chat_client")).args(["127.0.0.1", &server.port.to_string()]));
    // Every answer in one write, as a paste or a slow SSH link delivers it.
    let at = pty.wait_for("Choose 1 or 2:", 0);
    pty.paste("2\r");
    let at = pty.wait_for("Username:", at);
    pty.paste(&format!("{a}\r"));
    let at = pty.wait_for("Password:", at);
    pty.paste("pw\r");
    let at = pty.wait_for("Confirm password:", at);
    pty.paste("pw\r");
    let at = pty.wait_for("Choose 1-5", at);
    pty.paste("1\r");
    let at = pty.wait_for("Type a username", at);
    pty.paste(&format!("{b}\r"));
    let at = pty.wait_for("Type a message", at);
    // What an input method commits, with its Enter.
    pty.paste("これはテストです ime\r");
    cb.expect(&protocol::message(&a, "これはテストです ime"));
    let at = pty.wait_for("これはテストです ime", at);
    // A notification while nothing is typed, then another whole line.
    cb.open_conversation(&a);
    cb.send("got it");
    cb.expect(&protocol::sent(true));
    let at = pty.wait_for("got it", at);
    pty.paste("ünïcödé and more\r");
    cb.expect(&protocol::message(&a, "ünïcödé and more"));
    pty.paste("back\r");
    let at = pty.wait_for("Contacts", at);
    pty.paste("back\r");
    pty.wait_for("Choose 1-5", at);
    // bye with its Enter logs out at once.
    pty.paste("bye\r");
    let deadline = Instant::now() + Duration::from_secs(5);
    while pty.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "bye and Enter in one write did not log out:\n{}", pty.screen());
        std::thread::sleep(Duration::from_millis(50));
    }
}
