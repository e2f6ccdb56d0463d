//! The group lists' input (menus 3 and 4): an id, join:<id>, back.
//! The properties are chatp's `parser_checks::group_selection`, which the property
//! tests also run.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| chatp::parser_checks::group_selection(data));
