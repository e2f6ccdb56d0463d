//! Usernames at signup, group names and descriptions (menu 5).
//! The properties are chatp's `parser_checks::names`, which the property
//! tests also run.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| chatp::parser_checks::names(data));
