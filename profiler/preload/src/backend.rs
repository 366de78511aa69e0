//! Which allocator serves the program: its own (default: the next definition of each function
//! in lookup order — glibc, or jemalloc/mimalloc/tcmalloc when the program brings one, see
//! [`crate::next`]) or the bundled jemalloc (`TIDEMARK_ALLOCATOR=jemalloc`, with glibc 2.36's
//! argument handling and errno).
//!
//! ```text
//!  load ──► UNDECIDED ──constructor──► NEXT      every call → the next definition
//!           (next; every              └► JEMALLOC  every call → _rjem_*, except blocks listed
//!            block listed in EARLY)                in EARLY (made before): back to the next
//! ```
//!
//! jemalloc reads its options when it initialises, in its own constructor. The options of
//! `TIDEMARK_MALLOC_CONF` reach it through the `_rjem_malloc_conf` symbol, which a constructor
//! with a higher priority than jemalloc's points at the variable's value (jemalloc with the
//! `_rjem_` prefix reads `_RJEM_MALLOC_CONF` from the environment, never `MALLOC_CONF`; that
//! variable still works and overrides these options).

use crate::early::EarlyBlocks;
use crate::earlylog::{self, Event};
use crate::next::{self, Fn};
use std::ffi::{c_char, c_void};
use std::sync::atomic::{AtomicPtr, AtomicU8, AtomicUsize, Ordering};
use tidemark::format::AllocKind;
use tikv_jemalloc_sys as je;

const UNDECIDED: u8 = 0;
const NEXT: u8 = 1;
const JEMALLOC: u8 = 2;

static BACKEND: AtomicU8 = AtomicU8::new(UNDECIDED);

/// Blocks of the next allocator from before the choice.
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
        BACKEND.store(NEXT, Ordering::Release);
        return Err(TooManyEarlyBlocks);
    }
    BACKEND.store(if jemalloc { JEMALLOC } else { NEXT }, Ordering::Release);
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
        EARLY.insert(p as usize);
        earlylog::push(Event::Alloc {
            addr: p as usize,
            size,
            kind,
        });
    }
    p
}

