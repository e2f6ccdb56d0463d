//! `chat_dashboard`: the live dashboard of a chatp deployment (see
//! `--help`).

use std::process::ExitCode;

use chatp::config::{DashboardConfig, DASHBOARD_ENV_HELP};

const USAGE: &str = "\
usage: chat_dashboard

Serves a page with online and registered users, messages, the chat pods,
health of Redis, PostgreSQL, the autoscaler and the Kubernetes API, and
charts of the last minutes; and the JSON API /api/status, /api/metrics,
/api/health. Outside a cluster it shows what Redis and PostgreSQL know.";

fn main() -> ExitCode {
    match std::env::args().nth(1).as_deref() {
        Some("--help" | "-h") => {
            println!("{USAGE}\n\n{DASHBOARD_ENV_HELP}");
            return ExitCode::SUCCESS;
        }
        Some("--version" | "-V") => {
            println!("{}", chatp::sys::version_line("chat_dashboard"));
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            eprintln!("chat_dashboard: unknown argument {other:?}\n{USAGE}");
            return ExitCode::from(2);
        }
        None => {}
    }
    let cfg = match DashboardConfig::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("chat_dashboard: {e}");
            return ExitCode::from(2);
        }
    };
    chatp::sys::init_logging(cfg.log_level);
    let _dashboard = match chatp::dashboard::start(&cfg) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("chat_dashboard: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (stop_tx, stop) = crossbeam_channel::bounded::<()>(1);
    chatp::sys::on_stop_signal(move || {
        let _ = stop_tx.send(());
    });
    let _ = stop.recv();
    log::info!("stopped");
    ExitCode::SUCCESS
}
