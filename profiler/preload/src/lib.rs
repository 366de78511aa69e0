//! `libtidemark_preload.so`: the tidemark recorder as an `LD_PRELOAD` library.
//!
//! ```text
//!  LD_PRELOAD=libtidemark_preload.so ./app
//!    constructor (.init_array) ─► Config::from_env ─► choose the allocator
//!                              ─► tidemark::record::start ─► atexit(finish)
//!    malloc/free/... (exported) ─► tidemark::record hooks ─► backend: the next definition
//!                                  (glibc, or the program's jemalloc/mimalloc/tcmalloc) or the
//!                                  bundled jemalloc (_rjem_*)
//!    Rust allocations of the library itself ─► __libc_* directly (never re-enter the hooks)
//! ```
//!
//! With `TIDEMARK_ALLOCATOR=jemalloc` the program runs on the bundled jemalloc (options from
//! `TIDEMARK_MALLOC_CONF`) while the recorder's own memory stays on glibc, so jemalloc's
//! statistics in the timeline describe the program alone.
//!
//! This is the only crate that exports C symbols. Under `cfg(test)` nothing is exported, so
//! unit tests keep the harness's malloc.

#![cfg_attr(test, allow(dead_code))]

mod alloc;
mod backend;
mod early;
mod earlylog;
mod exits;
mod exports;
mod modules;
mod next;
mod signals;

use tidemark::record::{self, Config};

/// Set once recording has started: what [`tidemark_preload_recording`] answers.
static RECORDING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// 1 when this library records the process, else 0. A program whose `#[global_allocator]` is a
/// `tidemark::Tracking` looks this up (`dlsym`) before its in-process recorder starts, and stays
/// off when it is 1: one recorder per process, and under `tidemark run` it is this one.
#[cfg_attr(not(test), no_mangle)]
pub extern "C" fn tidemark_preload_recording() -> libc::c_int {
    libc::c_int::from(RECORDING.load(std::sync::atomic::Ordering::Acquire))
}

/// libstdc++'s `__gnu_cxx::__freeres()`, which frees its emergency exception pool; 0 when the
/// program has no libstdc++.
static CXX_FREERES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Resolves [`CXX_FREERES`] now, in the constructor: a failed lookup allocates its error message,
/// which must not happen at exit while recording. Clearing the error twice frees that message.
fn resolve_cxx_freeres() {
    // SAFETY: dlsym/dlerror with NUL-terminated names; the result is null or the function.
    unsafe {
        let f = libc::dlsym(libc::RTLD_DEFAULT, c"_ZN9__gnu_cxx9__freeresEv".as_ptr());
        if f.is_null() {
            libc::dlerror();
            libc::dlerror();
        }
        CXX_FREERES.store(f as usize, std::sync::atomic::Ordering::Release);
    }
}

/// Runs before `main` (and before the program's own constructors).
extern "C" fn init() {
    earlylog::own_begin();
    exits::resolve_next();
    signals::resolve_next();
    resolve_cxx_freeres();
    let mut cfg = Config::from_env();
    let jemalloc = cfg.allocator == "jemalloc";
    // What was asked (`tidemark run --allocator`), kept beside what serves (set below).
    if std::env::var_os("TIDEMARK_ALLOCATOR").is_some() {
        cfg.allocator_requested = if jemalloc { "jemalloc" } else { "system" }.to_owned();
    }
    if !jemalloc {
        cfg.allocator = next::allocator_name();
    }
    let shadowed = next::malloc_shadowed_by();
    if let Some(file) = &shadowed {
        cfg.allocator = next::allocator_of(file);
        record::report(&format!(
            "malloc is defined by {file}, which comes before libtidemark_preload.so in lookup \
             order: its calls never reach the recorder and the profile will miss them; put \
             libtidemark_preload.so first in LD_PRELOAD (tidemark run does)"
        ));
    }
    match backend::choose(jemalloc) {
        Ok(()) if jemalloc => cfg.extra_sampler = Some(record::jemalloc_sampler),
        Ok(()) => {}
        Err(backend::TooManyEarlyBlocks) => {
            record::report(&format!(
                "more than {} blocks were allocated before the library started, too many to hand \
                 over to the bundled jemalloc; staying on the program's allocator",
                backend::early_blocks()
            ));
            cfg.allocator = next::allocator_name();
        }
    }
    earlylog::own_end();
    match record::start(cfg) {
        Ok(()) => {
            RECORDING.store(true, std::sync::atomic::Ordering::Release);
            // Libraries initialised before this one (libstdc++'s emergency exception pool, for
            // one) allocated and freed already: record it all now, so the counts cover the whole
            // process and later frees match. Their stacks are unknown, and said so.
            let stack = earlylog::before_start_stack();
            let lost = earlylog::drain(|e| match e {
                earlylog::Event::Alloc { addr, size, kind } => {
                    record::record_early_alloc(kind, size, addr, &stack)
                }
                earlylog::Event::Free { addr } => record::record_early_free(addr),
            });
            if lost > 0 {
                record::note_dropped(lost as u64);
                record::message(
                    1,
                    &format!("{lost} events before the start: no memory to log"),
                );
            }
            // SAFETY: `at_exit` is a plain function valid for the life of the process.
            unsafe {
                libc::atexit(at_exit);
                at_quick_exit(at_exit);
            }
            record::install_fatal_handlers();
            if let Some(file) = shadowed {
                let name = file.rsplit('/').next().unwrap_or(&file).to_owned();
                record::message(
                    1,
                    &format!("malloc is {name}'s, ahead of tidemark: not recorded"),
                );
            }
        }
        Err(e) => record::report(&format!("{e}; recording disabled")),
    }
}

extern "C" {
    /// C11's `at_quick_exit` (not in the `libc` crate): `quick_exit` runs these, not `atexit`'s.
    fn at_quick_exit(f: extern "C" fn()) -> libc::c_int;
}

extern "C" fn at_exit() {
    // The runtime's own pool is returned before the end, as heaptrack does, so it is not
    // reported as the program's leak.
    let f = CXX_FREERES.load(std::sync::atomic::Ordering::Acquire);
    if f != 0 {
        // SAFETY: `f` is libstdc++'s `__gnu_cxx::__freeres()`, a plain `void()` function meant
        // to be called at exit.
        unsafe { std::mem::transmute::<usize, extern "C" fn()>(f)() };
    }
    record::finish();
}

#[cfg(not(test))]
#[used]
#[link_section = ".init_array"]
static INIT: extern "C" fn() = init;
