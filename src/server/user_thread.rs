//! `UserThread`: one client from connect to disconnect. Authenticates,
//! registers the session (PostgreSQL row, presence, local routing), runs the
//! main menu, and always cleans up, whatever ended the session.

use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{debug, info, warn};

use crate::connection::{Connection, Ended, Step};
use crate::metrics::METRICS;
use crate::outbox::{Outbox, QueueLimits};
use crate::protocol::{self, text, LastSeen, MenuChoice};

use super::auth::LoggedIn;
use super::session::{Session, User};
use super::{auth, broadcast, groups, password, private_messages, Context, Slot};
use crate::session_end::EndReason;

/// The TLS handshake, within the handshake time (the connection already
/// counts against the server's limits, and a drain closes it). Never
/// inlined: rustls's connection state would otherwise widen `run`'s frame,
/// which stays resident on every idle connection's stack.
#[inline(never)]
fn tls_handshake(
    ctx: &Context,
    stream: &TcpStream,
    outbox: &Outbox,
    config: Arc<rustls::ServerConfig>,
) -> std::io::Result<()> {
    let deadline = Instant::now() + ctx.tls_handshake_timeout;
    let session = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
    match crate::tls::TlsSession::handshake(stream, session, deadline) {
        Ok(session) => {
            METRICS.tls_handshakes.with_label_values(&["ok"]).inc();
            outbox.set_tls(Arc::new(session));
            Ok(())
        }
        Err(e) => {
            let result = if e.kind() == std::io::ErrorKind::TimedOut { "timeout" } else { "failed" };
            METRICS.tls_handshakes.with_label_values(&[result]).inc();
            Err(e)
        }
    }
}

/// How long queued lines may take to leave at logout before the socket is
/// closed anyway.
const LOGOUT_DRAIN: Duration = Duration::from_secs(2);

/// Serves one client of the chat port, or of the web port (`web`: an HTTP
/// request first, then chat lines in WebSocket frames).
pub fn run(
    ctx: &Context,
    slot: &Slot,
    stream: TcpStream,
    peer: SocketAddr,
    (tls, web): (Option<Arc<rustls::ServerConfig>>, bool),
) {
    let _ = stream.set_nodelay(true);
    set_dead_client_timeout(&stream, ctx.client_timeout);
    let stream = Arc::new(stream);
    let outbox = Outbox::new(
        Arc::clone(&stream),
        QueueLimits { lines: ctx.outbound_queue, bytes: ctx.outbound_queue_bytes },
        &ctx.flusher,
        peer.to_string(),
    );
    let registered = ctx.connections.add(&outbox);
    // From here on, whatever ends this thread (a return, a panic) gives
    // back what the connection holds when `held` is dropped.
    let mut held = Held::new(ctx, slot, Arc::clone(&outbox));
    debug!("connect {peer}");
    let encrypted = tls.is_some();
    if let Some(config) = tls {
        if let Err(e) = tls_handshake(ctx, &stream, &outbox, config) {
            debug!("disconnect {peer}: TLS handshake failed: {e}");
            return;
        }
    }
    let mut conn = Connection::new(Arc::clone(&stream), Arc::clone(&outbox));

    conn.set_deadline(Some(Instant::now() + ctx.auth_timeout));
    if let (true, Some(settings)) = (web, &ctx.web) {
        match crate::web::serve(&mut conn, settings, peer, encrypted) {
            Ok(crate::web::Served::Upgraded) => debug!("web {peer}: WebSocket open"),
            Ok(crate::web::Served::Answered) => return,
            Err(why) => {
                debug!("web {peer}: {why}");
                return;
            }
        }
    }
    let login = auth::authenticate(ctx, &mut conn, peer, &mut held.session_id);
    let LoggedIn { user, resumed_after, epoch, .. } = match login {
        Ok(l) => l,
        Err(why) => {
            if matches!(why, Ended::TimedOut) {
                info!("disconnect {peer}: not logged in within {:?}", ctx.auth_timeout);
                let _ = conn.send(protocol::error(text::AUTH_TIMEOUT));
            } else {
                debug!("disconnect {peer} before login: {why}");
            }
            held.drain_first = true;
            return;
        }
    };
    held.logged_in();
    conn.set_deadline(None);
    conn.set_pace(ctx.limits.map(|l| l.line));
    outbox.set_label(format!("{}@{peer}", user.name));
    registered.logged_in();
    held.token = outbox.speaks_sessions().then(|| issue_token(ctx, &conn, &user, resumed_after)).flatten();
    ctx.router.register(&user.name, &outbox);
    held.routed = Some(user.name.clone());
    // An account change (password, disable, delete) that committed while
    // this login or resume was in flight: its sessions ended before this
    // one was registered, so this one ends now (the token goes with it).
    if let Some(reason) = ended_while_logging_in(ctx, &user, epoch) {
        info!("disconnect {}@{peer}: {reason:?} while logging in", user.name);
        let line = if outbox.speaks_sessions() {
            protocol::session_end(reason.text())
        } else {
            protocol::error(reason.text())
        };
        let _ = conn.send(line);
        held.logout = true;
        held.drain_first = true;
        return;
    }
    match resumed_after {
        Some(after) => replay(ctx, &conn, &user, after),
        None if held.token.is_some() => unread_summary(ctx, &conn, &user),
        None => {}
    }
    let mut session = Session::new(ctx, conn, user, held.token.clone());
    let why = main_menu(&mut session);
    held.logout = matches!(why, Ended::Logout);
    // At logout, and when the pod drains, what is queued (acknowledgements
    // of stored messages above all) still goes out.
    held.drain_first = held.logout || ctx.is_draining();
    info!("disconnect {}@{peer}: {why}", session.user.name);
}

