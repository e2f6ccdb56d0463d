//! `chat_client` driven through pipes against a real server: what a person
//! sees and how the program ends.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use crate::support::{unique, World, LINE_TIMEOUT};

pub struct ClientProc {
    child: Child,
    stdin: Option<ChildStdin>,
    out: Receiver<(Instant, String)>,
    pub seen: Vec<String>,
    /// When each line of `seen` arrived.
    arrived: Vec<Instant>,
}

impl ClientProc {
    pub fn start(port: u16) -> ClientProc {
        Self::start_with(port, &[])
    }

    pub fn start_with(port: u16, args: &[&str]) -> ClientProc {
        Self::start_with_host("127.0.0.1", &port.to_string(), args)
    }

    pub fn start_with_host(host: &str, port: &str, args: &[&str]) -> ClientProc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_chat_client"))
            .args([host, port])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn chat_client");
        let stdout = child.stdout.take().unwrap();
        let (tx, out) = crossbeam_channel::unbounded();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send((Instant::now(), line));
            }
        });
        let stdin = child.stdin.take();
        ClientProc { child, stdin, out, seen: Vec::new(), arrived: Vec::new() }
    }

    /// Takes every line that arrives within `quiet` of the last one.
    pub fn drain_output(&mut self, quiet: Duration) {
        while let Ok((t, l)) = self.out.recv_timeout(quiet) {
            self.arrived.push(t);
            self.seen.push(l);
        }
    }

    /// From each "Connection lost" line to the next "Reconnected" line.
    pub fn resume_times(&self) -> Vec<Duration> {
        let mut out = Vec::new();
        let mut lost = None;
        for (l, t) in self.seen.iter().zip(&self.arrived) {
            if l.contains("Connection lost; reconnecting") {
                lost = Some(*t);
            } else if l.contains("Reconnected; back where you were") {
                if let Some(at) = lost.take() {
                    out.push(t.duration_since(at));
                }
            }
        }
        out
    }

    pub fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Waits for an output line containing `needle`; returns it.
    pub fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + LINE_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.out.recv_timeout(left) {
                Ok((t, l)) => {
                    self.arrived.push(t);
                    self.seen.push(l.clone());
                    if l.contains(needle) {
                        return l;
                    }
                }
                Err(_) => panic!("no output line with {needle:?}; saw:\n{}", self.seen.join("\n")),
            }
        }
    }

    pub fn signup(&mut self, name: &str, pw: &str) {
        self.wait_for("2. Sign Up");
        for l in ["2", name, pw, pw] {
            self.type_line(l);
        }
        self.wait_for(&format!("Welcome {name}!"));
        self.wait_for("Choose 1-5");
    }

    pub fn exit_code(&mut self) -> i32 {
        let deadline = Instant::now() + LINE_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(Instant::now() < deadline, "client did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ClientProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn two_clients_chat_privately_broadcast_and_in_a_group() {
    let w = World::new("client");
    let server = w.start_server();
    let (a, b) = (unique("ann"), unique("bob"));
    let mut ca = ClientProc::start(server.port);
    ca.signup(&a, "pw-a");
    let mut cb = ClientProc::start(server.port);
    cb.signup(&b, "pw-b");

    // Private, each way; texts with ':' shown whole.
    ca.type_line("1");
    ca.wait_for(&format!("🟢 {b}"));
    ca.type_line(&b);
    ca.wait_for(&format!("=== Chat with {b} ==="));
    ca.type_line("hi: there: 10:30");
    ca.wait_for("✓ Message delivered");
    cb.wait_for(&format!("💬 {a}: hi: there: 10:30"));
    cb.type_line("1");
    cb.wait_for("=== Contacts ===");
    cb.type_line(&a);
    cb.wait_for(&format!("] {a}: hi: there: 10:30")); // history
    cb.type_line("hello ann");
    ca.wait_for(&format!("💬 {b}: hello ann"));

    // Broadcast from a; b is in a conversation and still sees it at once.
    ca.type_line("back");
    ca.wait_for("=== Contacts ===");
    ca.type_line("BROADCAST");
    ca.wait_for("BROADCAST CHANNEL");
    ca.type_line("all: listen");
    ca.wait_for("Broadcast sent to 1 online users (of 1 total)");
    cb.wait_for(&format!("📢 {a}: all: listen"));

    // A group created by a, joined by b.
    ca.type_line("back");
    ca.wait_for("Choose 1-5");
    ca.type_line("5");
    ca.wait_for("Group name");
    let group = unique("crew");
    ca.type_line(&group);
    ca.wait_for("Description");
    ca.type_line("the crew");
    let created = ca.wait_for("Group created successfully");
    let id: String = created.rsplit("(id ").next().unwrap().trim_end_matches(')').to_string();
    ca.type_line("yes");
    ca.wait_for(&format!("=== 👥 {group} (#{id}) ==="));
    cb.type_line("back");
    cb.wait_for("=== Contacts ===");
    cb.type_line("back");
    cb.wait_for("Choose 1-5");
    cb.type_line("4");
    cb.wait_for(&format!("[{id}] {group} - the crew (1 members) Join"));
    cb.type_line(&format!("join:{id}"));
    cb.wait_for("Successfully joined group");
    cb.type_line(&id);
    cb.wait_for(&format!("=== 👥 {group} (#{id}) ==="));
    cb.type_line("crew: assemble");
    ca.wait_for(&format!("👥 [{group}] {b}: crew: assemble"));

    // bye at the main menu: exit 0; then log in again.
    ca.type_line("back");
    ca.wait_for("Choose 1-5");
    ca.type_line("bye");
    ca.wait_for("Goodbye!");
    assert_eq!(ca.exit_code(), 0);
    let mut again = ClientProc::start(server.port);
    again.wait_for("2. Sign Up");
    for l in ["1", &a, "wrong"] {
        again.type_line(l);
    }
    again.wait_for("Invalid username or password");
    again.wait_for("Try again?");
    for l in ["yes", "1", &a, "pw-a"] {
        again.type_line(l);
    }
    again.wait_for("Login successful");
    // Ctrl-D ends cleanly too.
    again.stdin = None;
    again.wait_for("Goodbye!");
    assert_eq!(again.exit_code(), 0);
}

#[test]
fn signup_checks_passwords_before_sending() {
    let w = World::new("client");
    let server = w.start_server();
    let mut c = ClientProc::start(server.port);
    c.wait_for("2. Sign Up");
    for l in ["2", &unique("x"), "one", "two"] {
        c.type_line(l);
    }
    c.wait_for("Passwords do not match");
    for l in ["2", &unique("x"), ""] {
        c.type_line(l);
    }
    c.wait_for("Password cannot be empty");
    let name = unique("y");
    c.signup(&name, "ok");
}

#[test]
fn refused_connection_and_lost_server_end_cleanly() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let out = Command::new(env!("CARGO_BIN_EXE_chat_client")).args(["127.0.0.1", &port.to_string()]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        format!("cannot connect to 127.0.0.1:{port}: connection refused")
    );

    let w = World::new("client");
    let mut server = w.start_server();
    let mut c = ClientProc::start_with(server.port, &["--reconnect-for", "1"]);
    c.signup(&unique("z"), "pw");
    server.kill();
    // A protocol-2 session tries to resume, then gives up.
    c.wait_for("Connection lost; reconnecting");
    c.wait_for("Could not reconnect within 1 s");
    assert_eq!(c.exit_code(), 1);
}

#[test]
fn every_question_is_asked_and_what_the_server_would_misread_stays_here() {
    let w = World::new("client");
    let server = w.start_server();
    let mut c = ClientProc::start(server.port);
    c.signup(&unique("q"), "pw");
    // The server waits for "enter it now?" without asking: the client asks.
    let group = unique("g");
    c.type_line("5");
    c.wait_for("Group name");
    c.type_line(&group);
    c.wait_for("Description");
    c.type_line("");
    c.wait_for("Group created successfully");
    c.wait_for("Enter the group now? (yes/no)");
    c.type_line("yes");
    c.wait_for("/members lists members");
    // A mistyped command is caught, not sent to the group.
    c.type_line("/memebrs");
    c.wait_for("Unknown command \"/memebrs\"");
    c.type_line("//literal slash");
    c.wait_for("Message sent to group");
    // A line over the limit is refused whole, never cut.
    c.type_line(&"x".repeat(5000));
    c.wait_for("Not sent: the line is 5000 bytes; the limit is 4096 bytes");
    let texts: Vec<String> =
        w.db().query("SELECT message_text FROM group_messages", &[]).unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(texts, ["/literal slash"]);
}
