//! The server's certificate, read from PEM files (`TLS_CERT_FILE`,
//! `TLS_KEY_FILE`) and read again when they change: cert-manager and
//! Kubernetes Secret updates replace the files under a running pod. New
//! handshakes get the new certificate; live connections keep theirs. A
//! half-written or mismatched pair is refused and the old one kept; it is
//! logged and counted once per change of the files, not at every look.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::thread;
use std::time::Duration;

use log::{error, info};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

use crate::metrics::METRICS;

/// Where the certificate chain and its key are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The certificate handshakes are given, replaced when the files change.
#[derive(Debug)]
pub struct ReloadingCert {
    files: CertFiles,
    current: RwLock<Arc<CertifiedKey>>,
    /// The file contents `current` was built from.
    loaded: Mutex<(Vec<u8>, Vec<u8>)>,
    /// The last contents refused (or the last read error), so that a broken
    /// pair is reported once, not at every look at the files.
    refused: Mutex<Option<Result<(Vec<u8>, Vec<u8>), String>>>,
}

/// What one look at the files found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reload {
    /// The files did not change (or are still the broken ones reported).
    Unchanged,
    /// A new certificate is in use.
    Replaced,
    /// New contents (or a new error) that cannot be used: the previous
    /// certificate stays.
    Refused(String),
}

impl ReloadingCert {
    /// Loads the pair; the error names the file and what is wrong with it.
    pub fn load(files: CertFiles) -> Result<Arc<ReloadingCert>, String> {
        let (cert_pem, key_pem) = read_pair(&files)?;
        let key = certified_key(&files, &cert_pem, &key_pem)?;
        info!("TLS certificate {} loaded from {}", fingerprint(&key), files.cert.display());
        Ok(Arc::new(ReloadingCert {
            files,
            current: RwLock::new(Arc::new(key)),
            loaded: Mutex::new((cert_pem, key_pem)),
            refused: Mutex::new(None),
        }))
    }

    /// A rustls server configuration that always hands out the current
    /// certificate.
    pub fn server_config(self: &Arc<Self>) -> Arc<rustls::ServerConfig> {
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        Arc::new(config)
    }

    /// Reads the files again and uses them if they changed and make a
    /// usable pair. A refusal is reported once per change of the files.
    pub fn reload_if_changed(&self) -> Reload {
        let mut refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        let (cert_pem, key_pem) = match read_pair(&self.files) {
            Ok(pair) => pair,
            Err(e) => {
                let first = refused.as_ref() != Some(&Err(e.clone()));
                *refused = Some(Err(e.clone()));
                return if first { Reload::Refused(e) } else { Reload::Unchanged };
            }
        };
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        if loaded.0 == cert_pem && loaded.1 == key_pem {
            *refused = None;
            return Reload::Unchanged;
        }
        if let Some(Ok((c, k))) = refused.as_ref() {
            if *c == cert_pem && *k == key_pem {
                return Reload::Unchanged;
            }
        }
        let key = match certified_key(&self.files, &cert_pem, &key_pem) {
            Ok(key) => key,
            Err(e) => {
                *refused = Some(Ok((cert_pem, key_pem)));
                return Reload::Refused(e);
            }
        };
        info!(
            "TLS certificate {} loaded from {} (replaces the previous one)",
            fingerprint(&key),
            self.files.cert.display()
        );
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(key);
        *loaded = (cert_pem, key_pem);
        *refused = None;
        Reload::Replaced
    }

    /// Looks at the files every `every`, for the life of the process.
    pub fn watch(self: &Arc<Self>, every: Duration) {
        let me = Arc::clone(self);
        let spawned = thread::Builder::new().name("tls-reload".into()).spawn(move || loop {
            thread::sleep(every);
            match me.reload_if_changed() {
                Reload::Replaced => METRICS.tls_reloads.with_label_values(&["ok"]).inc(),
                Reload::Unchanged => {}
                Reload::Refused(e) => {
                    METRICS.tls_reloads.with_label_values(&["failed"]).inc();
                    error!("TLS certificate not reloaded, the previous one stays in use: {e}");
                }
            }
        });
        if let Err(e) = spawned {
            error!("cannot start the TLS certificate watcher: {e}");
        }
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner())))
    }
}

