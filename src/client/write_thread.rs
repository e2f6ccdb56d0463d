//! `WriteThread`: the authentication dialogue, then every typed line to
//! the server.

use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError};

use crate::protocol::input;

use super::render::Screen;
use super::{AuthEvent, Shared};

/// How often a wait for the server checks whether the session ended.
const TICK: Duration = Duration::from_millis(200);

pub fn run(shared: &Shared, auth: Receiver<AuthEvent>) {
    if authenticate(shared, &auth).is_none() {
        shared.finish();
        return;
    }
    while let Some(line) = shared.console.read_line(&shared.done) {
        let at_menu = shared.renderer.lock().unwrap().screen == Screen::Menu;
        if at_menu && line.trim() == input::BYE {
            shared.quitting.store(true, Ordering::SeqCst);
        }
        if send(shared, &line).is_none() {
            return;
        }
        let follow_up = shared.renderer.lock().unwrap().after_input();
        if let Some(question) = follow_up {
            shared.console.ask(question);
        }
    }
    // Ctrl-D (or the session ended): leave.
    shared.quitting.store(true, Ordering::SeqCst);
    shared.finish();
}

fn send(shared: &Shared, line: &str) -> Option<()> {
    (&shared.stream).write_all(format!("{line}\n").as_bytes()).ok()
}

/// Waits for the next authentication event; `None` if the session ended.
fn wait(shared: &Shared, auth: &Receiver<AuthEvent>) -> Option<AuthEvent> {
    loop {
        match auth.recv_timeout(TICK) {
            Ok(e) => return Some(e),
            Err(RecvTimeoutError::Timeout) if !shared.done.load(Ordering::SeqCst) => {}
            Err(_) => return None,
        }
    }
}

fn ask(shared: &Shared, question: &str) -> Option<String> {
    shared.console.ask(question);
    shared.console.read_line(&shared.done)
}

fn ask_password(shared: &Shared, question: &str) -> Option<String> {
    shared.console.ask(question);
    shared.console.read_password(&shared.done)
}

fn say(shared: &Shared, line: &str) {
    shared.console.print(&[line.to_string()], false);
}

/// Login or signup until one succeeds. `None`: the person gave up or the
/// session ended.
fn authenticate(shared: &Shared, auth: &Receiver<AuthEvent>) -> Option<()> {
    if wait(shared, auth)? != AuthEvent::Request {
        return None;
    }
    loop {
        say(shared, "1. Login");
        say(shared, "2. Sign Up");
        let choice = ask(shared, "Choose 1 or 2:")?;
        let signup = match choice.trim() {
            "1" => false,
            "2" => true,
            "" => continue,
            _ => {
                say(shared, "Please type 1 or 2.");
                continue;
            }
        };
        let username = ask(shared, "Username:")?.trim().to_string();
        let password = ask_password(shared, "Password:")?;
        if signup {
            if password.is_empty() {
                say(shared, "❌ Password cannot be empty.");
                continue;
            }
            let again = ask_password(shared, "Confirm password:")?;
            if again != password {
                say(shared, "❌ Passwords do not match.");
                continue;
            }
        }
        send(shared, if signup { input::SIGNUP } else { input::LOGIN })?;
        if wait(shared, auth)? != AuthEvent::Prompt {
            return None;
        }
        send(shared, &username)?;
        send(shared, &password)?;
        match wait(shared, auth)? {
            AuthEvent::Success => {
                shared.console.set_user(&username);
                return Some(());
            }
            AuthEvent::Failed => {
                let again = ask(shared, "Try again? (yes/no):")?;
                if !again.trim().eq_ignore_ascii_case(input::YES) && !again.trim().eq_ignore_ascii_case("y") {
                    shared.abandoned.store(true, Ordering::SeqCst);
                    return None;
                }
            }
            _ => return None,
        }
    }
}
