//! [`Counts`]: the numbers every aggregate of allocations carries, whether it covers one stack
//! ([`super::StackStats`]), one site or function ([`crate::analysis::SiteSummary`]) or the whole
//! profile ([`super::Totals`]). Metrics ([`crate::analysis::metric`]) read their values from it.

use serde::Serialize;

/// Allocation counts of one aggregate: a stack, a site, a function or the whole profile.
///
/// Serialized flattened into its owner; the field order is the order of the published JSON
/// (`tidemark summary --json`'s `top_sites`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Allocation calls (realloc included: each non-null realloc is one call).
    pub allocations: u64,
    /// Requested bytes over those calls.
    pub allocated_bytes: u64,
    /// Live bytes at the instant of the global peak (for the whole profile: the peak itself).
    pub peak_bytes: u64,
    /// Requested bytes of the blocks still live at the end of the profile.
    pub leaked_bytes: u64,
    /// Blocks still live at the end of the profile.
    pub leaked_allocations: u64,
    /// Blocks freed by the allocating thread with no other allocation by that thread in between
    /// (docs/metrics.md).
    pub temporary_allocations: u64,
    /// Requested bytes of the local blocks no larger than the default stack threshold (4 KiB):
    /// "could live on the stack" (docs/metrics.md). Only in profiles recorded with `--escape`
    /// (left out of the JSON while 0, so profiles without it read as before).
    #[serde(skip_serializing_if = "is_zero")]
    pub stack_eligible_bytes: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

impl Counts {
    /// Adds `o` (bytes saturate: a damaged profile may hold values near `u64::MAX`).
    pub fn add(&mut self, o: &Counts) {
        self.allocations = self.allocations.saturating_add(o.allocations);
        self.allocated_bytes = self.allocated_bytes.saturating_add(o.allocated_bytes);
        self.peak_bytes = self.peak_bytes.saturating_add(o.peak_bytes);
        self.leaked_bytes = self.leaked_bytes.saturating_add(o.leaked_bytes);
        self.leaked_allocations = self.leaked_allocations.saturating_add(o.leaked_allocations);
        self.temporary_allocations = self
            .temporary_allocations
            .saturating_add(o.temporary_allocations);
        self.stack_eligible_bytes = self
            .stack_eligible_bytes
            .saturating_add(o.stack_eligible_bytes);
    }
}
