//! The tidemark profile format, version 5 — the contract between recorder and analyzer.
//!
//! `docs/format.md` is the normative description; this module is its implementation.
//!
//! ```text
//! file    := header chunk*
//! header  := "TIDEMARK" version:u16le reserved:u16le body_len:u32le body crc32(body):u32le
//! body    := (key:uvarint len:uvarint value)*          -- TLV, unknown keys are skipped
//! chunk   := "TMCK" payload_len:u32le crc32(payload):u32le payload
//! payload := kind:u8 codec:u8 raw_len:uvarint data      -- v2–v4; v1: payload := record*
//! data    := record*, stored (codec 0) or as one zstd frame (codec 1), or (event chunks: v3
//!            codec 2, v4 codec 3 with lanes per thread) as streams (`columns`) in one zstd frame
//! record  := tag:u8 fields                              -- tags < 64: fixed layout
//!          | tag:u8 len:uvarint fields                  -- tags >= 64: length-prefixed
//! ```
//!
//! Events (alloc, free, realloc) carry a global sequence number that orders them across threads.
//! Within a chunk, a [`Record::ThreadContext`]-style record (tag 1) sets the thread and the base
//! sequence; each event stores the difference to the previous sequence of that context. Events
//! reach the file in per-thread batches, so sequence numbers are not monotonic in the file; a
//! watermark record promises that every event with a smaller sequence has been written, which
//! lets a reader restore the global order with bounded memory.

mod chunk;
pub mod columns;
mod decode;
mod header;
mod reader;
mod samples;
pub mod varint;

pub use chunk::{put_chunk, put_chunk_raw, put_chunk_small, ChunkCodec, ChunkKind, ChunkWriter};
pub use decode::{ChunkBytes, OrderedState, RecordIter, BLOCK_ID};
pub use header::{header_key, Header};
pub use reader::{FormatError, Reader, Truncation};
pub use samples::SampleDeltas;
pub use varint::{
    put_bytes, put_ivarint, put_uvarint, unzigzag, zigzag, Cursor, DecodeError, Sink,
};

/// First eight bytes of every profile.
pub const MAGIC: [u8; 8] = *b"TIDEMARK";
/// Format version written by this crate. Readers accept every version from 1 to this one.
pub const VERSION: u16 = 5;
/// First four bytes of every chunk.
pub const CHUNK_MAGIC: [u8; 4] = *b"TMCK";
/// Size of a chunk's framing (magic, length, checksum).
pub const CHUNK_HEADER_LEN: usize = 12;
/// Largest payload a reader accepts; anything larger is treated as corruption.
pub const MAX_CHUNK_PAYLOAD: usize = 64 << 20;

