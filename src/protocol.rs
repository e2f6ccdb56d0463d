//! The wire protocol (specified in `docs/PROTOCOL.md`: version 1, the
//! original chatp's, and the opt-in protocol 2): every token, and the
//! formatting and parsing of every line. Nothing else in the crate (tests
//! included) spells a token; everything here works on strings in memory.
//!
//! Server lines are built by the constructors below and returned without
//! the trailing `\n` (the connection adds it). Client inputs that carry
//! meaning are the `pub const`s of [`input`].

use std::fmt;

/// Longest client line in bytes, without its `\n` (`\r\n` accepted).
pub const MAX_LINE_BYTES: usize = 4096;

/// How many messages of history a conversation, the broadcast channel or a
/// group shows when opened.
pub const HISTORY_LIMIT: i64 = 50;

/// Longest username: the `users.username VARCHAR(50)` column.
pub const MAX_USERNAME_CHARS: usize = 50;
/// Longest group name: the `groups.group_name VARCHAR(100)` column.
pub const MAX_GROUP_NAME_CHARS: usize = 100;

/// Client inputs with a meaning (compared after trimming).
pub mod input {
    pub const LOGIN: &str = "LOGIN";
    pub const SIGNUP: &str = "SIGNUP";
    pub const BYE: &str = "bye";
    pub const BACK: &str = "back";
    pub const BROADCAST: &str = "BROADCAST";
    pub const YES: &str = "yes";
    pub const MEMBERS: &str = "/members";
    pub const LEAVE: &str = "/leave";
    pub const JOIN_PREFIX: &str = "join:";
    /// Protocol 2, at the browse list: `page:<n>`.
    pub const PAGE_PREFIX: &str = "page:";
    pub const MENU_PRIVATE: &str = "1";
    pub const MENU_BROADCAST: &str = "2";
    pub const MENU_MY_GROUPS: &str = "3";
    pub const MENU_BROWSE_GROUPS: &str = "4";
    pub const MENU_CREATE_GROUP: &str = "5";
    /// At the main menu (protocol 2): change one's own password.
    pub const CHANGE_PASSWORD: &str = "PASSWORD";
}

// ---------------------------------------------------------------- tokens

pub const AUTH_REQUEST: &str = "AUTH_REQUEST";
pub const LOGIN_PROMPT: &str = "LOGIN_PROMPT";
pub const SIGNUP_PROMPT: &str = "SIGNUP_PROMPT";
const AUTH_SUCCESS: &str = "AUTH_SUCCESS";
const AUTH_FAILED: &str = "AUTH_FAILED";
pub const MAIN_MENU_START: &str = "MAIN_MENU_START";
pub const MAIN_MENU_END: &str = "MAIN_MENU_END";
const INVALID_OPTION: &str = "INVALID_OPTION";
pub const CONTACT_LIST_START: &str = "CONTACT_LIST_START";
/// Protocol 2, last line of a contact list cut at [`CONTACT_LIST_MAX`]:
/// `CONTACT_LIST_MORE:<users not listed>`.
pub const CONTACT_LIST_MORE: &str = "CONTACT_LIST_MORE";
/// Most users a contact list shows (then the people with the most recent
/// conversations first, and how many more there are). Up to this many
/// other users, the list is every one by name, as the original.
pub const CONTACT_LIST_MAX: usize = 100;
/// Protocol 2, first line of a contact list narrowed to the names that
/// start with what the user typed: `CONTACT_LIST_MATCHES:<typed>`.
pub const CONTACT_LIST_MATCHES: &str = "CONTACT_LIST_MATCHES";
/// Protocol 2, first line of a browse list narrowed to the group names that
/// start with what the user typed: `BROWSE_GROUPS_MATCHES:<typed>`.
pub const BROWSE_GROUPS_MATCHES: &str = "BROWSE_GROUPS_MATCHES";
pub const CONTACT_LIST_END: &str = "CONTACT_LIST_END";
const CONTACT_NOT_FOUND: &str = "CONTACT_NOT_FOUND";
const CONVERSATION_START: &str = "CONVERSATION_START";
pub const CONVERSATION_READY: &str = "CONVERSATION_READY";
const MESSAGE: &str = "MESSAGE";
const SENT: &str = "SENT";
const BROADCAST_START: &str = "BROADCAST_START";
const BROADCAST: &str = "BROADCAST";
const BROADCAST_SENT: &str = "BROADCAST_SENT";
pub const MY_GROUPS_START: &str = "MY_GROUPS_START";
pub const MY_GROUPS_END: &str = "MY_GROUPS_END";
const NO_GROUPS: &str = "NO_GROUPS";
const NOT_MEMBER: &str = "NOT_MEMBER";
const INVALID_SELECTION: &str = "INVALID_SELECTION";
pub const BROWSE_GROUPS_START: &str = "BROWSE_GROUPS_START";
pub const BROWSE_GROUPS_END: &str = "BROWSE_GROUPS_END";
/// Protocol 2, last line of a browse list cut at [`BROWSE_GROUPS_MAX`]:
/// `BROWSE_GROUPS_MORE:<older groups not listed>`.
pub const BROWSE_GROUPS_MORE: &str = "BROWSE_GROUPS_MORE";
/// Most groups the browse list shows (the newest); up to this many, every
/// active group, oldest first, as the original.
pub const BROWSE_GROUPS_MAX: usize = 100;
/// Most members `/members` lists (admins first, then by joining); the
/// original client is shown how many more there are.
pub const GROUP_MEMBERS_MAX: usize = 100;
/// Protocol 2, last line of a cut member list: `GROUP_MEMBERS_MORE:<n>`.
pub const GROUP_MEMBERS_MORE: &str = "GROUP_MEMBERS_MORE";
/// Protocol 2, first line of a browse page asked for with `page:<n>`:
/// `BROWSE_GROUPS_PAGE:<page>:<pages>`.
pub const BROWSE_GROUPS_PAGE: &str = "BROWSE_GROUPS_PAGE";
/// Protocol 2, first line of a page asked for with `/members <page>`:
/// `GROUP_MEMBERS_PAGE:<page>:<pages>`.
pub const GROUP_MEMBERS_PAGE: &str = "GROUP_MEMBERS_PAGE";
const JOIN_SUCCESS: &str = "JOIN_SUCCESS";
const JOIN_FAILED: &str = "JOIN_FAILED";
const INVALID_COMMAND: &str = "INVALID_COMMAND";
pub const CREATE_GROUP_PROMPT: &str = "CREATE_GROUP_PROMPT";
const CREATE_SUCCESS: &str = "CREATE_SUCCESS";
const CREATE_FAILED: &str = "CREATE_FAILED";
const GROUP_CHAT_START: &str = "GROUP_CHAT_START";
pub const GROUP_CHAT_READY: &str = "GROUP_CHAT_READY";
const GROUP_MESSAGE: &str = "GROUP_MESSAGE";
const GROUP_SENT: &str = "GROUP_SENT";
pub const GROUP_MEMBERS_START: &str = "GROUP_MEMBERS_START";
pub const GROUP_MEMBERS_END: &str = "GROUP_MEMBERS_END";
const LEAVE_RESULT: &str = "LEAVE_RESULT";
const ERROR: &str = "ERROR";

