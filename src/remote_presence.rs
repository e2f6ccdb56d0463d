//! What this pod knows of the other pods' users, so a private or group
//! message whose recipient is here, and on no other pod, is delivered
//! without a Redis round trip. Kept by presence events (`chat:presence`,
//! published by the presence scripts in the same step as the change they
//! report) on top of a snapshot read when the subscription starts.
//!
//! It errs one way only: when in doubt (not subscribed yet, a lost
//! subscription, a pod that rewrote its presence) a user counts as possibly
//! elsewhere, and the message takes the Redis route as before. A user whose
//! event has not arrived yet (a login on another pod in the last
//! millisecond) can miss a live line there while their session here gets
//! it; the message is stored either way.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

/// A change of presence on one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresenceEvent {
    /// `user`'s first session on `pod` started.
    Up { pod: String, user: String },
    /// `user`'s last session on `pod` ended.
    Down { pod: String, user: String },
    /// `pod` rewrote its whole presence (start, a lost write, found reaped).
    Resync { pod: String },
}

impl PresenceEvent {
    /// `up\n<pod>\n<user>`, `down\n<pod>\n<user>`, `resync\n<pod>` (as the
    /// presence scripts publish them).
    pub fn decode(payload: &str) -> Option<PresenceEvent> {
        let mut parts = payload.splitn(3, '\n');
        let (kind, pod) = (parts.next()?, parts.next()?.to_string());
        let user = parts.next().map(str::to_string);
        match (kind, user) {
            ("up", Some(user)) => Some(PresenceEvent::Up { pod, user }),
            ("down", Some(user)) => Some(PresenceEvent::Down { pod, user }),
            ("resync", None) => Some(PresenceEvent::Resync { pod }),
            _ => None,
        }
    }

    pub fn pod(&self) -> &str {
        match self {
            PresenceEvent::Up { pod, .. } | PresenceEvent::Down { pod, .. } | PresenceEvent::Resync { pod } => pod,
        }
    }
}

#[derive(Default)]
struct Known {
    /// False until a snapshot is loaded, and after the subscription is lost.
    valid: bool,
    /// user -> other pods holding a session of theirs.
    elsewhere: HashMap<String, HashSet<String>>,
}

#[derive(Default)]
pub struct RemotePresence {
    known: Mutex<Known>,
}

impl RemotePresence {
    fn lock(&self) -> MutexGuard<'_, Known> {
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Nothing is known any more (until the next snapshot).
    pub fn forget(&self) {
        let mut k = self.lock();
        k.valid = false;
        k.elsewhere.clear();
    }

    /// Replaces what is known with a snapshot: (pod, its users) for every
    /// other pod.
    pub fn load(&self, pods: Vec<(String, Vec<String>)>) {
        let mut elsewhere: HashMap<String, HashSet<String>> = HashMap::new();
        for (pod, users) in pods {
            for u in users {
                elsewhere.entry(u).or_default().insert(pod.clone());
            }
        }
        *self.lock() = Known { valid: true, elsewhere };
    }

    /// Applies an event of another pod. `Resync` makes everything unknown:
    /// the caller loads a new snapshot.
    pub fn apply(&self, event: PresenceEvent) {
        let mut k = self.lock();
        match event {
            PresenceEvent::Up { pod, user } => {
                k.elsewhere.entry(user).or_default().insert(pod);
            }
            PresenceEvent::Down { pod, user } => {
                if let Some(pods) = k.elsewhere.get_mut(&user) {
                    pods.remove(&pod);
                    if pods.is_empty() {
                        k.elsewhere.remove(&user);
                    }
                }
            }
            PresenceEvent::Resync { .. } => {
                k.valid = false;
                k.elsewhere.clear();
            }
        }
    }

    /// `pod` is gone or does not listen: its users are no longer known to
    /// be there (nor anywhere else because of it).
    pub fn drop_pod(&self, pod: &str) {
        let mut k = self.lock();
        k.elsewhere.retain(|_, pods| {
            pods.remove(pod);
            !pods.is_empty()
        });
    }

    /// The other pods known to hold a session of `user` (empty: none);
    /// `None` while nothing is known.
    pub fn pods_of(&self, user: &str) -> Option<Vec<String>> {
        let k = self.lock();
        k.valid.then(|| k.elsewhere.get(user).map(|p| p.iter().cloned().collect()).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errs_towards_elsewhere() {
        let r = RemotePresence::default();
        assert_eq!(r.pods_of("ann"), None, "nothing known yet");
        r.load(vec![("b".into(), vec!["bob".into()])]);
        assert_eq!(r.pods_of("ann"), Some(vec![]));
        assert_eq!(r.pods_of("bob"), Some(vec!["b".to_string()]));
        r.apply(PresenceEvent::decode("up\nc\nann").unwrap());
        assert_eq!(r.pods_of("ann"), Some(vec!["c".to_string()]));
        r.apply(PresenceEvent::decode("down\nc\nann").unwrap());
        assert_eq!(r.pods_of("ann"), Some(vec![]));
        r.apply(PresenceEvent::decode("resync\nb").unwrap());
        assert_eq!(r.pods_of("ann"), None, "a resync makes everything unknown");
        assert_eq!(PresenceEvent::decode("up\nc"), None);
        assert_eq!(PresenceEvent::decode("sideways\nc\nx"), None);
    }
}