/// Record tags.
pub mod tag {
    /// Thread context: sequenced layout `tid, seq_base`; ordered layout (v2 event chunks) `tid`.
    pub const CONTEXT: u8 = 1;
    /// Allocation: sequenced `seq_delta, addr, size, stack_id, kind:u8, align`; ordered
    /// `size, stack_id, kind:u8, align`.
    pub const ALLOC: u8 = 2;
    /// Free: sequenced `seq_delta, addr`; ordered `back` (`0, addr` for an unknown block).
    pub const FREE: u8 = 3;
    /// Realloc of a non-null block: sequenced `free_seq_delta, alloc_seq_delta, old_addr,
    /// new_addr, size, stack_id, kind:u8`; ordered `back (0, addr), size, stack_id, kind:u8`.
    pub const REALLOC: u8 = 4;
    /// Stack definition: `id, generation, flags, n, frame*n` (frames innermost first, return
    /// addresses; v1: `id, n, frame*n`).
    pub const STACK: u8 = 5;
    /// Thread: `tid, name, stack_lo, stack_hi`.
    pub const THREAD: u8 = 6;
    /// Module map snapshot.
    pub const MODULES: u8 = 7;
    /// Timeline sample: `seq, t_ns, n, (key, value)*n`.
    pub const SAMPLE: u8 = 8;
    /// Watermark: `seq`.
    pub const WATERMARK: u8 = 9;
    /// Trailer: `n, (key, value)*n`.
    pub const TRAILER: u8 = 10;
    /// Message from the recorder: `level:u8, text`.
    pub const MESSAGE: u8 = 11;
    /// Thread exit: `tid, stack_high_water_bytes`.
    pub const THREAD_EXIT: u8 = 12;
    /// CPU sample (v2): `tid, t_ns, stack_id, weight_ns`.
    pub const CPU_SAMPLE: u8 = 13;
    /// Frame addresses of the event just before it in the same context (v2): `sp,
    /// n, (cfa - sp)*n`: the stack pointer of the hooked call's caller and the canonical frame
    /// addresses of the first `n` frames of its stack.
    pub const EVENT_FRAMES: u8 = 14;
    /// Stack definition by its differences from an earlier stack (v3): `id, generation, flags,
    /// base, keep, n, frame*n`: the outermost `keep` (≥ 1) frames of stack `base`, and inside
    /// them `n` frames, written from the outermost inwards, each as the difference to the frame
    /// outside it.
    pub const STACK_TAIL: u8 = 15;
    /// Timeline sample as differences from the previous one (v3, `format::SampleDeltas`):
    /// `dt:ivarint` (the change of the time since the sample before), `m:uvarint`: `m = 2n`:
    /// `(key:uvarint, d:ivarint)*n`; `m = 2n + 1`: the previous sample's `n` keys, `d:ivarint*n`
    /// (`d`: a cumulative key's change of growth, another key's change). Its sequence number is
    /// the next event's.
    pub const SAMPLE_DELTA: u8 = 16;
    /// Symbols resolved at the end of a run (length-prefixed): `n, (ip, m, (function, file,
    /// line)*m)*n`, innermost inlined frame first.
    pub const SYMBOLS: u8 = 64;
    /// Return addresses of the event just before (length-prefixed): `n, ip*n`, innermost
    /// first; written after a free's `EVENT_FRAMES` in escape mode.
    pub const EVENT_RETURNS: u8 = 65;
}

/// Which entry point produced an allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum AllocKind {
    /// `malloc`, or `GlobalAlloc::alloc`.
    Malloc = 0,
    /// `calloc`, or `GlobalAlloc::alloc_zeroed`.
    Calloc = 1,
    /// `realloc` (also `realloc(NULL, n)`), or `GlobalAlloc::realloc`.
    Realloc = 2,
    /// `posix_memalign`.
    PosixMemalign = 3,
    /// `aligned_alloc`.
    AlignedAlloc = 4,
    /// `memalign`.
    Memalign = 5,
    /// `valloc`.
    Valloc = 6,
    /// `pvalloc`.
    Pvalloc = 7,
    /// `reallocarray`.
    Reallocarray = 8,
}

impl AllocKind {
    /// Every kind, in tag order.
    pub const ALL: [AllocKind; 9] = [
        AllocKind::Malloc,
        AllocKind::Calloc,
        AllocKind::Realloc,
        AllocKind::PosixMemalign,
        AllocKind::AlignedAlloc,
        AllocKind::Memalign,
        AllocKind::Valloc,
        AllocKind::Pvalloc,
        AllocKind::Reallocarray,
    ];
    /// Decodes a kind byte.
    pub fn from_u8(b: u8) -> Option<Self> {
        Self::ALL.get(b as usize).copied()
    }
    /// The C name of the entry point.
    pub fn name(self) -> &'static str {
        match self {
            AllocKind::Malloc => "malloc",
            AllocKind::Calloc => "calloc",
            AllocKind::Realloc => "realloc",
            AllocKind::PosixMemalign => "posix_memalign",
            AllocKind::AlignedAlloc => "aligned_alloc",
            AllocKind::Memalign => "memalign",
            AllocKind::Valloc => "valloc",
            AllocKind::Pvalloc => "pvalloc",
            AllocKind::Reallocarray => "reallocarray",
        }
    }
}

