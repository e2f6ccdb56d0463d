//! Delivery of lines to users, on this pod and across pods.
//!
//! Each pod keeps its live sessions in a local registry (username ->
//! outboxes) and subscribes to its own channel (`chat:pod:<pod>`),
//! `chat:broadcast`, `chat:admin` (sessions to end) and `chat:presence`
//! (other pods' logins and logouts). A private or group line is delivered
//! at once to local sessions; a recipient served here and, as presence
//! events tell ([`crate::remote_presence`]), on no other pod is done. A
//! recipient known to be on other pods gets one envelope per such pod,
//! naming the recipients there, queued for the [`Publisher`] thread: the
//! sender's `SENT:` does not wait for Redis. For the rest (nothing known
//! yet, offline as far as this pod knows, or publishing failing) one Lua
//! script looks up the pods holding each recipient
//! (`presence:user:<user>:pods`) and publishes the envelopes in one round
//! trip, and its answer says whether anyone was reached. So a message
//! crosses only to the pods that hold its recipients, and a message between
//! two users of one pod costs Redis nothing; a broadcast is published once
//! on the broadcast channel for every pod.
//!
//! Lines of one sender reach a recipient in the order they were sent: the
//! publisher publishes its queue in order, the sender's thread lets the
//! queue empty before it takes the script's route, and each pod's listener
//! delivers its channel in order.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use log::{error, info, warn};
use redis::Script;

use crate::metrics::METRICS;
use crate::outbox::Outbox;
use crate::presence::Presence;
use crate::protocol::{self, MessageKind, Notification};
use crate::publisher::{Envelope, Publisher};
use crate::redis_store::{
    failed, Keys, RedisConnector, RedisError, RedisPool, RedisResult, LUA_FILL, PLACEHOLDER, REDIS_TIMEOUT,
};
use crate::remote_presence::{PresenceEvent, RemotePresence};
use crate::session_end::EndSessions;

/// Publishes `line` to the other pods holding the recipients. KEYS: each
/// recipient's pods set. ARGV: own pod, pod channel template, line, the
/// recipients in KEYS order, then the id element (or empty). Returns how many recipients a subscribed pod
/// took the line for: PUBLISH counts the pods listening on a channel, so a
/// recipient whose only pod is gone (crashed, not reaped yet) is not
/// counted as reached.
static ROUTE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{LUA_FILL}{}",
        r#"
local by_pod, order = {}, {}
for i, key in ipairs(KEYS) do
  local user = ARGV[3 + i]
  for _, pod in ipairs(redis.call('SMEMBERS', key)) do
    if pod ~= ARGV[1] then
      if not by_pod[pod] then by_pod[pod] = {}; table.insert(order, pod) end
      table.insert(by_pod[pod], user)
    end
  end
end
local tag = ARGV[#KEYS + 4]
if tag ~= '' then tag = '\n' .. tag end
local reached, count = {}, 0
for _, pod in ipairs(order) do
  local listeners = redis.call('PUBLISH', fill(ARGV[2], pod), ARGV[3] .. '\n' .. table.concat(by_pod[pod], '\n') .. tag)
  if listeners > 0 then
    for _, user in ipairs(by_pod[pod]) do
      if not reached[user] then reached[user] = true; count = count + 1 end
    end
  end
end
return count
"#
    ))
});

/// A notification about a stored message: its line as every client gets
/// it, and the stored id that protocol-2 clients get before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub kind: MessageKind,
    /// `None` when it came from a pod that does not send ids.
    pub id: Option<i64>,
    pub line: String,
}

/// A notice as outboxes take it: one shared copy per protocol version.
struct NoticeLines {
    plain: Arc<str>,
    with_id: Arc<str>,
    kind: MessageKind,
}

impl NoticeLines {
    fn new(n: &Notice) -> Self {
        let plain: Arc<str> = Arc::from(n.line.as_str());
        let with_id = match n.id {
            Some(id) => Arc::from(format!("{}\n{}", protocol::msg_id(n.kind, id), n.line).as_str()),
            None => Arc::clone(&plain),
        };
        NoticeLines { plain, with_id, kind: n.kind }
    }

