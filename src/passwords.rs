//! Password hashing: Argon2id PHC strings for new passwords (OWASP
//! parameters m=19 MiB, t=2, p=1), constant-time checks of the 64-hex
//! SHA-256 hashes a Python chatp database holds (upgraded to Argon2id at the
//! first successful login), all on a fixed pool of worker threads, each
//! with its own 19 MiB Argon2 work area allocated once: a burst of logins
//! takes no more than `workers` x 19 MiB, and no login pays for mapping
//! and zeroing fresh memory.

use std::thread;
use std::time::{Duration, Instant};

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use crossbeam_channel::{bounded, Receiver, Sender};
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// OWASP's first recommended Argon2id setting: 19 MiB, 2 passes, 1 lane.
const MEMORY_KIB: u32 = 19 * 1024;
const PASSES: u32 = 2;
const LANES: u32 = 1;

/// Jobs that may wait for a worker; senders block beyond that.
const QUEUE_PER_WORKER: usize = 64;

fn params() -> Params {
    Params::new(MEMORY_KIB, PASSES, LANES, None).expect("valid Argon2 parameters")
}

/// The result of checking a password against a stored hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Invalid,
    /// Not checked: the job waited in the queue beyond its deadline.
    Busy,
    /// Valid; `Some` carries an Argon2id hash to store in place of a legacy one.
    Valid {
        upgrade: Option<String>,
    },
}

fn is_legacy_sha256(stored: &str) -> bool {
    stored.len() == 64 && stored.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Hashes and checks passwords in memory it keeps: Argon2's 19 MiB work
/// area is allocated once per worker, not once per login.
pub struct Hasher {
    blocks: Vec<Block>,
}

impl Default for Hasher {
    fn default() -> Self {
        Hasher { blocks: vec![Block::default(); params().block_count()] }
    }
}

impl Hasher {
    /// A new Argon2id PHC string for `password`, with a random salt.
    pub fn hash(&mut self, password: &str) -> String {
        let salt = SaltString::generate(&mut OsRng);
        let mut salt_buf = [0u8; 64];
        let salt_bytes = salt.as_salt().decode_b64(&mut salt_buf).expect("a generated salt decodes");
        let params = params();
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let output = Output::init_with(Params::DEFAULT_OUTPUT_LEN, |out| {
            argon2
                .hash_password_into_with_memory(password.as_bytes(), salt_bytes, out, &mut self.blocks)
                .map_err(|_| argon2::password_hash::Error::Crypto)
        })
        .expect("Argon2id hashing with valid parameters");
        PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&params).expect("valid parameters"),
            salt: Some(salt.as_salt()),
            hash: Some(output),
        }
        .to_string()
    }

    /// Checks `password` against a stored Argon2 PHC string or legacy
    /// SHA-256 hex digest (which is then upgraded).
    pub fn verify(&mut self, password: &str, stored: &str) -> Verdict {
        if is_legacy_sha256(stored) {
            let Ok(expected) = hex::decode(stored) else { return Verdict::Invalid };
            let actual = Sha256::digest(password.as_bytes());
            // Either way one Argon2id computation: a wrong password for a
            // legacy account costs what it costs for any other.
            let argon2 = self.hash(password);
            if bool::from(actual.as_slice().ct_eq(&expected)) {
                return Verdict::Valid { upgrade: Some(argon2) };
            }
            return Verdict::Invalid;
        }
        match self.argon2_matches(password, stored) {
            Some(true) => Verdict::Valid { upgrade: None },
            _ => Verdict::Invalid,
        }
    }

    /// Recomputes a PHC string's hash (in this worker's memory when its
    /// parameters fit) and compares in constant time. None: not Argon2.
    fn argon2_matches(&mut self, password: &str, stored: &str) -> Option<bool> {
        let parsed = PasswordHash::new(stored).ok()?;
        let algorithm = Algorithm::try_from(parsed.algorithm).ok()?;
        let version = parsed.version.map_or(Ok(Version::default()), Version::try_from).ok()?;
        let params = Params::try_from(&parsed).ok()?;
        let (salt, expected) = (parsed.salt?, parsed.hash?);
        let mut salt_buf = [0u8; 64];
        let salt_bytes = salt.decode_b64(&mut salt_buf).ok()?;
        let count = params.block_count();
        let mut own;
        let blocks: &mut [Block] = if count <= self.blocks.len() {
            &mut self.blocks[..count]
        } else {
            own = vec![Block::default(); count];
            &mut own
        };
        let argon2 = Argon2::new(algorithm, version, params);
        let actual = Output::init_with(expected.len(), |out| {
            argon2
                .hash_password_into_with_memory(password.as_bytes(), salt_bytes, out, &mut *blocks)
                .map_err(|_| argon2::password_hash::Error::Crypto)
        })
        .ok()?;
        Some(actual == expected)
    }
}