/// Whether `user`'s sessions were ended after their credentials were
/// checked (the account's session epoch moved, it was disabled or deleted).
/// Read under a share lock on the user's row, so a change that is being
/// committed is waited for: either it committed before this check (seen
/// here) or this session was registered before it committed (the change
/// ends it). When PostgreSQL cannot tell, the login does not stand.
fn ended_while_logging_in(ctx: &Context, user: &User, epoch: i64) -> Option<EndReason> {
    match ctx.db.session_epoch(user.id) {
        Ok(Some((now, false))) if now == epoch => None,
        Ok(Some((_, true))) => Some(EndReason::Disabled),
        Ok(Some(_)) => Some(EndReason::PasswordChanged),
        Ok(None) => Some(EndReason::Deleted),
        Err(e) => {
            warn!("{}: cannot confirm the login ({e}); ending it", user.name);
            Some(EndReason::Unconfirmed)
        }
    }
}

/// What one connection holds on this pod and elsewhere, given back when
/// dropped: at the end of its thread, and also when the thread panics
/// (the acceptor catches the panic; this runs while it unwinds). Its drop
/// never panics: every step only logs a failure.
struct Held<'a> {
    ctx: &'a Context,
    slot: &'a Slot,
    outbox: Arc<Outbox>,
    /// The `chatp_connections` state this connection counts in.
    state: &'static str,
    /// Its `sessions` row, once opened.
    session_id: Option<i32>,
    /// Its protocol-2 resume token.
    token: Option<String>,
    /// The name it is registered under in the router (and presence).
    routed: Option<String>,
    /// The user logged out (`bye`): the token is revoked, not released.
    logout: bool,
    /// Queued lines go out before the socket closes.
    drain_first: bool,
}

impl<'a> Held<'a> {
    fn new(ctx: &'a Context, slot: &'a Slot, outbox: Arc<Outbox>) -> Self {
        METRICS.connections.with_label_values(&["authenticating"]).inc();
        Held {
            ctx,
            slot,
            outbox,
            state: "authenticating",
            session_id: None,
            token: None,
            routed: None,
            logout: false,
            drain_first: false,
        }
    }

    fn logged_in(&mut self) {
        METRICS.connections.with_label_values(&[self.state]).dec();
        self.state = "logged_in";
        METRICS.connections.with_label_values(&[self.state]).inc();
        if let Some(id) = self.session_id {
            self.ctx.session_rows.opened(id);
            self.outbox.set_session_id(id);
        }
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let ctx = self.ctx;
        let who = self.routed.clone().unwrap_or_else(|| self.outbox.label());
        if let Some(name) = &self.routed {
            ctx.router.unregister(name, &self.outbox);
        }
        if let Some(id) = self.session_id {
            if let Err(e) = ctx.session_rows.close(&ctx.db, id) {
                warn!("session {id} of {who} stays open in the database: {e}");
            }
        }
        if let Some(token) = &self.token {
            let r = if self.logout {
                ctx.db.revoke_resume_token(token)
            } else {
                ctx.db.release_resume_token(token, ctx.resume_ttl.as_secs() as i64)
            };
            if let Err(e) = r {
                warn!("resume token of {who}: {e}");
            }
        }
        if self.drain_first && !std::thread::panicking() {
            self.outbox.drain(LOGOUT_DRAIN);
        }
        // Counted out before the socket closes: what the client sees last
        // is the end of its connection, with everything already given back.
        METRICS.connections.with_label_values(&[self.state]).dec();
        self.slot.release();
        self.outbox.close("session over");
    }
}

