//! chatp: a private chat service. A synchronous, thread-per-connection TCP
//! server speaking the chatp protocol (`shared/PROTOCOL.md`), on PostgreSQL
//! (users, sessions, every message) and Redis (presence, cross-pod routing).
//!
//! Map of the crate, one line per module and what it owns:
//!
//! - [`protocol`]: every wire token, the formatting and parsing of every line, name rules.
//! - [`framing`]: bytes to lines (4096-byte limit, invalid UTF-8), in memory.
//! - [`parser_checks`]: the properties of every parser of untrusted bytes, run by the property tests and `fuzz/`.
//! - [`config`]: every environment variable, read once into typed configs.
//! - [`db_manager`]: the PostgreSQL pool and every SQL statement.
//! - [`passwords`]: Argon2id hashing, legacy SHA-256 checks, the bounded hashing pool.
//! - [`redis_store`]: the Redis pool and every Redis key and channel name.
//! - [`presence`]: who is online across pods (`online_users`), heartbeats, reaping dead pods.
//! - [`remote_presence`]: which users other pods hold, from presence events: local delivery without Redis.
//! - [`router`]: local sessions and delivery of lines across pods (pub/sub).
//! - [`outbox`]: per-connection bounded outbound queue; non-blocking writes; the flusher thread.
//! - [`connection`]: one client socket: framed reads, sends through its outbox.
//! - [`websocket`]: a web client's lines as WebSocket text frames (tungstenite), both ways.
//! - [`web`]: the web port: the browser client's page and the `/ws` upgrade (Origin checked).
//! - [`server`]: the listener, start-up, shutdown, and one file per protocol screen.
//! - [`tls`]: rustls: the chat port's reloaded certificate, client trust and checks, one TLS connection on one fd.
//! - [`session_end`]: ending a user's sessions on every pod (disabled, deleted, password changed).
//! - [`metrics`], [`ops_http`]: Prometheus metrics; `/healthz`, `/readyz` (checked in the background), `/metrics`.
//! - [`http`]: our HTTP of the ops port and dashboard: a head parser, one bounded poll(2) thread per server.
//! - [`fault`]: test-only fault hooks (cargo feature `fault-hooks`): a client line that panics its thread.
//! - [`sys`]: process set-up of the binaries: logging, stop signals, limits, allocator, idle stacks.
//! - [`client`]: the terminal client: `ReadThread`, `WriteThread`, rendering of screens.
//! - [`bench`]: `chat_bench`: load scenarios (signup, login, dm, broadcast, idle) and their figures.
//! - [`dashboard`]: `chat_dashboard`: samples Redis, PostgreSQL and the Kubernetes API; the page and JSON API.
//! - [`admin`]: `chat_admin`: accounts, invite codes, ending sessions, from the command line.
//! - [`autoscaler`]: `chat_autoscaler`: user count to replicas (pure policy), the Kubernetes API calls.

pub mod admin;
pub mod autoscaler;
pub mod bench;
pub mod client;
pub mod config;
pub mod connection;
pub mod dashboard;
pub mod db_manager;
pub mod fault;
pub mod framing;
pub mod http;
pub mod metrics;
pub mod ops_http;
pub mod outbox;
pub mod parser_checks;
pub mod passwords;
pub mod presence;
pub mod protocol;
pub mod publisher;
pub mod rate_limit;
pub mod redis_sentinel;
pub mod redis_store;
pub mod remote_presence;
pub mod router;
pub mod server;
pub mod session_end;
pub mod sys;
pub mod tls;
pub mod web;
pub mod websocket;
