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

use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender};
use postgres::{NoTls, Statement};

use super::{StoreError, StoreResult};

/// Most messages in one statement.
const MAX_BATCH: usize = 256;
/// Idle time after which the connection is checked before use.
const VALIDATE_AFTER_IDLE: Duration = Duration::from_secs(1);
/// Longest a sender waits for its commit.
const COMMIT_WAIT: Duration = Duration::from_secs(30);

const INSERT_PRIVATE: &str = "\
    WITH m AS ( \
        INSERT INTO messages (conversation_id, sender_id, sender_username, message_text) \
        SELECT * FROM unnest($1::int4[], $2::int4[], $3::text[], $4::text[]) \
        RETURNING conversation_id) \
    UPDATE conversations SET last_message_at = CURRENT_TIMESTAMP \
    WHERE conversation_id IN (SELECT conversation_id FROM m)";

const INSERT_BROADCAST: &str = "\
    INSERT INTO broadcast_messages (sender_id, sender_username, message_text) \
    SELECT * FROM unnest($1::int4[], $2::text[], $3::text[])";

/// A message to store.
#[derive(Debug, Clone)]
pub enum Message {
    Private { conversation_id: i32, sender_id: i32, sender: String, text: String },
    Broadcast { sender_id: i32, sender: String, text: String },
}

struct Job {
    message: Message,
    reply: Sender<StoreResult<()>>,
}

/// The writer thread and the way to it. Dropping it stops and joins it.
pub struct Writer {
    jobs: Option<Sender<Job>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Writer {
    /// Starts the thread; it connects on first use.
    pub fn start(pg: postgres::Config) -> Writer {
        let (jobs, rx) = crossbeam_channel::unbounded();
        let thread = thread::Builder::new()
            .name("db-writer".into())
            .spawn(move || run(&pg, &rx))
            .expect("spawn the message writer");
        Writer { jobs: Some(jobs), thread: Some(thread) }
    }

    /// Stores `message`; `Ok` once it is committed.
    pub fn save(&self, message: Message) -> StoreResult<()> {
        let (reply, done) = bounded(1);
        let jobs = self.jobs.as_ref().ok_or(StoreError::WriterStopped)?;
        jobs.send(Job { message, reply }).map_err(|_| StoreError::WriterStopped)?;
        done.recv_timeout(COMMIT_WAIT).map_err(|_| StoreError::WriterStopped)?
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

    /// One statement for `jobs`, all of one kind.
    fn insert(&mut self, jobs: &[Job]) -> Result<u64, postgres::Error> {
        self.last_used = Instant::now();
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
                self.client.execute(&self.private, &[&conv, &ids, &names, &texts])
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
                self.client.execute(&self.broadcast, &[&ids, &names, &texts])
            }
        }
    }
}

fn run(pg: &postgres::Config, rx: &Receiver<Job>) {
    let mut conn: Option<Conn> = None;
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        batch.extend(rx.try_iter().take(MAX_BATCH - 1));
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
                return answer_all(&jobs, || Err(clone_error(&e)));
            }
        }
    }
    let conn = slot.as_mut().expect("connected above");
    match conn.insert(&jobs) {
        Ok(_) => answer_all(&jobs, || Ok(())),
        Err(e) if conn.client.is_closed() => {
            log::warn!("message writer lost PostgreSQL with {} messages in flight: {e}", jobs.len());
            *slot = None;
            answer_all(&jobs, || Err(clone_error(&e)));
        }
        Err(e) if jobs.len() > 1 => {
            // One bad row fails the group: write them one by one.
            log::info!("a group of {} messages failed ({e}); writing them one by one", jobs.len());
            for job in &jobs {
                let _ = job.reply.send(conn.insert(std::slice::from_ref(job)).map(|_| ()).map_err(StoreError::Query));
            }
        }
        Err(e) => answer_all(&jobs, || Err(clone_error(&e))),
    }
}

fn answer_all(jobs: &[Job], result: impl Fn() -> StoreResult<()>) {
    for job in jobs {
        let _ = job.reply.send(result());
    }
}

/// `postgres::Error` is not `Clone`: each sender of a failed group gets
/// its text.
fn clone_error(e: &postgres::Error) -> StoreError {
    StoreError::Writer(e.to_string())
}
