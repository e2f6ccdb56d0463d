//! `WriteThread`: the authentication dialogue (or a resume), then every
//! typed line to the server.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError};

use crate::protocol::{self, input, GroupChatInput};

use super::render::{Place, Screen};
use super::{AuthEvent, Mode, Shared};

/// How often a wait for the server checks whether the session ended.
const TICK: Duration = Duration::from_millis(200);

pub fn run(shared: &Shared, auth: Receiver<AuthEvent>, mode: Mode) {
    let ready = match mode {
        Mode::Fresh => authenticate(shared, &auth, true),
        Mode::Resume => resume(shared, &auth).or_else(|| authenticate(shared, &auth, false)),
    };
    if ready.is_none() {
        shared.finish();
        return;
    }
    shared.env.console.start_editor();
    while let Some(typed) = shared.env.console.read_line(&shared.input_stop) {
        let screen = shared.env.renderer.lock().unwrap().screen.clone();
        if screen == Screen::Menu && typed.trim() == super::render::PASSWORD_COMMAND {
            if change_password(shared).is_none() {
                break;
            }
            continue;
        }
        let Some(line) = checked(shared, &screen, typed) else { continue };
        if screen == Screen::Menu && line.trim() == input::BYE {
            shared.quitting.store(true, Ordering::SeqCst);
        }
        let is_message = match screen {
            Screen::Conversation | Screen::Broadcast => !protocol::is_leave_chat(line.trim()),
            Screen::GroupChat => matches!(protocol::parse_group_chat_input(line.trim()), GroupChatInput::Text(_)),
            _ => false,
        };
        if is_message {
            shared.env.continuity.lock().unwrap().unconfirmed.push_back(line.trim().to_string());
        }
        if send(shared, &line).is_none() {
            return;
        }
        let follow_up = shared.env.renderer.lock().unwrap().after_input();
        if let Some(question) = follow_up {
            shared.env.console.ask(question);
        }
    }
    if shared.draining.load(Ordering::SeqCst) && !shared.done.load(Ordering::SeqCst) {
        // The server drains: close our side; it answers what we sent, then
        // closes, and the session resumes elsewhere.
        shared.link.close_write();
        return;
    }
    // Ctrl-D (or the connection ended): leave, unless the connection ended
    // under us (the session may resume).
    if !shared.done.load(Ordering::SeqCst) {
        shared.quitting.store(true, Ordering::SeqCst);
    }
    shared.finish();
}

/// What the client keeps from the server: a line over the protocol's limit
/// (never sent cut), a mistyped command in a group (never sent to all).
/// `//text` in a group sends `/text`.
fn checked(shared: &Shared, screen: &Screen, line: String) -> Option<String> {
    if line.len() > protocol::MAX_LINE_BYTES {
        shared.say(&format!(
            "⚠ Not sent: the line is {} bytes; the limit is {} bytes. Send it in parts.",
            line.len(),
            protocol::MAX_LINE_BYTES
        ));
        return None;
    }
    if *screen == Screen::GroupChat {
        let t = line.trim();
        if let Some(literal) = t.strip_prefix("//") {
            return Some(format!("/{literal}"));
        }
        if t.starts_with('/') && t != input::MEMBERS && t != input::LEAVE {
            shared.say(&format!(
                "⚠ Unknown command {t:?}. In a group: {} lists members, {} leaves, 'back' returns; \
                 start a message with // to send a line beginning with /.",
                input::MEMBERS,
                input::LEAVE
            ));
            return None;
        }
    }
    Some(line)
}

fn send(shared: &Shared, line: &str) -> Option<()> {
    shared.link.write_line(line).ok()
}

/// `/password` at the main menu (protocol 2): the current password, the
/// new one twice; the server answers and shows the menu again. `None`: the
/// connection ended.
fn change_password(shared: &Shared) -> Option<()> {
    if !shared.env.renderer.lock().unwrap().protocol2 {
        shared.say("This server cannot change passwords from the client; ask an administrator.");
        return Some(());
    }
    let current = ask_password(shared, "Current password:")?;
    let new = ask_password(shared, "New password:")?;
    if new.is_empty() {
        shared.say("❌ Password cannot be empty.");
        return Some(());
    }
    if ask_password(shared, "Confirm new password:")? != new {
        shared.say("❌ Passwords do not match; password not changed.");
        return Some(());
    }
    send(shared, input::CHANGE_PASSWORD)?;
    send(shared, &current)?;
    send(shared, &new)
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
    shared.env.console.ask(question);
    shared.env.console.read_line(&shared.done)
}

