//! The message writer: private and broadcast messages that arrive while a
//! write is in progress are grouped into one statement (one round trip and
//! one commit for the whole group, prepared once per connection). Each
//! sender waits for its own message's commit, so `SENT:` still follows a
//! committed row; under load, ten senders cost PostgreSQL one commit
//! instead of ten.
//!
//! A sender that finds no write in progress writes its message itself,
//! with the one connection: a message that arrives alone wakes no other
//! thread before or after its commit. Senders that arrive while a write is
//! in progress queue and wait; if any are waiting when it ends, the writer
//! thread takes over and writes groups until the queue is empty, so under
//! load the groups form as they would with the thread alone.
//!
//! If a group fails for one bad row, its messages are written one by one,
//! so only that row's sender sees the error. A connection idle for more
//! than [`conn::VALIDATE_AFTER_IDLE`] is checked before use, and reopened if
//! PostgreSQL restarted meanwhile.
//!
//! A sender is never told "not stored" for a row that may still commit:
//! a job is cancelled only while it waits in the queue; once it has been
//! taken for a statement, the sender waits for the outcome. When the
//! connection dies while a group's statement is out (its commit may or may not have
//! happened), the writer does not guess: from a new connection it ends the
//! old backend (`pg_terminate_backend`, that backend only: its pid and start
//! time, so the statement cannot commit later), waits until it is gone, and
//! looks for the statement's mark, a random token written with the rows in
//! the same transaction (`chatp_write_marks`). Its mark there: stored, with
//! the ids it holds; not there: not stored. Marks are purged after an hour.
//!
//! Connecting and that resolution run on a short-lived thread with a full
//! stack: a sender's thread, whose stack is small, may be the one writing.
//! The connection and its statement are in [`conn`], the resolution in
//! [`in_doubt`].
mod conn;
mod in_doubt;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, Sender};

use super::{PgTarget, StoreError, StoreResult};
use conn::{Conn, InsertError};
use in_doubt::resolve;

/// Most messages in one statement.
const MAX_BATCH: usize = 256;
/// Longest a message waits in the queue before its sender gives up on it
/// (it is then cancelled, never written).
const QUEUE_WAIT: Duration = Duration::from_secs(10);
/// Messages that may wait; beyond that senders are refused.
const QUEUE_CAPACITY: usize = 10_000;
/// Stack of the thread that connects or resolves for a writing sender.
const HELPER_STACK: usize = 2 * 1024 * 1024;

/// A job's life: waiting, taken by a writer, or given up by its sender.
const QUEUED: u8 = 0;
const TAKEN: u8 = 1;
const CANCELLED: u8 = 2;

/// A message to store.
#[derive(Debug, Clone)]
pub enum Message {
    Private { conversation_id: i32, sender_id: i32, sender: String, text: String },
    Broadcast { sender_id: i32, sender: String, text: String },
}

struct Job {
    message: Message,
    reply: Sender<StoreResult<i64>>,
    state: Arc<AtomicU8>,
}

impl Job {
    fn answer(&self, result: StoreResult<i64>) {
        let _ = self.reply.send(result);
    }
}

/// Waiting jobs, and the connection while nobody is writing.
#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// A sender or the writer thread is writing (holds the connection).
    leading: bool,
    conn: Option<Conn>,
}

