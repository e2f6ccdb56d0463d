//! The message writer: private and broadcast messages are stored by one
//! thread that owns its PostgreSQL connection and groups the messages that
//! arrive while it works into one statement (one round trip and one commit
//! for the whole group, prepared once per connection). Each sender waits
//! for its own message's commit, so `SENT:` still follows a committed row;
//! under load, ten senders cost PostgreSQL one commit instead of ten.
//!
//! If a group fails for one bad row, its messages are written one by one,
//! so only that row's sender sees the error. A connection idle for more
//! than [`VALIDATE_AFTER_IDLE`] is checked before use, and reopened if
//! PostgreSQL restarted meanwhile.
//!
//! A sender is never told "not stored" for a row that may still commit:
//! a job is cancelled only while it waits in the queue; once the writer has
//! taken it, the sender waits for the outcome. Each group is one explicit
//! transaction whose id is read first, so when the connection dies during
//! `COMMIT` the writer asks PostgreSQL (`txid_status`) whether it committed
//! instead of guessing.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender};
use postgres::{NoTls, SimpleQueryMessage, Statement};

use super::{StoreError, StoreResult};

/// Most messages in one statement.
const MAX_BATCH: usize = 256;
/// Idle time after which the connection is checked before use.
const VALIDATE_AFTER_IDLE: Duration = Duration::from_secs(1);
/// Longest a message waits in the queue before its sender gives up on it
/// (it is then cancelled, never written).
const QUEUE_WAIT: Duration = Duration::from_secs(10);
/// Messages that may wait for the writer; beyond that senders are refused.
const QUEUE_CAPACITY: usize = 10_000;
/// How long the writer keeps asking whether a transaction whose `COMMIT`
/// got no answer committed, before it says the outcome is unknown.
const RESOLVE_FOR: Duration = Duration::from_secs(60);

/// A job's life: waiting, taken by the writer, or given up by its sender.
const QUEUED: u8 = 0;
const TAKEN: u8 = 1;
const CANCELLED: u8 = 2;

const INSERT_PRIVATE: &str = "\
    WITH m AS ( \
        INSERT INTO messages (conversation_id, sender_id, sender_username, message_text) \
        SELECT * FROM unnest($1::int4[], $2::int4[], $3::text[], $4::text[]) \
        RETURNING message_id, conversation_id), \
    u AS ( \
        UPDATE conversations SET last_message_at = CURRENT_TIMESTAMP \
        WHERE conversation_id IN (SELECT conversation_id FROM m)) \
    SELECT message_id::int8 FROM m";

const INSERT_BROADCAST: &str = "\
    INSERT INTO broadcast_messages (sender_id, sender_username, message_text) \
    SELECT * FROM unnest($1::int4[], $2::text[], $3::text[]) \
    RETURNING broadcast_id::int8";

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

