//! Gives free heap memory back to the operating system.
//!
//! glibc's allocator keeps pages that were freed in the middle of its heaps
//! (and in the per-thread arenas) resident until the process asks for them
//! to be released with `malloc_trim`. After a load, the SQLite page caches,
//! messages and sessions it held are free but still counted in the
//! server's resident memory until then. The server calls [`trim`] after it
//! closes idle mailboxes.
//!
//! This crate exists so that the one `unsafe` foreign call sealmail makes
//! itself stays out of the main crate, which forbids `unsafe` code.
//! It imports libc only. Invariant: [`trim`] is safe to call from any
//! thread at any time; it only changes which free pages are resident.

/// Releases free heap pages of every arena to the OS. True if memory was
/// released; always false where the C library is not glibc.
pub fn trim() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim takes a plain integer, touches only the
        // allocator's own state under its own locks, and is documented as
        // callable from any thread.
        unsafe { libc::malloc_trim(0) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    fn rss_kib() -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                let v = s.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
                v.trim().trim_end_matches("kB").trim().parse().ok()
            })
            .unwrap_or(0)
    }

    #[test]
    fn freed_small_allocations_leave_the_resident_set_after_a_trim() {
        // 160 MiB in 1 KiB blocks (below mmap's threshold, so they come from
        // the heap), on another thread as a session's would, then freed
        // except the last block, which keeps the heap's top in use.
        let (peak, after_free, pin) = std::thread::spawn(|| {
            let mut blocks: Vec<Vec<u8>> = (0..160 * 1024).map(|i| vec![i as u8; 1024]).collect();
            let peak = rss_kib();
            let pin = blocks.pop();
            drop(blocks);
            (peak, rss_kib(), pin)
        })
        .join()
        .unwrap();
        super::trim();
        let after_trim = rss_kib();
        drop(pin);
        println!("RSS peak {peak} KiB, freed {after_free} KiB, trimmed {after_trim} KiB");
        assert!(
            after_trim + 100 * 1024 < peak,
            "peak {peak} KiB, after the trim {after_trim} KiB"
        );
    }
}
