//! The loaded profile: interned strings, frames and stacks with typed ids, per-stack aggregates,
//! threads, timeline samples and totals.
//!
//! The loader ([`crate::load`]) builds a [`Profile`]; analyses ([`crate::analysis`]) and renderers
//! ([`crate::render`]) only read it. Stacks form a prefix tree: each [`StackNode`] is one return
//! address under its caller's node, so shared prefixes are stored once. A return address
//! ([`Ip`]) expands to one or more [`Frame`]s after symbolization (inlined calls), innermost
//! first.

mod counts;
pub mod cpu;
mod escape;
mod strings;
pub mod time_buckets;

pub use counts::Counts;
pub use cpu::{CpuProfile, CpuSample, CpuStack};
pub use escape::{EscapeData, StackEscape};
pub use strings::{StringId, Strings};
pub use time_buckets::TimeBuckets;

use serde::Serialize;
use tidemark::format::{Header, Module, Truncation};

/// Index of a [`Frame`] in [`Profile::frames`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FrameId(pub u32);

/// Index of an [`Ip`] in [`Profile::ips`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpId(pub u32);

/// Index of a [`StackNode`] in [`Profile::stacks`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StackId(pub u32);

/// One symbolized source-level frame (a function, or a call inlined into one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Frame {
    /// Demangled function name (never empty: `module+0xoffset` when unknown).
    pub function: StringId,
    /// Source file, empty when unknown.
    pub file: StringId,
    /// Source line, 0 when unknown.
    pub line: u32,
}

/// A return address found in recorded stacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ip {
    /// The runtime address as recorded (a return address).
    pub address: u64,
    /// Module generation the address belongs to (0: the latest module map that has it).
    pub generation: u64,
    /// Its frames, innermost inlined call first; the last one is the real (outlined) function.
    /// Never empty.
    pub frames: Vec<FrameId>,
}

/// A node of the stack prefix tree: one return address called from its parent's frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StackNode {
    /// The caller's node; `None` for an outermost frame.
    pub parent: Option<StackId>,
    /// The return address of this frame.
    pub ip: IpId,
}

/// Aggregates for one recorded allocation stack.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StackStats {
    /// Leaf node of the stack (the innermost frame); `None` when the stack was empty or never
    /// defined in the profile (truncated file).
    #[serde(skip)]
    pub stack: Option<StackId>,
    /// Allocations, bytes, peak contribution, leaks and temporaries of this stack.
    #[serde(flatten)]
    pub counts: Counts,
    /// Live blocks from this stack at the instant of the global peak.
    pub peak_blocks: u64,
    /// Largest live bytes of this stack alone at any instant (its own maximum, the latest one
    /// when equal maxima recur; DHAT's `mb`).
    pub max_live_bytes: u64,
    /// Live blocks of this stack when [`StackStats::max_live_bytes`] was reached (DHAT's `mbk`).
    pub max_live_blocks: u64,
    /// Smallest requested size of one recorded allocation, bytes (0 when none).
    pub min_block_bytes: u64,
    /// Largest requested size of one recorded allocation, bytes.
    pub max_block_bytes: u64,
    /// Frees of blocks from this stack (realloc's free half included).
    pub frees: u64,
    /// The recorder cut this stack at its frame limit: its outermost frames (`main` and the
    /// callers above the cut) are missing. Set by the loader ([`crate::load`], one rule: see
    /// `load::stack_was_cut`); renderers show such stacks under a `[truncated]` root.
    #[serde(skip)]
    pub truncated: bool,
    /// Blocks still live at the end that a suppression rule names runtime-owned
    /// ([`crate::analysis::suppress`]); they are not counted in `leaked_allocations`.
    pub runtime_owned_allocations: u64,
    /// Requested bytes of those blocks; not counted in `leaked_bytes`.
    pub runtime_owned_bytes: u64,
}

