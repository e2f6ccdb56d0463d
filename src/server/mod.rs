//! `chat_server`: the listener, the per-pod services every connection
//! shares ([`Context`]), start-up and a clean shutdown.
//!
//! One [`user_thread`] per client; the screens of the protocol are one file
//! each (`auth`, `private_messages`, `broadcast`, `groups`).

mod auth;
mod broadcast;
mod groups;
mod heartbeat;
mod open_connections;
mod password;
mod private_messages;
mod session;
mod throttle;
mod user_limits;
mod user_thread;

use std::fmt;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use log::{error, info, warn};

use crate::config::{RateLimits, Registration, ServerConfig};
use crate::db_manager::{DbManager, StoreError};
use crate::outbox::Flusher;
use crate::passwords::PasswordHasher;
use crate::presence::Presence;
use crate::protocol::{self, text};
use crate::redis_store::{self, Keys, RedisConnector, RedisError};
use crate::router::{Listener, Router};

/// Stack of each user thread. Enough for the deepest path (a PostgreSQL
/// query through the driver); only the pages touched count in RSS.
pub const USER_THREAD_STACK: usize = 128 * 1024;

/// After the drain, how long closed connections get to end their threads.
const FORCED_CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Redis connections shared by all user threads.
const REDIS_POOL_SIZE: u32 = 16;

/// What every connection of this pod shares.
pub struct Context {
    pub db: DbManager,
    pub router: Arc<Router>,
    pub presence: Arc<Presence>,
    pub hasher: PasswordHasher,
    pub pod_id: String,
    pub flusher: Flusher,
    pub outbound_queue: usize,
    pub outbound_queue_bytes: usize,
    /// Replace legacy SHA-256 hashes at login (`LEGACY_PASSWORD_UPGRADE`).
    pub upgrade_legacy_hashes: bool,
    pub auth_timeout: Duration,
    /// A client that stops acknowledging is disconnected after this.
    pub client_timeout: Duration,
    pub login_attempts_per_connection: u32,
    /// Failed logins per name and resumes per user, across pods.
    pub throttle: auth::Throttle,
    /// Per-user rate limits; `None` when off.
    pub limits: Option<RateLimits>,
    /// The buckets of those limits, per user on this pod.
    pub user_limits: user_limits::UserLimits,
    /// Live sessions one user may have on all pods together.
    pub max_sessions_per_user: usize,
    /// Connections being served, and how many may be.
    pub live_connections: AtomicUsize,
    pub max_connections: usize,
    /// Ended `sessions` rows are kept this long; the janitor purges them
    /// (and expired resume tokens) this often.
    pub session_retention: Duration,
    pub purge_every: Duration,
    pub connections: open_connections::OpenConnections,
    pub session_rows: heartbeat::SessionRows,
    /// SIGTERM came: connections are finishing.
    pub draining: AtomicBool,
    pub resume_ttl: Duration,
    /// Who may sign up.
    pub registration: Registration,
    /// A TLS handshake not done within this is dropped.
    pub tls_handshake_timeout: Duration,
    /// The web port's settings, when there is one.
    pub web: Option<crate::config::WebListen>,
}

impl Context {
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }
}

/// Why the server could not start.
#[derive(Debug)]
pub enum StartError {
    Postgres { addr: String, source: StoreError },
    Redis { addr: String, source: RedisError },
    Bind { addr: String, source: std::io::Error },
    Tls(String),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Postgres { addr, source } => write!(f, "cannot reach PostgreSQL at {addr}: {source}"),
            StartError::Redis { addr, source } => write!(f, "cannot reach Redis at {addr}: {source}"),
            StartError::Bind { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            StartError::Tls(e) => write!(f, "cannot serve TLS: {e}"),
        }
    }
}

impl std::error::Error for StartError {}

/// Stops a running server from another thread (signal handler, tests).
#[derive(Clone)]
pub struct StopHandle {
    flag: Arc<AtomicBool>,
    addrs: Vec<SocketAddr>,
}

