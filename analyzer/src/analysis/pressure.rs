//! Pressure view of a profile: growth, leak verdict, limit, fragmentation, rates and allocator
//! latency, computed from the timeline samples (docs/metrics.md, "Growth and pressure").

use super::growth::{
    self, fragmentation_ratio, latency_spikes, time_to_limit, GrowthOptions, LatencySpike,
};
use crate::model::{Profile, Sample};
use serde::Serialize;
use tidemark::format::sample_key as key;

/// An interval whose slowest call exceeds this many times the run's median p50 is a spike.
/// Default: 50.
pub const DEFAULT_SPIKE_FACTOR: f64 = 50.0;
/// ...and takes at least this long. Default: 100 µs.
pub const DEFAULT_SPIKE_FLOOR_NS: f64 = 100_000.0;

/// Below this live heap at the end (or below 10% of the peak), RSS/live is not reported.
/// Default: 1 MiB.
pub const MIN_FRAGMENTATION_LIVE_BYTES: f64 = 1024.0 * 1024.0;

/// Options of [`pressure`].
#[derive(Debug, Clone, Copy, Default)]
pub struct PressureOptions {
    /// Memory limit in bytes; overrides the profile's (`--limit` at record time) and the cgroup's.
    pub limit_bytes: Option<u64>,
    /// Growth fit options.
    pub growth: GrowthOptions,
}

/// Where the limit came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitSource {
    /// Given to the analysis.
    Option,
    /// Given to the recorder (`tidemark run --limit`).
    Recorder,
    /// The cgroup's `memory.max`.
    Cgroup,
}

/// Pressure metrics of one profile. Fields are `null` when the profile has too few samples.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Pressure {
    /// Least-squares slope of the live heap over the steady part, bytes per second.
    pub growth_bytes_per_sec: Option<f64>,
    /// R² of that fit.
    pub growth_r2: Option<f64>,
    /// Sustained growth (see docs/metrics.md); false when unknown.
    pub leak_verdict: bool,
    /// One sentence explaining the verdict.
    pub leak_verdict_reason: String,
    /// Memory limit used, bytes.
    pub limit_bytes: Option<u64>,
    /// Where the limit came from.
    pub limit_source: Option<LimitSource>,
    /// Seconds from the end of the run until the live heap reaches the limit at the growth slope.
    pub time_to_limit_sec: Option<f64>,
    /// Live heap at the end over the limit, 0..; `null` without a limit.
    pub pressure_ratio: Option<f64>,
    /// Largest sampled RSS, bytes.
    pub peak_rss_bytes: Option<u64>,
    /// RSS over live heap at the last sample.
    pub fragmentation_ratio: Option<f64>,
    /// Allocated bytes per second over the run.
    pub alloc_rate_bytes_per_sec: Option<f64>,
    /// Allocation calls per second over the run.
    pub alloc_rate_calls_per_sec: Option<f64>,
    /// p99 of allocator call latency: the per-interval p99s averaged, weighted by calls.
    pub alloc_latency_p99_ns: Option<f64>,
    /// Slowest allocator call seen in any interval.
    pub alloc_latency_max_ns: Option<u64>,
    /// Intervals with unusually slow allocator calls, like GC pauses.
    pub latency_spikes: Vec<LatencySpike>,
}

fn secs(s: &Sample) -> f64 {
    s.t_ns as f64 / 1e9
}

/// The live heap over time: `(seconds, bytes)`.
pub fn live_heap_series(p: &Profile) -> Vec<(f64, f64)> {
    p.samples
        .iter()
        .map(|s| (secs(s), s.live_bytes as f64))
        .collect()
}

/// A sampled value over time: `(seconds, value)` where present.
pub fn series(p: &Profile, k: u64) -> Vec<(f64, f64)> {
    p.samples
        .iter()
        .filter_map(|s| s.value(k).map(|v| (secs(s), v as f64)))
        .collect()
}

/// Per-second rate of a cumulative counter: `(seconds, rate)` between consecutive samples.
pub fn rate_series(p: &Profile, k: u64) -> Vec<(f64, f64)> {
    let pts = series(p, k);
    pts.windows(2)
        .filter(|w| w[1].0 > w[0].0)
        .map(|w| (w[1].0, (w[1].1 - w[0].1).max(0.0) / (w[1].0 - w[0].0)))
        .collect()
}

