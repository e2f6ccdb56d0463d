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
use super::{auth, broadcast, groups, password, private_messages, Context};

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

pub fn run(ctx: &Context, stream: TcpStream, peer: SocketAddr, tls: Option<Arc<rustls::ServerConfig>>) {
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
    let connections = &METRICS.connections;
    connections.with_label_values(&["authenticating"]).inc();
    debug!("connect {peer}");
    if let Some(config) = tls {
        if let Err(e) = tls_handshake(ctx, &stream, &outbox, config) {
            debug!("disconnect {peer}: TLS handshake failed: {e}");
            outbox.close("TLS handshake failed");
            connections.with_label_values(&["authenticating"]).dec();
            return;
        }
    }
    let mut conn = Connection::new(Arc::clone(&stream), Arc::clone(&outbox));

    conn.set_deadline(Some(Instant::now() + ctx.auth_timeout));
    let login = auth::authenticate(ctx, &mut conn, peer);
    let LoggedIn { user, session_id, resumed_after } = match login {
        Ok(l) => l,
        Err(why) => {
            if matches!(why, Ended::TimedOut) {
                info!("disconnect {peer}: not logged in within {:?}", ctx.auth_timeout);
                let _ = conn.send(protocol::error(text::AUTH_TIMEOUT));
            } else {
                debug!("disconnect {peer} before login: {why}");
            }
            outbox.drain(LOGOUT_DRAIN);
            outbox.close("session over");
            connections.with_label_values(&["authenticating"]).dec();
            return;
        }
    };
    connections.with_label_values(&["authenticating"]).dec();
    connections.with_label_values(&["logged_in"]).inc();
    conn.set_deadline(None);
    ctx.session_rows.opened(session_id);
    outbox.set_session_id(session_id);
    conn.set_pace(ctx.limits.map(|l| l.line));
    outbox.set_label(format!("{}@{peer}", user.name));
    registered.logged_in();
    let token = outbox.speaks_sessions().then(|| issue_token(ctx, &conn, &user, resumed_after)).flatten();
    ctx.router.register(&user.name, &outbox);
    match resumed_after {
        Some(after) => replay(ctx, &conn, &user, after),
        None if token.is_some() => unread_summary(ctx, &conn, &user),
        None => {}
    }
    let mut session = Session::new(ctx, conn, user, token);
    let why = main_menu(&mut session);
    let (user, token) = (session.user, session.resume_token);

    ctx.router.unregister(&user.name, &outbox);
    if let Err(e) = ctx.session_rows.close(&ctx.db, session_id) {
        warn!("session {session_id} of {} stays open in the database: {e}", user.name);
    }
    if let Some(token) = token {
        let r = match why {
            Ended::Logout => ctx.db.revoke_resume_token(&token),
            _ => ctx.db.release_resume_token(&token, ctx.resume_ttl.as_secs() as i64),
        };
        if let Err(e) = r {
            warn!("resume token of {}: {e}", user.name);
        }
    }
    // At logout, and when the pod drains, what is queued (acknowledgements
    // of stored messages above all) still goes out.
    if matches!(why, Ended::Logout) || ctx.is_draining() {
        outbox.drain(LOGOUT_DRAIN);
    }
    outbox.close("session over");
    connections.with_label_values(&["logged_in"]).dec();
    info!("disconnect {}@{peer}: {why}", user.name);
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
