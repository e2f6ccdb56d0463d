//! The terminal: printing whole lines without interleaving, prompts only
//! for a person at a terminal, and reading typed lines in a way the session
//! can interrupt.
//!
//! Once logged in at a terminal, lines are read by a line editor
//! (rustyline) on a thread of its own: arrow keys, Home/End and history
//! work, and a notification that arrives while a line is half typed is
//! printed above it, the half line redrawn below, nothing lost. Before
//! that (the login dialogue, passwords without echo) and when stdin is not
//! a terminal, lines are read plainly.

use std::borrow::Cow;
use std::io::{self, BufRead, BufReader, IsTerminal, Stdin, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError};
use rustyline::error::ReadlineError;
use rustyline::ExternalPrinter;

/// The line editor's side of the console.
struct Editor {
    /// Typed lines; `None` at Ctrl-D or Ctrl-C.
    lines: Receiver<Option<String>>,
    printer: Box<dyn ExternalPrinter + Send>,
    /// While set, what is typed shows as `*` and stays out of the history
    /// (a password asked again after a refused resume).
    masked: Arc<AtomicBool>,
}

/// Shows the line as stars while a password is being typed.
struct Masking(Arc<AtomicBool>);

impl rustyline::Helper for Masking {}
impl rustyline::completion::Completer for Masking {
    type Candidate = String;
}
impl rustyline::hint::Hinter for Masking {
    type Hint = String;
}
impl rustyline::validate::Validator for Masking {}
impl rustyline::highlight::Highlighter for Masking {
    fn highlight<'l>(&self, line: &'l str, _pos: usize) -> Cow<'l, str> {
        if self.0.load(Ordering::SeqCst) {
            Cow::Owned("*".repeat(line.chars().count()))
        } else {
            Cow::Borrowed(line)
        }
    }

    fn highlight_char(&self, _line: &str, _pos: usize, _kind: rustyline::highlight::CmdKind) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// How long a stdin wait lasts before the session's end is checked.
const STDIN_TICK_MS: i32 = 200;

pub struct Console {
    out: Mutex<bool>, // a prompt is showing (the cursor is after it)
    prompt: Mutex<String>,
    pub interactive: bool,
    input: Mutex<BufReader<Stdin>>,
    editor: Mutex<Option<Editor>>,
}

impl Default for Console {
    fn default() -> Self {
        Self::new()
    }
}

impl Console {
    pub fn new() -> Self {
        Console {
            out: Mutex::new(false),
            prompt: Mutex::new(String::new()),
            interactive: io::stdin().is_terminal(),
            input: Mutex::new(BufReader::new(io::stdin())),
            editor: Mutex::new(None),
        }
    }

    /// From now on (logged in, at a terminal) lines are read by the line
    /// editor with the user's prompt. Does nothing if it runs already, or
    /// without a terminal.
    pub fn start_editor(&self) {
        let mut slot = self.editor.lock().unwrap();
        if !self.interactive || slot.is_some() {
            return;
        }
        let Ok(mut rl) = rustyline::Editor::<Masking, rustyline::history::DefaultHistory>::new() else { return };
        let masked = Arc::new(AtomicBool::new(false));
        rl.set_helper(Some(Masking(Arc::clone(&masked))));
        let hidden = Arc::clone(&masked);
        let Ok(printer) = rl.create_external_printer() else { return };
        let prompt = self.prompt.lock().unwrap().clone();
        let (tx, lines) = crossbeam_channel::unbounded();
        let spawned = std::thread::Builder::new().name("LineEditor".into()).spawn(move || loop {
            match rl.readline(&prompt) {
                Ok(line) => {
                    if !line.trim().is_empty() && !hidden.load(Ordering::SeqCst) {
                        let _ = rl.add_history_entry(line.as_str());
                    }
                    if tx.send(Some(line)).is_err() {
                        return;
                    }
                }
                Err(ReadlineError::Interrupted | ReadlineError::Eof) | Err(_) => {
                    let _ = tx.send(None);
                    return;
                }
            }
        });
        if spawned.is_ok() {
            *slot = Some(Editor { lines, printer: Box::new(printer), masked });
        }
    }

    /// `[<username>]: ` from now on.
    pub fn set_user(&self, username: &str) {
        *self.prompt.lock().unwrap() = format!("[{username}]: ");
    }

