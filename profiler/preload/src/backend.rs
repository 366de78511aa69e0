//! Which allocator serves the program: glibc (default) or the bundled jemalloc
//! (`TIDEMARK_ALLOCATOR=jemalloc`), with glibc 2.36's argument handling and errno on both.
//!
//! ```text
//!  load ──► UNDECIDED ──constructor──► GLIBC     every call → __libc_*
//!           (glibc; every             └► JEMALLOC  every call → _rjem_*, except blocks listed
//!            block listed in EARLY)                in EARLY (made before): back to glibc
//! ```
//!
//! jemalloc reads its options when it initialises, in its own constructor. The options of
//! `TIDEMARK_MALLOC_CONF` reach it through the `_rjem_malloc_conf` symbol, which a constructor
//! with a higher priority than jemalloc's points at the variable's value (jemalloc with the
//! `_rjem_` prefix reads `_RJEM_MALLOC_CONF` from the environment, never `MALLOC_CONF`; that
//! variable still works and overrides these options).

use crate::alloc::*;
use crate::early::EarlyBlocks;
use std::ffi::{c_char, c_void};
use std::sync::atomic::{AtomicPtr, AtomicU8, AtomicUsize, Ordering};
use tidemark::format::AllocKind;
use tikv_jemalloc_sys as je;

const UNDECIDED: u8 = 0;
const GLIBC: u8 = 1;
const JEMALLOC: u8 = 2;

static BACKEND: AtomicU8 = AtomicU8::new(UNDECIDED);

/// glibc blocks from before the choice.
static EARLY: EarlyBlocks = EarlyBlocks::new();

/// Alignment glibc's malloc guarantees on x86_64: memalign below it is malloc.
const MALLOC_ALIGN: usize = 16;

/// jemalloc's `malloc_conf` (`const char *`), read when jemalloc initialises.
#[cfg_attr(not(test), export_name = "_rjem_malloc_conf")]
static MALLOC_CONF: AtomicPtr<c_char> = AtomicPtr::new(std::ptr::null_mut());

/// Points jemalloc's `malloc_conf` at `TIDEMARK_MALLOC_CONF`. Runs before jemalloc's
/// constructor (prioritised `.init_array` entries run before plain ones), before anything
/// else here.
extern "C" fn read_malloc_conf() {
    // SAFETY: getenv with a NUL-terminated name; the environment's strings live as long as
    // the process, and jemalloc reads the option string once, at initialisation.
    let v = unsafe { libc::getenv(c"TIDEMARK_MALLOC_CONF".as_ptr()) };
    MALLOC_CONF.store(v, Ordering::Release);
}

#[cfg(not(test))]
#[used]
#[link_section = ".init_array.00101"]
static READ_MALLOC_CONF: extern "C" fn() = read_malloc_conf;

/// Why jemalloc could not be chosen.
#[derive(Debug)]
pub struct TooManyEarlyBlocks;

/// Chooses the allocator for every later call. jemalloc is refused when a block allocated
/// before could not be listed (it would later be freed to the wrong allocator).
pub fn choose(jemalloc: bool) -> Result<(), TooManyEarlyBlocks> {
    if jemalloc && EARLY.overflowed() {
        BACKEND.store(GLIBC, Ordering::Release);
        return Err(TooManyEarlyBlocks);
    }
    BACKEND.store(if jemalloc { JEMALLOC } else { GLIBC }, Ordering::Release);
    Ok(())
}

/// True when jemalloc serves the program.
pub fn is_jemalloc() -> bool {
    BACKEND.load(Ordering::Acquire) == JEMALLOC
}

/// glibc blocks from before the choice that are still listed.
pub fn early_blocks() -> usize {
    EARLY.len()
}

#[inline(always)]
fn backend() -> u8 {
    BACKEND.load(Ordering::Relaxed)
}

/// Lists a block glibc returned before the choice: `size` requested bytes from entry point
/// `kind` (a `tidemark::format::AllocKind`).
#[inline(never)]
fn listed(p: *mut c_void, size: usize, kind: AllocKind) -> *mut c_void {
    if !p.is_null() {
        EARLY.insert(p as usize, size, kind as u8);
    }
    p
}

/// Calls `f(addr, size, kind)` for every block allocated before the library started and still
/// live (the recorder reports them as allocations when it starts).
pub fn for_each_early(mut f: impl FnMut(usize, usize, AllocKind)) {
    EARLY.for_each(|a, s, k| f(a, s, AllocKind::from_u8(k).unwrap_or(AllocKind::Malloc)));
}

