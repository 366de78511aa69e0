//! tidemark: memory and allocator profiling for native programs on Linux.
//!
//! This crate holds the recorder, the profile format, and the in-process wrapper.
//!
//! ```text
//!  target process                                              analyzer (tidemark-analyzer)
//!  malloc/free hooks ─► per-thread buffers ─► writer thread ─► profile.tmk ─► load ─► model ─► views
//!  (preload or Tracking<A>)   stacks interned      chunks + checksums
//! ```
//!
//! Two ways to record:
//!
//! - **Wrap a binary**: `tidemark run -- ./app` preloads `libtidemark_preload.so`, which
//!   interposes the C allocator. It sees every allocation made through `malloc` and friends —
//!   C and C++ dependencies included — but not an allocator linked statically into the program
//!   (a Rust binary on jemalloc or mimalloc, a static executable).
//! - **Instrument a Rust program** with [`Tracking`] as `#[global_allocator]`: it wraps the
//!   program's own allocator (System, jemalloc, mimalloc), so statically linked allocators are
//!   seen; it sees Rust allocations only (not `malloc` calls made by C libraries).
//!
//! ```no_run
//! #[global_allocator]
//! static ALLOC: tidemark::Tracking<std::alloc::System> =
//!     tidemark::Tracking::new(std::alloc::System);
//!
//! fn main() -> Result<(), tidemark::SessionError> {
//!     let _session = tidemark::Session::start("app.tmk")?; // or TIDEMARK_OUTPUT=app.tmk
//!     let (v, m) = tidemark::measure(|| (0..1000u64).collect::<Vec<_>>());
//!     assert_eq!(m.allocations, 1, "{m}");
//!     drop(v);
//!     Ok(())
//! }
//! ```
//!
//! Then `tidemark summary app.tmk` or `tidemark flamegraph app.tmk`, as for a wrapped binary.
//! The counters API ([`stats`], [`measure`]) is always on, costs a few atomic operations per
//! allocation, and needs no session: it serves heap-usage assertions in `cargo test`.
#![warn(missing_docs)]

pub mod format;
pub mod record;
pub mod sys;
mod tracking;
pub mod unwind;

pub use tracking::{
    measure, stats, MeasuredSite, Measurement, Session, SessionError, SessionOptions, Stats,
    Tracking, TOP_SITES,
};
