//! The server's certificate, read from PEM files (`TLS_CERT_FILE`,
//! `TLS_KEY_FILE`) and read again when they change: cert-manager and
//! Kubernetes Secret updates replace the files under a running pod. New
//! handshakes get the new certificate; live connections keep theirs. A
//! half-written or mismatched pair is refused and the old one kept.

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

    /// Reads the files again; `Ok(true)` when a new certificate is now in
    /// use, `Ok(false)` when they did not change.
    pub fn reload_if_changed(&self) -> Result<bool, String> {
        let (cert_pem, key_pem) = read_pair(&self.files)?;
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        if loaded.0 == cert_pem && loaded.1 == key_pem {
            return Ok(false);
        }
        let key = certified_key(&self.files, &cert_pem, &key_pem)?;
        info!(
            "TLS certificate {} loaded from {} (replaces the previous one)",
            fingerprint(&key),
            self.files.cert.display()
        );
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(key);
        *loaded = (cert_pem, key_pem);
        Ok(true)
    }

    /// Looks at the files every `every`, for the life of the process.
    pub fn watch(self: &Arc<Self>, every: Duration) {
        let me = Arc::clone(self);
        let spawned = thread::Builder::new().name("tls-reload".into()).spawn(move || loop {
            thread::sleep(every);
            match me.reload_if_changed() {
                Ok(true) => METRICS.tls_reloads.with_label_values(&["ok"]).inc(),
                Ok(false) => {}
                Err(e) => {
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
        .map_err(|e| format!("{}: not a PEM certificate chain: {e}", files.cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate in it", files.cert.display()));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| format!("{}: not a PEM private key: {e}", files.key.display()))?;
    let provider = rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(chain, key, &provider)
        .map_err(|e| format!("{} and {} do not make a usable pair: {e}", files.cert.display(), files.key.display()))
}

/// `sha256:1a2b…` of the leaf certificate, for logs.
fn fingerprint(key: &CertifiedKey) -> String {
    let leaf = key.cert.first().map(|c| c.as_ref()).unwrap_or_default();
    format!("sha256:{}", &hex::encode(Sha256::digest(leaf))[..16])
}