/// Protocol 2: a fresh resume token after `AUTH_SUCCESS` (`SESSION:`).
/// Without one (PostgreSQL failed) the client simply cannot resume.
fn issue_token(ctx: &Context, conn: &Connection, user: &User, after: Option<LastSeen>) -> Option<String> {
    match ctx.db.issue_resume_token(user.id, &ctx.pod_id, after) {
        Ok(token) => {
            conn.send(protocol::session(&token)).ok()?;
            Some(token)
        }
        Err(e) => {
            warn!("no resume token for {}: {e}", user.name);
            None
        }
    }
}

/// Protocol 2, after a login: how many messages arrived while the user was
/// away, and from whom (`UNREAD:`).
fn unread_summary(ctx: &Context, conn: &Connection, user: &User) {
    match ctx.db.unread_by_sender(user.id) {
        Ok(by_sender) => {
            let _ = conn.send(protocol::unread(&by_sender));
        }
        Err(e) => warn!("{}: no unread summary: {e}", user.name),
    }
}

/// What a resumed session missed, each line after its `MSG_ID`, before the
/// menu. Live lines may come in between; the client drops ids it has seen.
fn replay(ctx: &Context, conn: &Connection, user: &User, after: LastSeen) {
    match ctx.db.missed_messages(user.id, after) {
        Ok(missed) => {
            info!("{}: replaying {} missed messages", user.name, missed.len());
            for m in missed {
                if conn.send(format!("{}\n{}", protocol::msg_id(m.kind, m.id), m.line)).is_err() {
                    return;
                }
            }
        }
        Err(e) => warn!("{}: cannot replay missed messages: {e}", user.name),
    }
}

fn main_menu(s: &mut Session) -> Ended {
    let r: Step = (|| loop {
        s.conn.send_all(protocol::main_menu())?;
        let choice = s.conn.read_line()?;
        match protocol::parse_menu_choice(&choice) {
            MenuChoice::PrivateMessages => private_messages::run(s)?,
            MenuChoice::Broadcast => broadcast::run(s)?,
            MenuChoice::MyGroups => groups::my_groups(s)?,
            MenuChoice::BrowseGroups => groups::browse(s)?,
            MenuChoice::CreateGroup => groups::create(s)?,
            MenuChoice::ChangePassword => password::run(s)?,
            MenuChoice::Logout => return Err(Ended::Logout),
            MenuChoice::Redisplay => {}
            MenuChoice::Invalid => s.conn.send(protocol::invalid_option())?,
        }
    })();
    match r {
        Err(why) => why,
        Ok(()) => Ended::Logout,
    }
}

/// Finds clients whose host vanished without a FIN (Wi-Fi lost, laptop
/// closed) within `dead_after`: keepalive probes from a third of it, then
/// every ninth of it, six of them; and `TCP_USER_TIMEOUT`, so data that the
/// client stops acknowledging (or a receive window that stays shut) ends
/// the connection in the same time.
fn set_dead_client_timeout(stream: &TcpStream, dead_after: Duration) {
    use std::os::fd::AsRawFd;
    let fd = stream.as_raw_fd();
    let secs = dead_after.as_secs().max(1) as libc::c_int;
    let opts: [(libc::c_int, libc::c_int, libc::c_int); 5] = [
        (libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1),
        (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, (secs / 3).max(1)),
        (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, (secs / 9).max(1)),
        (libc::IPPROTO_TCP, libc::TCP_KEEPCNT, 6),
        (libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT, secs * 1000),
    ];
    let size = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    for (level, name, value) in opts {
        // SAFETY: setsockopt on an open socket with a pointer to a live c_int.
        unsafe { libc::setsockopt(fd, level, name, (&value as *const libc::c_int).cast(), size) };
    }
}
