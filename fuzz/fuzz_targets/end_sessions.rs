//! chat:admin payloads: EndSessions.
//! The properties are chatp's `parser_checks::end_sessions`, which the property
//! tests also run.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| chatp::parser_checks::end_sessions(data));
