//! Client-side TLS: whom a connection trusts (the system's roots or one CA
//! file), how much it checks (libpq's `require`, `verify-ca`,
//! `verify-full`), and an error text that says which name or CA failed.
//! Used by chat_client (`--tls`, `--ca`), and for PostgreSQL
//! (`DB_SSLMODE`, `DB_SSLROOTCERT`).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;

/// Which certificate authorities a connection trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// The system's roots (e.g. `/etc/ssl/certs`, `SSL_CERT_FILE`).
    System,
    /// The CAs in one PEM file (a private CA).
    CaFile(PathBuf),
}

impl Trust {
    fn describe(&self) -> String {
        match self {
            Trust::System => "a CA this system trusts".into(),
            Trust::CaFile(p) => format!("the CA in {}", p.display()),
        }
    }
}

/// How much of the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Encrypt, check nothing (libpq's `require` without a root file).
    Nothing,
    /// Signed by a trusted CA, whatever name it carries (`verify-ca`).
    Authority,
    /// Signed by a trusted CA and issued for the name connected to.
    AuthorityAndName,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The roots `trust` names; the error says why there are none.
pub fn roots(trust: &Trust) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    match trust {
        Trust::CaFile(path) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<_, _>>())
                .map_err(|e| format!("cannot read CA file {}: {e}", path.display()))?;
            let (added, _) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!("{} holds no usable CA certificate", path.display()));
            }
        }
        Trust::System => {
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
            if store.is_empty() {
                return Err("this system has no CA certificates (install ca-certificates, or pass a CA file)".into());
            }
        }
    }
    Ok(store)
}

/// A client configuration (TLS 1.2 and 1.3, ring).
pub fn client_config(trust: &Trust, check: Check) -> Result<Arc<rustls::ClientConfig>, String> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let config = match check {
        Check::AuthorityAndName => builder.with_root_certificates(roots(trust)?).with_no_client_auth(),
        Check::Authority | Check::Nothing => {
            let webpki = match check {
                Check::Authority => Some(
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots(trust)?), provider())
                        .build()
                        .map_err(|e| e.to_string())?,
                ),
                _ => None,
            };
            let verifier = Lenient { webpki, provider: provider() };
            builder.dangerous().with_custom_certificate_verifier(Arc::new(verifier)).with_no_client_auth()
        }
    };
    Ok(Arc::new(config))
}

/// `require` and `verify-ca`: the handshake's signatures are still checked
/// (the peer holds the certificate's key); the certificate itself less.
#[derive(Debug)]
struct Lenient {
    /// `None`: the certificate is not checked (`require`).
    webpki: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(webpki) = &self.webpki else {
            return Ok(ServerCertVerified::assertion());
        };
        match webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// The name a certificate must carry for `host` (a DNS name or an IP).
pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(host.to_string()).map_err(|_| format!("{host:?} is not a host name TLS can check"))
}

/// What a failed handshake means for the person: which name or CA failed,
/// or that the port does not speak TLS.
pub fn explain(e: &io::Error, host: &str, trust: &Trust) -> String {
    let tls = e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match tls {
        Some(rustls::Error::InvalidCertificate(cert)) => match cert {
            CertificateError::UnknownIssuer => {
                format!("the server's certificate is not signed by {} (a private CA needs --ca FILE)", trust.describe())
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!("the server's certificate is not valid for the name {host:?}: {cert}")
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                format!("the server's certificate has expired: {cert}")
            }
            CertificateError::Other(other) if is_ca_used_as_server_cert(other) => format!(
                "the server presents a CA certificate (or a lone self-signed one) as its own: that cannot be checked \
                 by --ca. Make a CA, then a server certificate signed by it for {host:?} (subjectAltName), serve \
                 that one and give the CA to --ca (docs/tls.md)"
            ),
            other => format!("the server's certificate was refused: {other}"),
        },
        Some(rustls::Error::InvalidMessage(_)) | Some(rustls::Error::InappropriateMessage { .. }) => {
            "the server did not answer in TLS (is this its plaintext port?)".into()
        }
        Some(other) => format!("TLS handshake failed: {other}"),
        None if e.kind() == io::ErrorKind::UnexpectedEof => {
            "the server closed the connection during the TLS handshake".into()
        }
        None => format!("TLS handshake failed: {e}"),
    }
}

/// A certificate with the CA flag (`basicConstraints CA:TRUE`, as
/// `openssl req -x509` makes by default) served as the server's own.
fn is_ca_used_as_server_cert(other: &rustls::OtherError) -> bool {
    matches!(other.0.downcast_ref::<webpki::Error>(), Some(webpki::Error::CaUsedAsEndEntity))
}

/// The trust a CA file option gives (`None`: the system's roots).
pub fn trust_from(ca: Option<&Path>) -> Trust {
    ca.map_or(Trust::System, |p| Trust::CaFile(p.to_path_buf()))
}