// Sessions (protocol 2, opt-in with `HELLO:2`; see docs/PROTOCOL.md).
const HELLO: &str = "HELLO";
/// The protocol version a `HELLO` announces and the server confirms.
pub const PROTOCOL_VERSION: u32 = 2;
const SESSION: &str = "SESSION";
const RESUME: &str = "RESUME";
const MSG_ID: &str = "MSG_ID";
const SERVER_SHUTDOWN: &str = "SERVER_SHUTDOWN";
const UNREAD: &str = "UNREAD";
const REGISTRATION: &str = "REGISTRATION";
const INVITE: &str = "INVITE";
const SESSION_END: &str = "SESSION_END";
pub const PASSWORD_PROMPT: &str = "PASSWORD_PROMPT";
const PASSWORD_CHANGED: &str = "PASSWORD_CHANGED";
const PASSWORD_FAILED: &str = "PASSWORD_FAILED";

// ---------------------------------------------------------------- texts

/// Texts that stand after a token. Public so tests assert exact lines.
pub mod text {
    pub const LOGIN_OK: &str = "Login successful";
    pub const INVALID_CREDENTIALS: &str = "Invalid username or password";
    pub const USERNAME_TAKEN: &str = "Username already exists";
    pub const INVALID_CHOICE: &str = "Invalid choice";
    pub const PASSWORD_EMPTY: &str = "Password cannot be empty";
    pub const AUTH_UNAVAILABLE: &str = "Service temporarily unavailable, please try again";
    pub const INVALID_MENU_OPTION: &str = "Invalid menu option";
    pub const CONTACT_NOT_FOUND: &str = "Contact not found";
    pub const DELIVERED: &str = "Message delivered";
    pub const SAVED_OFFLINE: &str = "Message saved (recipient offline)";
    pub const BROADCAST_CHANNEL: &str = "BROADCAST CHANNEL";
    pub const NO_MY_GROUPS: &str = "You are not a member of any groups yet.";
    pub const NO_GROUPS_AVAILABLE: &str = "No groups available yet. Create one!";
    pub const NOT_MEMBER_OF_GROUP: &str = "You are not a member of this group";
    pub const MUST_JOIN_FIRST: &str = "You must join this group first. Use 'join:GROUP_ID'";
    pub const INVALID_GROUP_ID: &str = "Please enter a valid group ID";
    pub const JOINED: &str = "Successfully joined group";
    pub const ALREADY_MEMBER: &str = "You are already a member of this group";
    pub const GROUP_NOT_FOUND: &str = "Group not found or inactive";
    pub const INVALID_JOIN: &str = "Invalid join command";
    pub const GROUP_CREATED: &str = "Group created successfully";
    pub const GROUP_NAME_TAKEN: &str = "Group name already exists";
    pub const GROUP_SENT: &str = "Message sent to group";
    pub const LEFT_GROUP: &str = "You have left the group";
    pub const LEFT_GROUP_CLOSED: &str = "You have left the group. It had no other members and is now closed";
    pub const DESCRIPTION_PIPE: &str = "Description cannot contain '|'";
    pub const LINE_TOO_LONG: &str = "Line too long (max 4096 bytes); it was discarded";
    pub const INVALID_UTF8: &str = "Line is not valid UTF-8; it was discarded";
    pub const STORE_FAILED: &str = "Message not stored (storage unavailable); please retry";
    pub const STORAGE_UNAVAILABLE: &str = "Storage unavailable; please retry";
    pub const STORE_UNKNOWN: &str =
        "Storage was lost while saving; the message may have been stored: check the history before resending";
    pub const SERVER_FULL: &str = "Server is full, please try again later";
    pub const AUTH_TIMEOUT: &str = "Not logged in in time; connection closed";
    pub const RATE_LIMITED: &str = "Rate limited; slow down";
    pub const CONTROL_CHARS: &str = "Message contains control characters; it was not sent";
    pub const NUL_BYTE: &str = "Line contains a NUL byte; it was discarded";
    /// A web client over plain `ws://` from beyond loopback
    /// (`WEB_PASSWORDS_WITHOUT_TLS=refuse`): no password is asked for.
    pub const PASSWORD_NEEDS_TLS: &str =
        "Passwords are accepted over an encrypted connection only: open the https address of this chat";
    /// A WebSocket text frame is one line (web clients).
    pub const LINE_BREAK: &str = "A frame holds one line, without line breaks; it was discarded";
    pub const NOT_TEXT: &str = "Only text frames carry lines; the binary frame was discarded";
    pub const TOO_MANY_FAILURES: &str = "Too many failed attempts; connection closed";
    pub const AUTH_BUSY: &str = "Server busy, please try again in a moment";
    pub const RESUMED: &str = "Session resumed";
    pub const RESUME_REFUSED: &str = "Session expired or unknown; please log in";
    pub const SHUTTING_DOWN: &str = "Server restarting; reconnect to resume your session";
    pub const SIGNUP_CLOSED: &str = "Sign-up is closed on this server; ask an administrator for an account";
    pub const INVITE_REQUIRED: &str = "Sign-up needs an invite code; ask an administrator for one";
    pub const INVITE_REQUIRED_OLD_CLIENT: &str =
        "Sign-up needs an invite code, which this client cannot send: use chatp's chat_client, or ask an administrator for an account";
    pub const INVITE_INVALID: &str = "Invite code unknown, already used or expired";
    pub const ACCOUNT_DISABLED: &str = "This account is disabled; ask an administrator";
    pub const ENDED_DISABLED: &str = "Your account was disabled by an administrator";
    pub const ENDED_DELETED: &str = "Your account was deleted by an administrator";
    pub const ENDED_PASSWORD_RESET: &str = "Your password was reset by an administrator; log in with the new one";
    pub const ENDED_PASSWORD_CHANGED: &str = "Your password was changed in another session; log in with the new one";
    pub const PASSWORD_CHANGED: &str = "Password changed; your other sessions were ended";
    pub const PASSWORD_WRONG: &str = "Current password is wrong; password not changed";
    pub const PASSWORD_TOO_MANY_WRONG: &str = "Too many wrong passwords; this session was ended";
    pub const TOO_MANY_SESSIONS: &str = "Too many sessions for this account; log out of one first";
    pub const TOO_MANY_ATTEMPTS: &str = "Too many attempts for this name; wait a few seconds and try again";
    pub const TOO_MANY_RESUMES: &str = "Too many resumes; wait a few seconds and try again";
    pub const ENDED_UNCONFIRMED: &str = "Your login could not be confirmed (storage unavailable); please log in again";
    pub const ADMIN_BADGE: &str = "👑 Admin";
    pub const MEMBER_BADGE: &str = "👤 Member";
    pub const ADMIN_ICON: &str = "👑";
    pub const MEMBER_ICON: &str = "👤";
    pub const NO_DESCRIPTION: &str = "No description";
    pub const BROWSE_MEMBER: &str = "✅ Member";
    pub const BROWSE_JOIN: &str = "Join";
    pub const CONTACT_ONLINE: &str = "online";
    pub const CONTACT_OFFLINE: &str = "offline";
    pub const BROADCAST_CONTACT: &str = "broadcast";
}

