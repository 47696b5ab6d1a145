//! Settings for mimalloc, the allocator the shipped binaries (`partners-gateway`, `loadtest`)
//! and the benchmarks use. A library does not choose its caller's allocator; a binary that
//! chose mimalloc calls [`tune`] first thing in `main`.
//!
//! The committer and the projector allocate and free megabytes per batch (transactions, journal
//! blocks, encoded records). By default mimalloc gives freed memory back to the kernel after
//! 1 s; a second later it takes it back, and the kernel zeroes every page again on first touch
//! (2 MB at a time where transparent huge pages apply). On the committer benchmark that was
//! 44,677 page faults in 20 s of CPU and about a tenth of the committer's and a sixth of the
//! projector's samples (`docs/benchmarks.md`). Holding freed memory for 10 s cut the faults to
//! about 4,000; memory a quiet process no longer uses still goes back, 10 s later.
//!
//! Transparent huge pages are turned off for the process (Linux). mimalloc asks for them on its
//! arenas, and the kernel then backs a first touch with a 2 MiB page, zeroed at once. On this
//! project's machine (a virtual machine whose host reclaims memory the guest freed) a fresh
//! 2 MiB page took about 26 ms to fault in: 512 MB touched for the first time took 6.0-6.6 s
//! in 2 MiB pages against 0.25-0.31 s in 4 KiB pages. A process that grows (the key index, the
//! members' lots, fjall's memtables) met those stalls on the writer and the request path: the
//! open loop's p99 and the commit p99 fell by half or more without them
//! (`docs/benchmarks.md`). An operator on hardware where huge pages pay may set
//! `MIMALLOC_ALLOW_THP=1`; `tune` then leaves them on.

/// How long freed memory stays mapped before mimalloc returns it to the kernel, in ms.
pub const PURGE_DELAY_MS: i64 = 10_000;

/// `mi_option_purge_delay` in mimalloc's `mi_option_t` (`mimalloc.h`, v2 and v3); the Rust
/// bindings name the options around it but not this one.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Applies the settings above. Harmless when mimalloc is linked but not the global allocator.
pub fn tune() {
    // SAFETY: sets one process-wide option value; it takes no pointers and mimalloc reads the
    // option afresh each time it decides to purge.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS as _) };
    if !huge_pages_wanted(std::env::var("MIMALLOC_ALLOW_THP").ok().as_deref()) {
        huge_pages_off();
    }
}

/// Returns what the calling thread's heap freed to the kernel now, not after
/// [`PURGE_DELAY_MS`]: for a thread about to end that grew large tables (each doubling frees
/// the smaller one), whose freed pages no other thread would reuse soon. Harmless where
/// mimalloc is linked but not the global allocator.
pub fn release_freed() {
    // SAFETY: takes no pointers; collects the calling thread's own heap.
    unsafe { libmimalloc_sys::mi_collect(true) };
}

/// Bytes mimalloc holds committed from the kernel: its live allocations, the free space in
/// its pages, and freed pages it has not yet returned. Beside the resident set it tells how
/// much of a process's memory is the allocator's. Near zero where mimalloc is linked but not
/// the global allocator.
pub fn committed_bytes() -> usize {
    let (mut elapsed, mut user, mut system, mut rss, mut peak_rss) = (0, 0, 0, 0, 0);
    let (mut commit, mut peak_commit, mut faults) = (0, 0, 0);
    // SAFETY: every pointer is to a live local `usize`, which mimalloc only writes.
    unsafe {
        libmimalloc_sys::mi_process_info(
            &mut elapsed,
            &mut user,
            &mut system,
            &mut rss,
            &mut peak_rss,
            &mut commit,
            &mut peak_commit,
            &mut faults,
        )
    };
    commit
}

/// The process's resident set in bytes, from `/proc/self/statm`; `None` where there is no
/// such file (not Linux).
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}

/// Turns transparent huge pages off for this process and its children (Linux only).
fn huge_pages_off() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_SET_THP_DISABLE takes integer arguments only and sets a flag on this
        // process (kept by its children), which the kernel reads at each page fault.
        let done = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
        if done != 0 {
            tracing::warn!("transparent huge pages left on: prctl refused");
        }
    }
}

/// Whether the operator asked for transparent huge pages (`MIMALLOC_ALLOW_THP` set, not 0).
fn huge_pages_wanted(setting: Option<&str>) -> bool {
    setting.is_some_and(|v| {
        let v = v.trim();
        !(v == "0" || v.eq_ignore_ascii_case("false") || v.eq_ignore_ascii_case("off"))
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn huge_pages_stay_off_unless_the_operator_asks() {
        assert!(!super::huge_pages_wanted(None));
        assert!(!super::huge_pages_wanted(Some("0")));
        assert!(!super::huge_pages_wanted(Some("off")));
        assert!(super::huge_pages_wanted(Some("1")));
        assert!(super::huge_pages_wanted(Some("2")));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn huge_pages_are_turned_off_for_the_process() {
        super::huge_pages_off();
        // SAFETY: reads this process's flag; no pointers.
        let off = unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) };
        assert_eq!(off, 1);
    }

    #[test]
    fn the_purge_delay_is_set_on_the_option_mimalloc_reads() {
        super::tune();
        // SAFETY: reads one option.
        let got = unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY) };
        assert_eq!(got as i64, super::PURGE_DELAY_MS);
        // And its neighbour the bindings do name is where the enum puts it.
        assert_eq!(
            libmimalloc_sys::mi_option_use_numa_nodes - 1,
            super::MI_OPTION_PURGE_DELAY
        );
    }
}
