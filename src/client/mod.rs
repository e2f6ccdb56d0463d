//! `chat_client`: the terminal client. A [`read_thread`] turns server lines
//! into what the person sees; a [`write_thread`] sends what the person
//! types. They share one socket per connection; when either ends, the
//! socket is shut down and both are joined.
//!
//! With a server that speaks protocol 2 (docs/PROTOCOL.md) a session
//! outlives its connection: when the server drains (`SERVER_SHUTDOWN`), the
//! connection drops or resets, the client reconnects with exponential
//! backoff and full jitter, resumes with its token (the server replays what
//! was missed; ids already shown are dropped), and takes the person back to
//! the chat they had open without showing its history again. The person
//! sees one line when the connection is lost and one when it is back.

mod console;
pub mod link;
pub mod read_thread;
pub mod render;
pub mod write_thread;

use std::collections::{HashSet, VecDeque};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub use console::Console;
pub use link::{Link, Target};
use rand_core::RngCore;
use render::{Place, Renderer};

use crate::protocol::{LastSeen, MessageKind};

/// How the session ended, from the person's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// `bye` at the main menu, Ctrl-D or Ctrl-C.
    Quit,
    /// Gave up after a failed login.
    NotLoggedIn,
    /// The server went away (and could not be resumed).
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
    /// The server speaks protocol 2.
    Hello,
    Prompt,
    Success,
    Failed(String),
}

/// What outlives a connection.
#[derive(Debug, Default)]
pub struct Continuity {
    pub username: Option<String>,
    /// The resume token of the current session (protocol 2).
    pub token: Option<String>,
    /// The newest id shown, per kind.
    pub last: LastSeen,
    seen: HashSet<(MessageKind, i64)>,
    /// The id a `MSG_ID` line gave the next notification.
    pub next_id: Option<(MessageKind, i64)>,
    /// Messages sent from a chat whose acknowledgement has not come yet.
    pub unconfirmed: VecDeque<String>,
    /// `REGISTRATION:` of the server: open, invite or closed.
    pub registration: Option<String>,
    /// The server ended the session for good (`SESSION_END`): no resume.
    pub ended: Option<String>,
}

impl Continuity {
    /// Records a notification's id; `false` if it was shown already (a
    /// replayed message that also arrived live).
    pub fn first_sight(&mut self, kind: MessageKind, id: i64) -> bool {
        let last = self.last.get_mut(kind);
        *last = (*last).max(id);
        self.seen.insert((kind, id))
    }
}

/// What the threads of every connection share.
#[derive(Clone)]
pub struct Env {
    pub console: Arc<Console>,
    pub renderer: Arc<Mutex<Renderer>>,
    pub continuity: Arc<Mutex<Continuity>>,
    /// Ctrl-C.
    pub interrupted: Arc<AtomicBool>,
}

/// How a connection starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Log in or sign up.
    Fresh,
    /// Resume the session of the last connection.
    Resume,
}

/// State of one connection.
pub struct Shared {
    pub link: Arc<Link>,
    pub env: Env,
    /// The person asked to leave (bye at the menu, Ctrl-D, Ctrl-C).
    pub quitting: AtomicBool,
    /// Gave up during authentication.
    pub abandoned: AtomicBool,
    /// The connection is over: both threads stop.
    pub done: AtomicBool,
    /// `HELLO:2` is out: its answer (or an old server's refusal) is not
    /// for the person's eyes.
    pub hello_pending: AtomicBool,
    /// The server drains (`SERVER_SHUTDOWN`): typed lines wait for the
    /// next connection; the write thread closes our side.
    pub draining: AtomicBool,
    /// Stops reading typed lines: the connection ended or drains.
    pub input_stop: AtomicBool,
    /// After a resume: the chat being reopened; output is held back until
    /// it is open.
    pub restoring: Mutex<Option<Place>>,
}

impl Shared {
    /// Ends the connection: wakes both threads.
    pub fn finish(&self) {
        self.done.store(true, Ordering::SeqCst);
        self.input_stop.store(true, Ordering::SeqCst);
        self.link.shutdown();
    }

    pub fn say(&self, line: &str) {
        self.env.console.print(&[line.to_string()], false);
    }
}

/// Reconnection: how long to keep trying, and the backoff.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Give up (exit 1) after trying this long.
    pub reconnect_for: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options { reconnect_for: Duration::from_secs(60) }
    }
}

/// First backoff step and the cap (full jitter: a random wait up to the
/// step, so a whole pod's users do not come back at the same instant).
const BACKOFF_BASE: Duration = Duration::from_millis(100);
const BACKOFF_CAP: Duration = Duration::from_secs(5);