/// The queue and the way to PostgreSQL, shared by the senders and the
/// writer thread.
struct Shared {
    pg: PgTarget,
    queue: Mutex<Queue>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes up to [`MAX_BATCH`] jobs from the front of the queue (from
    /// now on each sender waits for the outcome); cancelled ones are dropped.
    fn take(q: &mut Queue) -> Vec<Job> {
        let mut jobs = Vec::new();
        while jobs.len() < MAX_BATCH {
            let Some(job) = q.jobs.pop_front() else { break };
            if job.state.compare_exchange(QUEUED, TAKEN, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
                jobs.push(job);
            }
        }
        jobs
    }

    /// Writes `jobs` (one statement per kind) and answers each sender.
    fn write(&self, conn: &mut Option<Conn>, jobs: Vec<Job>) {
        let (private, broadcast): (Vec<Job>, Vec<Job>) =
            jobs.into_iter().partition(|j| matches!(j.message, Message::Private { .. }));
        for jobs in [private, broadcast] {
            if !jobs.is_empty() {
                write(conn, &self.pg, jobs);
            }
        }
    }
}

/// The message writer. Dropping it stops and joins its thread.
pub struct Writer {
    shared: Arc<Shared>,
    /// Tells the writer thread to take over the queue.
    wake: Option<Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Writer {
    /// Starts the writer thread; the first message connects.
    pub fn start(pg: PgTarget) -> Writer {
        let shared = Arc::new(Shared { pg, queue: Mutex::new(Queue::default()) });
        let (wake, woken) = bounded(1);
        let for_thread = Arc::clone(&shared);
        let thread = thread::Builder::new()
            .name("db-writer".into())
            .spawn(move || run(&for_thread, &woken))
            .expect("spawn the message writer");
        Writer { shared, wake: Some(wake), thread: Some(thread) }
    }

    /// Stores `message`; `Ok(its id)` once it is committed. An error means
    /// it was not stored, except [`StoreError::OutcomeUnknown`].
    pub fn save(&self, message: Message) -> StoreResult<i64> {
        let (reply, outcome) = bounded(1);
        let state = Arc::new(AtomicU8::new(QUEUED));
        {
            let mut q = self.shared.lock();
            if q.jobs.len() >= QUEUE_CAPACITY {
                return Err(StoreError::WriterStopped);
            }
            q.jobs.push_back(Job { message, reply, state: Arc::clone(&state) });
            if !q.leading {
                q.leading = true;
                drop(q);
                return self.lead(&outcome);
            }
        }
        match outcome.recv_timeout(QUEUE_WAIT) {
            Ok(result) => result,
            // Still queued: cancel it, it will never be written.
            Err(_) if state.compare_exchange(QUEUED, CANCELLED, Ordering::SeqCst, Ordering::SeqCst).is_ok() => {
                Err(StoreError::WriterStopped)
            }
            // Taken: the answer comes (statements have timeouts).
            Err(_) => outcome.recv().unwrap_or(Err(StoreError::OutcomeUnknown)),
        }
    }

    /// No write was in progress: this sender writes what is queued (its
    /// own message first) until its own message is answered, then leaves
    /// whatever queued meanwhile to the writer thread.
    fn lead(&self, own: &Receiver<StoreResult<i64>>) -> StoreResult<i64> {
        // Hands over even if writing panics (the connection is then lost).
        let _hand_over = HandOver(self);
        loop {
            let (jobs, mut conn) = {
                let mut q = self.shared.lock();
                (Shared::take(&mut q), q.conn.take())
            };
            self.shared.write(&mut conn, jobs);
            self.shared.lock().conn = conn;
            if let Ok(result) = own.try_recv() {
                return result;
            }
        }
    }
}

/// Ends a sender's write: nobody is writing any more, or, if senders are
/// waiting, the writer thread takes over.
struct HandOver<'a>(&'a Writer);

impl Drop for HandOver<'_> {
    fn drop(&mut self) {
        let mut q = self.0.shared.lock();
        match &self.0.wake {
            Some(wake) if !q.jobs.is_empty() => {
                let _ = wake.try_send(());
            }
            _ => q.leading = false,
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.wake = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The writer thread: when a sender hands the queue over, writes groups
/// until it is empty.
fn run(shared: &Shared, woken: &Receiver<()>) {
    while woken.recv().is_ok() {
        loop {
            let (jobs, mut conn) = {
                let mut q = shared.lock();
                let jobs = Shared::take(&mut q);
                if jobs.is_empty() {
                    q.leading = false;
                    break;
                }
                (jobs, q.conn.take())
            };
            shared.write(&mut conn, jobs);
            shared.lock().conn = conn;
        }
    }
}

/// Runs `f` on a thread with a full stack (connecting and resolving go
/// deeper than a connection thread's stack allows).
fn with_full_stack<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    thread::scope(|s| {
        thread::Builder::new()
            .name("db-writer-helper".into())
            .stack_size(HELPER_STACK)
            .spawn_scoped(s, f)
            .expect("spawn a writer helper")
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Writes one kind's jobs and answers each sender.
fn write(slot: &mut Option<Conn>, pg: &PgTarget, jobs: Vec<Job>) {
    if slot.as_mut().is_some_and(|c| !c.usable()) {
        *slot = None;
    }
    if slot.is_none() {
        match with_full_stack(|| Conn::open(pg)) {
            Ok(c) => *slot = Some(c),
            Err(e) => {
                log::warn!("message writer cannot connect to PostgreSQL: {e}");
                return fail_all(&jobs, || clone_error(&e));
            }
        }
    }
    let conn = slot.as_mut().expect("connected above");
    match conn.insert(&jobs) {
        Ok(ids) => answer_ids(&jobs, &ids),
        Err(InsertError::InDoubt(doubt)) => {
            log::warn!("message writer lost PostgreSQL with {} messages in flight: {}", jobs.len(), doubt.error);
            *slot = None;
            match with_full_stack(|| resolve(pg, &doubt, &jobs)) {
                Ok(ids) => answer_ids(&jobs, &ids),
                Err(e) => fail_all(&jobs, || e.again()),
            }
        }
        Err(InsertError::NotStored(e)) if conn.client.is_closed() => {
            log::warn!("message writer lost PostgreSQL with {} messages (not committed): {e}", jobs.len());
            *slot = None;
            fail_all(&jobs, || clone_error(&e));
        }
        Err(InsertError::NotStored(e)) if jobs.len() > 1 && !is_timeout(&e) => {
            // One bad row fails the group: write them one by one.
            log::info!("a group of {} messages failed ({e}); writing them one by one", jobs.len());
            let mut rest = jobs.into_iter();
            while let Some(job) = rest.next() {
                let one = match conn.insert(std::slice::from_ref(&job)) {
                    Ok(ids) => Ok(ids[0]),
                    Err(InsertError::NotStored(e)) => Err(StoreError::Query(e)),
                    Err(InsertError::InDoubt(doubt)) => {
                        *slot = None;
                        let one = std::slice::from_ref(&job);
                        job.answer(with_full_stack(|| resolve(pg, &doubt, one)).map(|ids| ids[0]));
                        // The rest were never sent: written on a new
                        // connection, each answered as PostgreSQL says.
                        let rest: Vec<Job> = rest.collect();
                        if !rest.is_empty() {
                            write(slot, pg, rest);
                        }
                        return;
                    }
                };
                job.answer(one);
            }
        }
        Err(InsertError::NotStored(e)) => fail_all(&jobs, || clone_error(&e)),
    }
}

/// A lock or statement timeout: the whole group would wait again, row by
/// row, so it fails as a whole.
fn is_timeout(e: &postgres::Error) -> bool {
    matches!(e.code(), Some(c) if *c == postgres::error::SqlState::LOCK_NOT_AVAILABLE
        || *c == postgres::error::SqlState::QUERY_CANCELED)
}

fn answer_ids(jobs: &[Job], ids: &[i64]) {
    for (job, id) in jobs.iter().zip(ids) {
        job.answer(Ok(*id));
    }
}

fn fail_all(jobs: &[Job], error: impl Fn() -> StoreError) {
    for job in jobs {
        job.answer(Err(error()));
    }
}

/// `postgres::Error` is not `Clone`: each sender of a failed group gets
/// its text.
fn clone_error(e: &postgres::Error) -> StoreError {
    StoreError::Writer(e.to_string())
}
