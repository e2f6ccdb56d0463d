//! `chat_client <host> <port>`: connects and runs a session; the exit code
//! says how it ended (0: logged out or quit; 1: refused, lost, not logged in).

use std::process::ExitCode;

const USAGE: &str = "usage: chat_client <host> <port> [--reconnect-for SECONDS]

The chatp terminal client. After login: type menu numbers, usernames, group
ids and messages; 'back' returns to the previous screen, 'bye' at the main
menu logs out, Ctrl-D or Ctrl-C quits. If the server goes away (a restart,
a scale-down), the client reconnects and resumes the session for up to
--reconnect-for seconds (default 60), then exits 1.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut opts = chatp::client::Options::default();
    let (host, port) = match args.as_slice() {
        [a] if a == "--help" || a == "-h" => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        [a] if a == "--version" || a == "-V" => {
            println!("{}", chatp::sys::version_line("chat_client"));
            return ExitCode::SUCCESS;
        }
        [host, port, rest @ ..] => {
            match rest {
                [] => {}
                [flag, secs] if flag == "--reconnect-for" => match secs.parse::<u64>() {
                    Ok(s) => opts.reconnect_for = std::time::Duration::from_secs(s),
                    Err(_) => {
                        eprintln!("chat_client: invalid --reconnect-for {secs:?}\n{USAGE}");
                        return ExitCode::from(2);
                    }
                },
                _ => {
                    eprintln!("{USAGE}");
                    return ExitCode::from(2);
                }
            }
            match port.parse::<u16>() {
                Ok(p) => (host.clone(), p),
                Err(_) => {
                    eprintln!("chat_client: invalid port {port:?}\n{USAGE}");
                    return ExitCode::from(2);
                }
            }
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let stream = match chatp::client::connect(&host, port) {
        Ok(s) => s,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::FAILURE;
        }
    };
    match chatp::client::run(&host, port, stream, opts) {
        Ok(ending) => ExitCode::from(ending.exit_code()),
        Err(e) => {
            eprintln!("chat_client: {e}");
            ExitCode::FAILURE
        }
    }
}
