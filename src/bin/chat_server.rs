//! `chat_server <port>`: reads the configuration, starts the server, stops
//! it cleanly on SIGTERM or SIGINT, and turns a start-up error into one line
//! and a non-zero exit.

use std::process::ExitCode;

use chatp::config::{ServerConfig, SERVER_ENV_HELP};
use chatp::server::Server;

const USAGE: &str =
    "usage: chat_server <port>\n\nThe chatp server: listens on <port> (0: any free port) for chat clients.";

fn main() -> ExitCode {
    chatp::sys::tune_malloc();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let port = match args.as_slice() {
        [a] if a == "--help" || a == "-h" => {
            println!("{USAGE}\n\n{SERVER_ENV_HELP}");
            return ExitCode::SUCCESS;
        }
        [a] if a == "--version" || a == "-V" => {
            println!("{}", chatp::sys::version_line("chat_server"));
            return ExitCode::SUCCESS;
        }
        [p] => match p.parse::<u16>() {
            Ok(port) => port,
            Err(_) => {
                eprintln!("chat_server: invalid port {p:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        },
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let cfg = match ServerConfig::from_env(port) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("chat_server: {e}");
            return ExitCode::from(2);
        }
    };
    chatp::sys::init_logging(cfg.log_level);

    let server = match Server::start(&cfg) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("chat_server: {e}");
            return ExitCode::FAILURE;
        }
    };
    let stop = server.stop_handle();
    chatp::sys::on_stop_signal(move || stop.stop());
    server.run();
    ExitCode::SUCCESS
}
