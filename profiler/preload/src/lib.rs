//! `libtidemark_preload.so`: the tidemark recorder as an `LD_PRELOAD` library.
//!
//! ```text
//!  LD_PRELOAD=libtidemark_preload.so ./app
//!    constructor (.init_array) ─► Config::from_env ─► tidemark::record::start ─► atexit(finish)
//!    malloc/free/... (exported) ─► tidemark::record hooks ─► __libc_malloc/__libc_free/...
//!    Rust allocations of the library itself ─► __libc_* directly (never re-enter the hooks)
//! ```
//!
//! This is the only crate that exports C symbols. Under `cfg(test)` nothing is exported, so
//! unit tests keep the harness's malloc.

#![cfg_attr(test, allow(dead_code))]

mod alloc;
mod exports;

use tidemark::record::{self, Config};

/// Runs before `main` (and before the program's own constructors).
extern "C" fn init() {
    exports::resolve_next();
    let cfg = Config::from_env();
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
