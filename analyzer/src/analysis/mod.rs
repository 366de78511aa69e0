//! Pure functions over a loaded [`Profile`]: the summary, allocation sites, per-function totals,
//! and the [`views`] every renderer draws.
//!
//! Every metric is defined once, in [`metric`]'s table; definitions (peak, leaked, temporary,
//! site) are in `docs/metrics.md`.

pub mod call_paths;
pub mod cpu;
pub mod escape;
pub mod growth;
pub mod lifetimes;
pub mod metric;
mod plumbing;
pub mod pressure;
mod stack_quality;
pub mod stack_roots;
pub mod stats;
mod summary_json;
pub mod suppress;
pub mod views;

pub use call_paths::{call_paths, sort_sites, CallPath, SiteSort};
pub use metric::{Metric, MetricDef, MetricUnavailable, Unit, UnknownMetric, METRICS};
pub use plumbing::{
    is_allocator_plumbing, is_allocator_shim, is_library_source, is_plumbing_frame,
    without_return_type, Machinery, Matching, MACHINERY, MACHINERY_FILES,
};
pub use pressure::{pressure, Pressure, PressureOptions};
pub use stack_quality::{stack_quality, StackQuality};

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use crate::model::{Counts, Frame, FrameId, Profile, StackId, StringId};

/// Default number of sites in [`summary`] (the CLI's `--top`).
pub const DEFAULT_TOP_N: usize = 10;

/// The name used for allocations whose stack is empty or unknown.
pub const UNKNOWN_FUNCTION: &str = "[unknown]";

/// The function, file and line a site's frame names ([`UNKNOWN_FUNCTION`] without a frame).
pub(crate) fn site_location(p: &Profile, f: Option<FrameId>) -> (String, String, u32) {
    match f {
        Some(f) => {
            let Frame {
                function,
                file,
                line,
            } = *p.frame(f);
            (p.str(function).to_owned(), p.str(file).to_owned(), line)
        }
        None => (UNKNOWN_FUNCTION.to_owned(), String::new(), 0),
    }
}

/// Per-function inclusive totals: each allocation counts once for every distinct function name on
/// its symbolized stack (inlined frames included; a function appearing several times, as in
/// recursion, counts once).
pub fn function_totals(p: &Profile) -> BTreeMap<String, Counts> {
    let mut by_id: HashMap<StringId, Counts> = HashMap::new();
    let mut unknown = Counts::default();
    let mut names: HashSet<StringId> = HashSet::new();
    for s in &p.stack_stats {
        if s.stack.is_none() {
            unknown.add(&s.counts);
            continue;
        }
        names.clear();
        names.extend(p.stack_frames(s.stack).map(|f| f.function));
        for &n in &names {
            by_id.entry(n).or_default().add(&s.counts);
        }
    }
    let mut out: BTreeMap<String, Counts> = by_id
        .into_iter()
        .map(|(id, t)| (p.str(id).to_owned(), t))
        .collect();
    if unknown != Counts::default() {
        out.entry(UNKNOWN_FUNCTION.to_owned())
            .or_default()
            .add(&unknown);
    }
    out
}

/// The site of a stack: its innermost frame that is not allocator machinery (or the innermost
/// frame when every frame is machinery). `None` for an empty or unknown stack.
pub fn site_frame(p: &Profile, leaf: Option<StackId>) -> Option<FrameId> {
    SiteFinder::new(p).frame(leaf)
}

/// How many frames of `p.stack_frames(leaf)` (innermost first, inlined frames expanded) are
/// allocator machinery before the site; 0 when every frame is machinery (the innermost frame is
/// then the site).
///
/// A frame is machinery when [`is_plumbing_frame`] says so, or when it is inlined (directly or
/// not) into a machinery frame of the same return address and either
/// - that frame is a Rust allocator shim ([`is_allocator_shim`]): whatever is inlined there is the
///   global allocator's implementation, the program's own `GlobalAlloc::alloc` included (which
///   `line-tables-only` debug info names just `alloc`); or
/// - it is named without a path and comes from library sources ([`is_library_source`]), such as
///   `Option::map_or_else` inlined into `alloc::fmt::format`.
///
/// The program's own closures inlined into a collection's code stay sites.
pub fn site_index(p: &Profile, leaf: Option<StackId>) -> usize {
    SiteFinder::new(p).index(leaf)
}

