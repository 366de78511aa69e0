//! The JSON of a [`Summary`] (`tidemark summary --json`, the JSON export, docs/usage.md): the
//! published field order interleaves the whole-profile [`Counts`](crate::model::Counts) with
//! other totals (`allocations, reallocs, frees, unmatched_frees, allocated_bytes, …`), so the
//! summary is written through this borrowed view instead of flattening its `counts`.

use serde::{Serialize, Serializer};

use super::{MessageSummary, Pressure, ProcessInfo, SiteSummary, Summary};

#[derive(Serialize)]
struct SummaryJson<'a> {
    process: &'a ProcessInfo,
    allocations: u64,
    reallocs: u64,
    frees: u64,
    unmatched_frees: u64,
    allocated_bytes: u64,
    peak_bytes: u64,
    peak_blocks: u64,
    leaked_bytes: u64,
    leaked_allocations: u64,
    runtime_owned_bytes: u64,
    runtime_owned_blocks: u64,
    runtime_owned: &'a [crate::model::RuntimeOwned],
    temporary_allocations: u64,
    duration_ms: u64,
    thread_count: u64,
    threads: &'a [super::escape::ThreadStack],
    samples: u64,
    truncated: bool,
    truncation_reason: &'a Option<String>,
    dropped_events: u64,
    top_sites: &'a [SiteSummary],
    messages: &'a [MessageSummary],
    warnings: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    allocations_ci95: Option<[u64; 2]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    allocated_bytes_ci95: Option<[u64; 2]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    peak_bytes_ci95: Option<[u64; 2]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    leaked_bytes_ci95: Option<[u64; 2]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    leaked_allocations_ci95: Option<[u64; 2]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    peak_below_sampling_resolution: Option<bool>,
    #[serde(flatten)]
    pressure: &'a Pressure,
    #[serde(skip_serializing_if = "Option::is_none")]
    cpu: &'a Option<super::cpu::CpuSummary>,
}

impl Serialize for Summary {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let c = &self.counts;
        SummaryJson {
            process: &self.process,
            allocations: c.allocations,
            reallocs: self.reallocs,
            frees: self.frees,
            unmatched_frees: self.unmatched_frees,
            allocated_bytes: c.allocated_bytes,
            peak_bytes: c.peak_bytes,
            peak_blocks: self.peak_blocks,
            leaked_bytes: c.leaked_bytes,
            leaked_allocations: c.leaked_allocations,
            runtime_owned_bytes: self.runtime_owned_bytes,
            runtime_owned_blocks: self.runtime_owned_blocks,
            runtime_owned: &self.runtime_owned,
            temporary_allocations: c.temporary_allocations,
            duration_ms: self.duration_ms,
            thread_count: self.threads,
            threads: &self.thread_stacks,
            samples: self.samples,
            truncated: self.truncated,
            truncation_reason: &self.truncation_reason,
            dropped_events: self.dropped_events,
            top_sites: &self.top_sites,
            messages: &self.messages,
            warnings: &self.warnings,
            allocations_ci95: self.allocations_ci95,
            allocated_bytes_ci95: self.allocated_bytes_ci95,
            peak_bytes_ci95: self.peak_bytes_ci95,
            leaked_bytes_ci95: self.leaked_bytes_ci95,
            leaked_allocations_ci95: self.leaked_allocations_ci95,
            peak_below_sampling_resolution: self.peak_below_sampling_resolution,
            pressure: &self.pressure,
            cpu: &self.cpu,
        }
        .serialize(serializer)
    }
}
