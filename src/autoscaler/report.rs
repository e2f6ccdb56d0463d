//! What the autoscaler did, kept in Redis for chat_dashboard: the last
//! tick (`autoscaler:last`, expiring, so a stopped autoscaler shows as
//! such) and the recent replica changes (`autoscaler:events`, newest
//! first, the last [`EVENTS_KEPT`]).

use serde::{Deserialize, Serialize};

use crate::redis_store::Keys;

/// Scale events kept.
pub const EVENTS_KEPT: isize = 50;

/// One tick, as the dashboard shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TickReport {
    /// Unix seconds.
    pub at: u64,
    /// The tick decided (false: it could not count, read or patch).
    pub ok: bool,
    pub users: Option<usize>,
    pub current: Option<u32>,
    pub desired: Option<u32>,
    pub target: Option<u32>,
    /// `up`, `down`, `pending-down`, `none`, `paused`, or `failed`.
    pub action: String,
    /// The tick's log line: the decision and why, or the failure.
    pub line: String,
}

impl TickReport {
    pub fn changes_replicas(&self) -> bool {
        self.ok && matches!(self.action.as_str(), "up" | "down")
    }
}

/// Records `report`; the last tick lives `ttl_secs`.
pub fn write(conn: &mut redis::Connection, keys: &Keys, report: &TickReport, ttl_secs: u64) -> redis::RedisResult<()> {
    let json = serde_json::to_string(report).unwrap_or_default();
    let mut pipe = redis::pipe();
    pipe.cmd("SET").arg(keys.autoscaler_last()).arg(&json).arg("EX").arg(ttl_secs.max(1)).ignore();
    if report.changes_replicas() {
        pipe.cmd("LPUSH").arg(keys.autoscaler_events()).arg(&json).ignore();
        pipe.cmd("LTRIM").arg(keys.autoscaler_events()).arg(0).arg(EVENTS_KEPT - 1).ignore();
    }
    pipe.query(conn)
}

/// The last tick (if the autoscaler ran lately) and the recent scale
/// events, newest first.
pub fn read(conn: &mut redis::Connection, keys: &Keys) -> redis::RedisResult<(Option<TickReport>, Vec<TickReport>)> {
    let (last, events): (Option<String>, Vec<String>) = redis::pipe()
        .cmd("GET")
        .arg(keys.autoscaler_last())
        .cmd("LRANGE")
        .arg(keys.autoscaler_events())
        .arg(0)
        .arg(EVENTS_KEPT - 1)
        .query(conn)?;
    let parse = |s: &str| serde_json::from_str::<TickReport>(s).ok();
    Ok((last.as_deref().and_then(parse), events.iter().filter_map(|e| parse(e)).collect()))
}
