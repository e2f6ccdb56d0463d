//! `chat_admin <command>`: accounts of a chatp deployment (see `--help`).

use std::process::ExitCode;

use chatp::admin::{self, Failure};
use chatp::config::AdminConfig;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--help" | "-h" | "help") => {
            println!("{}", admin::USAGE);
            return ExitCode::SUCCESS;
        }
        Some("--version" | "-V") => {
            println!("{}", chatp::sys::version_line("chat_admin"));
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    let result = admin::parse(&args).and_then(|cmd| {
        let cfg = AdminConfig::from_env().map_err(|e| Failure::Failed(e.to_string()))?;
        admin::run(&cfg, &cmd, &mut std::io::stdin().lock())
    });
    match result {
        Ok(lines) => {
            for line in lines {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        Err(f) => {
            match &f {
                Failure::Usage(why) => eprintln!("chat_admin: {why}\n\n{}", admin::USAGE),
                Failure::Failed(why) => eprintln!("chat_admin: {why}"),
                Failure::PodsNotTold { done, why } => {
                    println!("{done}");
                    eprintln!("chat_admin: {why}");
                }
            }
            ExitCode::from(f.exit_code())
        }
    }
}
