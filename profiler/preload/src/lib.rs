//! `libtidemark_preload.so`: the tidemark recorder as an `LD_PRELOAD` library.
//!
//! ```text
//!  LD_PRELOAD=libtidemark_preload.so ./app
//!    constructor (.init_array) ─► Config::from_env ─► choose the allocator
//!                              ─► tidemark::record::start ─► atexit(finish)
//!    malloc/free/... (exported) ─► tidemark::record hooks ─► backend: glibc (__libc_*) or the
//!                                                            bundled jemalloc (_rjem_*)
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
mod exports;

use tidemark::record::{self, Config};

/// Runs before `main` (and before the program's own constructors).
extern "C" fn init() {
    exports::resolve_next();
    let mut cfg = Config::from_env();
    let jemalloc = cfg.allocator == "jemalloc";
    match backend::choose(jemalloc) {
        Ok(()) if jemalloc => cfg.extra_sampler = Some(record::jemalloc_sampler),
        Ok(()) => {}
        Err(backend::TooManyEarlyBlocks) => {
            record::report(&format!(
                "{} blocks were allocated before the library started; staying on glibc",
                backend::early_blocks()
            ));
            cfg.allocator = "glibc".to_owned();
        }
    }
    match record::start(cfg) {
        Ok(()) => {
            // SAFETY: `at_exit` is a plain function valid for the life of the process.
            unsafe { libc::atexit(at_exit) };
        }
        Err(e) => record::report(&format!("{e}; recording disabled")),
    }
}

extern "C" fn at_exit() {
    record::finish();
}

#[cfg(not(test))]
#[used]
#[link_section = ".init_array"]
static INIT: extern "C" fn() = init;
