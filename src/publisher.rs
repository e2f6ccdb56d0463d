//! Cross-pod envelopes published off the sender's path.
//!
//! When this pod knows which other pods hold a message's recipients
//! ([`crate::remote_presence`]), the sender's `SENT:` needs nothing from
//! Redis: the message is stored, the answer ("delivered") is known, and
//! the envelopes go into this queue. One thread takes everything waiting
//! and publishes it in one pipelined round trip, so a busy pod pays Redis
//! one wake-up for many messages, and no sender waits for it.
//!
//! Order: one thread publishes in queue order, so one sender's lines reach
//! a pod in the order they were sent. A sender that must take the
//! synchronous route (recipients not known, or Redis failing) first waits
//! for what is already queued ([`Publisher::settle`]), so its lines never
//! overtake its own earlier ones.
//!
//! When a pipeline fails, the publisher says so ([`Publisher::healthy`]
//! turns false) and senders take the synchronous route, whose answer tells
//! them the truth, until a publish succeeds again. The lines of the failed
//! pipeline are not delivered live (they are stored; history and unread
//! counts have them), logged and counted like any failed publish.
//!
//! PUBLISH answers how many subscribers took a line: a pod that no longer
//! listens (killed, not reaped yet) took none. Its users are then no
//! longer taken for known ([`RemotePresence::drop_pod`]): later lines to
//! them take the script's route, whose answer says they were not reached,
//! until the pod announces its presence again.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

use crossbeam_channel::{Receiver, Sender};
use log::{error, info, warn};

use crate::metrics::METRICS;
use crate::redis_store::{failed, RedisPool, RedisResult, REDIS_TIMEOUT};
use crate::remote_presence::RemotePresence;

/// Envelopes that may wait; beyond that a sender waits for room (up to
/// [`REDIS_TIMEOUT`], then its lines are dropped from live delivery).
const QUEUE_CAPACITY: usize = 10_000;

/// Most envelopes in one pipeline.
const MAX_PIPELINE: usize = 512;

/// One PUBLISH, to the channel of `pod`.
pub struct Envelope {
    pub pod: String,
    pub channel: String,
    pub payload: String,
}

enum Job {
    Publish(Envelope),
    /// Answered once everything queued before it is published (or failed).
    Settle(Sender<()>),
}

struct Shared {
    healthy: AtomicBool,
    /// Envelopes queued and not yet published.
    pending: AtomicUsize,
}

impl Shared {
    fn set_healthy(&self, healthy: bool) {
        if self.healthy.swap(healthy, Ordering::AcqRel) != healthy && healthy {
            info!("cross-pod publishing works again");
        }
    }
}

/// The publishing thread and the way to it. The thread ends when the
/// publisher is dropped, after publishing what was queued.
pub struct Publisher {
    jobs: Sender<Job>,
    shared: Arc<Shared>,
}

impl Publisher {
    pub fn start(pool: RedisPool, remote: Arc<RemotePresence>) -> Publisher {
        let (jobs, rx) = crossbeam_channel::bounded(QUEUE_CAPACITY);
        let shared = Arc::new(Shared { healthy: AtomicBool::new(true), pending: AtomicUsize::new(0) });
        let state = Arc::clone(&shared);
        thread::Builder::new()
            .name("publisher".into())
            .spawn(move || run(&pool, &rx, &state, &remote))
            .expect("spawn the publisher");
        Publisher { jobs, shared }
    }

    /// False after a failed pipeline, until a publish succeeds again.
    pub fn healthy(&self) -> bool {
        self.shared.healthy.load(Ordering::Acquire)
    }

    /// A publish outside this queue (the synchronous route) worked or failed.
    pub fn set_healthy(&self, healthy: bool) {
        self.shared.set_healthy(healthy);
    }

    /// Queues `envelopes` in order. Those that find the queue full for
    /// [`REDIS_TIMEOUT`] are not delivered live (logged and counted).
    pub fn publish(&self, envelopes: impl IntoIterator<Item = Envelope>) {
        for e in envelopes {
            self.shared.pending.fetch_add(1, Ordering::AcqRel);
            if self.jobs.send_timeout(Job::Publish(e), REDIS_TIMEOUT).is_err() {
                self.shared.pending.fetch_sub(1, Ordering::AcqRel);
                self.shared.set_healthy(false);
                METRICS.storage_errors.with_label_values(&["redis"]).inc();
                error!("cross-pod publish queue full for {REDIS_TIMEOUT:?}: a line not delivered live");
                return;
            }
        }
    }

    /// Waits until what is queued now has been published (or failed), for
    /// at most twice [`REDIS_TIMEOUT`]. Free when nothing is queued, and
    /// when publishing is failing: what is queued then is being lost, and a
    /// sender must not wait for each of its failures (Redis gone silent).
    pub fn settle(&self) {
        if self.shared.pending.load(Ordering::Acquire) == 0 || !self.healthy() {
            return;
        }
        let (done, wait) = crossbeam_channel::bounded(1);
        if self.jobs.send_timeout(Job::Settle(done), REDIS_TIMEOUT).is_ok() {
            let _ = wait.recv_timeout(2 * REDIS_TIMEOUT);
        }
    }
}

fn run(pool: &RedisPool, rx: &Receiver<Job>, shared: &Shared, remote: &RemotePresence) {
    let mut envelopes = Vec::with_capacity(MAX_PIPELINE);
    let mut settled = Vec::new();
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(job) = next.take() {
            match job {
                Job::Publish(e) => envelopes.push(e),
                Job::Settle(done) => settled.push(done),
            }
            if envelopes.len() < MAX_PIPELINE {
                next = rx.try_recv().ok();
            }
        }
        if !envelopes.is_empty() {
            let n = envelopes.len();
            match publish_all(pool, &envelopes) {
                Ok(listeners) => {
                    shared.set_healthy(true);
                    for (e, _) in envelopes.iter().zip(listeners).filter(|(_, n)| *n == 0) {
                        warn!("pod {} does not listen: its users count as unknown until it shows again", e.pod);
                        remote.drop_pod(&e.pod);
                    }
                }
                Err(e) => {
                    shared.set_healthy(false);
                    METRICS.storage_errors.with_label_values(&["redis"]).inc();
                    error!("cross-pod publish error ({n} lines not delivered live): {e}");
                }
            }
            shared.pending.fetch_sub(n, Ordering::AcqRel);
            envelopes.clear();
        }
        for done in settled.drain(..) {
            let _ = done.send(());
        }
    }
}

/// Publishes every envelope in one round trip; how many subscribers took each.
fn publish_all(pool: &RedisPool, envelopes: &[Envelope]) -> RedisResult<Vec<i64>> {
    let action = "publishing to other pods";
    let mut conn = pool.get().map_err(failed(action))?;
    let mut pipe = redis::pipe();
    for e in envelopes {
        pipe.publish(&e.channel, &e.payload);
    }
    pipe.query(&mut *conn).map_err(failed(action))
}