/// Unlists a block freed (or moved by realloc) before the choice.
#[inline(never)]
fn unlisted(p: *mut c_void) {
    if !p.is_null() {
        EARLY.remove(p as usize);
        earlylog::push(Event::Free { addr: p as usize });
    }
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

type MallocFn = unsafe extern "C" fn(usize) -> *mut c_void;
type FreeFn = unsafe extern "C" fn(*mut c_void);
type CallocFn = unsafe extern "C" fn(usize, usize) -> *mut c_void;
type ReallocFn = unsafe extern "C" fn(*mut c_void, usize) -> *mut c_void;
type AlignFn = unsafe extern "C" fn(usize, usize) -> *mut c_void;
type PosixMemalignFn = unsafe extern "C" fn(*mut *mut c_void, usize, usize) -> i32;
type UsableSizeFn = unsafe extern "C" fn(*mut c_void) -> usize;

/// The next `malloc` (the bootstrap arena while resolving).
///
/// # Safety
/// C semantics.
#[inline(always)]
unsafe fn n_malloc(size: usize) -> *mut c_void {
    match next::get(Fn::Malloc) {
        0 => next::bootstrap_alloc(size, MALLOC_ALIGN),
        // SAFETY: the next definition of malloc.
        f => unsafe { std::mem::transmute::<usize, MallocFn>(f)(size) },
    }
}

/// The next `free` (bootstrap blocks are never freed).
///
/// # Safety
/// C semantics.
#[inline(always)]
unsafe fn n_free(p: *mut c_void) {
    if next::is_bootstrap(p) {
        return;
    }
    match next::get(Fn::Free) {
        0 => {}
        // SAFETY: the next definition of free, with a block of that allocator.
        f => unsafe { std::mem::transmute::<usize, FreeFn>(f)(p) },
    }
}

/// The next `calloc` (the caller checked `n * size`).
///
/// # Safety
/// C semantics.
#[inline(always)]
unsafe fn n_calloc(n: usize, size: usize) -> *mut c_void {
    match next::get(Fn::Calloc) {
        // The arena starts zeroed and is never reused.
        0 => next::bootstrap_alloc(n.saturating_mul(size), MALLOC_ALIGN),
        // SAFETY: the next definition of calloc.
        f => unsafe { std::mem::transmute::<usize, CallocFn>(f)(n, size) },
    }
}

/// The next `realloc`; a bootstrap block is copied into a new block.
///
/// # Safety
/// C semantics.
#[inline(always)]
unsafe fn n_realloc(p: *mut c_void, size: usize) -> *mut c_void {
    if next::is_bootstrap(p) {
        // SAFETY: `p` is a bootstrap block; the copy stays within both blocks.
        unsafe {
            if size == 0 {
                return std::ptr::null_mut();
            }
            let q = n_malloc(size);
            if !q.is_null() {
                let n = next::bootstrap_size(p).min(size);
                std::ptr::copy_nonoverlapping(p as *const u8, q as *mut u8, n);
            }
            return q;
        }
    }
    match next::get(Fn::Realloc) {
        0 if p.is_null() => next::bootstrap_alloc(size, MALLOC_ALIGN),
        0 => std::ptr::null_mut(),
        // SAFETY: the next definition of realloc, with a block of that allocator.
        f => unsafe { std::mem::transmute::<usize, ReallocFn>(f)(p, size) },
    }
}

/// The next aligned allocation function `which` (`memalign`, `aligned_alloc`, `valloc`,
/// `pvalloc`; the latter two take no alignment and ignore `align`).
///
/// # Safety
/// C semantics.
#[inline(always)]
unsafe fn n_aligned(which: Fn, align: usize, size: usize) -> *mut c_void {
    match (next::get(which), which) {
        (0, _) => next::bootstrap_alloc(size, align),
        // SAFETY: the next definition of valloc/pvalloc.
        (f, Fn::Valloc | Fn::Pvalloc) => unsafe { std::mem::transmute::<usize, MallocFn>(f)(size) },
        // SAFETY: the next definition of memalign/aligned_alloc.
        (f, _) => unsafe { std::mem::transmute::<usize, AlignFn>(f)(align, size) },
    }
}

/// The next `posix_memalign`.
///
/// # Safety
/// C semantics.
#[inline(always)]
unsafe fn n_posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> i32 {
    match next::get(Fn::PosixMemalign) {
        0 => {
            let p = next::bootstrap_alloc(size, align);
            if p.is_null() {
                return libc::ENOMEM;
            }
            // SAFETY: a valid out-pointer per the contract.
            unsafe { *out = p };
            0
        }
        // SAFETY: the next definition of posix_memalign.
        f => unsafe { std::mem::transmute::<usize, PosixMemalignFn>(f)(out, align, size) },
    }
}

/// The next `malloc_usable_size` (0 when there is none).
///
/// # Safety
/// `p` is null or a live block of the next allocator (or a bootstrap block).
unsafe fn n_usable_size(p: *mut c_void) -> usize {
    if next::is_bootstrap(p) {
        // SAFETY: a bootstrap block.
        return unsafe { next::bootstrap_size(p) };
    }
    match next::get(Fn::UsableSize) {
        0 => 0,
        // SAFETY: the next definition of malloc_usable_size.
        f => unsafe { std::mem::transmute::<usize, UsableSizeFn>(f)(p) },
    }
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
            NEXT => n_malloc(size),
            _ => listed(n_malloc(size), size, AllocKind::Malloc),
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
            NEXT => n_calloc(n, size),
            _ => listed(n_calloc(n, size), n * size, AllocKind::Calloc),
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
                    n_free(p)
                } else {
                    je::free(p)
                }
            }
            NEXT => n_free(p),
            _ => {
                unlisted(p);
                n_free(p)
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
            NEXT => n_realloc(p, size),
            _ => {
                let q = n_realloc(p, size);
                if !q.is_null() || size == 0 {
                    unlisted(p);
                }
                listed(q, size, AllocKind::Realloc)
            }
        }
    }
}