/// The free text between `MAIN_MENU_START` and `MAIN_MENU_END`, line for
/// line as the Python server sent it (it starts with an empty line).
pub const MAIN_MENU_LINES: [&str; 12] = [
    "",
    "========================================",
    "        CHAT APPLICATION MENU",
    "========================================",
    "1. 💬 Private Messages",
    "2. 📢 Broadcast Channel",
    "3. 👥 My Groups",
    "4. 🔍 Browse All Groups",
    "5. ➕ Create New Group",
    "",
    "Type 'bye' to logout",
    "========================================",
];

// ---------------------------------------------------------- constructors

fn tagged(token: &str, body: impl fmt::Display) -> String {
    format!("{token}:{body}")
}

pub fn auth_success(text: &str) -> String {
    tagged(AUTH_SUCCESS, text)
}
pub fn signup_success(username: &str) -> String {
    tagged(AUTH_SUCCESS, format_args!("Registration successful. Welcome {username}!"))
}
pub fn auth_failed(reason: &str) -> String {
    tagged(AUTH_FAILED, reason)
}
pub fn invalid_option() -> String {
    tagged(INVALID_OPTION, text::INVALID_MENU_OPTION)
}
/// The whole main menu, markers included.
pub fn main_menu() -> Vec<String> {
    let mut lines = Vec::with_capacity(MAIN_MENU_LINES.len() + 2);
    lines.push(MAIN_MENU_START.to_string());
    lines.extend(MAIN_MENU_LINES.iter().map(|l| l.to_string()));
    lines.push(MAIN_MENU_END.to_string());
    lines
}
/// `BROADCAST|broadcast`, always the first contact.
pub fn broadcast_contact() -> String {
    format!("{BROADCAST}|{}", text::BROADCAST_CONTACT)
}
pub fn contact(username: &str, online: bool) -> String {
    let status = if online { text::CONTACT_ONLINE } else { text::CONTACT_OFFLINE };
    format!("{username}|{status}")
}
/// Protocol 1's last row of a cut contact list: a row the original client
/// shows as it shows a contact, saying how many more there are and how to
/// reach them (any name typed opens its conversation).
pub fn contact_list_more_row(more: i64) -> String {
    contact(&format!("(and {more} more: type a name)"), false)
}
/// Protocol 2's `CONTACT_LIST_MATCHES:<typed>`.
pub fn contact_list_matches(typed: &str) -> String {
    tagged(CONTACT_LIST_MATCHES, typed)
}
/// Protocol 2's `BROWSE_GROUPS_MATCHES:<typed>`.
pub fn browse_groups_matches(typed: &str) -> String {
    tagged(BROWSE_GROUPS_MATCHES, typed)
}
/// Protocol 2's `CONTACT_LIST_MORE:<n>`.
pub fn contact_list_more(more: i64) -> String {
    format!("{CONTACT_LIST_MORE}:{more}")
}
/// A contact row for protocol 2: `<username>|<online|offline>|<unread>`.
pub fn contact_with_unread(username: &str, online: bool, unread: i64) -> String {
    format!("{}|{unread}", contact(username, online))
}
pub fn contact_not_found() -> String {
    tagged(CONTACT_NOT_FOUND, text::CONTACT_NOT_FOUND)
}
pub fn conversation_start(contact: &str) -> String {
    tagged(CONVERSATION_START, contact)
}
/// One history line: `[YYYY-MM-DD HH:MM:SS] <sender>: <text>`.
pub fn history_line(timestamp: &str, sender: &str, text: &str) -> String {
    format!("[{timestamp}] {sender}: {text}")
}
pub fn message(sender: &str, text: &str) -> String {
    format!("{MESSAGE}:{sender}:{text}")
}
pub fn sent(recipient_online: bool) -> String {
    tagged(SENT, if recipient_online { text::DELIVERED } else { text::SAVED_OFFLINE })
}
pub fn broadcast_start() -> String {
    tagged(BROADCAST_START, text::BROADCAST_CHANNEL)
}
pub fn broadcast(sender: &str, text: &str, unix_ms: u128) -> String {
    format!("{BROADCAST}:{sender}:{text}:{unix_ms}")
}
pub fn broadcast_sent(reached: usize, others_online: usize) -> String {
    tagged(BROADCAST_SENT, format_args!("Broadcast sent to {reached} online users (of {others_online} total)"))
}
pub fn no_my_groups() -> String {
    tagged(NO_GROUPS, text::NO_MY_GROUPS)
}
pub fn no_groups_available() -> String {
    tagged(NO_GROUPS, text::NO_GROUPS_AVAILABLE)
}
fn description_or_default(description: Option<&str>) -> &str {
    match description {
        Some(d) if !d.is_empty() => d,
        _ => text::NO_DESCRIPTION,
    }
}
/// `<id>|<name>|<description>|<member count>|<👑 or 👤>` (menu 3).
pub fn my_group(id: i32, name: &str, description: Option<&str>, members: i64, admin: bool) -> String {
    let badge = if admin { text::ADMIN_ICON } else { text::MEMBER_ICON };
    format!("{id}|{name}|{}|{members}|{badge}", description_or_default(description))
}
/// `<id>|<name>|<description>|<member count>|<✅ Member or Join>` (menu 4).
/// Protocol 1's last row of a cut browse list, shown by the original client
/// as a group: how many older groups there are and how to join one.
pub fn browse_more_row(more: i64) -> String {
    browse_group(0, &format!("(and {more} older groups)"), Some("join:<id> joins any group by its id"), 0, false)
}
/// Protocol 2's `BROWSE_GROUPS_MORE:<n>`.
pub fn browse_groups_more(more: i64) -> String {
    format!("{BROWSE_GROUPS_MORE}:{more}")
}
pub fn browse_group(id: i32, name: &str, description: Option<&str>, members: i64, member: bool) -> String {
    let status = if member { text::BROWSE_MEMBER } else { text::BROWSE_JOIN };
    format!("{id}|{name}|{}|{members}|{status}", description_or_default(description))
}
pub fn not_member() -> String {
    tagged(NOT_MEMBER, text::NOT_MEMBER_OF_GROUP)
}
pub fn must_join_first() -> String {
    tagged(NOT_MEMBER, text::MUST_JOIN_FIRST)
}
pub fn invalid_selection() -> String {
    tagged(INVALID_SELECTION, text::INVALID_GROUP_ID)
}
pub fn join_success() -> String {
    tagged(JOIN_SUCCESS, text::JOINED)
}
pub fn join_failed(reason: &str) -> String {
    tagged(JOIN_FAILED, reason)
}
pub fn invalid_join() -> String {
    tagged(INVALID_COMMAND, text::INVALID_JOIN)
}
pub fn create_success(group_id: i32) -> String {
    tagged(CREATE_SUCCESS, format_args!("{}|{group_id}", text::GROUP_CREATED))
}
pub fn create_failed(reason: &str) -> String {
    tagged(CREATE_FAILED, reason)
}
pub fn group_chat_start(name: &str, id: i32) -> String {
    format!("{GROUP_CHAT_START}:{name}:{id}")
}
pub fn group_message(group: &str, sender: &str, text: &str) -> String {
    format!("{GROUP_MESSAGE}:{group}:{sender}:{text}")
}
pub fn group_sent() -> String {
    tagged(GROUP_SENT, text::GROUP_SENT)
}
/// `<username>|<👑 Admin or 👤 Member>|<YYYY-MM-DD joined>`.
/// Protocol 1's last row of a cut member list, printed by the original
/// client like a member.
pub fn group_members_more_row(more: i64) -> String {
    group_member(&format!("(and {more} more members)"), false, "")
}
/// Protocol 2's `BROWSE_GROUPS_PAGE:<page>:<pages>`.
pub fn browse_groups_page(page: i64, pages: i64) -> String {
    format!("{BROWSE_GROUPS_PAGE}:{page}:{pages}")
}
/// Protocol 2: the browse page `page:<n>` asks for (1 for the newest).
pub fn parse_browse_page(line: &str) -> Option<i64> {
    let page = line.strip_prefix(input::PAGE_PREFIX)?.trim().parse().ok()?;
    (page >= 1).then_some(page)
}
/// Protocol 2's `GROUP_MEMBERS_PAGE:<page>:<pages>`.
pub fn group_members_page(page: i64, pages: i64) -> String {
    format!("{GROUP_MEMBERS_PAGE}:{page}:{pages}")
}
/// Protocol 2: the page `/members <page>` asks for (1 for the first), if
/// the line is that.
pub fn parse_members_page(line: &str) -> Option<i64> {
    let page = line.strip_prefix(input::MEMBERS)?.strip_prefix(' ')?.trim().parse().ok()?;
    (page >= 1).then_some(page)
}
/// Protocol 2's `GROUP_MEMBERS_MORE:<n>`.
pub fn group_members_more(more: i64) -> String {
    format!("{GROUP_MEMBERS_MORE}:{more}")
}
pub fn group_member(username: &str, admin: bool, joined: &str) -> String {
    let badge = if admin { text::ADMIN_BADGE } else { text::MEMBER_BADGE };
    format!("{username}|{badge}|{joined}")
}
pub fn leave_result(text: &str) -> String {
    tagged(LEAVE_RESULT, text)
}
/// `HELLO:2`, from a client before it logs in, and the server's answer.
pub fn hello() -> String {
    format!("{HELLO}:{PROTOCOL_VERSION}")
}
/// `SESSION:<token>` after `AUTH_SUCCESS` (protocol 2).
pub fn session(token: &str) -> String {
    tagged(SESSION, token)
}
/// `RESUME:<username>:<token>:<last private id>:<last broadcast id>:<last
/// group id>`.
pub fn resume(username: &str, token: &str, last: LastSeen) -> String {
    format!("{RESUME}:{username}:{token}:{}:{}:{}", last.private, last.broadcast, last.group)
}
/// `MSG_ID:<kind>:<id>`: the stored id of the notification on the next line
/// (protocol 2).
pub fn msg_id(kind: MessageKind, id: i64) -> String {
    format!("{MSG_ID}:{}:{id}", kind.as_str())
}
/// `UNREAD:<total>:<sender>|<count>|<sender>|<count>...` after a login
/// (protocol 2): the messages that arrived while the user was away.
pub fn unread(by_sender: &[(String, i64)]) -> String {
    let total: i64 = by_sender.iter().map(|(_, n)| n).sum();
    let list: Vec<String> = by_sender.iter().map(|(s, n)| format!("{s}|{n}")).collect();
    format!("{UNREAD}:{total}:{}", list.join("|"))
}

