//! Makes glibc's allocator give large buffers back to the OS when they are
//! freed.
//!
//! Fetch responses arrive in buffers of hundreds of KiB to tens of MiB.
//! glibc serves a large allocation with its own mmap only above a threshold
//! that it raises, after the first such buffer is freed, to that buffer's
//! size (up to 32 MiB). From then on the large buffers come from the
//! per-thread heaps, whose freed space stays resident and fragments: with
//! the default 64 MiB `memory_budget`, peak RSS while catching up was
//! 107–111 MiB instead of 82–85 MiB with the threshold fixed at 128 KiB
//! (BENCHMARKS.md, "Allocator"). The cost is a page fault per fresh page of
//! each large buffer, measured at 0.1–0.3 CPU s per GiB mirrored (of 1.4–1.8).

/// glibc's initial threshold, kept fixed instead of rising.
const MMAP_THRESHOLD: libc::c_int = 128 * 1024;

/// Fixes the threshold unless the operator tuned it with glibc's own
/// `MALLOC_MMAP_THRESHOLD_` or `GLIBC_TUNABLES`. Call before any thread starts.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn return_large_buffers_to_the_os() {
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_some()
        || std::env::var_os("GLIBC_TUNABLES").is_some()
    {
        return;
    }
    // SAFETY: mallopt only changes a setting of glibc's allocator; it is
    // called once, at start-up, before ferry starts any thread.
    #[allow(unsafe_code)]
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

/// Other allocators manage their own returns.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn return_large_buffers_to_the_os() {}