impl StopHandle {
    pub fn stop(&self) {
        if !self.flag.swap(true, Ordering::SeqCst) {
            // Wake each blocking accept with a connection to ourselves.
            for addr in &self.addrs {
                let mut addr = *addr;
                if addr.ip().is_unspecified() {
                    addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                }
                let _ = TcpStream::connect_timeout(&addr, Duration::from_secs(1));
            }
        }
    }
}

/// A listening port: plaintext, or TLS with its configuration; the chat
/// protocol's, or the web client's (HTTP, then a WebSocket).
struct Port {
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    web: bool,
}

pub struct Server {
    ports: Vec<Port>,
    ctx: Arc<Context>,
    stop: Arc<AtomicBool>,
    pubsub: Listener,
    heartbeat: (Sender<()>, JoinHandle<()>),
    drain: Duration,
    /// `/healthz`, `/readyz`, `/metrics`, served until the process ends.
    _ops: Option<crate::ops_http::Ops>,
}

impl Server {
    /// Connects to PostgreSQL and Redis, applies the schema, cleans up what
    /// an earlier process with this pod id left, subscribes and binds.
    pub fn start(cfg: &ServerConfig) -> Result<Server, StartError> {
        crate::sys::raise_open_files_limit();
        #[cfg(feature = "fault-hooks")]
        if let Some(line) = &cfg.fault_panic_line {
            warn!("test build: a client line panics its connection's thread (CHATP_FAULT_PANIC_ON_LINE)");
            crate::fault::panic_on_line(line.clone());
        }
        // Every file and port first: a bad certificate pair, an unreadable
        // CA file or a port in use stops the start before PostgreSQL (the
        // schema) or Redis (presence) is touched.
        let bind = |port: u16| {
            let addr = format!("{}:{port}", cfg.bind_addr);
            TcpListener::bind(&addr).map_err(|source| StartError::Bind { addr, source })
        };
        let mut ports = Vec::new();
        let mut cert = None;
        if let Some(tls) = &cfg.tls {
            let files = crate::tls::CertFiles { cert: tls.cert_file.clone(), key: tls.key_file.clone() };
            let loaded = crate::tls::ReloadingCert::load(files).map_err(StartError::Tls)?;
            ports.push(Port { listener: bind(tls.port)?, tls: Some(loaded.server_config()), web: false });
            if let Some(web) = &cfg.web {
                ports.push(Port { listener: bind(web.port)?, tls: Some(loaded.server_config()), web: true });
            }
            cert = Some((loaded, tls.reload_every));
        } else if let Some(web) = &cfg.web {
            ports.push(Port { listener: bind(web.port)?, tls: None, web: true });
        }
        if cfg.plaintext {
            ports.push(Port { listener: bind(cfg.port)?, tls: None, web: false });
        }
        let redis_addr = format!("{}:{}", cfg.redis.host, cfg.redis.port);
        let redis_err = |source| StartError::Redis { addr: redis_addr.clone(), source };
        let connector = RedisConnector::new(&cfg.redis).map_err(redis_err)?;

        let pg_addr = format!("{}/{} as {}", cfg.db.address(), cfg.db.name, cfg.db.user);
        let db = DbManager::connect(&cfg.db, "chat_server")
            .map_err(|source| StartError::Postgres { addr: pg_addr.clone(), source })?;
        if db.is_superuser().unwrap_or(false) {
            warn!(
                "PostgreSQL user {} is a superuser: a leak of its password gives away the whole server. Run chat_server \
                 as a role with only the DML it needs (DB_USER) and the migrations as the schema's owner \
                 (DB_MIGRATION_USER): helm-chart/chat-app/files/roles.sql creates both",
                cfg.db.user
            );
        }
        let pool = redis_store::connect_pool(connector.clone(), REDIS_POOL_SIZE).map_err(redis_err)?;
        let keys = Keys::new(&cfg.redis.key_prefix);
        let presence = Arc::new(Presence::new(pool.clone(), keys.clone(), cfg.pod_id.clone(), cfg.presence_ttl));
        // A previous process with this pod id may have died with sessions.
        presence.resync(&[], false).map_err(redis_err)?;
        if let Err(e) = db.release_pod_resume_tokens(&cfg.pod_id, cfg.resume_ttl.as_secs() as i64) {
            warn!("resume tokens of an earlier process of this pod: {e}");
        }
        match db.end_pod_sessions(&cfg.pod_id) {
            Ok(0) => {}
            Ok(n) => info!("closed {n} sessions left open by an earlier {}", cfg.pod_id),
            Err(e) => return Err(StartError::Postgres { addr: pg_addr, source: e }),
        }
        let (throttle_pool, throttle_keys) = (pool.clone(), keys.clone());
        let router = Arc::new(Router::new(Arc::clone(&presence), pool, keys.clone(), cfg.admin_channel_key.clone()));
        let stop = Arc::new(AtomicBool::new(false));
        let pubsub = Listener::start(connector, keys, Arc::clone(&router), Arc::clone(&presence), Arc::clone(&stop))
            .map_err(redis_err)?;
        if let Some((cert, every)) = cert {
            cert.watch(every);
        }
        let ctx = Arc::new(Context {
            db,
            router,
            presence,
            hasher: PasswordHasher::start(cfg.hash_workers, cfg.hash_queue_timeout),
            pod_id: cfg.pod_id.clone(),
            flusher: Flusher::start(),
            outbound_queue: cfg.outbound_queue,
            outbound_queue_bytes: cfg.outbound_queue_bytes,
            upgrade_legacy_hashes: cfg.upgrade_legacy_hashes,
            auth_timeout: cfg.auth_timeout,
            client_timeout: cfg.client_timeout,
            login_attempts_per_connection: cfg.login_attempts_per_connection,
            throttle: auth::Throttle::new(Some((throttle_pool, throttle_keys))),
            limits: cfg.limits,
            user_limits: Default::default(),
            max_sessions_per_user: cfg.max_sessions_per_user,
            live_connections: AtomicUsize::new(0),
            max_connections: cfg.max_connections,
            session_retention: cfg.session_retention,
            purge_every: cfg.purge_every,
            connections: Default::default(),
            session_rows: Default::default(),
            draining: AtomicBool::new(false),
            resume_ttl: cfg.resume_ttl,
            registration: cfg.registration,
            tls_handshake_timeout: cfg
                .tls
                .as_ref()
                .map_or(Duration::ZERO, |t| t.handshake_timeout.min(cfg.auth_timeout)),
            web: cfg.web.clone(),
        });
        let heartbeat = heartbeat::start(Arc::clone(&ctx));
        let ops = match cfg.metrics_port {
            Some(port) => {
                let bind = format!("{}:{port}", cfg.bind_addr);
                let probe = Arc::clone(&ctx);
                let ops = crate::ops_http::start(&bind, move || readiness(&probe), || crate::metrics::METRICS.render())
                    .map_err(|source| StartError::Bind { addr: bind, source })?;
                Some(ops)
            }
            None => None,
        };
        for port in &ports {
            let addr = port
                .listener
                .local_addr()
                .map_err(|source| StartError::Bind { addr: cfg.bind_addr.clone(), source })?;
            let tls = if port.tls.is_some() { " (TLS)" } else { "" };
            let what = if port.web { "web client on" } else { "listening on" };
            info!("{what} {addr}{tls} as pod {}", cfg.pod_id);
        }
        if !cfg.plaintext {
            info!("plaintext port off (PLAINTEXT=off): TLS clients only");
        }
        info!(
            "limits: {} hashing workers, login within {:?}, {} failed logins per connection, rate limits {}; \
             registration {}",
            cfg.hash_workers,
            cfg.auth_timeout,
            cfg.login_attempts_per_connection,
            if cfg.limits.is_some() { "on" } else { "off" },
            cfg.registration.as_str(),
        );
        Ok(Server { ports, ctx, stop, pubsub, heartbeat, drain: cfg.drain, _ops: ops })
    }