/// Parses [`unread`]: (total, [(sender, count)]).
pub fn parse_unread(body: &str) -> Option<(i64, Vec<(String, i64)>)> {
    let (total, list) = body.split_once(':')?;
    let parts: Vec<&str> = list.split('|').filter(|p| !p.is_empty()).collect();
    let pairs =
        parts.chunks(2).map(|c| Some((c.first()?.to_string(), c.get(1)?.parse().ok()?))).collect::<Option<_>>()?;
    Some((total.parse().ok()?, pairs))
}
pub fn server_shutdown() -> String {
    tagged(SERVER_SHUTDOWN, text::SHUTTING_DOWN)
}
/// `REGISTRATION:<open|invite|closed>` after `HELLO` (protocol 2): whether
/// a signup needs an invite code, or is possible at all.
pub fn registration(mode: &str) -> String {
    tagged(REGISTRATION, mode)
}
/// `INVITE:<code>` from a protocol-2 client, before `SIGNUP`.
pub fn invite(code: &str) -> String {
    tagged(INVITE, code)
}
/// `SESSION_END:<text>` (protocol 2): the session was ended for good (the
/// account was disabled, deleted, or its password changed): do not resume.
pub fn session_end(reason: &str) -> String {
    tagged(SESSION_END, reason)
}
pub fn password_changed() -> String {
    tagged(PASSWORD_CHANGED, text::PASSWORD_CHANGED)
}
pub fn password_failed(reason: &str) -> String {
    tagged(PASSWORD_FAILED, reason)
}

/// The three message tables, as `MSG_ID` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    Private,
    Broadcast,
    Group,
}

impl MessageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Private => "private",
            MessageKind::Broadcast => "broadcast",
            MessageKind::Group => "group",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "private" => Some(MessageKind::Private),
            "broadcast" => Some(MessageKind::Broadcast),
            "group" => Some(MessageKind::Group),
            _ => None,
        }
    }
}

/// The highest stored id a client has processed, per kind (0: none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LastSeen {
    pub private: i64,
    pub broadcast: i64,
    pub group: i64,
}

impl LastSeen {
    pub fn get_mut(&mut self, kind: MessageKind) -> &mut i64 {
        match kind {
            MessageKind::Private => &mut self.private,
            MessageKind::Broadcast => &mut self.broadcast,
            MessageKind::Group => &mut self.group,
        }
    }
}

/// What a client sends during authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthChoice {
    Login,
    Signup,
    /// `HELLO:<version>`.
    Hello(u32),
    Resume {
        username: String,
        token: String,
        last: LastSeen,
    },
    /// `INVITE:<code>` (protocol 2): the code for the next signup.
    Invite(String),
    /// An empty line: the client gives up.
    Quit,
    Invalid,
}

