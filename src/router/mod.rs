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
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

use log::{error, info, warn};
use redis::Script;

use crate::metrics::METRICS;
use crate::outbox::Outbox;
use crate::presence::Presence;
use crate::protocol::{self, MessageKind};
use crate::publisher::{Envelope, Publisher};
use crate::redis_store::{failed, Keys, RedisPool, RedisResult, LUA_FILL, PLACEHOLDER};
use crate::remote_presence::{PresenceEvent, RemotePresence};
use crate::session_end::EndSessions;

mod envelope;
mod listener;

use envelope::id_tag;
pub use envelope::{decode_broadcast, decode_direct, encode_broadcast, encode_direct};
pub use listener::Listener;

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
    /// Which users other pods hold: a recipient here and nowhere else, or
    /// known to be on other pods, costs the sender no Redis round trip.
    remote: Arc<RemotePresence>,
    /// Signs what this pod publishes on the admin channel and checks what
    /// it receives there.
    admin_key: Vec<u8>,
    publisher: Publisher,
}

impl Router {
    /// `admin_key` signs and checks the admin channel's messages.
    pub fn new(presence: Arc<Presence>, pool: RedisPool, keys: Keys, admin_key: Vec<u8>) -> Self {
        let remote = Arc::new(RemotePresence::default());
        Router {
            sessions: Mutex::new(HashMap::new()),
            presence_order: Mutex::new(()),
            presence,
            publisher: Publisher::start(pool.clone(), Arc::clone(&remote)),
            pool,
            keys,
            remote,
            admin_key,
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
        end.publish(&mut *conn, &self.keys, &self.admin_key).map_err(failed("publishing"))?;
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
            match EndSessions::open(payload, &self.admin_key, std::time::SystemTime::now()) {
                Ok(end) if end.origin != self.presence.pod_id() => {
                    let n = end.apply(&self.local_outboxes(&end.user));
                    if n > 0 {
                        info!("ended {n} sessions of {} here: {:?}", end.user, end.reason);
                    }
                }
                Ok(_) => {}
                Err(why) => {
                    let refused = METRICS.admin_refused.with_label_values(&[why.label()]);
                    // The first of each kind, then one in a hundred: a flood
                    // of forgeries must not flood the log.
                    if refused.get() % 100 == 0 {
                        warn!("ignored a message on {channel}: {why:?} (not signed with this deployment's key?)");
                    }
                    refused.inc();
                }
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