    pub fn stop_handle(&self) -> StopHandle {
        let addrs = self.ports.iter().filter_map(|p| p.listener.local_addr().ok()).collect();
        StopHandle { flag: Arc::clone(&self.stop), addrs }
    }

    /// Serves until stopped, then disconnects everyone, leaves presence and
    /// joins every thread it started.
    pub fn run(self) {
        let threads: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let acceptors: Vec<JoinHandle<()>> = self
            .ports
            .into_iter()
            .map(|port| {
                let accept = Acceptor {
                    ctx: Arc::clone(&self.ctx),
                    stop: Arc::clone(&self.stop),
                    threads: Arc::clone(&threads),
                    refusing: Arc::default(),
                };
                thread::Builder::new().name("accept".into()).spawn(move || accept.run(port)).expect("spawn acceptor")
            })
            .collect();
        // Each acceptor drops its listener when it stops: a client
        // reconnecting now must reach another pod, not wait in this one's
        // backlog.
        for a in acceptors {
            let _ = a.join();
        }
        let threads = std::mem::take(&mut *threads.lock().unwrap_or_else(|e| e.into_inner()));
        info!("draining {} connections (up to {:?})", self.ctx.live_connections.load(Ordering::SeqCst), self.drain);
        self.ctx.draining.store(true, Ordering::SeqCst);
        self.ctx.connections.drain();
        let wait_for_threads = |limit: Duration| {
            let deadline = Instant::now() + limit;
            while threads.iter().any(|h| !h.is_finished()) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
            }
        };
        wait_for_threads(self.drain);
        // Whatever did not finish in time is closed now.
        self.ctx.connections.close_all("server shutting down");
        wait_for_threads(FORCED_CLOSE_WAIT);
        let stuck = threads.iter().filter(|h| !h.is_finished()).count();
        if stuck > 0 {
            // Exit anyway: the process must end within its grace period.
            warn!("{stuck} connection threads still busy after the drain; exiting without them");
            if let Err(e) = self.ctx.presence.resync(&[], true) {
                warn!("leaving presence: {e}");
            }
            return;
        }
        for h in threads {
            let _ = h.join();
        }
        // Lines still queued for other pods go out before the pod leaves.
        self.ctx.router.settle();
        if let Err(e) = self.ctx.presence.resync(&[], true) {
            warn!("leaving presence: {e}");
        }
        let (hb_stop, hb) = self.heartbeat;
        drop(hb_stop);
        let _ = hb.join();
        self.pubsub.join();
        // The readiness checker holds the context: stopped first.
        drop(self._ops);
        match Arc::try_unwrap(self.ctx) {
            Ok(ctx) => ctx.flusher.stop(),
            Err(_) => warn!("context still shared at shutdown"),
        }
        info!("stopped");
    }
}