pub fn parse_auth_choice(line: &str) -> AuthChoice {
    match line {
        "" => return AuthChoice::Quit,
        input::LOGIN => return AuthChoice::Login,
        input::SIGNUP => return AuthChoice::Signup,
        _ => {}
    }
    let mut parts = line.split(':');
    match parts.next() {
        Some(HELLO) => match parts.next().and_then(|v| v.parse().ok()) {
            Some(v) if parts.next().is_none() => AuthChoice::Hello(v),
            _ => AuthChoice::Invalid,
        },
        Some(RESUME) => {
            let username = parts.next().unwrap_or_default().to_string();
            let token = parts.next().unwrap_or_default().to_string();
            let ids: Vec<i64> = parts.filter_map(|p| p.parse().ok()).collect();
            match ids[..] {
                [private, broadcast, group] if !token.is_empty() && !username.is_empty() => {
                    AuthChoice::Resume { username, token, last: LastSeen { private, broadcast, group } }
                }
                _ => AuthChoice::Invalid,
            }
        }
        // `INVITE` alone (no `:`) is no invite: never slice past its end.
        Some(INVITE) => match line.strip_prefix(INVITE).and_then(|rest| rest.strip_prefix(':')).map(str::trim) {
            None | Some("") => AuthChoice::Invalid,
            Some(code) => AuthChoice::Invite(code.to_string()),
        },
        _ => AuthChoice::Invalid,
    }
}

pub fn error(reason: &str) -> String {
    tagged(ERROR, reason)
}

// ---------------------------------------------------------------- parsing

/// What a main-menu line asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MenuChoice {
    PrivateMessages,
    Broadcast,
    MyGroups,
    BrowseGroups,
    CreateGroup,
    /// `PASSWORD` (protocol 2).
    ChangePassword,
    Logout,
    /// An empty line: show the menu again.
    Redisplay,
    Invalid,
}

pub fn parse_menu_choice(line: &str) -> MenuChoice {
    match line {
        input::MENU_PRIVATE => MenuChoice::PrivateMessages,
        input::MENU_BROADCAST => MenuChoice::Broadcast,
        input::MENU_MY_GROUPS => MenuChoice::MyGroups,
        input::MENU_BROWSE_GROUPS => MenuChoice::BrowseGroups,
        input::MENU_CREATE_GROUP => MenuChoice::CreateGroup,
        input::BYE => MenuChoice::Logout,
        input::CHANGE_PASSWORD => MenuChoice::ChangePassword,
        "" => MenuChoice::Redisplay,
        _ => MenuChoice::Invalid,
    }
}

/// What a line on a group list screen (menus 3 and 4) asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupSelection {
    Back,
    Open(i32),
    Join(i32),
    /// `join:` followed by something that is not a group id.
    BadJoin,
    /// Not a number.
    Invalid,
}

pub fn parse_group_selection(line: &str) -> GroupSelection {
    if line.is_empty() || line == input::BACK {
        return GroupSelection::Back;
    }
    if let Some(rest) = line.strip_prefix(input::JOIN_PREFIX) {
        return match rest.trim().parse() {
            Ok(id) => GroupSelection::Join(id),
            Err(_) => GroupSelection::BadJoin,
        };
    }
    match line.parse() {
        Ok(id) => GroupSelection::Open(id),
        Err(_) => GroupSelection::Invalid,
    }
}

/// What a line inside a group chat asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupChatInput<'a> {
    Ignore,
    Back,
    Members,
    Leave,
    Text(&'a str),
}

pub fn parse_group_chat_input(line: &str) -> GroupChatInput<'_> {
    match line {
        "" => GroupChatInput::Ignore,
        input::BACK => GroupChatInput::Back,
        input::MEMBERS => GroupChatInput::Members,
        input::LEAVE => GroupChatInput::Leave,
        text => GroupChatInput::Text(text),
    }
}

/// True for the lines that leave a conversation or the broadcast channel.
pub fn is_leave_chat(line: &str) -> bool {
    line.is_empty() || line == input::BACK
}

// ---------------------------------------------------------------- names

/// Checks a username at signup; `Err` holds the reason sent to the client.
pub fn validate_username(name: &str) -> Result<(), String> {
    validate_name("Username", name, MAX_USERNAME_CHARS)?;
    // These words mean something on the screens where a username is typed.
    if [input::BACK, input::BYE, input::BROADCAST].contains(&name) {
        return Err(format!("Username '{name}' is reserved"));
    }
    Ok(())
}

/// What makes two usernames the same name: NFKC, invisible characters
/// dropped, lower case. `Alice`, `ａｌｉｃｅ` and `al\u{200b}ice` all give
/// `alice`. New names must not share another's key; login stays exact.
pub fn username_key(name: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    let folded: String = name.nfkc().filter(|c| !is_invisible(*c)).flat_map(char::to_lowercase).collect();
    folded.nfkc().collect()
}

/// Checks a group name at creation; `Err` holds the reason.
pub fn validate_group_name(name: &str) -> Result<(), String> {
    validate_name("Group name", name, MAX_GROUP_NAME_CHARS)
}

/// Checks a group description: it stands between `|` separators.
pub fn validate_description(description: &str) -> Result<(), String> {
    if description.contains('|') {
        return Err(text::DESCRIPTION_PIPE.to_string());
    }
    if has_control_chars(description) {
        return Err("Description cannot contain control characters".to_string());
    }
    Ok(())
}

/// A control character another user's terminal would act on: C0 but tab,
/// DEL, C1. Refused in everything chatp stores.
pub fn is_forbidden_control(c: char) -> bool {
    (c.is_control() && c != '\t') || ('\u{80}'..='\u{9f}').contains(&c)
}

pub fn has_control_chars(text: &str) -> bool {
    text.chars().any(is_forbidden_control)
}

/// Invisible or direction-changing characters (zero-width, joiners, bidi
/// controls, BOM, soft hyphen): refused in new names, where they would let
/// `al\u{200b}ice` pass for `alice`.
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00ad}' | '\u{034f}' | '\u{061c}' | '\u{115f}' | '\u{1160}' | '\u{17b4}' | '\u{17b5}' | '\u{180e}'
        | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{206f}' | '\u{3164}'
        | '\u{fe00}'..='\u{fe0f}' | '\u{feff}' | '\u{ffa0}' | '\u{fff9}'..='\u{fffb}'
        | '\u{1d173}'..='\u{1d17a}' | '\u{e0000}'..='\u{e007f}')
}

/// Control characters as a terminal shows them harmlessly: `\x1b` becomes
/// `^[`, `\r` `^M`, DEL `^?`, C1 `\u{9b}` as `<U+009B>`; other text is kept.
pub fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    if !has_control_chars(text) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            c if !is_forbidden_control(c) => out.push(c),
            '\u{7f}' => out.push_str("^?"),
            c if (c as u32) < 0x20 => {
                out.push('^');
                out.push(char::from(b'@' + c as u8));
            }
            c => out.push_str(&format!("<U+{:04X}>", c as u32)),
        }
    }
    std::borrow::Cow::Owned(out)
}

fn validate_name(what: &str, name: &str, max_chars: usize) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("{what} cannot be empty"));
    }
    if name.chars().count() > max_chars {
        return Err(format!("{what} is too long (max {max_chars} characters)"));
    }
    if name.contains(':') || name.contains('|') {
        return Err(format!("{what} cannot contain ':' or '|'"));
    }
    if has_control_chars(name) || name.contains('\t') {
        return Err(format!("{what} cannot contain control characters"));
    }
    if name.chars().any(is_invisible) {
        return Err(format!("{what} cannot contain invisible or direction-changing characters"));
    }
    if name.trim() != name {
        return Err(format!("{what} cannot start or end with white space"));
    }
    Ok(())
}

