//! Pub/sub payloads between pods: the router's envelopes, presence events.
//! The properties are chatp's `parser_checks::router_envelope`, which the property
//! tests also run.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| chatp::parser_checks::router_envelope(data));