/// Keys of timeline samples. Values are unsigned integers; latencies are in ns.
pub mod sample_key {
    /// Live heap, requested bytes.
    pub const LIVE_BYTES: u64 = 1;
    /// Live blocks.
    pub const LIVE_BLOCKS: u64 = 2;
    /// Cumulative allocated bytes.
    pub const ALLOCATED_BYTES: u64 = 3;
    /// Cumulative freed bytes.
    pub const FREED_BYTES: u64 = 4;
    /// Cumulative allocation calls.
    pub const ALLOC_CALLS: u64 = 5;
    /// Cumulative free calls.
    pub const FREE_CALLS: u64 = 6;
    /// Resident set size, bytes.
    pub const RSS_BYTES: u64 = 7;
    /// Anonymous resident bytes.
    pub const RSS_ANON_BYTES: u64 = 8;
    /// File-backed resident bytes.
    pub const RSS_FILE_BYTES: u64 = 9;
    /// Cumulative minor page faults.
    pub const MINOR_FAULTS: u64 = 10;
    /// Cumulative major page faults.
    pub const MAJOR_FAULTS: u64 = 11;
    /// Thread count.
    pub const THREADS: u64 = 12;
    /// Allocator latency in the interval, p50, ns.
    pub const ALLOC_LATENCY_P50_NS: u64 = 13;
    /// Allocator latency in the interval, p99, ns.
    pub const ALLOC_LATENCY_P99_NS: u64 = 14;
    /// Allocator latency in the interval, max, ns.
    pub const ALLOC_LATENCY_MAX_NS: u64 = 15;
    /// cgroup memory.current, bytes.
    pub const CGROUP_CURRENT_BYTES: u64 = 16;
    /// cgroup memory.max, bytes (absent when unlimited).
    pub const CGROUP_MAX_BYTES: u64 = 17;
    /// /proc/pressure/memory "some avg10", in hundredths of a percent.
    pub const PSI_SOME_AVG10_CENTI: u64 = 18;
    /// /proc/pressure/memory "full avg10", in hundredths of a percent.
    pub const PSI_FULL_AVG10_CENTI: u64 = 19;
    /// jemalloc stats.allocated.
    pub const JEMALLOC_ALLOCATED: u64 = 20;
    /// jemalloc stats.active.
    pub const JEMALLOC_ACTIVE: u64 = 21;
    /// jemalloc stats.resident.
    pub const JEMALLOC_RESIDENT: u64 = 22;
    /// jemalloc stats.mapped.
    pub const JEMALLOC_MAPPED: u64 = 23;
    /// jemalloc stats.retained.
    pub const JEMALLOC_RETAINED: u64 = 24;
}

/// Keys of the trailer.
pub mod trailer_key {
    /// Allocation calls recorded.
    pub const ALLOC_CALLS: u64 = 1;
    /// Free calls recorded (non-null).
    pub const FREE_CALLS: u64 = 2;
    /// Bytes allocated.
    pub const ALLOCATED_BYTES: u64 = 3;
    /// CLOCK_MONOTONIC at the end, ns since start.
    pub const END_NS: u64 = 4;
    /// Next sequence number at the end (events have smaller ones).
    pub const END_SEQ: u64 = 5;
    /// Events that could not be recorded (recorder out of memory, etc.).
    pub const DROPPED_EVENTS: u64 = 6;
    /// Realloc calls recorded.
    pub const REALLOC_CALLS: u64 = 7;
    // The replay's totals, computed by the writer as it orders the stream (exact mode only):
    /// Allocations, realloc's allocation halves included.
    pub const ALLOCATIONS: u64 = 8;
    /// Frees (realloc's free halves not counted).
    pub const FREES: u64 = 9;
    /// Frees of blocks the profile never saw allocated.
    pub const UNMATCHED_FREES: u64 = 10;
    /// Peak live requested bytes.
    pub const PEAK_BYTES: u64 = 11;
    /// Live blocks at the peak.
    pub const PEAK_BLOCKS: u64 = 12;
    /// Bytes live at the end.
    pub const LEAKED_BYTES: u64 = 13;
    /// Blocks live at the end.
    pub const LEAKED_BLOCKS: u64 = 14;
    /// Temporary allocations.
    pub const TEMPORARY_ALLOCATIONS: u64 = 15;
    // CPU sampling (`TIDEMARK_CPU_HZ`), present when it was asked for:
    /// `CPU_SAMPLE` records written.
    pub const CPU_SAMPLES: u64 = 16;
    /// CPU samples taken but not stored (a thread's ring was full, or the thread was unknown).
    pub const CPU_SAMPLES_LOST: u64 = 17;
    /// Sampling period, ns of CPU time per sample.
    pub const CPU_PERIOD_NS: u64 = 18;
    // Stack quality (exact mode), so `tidemark run` can warn about cut stacks without reading
    // the events back:
    /// Allocations (realloc's allocation halves included) that have a recorded stack.
    pub const STACKED_ALLOCATIONS: u64 = 19;
    /// Of those, the ones whose stack was cut at the recorder's frame limit.
    pub const TRUNCATED_ALLOCATIONS: u64 = 20;
}

