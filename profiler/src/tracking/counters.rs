//! Always-on counters: process-wide atomics for [`stats`], a thread-local scope for [`measure`].
//!
//! Invariant: the thread-local cells here have no destructor (const-initialized `Cell`s), so
//! touching them never registers a TLS destructor — which would allocate from inside the global
//! allocator.

use std::cell::Cell;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

static TOTAL_ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static TOTAL_BYTES: AtomicU64 = AtomicU64::new(0);
static TOTAL_FREES: AtomicU64 = AtomicU64::new(0);
static CURRENT_BYTES: AtomicI64 = AtomicI64::new(0);
static PEAK_BYTES: AtomicI64 = AtomicI64::new(0);

/// Process-wide heap counters kept by [`crate::Tracking`], whether or not a session records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Allocation calls so far (alloc, alloc_zeroed and realloc).
    pub total_allocations: u64,
    /// Bytes requested so far (a realloc counts its new size).
    pub total_bytes: u64,
    /// Deallocation calls so far (a realloc counts one).
    pub total_frees: u64,
    /// Live blocks now.
    pub current_blocks: u64,
    /// Live bytes now.
    pub current_bytes: u64,
    /// Largest `current_bytes` seen.
    pub peak_bytes: u64,
}

/// Reads the process-wide counters (a few relaxed atomic loads; the fields are not one snapshot).
pub fn stats() -> Stats {
    Stats {
        total_allocations: TOTAL_ALLOCATIONS.load(Relaxed),
        total_bytes: TOTAL_BYTES.load(Relaxed),
        total_frees: TOTAL_FREES.load(Relaxed),
        // Live blocks are derived (one atomic less per call): allocations minus frees.
        current_blocks: TOTAL_ALLOCATIONS
            .load(Relaxed)
            .saturating_sub(TOTAL_FREES.load(Relaxed)),
        current_bytes: CURRENT_BYTES.load(Relaxed).max(0) as u64,
        peak_bytes: PEAK_BYTES.load(Relaxed).max(0) as u64,
    }
}

/// What one thread allocated inside a [`measure`] closure.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Measurement {
    /// Allocation calls made by this thread inside the closure (realloc included).
    pub allocations: u64,
    /// Bytes requested by those calls.
    pub allocated_bytes: u64,
    /// Deallocation calls made by this thread inside the closure.
    pub frees: u64,
    /// Largest sum of live bytes among blocks allocated inside the closure.
    pub peak_bytes: u64,
    /// Bytes allocated inside the closure and still live when it returned — the value the
    /// closure returns included (drop it inside the closure to count only what else stays).
    pub leaked_bytes: u64,
    /// Blocks allocated inside the closure and still live when it returned (as
    /// [`Self::leaked_bytes`]).
    pub leaked_allocations: u64,
    /// Deepest stack use of the closure on this thread, bytes below the stack pointer of the
    /// `measure` call: the unused stack is painted with a pattern before the call (up to 1 MiB)
    /// and scanned after it. Resolution ≈ 1 KiB (the frames between `measure` and the closure
    /// count); a closure deeper than 1 MiB reports 1 MiB; 0 when the stack's bounds are unknown.
    /// A nested `measure` repaints, so an outer one sees only what ran after the inner one.
    pub stack_peak_bytes: u64,
    /// While a [`crate::Session`] records: the sites that allocated the most bytes inside the
    /// closure (at most [`super::sites::TOP_SITES`]). Empty without a session.
    pub top_sites: Vec<super::sites::MeasuredSite>,
}

impl fmt::Display for Measurement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} allocations ({} bytes), {} frees, peak {} bytes, leaked {} bytes in {} blocks, \
             stack peak {} bytes",
            self.allocations,
            self.allocated_bytes,
            self.frees,
            self.peak_bytes,
            self.leaked_bytes,
            self.leaked_allocations,
            self.stack_peak_bytes
        )?;
        for (i, s) in self.top_sites.iter().enumerate() {
            write!(
                f,
                "{} {} ({} allocations, {} bytes)",
                if i == 0 { "; top sites:" } else { "," },
                s.function,
                s.allocations,
                s.allocated_bytes
            )?;
        }
        Ok(())
    }
}

struct Scope {
    m: Measurement,
    /// Stacks of the scope's allocations, while a session records.
    sites: Option<super::sites::SiteCapture>,
    live_bytes: u64,
    /// Blocks allocated inside the scope and not yet freed: address → size.
    live: HashMap<usize, usize>,
}

