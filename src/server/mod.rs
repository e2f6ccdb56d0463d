//! `chat_server`: the listener, the per-pod services every connection
//! shares ([`Context`]), start-up and a clean shutdown.
//!
//! One [`user_thread`] per client; the screens of the protocol are one file
//! each (`auth`, `private_messages`, `broadcast`, `groups`).

mod auth;
mod broadcast;
mod groups;
mod heartbeat;
mod login_throttle;
mod open_connections;
mod password;
mod private_messages;
mod session;
mod user_thread;

use std::fmt;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
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
    pub login_throttle: auth::LoginThrottle,
    /// Per-session rate limits; `None` when off.
    pub limits: Option<RateLimits>,
    pub connections: open_connections::OpenConnections,
    pub session_rows: heartbeat::SessionRows,
    /// SIGTERM came: connections are finishing.
    pub draining: AtomicBool,
    pub resume_ttl: Duration,
    /// Who may sign up.
    pub registration: Registration,
    /// A TLS handshake not done within this is dropped.
    pub tls_handshake_timeout: Duration,
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

/// A listening port: plaintext, or TLS with its configuration.
struct Port {
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
}

pub struct Server {
    ports: Vec<Port>,
    ctx: Arc<Context>,
    stop: Arc<AtomicBool>,
    pubsub: Listener,
    heartbeat: (Sender<()>, JoinHandle<()>),
    max_connections: usize,
    drain: Duration,
    /// `/healthz`, `/readyz`, `/metrics`, served until the process ends.
    _ops: Option<crate::ops_http::Ops>,
}

impl Server {
    /// Connects to PostgreSQL and Redis, applies the schema, cleans up what
    /// an earlier process with this pod id left, subscribes and binds.
    pub fn start(cfg: &ServerConfig) -> Result<Server, StartError> {
        crate::sys::raise_open_files_limit();
        let pg_addr = format!("{}:{}/{} as {}", cfg.db.host, cfg.db.port, cfg.db.name, cfg.db.user);
        let db = DbManager::connect(&cfg.db, "chat_server")
            .map_err(|source| StartError::Postgres { addr: pg_addr.clone(), source })?;
        let redis_addr = format!("{}:{}", cfg.redis.host, cfg.redis.port);
        let redis_err = |source| StartError::Redis { addr: redis_addr.clone(), source };
        let connector = RedisConnector::new(&cfg.redis).map_err(redis_err)?;
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
        let router = Arc::new(Router::new(Arc::clone(&presence), pool, keys.clone()));
        let stop = Arc::new(AtomicBool::new(false));
        let pubsub = Listener::start(connector, keys, Arc::clone(&router), Arc::clone(&presence), Arc::clone(&stop))
            .map_err(redis_err)?;
        let bind = |port: u16| {
            let addr = format!("{}:{port}", cfg.bind_addr);
            TcpListener::bind(&addr).map_err(|source| StartError::Bind { addr, source })
        };
        let mut ports = Vec::new();
        if let Some(tls) = &cfg.tls {
            let files = crate::tls::CertFiles { cert: tls.cert_file.clone(), key: tls.key_file.clone() };
            let cert = crate::tls::ReloadingCert::load(files).map_err(StartError::Tls)?;
            cert.watch(tls.reload_every);
            ports.push(Port { listener: bind(tls.port)?, tls: Some(cert.server_config()) });
        }
        if cfg.plaintext {
            ports.push(Port { listener: bind(cfg.port)?, tls: None });
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
            login_throttle: auth::LoginThrottle::default(),
            limits: cfg.limits,
            connections: Default::default(),
            session_rows: Default::default(),
            draining: AtomicBool::new(false),
            resume_ttl: cfg.resume_ttl,
            registration: cfg.registration,
            tls_handshake_timeout: cfg
                .tls
                .as_ref()
                .map_or(Duration::ZERO, |t| t.handshake_timeout.min(cfg.auth_timeout)),
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
            info!("listening on {addr}{tls} as pod {}", cfg.pod_id);
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
        Ok(Server {
            ports,
            ctx,
            stop,
            pubsub,
            heartbeat,
            max_connections: cfg.max_connections,
            drain: cfg.drain,
            _ops: ops,
        })
    }

    pub fn stop_handle(&self) -> StopHandle {
        let addrs = self.ports.iter().filter_map(|p| p.listener.local_addr().ok()).collect();
        StopHandle { flag: Arc::clone(&self.stop), addrs }
    }

    /// Serves until stopped, then disconnects everyone, leaves presence and
    /// joins every thread it started.
    pub fn run(self) {
        let live = Arc::new(AtomicUsize::new(0));
        let threads: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let acceptors: Vec<JoinHandle<()>> = self
            .ports
            .into_iter()
            .map(|port| {
                let accept = Acceptor {
                    ctx: Arc::clone(&self.ctx),
                    stop: Arc::clone(&self.stop),
                    live: Arc::clone(&live),
                    threads: Arc::clone(&threads),
                    max_connections: self.max_connections,
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
        info!("draining {} connections (up to {:?})", live.load(Ordering::SeqCst), self.drain);
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
    live: Arc<AtomicUsize>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
    max_connections: usize,
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
            if self.live.load(Ordering::SeqCst) >= self.max_connections {
                warn!("refused {peer}: {} connections already", self.max_connections);
                if port.tls.is_none() {
                    refuse_full(stream);
                }
                continue;
            }
            let mut threads = self.threads.lock().unwrap_or_else(|e| e.into_inner());
            if threads.len() > 64 && threads.len() > 2 * self.live.load(Ordering::SeqCst) {
                threads.retain(|h| !h.is_finished());
            }
            self.live.fetch_add(1, Ordering::SeqCst);
            let ctx = Arc::clone(&self.ctx);
            let live_count = Arc::clone(&self.live);
            let tls = port.tls.clone();
            let spawned =
                thread::Builder::new().name(format!("user-{peer}")).stack_size(USER_THREAD_STACK).spawn(move || {
                    user_thread::run(&ctx, stream, peer, tls);
                    live_count.fetch_sub(1, Ordering::SeqCst);
                });
            match spawned {
                Ok(h) => threads.push(h),
                Err(e) => {
                    self.live.fetch_sub(1, Ordering::SeqCst);
                    error!("cannot start a thread for {peer}: {e}");
                }
            }
        }
    }
}

/// Why the pod should get no new users, if it should not (`/readyz`):
/// draining, or PostgreSQL or Redis not answering. Evaluated every second
/// by the ops port's checker thread, never per request.
fn readiness(ctx: &Context) -> Result<(), String> {
    if ctx.is_draining() {
        return Err("draining".into());
    }
    ctx.db.ping().map_err(|e| format!("PostgreSQL: {e}"))?;
    ctx.presence.ping().map_err(|e| format!("Redis: {e}"))?;
    Ok(())
}

fn refuse_full(mut stream: TcpStream) {
    let _ = stream.set_write_timeout(Some(Duration::from_millis(200)));
    let _ = writeln!(stream, "{}", protocol::error(text::SERVER_FULL));
}