/// [`site_frame`] and [`site_index`] for many stacks of one profile: what each frame is (by the
/// string matching of [`is_plumbing_frame`] and its neighbours) is worked out once, not once per
/// stack through it (python3's 6,500 stacks share a few hundred frames near their leaves).
pub struct SiteFinder<'a> {
    p: &'a Profile,
    /// Per frame id: 0 until known, then [`KNOWN`] and the kind bits.
    kinds: Vec<u8>,
    /// Scratch: which frames of one return address are machinery.
    machinery: Vec<bool>,
}

const KNOWN: u8 = 1;
/// [`is_plumbing_frame`].
const PLUMBING: u8 = 2;
/// Named without a path, from library sources ([`is_library_source`]).
const LIBRARY_UNQUALIFIED: u8 = 4;
/// [`is_allocator_shim`].
const SHIM: u8 = 8;

impl<'a> SiteFinder<'a> {
    /// A finder for the stacks of `p`.
    pub fn new(p: &'a Profile) -> Self {
        SiteFinder {
            p,
            kinds: Vec::new(),
            machinery: Vec::new(),
        }
    }

    fn kind(&mut self, f: FrameId) -> u8 {
        let i = f.0 as usize;
        if i >= self.kinds.len() {
            // Zeroed memory from the allocator: untouched pages cost nothing.
            self.kinds.resize(self.p.frames.len().max(i + 1), 0);
        }
        if self.kinds[i] == 0 {
            let frame = self.p.frame(f);
            let (name, file) = (self.p.str(frame.function), self.p.str(frame.file));
            let mut k = KNOWN;
            if is_plumbing_frame(name, file) {
                k |= PLUMBING;
            }
            if !crate::symbolize::is_qualified(name) && is_library_source(file) {
                k |= LIBRARY_UNQUALIFIED;
            }
            if is_allocator_shim(name) {
                k |= SHIM;
            }
            self.kinds[i] = k;
        }
        self.kinds[i]
    }

    /// [`site_index`] of `leaf`.
    pub fn index(&mut self, leaf: Option<StackId>) -> usize {
        let p = self.p;
        let mut index = 0;
        let mut machinery = std::mem::take(&mut self.machinery);
        for ip in p.stack_ips(leaf) {
            let frames = &p.ip(ip).frames;
            // From the outlined function inwards: is each frame machinery, or inside machinery?
            machinery.clear();
            machinery.resize(frames.len(), false);
            let (mut inside, mut inside_shim) = (false, false);
            for (i, &f) in frames.iter().enumerate().rev() {
                let k = self.kind(f);
                let own = k & PLUMBING != 0;
                machinery[i] = own || inside_shim || (inside && k & LIBRARY_UNQUALIFIED != 0);
                inside |= own;
                inside_shim |= k & SHIM != 0;
            }
            if let Some(at) = machinery.iter().position(|&m| !m) {
                self.machinery = machinery;
                return index + at;
            }
            index += machinery.len();
        }
        self.machinery = machinery;
        0
    }

    /// [`site_frame`] of `leaf`.
    pub fn frame(&mut self, leaf: Option<StackId>) -> Option<FrameId> {
        let skip = self.index(leaf);
        let p = self.p;
        p.stack_ips(leaf)
            .flat_map(|ip| p.ip(ip).frames.iter().copied())
            .nth(skip)
    }
}

/// An allocation site with its totals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SiteSummary {
    /// Function name.
    pub function: String,
    /// Source file, empty when unknown.
    pub file: String,
    /// Source line, 0 when unknown.
    pub line: u32,
    /// The site's allocations, bytes, peak contribution, leaks and temporaries.
    #[serde(flatten)]
    pub counts: Counts,
}

