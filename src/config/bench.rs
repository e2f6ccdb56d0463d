//! `chat_bench`'s configuration, from its arguments.

use std::time::Duration;

use super::ConfigError;

/// What `chat_bench` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// N users sign up, c at a time.
    Signup,
    /// N users (signed up first) log in, c at a time.
    Login,
    /// P sender/receiver pairs, M messages each.
    Dm,
    /// One sender, R receivers, M broadcasts.
    Broadcast,
    /// C logged-in connections held S seconds.
    Idle,
    /// N protocol-2 sessions on the first host, dropped, resumed on
    /// `--recv-hosts`, c at a time (what a drained pod's users cost the
    /// others).
    Resume,
    /// A failover drill's load: P pairs at `--rate` for `-s` seconds, every
    /// answer and delivery logged to `--events`, nothing fatal.
    Drill,
    /// Fills the database of `DB_*` as a big team's (`-n` users, 100,000;
    /// `--groups`, 10,000; `-m` messages, 10,000,000): no server needed.
    Seed,
    /// The loopback ceiling: P pairs of threads doing M round trips each,
    /// no server.
    Pingpong,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Signup => "signup",
            Scenario::Login => "login",
            Scenario::Dm => "dm",
            Scenario::Broadcast => "broadcast",
            Scenario::Idle => "idle",
            Scenario::Resume => "resume",
            Scenario::Drill => "drill",
            Scenario::Seed => "seed",
            Scenario::Pingpong => "pingpong",
        }
    }
}

/// Everything `chat_bench` needs for one run.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub scenario: Scenario,
    /// Servers to connect to (`--hosts a:p,b:p`, default 127.0.0.1:30080);
    /// connections go round-robin over them.
    pub hosts: Vec<String>,
    /// Servers of the dm receivers (`--recv-hosts`; default: `hosts`).
    pub recv_hosts: Vec<String>,
    /// Users of signup/login (`-n`, default 100).
    pub users: usize,
    /// Logins at once (`-c` for signup/login/dm/broadcast set-up, default 8);
    /// connections for idle (`-c`, default 1000).
    pub concurrency: usize,
    pub connections: usize,
    /// Sender/receiver pairs (`-p`, default 10).
    pub pairs: usize,
    /// Messages per sender (`-m`, default 2000 for dm, 200 for broadcast).
    pub messages: usize,
    /// Fixed total rate in messages per second (`--rate`); None: closed loop.
    pub rate: Option<f64>,
    /// Broadcast receivers (`-r`, default 50).
    pub receivers: usize,
    /// How long idle connections are held (`-s`, default 10 s).
    pub hold: Duration,
    /// The server process to read RSS, threads and CPU time from (`--pid`).
    pub server_pid: Option<u32>,
    /// The whole run's limit (`--timeout`, default 600 s).
    pub timeout: Duration,
    /// Prefix of the usernames this run creates (`--prefix`; default
    /// `b<pid>x`, unique per run).
    pub prefix: String,
    /// idle: log in as `chat_bench seed`'s users instead of signing up
    /// new ones (`--login seeded`).
    pub seeded_logins: bool,
    /// seed: groups to make (`--groups`, default 10,000).
    pub groups: usize,
    /// drill: where its events go (`--events FILE`).
    pub events: Option<std::path::PathBuf>,
}

pub const BENCH_USAGE: &str = "\
usage: chat_bench <signup|login|dm|broadcast|idle|resume|drill|seed|pingpong> [options]

Load for chat_server over the chatp protocol. Prints one line of key=value
figures and exits non-zero if any message or connection was lost.

  --hosts a:p,b:p    servers (default 127.0.0.1:30080), round-robin;
                     ws://a:p is a web port: lines in WebSocket frames
  --recv-hosts a:p   dm receivers' servers (default: --hosts): cross-pod runs;
                     resume: where the sessions resume (default: last host)
  -n N               signup/login/resume: users (100)
  -c C               signup/login/resume: at once (8); idle: connections (1000)
  -p P               dm, pingpong: sender/receiver pairs (10)
  -m M               dm: messages per sender (2000); broadcast: broadcasts (200);
                     pingpong: round trips per pair (2000); pingpong needs
                     no server: it measures this machine's loopback ceiling
  --rate R           dm: R messages/s in all, latency from the scheduled time
                     (default: closed loop, next message after SENT)
  -r R               broadcast: receivers (50)
  -s S               idle: seconds to hold the connections (10); drill: seconds
                     of load (P pairs at --rate, default 500/s)
  --events FILE      drill: every send, answer and delivery, with its time
  seed               fill the database of DB_* as a big team's (no server):
                     -n users (100000), --groups G (10000), -m messages
                     (10000000); Python-era tables, migrated by chat_server
  --pid PID          the server's pid: RSS, threads, CPU time from /proc
                     (resume: the pod of the last --hosts entry)
  --timeout S        give up after S seconds (600)
  --prefix P         usernames start with P (default b<pid>x)
  --login seeded     idle: log in as seed's users (u000001..., password pw)
                     instead of signing up new ones";