    fn deliver(&self, o: &Arc<Outbox>) -> bool {
        let taken = o.notify(if o.speaks_sessions() { &self.with_id } else { &self.plain });
        if taken {
            METRICS.delivered.with_label_values(&[self.kind.as_str()]).inc();
        }
        taken
    }
}

/// Marks the id element of an envelope; no username holds a `:`, so pods
/// that predate ids take it for a recipient that is not theirs and ignore it.
const ID_MARK: &str = "#id:";

fn id_tag(n: &Notice) -> Option<String> {
    n.id.map(|id| format!("{ID_MARK}{}:{id}", n.kind.as_str()))
}

fn parse_id_tag(tag: &str) -> Option<(MessageKind, i64)> {
    let (kind, id) = tag.strip_prefix(ID_MARK)?.split_once(':')?;
    Some((MessageKind::parse(kind)?, id.parse().ok()?))
}

/// Encodes a notice for named recipients: the line, one name per line
/// (neither can hold a `\n`), then the id element.
pub fn encode_direct(n: &Notice, recipients: &[&str]) -> String {
    let mut s = String::with_capacity(n.line.len() + 32 + recipients.iter().map(|r| r.len() + 1).sum::<usize>());
    s.push_str(&n.line);
    for r in recipients {
        s.push('\n');
        s.push_str(r);
    }
    if let Some(tag) = id_tag(n) {
        s.push('\n');
        s.push_str(&tag);
    }
    s
}

/// Decodes [`encode_direct`]: (notice, recipients). `kind` is the kind a
/// pod without ids would mean.
pub fn decode_direct(payload: &str) -> Option<(Notice, Vec<&str>)> {
    let mut parts = payload.split('\n');
    let line = parts.next()?;
    let mut id = None;
    let mut recipients = Vec::new();
    for p in parts.filter(|r| !r.is_empty()) {
        match parse_id_tag(p) {
            Some(tag) => id = Some(tag),
            None => recipients.push(p),
        }
    }
    if recipients.is_empty() {
        return None;
    }
    let kind = match (id, protocol::parse_notification(line)) {
        (Some((kind, _)), _) => kind,
        (None, Some(Notification::GroupMessage { .. })) => MessageKind::Group,
        (None, _) => MessageKind::Private,
    };
    Some((Notice { kind, id: id.map(|(_, i)| i), line: line.to_string() }, recipients))
}

/// Encodes a broadcast: origin pod (with the id element after a `#`, which
/// pods without ids take as another pod's name), sender, line.
pub fn encode_broadcast(origin_pod: &str, sender: &str, n: &Notice) -> String {
    match n.id {
        Some(id) => format!("{origin_pod}#{id}\n{sender}\n{}", n.line),
        None => format!("{origin_pod}\n{sender}\n{}", n.line),
    }
}

/// Decodes [`encode_broadcast`]: (origin pod, sender, notice).
pub fn decode_broadcast(payload: &str) -> Option<(&str, &str, Notice)> {
    let mut parts = payload.splitn(3, '\n');
    let (origin, sender, line) = (parts.next()?, parts.next()?, parts.next()?);
    let (origin, id) = match origin.rsplit_once('#') {
        Some((pod, id)) => (pod, id.parse().ok()),
        None => (origin, None),
    };
    Some((origin, sender, Notice { kind: MessageKind::Broadcast, id, line: line.to_string() }))
}

/// How a broadcast went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BroadcastReport {
    /// Other users it reached.
    pub reached: usize,
    /// Other users online.
    pub others_online: usize,
}

/// Local sessions plus cross-pod routing.
pub struct Router {
    sessions: Mutex<HashMap<String, Vec<Arc<Outbox>>>>,
    /// Held across a session's local change and its presence write, and
    /// across a resync's snapshot and rewrite, so a login or logout is
    /// never lost (or counted twice) by a resync running at the same time.
    presence_order: Mutex<()>,
    presence: Arc<Presence>,
    pool: RedisPool,
    keys: Keys,
    /// Which users other pods hold: a recipient here and nowhere else
    /// needs no Redis round trip.
    remote: Arc<RemotePresence>,
    publisher: Publisher,
}