/// Blocks live at the end that one suppression rule names runtime-owned.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RuntimeOwned {
    /// The rule's label (`per-thread DTV`, `glibc loader`, `locale`, …).
    pub rule: String,
    /// Requested bytes of those blocks.
    pub bytes: u64,
    /// The blocks.
    pub blocks: u64,
}

impl StackStats {
    /// False for a stack only CPU samples have (no allocation or free): allocation sites and
    /// call paths leave it out.
    pub fn has_allocations(&self) -> bool {
        self.counts.allocations > 0 || self.counts.allocated_bytes > 0 || self.frees > 0
    }
}

/// The root frame under which stacks cut at the recorder's frame limit are shown.
pub const TRUNCATED_FRAME: &str = "[truncated]";

/// A thread of the profiled process.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ThreadInfo {
    /// Kernel thread id.
    pub tid: u32,
    /// Name at registration, empty when unknown.
    pub name: String,
    /// Lowest address of its stack (0 when unknown).
    pub stack_lo: u64,
    /// Highest address of its stack (0 when unknown).
    pub stack_hi: u64,
    /// Deepest stack use observed, bytes, when the thread's exit was recorded.
    pub stack_high_water_bytes: Option<u64>,
    /// Allocation calls made by this thread.
    pub allocations: u64,
    /// Bytes requested by this thread.
    pub allocated_bytes: u64,
}

/// A timeline sample, with the replay's own view of the heap at that point.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Sample {
    /// Time since the start of the process, ns.
    pub t_ns: u64,
    /// Sequence counter when the sample was taken: it follows every event with a smaller one.
    pub seq: u64,
    /// The recorder's values, `(tidemark::format::sample_key, value)`.
    pub values: Vec<(u64, u64)>,
    /// Live heap bytes at this point of the replay (exact, from events).
    pub live_bytes: u64,
    /// Live blocks at this point of the replay.
    pub live_blocks: u64,
}

impl Sample {
    /// The recorder's value for `key` (a `tidemark::format::sample_key`).
    pub fn value(&self, key: u64) -> Option<u64> {
        self.values.iter().find(|(k, _)| *k == key).map(|&(_, v)| v)
    }
}

/// A message the recorder wrote into the profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    /// 0 info, 1 warning, 2 error.
    pub level: u8,
    /// Text.
    pub text: String,
}

impl Message {
    /// `"info"`, `"warning"` or `"error"`.
    pub fn level_name(&self) -> &'static str {
        match self.level {
            0 => "info",
            1 => "warning",
            _ => "error",
        }
    }
}

/// One module map snapshot of the profiled process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleSnapshot {
    /// Snapshot number, increasing.
    pub generation: u64,
    /// The modules loaded at that point.
    pub modules: Vec<Module>,
}

/// Blocks of one stack with the same allocating thread, allocation interval, freeing thread and
/// free interval (or still live at the end). An interval `b` is the span between timeline
/// samples `b - 1` and `b` of [`Profile::samples`] (`0`: before the first sample; `samples.len()`:
/// after the last one). Events carry sequence numbers, not times: their times are interpolated
/// inside their interval ([`crate::analysis::lifetimes`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BlockGroup {
    /// Index of the allocating stack in [`Profile::stack_stats`].
    pub stack: u32,
    /// Allocating thread.
    pub alloc_tid: u32,
    /// Interval of the allocations.
    pub alloc_interval: u32,
    /// Freeing thread and interval of the frees; `None` for blocks live at the end.
    pub free: Option<(u32, u32)>,
    /// Blocks recorded (one per allocation event, also in a sampled profile).
    pub records: u64,
    /// Allocations these blocks stand for (the sampling weights summed; `records` when exact).
    pub allocations: u64,
    /// Requested bytes these blocks stand for.
    pub bytes: u64,
    /// Sum of the allocation events' sequence numbers.
    pub alloc_seq_sum: u128,
    /// Sum of the free events' sequence numbers (0 for live blocks).
    pub free_seq_sum: u128,
}