/// Every allocation site, largest allocated bytes first (ties: more calls first, then by name).
pub fn sites(p: &Profile) -> Vec<SiteSummary> {
    let mut by_frame: HashMap<Option<FrameId>, Counts> = HashMap::new();
    let mut finder = SiteFinder::new(p);
    for s in p.stack_stats.iter().filter(|s| s.has_allocations()) {
        by_frame
            .entry(finder.frame(s.stack))
            .or_default()
            .add(&s.counts);
    }
    let mut out: Vec<SiteSummary> = by_frame
        .into_iter()
        .map(|(f, counts)| {
            let (function, file, line) = site_location(p, f);
            SiteSummary {
                function,
                file,
                line,
                counts,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        b.counts
            .allocated_bytes
            .cmp(&a.counts.allocated_bytes)
            .then(b.counts.allocations.cmp(&a.counts.allocations))
            .then_with(|| a.function.cmp(&b.function))
            .then_with(|| a.file.cmp(&b.file))
            .then(a.line.cmp(&b.line))
    });
    out
}

/// What the profile says about the recorded process.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProcessInfo {
    /// Process id.
    pub pid: u32,
    /// Executable path.
    pub exe: String,
    /// Command line.
    pub cmdline: Vec<String>,
    /// "preload" or "in-process".
    pub source: String,
    /// Allocator serving the program.
    pub allocator: String,
    /// The allocator asked for (`tidemark run --allocator`: `system`, the program's own, or
    /// `jemalloc`, the bundled one); absent when the recorder was not told.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub allocator_requested: String,
    /// Unwinding mode.
    pub unwind: String,
    /// Format version of the file.
    pub format_version: u16,
    /// Mean bytes between samples; 0 = every allocation recorded.
    pub sampling_rate_bytes: u64,
}

/// A recorder message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MessageSummary {
    /// "info", "warning" or "error".
    pub level: &'static str,
    /// Text.
    pub text: String,
}

/// The headline numbers of a profile (`tidemark summary --json`; the JSON keeps its published
/// field order, see `summary_json`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    /// The recorded process.
    pub process: ProcessInfo,
    /// The whole profile's counts: allocation calls (realloc included), requested bytes, the
    /// largest live heap at any instant (`peak_bytes`), what is live at the end, temporaries.
    pub counts: Counts,
    /// Of the allocation calls, reallocs of a non-null block.
    pub reallocs: u64,
    /// `free` calls of non-null pointers.
    pub frees: u64,
    /// Frees of blocks allocated before recording began.
    pub unmatched_frees: u64,
    /// Live blocks at the instant of the peak.
    pub peak_blocks: u64,
    /// Bytes live at the end that suppression rules name runtime-owned (not in `leaked_bytes`).
    pub runtime_owned_bytes: u64,
    /// Blocks live at the end that are runtime-owned (not in `leaked_allocations`).
    pub runtime_owned_blocks: u64,
    /// The runtime-owned blocks per rule that matched.
    pub runtime_owned: Vec<crate::model::RuntimeOwned>,
    /// Recording duration, ms.
    pub duration_ms: u64,
    /// Threads seen.
    pub threads: u64,
    /// Their stack sizes and peaks, in order of first appearance.
    pub thread_stacks: Vec<escape::ThreadStack>,
    /// Timeline samples.
    pub samples: u64,
    /// The profile ended before its trailer.
    pub truncated: bool,
    /// Why, when truncated.
    pub truncation_reason: Option<String>,
    /// Events the recorder could not record.
    pub dropped_events: u64,
    /// The top allocation sites by allocated bytes.
    pub top_sites: Vec<SiteSummary>,
    /// Messages from the recorder.
    pub messages: Vec<MessageSummary>,
    /// Warnings from loading and symbolization.
    pub warnings: Vec<String>,
    /// Sampled profiles: 95% intervals `[low, high]` of the estimates (docs/metrics.md).
    pub allocations_ci95: Option<[u64; 2]>,
    /// As [`Self::allocations_ci95`], of the allocated bytes.
    pub allocated_bytes_ci95: Option<[u64; 2]>,
    /// As [`Self::allocations_ci95`], of the peak.
    pub peak_bytes_ci95: Option<[u64; 2]>,
    /// As [`Self::allocations_ci95`], of the leaked bytes.
    pub leaked_bytes_ci95: Option<[u64; 2]>,
    /// As [`Self::allocations_ci95`], of the leaked blocks.
    pub leaked_allocations_ci95: Option<[u64; 2]>,
    /// Sampled profiles: the peak is below [`PEAK_RESOLUTION_PERIODS`] sampling periods, where
    /// the estimate of a maximum over time is biased upward (the noise's highest point).
    pub peak_below_sampling_resolution: Option<bool>,
    /// Growth, leak verdict, limit, RSS, rates and allocator latency (flattened into the JSON).
    pub pressure: Pressure,
    /// CPU time and its top functions, when the profile holds CPU samples (`--cpu`).
    pub cpu: Option<cpu::CpuSummary>,
}

