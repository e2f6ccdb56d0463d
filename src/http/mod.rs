//! The HTTP of the ops port (`/healthz`, `/readyz`, `/metrics`) and of the
//! dashboard, our own and small: a request-head parser on bytes in memory
//! ([`request`]) and one poll(2) thread per server that bounds connections,
//! reading and writing time ([`server`]). GET and HEAD, one request per
//! connection; handlers answer from memory.

pub mod request;
pub mod server;

pub use request::{parse_request, Head, Method, ParseError, MAX_HEAD, MAX_HEADERS};
pub use server::{Limits, Response, Server};