/// The writer thread and the way to it. Dropping it stops and joins it.
pub struct Writer {
    jobs: Option<Sender<Job>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Writer {
    /// Starts the thread; it connects on first use.
    pub fn start(pg: postgres::Config) -> Writer {
        let (jobs, rx) = crossbeam_channel::bounded(QUEUE_CAPACITY);
        let thread = thread::Builder::new()
            .name("db-writer".into())
            .spawn(move || run(&pg, &rx))
            .expect("spawn the message writer");
        Writer { jobs: Some(jobs), thread: Some(thread) }
    }

    /// Stores `message`; `Ok(its id)` once it is committed. An error means
    /// it was not stored, except [`StoreError::OutcomeUnknown`].
    pub fn save(&self, message: Message) -> StoreResult<i64> {
        let (reply, done) = bounded(1);
        let state = Arc::new(AtomicU8::new(QUEUED));
        let jobs = self.jobs.as_ref().ok_or(StoreError::WriterStopped)?;
        jobs.send_timeout(Job { message, reply, state: Arc::clone(&state) }, QUEUE_WAIT)
            .map_err(|_| StoreError::WriterStopped)?;
        match done.recv_timeout(QUEUE_WAIT) {
            Ok(result) => result,
            // Still queued: cancel it, it will never be written.
            Err(_) if state.compare_exchange(QUEUED, CANCELLED, Ordering::SeqCst, Ordering::SeqCst).is_ok() => {
                Err(StoreError::WriterStopped)
            }
            // Taken: the writer answers (its statements have timeouts).
            Err(_) => done.recv().unwrap_or(Err(StoreError::OutcomeUnknown)),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The writer's connection and its prepared statements.
struct Conn {
    client: postgres::Client,
    private: Statement,
    broadcast: Statement,
    last_used: Instant,
}

/// Why a group was not (known to be) committed.
enum InsertError {
    /// Not committed: a statement failed or the connection died before
    /// `COMMIT` was sent.
    NotStored(postgres::Error),
    /// The connection died during `COMMIT`: transaction `txid` may have
    /// committed, with these row ids.
    InDoubt { txid: i64, ids: Vec<i64>, error: postgres::Error },
}

impl Conn {
    fn open(pg: &postgres::Config) -> Result<Conn, postgres::Error> {
        let mut client = pg.connect(NoTls)?;
        let private = client.prepare(INSERT_PRIVATE)?;
        let broadcast = client.prepare(INSERT_BROADCAST)?;
        Ok(Conn { client, private, broadcast, last_used: Instant::now() })
    }

    /// Still connected: assumed within [`VALIDATE_AFTER_IDLE`] of its last
    /// use, checked with an empty query after that.
    fn usable(&mut self) -> bool {
        !self.client.is_closed()
            && (self.last_used.elapsed() < VALIDATE_AFTER_IDLE || self.client.simple_query("").is_ok())
    }

    /// One transaction for `jobs`, all of one kind: `BEGIN` and its id in
    /// one round trip, the prepared insert, `COMMIT`.
    /// Returns the new rows' ids, in the order of `jobs`.
    fn insert(&mut self, jobs: &[Job]) -> Result<Vec<i64>, InsertError> {
        self.last_used = Instant::now();
        let txid = self.begin().map_err(InsertError::NotStored)?;
        let ids = match self.insert_rows(jobs) {
            Ok(ids) => ids,
            Err(e) => {
                if !self.client.is_closed() {
                    let _ = self.client.batch_execute("ROLLBACK");
                }
                return Err(InsertError::NotStored(e));
            }
        };
        match self.client.batch_execute("COMMIT") {
            Ok(()) => Ok(ids),
            Err(error) if self.client.is_closed() => Err(InsertError::InDoubt { txid, ids, error }),
            Err(e) => Err(InsertError::NotStored(e)),
        }
    }

    fn begin(&mut self) -> Result<i64, postgres::Error> {
        let msgs = self.client.simple_query("BEGIN; SELECT txid_current()")?;
        let txid = msgs.iter().find_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).and_then(|v| v.parse().ok()),
            _ => None,
        });
        Ok(txid.expect("txid_current() returns a number"))
    }

    /// The ids come from one sequence, taken in the order of the unnested
    /// arrays: sorted, they line up with `jobs`.
    fn insert_rows(&mut self, jobs: &[Job]) -> Result<Vec<i64>, postgres::Error> {
        let rows = self.insert_statement(jobs)?;
        let mut ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
        ids.sort_unstable();
        Ok(ids)
    }

    fn insert_statement(&mut self, jobs: &[Job]) -> Result<Vec<postgres::Row>, postgres::Error> {
        match jobs[0].message {
            Message::Private { .. } => {
                let (mut conv, mut ids, mut names, mut texts) = (vec![], vec![], vec![], vec![]);
                for j in jobs {
                    if let Message::Private { conversation_id, sender_id, sender, text } = &j.message {
                        conv.push(*conversation_id);
                        ids.push(*sender_id);
                        names.push(sender.as_str());
                        texts.push(text.as_str());
                    }
                }
                self.client.query(&self.private, &[&conv, &ids, &names, &texts])
            }
            Message::Broadcast { .. } => {
                let (mut ids, mut names, mut texts) = (vec![], vec![], vec![]);
                for j in jobs {
                    if let Message::Broadcast { sender_id, sender, text } = &j.message {
                        ids.push(*sender_id);
                        names.push(sender.as_str());
                        texts.push(text.as_str());
                    }
                }
                self.client.query(&self.broadcast, &[&ids, &names, &texts])
            }
        }
    }
}

fn run(pg: &postgres::Config, rx: &Receiver<Job>) {
    let mut conn: Option<Conn> = None;
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        batch.extend(rx.try_iter().take(MAX_BATCH - 1));
        // Taken now: from here on each sender waits for the outcome.
        batch.retain(|j| j.state.compare_exchange(QUEUED, TAKEN, Ordering::SeqCst, Ordering::SeqCst).is_ok());
        let (private, broadcast): (Vec<Job>, Vec<Job>) =
            batch.into_iter().partition(|j| matches!(j.message, Message::Private { .. }));
        for jobs in [private, broadcast] {
            if !jobs.is_empty() {
                write(&mut conn, pg, jobs);
            }
        }
    }
}

