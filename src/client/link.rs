//! The client's connection: a socket, plaintext or TLS (`--tls`), read by
//! the read thread and written by the write thread at the same time.
//! TLS never falls back to plaintext: a handshake that fails ends the
//! attempt with a line that says which name or CA failed.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::tls::{client_config, Check, TlsSession, Trust};

/// How long the connect and the TLS handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How to reach the server.
#[derive(Clone)]
pub struct Target {
    pub host: String,
    pub port: u16,
    /// `--tls`: the client configuration and whom it trusts.
    pub tls: Option<(Arc<rustls::ClientConfig>, Trust)>,
}

impl Target {
    /// A TLS target that trusts `trust` and checks the host name; the error
    /// says why the CA cannot be used.
    pub fn with_tls(host: &str, port: u16, trust: Trust) -> Result<Target, String> {
        let config = client_config::client_config(&trust, Check::AuthorityAndName)
            .map_err(|e| format!("cannot set up TLS: {e}"))?;
        Ok(Target { host: host.into(), port, tls: Some((config, trust)) })
    }

    pub fn plain(host: &str, port: u16) -> Target {
        Target { host: host.into(), port, tls: None }
    }

    /// `cannot connect to localhost:30080: connection refused`, or
    /// `TLS with localhost:30443 failed: the server's certificate is not
    /// signed by the CA in ca.pem`.
    pub fn connect(&self) -> Result<Arc<Link>, String> {
        let stream = self.tcp()?;
        let _ = stream.set_nodelay(true);
        let Some((config, trust)) = &self.tls else {
            return Ok(Arc::new(Link { stream, tls: None, writing: Mutex::new(()) }));
        };
        let name = client_config::server_name(&self.host)?;
        let conn = rustls::ClientConnection::new(Arc::clone(config), name).map_err(|e| e.to_string())?;
        match TlsSession::handshake(&stream, conn, Instant::now() + CONNECT_TIMEOUT) {
            Ok(session) => Ok(Arc::new(Link { stream, tls: Some(session), writing: Mutex::new(()) })),
            Err(e) => Err(format!(
                "TLS with {}:{} failed: {}",
                self.host,
                self.port,
                client_config::explain(&e, &self.host, trust)
            )),
        }
    }

    fn tcp(&self) -> Result<TcpStream, String> {
        let fail = |why: String| format!("cannot connect to {}:{}: {why}", self.host, self.port);
        let addrs: Vec<_> =
            (self.host.as_str(), self.port).to_socket_addrs().map_err(|_| fail("unknown host".into()))?.collect();
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        let why = match last {
            Some(e) if e.kind() == io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
            Some(e) if e.kind() == io::ErrorKind::TimedOut => "timed out".to_string(),
            Some(e) => e.to_string(),
            None => "no address".to_string(),
        };
        Err(fail(why))
    }
}

/// One connection to the server.
pub struct Link {
    stream: TcpStream,
    tls: Option<TlsSession>,
    /// Held while bytes go out, so records of two writers never interleave.
    writing: Mutex<()>,
}

impl Link {
    /// Sends `line` and its `\n`.
    pub fn write_line(&self, line: &str) -> io::Result<()> {
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        self.send(&bytes)
    }

    fn send(&self, plain: &[u8]) -> io::Result<()> {
        let _writing = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        match &self.tls {
            None => (&self.stream).write_all(plain),
            Some(tls) => {
                let mut records = Vec::new();
                tls.seal(plain, &mut records)?;
                (&self.stream).write_all(&records)
            }
        }
    }

    /// Closes our sending side (after `close_notify` on TLS): the server
    /// answers what it has and closes.
    pub fn close_write(&self) {
        if let Some(tls) = &self.tls {
            tls.close_notify();
            let _ = self.send(&[]);
        }
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// Ends the connection at once; wakes a blocked reader.
    pub fn shutdown(&self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    /// A reader of what the server sends (plaintext).
    pub fn reader(self: &Arc<Self>) -> LinkReader {
        LinkReader(Arc::clone(self))
    }
}

pub struct LinkReader(Arc<Link>);

impl Read for LinkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let link = &self.0;
        let Some(tls) = &link.tls else {
            return (&link.stream).read(buf);
        };
        let n = tls.read(&link.stream, buf);
        if tls.wants_write() {
            // A key update or an alert to answer.
            let _ = link.send(&[]);
        }
        n
    }
}
