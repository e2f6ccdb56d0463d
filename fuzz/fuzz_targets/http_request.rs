//! The request head of the ops port and the dashboard
//! (`chatp::http::parse_request`): no input panics, and a head that parses
//! holds only what the parser promises. The property test
//! `http::request::tests::random_and_mutated_heads_never_panic` checks the
//! same on 100,000 inputs in the normal suite.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(head)) = chatp::http::parse_request(data) {
        assert!(head.path.starts_with('/'), "{head:?}");
        assert!(head.headers.len() <= chatp::http::MAX_HEADERS);
        assert!(head.headers.iter().all(|(n, _)| !n.is_empty() && n.to_ascii_lowercase() == *n));
        assert!(head.headers.iter().filter(|(n, _)| n == "host").count() <= 1);
    }
});
