//! Redis behind Sentinel (`REDIS_SENTINELS`, `REDIS_MASTER_NAME`).
//!
//! Every new connection asks the sentinels, one after the other, where the
//! master is (`SENTINEL get-master-addr-by-name`), and keeps the server it
//! finds only if that server says it is the master (`ROLE`): a sentinel
//! that has not seen the failover yet, or an old master that came back as
//! a replica, is passed over. Connections are only ever made when one is
//! missing (the pool's, the subscriber's), and a connection whose server
//! died or turned replica fails and is dropped ([`crate::redis_store`]), so
//! every component follows a failover within one failed request plus the
//! sentinels' own decision.

use std::time::Duration;

use crate::config::SentinelConfig;

/// A sentinel that does not answer this fast is passed over.
const SENTINEL_TIMEOUT: Duration = Duration::from_millis(500);

/// The sentinels of one master, as clients (no connection held).
#[derive(Debug, Clone)]
pub struct Sentinels {
    clients: Vec<(String, redis::Client)>,
    master_name: String,
}

/// Builds a client to `host:port` with `auth` (the TLS set-up is the
/// caller's: the same for sentinels and servers).
pub type ClientFor<'a> = &'a dyn Fn(&str, u16, &redis::RedisConnectionInfo) -> Result<redis::Client, redis::RedisError>;

impl Sentinels {
    pub fn new(cfg: &SentinelConfig, client_for: ClientFor) -> Result<Sentinels, redis::RedisError> {
        let auth = redis::RedisConnectionInfo {
            username: cfg.username.clone(),
            password: cfg.password.clone(),
            ..Default::default()
        };
        let clients = cfg
            .sentinels
            .iter()
            .map(|(host, port)| Ok((format!("{host}:{port}"), client_for(host, *port, &auth)?)))
            .collect::<Result<_, redis::RedisError>>()?;
        Ok(Sentinels { clients, master_name: cfg.master_name.clone() })
    }

    /// A connection to the master, made with `connect(host, port)`: the
    /// first address a sentinel names whose server answers `ROLE` as the
    /// master. The error says what each sentinel answered.
    pub fn connect_master(
        &self,
        connect: impl Fn(&str, u16) -> redis::RedisResult<redis::Connection>,
    ) -> redis::RedisResult<redis::Connection> {
        let mut answers = Vec::new();
        for (name, sentinel) in &self.clients {
            let found = self.ask(sentinel).and_then(|addr| {
                let (host, port) = addr.ok_or_else(|| no_master(format!("knows no master {}", self.master_name)))?;
                let mut conn = connect(&host, port)?;
                match role(&mut conn)?.as_str() {
                    "master" => Ok(conn),
                    other => Err(no_master(format!("named {host}:{port}, which is a {other}"))),
                }
            });
            match found {
                Ok(conn) => return Ok(conn),
                Err(e) => answers.push(format!("{name}: {e}")),
            }
        }
        Err(no_master(format!("no sentinel of REDIS_SENTINELS led to the master ({})", answers.join("; "))))
    }

    fn ask(&self, sentinel: &redis::Client) -> redis::RedisResult<Option<(String, u16)>> {
        let mut conn = sentinel.get_connection_with_timeout(SENTINEL_TIMEOUT)?;
        conn.set_read_timeout(Some(SENTINEL_TIMEOUT))?;
        conn.set_write_timeout(Some(SENTINEL_TIMEOUT))?;
        let addr: Option<(String, u16)> =
            redis::cmd("SENTINEL").arg("get-master-addr-by-name").arg(&self.master_name).query(&mut conn)?;
        Ok(addr)
    }
}

/// What the server says it is: `master`, `slave` (a replica), `sentinel`.
fn role(conn: &mut redis::Connection) -> redis::RedisResult<String> {
    let answer: Vec<redis::Value> = redis::cmd("ROLE").query(conn)?;
    match answer.first() {
        Some(v) => redis::from_redis_value(v),
        None => Err(no_master("answered ROLE with nothing".into())),
    }
}

fn no_master(detail: String) -> redis::RedisError {
    // An I/O error to the pool and the callers: a failure to reach Redis.
    redis::RedisError::from((redis::ErrorKind::IoError, "Redis master not found", detail))
}