/// Accepts on one port until the server stops.
struct Acceptor {
    ctx: Arc<Context>,
    stop: Arc<AtomicBool>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
    /// TLS clients being told that the server is full.
    refusing: Arc<AtomicUsize>,
}

/// At most this many TLS clients at once are told the server is full (each
/// costs a short thread for its handshake); more are just closed.
const MAX_TLS_REFUSALS: usize = 16;

/// How long a TLS client told the server is full gets for its handshake.
const TLS_REFUSAL_HANDSHAKE: Duration = Duration::from_secs(2);

/// A connection slot: given back by the connection before its socket
/// closes (a client that reconnects at once finds it free), or at the
/// latest when dropped, however its thread ends.
pub(crate) struct Slot {
    ctx: Arc<Context>,
    released: AtomicBool,
}

impl Slot {
    fn take(ctx: &Arc<Context>) -> Slot {
        ctx.live_connections.fetch_add(1, Ordering::SeqCst);
        Slot { ctx: Arc::clone(ctx), released: AtomicBool::new(false) }
    }

    /// Gives the slot back (once).
    pub(crate) fn release(&self) {
        if !self.released.swap(true, Ordering::SeqCst) {
            self.ctx.live_connections.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.release();
    }
}

impl Acceptor {
    fn run(self, port: Port) {
        let mut backoff = Duration::from_millis(10);
        while !self.stop.load(Ordering::SeqCst) {
            let (stream, peer) = match port.listener.accept() {
                Ok(c) => {
                    backoff = Duration::from_millis(10);
                    c
                }
                Err(e) => {
                    error!("accept failed: {e}; retrying in {backoff:?}");
                    thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            };
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            if self.ctx.live_connections.load(Ordering::SeqCst) >= self.ctx.max_connections {
                warn!("refused {peer}: {} connections already", self.ctx.max_connections);
                match &port.tls {
                    // A browser reads no chat line before its upgrade: closed.
                    _ if port.web => {}
                    None => refuse_full(&mut &stream),
                    Some(tls) => self.refuse_full_tls(stream, Arc::clone(tls)),
                }
                continue;
            }
            let mut threads = self.threads.lock().unwrap_or_else(|e| e.into_inner());
            if threads.len() > 64 && threads.len() > 2 * self.ctx.live_connections.load(Ordering::SeqCst) {
                threads.retain(|h| !h.is_finished());
            }
            let slot = Slot::take(&self.ctx);
            let tls = port.tls.clone();
            let web = port.web;
            let spawned =
                thread::Builder::new().name(format!("user-{peer}")).stack_size(USER_THREAD_STACK).spawn(move || {
                    let ctx = &slot.ctx;
                    // A panic costs this connection only: what it held is
                    // given back while it unwinds.
                    let served = panic::catch_unwind(AssertUnwindSafe(|| {
                        user_thread::run(ctx, &slot, stream, peer, (tls, web))
                    }));
                    if let Err(cause) = served {
                        crate::metrics::METRICS.thread_panics.inc();
                        error!(
                            "connection {peer}: its thread panicked ({}); its resources were released",
                            panic_text(&*cause)
                        );
                    }
                    drop(slot);
                });
            match spawned {
                Ok(h) => threads.push(h),
                Err(e) => error!("cannot start a thread for {peer}: {e}"),
            }
        }
    }

    /// Tells a TLS client, inside TLS, that the server is full: a short
    /// thread does the handshake (at most [`MAX_TLS_REFUSALS`] at once).
    fn refuse_full_tls(&self, stream: TcpStream, config: Arc<rustls::ServerConfig>) {
        if self.refusing.fetch_add(1, Ordering::SeqCst) >= MAX_TLS_REFUSALS {
            self.refusing.fetch_sub(1, Ordering::SeqCst);
            return;
        }
        let refusing = Arc::clone(&self.refusing);
        let spawned =
            thread::Builder::new().name("refuse-full".into()).stack_size(USER_THREAD_STACK).spawn(move || {
                let deadline = Instant::now() + TLS_REFUSAL_HANDSHAKE;
                let session = rustls::ServerConnection::new(config).map_err(std::io::Error::other);
                if let Ok(tls) = session.and_then(|s| crate::tls::TlsSession::handshake(&stream, s, deadline)) {
                    let mut sealed = Vec::new();
                    let line = format!("{}\n", protocol::error(text::SERVER_FULL));
                    if tls.seal(line.as_bytes(), &mut sealed).is_ok() {
                        tls.close_notify();
                        let _ = tls.seal(&[], &mut sealed);
                        refuse_write(&stream, &sealed);
                    }
                }
                refusing.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            self.refusing.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// The text of a panic's payload.
fn panic_text(cause: &(dyn std::any::Any + Send)) -> String {
    match (cause.downcast_ref::<&str>(), cause.downcast_ref::<String>()) {
        (Some(s), _) => s.to_string(),
        (_, Some(s)) => s.clone(),
        _ => "no message".into(),
    }
}

/// Why the pod should get no new users, if it should not (`/readyz`):
/// draining, or PostgreSQL or Redis not answering. Evaluated every second
/// by the ops port's checker thread, never per request.
fn readiness(ctx: &Context) -> Result<(), String> {
    if ctx.is_draining() {
        return Err("draining".into());
    }
    let live = ctx.live_connections.load(Ordering::SeqCst);
    if live >= ctx.max_connections {
        return Err(format!("full: {live} connections (MAX_CONNECTIONS)"));
    }
    ctx.db.ping().map_err(|e| format!("PostgreSQL: {e}"))?;
    ctx.presence.ping().map_err(|e| format!("Redis: {e}"))?;
    Ok(())
}

fn refuse_full(stream: &mut &TcpStream) {
    let line = format!("{}\n", protocol::error(text::SERVER_FULL));
    refuse_write(stream, line.as_bytes());
}

/// Writes what a refused client is told, waiting at most a moment.
fn refuse_write(mut stream: &TcpStream, bytes: &[u8]) {
    let _ = stream.set_write_timeout(Some(Duration::from_millis(200)));
    let _ = stream.write_all(bytes);
}
