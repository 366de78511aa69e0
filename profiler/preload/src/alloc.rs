//! glibc's allocator entry points that are never interposed, and the library's own
//! `#[global_allocator]` on top of them.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

extern "C" {
    pub fn __libc_malloc(size: usize) -> *mut c_void;
    pub fn __libc_calloc(n: usize, size: usize) -> *mut c_void;
    pub fn __libc_realloc(p: *mut c_void, size: usize) -> *mut c_void;
    pub fn __libc_free(p: *mut c_void);
    pub fn __libc_memalign(align: usize, size: usize) -> *mut c_void;
    pub fn __libc_valloc(size: usize) -> *mut c_void;
    pub fn __libc_pvalloc(size: usize) -> *mut c_void;
}

/// Alignment malloc guarantees on x86_64 glibc.
const MALLOC_ALIGN: usize = 16;

/// The library's own allocator: glibc directly, so the recorder's allocations never reach
/// the exported hooks.
pub struct LibcAllocator;

// SAFETY: forwards to glibc with alignment handled: malloc's 16-byte guarantee, memalign
// beyond it; realloc beyond it copies into a fresh aligned block.
unsafe impl GlobalAlloc for LibcAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: plain glibc calls.
        unsafe {
            if layout.align() <= MALLOC_ALIGN {
                __libc_malloc(layout.size()).cast()
            } else {
                __libc_memalign(layout.align(), layout.size()).cast()
            }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= MALLOC_ALIGN {
            // SAFETY: plain glibc call.
            unsafe { __libc_calloc(1, layout.size()).cast() }
        } else {
            // SAFETY: the block has `size` writable bytes when non-null.
            unsafe {
                let p = self.alloc(layout);
                if !p.is_null() {
                    std::ptr::write_bytes(p, 0, layout.size());
                }
                p
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator, i.e. from glibc.
        unsafe { __libc_free(ptr.cast()) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator with `layout`; the copy stays within both
        // blocks.
        unsafe {
            if layout.align() <= MALLOC_ALIGN {
                return __libc_realloc(ptr.cast(), new_size).cast();
            }
            let new = __libc_memalign(layout.align(), new_size) as *mut u8;
            if !new.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                __libc_free(ptr.cast());
            }
            new
        }
    }
}

#[cfg(not(test))]
#[global_allocator]
static GLOBAL: LibcAllocator = LibcAllocator;
