//! Server lines as chat_client reads them, protocol 2's tokens above all.
//! The properties are chatp's `parser_checks::server_line`, which the property
//! tests also run.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| chatp::parser_checks::server_line(data));
