//! Process set-up shared by the binaries: logging to stderr, stop on
//! SIGTERM/SIGINT, the open-files limit, the allocator, idle stacks.

/// `<binary> <version>`, what `--version` prints.
pub fn version_line(binary: &str) -> String {
    format!("{binary} {} (chatp)", env!("CARGO_PKG_VERSION"))
}

/// Logs to stderr at `level`: time, level, message (no module or thread).
/// The PostgreSQL driver's own lines are left out: at debug they print
/// every statement's parameters (password hashes, names typed at login).
pub fn init_logging(level: log::LevelFilter) {
    use simplelog::{ColorChoice, ConfigBuilder, TermLogger, TerminalMode};
    let cfg = ConfigBuilder::new()
        .set_target_level(log::LevelFilter::Off)
        .set_thread_level(log::LevelFilter::Off)
        .add_filter_ignore_str("tokio_postgres")
        .add_filter_ignore_str("postgres")
        .build();
    let _ = TermLogger::init(level, cfg, TerminalMode::Stderr, ColorChoice::Never);
}

/// Calls `stop` (once, on a thread of its own) at the first SIGTERM or
/// SIGINT; Kubernetes sends SIGTERM before it kills a pod.
pub fn on_stop_signal(stop: impl FnOnce() + Send + 'static) {
    use signal_hook::consts::{SIGINT, SIGTERM};
    match signal_hook::iterator::Signals::new([SIGTERM, SIGINT]) {
        Ok(mut signals) => {
            std::thread::spawn(move || {
                if let Some(sig) = signals.forever().next() {
                    log::info!("signal {sig}: stopping");
                    stop();
                }
            });
        }
        Err(e) => log::warn!("cannot handle SIGTERM/SIGINT: {e}"),
    }
}

/// Raises the soft open-files limit to the hard one: each connection is a file.
pub fn raise_open_files_limit() {
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// The container's memory limit from its cgroup (v2 `memory.max`, v1
/// `memory.limit_in_bytes`); `None` when there is none.
pub fn memory_limit_bytes() -> Option<u64> {
    ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .and_then(|s| s.trim().parse::<u64>().ok())
        // cgroup v1 says "no limit" with a huge number.
        .filter(|&b| b < (1 << 60))
}

/// Keeps glibc's heap from growing with the number of threads: a few
/// arenas instead of 8 per core (thousands of user threads would otherwise
/// spread small allocations over many 64 MiB heaps), and fixed mmap and
/// trim thresholds, so freed large blocks go back to the kernel instead of
/// raising the thresholds and staying resident.
pub fn tune_malloc() {
    // SAFETY: mallopt only sets allocator parameters; called at start,
    // before other threads exist.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 * 1024);
    }
}

/// Gives the pages of this thread's stack below the current frame back to
/// the kernel, as glibc does for the stacks of exited threads. A user
/// thread calls it before it blocks waiting for its client's next line, so
/// an idle connection keeps only the few stack pages of that wait, not the
/// deepest its last request reached (logins and queries go through
/// PostgreSQL, Redis and Argon2 client code). The pages come back, zeroed,
/// if the thread goes deep again.
///
/// Never inlined: the released range ends 1 KiB (`MARGIN`) below a local of this
/// very frame, and only the `madvise` call (a syscall stub: a return
/// address) lives below it while the pages are dropped.
#[inline(never)]
pub fn release_unused_stack() {
    use std::cell::Cell;
    thread_local! {
        /// Lowest usable address of this thread's stack (0: unknown).
        static STACK_LOW: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    const PAGE: usize = 4096;
    /// Kept below this frame for the madvise call itself (the call returns
    /// through it).
    const MARGIN: usize = 1024;
    let low = STACK_LOW.with(|low| {
        if low.get() == usize::MAX {
            low.set(stack_low().unwrap_or(0));
        }
        low.get()
    });
    let marker = 0u8;
    let here = std::hint::black_box(&marker) as *const u8 as usize;
    let start = (low + PAGE - 1) & !(PAGE - 1);
    let end = here.saturating_sub(MARGIN) & !(PAGE - 1);
    if low == 0 || end <= start {
        return;
    }
    // SAFETY: [start, end) lies in this thread's own stack below the live
    // frames (and their red zone); nothing there is in use, and
    // MADV_DONTNEED on private anonymous memory only drops its contents.
    unsafe {
        libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
    }
}

/// The lowest address of the calling thread's stack above its guard page.
fn stack_low() -> Option<usize> {
    // SAFETY: pthread_getattr_np fills `attr`, which is destroyed after use;
    // the out-pointers are valid locals.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return None;
        }
        let (mut addr, mut size, mut guard) = (std::ptr::null_mut(), 0usize, 0usize);
        let ok = libc::pthread_attr_getstack(&attr, &mut addr, &mut size) == 0
            && libc::pthread_attr_getguardsize(&attr, &mut guard) == 0;
        libc::pthread_attr_destroy(&mut attr);
        ok.then(|| addr as usize + guard)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Resident KiB of the mapping holding `addr`, from /proc/self/smaps.
    fn resident_kib(addr: usize) -> u64 {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut inside = false;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ') {
                if let Some((a, b)) = range.split_once('-') {
                    if let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) {
                        inside = (a..b).contains(&addr);
                        continue;
                    }
                }
            }
            if inside && line.starts_with("Rss:") {
                return line.split_whitespace().nth(1).unwrap().parse().unwrap();
            }
        }
        panic!("no mapping holds {addr:#x}");
    }

    #[test]
    fn an_idle_thread_gives_back_the_stack_its_deep_calls_used() {
        fn deep(n: usize) -> usize {
            let buf = std::hint::black_box([n as u8; 1024]);
            if n == 0 {
                buf[0] as usize
            } else {
                deep(n - 1) + buf[1] as usize
            }
        }
        let t = std::thread::Builder::new()
            .stack_size(512 * 1024)
            .spawn(|| {
                let marker = 0u8;
                let here = &marker as *const u8 as usize;
                let a = deep(200);
                let touched = resident_kib(here);
                release_unused_stack();
                let released = resident_kib(here);
                let b = deep(200);
                (a == b, touched, released)
            })
            .unwrap();
        let (same, touched, released) = t.join().unwrap();
        assert!(same);
        assert!(touched >= 200, "deep calls touched {touched} KiB");
        assert!(released <= 32, "{released} KiB still resident after release (was {touched})");
    }
}