/// A loaded module (executable or shared object) of the target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Module {
    /// Path as the dynamic loader reported it (the executable is resolved from /proc/self/exe).
    pub path: String,
    /// GNU build-id, empty when absent.
    pub build_id: Vec<u8>,
    /// Load bias: runtime address minus the address in the file.
    pub base: u64,
    /// Loaded segments.
    pub segments: Vec<Segment>,
}

/// One PT_LOAD segment of a module, at its runtime address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Segment {
    /// Runtime start address.
    pub start: u64,
    /// Size in memory.
    pub size: u64,
    /// ELF p_flags (1 = X, 2 = W, 4 = R).
    pub flags: u32,
}

impl Module {
    /// The loaded segment holding runtime address `addr`.
    pub fn segment_at(&self, addr: u64) -> Option<&Segment> {
        (self.segments.iter()).find(|s| s.start <= addr && addr - s.start < s.size)
    }
}

/// Symbolized frame carried in a [`Record::Symbols`] record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SymbolFrame {
    /// Demangled function name, empty when unknown.
    pub function: String,
    /// Source file, empty when unknown.
    pub file: String,
    /// Source line, 0 when unknown.
    pub line: u32,
}

/// A decoded record. Thread context records are consumed by [`RecordIter`] and appear as the
/// `tid` of events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A block was allocated.
    Alloc {
        /// Thread id.
        tid: u32,
        /// Global sequence number.
        seq: u64,
        /// Address returned.
        addr: u64,
        /// Requested size in bytes.
        size: u64,
        /// Interned stack id.
        stack: u64,
        /// Entry point.
        kind: AllocKind,
        /// Requested alignment, 0 for the default.
        align: u64,
    },
    /// A non-null block was freed.
    Free {
        /// Thread id.
        tid: u32,
        /// Global sequence number.
        seq: u64,
        /// Address freed.
        addr: u64,
    },
    /// A non-null block was resized: free of `old_addr` at `free_seq`, allocation of `new_addr`
    /// at `seq`.
    Realloc {
        /// Thread id.
        tid: u32,
        /// Sequence number of the free half.
        free_seq: u64,
        /// Sequence number of the allocation half.
        seq: u64,
        /// Block passed in.
        old_addr: u64,
        /// Block returned.
        new_addr: u64,
        /// New requested size.
        size: u64,
        /// Interned stack id.
        stack: u64,
        /// `Realloc` or `Reallocarray`.
        kind: AllocKind,
    },
    /// Definition of an interned stack (frames innermost first).
    Stack {
        /// Stack id.
        id: u64,
        /// Module generation the addresses belong to (the [`Record::Modules`] snapshot with this
        /// generation, or the latest earlier one); 0 in v1 files (resolve against the latest).
        generation: u64,
        /// True when the walk stopped at the frame limit: outer frames are missing.
        truncated: bool,
        /// Return addresses (the innermost is the caller of the allocation function).
        frames: Vec<u64>,
        /// Version 3's `STACK_TAIL`: the earlier stack whose outermost `keep` frames are this
        /// one's (readers that build a tree start from there). Two plain fields, not an
        /// `Option` of a pair, so that every `Record` stays 56 bytes (72 with the `Option`: the
        /// analyzer's churn summary was 1.13× slower).
        base: u64,
        /// How many outer frames come from `base`; 0 for a `STACK` (no base).
        keep: u32,
        /// The outer `keep` frames are not in `frames`, which are the stack's own frames only
        /// (a reader that wants nothing more: [`decode::OrderedState::own_frames_only`]); the
        /// stack is `frames.len() + keep` deep. False for every other reader.
        outer_omitted: bool,
    },
    /// A thread was registered.
    Thread {
        /// Thread id.
        tid: u32,
        /// Thread name.
        name: String,
        /// Lowest address of its stack.
        stack_lo: u64,
        /// Highest address of its stack.
        stack_hi: u64,
    },
    /// A thread ended.
    ThreadExit {
        /// Thread id.
        tid: u32,
        /// Deepest stack use observed, bytes.
        stack_high_water_bytes: u64,
    },
    /// Snapshot of the loaded modules (replaces any earlier one).
    Modules {
        /// Snapshot number, increasing.
        generation: u64,
        /// The modules.
        modules: Vec<Module>,
    },
    /// Timeline sample.
    Sample {
        /// Sequence counter when the sample was taken.
        seq: u64,
        /// Time since start, ns.
        t_ns: u64,
        /// `(sample_key, value)` pairs.
        values: Vec<(u64, u64)>,
    },
    /// Every event with a sequence number below `seq` has been written.
    Watermark {
        /// Sequence bound.
        seq: u64,
    },
    /// End of a cleanly finished profile.
    Trailer {
        /// `(trailer_key, value)` pairs.
        values: Vec<(u64, u64)>,
    },
    /// A message from the recorder (warnings, reasons recording stopped).
    Message {
        /// 0 info, 1 warning, 2 error.
        level: u8,
        /// Text.
        text: String,
    },
    /// An on-CPU stack sample.
    CpuSample {
        /// Thread id.
        tid: u32,
        /// Time since start, ns.
        t_ns: u64,
        /// Interned stack id.
        stack: u64,
        /// CPU time this sample stands for, ns.
        weight_ns: u64,
    },
    /// Frame addresses of the event just before this record on the same thread.
    EventFrames {
        /// Thread id.
        tid: u32,
        /// Stack pointer of the hooked call's caller.
        sp: u64,
        /// Canonical frame addresses of the first frames of the event's stack, innermost first.
        cfas: Vec<u64>,
    },
    /// Return addresses of the first frames of the event just before this record on the same
    /// thread (frees recorded with `--escape`, whose stacks are not interned), innermost first:
    /// `ips[0]` is where the hooked call returns to, `ips[i + 1]` where frame `i` (the frame
    /// whose CFA is the `EVENT_FRAMES` record's `cfas[i]`) returns to.
    EventReturns {
        /// Thread id.
        tid: u32,
        /// The return addresses.
        ips: Vec<u64>,
    },
    /// Symbols for return addresses.
    Symbols {
        /// Module generation of the addresses (0 in v1 files: any).
        generation: u64,
        /// `(ip, frames innermost first)`.
        entries: Vec<(u64, Vec<SymbolFrame>)>,
    },
}

