//! Test fixtures: the PostgreSQL and Redis that `scripts/test.sh` started
//! (one of each per test run), a private database and Redis key prefix per
//! test ([`World`]), real `chat_server` processes, and a line client.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chatp::protocol::{self, input};

/// Environment that turns rate limits off.
pub const NO_RATE_LIMITS: (&str, &str) = ("RATE_LIMITS", "off");

/// How long a test waits for a line it expects (generous: the heavy tests
/// share two cores with the rest of the suite).
pub const LINE_TIMEOUT: Duration = Duration::from_secs(20);

/// The services of this test run, from the environment `scripts/test.sh`
/// sets. Fails loudly without them: these tests never skip.
#[derive(Debug, Clone)]
pub struct Services {
    pub db_host: String,
    pub db_port: u16,
    pub db_user: String,
    pub db_pass: String,
    pub redis_host: String,
    pub redis_port: u16,
}

pub fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests with scripts/test.sh, which starts PostgreSQL and Redis")
    })
}

pub fn services() -> Services {
    Services {
        db_host: var("DB_HOST"),
        db_port: var("DB_PORT").parse().expect("DB_PORT is a port"),
        db_user: var("DB_USER"),
        db_pass: var("DB_PASS"),
        redis_host: var("REDIS_HOST"),
        redis_port: var("REDIS_PORT").parse().expect("REDIS_PORT is a port"),
    }
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A name unique in this test run.
pub fn unique(base: &str) -> String {
    format!("{base}{}x{}", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst))
}

/// One test's private data: its own database on the shared PostgreSQL and
/// its own key prefix on the shared Redis.
pub struct World {
    pub services: Services,
    pub db_name: String,
    pub prefix: String,
}

impl World {
    pub fn new(test: &str) -> World {
        World::on(services(), test)
    }

    /// A world on other services (e.g. a private PostgreSQL).
    pub fn on(services: Services, test: &str) -> World {
        let db_name = unique(&format!("t_{test}_")).to_lowercase();
        let mut admin = pg_client(&services, "postgres");
        admin.batch_execute(&format!("CREATE DATABASE {db_name}")).expect("create test database");
        World { prefix: format!("{db_name}:"), services, db_name }
    }

    pub fn db(&self) -> postgres::Client {
        pg_client(&self.services, &self.db_name)
    }

    /// This world's database as the test run's superuser (`DB_SUPERUSER`),
    /// for what only an operator's bootstrap does.
    pub fn db_as_superuser(&self) -> postgres::Client {
        pg_client(&Services { db_user: var("DB_SUPERUSER"), ..self.services.clone() }, &self.db_name)
    }

    pub fn redis(&self) -> redis::Connection {
        redis_conn(&self.services)
    }

    pub fn keys(&self) -> chatp::redis_store::Keys {
        chatp::redis_store::Keys::new(&self.prefix)
    }

    pub fn online_users(&self) -> Vec<String> {
        let mut users: Vec<String> =
            redis::cmd("SMEMBERS").arg(self.keys().online_users()).query(&mut self.redis()).unwrap();
        users.sort();
        users
    }

