//! In-process recording: [`Tracking`] wraps any [`GlobalAlloc`].
//!
//! ```text
//!   Rust code ─► Tracking<A>::alloc ─► counters (always) ─► recorder (when a session runs) ─► A
//! ```
//!
//! The wrapper keeps the program's own allocator (jemalloc, mimalloc, System), so programs whose
//! allocator is statically linked — invisible to `LD_PRELOAD` — are profiled too, into the same
//! profile format as `tidemark run`.

mod counters;
mod session;
mod sites;
mod stack_paint;

pub use counters::{measure, stats, Measurement, Stats};
pub use session::{Session, SessionError, SessionOptions};
pub use sites::{MeasuredSite, TOP_SITES};

use crate::format::AllocKind;
use std::alloc::{GlobalAlloc, Layout};

/// A global allocator that counts and (during a [`Session`]) records every allocation, then
/// forwards it to `A`.
///
/// ```no_run
/// #[global_allocator]
/// static ALLOC: tidemark::Tracking<std::alloc::System> = tidemark::Tracking::new(std::alloc::System);
///
/// fn main() -> Result<(), tidemark::SessionError> {
///     let _session = tidemark::Session::start("app.tmk")?; // or TIDEMARK_OUTPUT=app.tmk
///     let v: Vec<u64> = (0..1000).collect();
///     println!("{}", v.len());
///     Ok(())
/// }
/// ```
#[derive(Debug, Default)]
pub struct Tracking<A> {
    inner: A,
}

impl<A> Tracking<A> {
    /// Wraps `inner`; usable in a `static`.
    pub const fn new(inner: A) -> Self {
        Tracking { inner }
    }

    /// The wrapped allocator.
    pub const fn inner(&self) -> &A {
        &self.inner
    }
}

/// The recorder's own allocations (made while it records) stay out of the counters.
#[inline]
fn recorder_internal() -> bool {
    session::recording() && crate::record::in_recorder()
}

/// Whether this call is recorded: a session runs and the allocation is not `measure`'s own
/// bookkeeping.
#[inline]
fn record_this() -> bool {
    session::recording() && !counters::in_bookkeeping()
}

fn kind_for(layout: &Layout, zeroed: bool) -> AllocKind {
    match (zeroed, layout.align() > 16) {
        (true, _) => AllocKind::Calloc,
        (false, true) => AllocKind::AlignedAlloc,
        (false, false) => AllocKind::Malloc,
    }
}

fn align_field(layout: &Layout) -> usize {
    if layout.align() > 16 {
        layout.align()
    } else {
        0
    }
}

// SAFETY: every method forwards to `A` with the caller's layout unchanged and returns `A`'s
// result; recording only observes pointers and sizes.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Tracking<A> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        session::maybe_start_from_env(std::any::type_name::<A>());
        let p = if record_this() {
            // SAFETY: the closure performs the real allocation exactly once.
            unsafe {
                crate::record::record_alloc(
                    kind_for(&layout, false),
                    layout.size(),
                    align_field(&layout),
                    || self.inner.alloc(layout),
                )
            }
        } else {
            // SAFETY: forwarded with the caller's contract.
            unsafe { self.inner.alloc(layout) }
        };
        if !p.is_null() && !recorder_internal() {
            counters::on_alloc(p, layout.size());
        }
        p
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        session::maybe_start_from_env(std::any::type_name::<A>());
        let p = if record_this() {
            // SAFETY: the closure performs the real allocation exactly once.
            unsafe {
                crate::record::record_alloc(
                    kind_for(&layout, true),
                    layout.size(),
                    align_field(&layout),
                    || self.inner.alloc_zeroed(layout),
                )
            }
        } else {
            // SAFETY: forwarded with the caller's contract.
            unsafe { self.inner.alloc_zeroed(layout) }
        };
        if !p.is_null() && !recorder_internal() {
            counters::on_alloc(p, layout.size());
        }
        p
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if !recorder_internal() {
            counters::on_free(ptr, layout.size());
        }
        if record_this() {
            // SAFETY: the closure performs the real free exactly once.
            unsafe { crate::record::record_free(ptr, || self.inner.dealloc(ptr, layout)) }
        } else {
            // SAFETY: forwarded with the caller's contract.
            unsafe { self.inner.dealloc(ptr, layout) }
        }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = if record_this() {
            // SAFETY: the closure performs the real realloc exactly once.
            unsafe {
                crate::record::record_realloc(ptr, new_size, AllocKind::Realloc, || {
                    self.inner.realloc(ptr, layout, new_size)
                })
            }
        } else {
            // SAFETY: forwarded with the caller's contract.
            unsafe { self.inner.realloc(ptr, layout, new_size) }
        };
        if !p.is_null() && !recorder_internal() {
            counters::on_free(ptr, layout.size());
            counters::on_alloc(p, new_size);
        }
        p
    }
}
