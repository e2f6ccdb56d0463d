//! The authentication choice: LOGIN, SIGNUP, HELLO, RESUME, INVITE.
//! The properties are chatp's `parser_checks::auth_choice`, which the property
//! tests also run.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| chatp::parser_checks::auth_choice(data));
