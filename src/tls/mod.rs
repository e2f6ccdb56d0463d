//! TLS with rustls (ring provider): the chat port's certificate
//! ([`server_cert`]), client trust and checks ([`client_config`]), and one
//! TLS connection shared by a reading thread and writing threads on one fd
//! ([`session`]).

pub mod client_config;
pub mod server_cert;
pub mod session;

pub use client_config::{Check, Trust};
pub use server_cert::{CertFiles, ReloadingCert};
pub use session::TlsSession;