impl BenchConfig {
    pub fn from_args(args: &[String]) -> Result<Self, ConfigError> {
        let scenario = match args.first().map(String::as_str) {
            Some("signup") => Scenario::Signup,
            Some("login") => Scenario::Login,
            Some("dm") => Scenario::Dm,
            Some("broadcast") => Scenario::Broadcast,
            Some("idle") => Scenario::Idle,
            Some("resume") => Scenario::Resume,
            Some("drill") => Scenario::Drill,
            Some("seed") => Scenario::Seed,
            Some("pingpong") => Scenario::Pingpong,
            other => {
                return Err(ConfigError::new(
                    "scenario",
                    other.unwrap_or(""),
                    "signup, login, dm, broadcast, idle, resume, drill, seed or pingpong",
                ))
            }
        };
        let mut cfg = BenchConfig {
            scenario,
            hosts: vec!["127.0.0.1:30080".into()],
            recv_hosts: Vec::new(),
            users: if scenario == Scenario::Seed { 100_000 } else { 100 },
            concurrency: 8,
            connections: 1000,
            pairs: 10,
            messages: match scenario {
                Scenario::Broadcast => 200,
                Scenario::Seed => 10_000_000,
                _ => 2000,
            },
            rate: None,
            receivers: 50,
            hold: Duration::from_secs(10),
            server_pid: None,
            timeout: Duration::from_secs(600),
            prefix: format!("b{}x", std::process::id()),
            seeded_logins: false,
            events: None,
            groups: 10_000,
        };
        let mut rest = args[1..].iter();
        while let Some(flag) = rest.next() {
            let value = rest.next().ok_or_else(|| ConfigError::new(flag, "", "a value after it"))?;
            let count = || -> Result<usize, ConfigError> {
                match value.parse::<usize>() {
                    Ok(n) if n > 0 => Ok(n),
                    _ => Err(ConfigError::new(flag, value, "a whole number greater than 0")),
                }
            };
            match flag.as_str() {
                "--hosts" => cfg.hosts = hosts(flag, value)?,
                "--recv-hosts" => cfg.recv_hosts = hosts(flag, value)?,
                "-n" => cfg.users = count()?,
                "-c" if scenario == Scenario::Idle => cfg.connections = count()?,
                "-c" => cfg.concurrency = count()?,
                "-p" => cfg.pairs = count()?,
                "-m" => cfg.messages = count()?,
                "-r" => cfg.receivers = count()?,
                "-s" => cfg.hold = Duration::from_secs(count()? as u64),
                "--timeout" => cfg.timeout = Duration::from_secs(count()? as u64),
                "--pid" => cfg.server_pid = Some(count()? as u32),
                "--prefix" => cfg.prefix = value.clone(),
                "--events" => cfg.events = Some(value.into()),
                "--login" if value == "seeded" => cfg.seeded_logins = true,
                "--groups" => cfg.groups = count()?,
                "--rate" => match value.parse::<f64>() {
                    Ok(r) if r > 0.0 && r.is_finite() => cfg.rate = Some(r),
                    _ => return Err(ConfigError::new(flag, value, "messages per second, greater than 0")),
                },
                _ => return Err(ConfigError::new(flag, value, "one of the options in --help")),
            }
        }
        if cfg.recv_hosts.is_empty() {
            cfg.recv_hosts = cfg.hosts.clone();
        }
        Ok(cfg)
    }
}

fn hosts(flag: &str, value: &str) -> Result<Vec<String>, ConfigError> {
    let list: Vec<String> = value.split(',').map(str::trim).filter(|h| !h.is_empty()).map(String::from).collect();
    let valid =
        |h: &String| h.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if list.is_empty() || !list.iter().all(valid) {
        return Err(ConfigError::new(flag, value, "host:port[,host:port...]"));
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<BenchConfig, ConfigError> {
        BenchConfig::from_args(&line.split_whitespace().map(String::from).collect::<Vec<_>>())
    }

    #[test]
    fn flags_and_defaults() {
        let c = parse("dm -p 4 --rate 500 --hosts 127.0.0.1:1,127.0.0.1:2").unwrap();
        assert_eq!((c.scenario, c.pairs, c.messages, c.rate), (Scenario::Dm, 4, 2000, Some(500.0)));
        assert_eq!(c.recv_hosts, c.hosts);
        let c = parse("idle -c 10000 -s 5").unwrap();
        assert_eq!((c.connections, c.hold), (10_000, Duration::from_secs(5)));
        assert_eq!(parse("broadcast").unwrap().messages, 200);
        assert_eq!(parse("dm -p 0").unwrap_err().variable, "-p");
        assert_eq!(parse("dm --hosts nowhere").unwrap_err().variable, "--hosts");
        assert_eq!(parse("chat").unwrap_err().variable, "scenario");
        let c = parse("idle --hosts ws://127.0.0.1:8080 --login seeded").unwrap();
        assert_eq!((c.hosts[0].as_str(), c.seeded_logins), ("ws://127.0.0.1:8080", true));
        assert_eq!(parse("idle --login everyone").unwrap_err().variable, "--login");
    }
}