/// Every recorded block in [`BlockGroup`]s: what per-event outputs (the Firefox Profiler's
/// allocation samples, DHAT's lifetimes) need, without keeping every event. Built only when
/// [`crate::load::LoadOptions::block_groups`] asks for it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BlockGroups {
    /// The groups, in no particular order.
    pub groups: Vec<BlockGroup>,
    /// One past the largest sequence number replayed (the end of the last interval).
    pub end_seq: u64,
}

/// Whole-profile totals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Allocation calls (realloc included), requested bytes, the largest live heap at any
    /// instant (`peak_bytes`), what is live at the end, temporary allocations.
    #[serde(flatten)]
    pub counts: Counts,
    /// Of the allocation calls, realloc calls of a non-null block.
    pub reallocs: u64,
    /// `free` calls of a non-null pointer (realloc's free half not included).
    pub frees: u64,
    /// Frees (or realloc free halves) of addresses never seen allocated: blocks allocated before
    /// recording began. They carry no bytes.
    pub unmatched_frees: u64,
    /// Live blocks at the instant of the peak.
    pub peak_blocks: u64,
    /// Sequence number of the allocation that reached the peak.
    pub peak_seq: u64,
    /// Blocks live at the end that are runtime-owned, not leaked ([`StackStats`]).
    pub runtime_owned_allocations: u64,
    /// Bytes of those blocks.
    pub runtime_owned_bytes: u64,
    /// Duration of the recording, ns: the trailer's end time, else the last sample's time.
    pub duration_ns: u64,
    /// Events the recorder reported it could not record (from the trailer).
    pub dropped_events: u64,
    /// Events that arrived after a watermark had promised them away (a recorder bug; applied
    /// late).
    pub late_events: u64,
    /// An allocation returned an address that was still live (its free was not recorded).
    pub reused_live_addresses: u64,
}

/// Standard errors of a sampled profile's estimates (Horvitz–Thompson: each sampled block of
/// `s` bytes kept with probability `p` adds `(1−p)/p²·s²` to the variance of a byte estimate).
/// A 95% interval is the estimate ± 1.96 standard errors ([`SamplingError::interval`]).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SamplingError {
    /// Of the allocation count.
    pub allocations: f64,
    /// Of the allocated bytes.
    pub allocated_bytes: f64,
    /// Of the live heap at the (estimated) peak.
    pub peak_bytes: f64,
    /// Of the bytes live at the end.
    pub leaked_bytes: f64,
    /// Of the blocks live at the end.
    pub leaked_allocations: f64,
}

/// z for a two-sided 95% interval.
pub const Z95: f64 = 1.959_964;

impl SamplingError {
    /// `estimate ± z·error`, clamped at 0.
    pub fn interval(estimate: u64, error: f64, z: f64) -> [u64; 2] {
        let e = estimate as f64;
        [
            (e - z * error).max(0.0).round() as u64,
            (e + z * error).round() as u64,
        ]
    }
}

