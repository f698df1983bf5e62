//! The global allocator of the binary (and of the examples that measure its memory):
//! mimalloc, asked for alignment only when a layout needs more than every block has; and the
//! process's page size policy ([`small_pages`]). Nothing else in the crate is `unsafe`.

/// mimalloc, asked for alignment only when a layout needs more than every block has.
///
/// `mimalloc::MiMalloc` passes every layout to `mi_malloc_aligned`, and mimalloc v3 serves
/// a block over 1 KiB whose size is not a power of two by over-allocating and aligning it by
/// hand — about ten such blocks per cache hit (the boxed layer futures; `bench/RESULTS.md`).
/// Like std's `System` allocator with `malloc`, this
/// uses plain `mi_malloc` when the alignment is at most 16 and at most the size: like glibc's
/// `malloc`, mimalloc gives every block of 16 bytes or more 16-byte alignment (`MI_ALIGN2W`,
/// since its `MI_MAX_ALIGN_SIZE` is 16: small sizes are rounded to two words) and every block
/// 8-byte alignment. The test below checks every size up to 4 KiB, padded to its alignment or
/// not, at every alignment from 1 to 4096.
pub struct Mimalloc;

/// The alignment every mimalloc block of at least this size has (`MI_MAX_ALIGN_SIZE`).
const MI_MAX_ALIGN: usize = 16;

fn plain(layout: std::alloc::Layout, size: usize) -> bool {
    layout.align() <= MI_MAX_ALIGN && layout.align() <= size
}

// SAFETY: every block comes from mimalloc and goes back to it (`mi_free` takes blocks from
// all of its allocation functions); alignment is as argued on the type.
unsafe impl std::alloc::GlobalAlloc for Mimalloc {
    #[inline]
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        let size = layout.size();
        // SAFETY: plain C allocation calls; a null result is passed on as the trait allows.
        unsafe {
            if plain(layout, size) {
                libmimalloc_sys::mi_malloc(size).cast()
            } else {
                libmimalloc_sys::mi_malloc_aligned(size, layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        let size = layout.size();
        // SAFETY: as `alloc`.
        unsafe {
            if plain(layout, size) {
                libmimalloc_sys::mi_zalloc(size).cast()
            } else {
                libmimalloc_sys::mi_zalloc_aligned(size, layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: std::alloc::Layout) {
        // SAFETY: `ptr` came from this allocator (the trait's contract).
        unsafe { libmimalloc_sys::mi_free(ptr.cast()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator with `layout` (the trait's contract).
        unsafe {
            if plain(layout, new) {
                libmimalloc_sys::mi_realloc(ptr.cast(), new).cast()
            } else {
                libmimalloc_sys::mi_realloc_aligned(ptr.cast(), new, layout.align()).cast()
            }
        }
    }
}

/// Keeps the process on 4 KiB pages: the kernel gives it no transparent huge pages (THP),
/// whatever the system-wide THP mode. Call it first thing in `main`. Skipped when
/// `MIMALLOC_ALLOW_THP` is set: mimalloc then applies that choice itself.
///
/// mimalloc asks for THP on its arenas (`madvise(MADV_HUGEPAGE)`), so the first write into each
/// 2 MiB region makes the kernel zero all 2 MiB, inside whichever request touched it. A burst
/// of concurrent requests needs fresh heap all at once, so every answer of the burst waits for
/// that zeroing (tens of ms on a VM whose memory the host has not backed yet;
/// `bench/RESULTS.md`). 4 KiB faults zero only what is used.
/// Latency-sensitive servers (Redis, MongoDB) advise turning THP off for the same reason.
pub fn small_pages() {
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_some() {
        return;
    }
    #[cfg(target_os = "linux")]
    // SAFETY: `prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0)` takes integers only and changes one flag
    // of the process's memory map; it reads and writes none of our memory. An error (a kernel
    // before 3.15) leaves THP as it was, which is harmless.
    unsafe {
        let _ = libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

#[cfg(test)]
mod tests {
    use std::alloc::{GlobalAlloc, Layout};

    use super::Mimalloc;

    /// Every size up to 4 KiB (and a few large ones) at every alignment from 1 to 4096,
    /// padded to the alignment or not: the block is aligned, usable, and keeps its bytes
    /// through growing and shrinking.
    #[test]
    fn blocks_are_aligned_and_keep_their_bytes() {
        let sizes = (1..=4096).chain([6000, 65_536, 1 << 20, (1 << 20) + 24]);
        for size in sizes {
            for align in [1, 2, 4, 8, 16, 32, 64, 128, 4096] {
                let Ok(raw) = Layout::from_size_align(size, align) else {
                    continue;
                };
                // as types have them (size a multiple of the alignment), and as built by hand
                for layout in [raw.pad_to_align(), raw] {
                    // SAFETY: a non-zero layout, freed below with the same allocator.
                    unsafe {
                        let p = Mimalloc.alloc(layout);
                        assert!(!p.is_null());
                        assert_eq!(p as usize % align, 0, "size {size} align {align}");
                        std::ptr::write_bytes(p, 0xA5, layout.size());
                        let z = Mimalloc.alloc_zeroed(layout);
                        assert_eq!(z as usize % align, 0, "zeroed size {size} align {align}");
                        assert!(
                            std::slice::from_raw_parts(z, layout.size())
                                .iter()
                                .all(|b| *b == 0)
                        );
                        Mimalloc.dealloc(z, layout);
                        // grow, then shrink back: aligned, and the bytes kept
                        let big = Layout::from_size_align_unchecked(layout.size() * 3, align);
                        let g = Mimalloc.realloc(p, layout, big.size());
                        assert_eq!(g as usize % align, 0, "grown size {size} align {align}");
                        assert!(
                            std::slice::from_raw_parts(g, layout.size())
                                .iter()
                                .all(|b| *b == 0xA5)
                        );
                        let s = Mimalloc.realloc(g, big, layout.size());
                        assert_eq!(s as usize % align, 0, "shrunk size {size} align {align}");
                        assert!(
                            std::slice::from_raw_parts(s, layout.size())
                                .iter()
                                .all(|b| *b == 0xA5)
                        );
                        Mimalloc.dealloc(s, layout);
                    }
                }
            }
        }
    }
}
