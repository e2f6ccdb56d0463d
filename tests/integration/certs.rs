//! A private PKI per test: CAs and certificates generated with rcgen, and
//! written as PEM files where a server reads them.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

use crate::support::unique;

/// A certificate authority.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        Ca { issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap() }
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A leaf for `names` (DNS names or IP addresses): (cert PEM, key PEM).
    pub fn issue(&self, names: &[&str]) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// A directory of PEM files, removed on drop.
pub struct PemDir {
    pub dir: PathBuf,
}

impl PemDir {
    pub fn new() -> PemDir {
        let dir = std::env::temp_dir().join(unique("chatp-pki-"));
        std::fs::create_dir_all(&dir).unwrap();
        PemDir { dir }
    }

    pub fn write(&self, name: &str, pem: &str) -> PathBuf {
        let path = self.dir.join(name);
        // Replace the file whole, as a Secret update does (rename).
        let tmp = self.dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, pem).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        path
    }
}

impl Drop for PemDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}