/// Runs a session from its first connection until it ends, reconnecting
/// and resuming while the server supports it.
pub fn run(target: &Target, first: Arc<Link>, opts: Options) -> io::Result<Ending> {
    let env = Env {
        console: Arc::new(Console::new()),
        renderer: Arc::new(Mutex::new(Renderer::new())),
        continuity: Arc::new(Mutex::new(Continuity::default())),
        interrupted: Arc::new(AtomicBool::new(false)),
    };
    let current: Arc<Mutex<Option<Arc<Link>>>> = Arc::new(Mutex::new(None));
    let signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGINT]).ok();
    if let Some(mut signals) = signals {
        let (interrupted, current) = (Arc::clone(&env.interrupted), Arc::clone(&current));
        thread::spawn(move || {
            if signals.forever().next().is_some() {
                interrupted.store(true, Ordering::SeqCst);
                if let Some(link) = current.lock().unwrap().as_ref() {
                    link.shutdown();
                }
            }
        });
    }
    let mut link = first;
    let mut mode = Mode::Fresh;
    loop {
        *current.lock().unwrap() = Some(Arc::clone(&link));
        let ending = run_connection(link, mode, &env)?;
        if env.interrupted.load(Ordering::SeqCst) {
            if ending == Ending::ServerLost {
                env.console.print(&["Goodbye!".to_string()], false);
            }
            return Ok(Ending::Quit);
        }
        if ending != Ending::ServerLost {
            return Ok(ending);
        }
        let unconfirmed: Vec<String> = env.continuity.lock().unwrap().unconfirmed.drain(..).collect();
        for text in unconfirmed {
            env.console.print(
                &[format!("⚠ Not confirmed (the connection dropped before the server answered): {text}")],
                false,
            );
        }
        if env.continuity.lock().unwrap().ended.is_some() {
            return Ok(Ending::ServerLost);
        }
        if env.continuity.lock().unwrap().token.is_none() {
            env.console.print(&["Connection to the server was lost.".to_string()], false);
            return Ok(Ending::ServerLost);
        }
        env.console.print(&["⚠ Connection lost; reconnecting…".to_string()], false);
        match reconnect(target, opts, &env) {
            Some(l) => {
                link = l;
                mode = Mode::Resume;
            }
            None => {
                let secs = opts.reconnect_for.as_secs();
                env.console.print(&[format!("Could not reconnect within {secs} s. Goodbye.")], false);
                return Ok(Ending::ServerLost);
            }
        }
    }
}

/// Tries to connect until `opts.reconnect_for` has passed: exponential
/// backoff from [`BACKOFF_BASE`] to [`BACKOFF_CAP`], each wait a random
/// time up to the step.
fn reconnect(target: &Target, opts: Options, env: &Env) -> Option<Arc<Link>> {
    let deadline = Instant::now() + opts.reconnect_for;
    let mut step = BACKOFF_BASE;
    let mut said = None;
    while Instant::now() < deadline && !env.interrupted.load(Ordering::SeqCst) {
        let jitter = rand_core::OsRng.next_u64() % (step.as_millis() as u64 + 1);
        thread::sleep(Duration::from_millis(jitter).min(deadline.saturating_duration_since(Instant::now())));
        match target.connect() {
            Ok(link) => return Some(link),
            // A certificate problem will not pass by itself: say it once.
            Err(why) if why.starts_with("TLS") && said.as_ref() != Some(&why) => {
                env.console.print(&[format!("⚠ {why}")], false);
                said = Some(why);
            }
            Err(_) => {}
        }
        step = (step * 2).min(BACKOFF_CAP);
    }
    None
}

/// Runs one connection until it ends.
fn run_connection(link: Arc<Link>, mode: Mode, env: &Env) -> io::Result<Ending> {
    let read_stream = link.reader();
    let shared = Arc::new(Shared {
        link,
        env: env.clone(),
        quitting: AtomicBool::new(false),
        abandoned: AtomicBool::new(false),
        done: AtomicBool::new(false),
        hello_pending: AtomicBool::new(false),
        draining: AtomicBool::new(false),
        input_stop: AtomicBool::new(false),
        restoring: Mutex::new(None),
    });
    let (auth_tx, auth_rx) = crossbeam_channel::unbounded();
    let s = Arc::clone(&shared);
    let reader =
        thread::Builder::new().name("ReadThread".into()).spawn(move || read_thread::run(&s, read_stream, auth_tx))?;
    let s = Arc::clone(&shared);
    let writer =
        thread::Builder::new().name("WriteThread".into()).spawn(move || write_thread::run(&s, auth_rx, mode))?;
    let ending = reader.join().unwrap_or(Ending::ServerLost);
    shared.finish();
    let _ = writer.join();
    Ok(ending)
}
