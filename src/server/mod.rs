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
mod private_messages;
mod session;
mod user_thread;

use std::fmt;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use log::{error, info, warn};

use crate::config::{RateLimits, ServerConfig};
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
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Postgres { addr, source } => write!(f, "cannot reach PostgreSQL at {addr}: {source}"),
            StartError::Redis { addr, source } => write!(f, "cannot reach Redis at {addr}: {source}"),
            StartError::Bind { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
        }
    }
}

impl std::error::Error for StartError {}

/// Stops a running server from another thread (signal handler, tests).
#[derive(Clone)]
pub struct StopHandle {
    flag: Arc<AtomicBool>,
    addr: SocketAddr,
}

impl StopHandle {
    pub fn stop(&self) {
        if !self.flag.swap(true, Ordering::SeqCst) {
            // Wake the blocking accept with a connection to ourselves.
            let mut addr = self.addr;
            if addr.ip().is_unspecified() {
                addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            let _ = TcpStream::connect_timeout(&addr, Duration::from_secs(1));
        }
    }
}

pub struct Server {
    listener: TcpListener,
    ctx: Arc<Context>,
    stop: Arc<AtomicBool>,
    pubsub: Listener,
    heartbeat: (Sender<()>, JoinHandle<()>),
    max_connections: usize,
    drain: Duration,
}

impl Server {
    /// Connects to PostgreSQL and Redis, applies the schema, cleans up what
    /// an earlier process with this pod id left, subscribes and binds.
    pub fn start(cfg: &ServerConfig) -> Result<Server, StartError> {
        crate::sys::raise_open_files_limit();
        let pg_addr = format!("{}:{}/{} as {}", cfg.db.host, cfg.db.port, cfg.db.name, cfg.db.user);
        let db =
            DbManager::connect(&cfg.db).map_err(|source| StartError::Postgres { addr: pg_addr.clone(), source })?;
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
        let bind = format!("{}:{}", cfg.bind_addr, cfg.port);
        let listener = TcpListener::bind(&bind).map_err(|source| StartError::Bind { addr: bind.clone(), source })?;
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
        });
        let heartbeat = heartbeat::start(Arc::clone(&ctx));
        if let Some(port) = cfg.metrics_port {
            let bind = format!("{}:{port}", cfg.bind_addr);
            let probe = Arc::clone(&ctx);
            crate::ops_http::start(&bind, move || readiness(&probe), || crate::metrics::METRICS.render())
                .map_err(|source| StartError::Bind { addr: bind, source })?;
        }
        let addr = listener.local_addr().map_err(|source| StartError::Bind { addr: bind, source })?;
        info!("listening on {addr} as pod {}", cfg.pod_id);
        info!(
            "limits: {} hashing workers, login within {:?}, {} failed logins per connection, rate limits {}",
            cfg.hash_workers,
            cfg.auth_timeout,
            cfg.login_attempts_per_connection,
            if cfg.limits.is_some() { "on" } else { "off" }
        );
        Ok(Server { listener, ctx, stop, pubsub, heartbeat, max_connections: cfg.max_connections, drain: cfg.drain })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener has an address")
    }

    pub fn stop_handle(&self) -> StopHandle {
        StopHandle { flag: Arc::clone(&self.stop), addr: self.local_addr() }
    }

    /// Serves until stopped, then disconnects everyone, leaves presence and
    /// joins every thread it started.
    pub fn run(self) {
        let live = Arc::new(AtomicUsize::new(0));
        let mut threads: Vec<JoinHandle<()>> = Vec::new();
        let mut backoff = Duration::from_millis(10);
        while !self.stop.load(Ordering::SeqCst) {
            let (stream, peer) = match self.listener.accept() {
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
            if live.load(Ordering::SeqCst) >= self.max_connections {
                warn!("refused {peer}: {} connections already", self.max_connections);
                refuse_full(stream);
                continue;
            }
            if threads.len() > 64 && threads.len() > 2 * live.load(Ordering::SeqCst) {
                threads.retain(|h| !h.is_finished());
            }
            live.fetch_add(1, Ordering::SeqCst);
            let ctx = Arc::clone(&self.ctx);
            let live_count = Arc::clone(&live);
            let spawned =
                thread::Builder::new().name(format!("user-{peer}")).stack_size(USER_THREAD_STACK).spawn(move || {
                    user_thread::run(&ctx, stream, peer);
                    live_count.fetch_sub(1, Ordering::SeqCst);
                });
            match spawned {
                Ok(h) => threads.push(h),
                Err(e) => {
                    live.fetch_sub(1, Ordering::SeqCst);
                    error!("cannot start a thread for {peer}: {e}");
                }
            }
        }
        // Stop accepting at once: a client reconnecting now must reach
        // another pod, not wait in this one's backlog.
        drop(self.listener);
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

/// Why the pod should get no new users, if it should not (`/readyz`):
/// draining, or PostgreSQL or Redis not answering.
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
