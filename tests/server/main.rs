//! Integration tests of `chat_server` over TCP, on the real PostgreSQL and
//! Redis of this test run (see `scripts/test.sh`). Exact lines, built with
//! the constructors of `chatp::protocol`.

mod support;

mod auth;
mod broadcast;
mod client;
mod framing;
mod groups;
mod pods;
mod private;
mod slow_client;
mod store_failure;