/// Realloc of a block of the next allocator from before jemalloc was chosen: the new block is
/// jemalloc's.
///
/// # Safety
/// `p` is a live listed block of the next allocator.
#[cold]
unsafe fn migrate(p: *mut c_void, size: usize) -> *mut c_void {
    // SAFETY: per the contract; the copy stays within both blocks.
    unsafe {
        if size == 0 {
            EARLY.remove(p as usize);
            n_free(p);
            return std::ptr::null_mut();
        }
        let q = je::malloc(size);
        if q.is_null() {
            return q;
        }
        let n = n_usable_size(p).min(size);
        std::ptr::copy_nonoverlapping(p as *const u8, q as *mut u8, n);
        EARLY.remove(p as usize);
        n_free(p);
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
            NEXT => n_aligned(Fn::Memalign, align, size),
            _ => listed(
                n_aligned(Fn::Memalign, align, size),
                size,
                AllocKind::Memalign,
            ),
        }
    }
}

/// `posix_memalign` for a valid `align` (the caller checks it): 0 or ENOMEM.
///
/// # Safety
/// C semantics; `out` is a valid out-pointer.
pub unsafe fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> i32 {
    // SAFETY: a valid out-pointer and alignment.
    unsafe {
        match backend() {
            JEMALLOC => je::posix_memalign(out, align, size),
            NEXT => n_posix_memalign(out, align, size),
            _ => {
                let rc = n_posix_memalign(out, align, size);
                if rc == 0 {
                    listed(*out, size, AllocKind::PosixMemalign);
                }
                rc
            }
        }
    }
}

/// `aligned_alloc`: the next definition's own, or, on the bundled jemalloc, glibc 2.36's (the
/// same function as `memalign`).
///
/// # Safety
/// C semantics.
pub unsafe fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    // SAFETY: plain allocator calls.
    unsafe {
        match backend() {
            JEMALLOC => memalign(align, size),
            NEXT => n_aligned(Fn::AlignedAlloc, align, size),
            _ => listed(
                n_aligned(Fn::AlignedAlloc, align, size),
                size,
                AllocKind::AlignedAlloc,
            ),
        }
    }
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
            NEXT => n_aligned(Fn::Valloc, 0, size),
            _ => listed(n_aligned(Fn::Valloc, 0, size), size, AllocKind::Valloc),
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
            NEXT => n_aligned(Fn::Pvalloc, 0, size),
            _ => listed(n_aligned(Fn::Pvalloc, 0, size), size, AllocKind::Pvalloc),
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
            n_usable_size(p)
        }
    }
}

/// The next `mallctl` (the program's own jemalloc), resolved on first use; 1 when there is none.
static NEXT_MALLCTL: AtomicUsize = AtomicUsize::new(0);

type MallctlFn =
    unsafe extern "C" fn(*const c_char, *mut c_void, *mut usize, *mut c_void, usize) -> i32;

/// `mallctl`: the bundled jemalloc's when it serves the program, else the next definition (a
/// jemalloc the program brings); ENOENT when there is none.
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
    if is_jemalloc() {
        // SAFETY: forwarded contract.
        return unsafe { je::mallctl(name, oldp, oldlenp, newp, newlen) };
    }
    let mut f = NEXT_MALLCTL.load(Ordering::Acquire);
    if f == 0 {
        // SAFETY: dlsym with a NUL-terminated name.
        f = unsafe { libc::dlsym(libc::RTLD_NEXT, c"mallctl".as_ptr()) } as usize;
        f = f.max(1);
        NEXT_MALLCTL.store(f, Ordering::Release);
    }
    if f == 1 {
        return libc::ENOENT;
    }
    // SAFETY: the next definition of mallctl; forwarded contract.
    unsafe { std::mem::transmute::<usize, MallctlFn>(f)(name, oldp, oldlenp, newp, newlen) }
}
