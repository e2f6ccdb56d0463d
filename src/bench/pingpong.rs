//! `pingpong`: the loopback ceiling. P pairs of threads on 127.0.0.1 send
//! a message-sized line and wait for it to come back, M times each: the
//! round trips per second this machine's kernel and scheduler allow,
//! measured in the same run as the chat figures it is compared with.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Instant;

use super::stats::{rate, Summary};
use crate::config::BenchConfig;

/// As long as a typical chat line.
const LINE: &[u8] = b"MESSAGE:sender:a message of an ordinary length, like most typed lines\n";

pub fn run(cfg: &BenchConfig, summary: &mut Summary) {
    summary.add("pairs", cfg.pairs);
    summary.add("round_trips", cfg.messages);
    let start = Instant::now();
    let done: Vec<bool> = std::thread::scope(|s| {
        let pairs: Vec<_> = (0..cfg.pairs).map(|_| s.spawn(|| pair(cfg.messages).is_ok())).collect();
        pairs.into_iter().map(|h| h.join().unwrap_or(false)).collect()
    });
    let elapsed = start.elapsed();
    let ok = done.iter().filter(|d| **d).count();
    summary.add("round_trips_per_s", rate(ok * cfg.messages, elapsed));
    if ok < cfg.pairs {
        summary.fail(format!("{} of {} pairs failed", cfg.pairs - ok, cfg.pairs));
    }
}

/// One echo thread and one client doing `n` round trips.
fn pair(n: usize) -> std::io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let echo = std::thread::spawn(move || -> std::io::Result<()> {
        let (stream, _) = listener.accept()?;
        stream.set_nodelay(true)?;
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut out = stream;
        let mut line = Vec::new();
        while reader.read_until(b'\n', &mut line)? > 0 {
            out.write_all(&line)?;
            line.clear();
        }
        Ok(())
    });
    let stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    let mut line = Vec::new();
    for _ in 0..n {
        out.write_all(LINE)?;
        line.clear();
        reader.read_until(b'\n', &mut line)?;
    }
    drop(out);
    drop(reader);
    echo.join().map_err(|_| std::io::Error::other("echo thread panicked"))?
}
