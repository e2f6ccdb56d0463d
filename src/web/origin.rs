//! Which pages may open `/ws`: the chat's own (the `Origin` names the host
//! the request went to), those of `WEB_ALLOWED_ORIGINS`, and clients that
//! are not browsers (no `Origin`: nothing a web page can make).

/// Whether a WebSocket request from `origin` to `host` may proceed.
/// `allowed`: lower-case origins without a trailing `/`; when there are
/// some, they alone are allowed (the `Host` a page names is its own word: a
/// DNS-rebinding page at `http://evil:port` sends a matching one). Else
/// the own origin matches with either scheme: behind a proxy that ends TLS
/// the pod sees plain HTTP for an `https://` page.
pub fn origin_allowed(origin: Option<&str>, host: Option<&str>, tls: bool, allowed: &[String]) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
    if !allowed.is_empty() {
        return allowed.contains(&origin);
    }
    let Some(host) = host.map(|h| h.trim().to_ascii_lowercase()).filter(|h| !h.is_empty()) else {
        return false;
    };
    let schemes: &[&str] = if tls { &["https"] } else { &["http", "https"] };
    schemes.iter().any(|scheme| origin == format!("{scheme}://{host}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pages_own_origin_and_the_listed_ones_only() {
        let listed = vec!["https://chat.example.com".to_string()];
        let host = Some("127.0.0.1:8080");
        assert!(origin_allowed(Some("http://127.0.0.1:8080"), host, false, &[]));
        assert!(origin_allowed(Some("HTTP://127.0.0.1:8080/"), host, false, &[]));
        assert!(origin_allowed(None, host, false, &[]), "not a browser");
        assert!(origin_allowed(Some("https://chat.example.com"), host, false, &listed));
        for hostile in
            ["http://evil.example", "null", "http://127.0.0.1:8081", "http://127.0.0.1:8080.evil.example", ""]
        {
            assert!(!origin_allowed(Some(hostile), host, false, &listed), "{hostile}");
        }
        assert!(!origin_allowed(Some("http://127.0.0.1:8080"), host, true, &[]), "an http page on a TLS port");
        assert!(!origin_allowed(Some("http://x"), None, false, &[]), "no Host: nothing is own");
    }
}