/// True when `p` is a glibc block from before jemalloc was chosen.
#[inline(always)]
fn early(p: *mut c_void) -> bool {
    !EARLY.is_empty() && EARLY.contains(p as usize)
}

pub fn set_errno(e: i32) {
    // SAFETY: __errno_location returns the calling thread's errno slot.
    unsafe { *libc::__errno_location() = e };
}

pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

type UsableSizeFn = unsafe extern "C" fn(*mut c_void) -> usize;

/// glibc's `malloc_usable_size`, resolved by [`resolve_glibc_usable_size`].
static GLIBC_USABLE_SIZE: AtomicUsize = AtomicUsize::new(0);

/// Resolves glibc's `malloc_usable_size` (the next definition after this library's).
pub fn resolve_glibc_usable_size() -> usize {
    // SAFETY: dlsym with a NUL-terminated name; the result is null or glibc's function.
    let f = unsafe { libc::dlsym(libc::RTLD_NEXT, c"malloc_usable_size".as_ptr()) } as usize;
    GLIBC_USABLE_SIZE.store(f, Ordering::Release);
    f
}

/// glibc's `malloc_usable_size(p)`; 0 when it cannot be resolved.
///
/// # Safety
/// `p` is null or a live glibc block.
unsafe fn glibc_usable_size(p: *mut c_void) -> usize {
    let mut f = GLIBC_USABLE_SIZE.load(Ordering::Acquire);
    if f == 0 {
        f = resolve_glibc_usable_size();
    }
    if f == 0 || p.is_null() {
        return 0;
    }
    // SAFETY: `f` is glibc's malloc_usable_size.
    unsafe { std::mem::transmute::<usize, UsableSizeFn>(f)(p) }
}

/// `malloc`.
///
/// # Safety
/// C semantics.
#[inline(always)]
pub unsafe fn malloc(size: usize) -> *mut c_void {
    // SAFETY: plain allocator calls.
    unsafe {
        match backend() {
            JEMALLOC => je::malloc(size),
            GLIBC => __libc_malloc(size),
            _ => listed(__libc_malloc(size), size, AllocKind::Malloc),
        }
    }
}

/// `calloc` (the caller has checked `n * size` for overflow).
///
/// # Safety
/// C semantics.
#[inline(always)]
pub unsafe fn calloc(n: usize, size: usize) -> *mut c_void {
    // SAFETY: plain allocator calls.
    unsafe {
        match backend() {
            JEMALLOC => je::calloc(n, size),
            GLIBC => __libc_calloc(n, size),
            _ => listed(__libc_calloc(n, size), n * size, AllocKind::Calloc),
        }
    }
}

/// `free`.
///
/// # Safety
/// C semantics.
#[inline(always)]
pub unsafe fn free(p: *mut c_void) {
    // SAFETY: `p` is null or a live block of the allocator it is handed back to.
    unsafe {
        match backend() {
            JEMALLOC if EARLY.is_empty() => je::free(p),
            JEMALLOC => {
                if EARLY.remove(p as usize) {
                    __libc_free(p)
                } else {
                    je::free(p)
                }
            }
            GLIBC => __libc_free(p),
            _ => {
                EARLY.remove(p as usize);
                __libc_free(p)
            }
        }
    }
}

/// `realloc` with glibc's semantics: `realloc(NULL, n)` allocates, `realloc(p, 0)` frees `p`
/// and returns NULL, a failure leaves `p` alone (ENOMEM).
///
/// # Safety
/// C semantics.
pub unsafe fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    // SAFETY: `p` is null or a live block of the allocator it is handed to.
    unsafe {
        match backend() {
            JEMALLOC if p.is_null() => je::malloc(size),
            JEMALLOC if early(p) => migrate(p, size),
            JEMALLOC if size == 0 => {
                je::free(p);
                std::ptr::null_mut()
            }
            JEMALLOC => je::realloc(p, size),
            GLIBC => __libc_realloc(p, size),
            _ => {
                let q = __libc_realloc(p, size);
                if !q.is_null() || (size == 0 && !p.is_null()) {
                    EARLY.remove(p as usize);
                }
                listed(q, size, AllocKind::Realloc)
            }
        }
    }
}

