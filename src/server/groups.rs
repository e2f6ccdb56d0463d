//! Section 5: my groups, browsing and joining, creating, and the group chat.

use std::time::Instant;

use crate::connection::Step;
use crate::db_manager::{CreateGroupOutcome, GroupSummary, JoinOutcome, LeaveOutcome};
use crate::protocol::{self, input, text, GroupChatInput, GroupSelection, MessageKind};
use crate::router::Notice;

use super::session::{Outgoing, Session};

/// Sends a group list between its markers; `false` when it was empty (then
/// `empty_line` was sent in its place).
fn send_group_list(
    s: &Session,
    (start, end): (&str, &str),
    heading: Option<String>,
    groups: &[GroupSummary],
    empty_line: String,
    line: impl Fn(&GroupSummary) -> String,
    more: Option<String>,
) -> Step<bool> {
    let mut lines = vec![start.to_string()];
    lines.extend(heading);
    if groups.is_empty() {
        lines.push(empty_line);
    }
    lines.extend(groups.iter().map(line));
    lines.extend(more);
    lines.push(end.to_string());
    s.conn.send_all(lines)?;
    Ok(!groups.is_empty())
}

/// Menu 3: the user's groups; an id opens its chat.
pub fn my_groups(s: &mut Session) -> Step {
    loop {
        let Some(groups) = s.loaded("listing my groups", s.ctx.db.user_groups(s.user.id))? else {
            return Ok(());
        };
        let listed = send_group_list(
            s,
            (protocol::MY_GROUPS_START, protocol::MY_GROUPS_END),
            None,
            &groups,
            protocol::no_my_groups(),
            |g| protocol::my_group(g.id, &g.name, g.description.as_deref(), g.member_count, g.is_admin),
            None,
        )?;
        let selection = s.conn.read_line()?;
        if !listed {
            return Ok(());
        }
        match protocol::parse_group_selection(&selection) {
            GroupSelection::Back => return Ok(()),
            GroupSelection::Open(id) => open_if_member(s, id, protocol::not_member())?,
            GroupSelection::Join(_) | GroupSelection::BadJoin | GroupSelection::Invalid => {
                s.conn.send(protocol::invalid_selection())?
            }
        }
    }
}

/// Menu 4: every active group; `join:<id>` joins, an id opens a chat.
pub fn browse(s: &mut Session) -> Step {
    // Protocol 2: what the list shows (a search, a page) when not the default.
    let mut view = View::Default;
    loop {
        let max = protocol::BROWSE_GROUPS_MAX;
        let (listed, heading) = match &view {
            View::Default => (s.ctx.db.browse_groups(s.user.id, max), None),
            View::Search(typed) => {
                (s.ctx.db.groups_with_prefix(s.user.id, typed, max), Some(protocol::browse_groups_matches(typed)))
            }
            View::Page(page) => match s.ctx.db.browse_groups_page(s.user.id, *page, max) {
                Ok((groups, older, pages)) => (Ok((groups, older)), Some(protocol::browse_groups_page(*page, pages))),
                Err(e) => (Err(e), None),
            },
        };
        let Some((groups, more)) = s.loaded("listing groups", listed)? else {
            return Ok(());
        };
        let more_line = (more > 0).then(|| {
            if s.conn.outbox().speaks_sessions() {
                protocol::browse_groups_more(more)
            } else {
                protocol::browse_more_row(more)
            }
        });
        let listed = send_group_list(
            s,
            (protocol::BROWSE_GROUPS_START, protocol::BROWSE_GROUPS_END),
            heading,
            &groups,
            protocol::no_groups_available(),
            |g| protocol::browse_group(g.id, &g.name, g.description.as_deref(), g.member_count, g.is_member),
            more_line,
        )?;
        let selection = s.conn.read_line()?;
        if !listed {
            return Ok(());
        }
        match protocol::parse_group_selection(&selection) {
            GroupSelection::Back => return Ok(()),
            GroupSelection::Join(id) => {
                let Some(outcome) = s.loaded("joining a group", s.ctx.db.join_group(id, s.user.id))? else {
                    continue;
                };
                s.conn.send(match outcome {
                    JoinOutcome::Joined => protocol::join_success(),
                    JoinOutcome::AlreadyMember => protocol::join_failed(text::ALREADY_MEMBER),
                    JoinOutcome::NotFound => protocol::join_failed(text::GROUP_NOT_FOUND),
                })?;
            }
            GroupSelection::BadJoin => s.conn.send(protocol::invalid_join())?,
            GroupSelection::Open(id) => open_if_member(s, id, protocol::must_join_first())?,
            GroupSelection::Invalid if s.conn.outbox().speaks_sessions() => {
                // Protocol 2: `page:<n>` turns the page; the start of a
                // group's name narrows the list.
                if let Some(page) = protocol::parse_browse_page(&selection) {
                    view = View::Page(page);
                    continue;
                }
                let any = s.ctx.db.groups_with_prefix(s.user.id, &selection, 1);
                if any.is_ok_and(|(groups, _)| !groups.is_empty()) {
                    view = View::Search(selection);
                    continue;
                }
                s.conn.send(protocol::invalid_selection())?
            }
            GroupSelection::Invalid => s.conn.send(protocol::invalid_selection())?,
        }
        view = View::Default;
    }
}

/// What the browse list shows (protocol 2 may ask for other than the
/// default).
enum View {
    Default,
    Search(String),
    Page(i64),
}

fn open_if_member(s: &mut Session, group_id: i32, refusal: String) -> Step {
    match s.loaded("checking membership", s.ctx.db.member_group_name(group_id, s.user.id))? {
        Some(Some(name)) => group_chat(s, group_id, &name),
        Some(None) => s.conn.send(refusal),
        None => Ok(()),
    }
}

