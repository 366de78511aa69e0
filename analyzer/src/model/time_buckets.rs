//! Per-stack activity over time: the profile cut into a bounded number of time buckets, each with
//! the allocations, frees, temporaries and leaks of every stack active in it.
//!
//! Events carry a global sequence number, not a time; timeline samples carry both. A bucket is a
//! run of consecutive sample intervals, so its bounds are exact in both terms: every event with
//! `seq_lo <= seq < seq_hi` belongs to it, and it spans `start_ns..end_ns`. The loader builds
//! this only when asked ([`crate::load::load_path_with_time_buckets`]); the interactive page
//! recomputes a selected time range's flamegraph from it.

use serde::Serialize;

/// Bins of [`Bucket::size_histogram`] and [`Bucket::lifetime_histogram`]: bin 0 holds 0, bin `k`
/// holds values in `2^(k-1) .. 2^k`.
pub const LOG2_BINS: usize = 65;

/// The log2 bin of `v` (see [`LOG2_BINS`]).
pub fn log2_bin(v: u64) -> usize {
    (64 - v.leading_zeros()) as usize
}

/// One stack's activity in one bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BucketCell {
    /// Index into [`crate::model::Profile::stack_stats`].
    pub stack: u32,
    /// Allocation calls in the bucket.
    pub allocations: u64,
    /// Requested bytes of those calls.
    pub allocated_bytes: u64,
    /// Blocks of this stack freed in the bucket (whenever they were allocated).
    pub frees: u64,
    /// Bytes of those blocks.
    pub freed_bytes: u64,
    /// Blocks allocated in the bucket that were temporary (docs/metrics.md).
    pub temporary_allocations: u64,
    /// Blocks allocated in the bucket and still live at the end of the profile.
    pub leaked_allocations: u64,
    /// Bytes of those blocks.
    pub leaked_bytes: u64,
}

/// A run of consecutive sample intervals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Bucket {
    /// Start, ns since the process started.
    pub start_ns: u64,
    /// End, ns since the process started (the profile's end for the last bucket).
    pub end_ns: u64,
    /// Lowest sequence number of the bucket's events.
    pub seq_lo: u64,
    /// Sequence numbers of the bucket's events are below this (`u64::MAX` for the last bucket).
    pub seq_hi: u64,
    /// Stacks active in the bucket, by stack index.
    pub cells: Vec<BucketCell>,
    /// Allocation calls by requested size, log2 bins ([`LOG2_BINS`]).
    pub size_histogram: Vec<u64>,
    /// Blocks allocated in the bucket and freed later, by estimated lifetime in ns, log2 bins.
    /// Event times are estimated from the sequence counter between two samples.
    pub lifetime_histogram: Vec<u64>,
    /// Per thread, live bytes allocated by it that changed in the bucket: `(tid, net change)`.
    pub thread_net_bytes: Vec<(u32, i64)>,
}

/// The profile cut into time buckets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TimeBuckets {
    /// Sample intervals in one bucket (a power of two).
    pub intervals_per_bucket: u64,
    /// The buckets in time order; together they cover every event.
    pub buckets: Vec<Bucket>,
}