/// Hashes a new password (on the calling thread, with its own memory).
pub fn hash_password(password: &str) -> String {
    Hasher::default().hash(password)
}

/// Checks a password (on the calling thread, with its own memory).
pub fn verify_password(password: &str, stored: &str) -> Verdict {
    Hasher::default().verify(password, stored)
}

enum Work {
    Hash { password: String, reply: Sender<Option<String>> },
    Verify { password: String, stored: String, reply: Sender<Verdict> },
}

struct Job {
    work: Work,
    queued: Instant,
}

/// A fixed pool of hashing threads. Cloning shares the pool.
#[derive(Clone)]
pub struct PasswordHasher {
    jobs: Sender<Job>,
    /// Verified when a user does not exist, so a login for an unknown name
    /// costs the same time as one for a known name.
    dummy_hash: std::sync::Arc<String>,
    /// A job that waited longer than this is answered busy, not served late.
    deadline: Duration,
}

impl PasswordHasher {
    /// Starts `workers` threads; they end when every handle is dropped.
    /// Jobs that wait longer than `deadline` for a worker are refused.
    pub fn start(workers: usize, deadline: Duration) -> Self {
        let workers = workers.max(1);
        let (jobs, rx) = bounded::<Job>(workers * QUEUE_PER_WORKER);
        for i in 0..workers {
            let rx: Receiver<Job> = rx.clone();
            thread::Builder::new()
                .name(format!("hasher-{i}"))
                .spawn(move || {
                    let mut hasher = Hasher::default();
                    for job in rx {
                        crate::metrics::METRICS.hash_queue.dec();
                        let late = job.queued.elapsed() > deadline;
                        match job.work {
                            Work::Hash { password, reply } => {
                                let _ = reply.send((!late).then(|| hasher.hash(&password)));
                            }
                            Work::Verify { password, stored, reply } => {
                                let _ =
                                    reply.send(if late { Verdict::Busy } else { hasher.verify(&password, &stored) });
                            }
                        }
                    }
                })
                .expect("spawn hasher thread");
        }
        let dummy_hash = std::sync::Arc::new(hash_password("chatp-dummy-password"));
        PasswordHasher { jobs, dummy_hash, deadline }
    }

    /// Queues `work` unless the queue stays full until the deadline.
    fn submit(&self, work: Work) -> bool {
        let depth = &crate::metrics::METRICS.hash_queue;
        depth.inc();
        let queued = self.jobs.send_timeout(Job { work, queued: Instant::now() }, self.deadline).is_ok();
        if !queued {
            depth.dec();
        }
        queued
    }

    /// A new hash; `None` when the pool is too busy.
    pub fn hash(&self, password: &str) -> Option<String> {
        let (reply, rx) = bounded(1);
        if !self.submit(Work::Hash { password: password.to_string(), reply }) {
            return None;
        }
        rx.recv().ok().flatten()
    }

    /// Checks `password` against `stored`, or against a dummy hash when the
    /// user does not exist (`None`), which is then always `Invalid`.
    pub fn verify(&self, password: &str, stored: Option<&str>) -> Verdict {
        let (reply, rx) = bounded(1);
        let target = stored.unwrap_or(&self.dummy_hash).to_string();
        if !self.submit(Work::Verify { password: password.to_string(), stored: target, reply }) {
            return Verdict::Busy;
        }
        match rx.recv() {
            Ok(Verdict::Valid { .. }) if stored.is_none() => Verdict::Invalid,
            Ok(v) => v,
            Err(_) => Verdict::Busy,
        }
    }
}

