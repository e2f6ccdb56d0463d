//! `ReadThread`: reads server lines and shows them; hands the
//! authentication events to the write thread; keeps what a resume needs
//! (token, ids shown, messages awaiting their acknowledgement).

use std::io::{BufRead, BufReader};
use std::sync::atomic::Ordering;

use crossbeam_channel::Sender;

use crate::protocol::{self, ServerLine};

use super::link::LinkReader;
use super::render::{Place, Screen};
use super::{AuthEvent, Ending, Shared};

pub fn run(shared: &Shared, stream: LinkReader, auth: Sender<AuthEvent>) -> Ending {
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let line = match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => String::from_utf8_lossy(&buf).trim_end_matches(['\n', '\r']).to_string(),
        };
        handle(shared, &line, &auth);
    }
    shared.finish();
    if shared.quitting.load(Ordering::SeqCst) {
        shared.say("Goodbye!");
        Ending::Quit
    } else if shared.abandoned.load(Ordering::SeqCst) {
        shared.say("Not logged in. Goodbye!");
        Ending::NotLoggedIn
    } else {
        Ending::ServerLost
    }
}

fn handle(shared: &Shared, line: &str, auth: &Sender<AuthEvent>) {
    let parsed = protocol::parse_server_line(line);
    let mut cont = shared.env.continuity.lock().unwrap();
    let event = match &parsed {
        ServerLine::AuthRequest => Some(AuthEvent::Request),
        ServerLine::Hello(_) => {
            // The menu offers /password from now on.
            shared.env.renderer.lock().unwrap().protocol2 = true;
            Some(AuthEvent::Hello)
        }
        ServerLine::LoginPrompt | ServerLine::SignupPrompt => Some(AuthEvent::Prompt),
        ServerLine::AuthSuccess(_) => Some(AuthEvent::Success),
        ServerLine::AuthFailed(reason) => Some(AuthEvent::Failed(reason.to_string())),
        ServerLine::Session(token) => {
            cont.token = Some(token.to_string());
            None
        }
        ServerLine::Registration(mode) => {
            cont.registration = Some(mode.to_string());
            None
        }
        ServerLine::SessionEnd(reason) => {
            cont.token = None;
            // The server closes next; nothing to resume.
            cont.ended = Some(reason.to_string());
            None
        }
        ServerLine::ServerShutdown(_) => {
            shared.draining.store(true, Ordering::SeqCst);
            shared.input_stop.store(true, Ordering::SeqCst);
            None
        }
        ServerLine::MsgId(kind, id) => {
            cont.next_id = Some((*kind, *id));
            None
        }
        ServerLine::Notification(_) => {
            if let Some((kind, id)) = cont.next_id.take() {
                if !cont.first_sight(kind, id) {
                    return; // replayed and also live: shown already
                }
            }
            None
        }
        _ => None,
    };
    let screen = shared.env.renderer.lock().unwrap().screen.clone();
    let in_chat = matches!(screen, Screen::Conversation | Screen::Broadcast | Screen::GroupChat);
    if in_chat && (protocol::parse_ack(line).is_some() || line.starts_with(&protocol::error("")[..])) {
        cont.unconfirmed.pop_front();
    }
    drop(cont);
    if matches!(event, Some(AuthEvent::Hello | AuthEvent::Failed(_)))
        && shared.hello_pending.swap(false, Ordering::SeqCst)
    {
        let _ = auth.send(event.expect("matched above"));
        return;
    }
    let out = shared.env.renderer.lock().unwrap().render(line);
    let mut restoring = shared.restoring.lock().unwrap();
    match restoring.as_ref() {
        Some(target) if !out.notification => {
            let place = shared.env.renderer.lock().unwrap().place.clone();
            let arrived = match (target, &parsed) {
                (Place::Menu, ServerLine::MainMenuEnd) => true,
                (_, ServerLine::ConversationReady | ServerLine::GroupChatReady) => place == *target,
                (_, ServerLine::Problem(_)) => true,
                _ => false,
            };
            if arrived {
                *restoring = None;
                let mut lines = out.lines.clone();
                if !matches!(parsed, ServerLine::Problem(_)) {
                    lines.clear();
                }
                lines.push("✅ Reconnected; back where you were.".to_string());
                shared.env.console.print(&lines, true);
            }
        }
        _ => shared.env.console.print(&out.lines, out.prompt),
    }
    drop(restoring);
    if let Some(e) = event {
        let _ = auth.send(e);
    }
}