    /// Waits until `online_users` satisfies `pred`.
    pub fn wait_online(&self, what: &str, timeout: Duration, pred: impl Fn(&[String]) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            let users = self.online_users();
            if pred(&users) {
                return;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}; online_users = {users:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `binary` with this world's database, Redis and key prefix in its
    /// environment (the `DB_*` and `REDIS_*` every chatp binary reads).
    pub fn command(&self, binary: &str) -> Command {
        let s = &self.services;
        let mut cmd = Command::new(binary);
        cmd.env("DB_HOST", &s.db_host)
            .env("DB_PORT", s.db_port.to_string())
            .env("DB_NAME", &self.db_name)
            .env("DB_USER", &s.db_user)
            .env("DB_PASS", &s.db_pass)
            .env("REDIS_HOST", &s.redis_host)
            .env("REDIS_PORT", s.redis_port.to_string())
            .env("REDIS_KEY_PREFIX", &self.prefix);
        cmd
    }

    /// `chat_server 0` with this world's database, Redis and key prefix.
    pub fn server_command(&self) -> Command {
        let mut cmd = self.command(env!("CARGO_BIN_EXE_chat_server"));
        cmd.arg("0")
            .env("BIND_ADDR", "127.0.0.1")
            .env("DB_POOL_SIZE", "4")
            .env("HASH_WORKERS", "1")
            .env("METRICS_PORT", "0")
            .env("LOG_LEVEL", "info");
        cmd
    }

    pub fn start_server(&self) -> ServerProc {
        self.start_server_with(&[])
    }

    /// A server without rate limits, for tests that send faster than a
    /// person (floods that are not the point of the test).
    pub fn start_unlimited_server(&self) -> ServerProc {
        self.start_server_with(&[NO_RATE_LIMITS])
    }

    pub fn start_server_with(&self, extra_env: &[(&str, &str)]) -> ServerProc {
        ServerProc::start(self, extra_env)
    }
}

/// A connection to the test run's Redis.
pub fn redis_conn(s: &Services) -> redis::Connection {
    let url = format!("redis://{}:{}/", s.redis_host, s.redis_port);
    redis::Client::open(url).unwrap().get_connection().expect("connect to test Redis")
}

pub fn pg_client(s: &Services, db: &str) -> postgres::Client {
    postgres::Config::new()
        .host(&s.db_host)
        .port(s.db_port)
        .user(&s.db_user)
        .password(&s.db_pass)
        .dbname(db)
        .connect(postgres::NoTls)
        .unwrap_or_else(|e| panic!("connect to test PostgreSQL {}:{}/{db}: {e}", s.db_host, s.db_port))
}

/// A PostgreSQL (`"pg"`) or Redis (`"redis"`) of a test's own, started by
/// `scripts/services.sh` in a temporary directory, so the test can stop and
/// start it without disturbing the others; stopped and removed on drop.
pub struct PrivateService {
    dir: std::path::PathBuf,
    which: &'static str,
}

impl PrivateService {
    pub fn run(&self, action: &str) {
        let script = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/services.sh");
        let status = Command::new("bash").arg(script).arg(action).arg(&self.dir).arg(self.which).status().unwrap();
        assert!(status.success(), "services.sh {action} {} failed", self.which);
    }

    /// Starts it; returns it and its port.
    pub fn start(which: &'static str) -> (PrivateService, u16) {
        let dir = std::env::temp_dir().join(unique(&format!("chatp-private-{which}-")));
        let svc = PrivateService { dir, which };
        svc.run("start");
        let port = std::fs::read_to_string(svc.dir.join(format!("{which}.port"))).unwrap().trim().parse().unwrap();
        (svc, port)
    }
}

impl Drop for PrivateService {
    fn drop(&mut self) {
        self.run("stop");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A running `chat_server` process, killed on drop.
pub struct ServerProc {
    pub child: Child,
    /// The plaintext chat port (0 with `PLAINTEXT=off`).
    pub port: u16,
    /// The TLS chat port, when the server has a certificate.
    pub tls_port: Option<u16>,
    /// The web client's port, with `WEB_PORT`.
    pub web_port: Option<u16>,
    pub pod_id: String,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl ServerProc {
    fn start(world: &World, extra_env: &[(&str, &str)]) -> ServerProc {
        let pod_id = unique("pod");
        let mut cmd = world.server_command();
        cmd.env("HOSTNAME", &pod_id).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn chat_server");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (port_tx, port_rx) = crossbeam_channel::bounded(3);
        let log2 = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                // "listening on <addr>[ (TLS)] as pod <id>": a chat port
                // (other lines may say "listening" too).
                // "web client on <addr>[ (TLS)] as pod <id>": the web port.
                let port_of = |addr: &str| -> u16 {
                    addr.split_whitespace().next().unwrap().rsplit(':').next().unwrap().parse().unwrap()
                };
                if let Some(addr) = line.split("listening on ").nth(1).filter(|_| line.contains(" as pod ")) {
                    let _ = port_tx.send((Some(line.contains("(TLS)")), port_of(addr)));
                } else if let Some(addr) = line.split("web client on ").nth(1).filter(|_| line.contains(" as pod ")) {
                    let _ = port_tx.send((None, port_of(addr)));
                }
                log2.lock().unwrap().push(line);
            }
        });
        let has = |k: &str, v: Option<&str>| extra_env.iter().any(|(ek, ev)| *ek == k && v.is_none_or(|v| *ev == v));
        let expected = usize::from(!has("PLAINTEXT", Some("off")))
            + usize::from(has("TLS_CERT_FILE", None))
            + usize::from(has("WEB_PORT", None));
        let (mut port, mut tls_port, mut web_port) = (0, None, None);
        for _ in 0..expected {
            match port_rx.recv_timeout(Duration::from_secs(30)) {
                Ok((Some(true), p)) => tls_port = Some(p),
                Ok((Some(false), p)) => port = p,
                Ok((None, p)) => web_port = Some(p),
                Err(_) => {
                    let _ = child.kill();
                    panic!("chat_server did not start: {:?}", log.lock().unwrap());
                }
            }
        }
        ServerProc { child, port, tls_port, web_port, pod_id, log }
    }

    pub fn connect(&self) -> Client {
        Client::connect(self.port)
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Waits until the server's log has a line containing `needle`.
    pub fn wait_log(&self, needle: &str) {
        let deadline = Instant::now() + LINE_TIMEOUT;
        while !self.log_text().contains(needle) {
            assert!(Instant::now() < deadline, "no log line with {needle:?}:\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// kill -9.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A protocol client on a real socket, reading lines with a timeout.
pub struct Client {
    pub stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Client {
    pub fn connect(port: u16) -> Client {
        Self::from_stream(TcpStream::connect(("127.0.0.1", port)).expect("connect to chat_server"))
    }

    /// Connects with SO_RCVBUF set before the handshake (a slow reader).
    pub fn connect_with_rcvbuf(port: u16, bytes: i32) -> Client {
        use std::os::fd::FromRawFd;
        // SAFETY: plain socket calls on a fresh fd that we then own.
        let stream = unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
            assert!(fd >= 0);
            libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, (&bytes as *const i32).cast(), 4);
            let addr = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: port.to_be(),
                sin_addr: libc::in_addr { s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be() },
                sin_zero: [0; 8],
            };
            let rc = libc::connect(
                fd,
                (&addr as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            );
            assert_eq!(rc, 0, "connect: {}", std::io::Error::last_os_error());
            TcpStream::from_raw_fd(fd)
        };
        Self::from_stream(stream)
    }

    fn from_stream(stream: TcpStream) -> Client {
        stream.set_read_timeout(Some(LINE_TIMEOUT)).unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        let mut c = Client { stream, reader };
        c.expect(protocol::AUTH_REQUEST);
        c
    }

    /// `HELLO:2` and its answer; the registration mode the server gives.
    pub fn hello(&mut self) -> String {
        self.send(&protocol::hello());
        self.expect(&protocol::hello());
        let line = self.line();
        match protocol::parse_server_line(&line) {
            protocol::ServerLine::Registration(mode) => mode.to_string(),
            _ => panic!("expected REGISTRATION after HELLO, got {line:?}"),
        }
    }

    /// The buffered reader (for tests that read with their own timeouts).
    pub fn reader_mut(&mut self) -> &mut BufReader<TcpStream> {
        &mut self.reader
    }

    pub fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\n").as_bytes());
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to server");
    }

    /// The next line; panics on timeout. `None` at EOF.
    pub fn next_line(&mut self) -> Option<String> {
        let mut buf = Vec::new();
        match self.reader.read_until(b'\n', &mut buf) {
            Ok(0) => None,
            Ok(_) => {
                assert_eq!(buf.pop(), Some(b'\n'), "line without newline: {buf:?}");
                Some(String::from_utf8(buf).expect("server lines are UTF-8"))
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => None,
            Err(e) => panic!("no line from server within {LINE_TIMEOUT:?}: {e}"),
        }
    }

    pub fn line(&mut self) -> String {
        self.next_line().expect("server closed the connection")
    }

    pub fn expect(&mut self, expected: &str) {
        let got = self.line();
        assert_eq!(got, expected);
    }

    pub fn expect_all<S: AsRef<str>>(&mut self, lines: &[S]) {
        for l in lines {
            self.expect(l.as_ref());
        }
    }

    pub fn expect_menu(&mut self) {
        self.expect_all(&protocol::main_menu());
    }

    /// The server closes the connection (EOF) next.
    pub fn expect_closed(&mut self) {
        if let Some(l) = self.next_line() {
            panic!("expected the connection to close, got {l:?}");
        }
    }

    /// No line arrives within `dur`.
    pub fn expect_silence(&mut self, dur: Duration) {
        self.stream.set_read_timeout(Some(dur)).unwrap();
        let mut buf = Vec::new();
        let r = self.reader.read_until(b'\n', &mut buf);
        self.stream.set_read_timeout(Some(LINE_TIMEOUT)).unwrap();
        match r {
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            other => panic!("expected silence, got {other:?} {:?}", String::from_utf8_lossy(&buf)),
        }
    }

    /// Reads lines up to and including `end`.
    pub fn lines_until(&mut self, end: &str) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            let l = self.line();
            if l == end {
                return out;
            }
            out.push(l);
        }
    }

    fn credentials(&mut self, choice: &str, prompt: &str, user: &str, password: &str) {
        self.send(choice);
        self.expect(prompt);
        self.send(user);
        self.send(password);
    }

    /// Signs up and reads the main menu.
    pub fn signup(&mut self, user: &str, password: &str) {
        self.credentials(input::SIGNUP, protocol::SIGNUP_PROMPT, user, password);
        self.expect(&protocol::signup_success(user));
        self.expect_menu();
    }

    pub fn signup_attempt(&mut self, user: &str, password: &str) -> String {
        self.credentials(input::SIGNUP, protocol::SIGNUP_PROMPT, user, password);
        self.line()
    }

    /// Logs in and reads the main menu.
    pub fn login(&mut self, user: &str, password: &str) {
        self.credentials(input::LOGIN, protocol::LOGIN_PROMPT, user, password);
        self.expect(&protocol::auth_success(protocol::text::LOGIN_OK));
        self.expect_menu();
    }

    pub fn login_attempt(&mut self, user: &str, password: &str) -> String {
        self.credentials(input::LOGIN, protocol::LOGIN_PROMPT, user, password);
        self.line()
    }

    /// From the main menu into a conversation with `contact`; returns the
    /// history lines.
    pub fn open_conversation(&mut self, contact: &str) -> Vec<String> {
        self.send(input::MENU_PRIVATE);
        self.expect(protocol::CONTACT_LIST_START);
        self.lines_until(protocol::CONTACT_LIST_END);
        self.send(contact);
        self.expect(&protocol::conversation_start(contact));
        self.lines_until(protocol::CONVERSATION_READY)
    }

    /// From the main menu into the broadcast channel; returns the history.
    pub fn open_broadcast(&mut self) -> Vec<String> {
        self.send(input::MENU_BROADCAST);
        self.expect(&protocol::broadcast_start());
        self.lines_until(protocol::CONVERSATION_READY)
    }

    /// From the main menu: creates a group and enters it. Returns its id.
    pub fn create_group(&mut self, name: &str, description: &str) -> i32 {
        self.send(input::MENU_CREATE_GROUP);
        self.expect(protocol::CREATE_GROUP_PROMPT);
        self.send(name);
        self.send(description);
        let line = self.line();
        let id: i32 = line.rsplit('|').next().unwrap().parse().unwrap_or_else(|_| panic!("not a success: {line}"));
        assert_eq!(line, protocol::create_success(id));
        self.send(input::YES);
        self.expect(&protocol::group_chat_start(name, id));
        self.expect(protocol::GROUP_CHAT_READY);
        id
    }

    /// From the main menu: browse, join `id`, open it. Returns the history.
    pub fn join_and_open_group(&mut self, id: i32, name: &str) -> Vec<String> {
        self.send(input::MENU_BROWSE_GROUPS);
        self.expect(protocol::BROWSE_GROUPS_START);
        self.lines_until(protocol::BROWSE_GROUPS_END);
        self.send(&format!("{}{id}", input::JOIN_PREFIX));
        self.expect(&protocol::join_success());
        self.expect(protocol::BROWSE_GROUPS_START);
        self.lines_until(protocol::BROWSE_GROUPS_END);
        self.send(&id.to_string());
        self.expect(&protocol::group_chat_start(name, id));
        self.lines_until(protocol::GROUP_CHAT_READY)
    }

    /// Closes the socket with a reset (SO_LINGER 0), like a crashed client.
    pub fn reset(self) {
        use std::os::fd::AsRawFd;
        let linger = libc::linger { l_onoff: 1, l_linger: 0 };
        // SAFETY: valid socket fd and a pointer to a live linger struct.
        unsafe {
            libc::setsockopt(
                self.stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            );
        }
        drop(self);
    }
}
