//! The exported malloc family, recorded, then served by the
//! chosen allocator ([`crate::backend`]).

use crate::backend::{self, set_errno};
use std::ffi::{c_char, c_void};
use tidemark::record::{self, AllocKind};

fn errno() -> i32 {
    // SAFETY: as above.
    unsafe { *libc::__errno_location() }
}

/// `malloc`.
///
/// # Safety
/// C semantics.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn malloc(size: usize) -> *mut c_void {
    // SAFETY: the closure is the real allocation.
    unsafe {
        record::record_alloc(AllocKind::Malloc, size, 0, || backend::malloc(size).cast()).cast()
    }
}

/// `free`.
///
/// # Safety
/// C semantics.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn free(ptr: *mut c_void) {
    // SAFETY: the closure is the real free of `ptr`.
    unsafe { record::record_free(ptr.cast(), || backend::free(ptr)) }
}

/// `calloc`: overflow of `n * size` gives NULL and ENOMEM.
///
/// # Safety
/// C semantics.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn calloc(n: usize, size: usize) -> *mut c_void {
    let Some(total) = n.checked_mul(size) else {
        set_errno(libc::ENOMEM);
        return std::ptr::null_mut();
    };
    // SAFETY: the closure is the real allocation.
    unsafe {
        record::record_alloc(AllocKind::Calloc, total, 0, || {
            backend::calloc(n, size).cast()
        })
        .cast()
    }
}

/// `realloc`: `realloc(NULL, n)` allocates; `realloc(p, 0)` frees `p` and returns NULL.
///
/// # Safety
/// C semantics.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn realloc(ptr: *mut c_void, size: usize) -> *mut c_void {
    // SAFETY: the closure is the real realloc.
    unsafe {
        record::record_realloc(ptr.cast(), size, AllocKind::Realloc, || {
            backend::realloc(ptr, size).cast()
        })
        .cast()
    }
}

/// `reallocarray`: overflow of `n * size` gives NULL and ENOMEM, leaving `ptr` untouched.
///
/// # Safety
/// C semantics.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn reallocarray(ptr: *mut c_void, n: usize, size: usize) -> *mut c_void {
    let Some(total) = n.checked_mul(size) else {
        set_errno(libc::ENOMEM);
        return std::ptr::null_mut();
    };
    // SAFETY: the closure is the real realloc.
    unsafe {
        record::record_realloc(ptr.cast(), total, AllocKind::Reallocarray, || {
            backend::realloc(ptr, total).cast()
        })
        .cast()
    }
}

/// `posix_memalign`: EINVAL unless `align` is a power-of-two multiple of `sizeof(void *)`,
/// ENOMEM on exhaustion; never changes `errno`.
///
/// # Safety
/// C semantics.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> i32 {
    let word = std::mem::size_of::<*mut c_void>();
    if align == 0 || !align.is_multiple_of(word) || !(align / word).is_power_of_two() {
        return libc::EINVAL;
    }
    let saved = errno();
    // SAFETY: the closure is the real allocation.
    let p = unsafe {
        record::record_alloc(AllocKind::PosixMemalign, size, align, || {
            let mut p = std::ptr::null_mut();
            match backend::posix_memalign(&mut p, align, size) {
                0 => p.cast(),
                _ => std::ptr::null_mut(),
            }
        })
    };
    set_errno(saved);
    if p.is_null() {
        return libc::ENOMEM;
    }
    // SAFETY: the caller passes a valid out-pointer.
    unsafe { *out = p.cast() };
    0
}

/// `aligned_alloc`.
///
/// # Safety
/// C semantics.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    // SAFETY: the closure is the real allocation.
    unsafe {
        record::record_alloc(AllocKind::AlignedAlloc, size, align, || {
            backend::aligned_alloc(align, size).cast()
        })
        .cast()
    }
}

/// `memalign`.
///
/// # Safety
/// C semantics.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn memalign(align: usize, size: usize) -> *mut c_void {
    // SAFETY: the closure is the real allocation.
    unsafe {
        record::record_alloc(AllocKind::Memalign, size, align, || {
            backend::memalign(align, size).cast()
        })
        .cast()
    }
}

/// `valloc`: page-aligned.
///
/// # Safety
/// C semantics.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn valloc(size: usize) -> *mut c_void {
    // SAFETY: the closure is the real allocation.
    unsafe {
        record::record_alloc(AllocKind::Valloc, size, backend::page_size(), || {
            backend::valloc(size).cast()
        })
        .cast()
    }
}

/// `pvalloc`: page-aligned, size rounded up to whole pages (the recorded size is the
/// requested one).
///
/// # Safety
/// C semantics.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn pvalloc(size: usize) -> *mut c_void {
    // SAFETY: the closure is the real allocation.
    unsafe {
        record::record_alloc(AllocKind::Pvalloc, size, backend::page_size(), || {
            backend::pvalloc(size).cast()
        })
        .cast()
    }
}

/// `malloc_usable_size`, answered by the allocator that owns the block (not recorded).
///
/// # Safety
/// C semantics.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn malloc_usable_size(ptr: *mut c_void) -> usize {
    // SAFETY: forwarded contract.
    unsafe { backend::usable_size(ptr) }
}

/// jemalloc's `mallctl` (`opt.*`, `stats.*`, ...) when `TIDEMARK_ALLOCATOR=jemalloc` serves
/// the program; fails with ENOENT otherwise.
///
/// # Safety
/// C semantics of jemalloc's `mallctl`.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn mallctl(
    name: *const c_char,
    oldp: *mut c_void,
    oldlenp: *mut usize,
    newp: *mut c_void,
    newlen: usize,
) -> i32 {
    // SAFETY: forwarded contract.
    unsafe { backend::mallctl(name, oldp, oldlenp, newp, newlen) }
}