/// `len` characters drawn uniformly from `alphabet` (ASCII) with the OS's
/// generator: generated passwords (chat_admin) and invite codes. Bytes at
/// or above the largest multiple of the alphabet's size are drawn again,
/// so no symbol is likelier than another.
pub fn random_text(alphabet: &[u8], len: usize) -> String {
    let limit = 256 - 256 % alphabet.len();
    let mut out = String::with_capacity(len);
    let mut bytes = [0u8; 32];
    while out.len() < len {
        OsRng.fill_bytes(&mut bytes);
        for b in bytes.iter().map(|b| *b as usize).filter(|b| *b < limit) {
            if out.len() == len {
                break;
            }
            out.push(alphabet[b % alphabet.len()] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2id_round_trip_with_owasp_parameters() {
        let h = hash_password("s3cret");
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert_eq!(verify_password("s3cret", &h), Verdict::Valid { upgrade: None });
        assert_eq!(verify_password("wrong", &h), Verdict::Invalid);
    }

    #[test]
    fn interoperates_with_the_argon2_crates_own_phc_strings() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let salt = SaltString::generate(&mut OsRng);
        // Other parameters than ours (a hash from another setting) still verify.
        let small = Params::new(4096, 3, 1, None).unwrap();
        let theirs = Argon2::new(Algorithm::Argon2id, Version::V0x13, small).hash_password(b"pw", &salt).unwrap();
        assert_eq!(verify_password("pw", &theirs.to_string()), Verdict::Valid { upgrade: None });
        assert_eq!(verify_password("pw!", &theirs.to_string()), Verdict::Invalid);
        let ours = hash_password("pw");
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default().verify_password(b"pw", &parsed).is_ok());
    }

    #[test]
    fn legacy_sha256_is_accepted_once_and_upgraded() {
        let legacy = hex::encode(Sha256::digest(b"pass123"));
        match verify_password("pass123", &legacy) {
            Verdict::Valid { upgrade: Some(new) } => {
                assert_eq!(verify_password("pass123", &new), Verdict::Valid { upgrade: None })
            }
            other => panic!("expected an upgrade, got {other:?}"),
        }
        assert_eq!(verify_password("pass124", &legacy), Verdict::Invalid);
        assert_eq!(verify_password("x", "not a hash"), Verdict::Invalid);
    }

    #[test]
    fn pool_answers_and_unknown_users_never_pass() {
        let pool = PasswordHasher::start(2, Duration::from_secs(30));
        let h = pool.hash("pw").unwrap();
        assert_eq!(pool.verify("pw", Some(&h)), Verdict::Valid { upgrade: None });
        assert_eq!(pool.verify("chatp-dummy-password", None), Verdict::Invalid);
    }

    #[test]
    fn jobs_that_waited_past_the_deadline_are_refused_as_busy() {
        let pool = PasswordHasher::start(1, Duration::from_millis(200));
        let stored = hash_password("pw");
        // Forty at once on one worker (about 15 ms each): the first are
        // served, the last would wait far beyond 200 ms and are refused.
        let verdicts: Vec<Verdict> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..40).map(|_| s.spawn(|| pool.verify("pw", Some(&stored)))).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(verdicts.contains(&Verdict::Valid { upgrade: None }), "{verdicts:?}");
        assert!(verdicts.contains(&Verdict::Busy), "{verdicts:?}");
    }

    #[test]
    fn a_wrong_password_costs_the_same_for_legacy_and_argon2_accounts() {
        let mut h = Hasher::default();
        let (legacy, argon2) = (hex::encode(Sha256::digest(b"right")), hash_password("right"));
        let time = |h: &mut Hasher, stored: &str| {
            let t = Instant::now();
            for _ in 0..5 {
                assert_eq!(h.verify("wrong", stored), Verdict::Invalid);
            }
            t.elapsed().as_secs_f64()
        };
        let (l, a) = (time(&mut h, &legacy), time(&mut h, &argon2));
        // Without padding the legacy check is ~10,000x cheaper.
        assert!(l > a / 3.0 && l < a * 3.0, "legacy {l:.3}s vs argon2 {a:.3}s");
    }
}
