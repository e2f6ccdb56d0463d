//! The client line framer (chunks of a byte stream in, lines and errors out).
//! The properties are chatp's `parser_checks::framing`, which the property
//! tests also run.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| chatp::parser_checks::framing(data));