/// Writes one kind's jobs and answers each sender.
fn write(slot: &mut Option<Conn>, pg: &postgres::Config, jobs: Vec<Job>) {
    if slot.as_mut().is_some_and(|c| !c.usable()) {
        *slot = None;
    }
    if slot.is_none() {
        match Conn::open(pg) {
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
        Err(InsertError::InDoubt { txid, ids, error }) => {
            log::warn!("message writer lost PostgreSQL during COMMIT of {} messages: {error}", jobs.len());
            *slot = None;
            match resolve(pg, txid) {
                Ok(()) => answer_ids(&jobs, &ids),
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
            for job in &jobs {
                let one = match conn.insert(std::slice::from_ref(job)) {
                    Ok(ids) => Ok(ids[0]),
                    Err(InsertError::NotStored(e)) => Err(StoreError::Query(e)),
                    Err(InsertError::InDoubt { txid, ids, .. }) => {
                        *slot = None;
                        let _ = job.reply.send(resolve(pg, txid).map(|()| ids[0]));
                        return;
                    }
                };
                let _ = job.reply.send(one);
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

/// Whether transaction `txid` committed, asked on fresh connections until
/// PostgreSQL knows (its old backend may still be finishing), for up to
/// [`RESOLVE_FOR`]: `Ok` committed, `Err` aborted or still unknown.
fn resolve(pg: &postgres::Config, txid: i64) -> StoreResult<()> {
    let deadline = Instant::now() + RESOLVE_FOR;
    let mut wait = Duration::from_millis(100);
    loop {
        let status: Result<Option<String>, postgres::Error> = pg
            .connect(NoTls)
            .and_then(|mut c| c.query_one("SELECT txid_status($1)", &[&txid]).map(|r| r.get::<_, Option<String>>(0)));
        match status.as_ref().map(Option::as_deref) {
            Ok(Some("committed")) => {
                log::info!("transaction {txid} had committed: its messages are stored");
                return Ok(());
            }
            Ok(Some("aborted")) | Ok(None) => {
                log::info!("transaction {txid} did not commit: its messages are not stored");
                return Err(StoreError::Writer(format!("transaction {txid} aborted")));
            }
            _ if Instant::now() >= deadline => {
                log::error!("cannot tell whether transaction {txid} committed: {status:?}");
                return Err(StoreError::OutcomeUnknown);
            }
            _ => {
                thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_secs(2));
            }
        }
    }
}

fn answer_ids(jobs: &[Job], ids: &[i64]) {
    for (job, id) in jobs.iter().zip(ids) {
        let _ = job.reply.send(Ok(*id));
    }
}

fn fail_all(jobs: &[Job], error: impl Fn() -> StoreError) {
    for job in jobs {
        let _ = job.reply.send(Err(error()));
    }
}

/// `postgres::Error` is not `Clone`: each sender of a failed group gets
/// its text.
fn clone_error(e: &postgres::Error) -> StoreError {
    StoreError::Writer(e.to_string())
}