// Event records in the sequenced layout: what the recorder's thread buffers hold (and version-1
// files): each event carries its sequence number (as a delta within a thread context) and its
// block's address. The writer turns them into version 2's ordered layout (see `events`).

/// Appends a thread context record: the thread, and the sequence number the deltas of the
/// following events start from (sequenced layout).
#[inline]
pub fn put_context<S: Sink + ?Sized>(s: &mut S, tid: u32, seq_base: u64) {
    s.put_u8(tag::CONTEXT);
    put_uvarint(s, u64::from(tid));
    put_uvarint(s, seq_base);
}

/// Appends an allocation record (sequenced layout); `seq_delta` is relative to the previous
/// sequence of the context.
#[inline]
#[allow(clippy::too_many_arguments)]
pub fn put_alloc<S: Sink + ?Sized>(
    s: &mut S,
    seq_delta: u64,
    addr: u64,
    size: u64,
    stack: u64,
    kind: AllocKind,
    align: u64,
) {
    s.put_u8(tag::ALLOC);
    put_uvarint(s, seq_delta);
    put_uvarint(s, addr);
    put_uvarint(s, size);
    put_uvarint(s, stack);
    s.put_u8(kind as u8);
    put_uvarint(s, align);
}

/// Appends a free record (sequenced layout).
#[inline]
pub fn put_free<S: Sink + ?Sized>(s: &mut S, seq_delta: u64, addr: u64) {
    s.put_u8(tag::FREE);
    put_uvarint(s, seq_delta);
    put_uvarint(s, addr);
}

