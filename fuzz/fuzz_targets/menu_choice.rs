//! The main menu's input.
//! The properties are chatp's `parser_checks::menu_choice`, which the property
//! tests also run.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| chatp::parser_checks::menu_choice(data));
