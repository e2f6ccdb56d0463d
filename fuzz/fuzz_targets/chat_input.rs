//! Lines in a conversation, the broadcast channel and a group chat.
//! The properties are chatp's `parser_checks::chat_input`, which the property
//! tests also run.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| chatp::parser_checks::chat_input(data));