/// Appends a realloc record (sequenced layout). `free_seq_delta` is relative to the previous
/// sequence of the context, `alloc_seq_delta` to the free half.
#[inline]
#[allow(clippy::too_many_arguments)]
pub fn put_realloc<S: Sink + ?Sized>(
    s: &mut S,
    free_seq_delta: u64,
    alloc_seq_delta: u64,
    old_addr: u64,
    new_addr: u64,
    size: u64,
    stack: u64,
    kind: AllocKind,
) {
    s.put_u8(tag::REALLOC);
    put_uvarint(s, free_seq_delta);
    put_uvarint(s, alloc_seq_delta);
    put_uvarint(s, old_addr);
    put_uvarint(s, new_addr);
    put_uvarint(s, size);
    put_uvarint(s, stack);
    s.put_u8(kind as u8);
}

// Event records in version 2's ordered layout (event chunks of version-2 files): events in
// global order, each block named by its number (allocations are numbered from 0 in file order).

/// Appends a thread switch (ordered layout): the following events are thread `tid`'s.
#[inline]
pub fn put_thread_switch<S: Sink + ?Sized>(s: &mut S, tid: u32) {
    s.put_u8(tag::CONTEXT);
    put_uvarint(s, u64::from(tid));
}

/// Which block a free names (ordered layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreedBlock {
    /// The block allocated this many allocations ago (1: the latest).
    Back(u64),
    /// A block the profile never saw allocated, by address.
    Unknown(u64),
}

fn put_freed<S: Sink + ?Sized>(s: &mut S, f: FreedBlock) {
    match f {
        FreedBlock::Back(n) => put_uvarint(s, n.max(1)),
        FreedBlock::Unknown(addr) => {
            put_uvarint(s, 0);
            put_uvarint(s, addr);
        }
    }
}

/// Appends an allocation (ordered layout): it makes the next block.
#[inline]
pub fn put_block_alloc<S: Sink + ?Sized>(
    s: &mut S,
    size: u64,
    stack: u64,
    kind: AllocKind,
    align: u64,
) {
    s.put_u8(tag::ALLOC);
    put_uvarint(s, size);
    put_uvarint(s, stack);
    s.put_u8(kind as u8);
    put_uvarint(s, align);
}

/// Appends a free (ordered layout).
#[inline]
pub fn put_block_free<S: Sink + ?Sized>(s: &mut S, freed: FreedBlock) {
    s.put_u8(tag::FREE);
    put_freed(s, freed);
}

/// Appends a realloc (ordered layout): frees `freed` and makes the next block.
#[inline]
pub fn put_block_realloc<S: Sink + ?Sized>(
    s: &mut S,
    freed: FreedBlock,
    size: u64,
    stack: u64,
    kind: AllocKind,
) {
    s.put_u8(tag::REALLOC);
    put_freed(s, freed);
    put_uvarint(s, size);
    put_uvarint(s, stack);
    s.put_u8(kind as u8);
}

/// Flag bits of a stack definition.
pub mod stack_flag {
    /// The walk stopped at the frame limit: outer frames are missing.
    pub const TRUNCATED: u64 = 1;
}

/// Appends a stack definition: `generation` is the module generation its addresses belong to,
/// `truncated` says the walk stopped at the frame limit.
pub fn put_stack<S: Sink + ?Sized>(
    s: &mut S,
    id: u64,
    generation: u64,
    truncated: bool,
    frames: &[u64],
) {
    s.put_u8(tag::STACK);
    put_uvarint(s, id);
    put_uvarint(s, generation);
    put_uvarint(s, if truncated { stack_flag::TRUNCATED } else { 0 });
    put_uvarint(s, frames.len() as u64);
    let mut prev = 0u64;
    for &f in frames {
        put_ivarint(s, f.wrapping_sub(prev) as i64);
        prev = f;
    }
}

