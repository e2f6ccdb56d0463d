//! The pub/sub listener: this pod's channel, the broadcast, admin and
//! presence channels, on their own Redis connection and thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use log::{error, info, warn};

use crate::presence::Presence;
use crate::redis_store::{failed, Keys, RedisConnector, RedisError, RedisResult, REDIS_TIMEOUT};

use super::Router;

/// The pub/sub listener: its own Redis connection on its own thread,
/// subscribed to this pod's channel and the broadcast channel. Reconnects
/// with backoff; after a reconnect presence is rewritten (Redis may have
/// restarted empty).
pub struct Listener {
    handle: thread::JoinHandle<()>,
}

/// How often the listener wakes to check for shutdown.
const LISTENER_TICK: Duration = Duration::from_millis(500);

/// After this long without traffic the listener PINGs Redis: a subscriber
/// connection whose Redis went silent (node lost, no FIN) is found within
/// this plus [`REDIS_TIMEOUT`], then reconnected and resubscribed.
const LISTENER_PING_AFTER: Duration = Duration::from_secs(1);

impl Listener {
    /// Starts the listener and returns once it is subscribed (or failed).
    pub fn start(
        connector: RedisConnector,
        keys: Keys,
        router: Arc<Router>,
        presence: Arc<Presence>,
        stop: Arc<AtomicBool>,
    ) -> RedisResult<Listener> {
        let (ready_tx, ready_rx) = crossbeam_channel::bounded::<RedisResult<()>>(1);
        let handle = thread::Builder::new()
            .name("pubsub".into())
            .spawn(move || listen(connector, keys, router, presence, stop, ready_tx))
            .expect("spawn pubsub thread");
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Listener { handle }),
            Ok(Err(e)) => {
                let _ = handle.join();
                Err(e)
            }
            Err(_) => {
                let _ = handle.join();
                Err(RedisError { action: "subscribing".into(), source: "the listener thread ended".into() })
            }
        }
    }

    pub fn join(self) {
        let _ = self.handle.join();
    }
}

/// Why one subscription ended.
enum ListenEnd {
    Stopped,
    Lost(RedisError),
    /// A read was interrupted by a signal: resubscribe without delay.
    Interrupted,
}

fn interrupted(e: &redis::RedisError) -> bool {
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .is_some_and(|io| io.kind() == std::io::ErrorKind::Interrupted)
}

/// Subscribes on `conn` and delivers until stopped or the connection
/// fails. One `PubSub` for the whole life of the connection: dropping it
/// unsubscribes. `subscribed` is called once the subscription is live.
fn serve(
    conn: &mut redis::Connection,
    keys: &Keys,
    router: &Router,
    stop: &AtomicBool,
    subscribed: impl FnOnce(),
) -> ListenEnd {
    let mut ps = conn.as_pubsub();
    let pod = router.presence.pod_id().to_string();
    // What was known of other pods may be stale by now.
    router.remote.forget();
    let channels = [keys.pod_channel(&pod), keys.broadcast_channel(), keys.admin_channel(), keys.presence_channel()];
    if let Err(e) = ps.subscribe(&channels) {
        return ListenEnd::Lost(failed("subscribing")(e));
    }
    // After subscribing: a change from now on arrives as an event, applied
    // after this snapshot, in order.
    router.load_remote_presence();
    if let Err(e) = ps.set_read_timeout(Some(LISTENER_TICK)) {
        return ListenEnd::Lost(failed("subscribing")(e));
    }
    subscribed();
    let mut last_heard = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        match ps.get_message() {
            Ok(m) => {
                last_heard = Instant::now();
                let channel = m.get_channel_name().to_string();
                match m.get_payload::<String>() {
                    Ok(payload) => router.deliver_published(&channel, &payload),
                    Err(e) => warn!("ignored a cross-pod message on {channel}: {e}"),
                }
            }
            Err(e) if e.is_timeout() => {
                if last_heard.elapsed() >= LISTENER_PING_AFTER {
                    if let Err(e) = ping(&mut ps) {
                        return ListenEnd::Lost(failed("checking the subscription with PING")(e));
                    }
                    last_heard = Instant::now();
                }
            }
            // The process was stopped and continued (SIGSTOP/SIGCONT): the
            // socket is fine, but a read cut short may have lost part of a
            // reply, so resubscribe at once rather than read on.
            Err(e) if interrupted(&e) => return ListenEnd::Interrupted,
            Err(e) => return ListenEnd::Lost(failed("reading pub/sub")(e)),
        }
    }
    ListenEnd::Stopped
}

/// PING on a subscribed connection, answered within [`REDIS_TIMEOUT`]
/// (messages that arrive first are kept for `get_message`).
fn ping(ps: &mut redis::PubSub<'_>) -> redis::RedisResult<()> {
    ps.set_read_timeout(Some(REDIS_TIMEOUT))?;
    let pong = ps.ping::<redis::Value>();
    ps.set_read_timeout(Some(LISTENER_TICK))?;
    pong.map(drop)
}

/// The subscriber's first wait before reconnecting, doubled up to
/// [`LAST_RETRY`]: a refused connection costs Redis nothing, and live
/// delivery is back within this of Redis (or a new master) answering.
const FIRST_RETRY: Duration = Duration::from_millis(100);
const LAST_RETRY: Duration = Duration::from_millis(500);

fn listen(
    connector: RedisConnector,
    keys: Keys,
    router: Arc<Router>,
    presence: Arc<Presence>,
    stop: Arc<AtomicBool>,
    ready: Sender<RedisResult<()>>,
) {
    let mut ready = Some(ready);
    let mut backoff = FIRST_RETRY;
    let mut reconnecting = false;
    while !stop.load(Ordering::SeqCst) {
        let end = match connector.connect() {
            Ok(mut conn) => serve(&mut conn, &keys, &router, &stop, || {
                backoff = FIRST_RETRY;
                if let Some(r) = ready.take() {
                    let _ = r.send(Ok(()));
                }
                if reconnecting {
                    // Redis may have restarted empty, or be a promoted
                    // replica: rewrite our presence now.
                    presence.rewrite_now();
                    info!("pub/sub reconnected");
                }
            }),
            Err(e) => ListenEnd::Lost(failed("connecting the subscriber")(e)),
        };
        if !matches!(end, ListenEnd::Stopped) {
            // Presence events may be missed from now on.
            router.remote.forget();
        }
        match end {
            ListenEnd::Stopped => return,
            ListenEnd::Interrupted => {
                info!("pub/sub read interrupted by a signal; resubscribing");
                reconnecting = true;
            }
            ListenEnd::Lost(e) => {
                if let Some(r) = ready.take() {
                    let _ = r.send(Err(e));
                    return;
                }
                error!("pub/sub: {e}; reconnecting in {backoff:?}");
                reconnecting = true;
                thread::sleep(backoff);
                backoff = (backoff * 2).min(LAST_RETRY);
            }
        }
    }
}