fn ask_password(shared: &Shared, question: &str) -> Option<String> {
    shared.env.console.ask(question);
    shared.env.console.read_password(&shared.done)
}

/// `HELLO:2`: whether the server speaks protocol 2. A server that does not
/// answers `AUTH_FAILED:Invalid choice` and the session goes on without.
fn hello(shared: &Shared, auth: &Receiver<AuthEvent>) -> Option<bool> {
    shared.hello_pending.store(true, Ordering::SeqCst);
    send(shared, &protocol::hello())?;
    match wait(shared, auth)? {
        AuthEvent::Hello => Some(true),
        AuthEvent::Failed(_) => Some(false),
        _ => None,
    }
}

/// Resumes the last connection's session and reopens the chat the person
/// had open. `None`: refused (the person logs in again) or the connection
/// ended.
fn resume(shared: &Shared, auth: &Receiver<AuthEvent>) -> Option<()> {
    if wait(shared, auth)? != AuthEvent::Request || !hello(shared, auth)? {
        return None;
    }
    let (user, token, last) = {
        let c = shared.env.continuity.lock().unwrap();
        (c.username.clone()?, c.token.clone()?, c.last)
    };
    let place = shared.env.renderer.lock().unwrap().place.clone();
    *shared.restoring.lock().unwrap() = Some(place.clone());
    send(shared, &protocol::resume(&user, &token, last))?;
    match wait(shared, auth)? {
        AuthEvent::Success => {}
        AuthEvent::Failed(reason) => {
            *shared.restoring.lock().unwrap() = None;
            shared.env.continuity.lock().unwrap().token = None;
            shared.say(&format!("⚠ The session could not be resumed ({reason}); please log in again."));
            return None;
        }
        _ => return None,
    }
    // Back to where the person was; the read thread shows nothing of the
    // way there (no history again), then one line.
    let steps: Vec<String> = match place {
        Place::Menu => vec![],
        Place::Conversation(contact) => vec![input::MENU_PRIVATE.into(), contact],
        Place::Broadcast => vec![input::MENU_BROADCAST.into()],
        Place::Group(id) => vec![input::MENU_MY_GROUPS.into(), id],
    };
    for step in steps {
        send(shared, &step)?;
    }
    Some(())
}

/// Login or signup until one succeeds. `None`: the person gave up or the
/// session ended. `fresh`: the server has not been asked `HELLO` yet.
fn authenticate(shared: &Shared, auth: &Receiver<AuthEvent>, fresh: bool) -> Option<()> {
    if fresh {
        if wait(shared, auth)? != AuthEvent::Request {
            return None;
        }
        hello(shared, auth)?;
    }
    loop {
        shared.say("1. Login");
        shared.say("2. Sign Up");
        let choice = ask(shared, "Choose 1 or 2:")?;
        let signup = match choice.trim() {
            "1" => false,
            "2" => true,
            "" => continue,
            _ => {
                shared.say("Please type 1 or 2.");
                continue;
            }
        };
        let username = ask(shared, "Username:")?.trim().to_string();
        let password = ask_password(shared, "Password:")?;
        if signup {
            if password.is_empty() {
                shared.say("❌ Password cannot be empty.");
                continue;
            }
            let again = ask_password(shared, "Confirm password:")?;
            if again != password {
                shared.say("❌ Passwords do not match.");
                continue;
            }
        }
        if signup {
            let registration = shared.env.continuity.lock().unwrap().registration.clone();
            match registration.as_deref() {
                Some("closed") => {
                    shared.say(&format!("❌ {}", protocol::text::SIGNUP_CLOSED));
                    continue;
                }
                Some("invite") => {
                    let code = ask(shared, "Invite code:")?;
                    send(shared, &protocol::invite(code.trim()))?;
                }
                _ => {}
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
                shared.env.console.set_user(&username);
                shared.env.continuity.lock().unwrap().username = Some(username);
                return Some(());
            }
            AuthEvent::Failed(_) => {
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