    /// Prints lines, each whole; then the prompt if asked (interactive).
    /// With the line editor running, above the line being typed.
    pub fn print(&self, lines: &[String], prompt: bool) {
        if let Some(editor) = self.editor.lock().unwrap().as_mut() {
            if !lines.is_empty() && editor.printer.print(lines.join("\n")).is_ok() {
                return;
            }
            if lines.is_empty() {
                return;
            }
        }
        let mut showing = self.out.lock().unwrap();
        let mut out = io::stdout().lock();
        if *showing && !lines.is_empty() {
            // Put the lines under the prompt the person may be typing after.
            let _ = writeln!(out);
        }
        for l in lines {
            let _ = writeln!(out, "{l}");
        }
        *showing = false;
        if prompt && self.interactive {
            let p = self.prompt.lock().unwrap().clone();
            if !p.is_empty() {
                let _ = write!(out, "{p}");
                *showing = true;
            }
        }
        let _ = out.flush();
    }

    /// Asks a question: on a terminal the answer follows on the same line.
    pub fn ask(&self, question: &str) {
        if let Some(editor) = self.editor.lock().unwrap().as_mut() {
            let _ = editor.printer.print(question.to_string());
            return;
        }
        let mut showing = self.out.lock().unwrap();
        let mut out = io::stdout().lock();
        if self.interactive {
            let _ = write!(out, "{question} ");
        } else {
            let _ = writeln!(out, "{question}");
        }
        *showing = false;
        let _ = out.flush();
    }

    /// The person typed a line: the prompt is no longer showing.
    fn typed(&self) {
        *self.out.lock().unwrap() = false;
    }

    /// The next typed line without its newline; `None` at end of input or
    /// when `stop` is set.
    pub fn read_line(&self, stop: &AtomicBool) -> Option<String> {
        let editor_lines = self.editor.lock().unwrap().as_ref().map(|e| e.lines.clone());
        if let Some(lines) = editor_lines {
            return loop {
                if stop.load(Ordering::SeqCst) {
                    return None;
                }
                match lines.recv_timeout(Duration::from_millis(STDIN_TICK_MS as u64)) {
                    Ok(line) => break line,
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => break None,
                }
            };
        }
        let mut input = self.input.lock().unwrap();
        loop {
            if stop.load(Ordering::SeqCst) {
                return None;
            }
            if input.buffer().is_empty() && !stdin_ready() {
                continue;
            }
            let mut line = String::new();
            return match input.read_line(&mut line) {
                Ok(0) | Err(_) => None,
                Ok(_) => {
                    self.typed();
                    Some(line.trim_end_matches(['\n', '\r']).to_string())
                }
            };
        }
    }

    /// Reads a password: without echo on a terminal, as a plain line
    /// otherwise (scripts, tests).
    pub fn read_password(&self, stop: &AtomicBool) -> Option<String> {
        if !self.interactive {
            return self.read_line(stop);
        }
        let masked = self.editor.lock().unwrap().as_ref().map(|e| Arc::clone(&e.masked));
        if let Some(masked) = masked {
            masked.store(true, Ordering::SeqCst);
            let line = self.read_line(stop);
            masked.store(false, Ordering::SeqCst);
            return line;
        }
        let saved = echo_off();
        let line = self.read_line(stop);
        if let Some(t) = saved {
            restore(&t);
            println!();
        }
        line
    }
}

/// Waits up to [`STDIN_TICK_MS`] for input on stdin.
fn stdin_ready() -> bool {
    let mut pfd = libc::pollfd { fd: 0, events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut pfd, 1, STDIN_TICK_MS) > 0 }
}

fn echo_off() -> Option<libc::termios> {
    // SAFETY: tcgetattr/tcsetattr on fd 0 with a zeroed termios we own.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(0, &mut t) != 0 {
            return None;
        }
        let saved = t;
        t.c_lflag &= !libc::ECHO;
        libc::tcsetattr(0, libc::TCSANOW, &t);
        Some(saved)
    }
}

fn restore(t: &libc::termios) {
    // SAFETY: restoring attributes read by tcgetattr.
    unsafe {
        libc::tcsetattr(0, libc::TCSANOW, t);
    }
}
