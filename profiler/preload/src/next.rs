//! The definitions the program would use without tidemark: each malloc-family function is
//! forwarded to the next definition in lookup order (`dlsym(RTLD_NEXT, ..)`), so a program
//! linked with jemalloc, or started with `LD_PRELOAD` of jemalloc/mimalloc/tcmalloc after this
//! library, keeps its allocator. Each function is resolved on its own, exactly as the dynamic
//! loader would have bound the program's call.
//!
//! ```text
//!  first hook call ─► resolve (once, any thread; others wait) ─► NEXT[..] ─► forwarded calls
//!                      └─ calls made while resolving (dlsym may allocate): BOOTSTRAP arena,
//!                         a static bump allocator; its blocks are never handed to the next
//!                         allocator (free ignores them, realloc copies them out)
//! ```

use std::ffi::{c_char, c_void, CStr};
use std::sync::atomic::{AtomicU32, AtomicU8, AtomicUsize, Ordering};

/// Forwarded functions, in [`NAMES`] order.
#[derive(Clone, Copy)]
#[repr(usize)]
pub enum Fn {
    Malloc,
    Free,
    Calloc,
    Realloc,
    Memalign,
    AlignedAlloc,
    PosixMemalign,
    Valloc,
    Pvalloc,
    UsableSize,
}

const NAMES: [&CStr; 10] = [
    c"malloc",
    c"free",
    c"calloc",
    c"realloc",
    c"memalign",
    c"aligned_alloc",
    c"posix_memalign",
    c"valloc",
    c"pvalloc",
    c"malloc_usable_size",
];

static NEXT: [AtomicUsize; 10] = [const { AtomicUsize::new(0) }; 10];

const UNRESOLVED: u8 = 0;
const RESOLVING: u8 = 1;
const RESOLVED: u8 = 2;
static STATE: AtomicU8 = AtomicU8::new(UNRESOLVED);
/// Thread resolving (its nested calls use the bootstrap arena).
static RESOLVER: AtomicU32 = AtomicU32::new(0);

fn gettid() -> u32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() as u32 }
}

/// The next definition of `f`, resolving every function on first use; 0 while this thread is
/// resolving (the caller then serves the call from the bootstrap arena) or when there is none.
#[inline(always)]
pub fn get(f: Fn) -> usize {
    if STATE.load(Ordering::Acquire) != RESOLVED && !resolve() {
        return 0;
    }
    NEXT[f as usize].load(Ordering::Relaxed)
}

/// Resolves everything once. False when the calling thread is the one resolving.
#[cold]
#[inline(never)]
fn resolve() -> bool {
    match STATE.compare_exchange(UNRESOLVED, RESOLVING, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => {
            RESOLVER.store(gettid(), Ordering::Release);
            for (slot, name) in NEXT.iter().zip(NAMES) {
                // SAFETY: dlsym with a NUL-terminated name; the result is null or the function.
                let f = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) } as usize;
                slot.store(f, Ordering::Release);
            }
            STATE.store(RESOLVED, Ordering::Release);
            true
        }
        Err(_) => {
            if RESOLVER.load(Ordering::Acquire) == gettid() {
                return false;
            }
            while STATE.load(Ordering::Acquire) != RESOLVED {
                std::hint::spin_loop();
            }
            true
        }
    }
}

/// The shared object that defines the next `malloc`, and its file name ("" when unknown).
fn malloc_object() -> (usize, String) {
    let f = get(Fn::Malloc);
    // SAFETY: dladdr fills `info` for an address inside a loaded object.
    unsafe {
        let mut info: libc::Dl_info = std::mem::zeroed();
        if f == 0 || libc::dladdr(f as *const c_void, &mut info) == 0 || info.dli_fname.is_null() {
            return (0, String::new());
        }
        let name = CStr::from_ptr(info.dli_fname as *const c_char)
            .to_string_lossy()
            .into_owned();
        (info.dli_fbase as usize, name)
    }
}

/// The allocator serving the program, from the file that defines the next `malloc`: "glibc",
/// "jemalloc", "mimalloc", "tcmalloc", or that file's name.
pub fn allocator_name() -> String {
    allocator_of(&malloc_object().1)
}

/// The allocator a shared object at `path` provides: "glibc", "jemalloc", "mimalloc",
/// "tcmalloc", or its file name.
pub fn allocator_of(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or("").to_owned();
    for known in ["jemalloc", "mimalloc", "tcmalloc"] {
        if file.contains(known) {
            return known.to_owned();
        }
    }
    if file.starts_with("libc.so") || file.is_empty() {
        "glibc".to_owned()
    } else {
        file
    }
}

/// `dladdr1`'s flag asking for the matched symbol's table entry.
const RTLD_DL_SYMENT: libc::c_int = 1;

extern "C" {
    /// glibc's `dladdr` with extra information (the symbol entry for `RTLD_DL_SYMENT`).
    fn dladdr1(
        addr: *const c_void,
        info: *mut libc::Dl_info,
        extra: *mut *mut c_void,
        flags: libc::c_int,
    ) -> libc::c_int;
}