impl Router {
    pub fn new(presence: Arc<Presence>, pool: RedisPool, keys: Keys) -> Self {
        let remote = Arc::new(RemotePresence::default());
        Router {
            sessions: Mutex::new(HashMap::new()),
            presence_order: Mutex::new(()),
            presence,
            publisher: Publisher::start(pool.clone(), Arc::clone(&remote)),
            pool,
            keys,
            remote,
        }
    }

    /// Reads which users the other pods hold (after subscribing to their
    /// presence events, and when one of them rewrote its presence). Until it
    /// succeeds every message takes the Redis route.
    fn load_remote_presence(&self) {
        self.remote.forget();
        match self.presence.other_pods_users() {
            Ok(pods) => self.remote.load(pods),
            Err(e) => warn!("other pods' users not known (messages take the Redis route): {e}"),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Vec<Arc<Outbox>>>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn presence_order(&self) -> MutexGuard<'_, ()> {
        self.presence_order.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Rewrites this pod's presence from its live sessions (after a lost
    /// write, a Redis restart, or when the pod finds it was reaped).
    pub fn resync_presence(&self) -> RedisResult<()> {
        let _order = self.presence_order();
        self.presence.resync(&self.session_counts(), false)
    }

    /// A user's session starts here: local registry, then presence.
    pub fn register(&self, user: &str, outbox: &Arc<Outbox>) {
        let _order = self.presence_order();
        self.lock().entry(user.to_string()).or_default().push(Arc::clone(outbox));
        if let Err(e) = self.presence.session_up(user) {
            METRICS.storage_errors.with_label_values(&["redis"]).inc();
            error!("presence: {e} (will resync at the next heartbeat)");
        }
    }

    /// A user's session ends.
    pub fn unregister(&self, user: &str, outbox: &Arc<Outbox>) {
        let _order = self.presence_order();
        {
            let mut map = self.lock();
            if let Some(list) = map.get_mut(user) {
                list.retain(|o| !Arc::ptr_eq(o, outbox));
                if list.is_empty() {
                    map.remove(user);
                }
            }
        }
        if let Err(e) = self.presence.session_down(user) {
            METRICS.storage_errors.with_label_values(&["redis"]).inc();
            error!("presence: {e} (will resync at the next heartbeat)");
        }
    }

    /// (user, live sessions here) for every local user.
    pub fn session_counts(&self) -> Vec<(String, usize)> {
        self.lock().iter().map(|(u, l)| (u.clone(), l.len())).collect()
    }

    fn local_outboxes(&self, user: &str) -> Vec<Arc<Outbox>> {
        self.lock().get(user).cloned().unwrap_or_default()
    }

    /// Delivers to every local session of `user`; how many took it.
    fn deliver_local(&self, user: &str, lines: &NoticeLines) -> usize {
        self.local_outboxes(user).iter().filter(|o| lines.deliver(o)).count()
    }

    fn route_remote(&self, recipients: &[&str], n: &Notice) -> RedisResult<usize> {
        let action = "publishing to other pods";
        let mut conn = self.pool.get().map_err(failed(action))?;
        let mut inv = ROUTE.prepare_invoke();
        for r in recipients {
            inv.key(self.keys.user_pods(r));
        }
        inv.arg(self.presence.pod_id()).arg(self.keys.pod_channel(PLACEHOLDER)).arg(&n.line);
        for r in recipients {
            inv.arg(*r);
        }
        inv.arg(id_tag(n).unwrap_or_default());
        inv.invoke(&mut *conn).map_err(failed(action))
    }

    /// Sends `line` to every session of `user` on any pod. Returns whether
    /// it was delivered: to a live session here, or to a pod that holds one.
    pub fn send_to_user(&self, user: &str, n: &Notice) -> bool {
        self.send_to_users(&[user], n)
    }

    /// Sends `line` to every session of each of `users` on any pod. Returns
    /// whether it reached any of them (a session here, or a pod holding one).
    ///
    /// A recipient known to be here only is done; one known to be on other
    /// pods gets an envelope per pod, published off this thread
    /// ([`Publisher`]); for the rest (nothing known, not online anywhere
    /// as far as this pod knows, or publishing failing) the Redis route
    /// script decides, after what this pod queued before is published.
    pub fn send_to_users(&self, users: &[&str], n: &Notice) -> bool {
        let lines = NoticeLines::new(n);
        let publishing = self.publisher.healthy();
        let mut reached = false;
        let mut by_pod: HashMap<String, Vec<&str>> = HashMap::new();
        let mut undecided = Vec::new();
        for &user in users {
            let here = self.deliver_local(user, &lines) > 0;
            match self.remote.pods_of(user) {
                Some(pods) if pods.is_empty() && here => reached = true,
                Some(pods) if !pods.is_empty() && publishing => {
                    for pod in pods {
                        by_pod.entry(pod).or_default().push(user);
                    }
                    reached = true;
                }
                _ => {
                    reached |= here;
                    undecided.push(user);
                }
            }
        }
        self.publisher.publish(by_pod.into_iter().map(|(pod, users)| Envelope {
            channel: self.keys.pod_channel(&pod),
            payload: encode_direct(n, &users),
            pod,
        }));
        if undecided.is_empty() {
            return reached;
        }
        // This sender's earlier lines first, so none is overtaken.
        self.publisher.settle();
        match self.route_remote(&undecided, n) {
            Ok(online) => {
                self.publisher.set_healthy(true);
                reached || online > 0
            }
            Err(e) => {
                self.publisher.set_healthy(false);
                METRICS.storage_errors.with_label_values(&["redis"]).inc();
                error!("cross-pod publish error: {e}");
                reached
            }
        }
    }

    /// Waits until the lines queued for other pods so far are published.
    pub fn settle(&self) {
        self.publisher.settle();
    }

    /// Delivers a broadcast line to every online user but `sender`, on
    /// every pod.
    pub fn broadcast(&self, sender: &str, n: &Notice) -> BroadcastReport {
        let local_users: Vec<(String, Vec<Arc<Outbox>>)> =
            self.lock().iter().filter(|(u, _)| u.as_str() != sender).map(|(u, l)| (u.clone(), l.clone())).collect();
        let lines = NoticeLines::new(n);
        let reached_local: HashSet<&str> = local_users
            .iter()
            .filter(|(_, outboxes)| outboxes.iter().filter(|o| lines.deliver(o)).count() > 0)
            .map(|(u, _)| u.as_str())
            .collect();
        let payload = encode_broadcast(self.presence.pod_id(), sender, n);
        let remote: RedisResult<(HashSet<String>, i64)> =
            self.pool.get().map_err(failed("broadcasting")).and_then(|mut c| {
                redis::pipe()
                    .smembers(self.keys.online_users())
                    .publish(self.keys.broadcast_channel(), payload)
                    .query(&mut *c)
                    .map_err(failed("broadcasting"))
            });
        match remote {
            Ok((online, _)) => {
                let others: HashSet<&str> = online.iter().map(String::as_str).filter(|u| *u != sender).collect();
                let local_names: HashSet<&str> = local_users.iter().map(|(u, _)| u.as_str()).collect();
                let remote_only = others.iter().filter(|u| !local_names.contains(**u)).count();
                BroadcastReport {
                    reached: reached_local.len() + remote_only,
                    others_online: others.len().max(reached_local.len() + remote_only),
                }
            }
            Err(e) => {
                METRICS.storage_errors.with_label_values(&["redis"]).inc();
                error!("cross-pod publish error: {e}");
                BroadcastReport { reached: reached_local.len(), others_online: local_users.len() }
            }
        }
    }

    /// Ends sessions here and on every other pod (`chat:admin`). The
    /// local ones end even if Redis cannot be reached; `Err`: the other
    /// pods could not be told.
    pub fn end_sessions(&self, end: &EndSessions) -> RedisResult<usize> {
        let here = end.apply(&self.local_outboxes(&end.user));
        let mut conn = self.pool.get().map_err(failed("getting a connection"))?;
        end.publish(&mut *conn, &self.keys).map_err(failed("publishing"))?;
        Ok(here)
    }

    /// Handles a message that came from another pod on our channels.
    fn deliver_published(&self, channel: &str, payload: &str) {
        if channel == self.keys.presence_channel() {
            match PresenceEvent::decode(payload) {
                Some(e) if e.pod() == self.presence.pod_id() => {}
                Some(PresenceEvent::Resync { .. }) => self.load_remote_presence(),
                Some(e) => self.remote.apply(e),
                None => warn!("ignored a malformed message on {channel}"),
            }
        } else if channel == self.keys.admin_channel() {
            match EndSessions::decode(payload) {
                Some(end) if end.origin != self.presence.pod_id() => {
                    let n = end.apply(&self.local_outboxes(&end.user));
                    if n > 0 {
                        info!("ended {n} sessions of {} here: {:?}", end.user, end.reason);
                    }
                }
                Some(_) => {}
                None => warn!("ignored a malformed message on {channel}"),
            }
        } else if channel == self.keys.broadcast_channel() {
            if let Some((origin, sender, notice)) = decode_broadcast(payload) {
                if origin == self.presence.pod_id() {
                    return;
                }
                let targets: Vec<Arc<Outbox>> = self
                    .lock()
                    .iter()
                    .filter(|(u, _)| u.as_str() != sender)
                    .flat_map(|(_, l)| l.iter().cloned())
                    .collect();
                let lines = NoticeLines::new(&notice);
                for o in targets {
                    lines.deliver(&o);
                }
            }
        } else if let Some((notice, recipients)) = decode_direct(payload) {
            let lines = NoticeLines::new(&notice);
            for r in recipients {
                self.deliver_local(r, &lines);
            }
        } else {
            warn!("ignored a malformed cross-pod message on {channel}");
        }
    }
}

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

fn listen(
    connector: RedisConnector,
    keys: Keys,
    router: Arc<Router>,
    presence: Arc<Presence>,
    stop: Arc<AtomicBool>,
    ready: Sender<RedisResult<()>>,
) {
    let mut ready = Some(ready);
    let mut backoff = Duration::from_millis(250);
    let mut reconnecting = false;
    while !stop.load(Ordering::SeqCst) {
        let end = match connector.connect() {
            Ok(mut conn) => serve(&mut conn, &keys, &router, &stop, || {
                backoff = Duration::from_millis(250);
                if let Some(r) = ready.take() {
                    let _ = r.send(Ok(()));
                }
                if reconnecting {
                    // Redis may have restarted empty: rewrite our presence.
                    presence.mark_dirty();
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
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip() {
        let n = Notice { kind: MessageKind::Private, id: Some(42), line: "MESSAGE:a:x:y".into() };
        let p = encode_direct(&n, &["bob", "c d"]);
        assert_eq!(decode_direct(&p), Some((n.clone(), vec!["bob", "c d"])));
        assert_eq!(decode_direct("line only"), None);
        // From a pod without ids: the kind is read off the line.
        let payload = format!("{}\nbob", protocol::group_message("g", "a", "hi"));
        let old = decode_direct(&payload).unwrap();
        assert_eq!((old.0.kind, old.0.id), (MessageKind::Group, None));
        let b = Notice { kind: MessageKind::Broadcast, id: Some(7), line: "BROADCAST:ann:hi:1".into() };
        assert_eq!(decode_broadcast(&encode_broadcast("pod-1", "ann", &b)), Some(("pod-1", "ann", b.clone())));
        let old = decode_broadcast("pod-1\nann\nBROADCAST:ann:hi:1").unwrap();
        assert_eq!(old.2.id, None);
    }
}
