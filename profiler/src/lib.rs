//! tidemark: memory and allocator profiling for native programs on Linux.
//!
//! This crate holds the recorder and the profile format.
//!
//! ```text
//!  target process                                   analyzer (tidemark-analyzer)
//!  malloc/free hooks ─► per-thread buffers ─► writer thread ─► profile.tmk ─► load ─► model ─► views
//!  (preload or Tracking<A>)   stacks interned       chunks + checksums
//! ```
#![warn(missing_docs)]

pub mod format;
pub mod record;
pub mod unwind;