/// When the program's `malloc` is not this library's (an allocator preloaded before it, or
/// defined by the executable itself), the file that defines it: its calls never reach the
/// recorder.
pub fn malloc_shadowed_by() -> Option<String> {
    // SAFETY: dlsym/dladdr with valid arguments. The address of an exported function taken here
    // would be the first definition, whoever defines it, so this library is identified by a
    // function it does not export.
    unsafe {
        let first = libc::dlsym(libc::RTLD_DEFAULT, c"malloc".as_ptr());
        let mut info: libc::Dl_info = std::mem::zeroed();
        let mut own: libc::Dl_info = std::mem::zeroed();
        let here = malloc_shadowed_by as *const () as *const c_void;
        if first.is_null()
            || libc::dladdr(first, &mut info) == 0
            || libc::dladdr(here, &mut own) == 0
            || info.dli_fbase == own.dli_fbase
        {
            return None;
        }
        // A non-PIE executable that takes malloc's address gets a canonical PLT entry: the
        // lookup then answers with that stub in the executable, which jumps to the real first
        // definition (this library). Only an object whose own `malloc` symbol sits at the
        // address defines it.
        // glibc's dladdr also matches such an undefined symbol (its value is the stub), so the
        // symbol's section decides: SHN_UNDEF (0) is a reference, not a definition.
        let mut sym: *const libc::Elf64_Sym = std::ptr::null();
        let mut info1: libc::Dl_info = std::mem::zeroed();
        let defines = dladdr1(
            first,
            &mut info1,
            (&mut sym as *mut *const libc::Elf64_Sym).cast(),
            RTLD_DL_SYMENT,
        ) != 0
            && !info1.dli_sname.is_null()
            && info1.dli_saddr == first
            && CStr::from_ptr(info1.dli_sname) == c"malloc"
            && sym.as_ref().is_none_or(|sym| sym.st_shndx != 0);
        if !defines {
            return None;
        }
        if info.dli_fname.is_null() {
            return Some("another object".to_owned());
        }
        Some(
            CStr::from_ptr(info.dli_fname as *const c_char)
                .to_string_lossy()
                .into_owned(),
        )
    }
}

/// Room for the calls made while resolving (dlsym's error strings and thread buffers).
const ARENA_BYTES: usize = 64 << 10;
/// Each bootstrap block is preceded by its size.
const HEADER: usize = 16;

#[repr(C, align(4096))]
struct Arena(std::cell::UnsafeCell<[u8; ARENA_BYTES]>);
// SAFETY: every byte range is handed out once (claimed by an atomic bump) and then only used
// through the pointer given to its owner.
unsafe impl Sync for Arena {}
static ARENA: Arena = Arena(std::cell::UnsafeCell::new([0; ARENA_BYTES]));
static ARENA_USED: AtomicUsize = AtomicUsize::new(0);

fn arena_base() -> usize {
    ARENA.0.get() as usize
}

/// A zeroed block of the bootstrap arena (alignment up to a page); null when it is full.
pub fn bootstrap_alloc(size: usize, align: usize) -> *mut c_void {
    let align = align.clamp(HEADER, 4096);
    let mut used = ARENA_USED.load(Ordering::Relaxed);
    loop {
        let start = (arena_base() + used + HEADER).next_multiple_of(align) - arena_base();
        let Some(end) = start.checked_add(size).filter(|&e| e <= ARENA_BYTES) else {
            return std::ptr::null_mut();
        };
        match ARENA_USED.compare_exchange_weak(used, end, Ordering::AcqRel, Ordering::Relaxed) {
            Ok(_) => {
                let p = (arena_base() + start) as *mut u8;
                // SAFETY: `[start - HEADER, end)` lies inside the arena and belongs to this
                // block alone (claimed by the exchange); the arena is never reused.
                unsafe { (p.sub(HEADER) as *mut usize).write(size) };
                return p.cast();
            }
            Err(u) => used = u,
        }
    }
}

/// True when `p` is a bootstrap block.
#[inline(always)]
pub fn is_bootstrap(p: *mut c_void) -> bool {
    (p as usize).wrapping_sub(arena_base()) < ARENA_BYTES
}

/// The requested size of bootstrap block `p`.
///
/// # Safety
/// `p` is a bootstrap block.
pub unsafe fn bootstrap_size(p: *mut c_void) -> usize {
    // SAFETY: written by `bootstrap_alloc` just before the block.
    unsafe { ((p as *mut u8).sub(HEADER) as *const usize).read() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_blocks_are_aligned_sized_and_recognised() {
        let a = bootstrap_alloc(10, 16);
        let b = bootstrap_alloc(100, 256);
        assert!(!a.is_null() && !b.is_null());
        assert_eq!(a as usize % 16, 0);
        assert_eq!(b as usize % 256, 0);
        assert!(is_bootstrap(a) && is_bootstrap(b));
        // SAFETY: both are bootstrap blocks.
        unsafe {
            assert_eq!(bootstrap_size(a), 10);
            assert_eq!(bootstrap_size(b), 100);
        }
        let heap = Box::new(0u8);
        assert!(!is_bootstrap(&*heap as *const u8 as *mut c_void));
        assert!(bootstrap_alloc(ARENA_BYTES, 16).is_null());
    }

    #[test]
    fn names_allocators_by_their_library() {
        assert_eq!(allocator_of("/usr/lib/x86_64-linux-gnu/libc.so.6"), "glibc");
        assert_eq!(allocator_of("/usr/lib/libjemalloc.so.2"), "jemalloc");
        assert_eq!(allocator_of("/usr/lib/libmimalloc.so.2.0"), "mimalloc");
        assert_eq!(
            allocator_of("/usr/lib/libtcmalloc_minimal.so.4"),
            "tcmalloc"
        );
        assert_eq!(allocator_of("/opt/app/libmyalloc.so"), "libmyalloc.so");
    }
}
