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
}

#[cfg(test)]
mod tests {
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
