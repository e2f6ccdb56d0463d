//! Section 3: the contact list and one-to-one conversations.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use log::warn;

use crate::connection::Step;
use crate::protocol::{self, input, MessageKind};
use crate::router::Notice;

use super::broadcast;
use super::session::{Outgoing, Session};

/// Menu 1: the contact list, until `back`.
pub fn run(s: &mut Session) -> Step {
    // Protocol 2: what the user typed, when it narrowed the list.
    let mut search: Option<String> = None;
    loop {
        let page = match &search {
            Some(typed) => s.ctx.db.contacts_with_prefix(s.user.id, typed, protocol::CONTACT_LIST_MAX),
            None => s.ctx.db.contact_page(s.user.id, protocol::CONTACT_LIST_MAX),
        };
        let Some((contacts, more)) = s.loaded("listing contacts", page)? else {
            return Ok(());
        };
        let online = s.ctx.presence.online_among(&contacts).unwrap_or_else(|e| {
            warn!("contact list without presence: {e}");
            HashSet::new()
        });
        // Protocol 2: each row also says how many of its messages are unread.
        let unread: HashMap<String, i64> = if s.conn.outbox().speaks_sessions() {
            s.ctx.db.unread_by_sender(s.user.id).unwrap_or_else(|e| {
                warn!("contact list without unread counts: {e}");
                Vec::new()
            })
        } else {
            Vec::new()
        }
        .into_iter()
        .collect();
        let speaks_sessions = s.conn.outbox().speaks_sessions();
        let mut lines = vec![protocol::CONTACT_LIST_START.to_string()];
        lines.extend(search.as_deref().map(protocol::contact_list_matches));
        lines.push(protocol::broadcast_contact());
        lines.extend(contacts.iter().map(|c| {
            if speaks_sessions {
                protocol::contact_with_unread(c, online.contains(c), unread.get(c).copied().unwrap_or(0))
            } else {
                protocol::contact(c, online.contains(c))
            }
        }));
        lines.extend((more > 0).then(|| {
            if speaks_sessions {
                protocol::contact_list_more(more)
            } else {
                protocol::contact_list_more_row(more)
            }
        }));
        lines.push(protocol::CONTACT_LIST_END.to_string());
        s.conn.send_all(lines)?;

        let choice = s.conn.read_line()?;
        if protocol::is_leave_chat(&choice) {
            return Ok(());
        }
        if choice == input::BROADCAST {
            return broadcast::run(s);
        }
        // A name beyond the list's cut is found by name.
        let cut = more > 0 || search.is_some();
        let known = contacts.contains(&choice)
            || (cut && choice != s.user.name && matches!(s.ctx.db.find_user_id(&choice), Ok(Some(_))));
        if known {
            search = None;
            conversation(s, &choice)?;
            continue;
        }
        // Protocol 2: the start of a name narrows the list to the names
        // that start so (typing "al" and Enter lists alice, alan...).
        if s.conn.outbox().speaks_sessions() && !choice.is_empty() {
            let any = s.ctx.db.contacts_with_prefix(s.user.id, &choice, 1);
            if any.is_ok_and(|(names, _)| !names.is_empty()) {
                search = Some(choice);
                continue;
            }
        }
        search = None;
        s.conn.send(protocol::contact_not_found())?;
    }
}

/// One conversation, until `back` (then the contact list again).
fn conversation(s: &mut Session, contact: &str) -> Step {
    let db = &s.ctx.db;
    let Some(Some(contact_id)) = s.loaded("finding a contact", db.find_user_id(contact))? else {
        return s.conn.send(protocol::contact_not_found());
    };
    let Some(conversation_id) =
        s.loaded("opening a conversation", db.get_or_create_conversation(s.user.id, contact_id))?
    else {
        return Ok(());
    };
    let Some(history) = s.loaded("reading history", db.recent_conversation_messages(conversation_id))? else {
        return Ok(());
    };
    s.send_history(protocol::conversation_start(contact), &history, protocol::CONVERSATION_READY)?;
    mark_read(s, conversation_id);
    loop {
        let line = s.conn.read_line()?;
        if protocol::is_leave_chat(&line) {
            // What arrived while it was open has been seen too.
            mark_read(s, conversation_id);
            return Ok(());
        }
        if !s.admit(Outgoing::Private, &line)? {
            continue;
        }
        let since = Instant::now();
        let saved = db.save_private_message(conversation_id, s.user.id, &s.user.name, &line);
        let Some(id) = s.stored_message(Outgoing::Private, since, saved)? else {
            continue;
        };
        let line = protocol::message(&s.user.name, &line);
        let online = s.ctx.router.send_to_user(contact, &Notice { kind: MessageKind::Private, id: Some(id), line });
        s.conn.send(protocol::sent(online))?;
    }
}

/// Marks the contact's messages in the conversation read (`is_read`).
fn mark_read(s: &Session, conversation_id: i32) {
    if let Err(e) = s.ctx.db.mark_conversation_read(conversation_id, s.user.id) {
        warn!("{}: conversation {conversation_id} not marked read: {e}", s.user.name);
    }
}