/// A loaded profile.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    /// Sampled profiles: the standard errors of the totals' estimates (`None` in exact mode).
    pub sampling_error: Option<SamplingError>,
    /// The file's header.
    pub header: Header,
    /// Set when the profile ended before its trailer (killed process, damaged data). Every
    /// output must show a warning.
    pub truncated: Option<Truncation>,
    /// Whole-profile totals.
    pub totals: Totals,
    /// Interned strings (function names, files).
    pub strings: Strings,
    /// Interned frames.
    pub frames: Vec<Frame>,
    /// Interned return addresses.
    pub ips: Vec<Ip>,
    /// The stack prefix tree.
    pub stacks: Vec<StackNode>,
    /// Aggregates per recorded allocation stack.
    pub stack_stats: Vec<StackStats>,
    /// Threads, ordered by first appearance.
    pub threads: Vec<ThreadInfo>,
    /// Timeline samples in time order, with replayed live heap.
    pub samples: Vec<Sample>,
    /// Messages from the recorder.
    pub messages: Vec<Message>,
    /// Warnings from loading and symbolization (missing files, build-id mismatches, ...).
    pub warnings: Vec<String>,
    /// Every module map snapshot, in file order.
    pub modules: Vec<ModuleSnapshot>,
    /// The trailer's raw values, when the profile ended cleanly.
    pub trailer: Option<Vec<(u64, u64)>>,
    /// Blocks grouped by stack, threads and intervals, when the load asked for them.
    pub block_groups: Option<BlockGroups>,
    /// Per-stack activity over time; only when loaded with
    /// [`crate::load::load_path_with_time_buckets`].
    pub time_buckets: Option<TimeBuckets>,
    /// CPU samples, when the profile was recorded with `--cpu` and holds some.
    pub cpu: Option<CpuProfile>,
    /// Blocks live at the end that suppression rules name runtime-owned, per rule that matched
    /// (set by the loader, [`crate::analysis::suppress`]).
    pub runtime_owned: Vec<RuntimeOwned>,
    /// What became of each stack's blocks relative to the allocating frames (parallel to
    /// [`Profile::stack_stats`]) and the stack-depth series; only for profiles recorded with
    /// `--escape` ([`crate::analysis::escape`]).
    pub escape: Option<EscapeData>,
    /// The symbols the profile carries (Symbols records), by `(address, module generation)`:
    /// what [`crate::symbolize::symbolize`] uses before reading any binary.
    pub embedded_symbols: std::collections::HashMap<(u64, u64), Vec<tidemark::format::SymbolFrame>>,
    /// Where the file's last readable chunk ends (its length, when nothing is damaged): where
    /// [`crate::embed`] appends symbols.
    pub readable_end: u64,
}

impl Profile {
    /// The string behind an id.
    pub fn str(&self, id: StringId) -> &str {
        self.strings.get(id)
    }

    /// A frame by id.
    pub fn frame(&self, id: FrameId) -> &Frame {
        &self.frames[id.0 as usize]
    }

    /// A return address by id.
    pub fn ip(&self, id: IpId) -> &Ip {
        &self.ips[id.0 as usize]
    }

    /// A stack node by id.
    pub fn stack_node(&self, id: StackId) -> &StackNode {
        &self.stacks[id.0 as usize]
    }

    /// The return addresses of a stack, innermost first.
    pub fn stack_ips(&self, leaf: Option<StackId>) -> StackIps<'_> {
        StackIps {
            profile: self,
            next: leaf,
        }
    }

    /// Every frame of a stack, innermost first (inlined frames expanded).
    pub fn stack_frames(&self, leaf: Option<StackId>) -> impl Iterator<Item = &Frame> + '_ {
        self.stack_ips(leaf)
            .flat_map(move |ip| self.ip(ip).frames.iter().map(move |&f| self.frame(f)))
    }

    /// Duration of the recording in ms.
    pub fn duration_ms(&self) -> u64 {
        self.totals.duration_ns / 1_000_000
    }

    /// Interns a frame.
    pub(crate) fn intern_frame(
        &mut self,
        index: &mut rustc_hash::FxHashMap<Frame, FrameId>,
        frame: Frame,
    ) -> FrameId {
        *index.entry(frame).or_insert_with(|| {
            self.frames.push(frame);
            FrameId((self.frames.len() - 1) as u32)
        })
    }
}

/// Iterator over a stack's return addresses, innermost first.
#[derive(Debug, Clone)]
pub struct StackIps<'a> {
    profile: &'a Profile,
    next: Option<StackId>,
}

impl Iterator for StackIps<'_> {
    type Item = IpId;
    fn next(&mut self) -> Option<IpId> {
        let id = self.next?;
        let node = self.profile.stack_node(id);
        self.next = node.parent;
        Some(node.ip)
    }
}