/// Appends a stack definition that shares its outer frames with an earlier stack (version 3):
/// `frames` is the whole stack (innermost first), whose outermost `keep` frames (at least one)
/// are the outermost `keep` frames of stack `base`. Only the frames inside those are written,
/// from the outermost inwards, each as the difference to the one outside it (the first to the
/// innermost shared frame): no absolute address is written.
#[allow(clippy::too_many_arguments)]
pub fn put_stack_tail<S: Sink + ?Sized>(
    s: &mut S,
    id: u64,
    generation: u64,
    truncated: bool,
    base: u64,
    keep: usize,
    frames: &[u64],
) {
    debug_assert!(keep >= 1 && keep <= frames.len());
    let own = frames.len() - keep;
    s.put_u8(tag::STACK_TAIL);
    put_uvarint(s, id);
    put_uvarint(s, generation);
    put_uvarint(s, if truncated { stack_flag::TRUNCATED } else { 0 });
    put_uvarint(s, base);
    put_uvarint(s, keep as u64);
    put_uvarint(s, own as u64);
    let mut prev = frames[own];
    for &f in frames[..own].iter().rev() {
        put_ivarint(s, f.wrapping_sub(prev) as i64);
        prev = f;
    }
}

/// Appends a stack definition in version 1's layout (`id, n, frame deltas`: no generation, no
/// flags). For producing version-1 test data; the recorder writes [`put_stack`].
pub fn put_stack_v1<S: Sink + ?Sized>(s: &mut S, id: u64, frames: &[u64]) {
    s.put_u8(tag::STACK);
    put_uvarint(s, id);
    put_uvarint(s, frames.len() as u64);
    let mut prev = 0u64;
    for &f in frames {
        put_ivarint(s, f.wrapping_sub(prev) as i64);
        prev = f;
    }
}

/// Appends a thread record.
pub fn put_thread<S: Sink + ?Sized>(
    s: &mut S,
    tid: u32,
    name: &[u8],
    stack_lo: u64,
    stack_hi: u64,
) {
    s.put_u8(tag::THREAD);
    put_uvarint(s, u64::from(tid));
    put_bytes(s, name);
    put_uvarint(s, stack_lo);
    put_uvarint(s, stack_hi);
}

/// Appends a thread-exit record.
pub fn put_thread_exit<S: Sink + ?Sized>(s: &mut S, tid: u32, stack_high_water_bytes: u64) {
    s.put_u8(tag::THREAD_EXIT);
    put_uvarint(s, u64::from(tid));
    put_uvarint(s, stack_high_water_bytes);
}

/// Appends a module map snapshot.
pub fn put_modules<S: Sink + ?Sized>(s: &mut S, generation: u64, modules: &[Module]) {
    s.put_u8(tag::MODULES);
    put_uvarint(s, generation);
    put_uvarint(s, modules.len() as u64);
    for m in modules {
        put_bytes(s, m.path.as_bytes());
        put_bytes(s, &m.build_id);
        put_uvarint(s, m.base);
        put_uvarint(s, m.segments.len() as u64);
        for seg in &m.segments {
            put_uvarint(s, seg.start);
            put_uvarint(s, seg.size);
            put_uvarint(s, u64::from(seg.flags));
        }
    }
}

/// Appends a timeline sample.
pub fn put_sample<S: Sink + ?Sized>(s: &mut S, seq: u64, t_ns: u64, values: &[(u64, u64)]) {
    s.put_u8(tag::SAMPLE);
    put_uvarint(s, seq);
    put_uvarint(s, t_ns);
    put_uvarint(s, values.len() as u64);
    for &(k, v) in values {
        put_uvarint(s, k);
        put_uvarint(s, v);
    }
}

/// Appends a watermark.
pub fn put_watermark<S: Sink + ?Sized>(s: &mut S, seq: u64) {
    s.put_u8(tag::WATERMARK);
    put_uvarint(s, seq);
}

/// Appends a trailer.
pub fn put_trailer<S: Sink + ?Sized>(s: &mut S, values: &[(u64, u64)]) {
    s.put_u8(tag::TRAILER);
    put_uvarint(s, values.len() as u64);
    for &(k, v) in values {
        put_uvarint(s, k);
        put_uvarint(s, v);
    }
}

/// Appends a message.
pub fn put_message<S: Sink + ?Sized>(s: &mut S, level: u8, text: &str) {
    s.put_u8(tag::MESSAGE);
    s.put_u8(level);
    put_bytes(s, text.as_bytes());
}

/// Appends a CPU sample.
pub fn put_cpu_sample<S: Sink + ?Sized>(
    s: &mut S,
    tid: u32,
    t_ns: u64,
    stack: u64,
    weight_ns: u64,
) {
    s.put_u8(tag::CPU_SAMPLE);
    put_uvarint(s, u64::from(tid));
    put_uvarint(s, t_ns);
    put_uvarint(s, stack);
    put_uvarint(s, weight_ns);
}