/// Menu 5: name, description, then optionally straight into the chat.
pub fn create(s: &mut Session) -> Step {
    s.conn.send(protocol::CREATE_GROUP_PROMPT)?;
    let name = s.conn.read_line()?;
    if name.is_empty() || name == input::BACK {
        return Ok(());
    }
    let description = s.conn.read_line()?;
    if description == input::BACK {
        return Ok(());
    }
    if let Err(reason) = protocol::validate_group_name(&name).and_then(|_| protocol::validate_description(&description))
    {
        return s.conn.send(protocol::create_failed(&reason));
    }
    let desc = (!description.is_empty()).then_some(description.as_str());
    let Some(outcome) = s.loaded("creating a group", s.ctx.db.create_group(&name, desc, s.user.id))? else {
        return Ok(());
    };
    match outcome {
        CreateGroupOutcome::NameTaken => s.conn.send(protocol::create_failed(text::GROUP_NAME_TAKEN)),
        CreateGroupOutcome::Created(id) => {
            s.conn.send(protocol::create_success(id))?;
            let answer = s.conn.read_line()?;
            if answer.eq_ignore_ascii_case(input::YES) {
                group_chat(s, id, &name)?;
            }
            Ok(())
        }
    }
}

/// The group chat, until `back` or a successful `/leave`.
fn group_chat(s: &mut Session, group_id: i32, name: &str) -> Step {
    let db = &s.ctx.db;
    let Some(history) = s.loaded("reading group history", db.recent_group_messages(group_id))? else {
        return Ok(());
    };
    s.send_history(protocol::group_chat_start(name, group_id), &history, protocol::GROUP_CHAT_READY)?;
    loop {
        let line = s.conn.read_line()?;
        match protocol::parse_group_chat_input(&line) {
            GroupChatInput::Ignore => {}
            GroupChatInput::Back => return Ok(()),
            // Protocol 2: `/members <page>` is a page of the list, not a
            // message (protocol 1 sends it to the group, as the original).
            GroupChatInput::Text(line)
                if s.conn.outbox().speaks_sessions() && protocol::parse_members_page(line).is_some() =>
            {
                let page = protocol::parse_members_page(line).unwrap_or(1);
                let listed = db.group_members_page(group_id, page, protocol::GROUP_MEMBERS_MAX);
                let Some((members, more, all)) = s.loaded("listing members", listed)? else {
                    continue;
                };
                let per_page = protocol::GROUP_MEMBERS_MAX as i64;
                let mut lines = vec![
                    protocol::GROUP_MEMBERS_START.to_string(),
                    protocol::group_members_page(page, ((all + per_page - 1) / per_page).max(1)),
                ];
                lines.extend(members.iter().map(|m| protocol::group_member(&m.username, m.is_admin, &m.joined)));
                lines.extend((more > 0).then(|| protocol::group_members_more(more)));
                lines.push(protocol::GROUP_MEMBERS_END.to_string());
                s.conn.send_all(lines)?;
            }
            GroupChatInput::Members => {
                let listed = db.group_members(group_id, protocol::GROUP_MEMBERS_MAX);
                let Some((members, more)) = s.loaded("listing members", listed)? else {
                    continue;
                };
                let mut lines = vec![protocol::GROUP_MEMBERS_START.to_string()];
                lines.extend(members.iter().map(|m| protocol::group_member(&m.username, m.is_admin, &m.joined)));
                lines.extend((more > 0).then(|| {
                    if s.conn.outbox().speaks_sessions() {
                        protocol::group_members_more(more)
                    } else {
                        protocol::group_members_more_row(more)
                    }
                }));
                lines.push(protocol::GROUP_MEMBERS_END.to_string());
                s.conn.send_all(lines)?;
            }
            GroupChatInput::Leave => {
                let Some(outcome) = s.loaded("leaving a group", db.leave_group(group_id, s.user.id))? else {
                    continue;
                };
                let (reply, left) = match outcome {
                    LeaveOutcome::Left => (text::LEFT_GROUP, true),
                    LeaveOutcome::LeftAndClosed => (text::LEFT_GROUP_CLOSED, true),
                    LeaveOutcome::NotMember => (text::NOT_MEMBER_OF_GROUP, false),
                };
                s.conn.send(protocol::leave_result(reply))?;
                if left {
                    return Ok(());
                }
            }
            GroupChatInput::Text(message) => {
                if !s.admit(Outgoing::Group, message)? {
                    continue;
                }
                let since = Instant::now();
                let saved = db.save_group_message(group_id, s.user.id, &s.user.name, message);
                if let Ok(Some(_)) = &saved {
                    Session::count_stored(Outgoing::Group, since);
                }
                match s.stored("storing a group message", saved, text::STORE_FAILED)? {
                    None => {}
                    Some(None) => {
                        s.conn.send(protocol::not_member())?;
                        return Ok(());
                    }
                    Some(Some(id)) => {
                        // Stored: the sender hears so before the members
                        // are looked up and reached (5,000 take a while);
                        // its next line is read only after, so its
                        // messages stay in order.
                        s.conn.send(protocol::group_sent())?;
                        let members = db.group_member_names(group_id).unwrap_or_else(|e| {
                            log::warn!("group message {id} stored, not delivered live: {e}");
                            Vec::new()
                        });
                        let others: Vec<&str> =
                            members.iter().map(String::as_str).filter(|m| *m != s.user.name).collect();
                        let line = protocol::group_message(name, &s.user.name, message);
                        s.ctx.router.send_to_users(&others, &Notice { kind: MessageKind::Group, id: Some(id), line });
                    }
                }
            }
        }
    }
}
