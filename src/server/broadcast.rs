//! Section 4: the broadcast channel.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::connection::Step;
use crate::protocol::{self, MessageKind};
use crate::router::Notice;

use super::session::{Outgoing, Session};

/// Menu 2: history, then every line is a broadcast, until `back`.
pub fn run(s: &mut Session) -> Step {
    let Some(history) = s.loaded("reading broadcast history", s.ctx.db.recent_broadcast_messages())? else {
        return Ok(());
    };
    s.send_history(protocol::broadcast_start(), &history, protocol::CONVERSATION_READY)?;
    loop {
        let line = s.conn.read_line()?;
        if protocol::is_leave_chat(&line) {
            return Ok(());
        }
        if !s.admit(Outgoing::Broadcast, &line)? {
            continue;
        }
        let since = Instant::now();
        let saved = s.ctx.db.save_broadcast_message(s.user.id, &s.user.name, &line);
        let Some(id) = s.stored_message(Outgoing::Broadcast, since, saved)? else {
            continue;
        };
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let notice = Notice {
            kind: MessageKind::Broadcast,
            id: Some(id),
            line: protocol::broadcast(&s.user.name, &line, now_ms),
        };
        let report = s.ctx.router.broadcast(&s.user.name, &notice);
        s.conn.send(protocol::broadcast_sent(report.reached, report.others_online))?;
    }
}
