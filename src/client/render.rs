//! What the person sees: turns server lines into text, in memory. Tracks
//! which block of a screen the lines belong to (menu text, history, list
//! rows) and which screen is open, for the prompts.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::protocol::{self, Notification, ServerLine};

/// A history line's `[YYYY-MM-DD HH:MM:SSZ]` (UTC, protocol 2) in the local
/// time zone, `[YYYY-MM-DD HH:MM]`; other lines as they are.
pub fn history_in_local_time(line: &str) -> String {
    let parsed = (|| {
        let stamp = line.strip_prefix('[')?.get(..20)?.strip_suffix('Z')?;
        let rest = line.get(22..)?.strip_prefix(' ').or(line.get(22..))?;
        if line.as_bytes().get(21) != Some(&b']') {
            return None;
        }
        let n = |a: usize, b: usize| stamp.get(a..b)?.parse::<i32>().ok();
        // SAFETY: timegm and localtime_r on zeroed tm structs we own.
        unsafe {
            let mut tm: libc::tm = std::mem::zeroed();
            tm.tm_year = n(0, 4)? - 1900;
            tm.tm_mon = n(5, 7)? - 1;
            tm.tm_mday = n(8, 10)?;
            tm.tm_hour = n(11, 13)?;
            tm.tm_min = n(14, 16)?;
            tm.tm_sec = n(17, 19)?;
            let t = libc::timegm(&mut tm);
            let mut local: libc::tm = std::mem::zeroed();
            if libc::localtime_r(&t, &mut local).is_null() {
                return None;
            }
            Some(format!(
                "[{:04}-{:02}-{:02} {:02}:{:02}] {rest}",
                local.tm_year + 1900,
                local.tm_mon + 1,
                local.tm_mday,
                local.tm_hour,
                local.tm_min
            ))
        }
    })();
    parsed.unwrap_or_else(|| line.to_string())
}

/// `HH:MM` of a Unix time in the local time zone (`TZ`, `/etc/localtime`).
pub fn local_hhmm(unix_secs: i64) -> String {
    let t: libc::time_t = unix_secs as libc::time_t;
    // SAFETY: localtime_r writes into the zeroed tm we own; t is a valid
    // time_t.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return "--:--".into();
        }
        tm
    };
    format!("{:02}:{:02}", tm.tm_hour, tm.tm_min)
}

/// The screen the person is on (for prompts and for what `bye` means).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Screen {
    Auth,
    Menu,
    Contacts,
    Conversation,
    Broadcast,
    MyGroups,
    BrowseGroups,
    CreateName,
    CreateDescription,
    CreateEnter,
    GroupChat,
}

/// Where a resumed session puts the person back.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Place {
    /// The main menu (also for lists and dialogues: they start over there).
    #[default]
    Menu,
    Conversation(String),
    Broadcast,
    /// A group chat, by id.
    Group(String),
}

/// Rows between two markers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    None,
    MenuText,
    History,
    Contacts,
    MyGroups,
    BrowseGroups,
    Members,
}

/// The output for one server line.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Output {
    pub lines: Vec<String>,
    /// Show the prompt again after these lines.
    pub prompt: bool,
    /// A notification: print it on a line of its own even mid-typing.
    pub notification: bool,
}

impl Output {
    fn show(lines: Vec<String>, prompt: bool) -> Output {
        Output { lines, prompt, notification: false }
    }
}

pub struct Renderer {
    block: Block,
    pub screen: Screen,
    /// The chat the person has open, if any.
    pub place: Place,
    /// The server speaks protocol 2 (the menu offers /password).
    pub protocol2: bool,
}

impl Default for Renderer {
    fn default() -> Self {
        Renderer { block: Block::None, screen: Screen::Auth, place: Place::Menu, protocol2: false }
    }
}

/// What the person types at the main menu to change their password.
pub const PASSWORD_COMMAND: &str = "/password";

fn split5(row: &str) -> Option<[&str; 5]> {
    // id|name|description|count|badge: the description may not hold '|',
    // but read count and badge from the right to be safe.
    let (id, rest) = row.split_once('|')?;
    let (name, rest) = rest.split_once('|')?;
    let (rest, badge) = rest.rsplit_once('|')?;
    let (desc, count) = rest.rsplit_once('|')?;
    Some([id, name, desc, count, badge])
}

