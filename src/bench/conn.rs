//! One load-generator connection: the protocol's client side, by line,
//! every read bounded by a timeout. One file descriptor per connection.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use crate::protocol::{self, input, Ack, ServerLine};

/// Longest wait for a line during set-up.
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(30);

/// The socket, shared by the reader and writers without a second fd.
#[derive(Clone)]
pub struct Socket(Arc<TcpStream>);

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self.0).read(buf)
    }
}

impl Socket {
    /// Writes one line (the newline added).
    pub fn send(&self, line: &str) -> io::Result<()> {
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        (&*self.0).write_all(&buf)
    }

    pub fn set_read_timeout(&self, t: Duration) -> io::Result<()> {
        self.0.set_read_timeout(Some(t))
    }
}

/// A connection to chat_server.
pub struct BenchConn {
    pub socket: Socket,
    reader: BufReader<Socket>,
    line: String,
}

fn unexpected(what: &str, got: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("expected {what}, got {got:?}"))
}

impl BenchConn {
    /// Connects and reads `AUTH_REQUEST`.
    pub fn connect(host: &str) -> io::Result<BenchConn> {
        let stream = TcpStream::connect(host)?;
        stream.set_nodelay(true)?;
        let socket = Socket(Arc::new(stream));
        socket.set_read_timeout(SETUP_TIMEOUT)?;
        let reader = BufReader::with_capacity(4096, socket.clone());
        let mut conn = BenchConn { socket, reader, line: String::new() };
        conn.expect(protocol::AUTH_REQUEST)?;
        Ok(conn)
    }

    /// The next line, without its newline; `UnexpectedEof` when the server
    /// closed, `WouldBlock`/`TimedOut` after the read timeout.
    pub fn read_line(&mut self) -> io::Result<&str> {
        self.line.clear();
        if self.reader.read_line(&mut self.line)? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "server closed the connection"));
        }
        let end = self.line.trim_end_matches(['\r', '\n']).len();
        self.line.truncate(end);
        Ok(&self.line)
    }

    pub fn expect(&mut self, expected: &str) -> io::Result<()> {
        let got = self.read_line()?;
        if got != expected {
            return Err(unexpected(expected, got));
        }
        Ok(())
    }

    /// Reads lines until one satisfying `done`.
    pub fn until(&mut self, what: &str, done: impl Fn(&ServerLine) -> bool) -> io::Result<()> {
        loop {
            let line = self.read_line()?;
            if done(&protocol::parse_server_line(line)) {
                return Ok(());
            }
            if let ServerLine::Problem(p) | ServerLine::AuthFailed(p) = protocol::parse_server_line(line) {
                return Err(unexpected(what, p));
            }
        }
    }

    /// Reads up to the next acknowledgement (`SENT:`, `BROADCAST_SENT:`...),
    /// skipping notifications; a refusal or error line is an error.
    pub fn read_ack(&mut self) -> io::Result<Ack> {
        loop {
            let line = self.read_line()?;
            if let Some(ack) = protocol::parse_ack(line) {
                return Ok(ack);
            }
            if let ServerLine::Problem(p) = protocol::parse_server_line(line) {
                return Err(io::Error::other(format!("server said {p:?}")));
            }
        }
    }

    /// `HELLO:2`: the session gets a resume token.
    pub fn hello(&mut self) -> io::Result<()> {
        self.socket.send(&protocol::hello())?;
        self.expect(&protocol::hello())?;
        match protocol::parse_server_line(self.read_line()?) {
            ServerLine::Registration(_) => Ok(()),
            _ => Err(unexpected("REGISTRATION after HELLO", &self.line)),
        }
    }

    /// Protocol 2: `RESUME` with `token`, then waits for the menu. Returns
    /// the new token.
    pub fn resume(&mut self, name: &str, token: &str) -> io::Result<String> {
        self.hello()?;
        self.socket.send(&protocol::resume(name, token, protocol::LastSeen::default()))?;
        match protocol::parse_server_line(self.read_line()?) {
            ServerLine::AuthSuccess(_) => {}
            _ => return Err(unexpected("a resumed session", &self.line)),
        }
        let token = self.session_token()?;
        self.until("the main menu", |l| matches!(l, ServerLine::MainMenuEnd))?;
        Ok(token)
    }

    /// The `SESSION:` line that follows `AUTH_SUCCESS` in protocol 2.
    pub fn session_token(&mut self) -> io::Result<String> {
        match protocol::parse_server_line(self.read_line()?) {
            ServerLine::Session(t) => Ok(t.to_string()),
            _ => Err(unexpected("a SESSION line", &self.line)),
        }
    }

    /// Protocol 2: `HELLO:2`, `SIGNUP` as `name`, the menu; returns the
    /// session's resume token.
    pub fn signup_with_token(&mut self, name: &str, password: &str) -> io::Result<String> {
        self.hello()?;
        self.socket.send(input::SIGNUP)?;
        self.expect(protocol::SIGNUP_PROMPT)?;
        self.socket.send(name)?;
        self.socket.send(password)?;
        match protocol::parse_server_line(self.read_line()?) {
            ServerLine::AuthSuccess(_) => {}
            _ => return Err(unexpected("a successful signup", &self.line)),
        }
        let token = self.session_token()?;
        self.until("the main menu", |l| matches!(l, ServerLine::MainMenuEnd))?;
        Ok(token)
    }

    /// `SIGNUP` or `LOGIN` as `name`, then waits for the end of the menu.
    pub fn authenticate(&mut self, signup: bool, name: &str, password: &str) -> io::Result<()> {
        let (choice, prompt) =
            if signup { (input::SIGNUP, protocol::SIGNUP_PROMPT) } else { (input::LOGIN, protocol::LOGIN_PROMPT) };
        self.socket.send(choice)?;
        self.expect(prompt)?;
        self.socket.send(name)?;
        self.socket.send(password)?;
        match protocol::parse_server_line(self.read_line()?) {
            ServerLine::AuthSuccess(_) => {}
            _ => return Err(unexpected("a successful login", &self.line)),
        }
        self.until("the main menu", |l| matches!(l, ServerLine::MainMenuEnd))
    }

    /// From the main menu into the conversation with `contact`.
    pub fn open_conversation(&mut self, contact: &str) -> io::Result<()> {
        self.socket.send(input::MENU_PRIVATE)?;
        self.until("the contact list", |l| matches!(l, ServerLine::ContactListEnd))?;
        self.socket.send(contact)?;
        self.until("the conversation", |l| matches!(l, ServerLine::ConversationReady))
    }

    /// From the main menu into the broadcast channel.
    pub fn open_broadcast(&mut self) -> io::Result<()> {
        self.socket.send(input::MENU_BROADCAST)?;
        self.until("the broadcast channel", |l| matches!(l, ServerLine::ConversationReady))
    }
}
