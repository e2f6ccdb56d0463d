//! `chat_server <port>`: reads the configuration, starts the server, stops
//! it cleanly on SIGTERM or SIGINT, and turns a start-up error into one line
//! and a non-zero exit.

use std::process::ExitCode;

use chatp::config::{ServerConfig, SERVER_ENV_HELP};
use chatp::server::Server;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use simplelog::{ColorChoice, ConfigBuilder, TermLogger, TerminalMode};

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
    let log_cfg =
        ConfigBuilder::new().set_target_level(log::LevelFilter::Off).set_thread_level(log::LevelFilter::Off).build();
    let _ = TermLogger::init(cfg.log_level, log_cfg, TerminalMode::Stderr, ColorChoice::Never);

    let server = match Server::start(&cfg) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("chat_server: {e}");
            return ExitCode::FAILURE;
        }
    };
    let stop = server.stop_handle();
    match Signals::new([SIGTERM, SIGINT]) {
        Ok(mut signals) => {
            std::thread::spawn(move || {
                if let Some(sig) = signals.forever().next() {
                    log::info!("signal {sig}: stopping");
                    stop.stop();
                }
            });
        }
        Err(e) => log::warn!("cannot handle SIGTERM/SIGINT: {e}"),
    }
    server.run();
    ExitCode::SUCCESS
}