thread_local! {
    static SCOPE: Cell<*mut Scope> = const { Cell::new(std::ptr::null_mut()) };
    /// Set while this module's own bookkeeping allocates, so those allocations are not counted.
    static BOOKKEEPING: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` and reports what *this thread* allocated inside it. Other threads' allocations are not
/// counted, so tests can run in parallel under libtest. Measurements nest: an inner `measure`
/// counts into the outer one as well.
///
/// Counting needs `#[global_allocator]` to be a [`crate::Tracking`]; otherwise every field is 0.
///
/// ```
/// let (v, m) = tidemark::measure(|| vec![0u8; 100]);
/// drop(v);
/// # let _ = m;
/// ```
pub fn measure<T>(f: impl FnOnce() -> T) -> (T, Measurement) {
    let scope = {
        let _guard = Bookkeeping::enter();
        Box::into_raw(Box::new(Scope {
            m: Measurement::default(),
            sites: super::session::recording().then(super::sites::SiteCapture::new),
            live_bytes: 0,
            live: HashMap::new(),
        }))
    };
    let outer = SCOPE.with(|s| s.replace(scope));
    // Restore the outer scope even if `f` panics.
    struct Restore(*mut Scope, *mut Scope);
    impl Drop for Restore {
        fn drop(&mut self) {
            SCOPE.with(|s| s.set(self.1));
            // SAFETY: self.0 came from Box::into_raw above and is no longer reachable from SCOPE.
            let scope = unsafe { Box::from_raw(self.0) };
            if !self.1.is_null() {
                // SAFETY: the outer scope outlives this call (it is restored only by its own
                // `measure`, further up this thread's stack).
                let outer = unsafe { &mut *self.1 };
                merge_into(outer, &scope);
            }
            let _guard = Bookkeeping::enter();
            drop(scope);
        }
    }
    let restore = Restore(scope, outer);
    let painted = super::stack_paint::paint(crate::unwind::stack_pointer());
    let out = f();
    let stack_peak_bytes = painted.map_or(0, super::stack_paint::scan);
    // SAFETY: `scope` is live until `restore` drops; only this thread touches it.
    let s = unsafe { &*scope };
    let mut m = s.m.clone();
    m.leaked_bytes = s.live_bytes;
    m.leaked_allocations = s.live.len() as u64;
    m.stack_peak_bytes = stack_peak_bytes;
    if let Some(sites) = &s.sites {
        let _guard = Bookkeeping::enter();
        m.top_sites = sites.top(super::sites::TOP_SITES);
    }
    drop(restore);
    (out, m)
}

fn merge_into(outer: &mut Scope, inner: &Scope) {
    let _guard = Bookkeeping::enter();
    outer.m.allocations += inner.m.allocations;
    outer.m.allocated_bytes += inner.m.allocated_bytes;
    outer.m.frees += inner.m.frees;
    outer.m.peak_bytes = outer
        .m
        .peak_bytes
        .max(outer.live_bytes + inner.m.peak_bytes);
    for (&addr, &size) in &inner.live {
        outer.live.insert(addr, size);
        outer.live_bytes += size as u64;
    }
}

/// True while [`measure`]'s own bookkeeping allocates on this thread: such allocations are
/// neither counted nor recorded.
#[inline]
pub(crate) fn in_bookkeeping() -> bool {
    BOOKKEEPING.try_with(|b| b.get()).unwrap_or(false)
}

struct Bookkeeping(bool);
impl Bookkeeping {
    fn enter() -> Bookkeeping {
        Bookkeeping(BOOKKEEPING.with(|b| b.replace(true)))
    }
}
impl Drop for Bookkeeping {
    fn drop(&mut self) {
        BOOKKEEPING.with(|b| b.set(self.0));
    }
}

fn with_scope(f: impl FnOnce(&mut Scope)) {
    let p = SCOPE.try_with(|s| s.get()).unwrap_or(std::ptr::null_mut());
    if p.is_null() {
        return;
    }
    if BOOKKEEPING.try_with(|b| b.get()).unwrap_or(true) {
        return;
    }
    let _guard = Bookkeeping::enter();
    // SAFETY: a non-null SCOPE points at the Box owned by the active `measure` on this thread,
    // and BOOKKEEPING guarantees no other reference to it is live (no re-entry).
    f(unsafe { &mut *p });
}

/// Counts an allocation of `size` bytes at `addr`.
#[inline]
pub(crate) fn on_alloc(addr: *mut u8, size: usize) {
    TOTAL_ALLOCATIONS.fetch_add(1, Relaxed);
    TOTAL_BYTES.fetch_add(size as u64, Relaxed);
    let now = CURRENT_BYTES.fetch_add(size as i64, Relaxed) + size as i64;
    if now > PEAK_BYTES.load(Relaxed) {
        PEAK_BYTES.fetch_max(now, Relaxed);
    }
    with_scope(|s| {
        s.m.allocations += 1;
        s.m.allocated_bytes += size as u64;
        if let Some(sites) = s.sites.as_mut() {
            sites.record(size);
        }
        s.live.insert(addr as usize, size);
        s.live_bytes += size as u64;
        s.m.peak_bytes = s.m.peak_bytes.max(s.live_bytes);
    });
}

/// Counts a free of the `size`-byte block at `addr`.
#[inline]
pub(crate) fn on_free(addr: *mut u8, size: usize) {
    TOTAL_FREES.fetch_add(1, Relaxed);
    CURRENT_BYTES.fetch_sub(size as i64, Relaxed);
    with_scope(|s| {
        s.m.frees += 1;
        if let Some(sz) = s.live.remove(&(addr as usize)) {
            s.live_bytes -= sz as u64;
        }
    });
}
