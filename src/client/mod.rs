//! `chat_client`: the terminal client. A [`read_thread`] turns server lines
//! into what the person sees; a [`write_thread`] sends what the person
//! types. They share one socket (`try_clone`); when either ends, the socket
//! is shut down and both are joined.

mod console;
pub mod read_thread;
pub mod render;
pub mod write_thread;

use std::io;
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

pub use console::Console;
use render::Renderer;

/// How the session ended, from the person's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// `bye` at the main menu, Ctrl-D or Ctrl-C.
    Quit,
    /// Gave up after a failed login.
    NotLoggedIn,
    /// The server went away.
    ServerLost,
}

impl Ending {
    pub fn exit_code(self) -> u8 {
        match self {
            Ending::Quit => 0,
            Ending::NotLoggedIn | Ending::ServerLost => 1,
        }
    }
}

/// An event of the authentication dialogue, from the read thread to the
/// write thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthEvent {
    Request,
    Prompt,
    Success,
    Failed,
}

/// State both threads share.
pub struct Shared {
    pub stream: TcpStream,
    pub renderer: Mutex<Renderer>,
    pub console: Console,
    /// The person asked to leave (bye at the menu, Ctrl-D, Ctrl-C).
    pub quitting: AtomicBool,
    /// Gave up during authentication.
    pub abandoned: AtomicBool,
    /// The session is over: both threads stop.
    pub done: AtomicBool,
}

impl Shared {
    /// Ends the session: wakes both threads.
    pub fn finish(&self) {
        self.done.store(true, Ordering::SeqCst);
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

/// `cannot connect to localhost:30080: connection refused`
pub fn connect(host: &str, port: u16) -> Result<TcpStream, String> {
    let fail = |why: String| format!("cannot connect to {host}:{port}: {why}");
    let addrs: Vec<_> = (host, port).to_socket_addrs().map_err(|_| fail("unknown host".into()))?.collect();
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(10)) {
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

/// Runs a session on a connected socket until it ends.
pub fn run(stream: TcpStream) -> io::Result<Ending> {
    let _ = stream.set_nodelay(true);
    let read_stream = stream.try_clone()?;
    let shared = Arc::new(Shared {
        stream,
        renderer: Mutex::new(Renderer::new()),
        console: Console::new(),
        quitting: AtomicBool::new(false),
        abandoned: AtomicBool::new(false),
        done: AtomicBool::new(false),
    });
    let (auth_tx, auth_rx) = crossbeam_channel::unbounded();

    let s = Arc::clone(&shared);
    let reader =
        thread::Builder::new().name("ReadThread".into()).spawn(move || read_thread::run(&s, read_stream, auth_tx))?;
    let s = Arc::clone(&shared);
    let writer = thread::Builder::new().name("WriteThread".into()).spawn(move || write_thread::run(&s, auth_rx))?;

    let s = Arc::clone(&shared);
    if let Ok(mut signals) = signal_hook::iterator::Signals::new([signal_hook::consts::SIGINT]) {
        let handle = signals.handle();
        thread::spawn(move || {
            if signals.forever().next().is_some() {
                s.quitting.store(true, Ordering::SeqCst);
                s.finish();
            }
        });
        let ending = reader.join().unwrap_or(Ending::ServerLost);
        shared.finish();
        let _ = writer.join();
        handle.close();
        return Ok(ending);
    }
    let ending = reader.join().unwrap_or(Ending::ServerLost);
    shared.finish();
    let _ = writer.join();
    Ok(ending)
}
