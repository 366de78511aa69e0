//! Zeroed memory whose pages are mapped writable from the start.
//!
//! A large zeroed allocation is fresh `mmap` memory: its pages are mapped on first touch. When
//! the first touch is a read (a hash-table probe, a cache lookup), the kernel maps the shared
//! zero page read-only, and the first write then replaces that mapping, which needs a TLB flush
//! on every other CPU running the process: an inter-processor interrupt per page, expensive in
//! a virtual machine (each one exits to the hypervisor) and felt by the profiled program's
//! threads, which receive them. The writer's live-block table hit this once per page on every
//! growth (≈ 5% of a python3 run's CPU). Writing each page first maps it writable directly,
//! with no flush.

/// Bytes between two writes: the smallest page size.
const PAGE: usize = 4096;

/// Writes a zero byte into every page of the `len` bytes at `p`.
///
/// # Safety
/// `p..p + len` must be writable memory of one allocation that is all zero bytes (so that
/// writing zeros changes nothing).
pub unsafe fn map_zeroed_for_write(p: *mut u8, len: usize) {
    let mut off = 0;
    while off < len {
        // SAFETY: in bounds (caller); a zero byte over a zero byte. Volatile: the write must
        // happen although it stores what is there.
        unsafe { std::ptr::write_volatile(p.add(off), 0) };
        off += PAGE;
    }
}

/// A `T` on the heap, allocated zeroed in place (for arrays too large for a small thread
/// stack), its pages mapped writable (see the module documentation).
///
/// # Safety
/// All-zero bytes must be a valid `T` (plain integers, booleans, arrays of them).
pub unsafe fn boxed_zeroed<T>() -> Box<T> {
    // SAFETY: forwarded contract.
    let b = unsafe { boxed_zeroed_lazy::<T>() };
    let p = Box::into_raw(b);
    // SAFETY: the block is `size_of::<T>()` zero bytes, owned, writable; back into its Box.
    unsafe {
        map_zeroed_for_write(p.cast(), std::mem::size_of::<T>());
        Box::from_raw(p)
    }
}

/// A `T` on the heap, allocated zeroed in place, its pages left to be mapped on first touch:
/// for per-thread memory that most threads touch only in part (a thread's kept stack walks,
/// ≈ 190 KiB, of which a thread with one call site uses a few pages). Each page read before it
/// is written costs one flush when written (see the module documentation): once per page for
/// the life of the thread, not on every growth as for a table.
///
/// # Safety
/// All-zero bytes must be a valid `T` (plain integers, booleans, arrays of them).
pub unsafe fn boxed_zeroed_lazy<T>() -> Box<T> {
    let layout = std::alloc::Layout::new::<T>();
    assert!(layout.size() > 0, "boxed_zeroed of a zero-sized type");
    // SAFETY: the layout is non-zero sized; a null result is handled; the caller vouches that
    // the zeroed bytes are a valid `T`, and the block is the global allocator's, as a Box needs.
    unsafe {
        let p = std::alloc::alloc_zeroed(layout) as *mut T;
        if p.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        Box::from_raw(p)
    }
}

/// `n` values of `T` on the heap, allocated zeroed, their pages left to be mapped on first touch:
/// for a large table whose every first touch is a write (an atomic exchange), so that a process
/// that fills little of it maps little of it.
///
/// # Safety
/// All-zero bytes must be a valid `T` (plain integers, atomics of them).
pub unsafe fn zeroed_slice_lazy<T>(n: usize) -> Box<[T]> {
    let layout = std::alloc::Layout::array::<T>(n).expect("a table that fits in memory");
    if layout.size() == 0 {
        return Vec::new().into_boxed_slice();
    }
    // SAFETY: the layout is non-zero sized; a null result is handled; the caller vouches that
    // the zeroed bytes are valid `T`s, and the block is the global allocator's, with the layout
    // of `n` of them, as a boxed slice needs.
    unsafe {
        let p = std::alloc::alloc_zeroed(layout) as *mut T;
        if p.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        Box::from_raw(std::ptr::slice_from_raw_parts_mut(p, n))
    }
}

/// `n` copies of `zero`, a value whose bytes are all zero (e.g. `(0u64, 0u64)`), in memory
/// mapped writable from the start (see the module documentation).
pub fn zeroed_vec<T: Copy>(n: usize, zero: T) -> Vec<T> {
    debug_assert!(
        // SAFETY: reads the bytes of a `Copy` value on the stack.
        unsafe {
            std::slice::from_raw_parts((&zero as *const T).cast::<u8>(), std::mem::size_of::<T>())
        }
        .iter()
        .all(|&b| b == 0),
        "zeroed_vec needs an all-zero value"
    );
    let mut v = vec![zero; n];
    let len = std::mem::size_of_val(v.as_slice());
    // No transparent huge pages (`MADV_HUGEPAGE`): they spared the writer's 64 MB table of 3 M
    // live blocks its TLB misses (0.92× wall on one virtual machine), but where the host backs
    // the guest's memory in 4 KiB pages a huge page's first write faults 512 times in the host:
    // 64 MB took 140–190 ms to touch against 40 ms in small pages, and the live set ran 0.84×
    // without them (docs/performance.md, speed round 18).
    // SAFETY: the vector's `n` elements are all-zero bytes, owned and writable.
    unsafe { map_zeroed_for_write(v.as_mut_ptr().cast(), len) };
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroed_slice_is_zero() {
        // SAFETY: zero is a valid u64.
        let v: Box<[u64]> = unsafe { zeroed_slice_lazy(1 << 20) };
        assert_eq!(v.len(), 1 << 20);
        assert!(v.iter().all(|&e| e == 0));
        // SAFETY: as above.
        let e: Box<[u64]> = unsafe { zeroed_slice_lazy(0) };
        assert!(e.is_empty());
    }

    #[test]
    fn zeroed_vec_is_zero() {
        let v = zeroed_vec(100_000, (0u64, 0u64));
        assert_eq!(v.len(), 100_000);
        assert!(v.iter().all(|&e| e == (0, 0)));
    }
}
