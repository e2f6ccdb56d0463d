//! Test-only fault injection, compiled in only with the cargo feature
//! `fault-hooks` (the tests' build; release images never have it): a
//! chosen client line makes its connection's thread panic, so the tests can
//! prove that a panic anywhere in a connection releases what it held.
//! Without the feature every hook is an empty inline function.

#[cfg(feature = "fault-hooks")]
static PANIC_ON_LINE: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Arms the hook (`CHATP_FAULT_PANIC_ON_LINE`, read by the config).
#[cfg(feature = "fault-hooks")]
pub fn panic_on_line(line: String) {
    let _ = PANIC_ON_LINE.set(line);
}

/// Called with every line a client sends.
#[inline]
pub fn on_client_line(_line: &str) {
    #[cfg(feature = "fault-hooks")]
    if PANIC_ON_LINE.get().is_some_and(|l| l == _line) {
        panic!("fault hook: a client sent the line that panics");
    }
}

/// Whether this build has the hooks (the tests that need them say so).
pub const ENABLED: bool = cfg!(feature = "fault-hooks");
