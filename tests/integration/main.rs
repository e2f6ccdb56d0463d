//! Integration tests of chatp's binaries, on the real PostgreSQL and Redis
//! of this test run (see `scripts/test.sh`): `chat_server` and `chat_client`
//! over TCP (exact lines, built with the constructors of `chatp::protocol`),
//! `chat_autoscaler` against a fake Kubernetes API ([`fake_kube`]).

mod certs;
mod fake_kube;
mod support;

mod abuse;
mod accounts;
mod auth;
mod autoscaler;
mod bench;
mod broadcast;
mod browser;
pub mod client;
mod dashboard;
mod defence;
mod faults;
mod framing;
mod groups;
mod in_doubt;
pub mod ops;
mod plans;
mod pods;
mod private;
mod proxy;
mod python_era;
mod redis_acl;
mod roles;
mod rollout;
mod sessions;
mod slow_client;
mod storage_tls;
mod store_failure;
mod terminal;
mod tls;
mod web;
mod web_client;