fn read_pair(files: &CertFiles) -> Result<(Vec<u8>, Vec<u8>), String> {
    let read = |p: &PathBuf| std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()));
    Ok((read(&files.cert)?, read(&files.key)?))
}

fn certified_key(files: &CertFiles, cert_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: not a PEM certificate chain: {}", files.cert.display(), pem_error(&e)))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate in it", files.cert.display()));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| format!("{}: not a PEM private key: {}", files.key.display(), pem_error(&e)))?;
    let provider = rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(chain, key, &provider)
        .map_err(|e| format!("{} and {} do not make a usable pair: {e}", files.cert.display(), files.key.display()))
}

/// A PEM error in words (rustls-pki-types prints the lines it means as
/// lists of byte values).
fn pem_error(e: &rustls_pki_types::pem::Error) -> String {
    use rustls_pki_types::pem::Error;
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).trim().to_string();
    match e {
        Error::MissingSectionEnd { end_marker } => {
            format!("no \"-----END {}-----\" line: the file is cut short (still being written?)", text(end_marker))
        }
        Error::IllegalSectionStart { line } => format!("a malformed \"-----BEGIN\" line: \"{}\"", text(line)),
        Error::Base64Decode(e) => format!("the base64 inside is damaged ({e})"),
        Error::NoItemsFound => "no PEM section of the right kind in it".into(),
        other => other.to_string(),
    }
}

/// `sha256:1a2b…` of the leaf certificate, for logs.
fn fingerprint(key: &CertifiedKey) -> String {
    let leaf = key.cert.first().map(|c| c.as_ref()).unwrap_or_default();
    format!("sha256:{}", &hex::encode(Sha256::digest(leaf))[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap().self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn a_broken_pair_is_refused_once_per_change_in_words() {
        let dir = std::env::temp_dir().join(format!("chatp-cert-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let files = CertFiles { cert: dir.join("tls.crt"), key: dir.join("tls.key") };
        let write = |(c, k): &(String, String)| {
            std::fs::write(&files.cert, c).unwrap();
            std::fs::write(&files.key, k).unwrap();
        };
        let first = pair("a.example");
        write(&first);
        let cert = ReloadingCert::load(files.clone()).unwrap();
        assert_eq!(cert.reload_if_changed(), Reload::Unchanged);
        // Half written: refused in words, then not again while it stays.
        let second = pair("b.example");
        write(&(second.0[..second.0.len() / 2].to_string(), second.1.clone()));
        let Reload::Refused(why) = cert.reload_if_changed() else { panic!("a cut certificate was not refused") };
        assert!(why.contains("no \"-----END CERTIFICATE-----\" line"), "{why}");
        assert!(!why.contains("[45, 45"), "{why}");
        assert_eq!(cert.reload_if_changed(), Reload::Unchanged);
        assert_eq!(cert.reload_if_changed(), Reload::Unchanged);
        // A mismatched pair: a new refusal, once.
        write(&(second.0.clone(), first.1.clone()));
        assert!(matches!(cert.reload_if_changed(), Reload::Refused(_)));
        assert_eq!(cert.reload_if_changed(), Reload::Unchanged);
        // A missing file: once too.
        std::fs::remove_file(&files.key).unwrap();
        assert!(matches!(cert.reload_if_changed(), Reload::Refused(_)));
        assert_eq!(cert.reload_if_changed(), Reload::Unchanged);
        // Whole again: used.
        write(&second);
        assert_eq!(cert.reload_if_changed(), Reload::Replaced);
        assert_eq!(cert.reload_if_changed(), Reload::Unchanged);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
