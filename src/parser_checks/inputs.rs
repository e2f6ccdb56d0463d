//! Inputs for the property tests: the fuzz corpus's real protocol lines
//! (`fuzz/corpus/<target>/`), each truncated at every byte, then random
//! and mutated ones from a fixed-seed xorshift generator (the same inputs
//! every run, so a failure reproduces).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

/// xorshift64*: small, fast, deterministic; not for anything secret.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// Bytes that parsers split on, end lines with, or mishandle: separators,
/// terminators, NUL, multi-byte and invalid UTF-8, invisible and control
/// characters, numbers at and past the edges of i32, i64 and u32.
const INTERESTING: &[&[u8]] = &[
    b":",
    b"|",
    b"\n",
    b"\r",
    b"\r\n",
    b"\0",
    b" ",
    b"\t",
    b"#",
    b"#id:",
    b"\x1b[2J",
    b"\x7f",
    "é".as_bytes(),
    "👑".as_bytes(),
    "漢".as_bytes(),
    "\u{200b}".as_bytes(),
    "\u{202e}".as_bytes(),
    "\u{9b}".as_bytes(),
    "ａ".as_bytes(),
    "İ".as_bytes(),
    b"\xff",
    b"\xc3",
    b"\xe2\x82",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
    b"\xc0\xaf",
    b"0",
    b"-1",
    b"+7",
    b"00",
    b"2147483647",
    b"2147483648",
    b"-2147483649",
    b"4294967296",
    b"9223372036854775807",
    b"9223372036854775808",
    b"-9223372036854775809",
    b"340282366920938463463374607431768211456",
];

/// The seeds of a fuzz target: every file of `fuzz/corpus/<target>/`.
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir: PathBuf = [env!("CARGO_MANIFEST_DIR"), "fuzz", "corpus", target].iter().collect();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    files.sort();
    let seeds: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).expect("a corpus file")).collect();
    assert!(seeds.len() >= 5, "{}: only {} seeds", dir.display(), seeds.len());
    seeds
}

/// One mutation of `input`, sometimes drawing on `others`.
fn mutate_once(rng: &mut Rng, input: &mut Vec<u8>, others: &[Vec<u8>]) {
    let len = input.len();
    match rng.below(10) {
        // Flip a bit, or set a byte to anything.
        0 if len > 0 => {
            let i = rng.below(len);
            input[i] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let i = rng.below(len);
            input[i] = rng.next_u64() as u8;
        }
        // Truncate, or cut a range out.
        2 => input.truncate(rng.below(len + 1)),
        3 if len > 0 => {
            let from = rng.below(len);
            let to = from + rng.below(len - from) + 1;
            input.drain(from..to);
        }
        // Insert an interesting piece, once or many times.
        4 | 5 => {
            let piece = INTERESTING[rng.below(INTERESTING.len())];
            let times = if rng.below(8) == 0 { rng.below(40) + 2 } else { 1 };
            let at = rng.below(len + 1);
            let insert: Vec<u8> = piece.iter().copied().cycle().take(piece.len() * times).collect();
            input.splice(at..at, insert);
        }
        // Repeat a range of itself.
        6 if len > 0 => {
            let from = rng.below(len);
            let to = from + rng.below((len - from).min(64)) + 1;
            let piece = input[from..to].to_vec();
            let at = rng.below(len + 1);
            for _ in 0..rng.below(4) + 1 {
                input.splice(at..at, piece.iter().copied());
            }
        }
        // Splice in a piece of another seed.
        7 if !others.is_empty() => {
            let other = &others[rng.below(others.len())];
            let from = rng.below(other.len() + 1);
            let to = from + rng.below(other.len() - from + 1);
            let at = rng.below(len + 1);
            input.splice(at..at, other[from..to].iter().copied());
        }
        // Around the 4096-byte line limit, or well past it
        // (Rare: the seeds' truncations already give every length up to
        // 4,100 bytes, and long inputs cost the most in a debug build.)
        8 if rng.below(64) == 0 => {
            let target = match rng.below(3) {
                0 => crate::protocol::MAX_LINE_BYTES - 2 + rng.below(5),
                1 => crate::protocol::MAX_LINE_BYTES * 2 + rng.below(100),
                _ => rng.below(300),
            };
            let filler = if input.is_empty() { b"x".to_vec() } else { input.clone() };
            input.extend(filler.iter().copied().cycle().take(target.saturating_sub(len)));
        }
        // A byte of its own, anywhere.
        _ => {
            let at = rng.below(len + 1);
            input.insert(at, rng.next_u64() as u8);
        }
    }
}

/// A random input: mostly one to four mutations of a seed, sometimes
/// random bytes.
fn random_input(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    if rng.below(10) == 0 {
        let len = rng.below(80);
        return (0..len).map(|_| rng.next_u64() as u8).collect();
    }
    let mut input = seeds[rng.below(seeds.len())].clone();
    for _ in 0..rng.below(4) + 1 {
        mutate_once(rng, &mut input, seeds);
    }
    input
}

/// Runs `check` on every seed of `target`, every truncation of each, and
/// then `mutated` random and mutated inputs; a failure names its input.
pub fn for_each_input(target: &str, mutated: usize, check: impl Fn(&[u8])) {
    let seeds = seeds(target);
    let run = |input: &[u8]| {
        if catch_unwind(AssertUnwindSafe(|| check(input))).is_err() {
            panic!("{target}: failed on {:?} ({} bytes)", String::from_utf8_lossy(input), input.len());
        }
    };
    for seed in &seeds {
        for end in 0..=seed.len() {
            run(&seed[..end]);
        }
    }
    // A fixed seed per target: the same inputs every run.
    let mut rng = Rng::new(target.bytes().fold(0x9e37_79b9_7f4a_7c15, |h, b| (h ^ u64::from(b)).wrapping_mul(31)));
    for _ in 0..mutated {
        run(&random_input(&mut rng, &seeds));
    }
}