impl Renderer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Renders one server line. Control characters in it (a message or a
    /// history row from an old database) are shown escaped, never sent to
    /// the terminal.
    pub fn render(&mut self, line: &str) -> Output {
        let escaped = protocol::escape_controls(line);
        let line: &str = &escaped;
        let parsed = protocol::parse_server_line(line);
        if let ServerLine::Notification(n) = parsed {
            let now = || SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
            let text = match n {
                Notification::Message { sender, text } => format!("{} 💬 {sender}: {text}", local_hhmm(now())),
                Notification::Broadcast { sender, text, unix_ms } => {
                    format!("{} 📢 {sender}: {text}", local_hhmm((unix_ms / 1000) as i64))
                }
                Notification::GroupMessage { group, sender, text } => {
                    format!("{} 👥 [{group}] {sender}: {text}", local_hhmm(now()))
                }
            };
            return Output { lines: vec![text], prompt: true, notification: true };
        }
        if let ServerLine::Other(raw) = parsed {
            return self.row(raw);
        }
        if let ServerLine::Unread(total, by) = &parsed {
            let text = if *total == 0 {
                "No new messages while you were away.".to_string()
            } else {
                let from: Vec<String> = by.iter().map(|(s, n)| format!("{s} ({n})")).collect();
                format!("📬 {total} new messages while you were away: {}", from.join(", "))
            };
            return Output::show(vec![text], false);
        }
        // Session lines are the connection's business (read_thread), and
        // may come between the rows of a block.
        if let ServerLine::Hello(_)
        | ServerLine::Session(_)
        | ServerLine::MsgId(..)
        | ServerLine::ServerShutdown(_)
        | ServerLine::Registration(_)
        | ServerLine::PasswordPrompt = parsed
        {
            return Output::default();
        }
        self.block = Block::None;
        match parsed {
            ServerLine::AuthRequest
            | ServerLine::LoginPrompt
            | ServerLine::SignupPrompt
            | ServerLine::Registration(_)
            | ServerLine::PasswordPrompt => Output::default(),
            ServerLine::AuthSuccess(text) => {
                self.screen = Screen::Menu;
                Output::show(vec![format!("✅ {text}")], false)
            }
            ServerLine::AuthFailed(reason) => Output::show(vec![format!("❌ {reason}")], false),
            ServerLine::MainMenuStart => {
                self.block = Block::MenuText;
                self.screen = Screen::Menu;
                self.place = Place::Menu;
                Output::default()
            }
            ServerLine::MainMenuEnd if self.protocol2 => Output::show(
                vec![format!("Choose 1-5, '{PASSWORD_COMMAND}' to change your password, or 'bye' to log out.")],
                true,
            ),
            ServerLine::MainMenuEnd => Output::show(vec!["Choose 1-5, or 'bye' to log out.".into()], true),
            ServerLine::SessionEnd(reason) => Output::show(vec![format!("⛔ {reason}")], false),
            ServerLine::PasswordResult(true, text) => Output::show(vec![format!("✅ {text}")], false),
            ServerLine::PasswordResult(false, reason) => Output::show(vec![format!("❌ {reason}")], false),
            ServerLine::ContactListStart => {
                self.block = Block::Contacts;
                self.screen = Screen::Contacts;
                self.place = Place::Menu;
                Output::show(vec![String::new(), "=== Contacts ===".into()], false)
            }
            ServerLine::ContactListMore(n) => {
                Output::show(vec![format!("  … and {n} more: type a name to chat")], false)
            }
            ServerLine::ContactListEnd if self.protocol2 => Output::show(
                vec!["Type a username (or its first letters to narrow the list), BROADCAST for the channel, or 'back'."
                    .into()],
                true,
            ),
            ServerLine::ContactListEnd => {
                Output::show(vec!["Type a username to chat, BROADCAST for the channel, or 'back'.".into()], true)
            }
            ServerLine::ConversationStart(contact) => {
                self.block = Block::History;
                self.screen = Screen::Conversation;
                self.place = Place::Conversation(contact.to_string());
                Output::show(vec![String::new(), format!("=== Chat with {contact} ===")], false)
            }
            ServerLine::BroadcastStart(title) => {
                self.block = Block::History;
                self.screen = Screen::Broadcast;
                self.place = Place::Broadcast;
                Output::show(vec![String::new(), format!("=== 📢 {title} ===")], false)
            }
            ServerLine::ConversationReady => {
                Output::show(vec!["Type a message and press Enter; 'back' to leave.".into()], true)
            }
            ServerLine::MyGroupsStart => {
                self.block = Block::MyGroups;
                self.screen = Screen::MyGroups;
                self.place = Place::Menu;
                Output::show(vec![String::new(), "=== My Groups ===".into()], false)
            }
            ServerLine::BrowseGroupsStart => {
                self.block = Block::BrowseGroups;
                self.screen = Screen::BrowseGroups;
                self.place = Place::Menu;
                Output::show(vec![String::new(), "=== All Groups ===".into()], false)
            }
            ServerLine::MyGroupsEnd => Output::show(vec!["Type a group id to open it, or 'back'.".into()], true),
            ServerLine::ContactListMatches(typed) => {
                Output::show(vec![format!("Names starting with \"{typed}\":")], false)
            }
            ServerLine::BrowseGroupsMatches(typed) => {
                Output::show(vec![format!("Groups whose names start with \"{typed}\":")], false)
            }
            ServerLine::GroupMembersMore(n) => {
                Output::show(vec![format!("  … and {n} more members: /members 2 for the next page")], false)
            }
            ServerLine::BrowseGroupsPage(page, pages) => {
                Output::show(vec![format!("  page {page} of {pages} (newest first; page:<n> for another)")], false)
            }
            ServerLine::GroupMembersPage(page, pages) => Output::show(vec![format!("  page {page} of {pages}")], false),
            ServerLine::BrowseGroupsMore(n) => {
                Output::show(vec![format!("  … and {n} older groups: join:<id> joins one by its id")], false)
            }
            ServerLine::BrowseGroupsEnd if self.protocol2 => Output::show(
                vec!["Type join:<id> to join, <id> to open a group you belong to, the start of a name to find one, page:<n>, or 'back'."
                    .into()],
                true,
            ),
            ServerLine::BrowseGroupsEnd => Output::show(
                vec!["Type join:<id> to join, <id> to open a group you belong to, or 'back'.".into()],
                true,
            ),
            ServerLine::CreateGroupPrompt => {
                self.screen = Screen::CreateName;
                self.place = Place::Menu;
                Output::show(
                    vec![String::new(), "=== Create a group ===".into(), "Group name ('back' cancels):".into()],
                    true,
                )
            }
            ServerLine::CreateSuccess(text, id) => {
                self.screen = Screen::CreateEnter;
                // The server waits for this answer without asking: ask here.
                Output::show(vec![format!("✅ {text} (id {id})"), "Enter the group now? (yes/no)".into()], true)
            }
            ServerLine::GroupChatStart { name, id } => {
                self.block = Block::History;
                self.screen = Screen::GroupChat;
                self.place = Place::Group(id.to_string());
                Output::show(vec![String::new(), format!("=== 👥 {name} (#{id}) ===")], false)
            }
            ServerLine::GroupChatReady => Output::show(
                vec!["Type a message; /members lists members, /leave leaves, 'back' returns.".into()],
                true,
            ),
            ServerLine::GroupMembersStart => {
                self.block = Block::Members;
                Output::show(vec!["Members:".into()], false)
            }
            ServerLine::GroupMembersEnd => Output::show(vec![], true),
            ServerLine::Info(text) => Output::show(vec![format!("✓ {text}")], true),
            ServerLine::Problem(text) => Output::show(vec![format!("⚠ {text}")], true),
            ServerLine::Notification(_)
            | ServerLine::Other(_)
            | ServerLine::Hello(_)
            | ServerLine::Session(_)
            | ServerLine::MsgId(..)
            | ServerLine::Unread(..)
            | ServerLine::ServerShutdown(_) => unreachable!("handled above"),
        }
    }

    fn row(&mut self, raw: &str) -> Output {
        let text = match self.block {
            // Unknown lines outside a block are ignored, as the protocol asks.
            Block::None => return Output::default(),
            Block::MenuText => raw.to_string(),
            Block::History => history_in_local_time(raw),
            Block::Contacts => match raw.splitn(3, '|').collect::<Vec<_>>()[..] {
                [name, status] if name == "BROADCAST" => format!("  📢 {name} ({status} channel)"),
                [name, status, ref unread @ ..] => {
                    let dot = if status == protocol::text::CONTACT_ONLINE { "🟢" } else { "⚪" };
                    match unread.first().and_then(|n| n.parse::<i64>().ok()) {
                        Some(n) if n > 0 => format!("  {dot} {name} ({n} unread)"),
                        _ => format!("  {dot} {name}"),
                    }
                }
                _ => raw.to_string(),
            },
            Block::MyGroups | Block::BrowseGroups => match split5(raw) {
                Some([id, name, desc, count, badge]) => format!("  [{id}] {name} - {desc} ({count} members) {badge}"),
                None => raw.to_string(),
            },
            Block::Members => match raw.splitn(3, '|').collect::<Vec<_>>().as_slice() {
                [name, role, joined] => format!("  {role}  {name} (since {joined})"),
                _ => raw.to_string(),
            },
        };
        Output::show(vec![text], false)
    }

    /// What to ask after the person typed a line on the current screen
    /// (the create-group dialogue has steps the server does not prompt).
    pub fn after_input(&mut self) -> Option<&'static str> {
        match self.screen {
            Screen::CreateName => {
                self.screen = Screen::CreateDescription;
                Some("Description (Enter for none):")
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(r: &mut Renderer, lines: &[String]) -> Vec<String> {
        lines.iter().flat_map(|l| r.render(l).lines).collect()
    }

    #[test]
    fn notifications_print_whole_texts_with_colons() {
        let mut r = Renderer::new();
        let out = r.render(&protocol::broadcast("ann", "a: b: c", 17));
        assert_eq!(out.lines, vec![format!("{} 📢 ann: a: b: c", local_hhmm(0))]);
        assert!(out.notification && out.prompt);
        assert!(r.render(&protocol::message("bo", "x:y")).lines[0].ends_with(" 💬 bo: x:y"));
        assert!(r.render(&protocol::group_message("g", "cy", "1:2")).lines[0].ends_with(" 👥 [g] cy: 1:2"));
    }

    #[test]
    fn times_are_shown_in_the_local_zone() {
        std::env::set_var("TZ", "UTC");
        assert_eq!(local_hhmm(0), "00:00");
        assert_eq!(local_hhmm(3600 * 13 + 60 * 7), "13:07");
        assert_eq!(history_in_local_time("[2026-11-26 10:05:09Z] bob: a: b"), "[2026-11-26 10:05] bob: a: b");
        // Protocol-1 history (no Z) is shown as the server sent it.
        assert_eq!(history_in_local_time("[2026-11-26 10:05:09] bob: hi"), "[2026-11-26 10:05:09] bob: hi");
    }

    #[test]
    fn unread_counts_are_shown() {
        let mut r = Renderer::new();
        let rows = texts(
            &mut r,
            &[
                protocol::CONTACT_LIST_START.into(),
                protocol::contact_with_unread("bob", true, 2),
                protocol::contact_with_unread("cy", false, 0),
                protocol::CONTACT_LIST_END.into(),
            ],
        );
        assert!(rows.contains(&"  🟢 bob (2 unread)".to_string()), "{rows:?}");
        assert!(rows.contains(&"  ⚪ cy".to_string()), "{rows:?}");
        let summary = r.render(&protocol::unread(&[("bob".into(), 2), ("cy".into(), 1)])).lines;
        assert_eq!(summary, ["📬 3 new messages while you were away: bob (2), cy (1)"]);
    }

    #[test]
    fn control_characters_from_the_server_are_shown_escaped() {
        let mut r = Renderer::new();
        let out = r.render(&protocol::message("eve", "\x1b[2J\x1b]0;owned\x07\rfake prompt"));
        assert!(out.lines[0].ends_with(" 💬 eve: ^[[2J^[]0;owned^G^Mfake prompt"), "{:?}", out.lines);
    }

    #[test]
    fn screens_render_their_rows_and_unknown_lines_are_ignored() {
        let mut r = Renderer::new();
        assert!(r.render("SESSION:xyz").lines.is_empty());
        let contacts = texts(
            &mut r,
            &[
                protocol::CONTACT_LIST_START.into(),
                protocol::broadcast_contact(),
                protocol::contact("bob", true),
                protocol::contact("cy", false),
                protocol::CONTACT_LIST_END.into(),
            ],
        );
        assert!(contacts.contains(&"  🟢 bob".to_string()), "{contacts:?}");
        assert!(contacts.contains(&"  ⚪ cy".to_string()), "{contacts:?}");
        assert_eq!(r.screen, Screen::Contacts);
        let groups =
            texts(&mut r, &[protocol::MY_GROUPS_START.into(), protocol::my_group(3, "g", Some("d: e"), 2, true)]);
        assert_eq!(groups.last().unwrap(), "  [3] g - d: e (2 members) 👑");
        let menu = texts(&mut r, &protocol::main_menu());
        assert!(menu.contains(&"1. 💬 Private Messages".to_string()));
        assert_eq!(r.screen, Screen::Menu);
    }
}
