//! `chat_client <host> <port> [--tls] [--ca FILE]`: connects and runs a
//! session; the exit code says how it ended (0: logged out or quit; 1:
//! refused, lost, not logged in; 2: bad arguments).

use std::process::ExitCode;
use std::time::Duration;

use chatp::client::{Options, Target};
use chatp::tls::client_config::trust_from;

const USAGE: &str = "usage: chat_client <host> <port> [--tls] [--ca FILE] [--reconnect-for SECONDS]

The chatp terminal client. After login: type menu numbers, usernames, group
ids and messages; 'back' returns to the previous screen, 'bye' at the main
menu logs out, Ctrl-D or Ctrl-C quits. If the server goes away (a restart,
a scale-down), the client reconnects and resumes the session for up to
--reconnect-for seconds (default 60), then exits 1.

  --tls        connect with TLS (the server's TLS port, e.g. 30443); the
               certificate must be valid for <host> and signed by a CA the
               system trusts. Never falls back to plaintext.
  --ca FILE    trust the CA certificates in FILE (PEM) instead of the
               system's (a private CA); implies --tls.

Example: chat_client chat.example.org 30443 --tls";

struct Args {
    host: String,
    port: u16,
    tls: bool,
    ca: Option<std::path::PathBuf>,
    opts: Options,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let [host, port, rest @ ..] = args else { return Err(String::new()) };
    let port = port.parse::<u16>().map_err(|_| format!("invalid port {port:?}"))?;
    let mut parsed = Args { host: host.clone(), port, tls: false, ca: None, opts: Options::default() };
    let mut rest = rest.iter();
    while let Some(flag) = rest.next() {
        match flag.as_str() {
            "--tls" => parsed.tls = true,
            "--ca" => {
                let file = rest.next().ok_or("--ca needs a FILE")?;
                parsed.ca = Some(file.into());
                parsed.tls = true;
            }
            "--reconnect-for" => {
                let secs = rest.next().ok_or("--reconnect-for needs SECONDS")?;
                let secs = secs.parse::<u64>().map_err(|_| format!("invalid --reconnect-for {secs:?}"))?;
                parsed.opts.reconnect_for = Duration::from_secs(secs);
            }
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    Ok(parsed)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [a] if a == "--help" || a == "-h" => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        [a] if a == "--version" || a == "-V" => {
            println!("{}", chatp::sys::version_line("chat_client"));
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    let args = match parse(&args) {
        Ok(a) => a,
        Err(why) => {
            let why = if why.is_empty() { String::new() } else { format!("chat_client: {why}\n") };
            eprintln!("{why}{USAGE}");
            return ExitCode::from(2);
        }
    };
    let target = if args.tls {
        match Target::with_tls(&args.host, args.port, trust_from(args.ca.as_deref())) {
            Ok(t) => t,
            Err(msg) => {
                eprintln!("chat_client: {msg}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        Target::plain(&args.host, args.port)
    };
    let link = match target.connect() {
        Ok(l) => l,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::FAILURE;
        }
    };
    match chatp::client::run(&target, link, args.opts) {
        Ok(ending) => ExitCode::from(ending.exit_code()),
        Err(e) => {
            eprintln!("chat_client: {e}");
            ExitCode::FAILURE
        }
    }
}