/// Realloc of a glibc block from before jemalloc was chosen: the new block is jemalloc's.
///
/// # Safety
/// `p` is a live listed glibc block.
#[cold]
unsafe fn migrate(p: *mut c_void, size: usize) -> *mut c_void {
    // SAFETY: per the contract; the copy stays within both blocks.
    unsafe {
        if size == 0 {
            EARLY.remove(p as usize);
            __libc_free(p);
            return std::ptr::null_mut();
        }
        let q = je::malloc(size);
        if q.is_null() {
            return q;
        }
        let n = glibc_usable_size(p).min(size);
        std::ptr::copy_nonoverlapping(p as *const u8, q as *mut u8, n);
        EARLY.remove(p as usize);
        __libc_free(p);
        q
    }
}

/// `memalign` with glibc's handling of `align`: at most 16 is malloc, anything above
/// `SIZE_MAX / 2 + 1` is EINVAL, a non-power of two is rounded up to one.
///
/// # Safety
/// C semantics.
pub unsafe fn memalign(align: usize, size: usize) -> *mut c_void {
    // SAFETY: plain allocator calls with a valid alignment.
    unsafe {
        match backend() {
            JEMALLOC => {
                if align <= MALLOC_ALIGN {
                    return je::malloc(size);
                }
                if align > usize::MAX / 2 + 1 {
                    set_errno(libc::EINVAL);
                    return std::ptr::null_mut();
                }
                je::aligned_alloc(align.next_power_of_two(), size)
            }
            GLIBC => __libc_memalign(align, size),
            _ => listed(__libc_memalign(align, size), size, AllocKind::Memalign),
        }
    }
}

/// `posix_memalign` for a valid `align` (the caller checks it): 0 or ENOMEM.
///
/// # Safety
/// C semantics; `out` is a valid out-pointer.
pub unsafe fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> i32 {
    if backend() == JEMALLOC {
        // SAFETY: a valid out-pointer and alignment.
        return unsafe { je::posix_memalign(out, align, size) };
    }
    // SAFETY: as for memalign.
    let p = unsafe { memalign(align, size) };
    if p.is_null() {
        return libc::ENOMEM;
    }
    // SAFETY: the caller passes a valid out-pointer.
    unsafe { *out = p };
    0
}

/// `valloc`: page-aligned.
///
/// # Safety
/// C semantics.
pub unsafe fn valloc(size: usize) -> *mut c_void {
    // SAFETY: plain allocator calls.
    unsafe {
        match backend() {
            JEMALLOC => memalign(page_size(), size),
            GLIBC => __libc_valloc(size),
            _ => listed(__libc_valloc(size), size, AllocKind::Valloc),
        }
    }
}

/// `pvalloc`: page-aligned, whole pages; a size that overflows when rounded is ENOMEM.
///
/// # Safety
/// C semantics.
pub unsafe fn pvalloc(size: usize) -> *mut c_void {
    // SAFETY: plain allocator calls.
    unsafe {
        match backend() {
            JEMALLOC => {
                let page = page_size();
                let Some(rounded) = size.checked_add(page - 1) else {
                    set_errno(libc::ENOMEM);
                    return std::ptr::null_mut();
                };
                memalign(page, (rounded & !(page - 1)).max(page))
            }
            GLIBC => __libc_pvalloc(size),
            _ => listed(__libc_pvalloc(size), size, AllocKind::Pvalloc),
        }
    }
}

/// `malloc_usable_size` (0 for NULL).
///
/// # Safety
/// C semantics.
pub unsafe fn usable_size(p: *mut c_void) -> usize {
    if p.is_null() {
        return 0;
    }
    // SAFETY: `p` is a live block of the allocator asked.
    unsafe {
        if backend() == JEMALLOC && !early(p) {
            je::malloc_usable_size(p)
        } else {
            glibc_usable_size(p)
        }
    }
}

/// jemalloc's `mallctl` when jemalloc serves the program; ENOENT otherwise.
///
/// # Safety
/// C semantics of `mallctl`.
pub unsafe fn mallctl(
    name: *const c_char,
    oldp: *mut c_void,
    oldlenp: *mut usize,
    newp: *mut c_void,
    newlen: usize,
) -> i32 {
    if !is_jemalloc() {
        return libc::ENOENT;
    }
    // SAFETY: forwarded contract.
    unsafe { je::mallctl(name, oldp, oldlenp, newp, newlen) }
}