/// A sampled peak under this many sampling periods is flagged "below sampling resolution".
pub const PEAK_RESOLUTION_PERIODS: u64 = 16;

/// The summary of a profile with its `top_n` largest sites.
pub fn summary(p: &Profile, top_n: usize) -> Summary {
    summary_with(p, top_n, &PressureOptions::default())
}

/// [`summary`] with pressure options (a memory limit to project against).
pub fn summary_with(p: &Profile, top_n: usize, pressure_opts: &PressureOptions) -> Summary {
    let t = &p.totals;
    let mut top_sites = sites(p);
    top_sites.truncate(top_n);
    let ci = |estimate: u64, error: fn(&crate::model::SamplingError) -> f64| {
        p.sampling_error
            .as_ref()
            .map(|e| crate::model::SamplingError::interval(estimate, error(e), crate::model::Z95))
    };
    Summary {
        allocations_ci95: ci(t.counts.allocations, |e| e.allocations),
        allocated_bytes_ci95: ci(t.counts.allocated_bytes, |e| e.allocated_bytes),
        peak_bytes_ci95: ci(t.counts.peak_bytes, |e| e.peak_bytes),
        leaked_bytes_ci95: ci(t.counts.leaked_bytes, |e| e.leaked_bytes),
        leaked_allocations_ci95: ci(t.counts.leaked_allocations, |e| e.leaked_allocations),
        peak_below_sampling_resolution: (p.header.sampling_rate != 0).then(|| {
            t.counts.peak_bytes < PEAK_RESOLUTION_PERIODS.saturating_mul(p.header.sampling_rate)
        }),
        process: ProcessInfo {
            pid: p.header.pid,
            exe: p.header.exe.clone(),
            cmdline: p.header.cmdline.clone(),
            source: p.header.source.clone(),
            allocator: p.header.allocator.clone(),
            allocator_requested: p.header.allocator_requested.clone(),
            unwind: p.header.unwind.clone(),
            format_version: p.header.version,
            sampling_rate_bytes: p.header.sampling_rate,
        },
        counts: t.counts,
        reallocs: t.reallocs,
        frees: t.frees,
        unmatched_frees: t.unmatched_frees,
        peak_blocks: t.peak_blocks,
        runtime_owned_bytes: t.runtime_owned_bytes,
        runtime_owned_blocks: t.runtime_owned_allocations,
        runtime_owned: p.runtime_owned.clone(),
        duration_ms: p.duration_ms(),
        threads: p.threads.len() as u64,
        thread_stacks: escape::thread_stacks(p),
        samples: p.samples.len() as u64,
        truncated: p.truncated.is_some(),
        truncation_reason: p
            .truncated
            .as_ref()
            .map(|tr| format!("{} (at byte {})", tr.reason, tr.offset)),
        dropped_events: t.dropped_events,
        top_sites,
        messages: p
            .messages
            .iter()
            .map(|m| MessageSummary {
                level: m.level_name(),
                text: m.text.clone(),
            })
            .collect(),
        warnings: p
            .warnings
            .iter()
            .cloned()
            .chain(stack_quality(p).warnings())
            .collect(),
        pressure: pressure::pressure(p, pressure_opts),
        cpu: cpu::cpu_summary(p, top_n),
    }
}

#[cfg(test)]
mod tests;
