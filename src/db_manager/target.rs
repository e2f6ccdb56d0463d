//! Where and how to connect to PostgreSQL: the driver's configuration
//! (timeouts, keepalive, TLS mode) and the TLS connector `DB_SSLMODE` and
//! `DB_SSLROOTCERT` call for. Every connection of the pod, pooled or the
//! writer's, is opened from one [`PgTarget`].

use std::time::Duration;

use postgres::config::SslMode as PgSslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::{DbConfig, SslMode};
use crate::tls::{client_config, Check};

use super::{LOCK_TIMEOUT, STATEMENT_TIMEOUT};

/// A connection whose data goes unacknowledged this long is dead.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(20);

/// The connector every connection uses (TLS or not, by `ssl_mode`).
pub type Tls = MakeRustlsConnect;

/// What `mode` checks of the certificate (`None`: no TLS), as libpq:
/// `require` checks the CA only when a root file is given.
fn check_of(mode: SslMode, root_file: bool) -> Option<Check> {
    match mode {
        SslMode::Disable => None,
        SslMode::Prefer => Some(Check::Nothing),
        SslMode::Require if root_file => Some(Check::Authority),
        SslMode::Require => Some(Check::Nothing),
        SslMode::VerifyCa => Some(Check::Authority),
        SslMode::VerifyFull => Some(Check::AuthorityAndName),
    }
}

#[derive(Clone)]
pub struct PgTarget {
    pub config: postgres::Config,
    pub tls: Tls,
}

impl PgTarget {
    /// The target `cfg` describes; the error is a CA file that cannot be used.
    pub fn new(cfg: &DbConfig, application: &str) -> Result<PgTarget, String> {
        let mut pg = postgres::Config::new();
        for (host, port) in &cfg.hosts {
            pg.host(host).port(*port);
        }
        if cfg.read_write {
            pg.target_session_attrs(postgres::config::TargetSessionAttrs::ReadWrite);
        }
        pg.dbname(&cfg.name)
            .user(&cfg.user)
            .password(&cfg.password)
            .application_name(application)
            // Per host: with several, one that stopped answering (a lost
            // node, no RST) must not hold every reconnect for long.
            .connect_timeout(Duration::from_secs(if cfg.hosts.len() > 1 { 2 } else { 5 }))
            // A PostgreSQL that hangs (locks, failover, a black hole) costs a
            // request seconds, never a thread for ever: statements and lock
            // waits are cut short by the server, a silent socket by the
            // kernel (keepalive, and TCP_USER_TIMEOUT for unacknowledged
            // data).
            // Every `timestamp` column (without time zone, as the original
            // schema has them) is written and read in UTC, whatever the
            // server's or the database's TimeZone.
            .options(&format!(
                "-c statement_timeout={}s -c lock_timeout={}s -c idle_in_transaction_session_timeout=60s \
                 -c TimeZone=UTC",
                STATEMENT_TIMEOUT.as_secs(),
                LOCK_TIMEOUT.as_secs()
            ))
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(10))
            .keepalives_interval(Duration::from_secs(3))
            .keepalives_retries(3)
            .tcp_user_timeout(SOCKET_TIMEOUT);
        let check = check_of(cfg.sslmode, cfg.sslrootcert.is_some());
        pg.ssl_mode(match cfg.sslmode {
            SslMode::Disable => PgSslMode::Disable,
            SslMode::Prefer => PgSslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => PgSslMode::Require,
        });
        let trust = client_config::trust_from(cfg.sslrootcert.as_deref());
        let client = client_config::client_config(&trust, check.unwrap_or(Check::Nothing))
            .map_err(|e| format!("DB_SSLMODE={}: {e}", cfg.sslmode.as_str()))?;
        Ok(PgTarget { config: pg, tls: MakeRustlsConnect::new((*client).clone()) })
    }

    pub fn connect(&self) -> Result<postgres::Client, postgres::Error> {
        self.config.connect(self.tls.clone())
    }
}
