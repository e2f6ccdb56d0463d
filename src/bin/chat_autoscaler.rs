//! `chat_autoscaler [--once] [--dry-run]`: reads the configuration, then
//! scales the chat Deployment from the online-user count until SIGTERM or
//! SIGINT (or after one tick with `--once`).

use std::process::ExitCode;

use chatp::autoscaler::Autoscaler;
use chatp::config::{AutoscalerConfig, AUTOSCALER_ENV_HELP};

const USAGE: &str = "\
usage: chat_autoscaler [--once] [--dry-run]

Sets the replicas of the chat Deployment to one pod per USERS_PER_POD users
online (read from the chat servers' presence in Redis), between MIN_REPLICAS
and MAX_REPLICAS; scales down only after SCALE_DOWN_DELAY of lower counts.

  --once     one decision, then exit: 0 if it was made (and applied), 1 if not
  --dry-run  decide and log, never change the Deployment";

fn main() -> ExitCode {
    let (mut once, mut dry_run) = (false, false);
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--once" => once = true,
            "--dry-run" => dry_run = true,
            "--help" | "-h" => {
                println!("{USAGE}\n\n{AUTOSCALER_ENV_HELP}");
                return ExitCode::SUCCESS;
            }
            "--version" | "-V" => {
                println!("{}", chatp::sys::version_line("chat_autoscaler"));
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("chat_autoscaler: unknown argument {other:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let cfg = match AutoscalerConfig::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("chat_autoscaler: {e}");
            return ExitCode::from(2);
        }
    };
    chatp::sys::init_logging(cfg.log_level);

    let mut autoscaler = match Autoscaler::new(&cfg, dry_run) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("chat_autoscaler: {e}");
            return ExitCode::FAILURE;
        }
    };
    let p = &cfg.policy;
    log::info!(
        "scaling deployment {:?} in namespace {:?} through {}: {}..{} pods, {} users per pod, \
         every {}s, scale-down delay {}s{}",
        cfg.deployment,
        cfg.namespace,
        cfg.kube.url,
        p.min_replicas,
        p.max_replicas,
        p.users_per_pod,
        cfg.check_interval.as_secs(),
        p.scale_down_delay.as_secs(),
        if dry_run { " (dry run: no changes)" } else { "" }
    );
    if once {
        return if autoscaler.tick_and_log() { ExitCode::SUCCESS } else { ExitCode::FAILURE };
    }
    let _ops = match cfg.metrics_port {
        Some(port) => {
            let render = || chatp::metrics::AUTOSCALER_METRICS.render();
            match chatp::ops_http::start(&format!("0.0.0.0:{port}"), || Ok(()), render) {
                Ok(ops) => Some(ops),
                Err(e) => {
                    eprintln!("chat_autoscaler: cannot serve /metrics on port {port}: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        None => None,
    };
    let (stop_tx, stop_rx) = crossbeam_channel::bounded(1);
    chatp::sys::on_stop_signal(move || {
        let _ = stop_tx.send(());
    });
    autoscaler.run(&stop_rx);
    ExitCode::SUCCESS
}
