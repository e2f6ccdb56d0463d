//! `chat_bench <scenario> [options]`: load for chat_server. Prints one
//! summary line; exit 0 if nothing was lost, 1 if anything was, 2 on bad
//! arguments.

use std::process::ExitCode;

use chatp::config::{BenchConfig, BENCH_USAGE};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{BENCH_USAGE}");
        return ExitCode::SUCCESS;
    }
    if args.iter().any(|a| a == "--version" || a == "-V") {
        println!("{}", chatp::sys::version_line("chat_bench"));
        return ExitCode::SUCCESS;
    }
    let cfg = match BenchConfig::from_args(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("chat_bench: {e}\n{BENCH_USAGE}");
            return ExitCode::from(2);
        }
    };
    chatp::sys::raise_open_files_limit();
    let summary = chatp::bench::run(&cfg);
    println!("{summary}");
    for why in &summary.failures {
        eprintln!("chat_bench: {why}");
    }
    if summary.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
