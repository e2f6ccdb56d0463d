//! `ReadThread`: reads server lines and shows them; hands the
//! authentication events to the write thread.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::sync::atomic::Ordering;

use crossbeam_channel::Sender;

use crate::protocol::{self, ServerLine};

use super::{AuthEvent, Ending, Shared};

pub fn run(shared: &Shared, stream: TcpStream, auth: Sender<AuthEvent>) -> Ending {
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let line = match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => String::from_utf8_lossy(&buf).trim_end_matches(['\n', '\r']).to_string(),
        };
        let event = match protocol::parse_server_line(&line) {
            ServerLine::AuthRequest => Some(AuthEvent::Request),
            ServerLine::LoginPrompt | ServerLine::SignupPrompt => Some(AuthEvent::Prompt),
            ServerLine::AuthSuccess(_) => Some(AuthEvent::Success),
            ServerLine::AuthFailed(_) => Some(AuthEvent::Failed),
            _ => None,
        };
        let out = shared.renderer.lock().unwrap().render(&line);
        shared.console.print(&out.lines, out.prompt);
        if let Some(e) = event {
            let _ = auth.send(e);
        }
    }
    shared.finish();
    if shared.quitting.load(Ordering::SeqCst) {
        shared.console.print(&["Goodbye!".to_string()], false);
        Ending::Quit
    } else if shared.abandoned.load(Ordering::SeqCst) {
        shared.console.print(&["Not logged in. Goodbye!".to_string()], false);
        Ending::NotLoggedIn
    } else {
        shared.console.print(&["Connection to the server was lost.".to_string()], false);
        Ending::ServerLost
    }
}