/// The limit in force: the option, else the recorder's, else the cgroup's `memory.max`.
pub fn limit(p: &Profile, opt: Option<u64>) -> Option<(u64, LimitSource)> {
    if let Some(l) = opt.filter(|&l| l > 0) {
        return Some((l, LimitSource::Option));
    }
    if p.header.limit_bytes > 0 {
        return Some((p.header.limit_bytes, LimitSource::Recorder));
    }
    p.samples
        .iter()
        .rev()
        .find_map(|s| s.value(key::CGROUP_MAX_BYTES))
        .filter(|&v| v > 0 && v < u64::MAX / 2)
        .map(|v| (v, LimitSource::Cgroup))
}

/// Computes the pressure metrics of `p`.
pub fn pressure(p: &Profile, opts: &PressureOptions) -> Pressure {
    let heap = live_heap_series(p);
    let g = growth::growth(&heap, &opts.growth);
    let last = p.samples.last();
    let live_end = last.map(|s| s.live_bytes as f64).unwrap_or(0.0);
    let lim = limit(p, opts.limit_bytes);
    let duration_sec = (p.totals.duration_ns as f64 / 1e9).max(last.map(secs).unwrap_or(0.0));
    let peak_rss = p
        .samples
        .iter()
        .filter_map(|s| s.value(key::RSS_BYTES))
        .max();
    let rss_end = p.samples.iter().rev().find_map(|s| s.value(key::RSS_BYTES));

    // Calls per interval weight the interval's p99.
    let mut weighted = (0.0, 0.0);
    let mut intervals = Vec::new();
    let mut prev_calls: Option<u64> = None;
    let mut max_ns: Option<u64> = None;
    for s in &p.samples {
        let calls = s.value(key::ALLOC_CALLS).unwrap_or(0) + s.value(key::FREE_CALLS).unwrap_or(0);
        let n = prev_calls.map_or(calls, |pc| calls.saturating_sub(pc));
        prev_calls = Some(calls);
        if let (Some(p50), Some(p99), Some(mx)) = (
            s.value(key::ALLOC_LATENCY_P50_NS),
            s.value(key::ALLOC_LATENCY_P99_NS),
            s.value(key::ALLOC_LATENCY_MAX_NS),
        ) {
            let w = n.max(1) as f64;
            weighted.0 += p99 as f64 * w;
            weighted.1 += w;
            max_ns = Some(max_ns.unwrap_or(0).max(mx));
            intervals.push((secs(s), p50 as f64, mx as f64, s.live_bytes as f64));
        }
    }
    let (verdict, reason) = match &g {
        Some(g) => (g.leak_verdict, g.verdict_reason.clone()),
        None => (false, "too few timeline samples to judge growth".to_owned()),
    };
    Pressure {
        growth_bytes_per_sec: g.as_ref().map(|g| g.growth_bytes_per_sec),
        growth_r2: g.as_ref().map(|g| g.growth_r2),
        leak_verdict: verdict,
        leak_verdict_reason: reason,
        limit_bytes: lim.map(|l| l.0),
        limit_source: lim.map(|l| l.1),
        time_to_limit_sec: lim.and_then(|(l, _)| {
            time_to_limit(
                live_end,
                g.as_ref().map_or(0.0, |g| g.growth_bytes_per_sec),
                l as f64,
            )
        }),
        pressure_ratio: lim.map(|(l, _)| live_end / l as f64),
        peak_rss_bytes: peak_rss,
        // Only meaningful while the heap still holds a fair part of its peak: after a release
        // to nothing, RSS/live grows without bound and says nothing about fragmentation.
        fragmentation_ratio: rss_end
            .filter(|_| {
                live_end >= MIN_FRAGMENTATION_LIVE_BYTES
                    && live_end >= 0.1 * p.totals.counts.peak_bytes as f64
            })
            .and_then(|r| fragmentation_ratio(r as f64, live_end)),
        alloc_rate_bytes_per_sec: (duration_sec > 0.0)
            .then(|| p.totals.counts.allocated_bytes as f64 / duration_sec),
        alloc_rate_calls_per_sec: (duration_sec > 0.0)
            .then(|| p.totals.counts.allocations as f64 / duration_sec),
        alloc_latency_p99_ns: (weighted.1 > 0.0).then(|| weighted.0 / weighted.1),
        alloc_latency_max_ns: max_ns,
        latency_spikes: latency_spikes(&intervals, DEFAULT_SPIKE_FACTOR, DEFAULT_SPIKE_FLOOR_NS),
    }
}
