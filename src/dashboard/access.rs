//! Who may see the dashboard: the Host check (a page of another site that
//! a browser resolves to the dashboard's address, DNS rebinding, carries
//! that site's name in `Host`) and the login (HTTP basic auth, or the
//! password as a bearer token), compared in constant time.

use std::net::{Ipv4Addr, Ipv6Addr};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::Login;

/// The dashboard's rules, built once from its config.
pub struct Access {
    /// SHA-256 of the `Basic` credentials and of the bearer token; `None`:
    /// no login.
    login: Option<([u8; 32], [u8; 32])>,
    /// Host names accepted besides `localhost`, lower case.
    hosts: Vec<String>,
}

impl Access {
    pub fn new(login: Option<&Login>, allowed_hosts: &[String]) -> Access {
        let login = login.map(|l| {
            let basic = base64(format!("{}:{}", l.user, l.password).as_bytes());
            (digest(basic.as_bytes()), digest(l.password.as_bytes()))
        });
        Access { login, hosts: allowed_hosts.to_vec() }
    }

    pub fn login_required(&self) -> bool {
        self.login.is_some()
    }

    /// Whether a `Host` header names this dashboard: absent (HTTP/1.0), an
    /// IP address (the kubelet's probes use the pod's), `localhost`, or one
    /// of the allowed names; any port.
    pub fn host_allowed(&self, host: Option<&str>) -> bool {
        let Some(host) = host else { return true };
        let name = match host.strip_prefix('[') {
            Some(v6) => return v6.split_once(']').is_some_and(|(ip, _)| ip.parse::<Ipv6Addr>().is_ok()),
            None => host.rsplit_once(':').map_or(host, |(name, _port)| name),
        };
        if name.parse::<Ipv4Addr>().is_ok() {
            return true;
        }
        let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
        name == "localhost" || self.hosts.contains(&name)
    }

    /// Whether an `Authorization` header carries the login (always true
    /// without one).
    pub fn authorized(&self, authorization: Option<&str>) -> bool {
        let Some((basic, bearer)) = &self.login else { return true };
        let Some((scheme, credentials)) = authorization.and_then(|a| a.split_once(' ')) else { return false };
        let given = digest(credentials.trim().as_bytes());
        // Hashed first: the comparison takes the same time whatever the
        // length or content given.
        if scheme.eq_ignore_ascii_case("basic") {
            given.ct_eq(basic).into()
        } else if scheme.eq_ignore_ascii_case("bearer") {
            given.ct_eq(bearer).into()
        } else {
            false
        }
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Standard base64 with padding (RFC 4648), as browsers send basic auth.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk.first().copied(), chunk.get(1).copied(), chunk.get(2).copied()];
        let n =
            (u32::from(b[0].unwrap_or(0)) << 16) | (u32::from(b[1].unwrap_or(0)) << 8) | u32::from(b[2].unwrap_or(0));
        for (i, present) in [true, true, b[1].is_some(), b[2].is_some()].into_iter().enumerate() {
            let sextet = (n >> (18 - 6 * i)) & 0x3f;
            out.push(if present { char::from(ALPHABET[sextet as usize]) } else { '=' });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_as_rfc_4648() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("admin:s3cret", "YWRtaW46czNjcmV0"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn hosts_ips_localhost_and_the_allowed_names_only() {
        let a = Access::new(None, &["dash.example.org".into()]);
        for ok in [None, Some("localhost"), Some("LOCALHOST:8080"), Some("localhost."), Some("10.1.2.3:8080")] {
            assert!(a.host_allowed(ok), "{ok:?}");
        }
        for ok in ["127.0.0.1", "[::1]:8080", "[fd00::5]", "dash.example.org:443", "Dash.Example.Org"] {
            assert!(a.host_allowed(Some(ok)), "{ok}");
        }
        for bad in ["evil.example", "evil.example:8080", "localhost.evil.example", "", "[nothing]:80", "10.1.2.3.evil"]
        {
            assert!(!a.host_allowed(Some(bad)), "{bad}");
        }
    }

    #[test]
    fn basic_or_bearer_with_the_right_password_only() {
        let open = Access::new(None, &[]);
        assert!(open.authorized(None) && !open.login_required());
        let a = Access::new(Some(&Login { user: "admin".into(), password: "s3cret".into() }), &[]);
        assert!(a.login_required());
        assert!(a.authorized(Some("Basic YWRtaW46czNjcmV0")));
        assert!(a.authorized(Some("basic  YWRtaW46czNjcmV0 ")));
        assert!(a.authorized(Some("Bearer s3cret")));
        for bad in [
            None,
            Some(""),
            Some("Basic"),
            Some("Basic czNjcmV0"),
            Some("Basic YWRtaW46czNjcmV1"),
            Some("Bearer s3cre"),
            Some("Digest s3cret"),
        ] {
            assert!(!a.authorized(bad), "{bad:?}");
        }
    }
}