// ------------------------------------------------ parsing server lines

/// A notification parsed from a server line (for clients and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    Message { sender: String, text: String },
    Broadcast { sender: String, text: String, unix_ms: u128 },
    GroupMessage { group: String, sender: String, text: String },
}

/// Parses `MESSAGE:`, `BROADCAST:` and `GROUP_MESSAGE:` lines; texts keep
/// their `:` (the text is everything between the fixed fields).
pub fn parse_notification(line: &str) -> Option<Notification> {
    let (token, rest) = line.split_once(':')?;
    match token {
        MESSAGE => {
            let (sender, text) = rest.split_once(':')?;
            Some(Notification::Message { sender: sender.into(), text: text.into() })
        }
        BROADCAST => {
            let (sender, rest) = rest.split_once(':')?;
            let (text, ms) = rest.rsplit_once(':')?;
            Some(Notification::Broadcast { sender: sender.into(), text: text.into(), unix_ms: ms.parse().ok()? })
        }
        GROUP_MESSAGE => {
            let (group, rest) = rest.split_once(':')?;
            let (sender, text) = rest.split_once(':')?;
            Some(Notification::GroupMessage { group: group.into(), sender: sender.into(), text: text.into() })
        }
        _ => None,
    }
}

/// A server line as a client sees it. Lines that are not a known token
/// (menu text, history lines, list rows) are [`ServerLine::Other`]; the
/// client knows from the surrounding markers what they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerLine<'a> {
    AuthRequest,
    LoginPrompt,
    SignupPrompt,
    AuthSuccess(&'a str),
    AuthFailed(&'a str),
    MainMenuStart,
    MainMenuEnd,
    ContactListStart,
    ContactListEnd,
    /// `CONTACT_LIST_MORE:<n>`: n users not listed.
    ContactListMore(i64),
    ConversationStart(&'a str),
    BroadcastStart(&'a str),
    ConversationReady,
    MyGroupsStart,
    MyGroupsEnd,
    BrowseGroupsStart,
    BrowseGroupsEnd,
    /// `BROWSE_GROUPS_MORE:<n>`: n older groups not listed.
    BrowseGroupsMore(i64),
    /// `GROUP_MEMBERS_MORE:<n>`: n members not listed.
    GroupMembersMore(i64),
    /// `GROUP_MEMBERS_PAGE:<page>:<pages>`.
    GroupMembersPage(i64, i64),
    /// `BROWSE_GROUPS_PAGE:<page>:<pages>`.
    BrowseGroupsPage(i64, i64),
    /// `CONTACT_LIST_MATCHES:<typed>`: the list holds the names that start
    /// with it.
    ContactListMatches(&'a str),
    /// `BROWSE_GROUPS_MATCHES:<typed>`: the groups whose names start with it.
    BrowseGroupsMatches(&'a str),
    CreateGroupPrompt,
    /// `CREATE_SUCCESS:<text>|<id>`: (text, id).
    CreateSuccess(&'a str, &'a str),
    GroupChatStart {
        name: &'a str,
        id: &'a str,
    },
    GroupChatReady,
    GroupMembersStart,
    GroupMembersEnd,
    /// `HELLO:<version>`: the server speaks protocol 2.
    Hello(u32),
    /// `SESSION:<token>`.
    Session(&'a str),
    /// `MSG_ID:<kind>:<id>` (the next line is that notification).
    MsgId(MessageKind, i64),
    /// `SERVER_SHUTDOWN:<text>`: reconnect and resume.
    ServerShutdown(&'a str),
    /// `UNREAD:...`: messages that arrived while the user was away.
    Unread(i64, Vec<(String, i64)>),
    /// `REGISTRATION:<mode>`: open, invite or closed.
    Registration(&'a str),
    /// `SESSION_END:<text>`: ended for good; do not resume.
    SessionEnd(&'a str),
    PasswordPrompt,
    /// `PASSWORD_CHANGED:<text>` (true) or `PASSWORD_FAILED:<reason>`.
    PasswordResult(bool, &'a str),
    Notification(Notification),
    /// An acknowledgement or answer to show as it is (`SENT`, `GROUP_SENT`,
    /// `BROADCAST_SENT`, `JOIN_SUCCESS`, `LEAVE_RESULT`, `NO_GROUPS`).
    Info(&'a str),
    /// A refusal or error to show as it is (`ERROR`, `INVALID_*`,
    /// `NOT_MEMBER`, `CONTACT_NOT_FOUND`, `JOIN_FAILED`, `CREATE_FAILED`).
    Problem(&'a str),
    Other(&'a str),
}

/// An acknowledgement of a sent message, as a load generator reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    /// `SENT:`; whether the recipient was online.
    Sent {
        delivered: bool,
    },
    /// `BROADCAST_SENT:`: (reached, other users online).
    BroadcastSent {
        reached: usize,
        others_online: usize,
    },
    GroupSent,
}

/// Parses `SENT:`, `BROADCAST_SENT:` and `GROUP_SENT:` lines.
pub fn parse_ack(line: &str) -> Option<Ack> {
    let (token, body) = line.split_once(':')?;
    match token {
        SENT => Some(Ack::Sent { delivered: body == text::DELIVERED }),
        GROUP_SENT => Some(Ack::GroupSent),
        BROADCAST_SENT => {
            let rest = body.strip_prefix("Broadcast sent to ")?;
            let (reached, rest) = rest.split_once(" online users (of ")?;
            let others = rest.strip_suffix(" total)")?;
            Some(Ack::BroadcastSent { reached: reached.parse().ok()?, others_online: others.parse().ok()? })
        }
        _ => None,
    }
}

/// `<page>:<pages>`.
fn parse_page(body: &str) -> Option<(i64, i64)> {
    let (page, pages) = body.split_once(':')?;
    Some((page.parse().ok()?, pages.parse().ok()?))
}

pub fn parse_server_line(line: &str) -> ServerLine<'_> {
    if let Some(n) = parse_notification(line) {
        return ServerLine::Notification(n);
    }
    match line {
        AUTH_REQUEST => return ServerLine::AuthRequest,
        LOGIN_PROMPT => return ServerLine::LoginPrompt,
        SIGNUP_PROMPT => return ServerLine::SignupPrompt,
        MAIN_MENU_START => return ServerLine::MainMenuStart,
        MAIN_MENU_END => return ServerLine::MainMenuEnd,
        CONTACT_LIST_START => return ServerLine::ContactListStart,
        CONTACT_LIST_END => return ServerLine::ContactListEnd,
        CONVERSATION_READY => return ServerLine::ConversationReady,
        MY_GROUPS_START => return ServerLine::MyGroupsStart,
        MY_GROUPS_END => return ServerLine::MyGroupsEnd,
        BROWSE_GROUPS_START => return ServerLine::BrowseGroupsStart,
        BROWSE_GROUPS_END => return ServerLine::BrowseGroupsEnd,
        CREATE_GROUP_PROMPT => return ServerLine::CreateGroupPrompt,
        GROUP_CHAT_READY => return ServerLine::GroupChatReady,
        GROUP_MEMBERS_START => return ServerLine::GroupMembersStart,
        GROUP_MEMBERS_END => return ServerLine::GroupMembersEnd,
        PASSWORD_PROMPT => return ServerLine::PasswordPrompt,
        _ => {}
    }
    let Some((token, body)) = line.split_once(':') else {
        return ServerLine::Other(line);
    };
    match token {
        AUTH_SUCCESS => ServerLine::AuthSuccess(body),
        HELLO => body.parse().map_or(ServerLine::Other(line), ServerLine::Hello),
        SESSION => ServerLine::Session(body),
        SERVER_SHUTDOWN => ServerLine::ServerShutdown(body),
        REGISTRATION => ServerLine::Registration(body),
        SESSION_END => ServerLine::SessionEnd(body),
        PASSWORD_CHANGED => ServerLine::PasswordResult(true, body),
        PASSWORD_FAILED => ServerLine::PasswordResult(false, body),
        UNREAD => parse_unread(body).map_or(ServerLine::Other(line), |(t, l)| ServerLine::Unread(t, l)),
        CONTACT_LIST_MORE => body.parse().map_or(ServerLine::Other(line), ServerLine::ContactListMore),
        BROWSE_GROUPS_MORE => body.parse().map_or(ServerLine::Other(line), ServerLine::BrowseGroupsMore),
        GROUP_MEMBERS_MORE => body.parse().map_or(ServerLine::Other(line), ServerLine::GroupMembersMore),
        GROUP_MEMBERS_PAGE => {
            parse_page(body).map_or(ServerLine::Other(line), |(p, n)| ServerLine::GroupMembersPage(p, n))
        }
        BROWSE_GROUPS_PAGE => {
            parse_page(body).map_or(ServerLine::Other(line), |(p, n)| ServerLine::BrowseGroupsPage(p, n))
        }
        CONTACT_LIST_MATCHES => ServerLine::ContactListMatches(body),
        BROWSE_GROUPS_MATCHES => ServerLine::BrowseGroupsMatches(body),
        MSG_ID => match body.split_once(':') {
            Some((kind, id)) => match (MessageKind::parse(kind), id.parse()) {
                (Some(kind), Ok(id)) => ServerLine::MsgId(kind, id),
                _ => ServerLine::Other(line),
            },
            None => ServerLine::Other(line),
        },
        AUTH_FAILED => ServerLine::AuthFailed(body),
        CONVERSATION_START => ServerLine::ConversationStart(body),
        BROADCAST_START => ServerLine::BroadcastStart(body),
        CREATE_SUCCESS => match body.rsplit_once('|') {
            Some((text, id)) => ServerLine::CreateSuccess(text, id),
            None => ServerLine::Info(body),
        },
        GROUP_CHAT_START => match body.rsplit_once(':') {
            Some((name, id)) => ServerLine::GroupChatStart { name, id },
            None => ServerLine::Other(line),
        },
        SENT | GROUP_SENT | BROADCAST_SENT | JOIN_SUCCESS | LEAVE_RESULT | NO_GROUPS => ServerLine::Info(body),
        ERROR | INVALID_OPTION | INVALID_SELECTION | INVALID_COMMAND | NOT_MEMBER | CONTACT_NOT_FOUND | JOIN_FAILED
        | CREATE_FAILED => ServerLine::Problem(body),
        _ => ServerLine::Other(line),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_keep_colons_in_text() {
        let line = message("ann", "time: 10:30");
        assert_eq!(line, "MESSAGE:ann:time: 10:30");
        assert_eq!(
            parse_notification(&line),
            Some(Notification::Message { sender: "ann".into(), text: "time: 10:30".into() })
        );
        let b = broadcast("bob", "a:b", 1700000000123);
        assert_eq!(
            parse_notification(&b),
            Some(Notification::Broadcast { sender: "bob".into(), text: "a:b".into(), unix_ms: 1700000000123 })
        );
        let g = group_message("team", "cy", "x:y:z");
        assert_eq!(
            parse_notification(&g),
            Some(Notification::GroupMessage { group: "team".into(), sender: "cy".into(), text: "x:y:z".into() })
        );
        assert_eq!(parse_notification("SENT:Message delivered"), None);
    }

    #[test]
    fn name_rules() {
        assert!(validate_username("alice").is_ok());
        assert!(validate_username("ünïcode name").is_ok());
        assert_eq!(validate_username("").unwrap_err(), "Username cannot be empty");
        assert_eq!(validate_username("a:b").unwrap_err(), "Username cannot contain ':' or '|'");
        assert_eq!(validate_username("a|b").unwrap_err(), "Username cannot contain ':' or '|'");
        assert!(validate_username("a\tb").is_err());
        assert!(validate_username(" a").is_err());
        assert!(validate_username(&"x".repeat(51)).is_err());
        assert!(validate_username(&"é".repeat(50)).is_ok());
        assert!(validate_username("back").is_err());
        assert!(validate_group_name("back").is_ok());
        assert!(validate_group_name("a|b").is_err());
        assert!(validate_description("has | pipe").is_err());
        assert!(validate_description("").is_ok());
        assert!(validate_description("a\x1b[2Jb").is_err());
        assert!(validate_username("al\u{200b}ice").is_err());
        assert!(validate_username("\u{202e}ecila").is_err());
        assert!(validate_username("a\u{9b}b").is_err());
    }

    /// docs/PROTOCOL.md names every token, client input and fixed text this
    /// file defines (read from the source, so a new one cannot be missed).
    #[test]
    fn the_document_names_every_token_and_text() {
        let doc = include_str!("../docs/PROTOCOL.md");
        let source = include_str!("protocol.rs");
        let mut checked = 0;
        let mut lines = source.lines().map(str::trim).take_while(|l| !l.starts_with("#[cfg(test)]"));
        while let Some(line) = lines.next() {
            let Some(rest) = line.strip_prefix("pub const ").or_else(|| line.strip_prefix("const ")) else {
                continue;
            };
            let Some((_, value)) = rest.split_once(": &str =") else { continue };
            // A long text continues on the next line.
            let value = if value.trim().is_empty() { lines.next().unwrap_or_default() } else { value };
            let value = value.trim().trim_start_matches('"').trim_end_matches("\";");
            let escaped = value.replace('|', "\\|");
            assert!(doc.contains(value) || doc.contains(&escaped), "docs/PROTOCOL.md does not name {value:?}");
            checked += 1;
        }
        assert!(checked > 90, "only {checked} constants found: the parser lost track of protocol.rs");
    }

    /// `INVITE` without `:` panicked the connection's thread (a slice past
    /// the end of the line; issue 22); it is an invalid choice.
    #[test]
    fn invite_without_a_code_is_invalid_not_a_panic() {
        let bare = invite("");
        let bare = bare.strip_suffix(':').expect("INVITE:");
        assert_eq!(parse_auth_choice(bare), AuthChoice::Invalid);
        assert_eq!(parse_auth_choice(&invite("")), AuthChoice::Invalid);
        assert_eq!(parse_auth_choice(&invite("  ")), AuthChoice::Invalid);
        assert_eq!(parse_auth_choice(&invite(" c0de ")), AuthChoice::Invite("c0de".into()));
        assert_eq!(parse_auth_choice(&invite("a:b")), AuthChoice::Invite("a:b".into()));
        assert_eq!(parse_auth_choice(&format!("{bare}X:c0de")), AuthChoice::Invalid);
    }

    #[test]
    fn session_lines_round_trip() {
        assert_eq!(parse_auth_choice(&hello()), AuthChoice::Hello(2));
        let last = LastSeen { private: 7, broadcast: 0, group: 12 };
        assert_eq!(
            parse_auth_choice(&resume("ann", "abc", last)),
            AuthChoice::Resume { username: "ann".into(), token: "abc".into(), last }
        );
        assert_eq!(parse_auth_choice("RESUME:ann:abc:1:2"), AuthChoice::Invalid);
        assert_eq!(parse_auth_choice("RESUME:ann::1:2:3"), AuthChoice::Invalid);
        assert_eq!(parse_auth_choice("HELLO:x"), AuthChoice::Invalid);
        assert_eq!(parse_auth_choice("LOGIN"), AuthChoice::Login);
        assert_eq!(parse_server_line(&msg_id(MessageKind::Group, 42)), ServerLine::MsgId(MessageKind::Group, 42));
        assert_eq!(parse_server_line(&session("t0k")), ServerLine::Session("t0k"));
        assert_eq!(parse_server_line(&hello()), ServerLine::Hello(2));
        assert!(matches!(parse_server_line(&server_shutdown()), ServerLine::ServerShutdown(_)));
        let by = vec![("ann".to_string(), 2), ("bo, b=".to_string(), 1)];
        assert_eq!(parse_server_line(&unread(&by)), ServerLine::Unread(3, by));
        assert_eq!(parse_server_line(&unread(&[])), ServerLine::Unread(0, vec![]));
    }

    #[test]
    fn look_alike_names_share_a_key() {
        for name in ["Alice", "ALICE", "ａｌｉｃｅ", "al\u{200b}ice", "alice"] {
            assert_eq!(username_key(name), "alice", "{name:?}");
        }
        assert_ne!(username_key("alice2"), username_key("alice"));
        assert_eq!(username_key("Ǆ"), username_key("dž"));
    }

    #[test]
    fn control_characters_are_refused_and_shown_escaped() {
        assert!(!has_control_chars("tab\there, émoji 👑, CJK 漢字"));
        for bad in ["\x1b[2J", "a\rb", "\x07", "\x7f", "\u{9b}31m", "\0"] {
            assert!(has_control_chars(bad), "{bad:?}");
        }
        assert_eq!(escape_controls("\x1b]0;pwned\x07 a\rb\x7f\u{9b}"), "^[]0;pwned^G a^Mb^?<U+009B>");
        assert_eq!(escape_controls("plain: text"), "plain: text");
    }

    #[test]
    fn selections() {
        assert_eq!(parse_group_selection(""), GroupSelection::Back);
        assert_eq!(parse_group_selection("back"), GroupSelection::Back);
        assert_eq!(parse_group_selection("12"), GroupSelection::Open(12));
        assert_eq!(parse_group_selection("join:7"), GroupSelection::Join(7));
        assert_eq!(parse_group_selection("join:x"), GroupSelection::BadJoin);
        assert_eq!(parse_group_selection("join:"), GroupSelection::BadJoin);
        assert_eq!(parse_group_selection("abc"), GroupSelection::Invalid);
        assert_eq!(parse_menu_choice(""), MenuChoice::Redisplay);
        assert_eq!(parse_menu_choice("6"), MenuChoice::Invalid);
        assert_eq!(parse_group_chat_input("/members"), GroupChatInput::Members);
        assert_eq!(parse_members_page("/members 3"), Some(3));
        assert_eq!(parse_members_page("/members"), None);
        assert_eq!(parse_members_page("/members 0"), None);
        assert_eq!(parse_members_page("/members x"), None);
        assert_eq!(parse_members_page("/membersx 2"), None);
        assert_eq!(parse_browse_page("page:2"), Some(2));
        assert_eq!(parse_browse_page("page:0"), None);
        assert_eq!(parse_server_line("BROWSE_GROUPS_PAGE:2:9"), ServerLine::BrowseGroupsPage(2, 9));
        assert_eq!(parse_server_line("GROUP_MEMBERS_PAGE:1:x"), ServerLine::Other("GROUP_MEMBERS_PAGE:1:x"));
        assert_eq!(parse_group_chat_input("hi"), GroupChatInput::Text("hi"));
    }

    #[test]
    fn client_side_parsing() {
        assert_eq!(parse_server_line(AUTH_REQUEST), ServerLine::AuthRequest);
        assert_eq!(parse_ack(&sent(true)), Some(Ack::Sent { delivered: true }));
        assert_eq!(parse_ack(&sent(false)), Some(Ack::Sent { delivered: false }));
        assert_eq!(parse_ack(&broadcast_sent(3, 4)), Some(Ack::BroadcastSent { reached: 3, others_online: 4 }));
        assert_eq!(parse_ack(&message("a", "SENT:x")), None);
        assert_eq!(parse_server_line(&create_success(4)), ServerLine::CreateSuccess(text::GROUP_CREATED, "4"));
        assert_eq!(parse_server_line(&group_chat_start("a b", 7)), ServerLine::GroupChatStart { name: "a b", id: "7" });
        assert_eq!(parse_server_line(&sent(true)), ServerLine::Info(text::DELIVERED));
        assert_eq!(parse_server_line(&error("x: y")), ServerLine::Problem("x: y"));
        assert_eq!(parse_server_line("[2024-01-01 10:00:00] a: b"), ServerLine::Other("[2024-01-01 10:00:00] a: b"));
        assert_eq!(parse_server_line("FUTURE_TOKEN:abc"), ServerLine::Other("FUTURE_TOKEN:abc"));
        assert!(matches!(parse_server_line(&message("a", "b:c")), ServerLine::Notification(_)));
    }

    #[test]
    fn screen_lines() {
        assert_eq!(my_group(3, "g", None, 2, true), "3|g|No description|2|👑");
        assert_eq!(browse_group(3, "g", Some("d"), 1, false), "3|g|d|1|Join");
        assert_eq!(create_success(9), "CREATE_SUCCESS:Group created successfully|9");
        assert_eq!(group_chat_start("team", 4), "GROUP_CHAT_START:team:4");
        assert_eq!(broadcast_sent(1, 2), "BROADCAST_SENT:Broadcast sent to 1 online users (of 2 total)");
        assert_eq!(signup_success("z"), "AUTH_SUCCESS:Registration successful. Welcome z!");
        assert_eq!(main_menu().len(), 14);
    }
}