/// Appends the frame addresses of the event just written to the same context: `sp`, then each
/// CFA as its distance above `sp`.
pub fn put_event_frames<S: Sink + ?Sized>(s: &mut S, sp: u64, cfas: &[u64]) {
    s.put_u8(tag::EVENT_FRAMES);
    put_uvarint(s, sp);
    put_uvarint(s, cfas.len() as u64);
    for &c in cfas {
        put_uvarint(s, c.wrapping_sub(sp));
    }
}

/// Most return addresses an `EVENT_RETURNS` record holds.
pub const EVENT_RETURNS_MAX: usize = 32;

/// Appends the return addresses of the event just written to the same context (at most
/// [`EVENT_RETURNS_MAX`], more are cut): the first as a uvarint, each next one as its signed
/// difference from the one before (ivarint). Writes straight into `s` (no allocation).
pub fn put_event_returns<S: Sink + ?Sized>(s: &mut S, ips: &[u64]) {
    fn len(v: u64) -> u64 {
        u64::from((64 - (v | 1).leading_zeros()).div_ceil(7))
    }
    let ips = &ips[..ips.len().min(EVENT_RETURNS_MAX)];
    let mut body = len(ips.len() as u64);
    let mut prev = 0u64;
    for (i, &ip) in ips.iter().enumerate() {
        body += if i == 0 {
            len(ip)
        } else {
            len(zigzag(ip.wrapping_sub(prev) as i64))
        };
        prev = ip;
    }
    s.put_u8(tag::EVENT_RETURNS);
    put_uvarint(s, body);
    put_uvarint(s, ips.len() as u64);
    let mut prev = 0u64;
    for (i, &ip) in ips.iter().enumerate() {
        if i == 0 {
            put_uvarint(s, ip);
        } else {
            put_ivarint(s, ip.wrapping_sub(prev) as i64);
        }
        prev = ip;
    }
}

/// Appends a symbols chunk for return addresses of module `generation`, in the layout of a
/// `version` file (version 1 has no generation and no chunk kinds), to `out`.
pub fn put_symbols_chunk(
    out: &mut Vec<u8>,
    version: u16,
    generation: u64,
    entries: &[(u64, Vec<SymbolFrame>)],
) {
    let mut record = Vec::new();
    put_symbols(&mut record, (version >= 2).then_some(generation), entries);
    if version < 2 {
        put_chunk_raw(out, &record);
        return;
    }
    // Names and paths compress several times over; a stored chunk is the fallback.
    let compressed = ChunkWriter::new(SYMBOLS_ZSTD_LEVEL)
        .and_then(|mut w| w.put(out, ChunkKind::Appendix, &record));
    if compressed.is_err() {
        put_chunk(out, ChunkKind::Appendix, &record);
    }
}

/// zstd level of embedded symbols, written at the end of every `tidemark run` while the user
/// waits. Not higher: a Rust program's 126 KB of symbols take 1.2 ms at level 3 and 6 ms at
/// level 9 (most of it setting up the larger match tables) for ≈ 1 KB less (9.0 KB vs 7.9 KB);
/// python3's 19 KB give ≈ 5.4 KB at 9.
const SYMBOLS_ZSTD_LEVEL: i32 = 3;

/// Appends a symbols record (with a module generation from version 2 on).
pub fn put_symbols(s: &mut Vec<u8>, generation: Option<u64>, entries: &[(u64, Vec<SymbolFrame>)]) {
    let mut body = Vec::new();
    if let Some(g) = generation {
        put_uvarint(&mut body, g);
    }
    put_uvarint(&mut body, entries.len() as u64);
    for (ip, frames) in entries {
        put_uvarint(&mut body, *ip);
        put_uvarint(&mut body, frames.len() as u64);
        for f in frames {
            put_bytes(&mut body, f.function.as_bytes());
            put_bytes(&mut body, f.file.as_bytes());
            put_uvarint(&mut body, u64::from(f.line));
        }
    }
    s.put_u8(tag::SYMBOLS);
    put_bytes(s, &body);
}
