//! Format reader → model: streams a profile, replays its events in global order and builds a
//! [`Profile`] of raw return addresses, with the symbols the profile embeds kept beside them
//! ([`Profile::embedded_symbols`]). Naming the addresses is the next stage,
//! [`crate::symbolize::symbolize`]; [`load_path`] runs both, [`read_path`] only the first.
//!
//! ```no_run
//! use tidemark_analyzer::load::{load_path, LoadOptions};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let profile = load_path("app.tmk".as_ref(), &LoadOptions::default())?;
//! if let Some(t) = &profile.truncated {
//!     eprintln!("warning: the profile is truncated: {}", t.reason);
//! }
//! println!("peak: {} bytes", profile.totals.counts.peak_bytes);
//! # Ok(()) }
//! ```

mod apply;
mod buckets;
mod cpu;
pub mod escape;
mod live;
mod reorder;
mod replay;
#[cfg(test)]
pub(crate) mod synthetic;

pub use crate::progress::{Progress, ProgressSink, StderrProgress};

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use rustc_hash::FxHashMap;
use tidemark::format::{
    trailer_key, ChunkBytes, FormatError, OrderedState, Reader, SymbolFrame, Truncation,
};

use crate::analysis::escape as escape_analysis;
use crate::analysis::suppress::{self, Suppressions};
use crate::model::{Ip, IpId, Profile, StackId, StackNode};
use crate::symbolize::{self, DebugCache, SymbolizeOptions};
use replay::Replay;

/// Default of [`LoadOptions::symbolize`].
pub const DEFAULT_SYMBOLIZE: bool = true;
/// Default of [`LoadOptions::progress`].
pub const DEFAULT_PROGRESS: bool = false;
/// Default of [`LoadOptions::block_groups`].
pub const DEFAULT_BLOCK_GROUPS: bool = false;
/// Default of [`LoadOptions::events`].
pub const DEFAULT_EVENTS: bool = true;
/// Default of [`LoadOptions::stacks`].
pub const DEFAULT_STACKS: bool = true;

/// How to load a profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadOptions {
    /// In [`load_path`]'s symbolization pass, resolve return addresses to functions, files and
    /// lines from the binaries on disk ([`SymbolizeOptions::use_files`]). Symbols embedded in
    /// the profile are used either way (they cost nothing); without either, frames read
    /// `module+0xoffset`. [`read_path`] ignores it. Default: [`DEFAULT_SYMBOLIZE`] (`true`).
    pub symbolize: bool,
    /// Report progress of long steps on stderr (a line with a percentage, shown when stderr is a
    /// terminal or once a step has taken more than a second). This is the only output the
    /// library ever writes, and only when asked. Default: [`DEFAULT_PROGRESS`] (`false`).
    pub progress: bool,
    /// Also group blocks by stack, threads and timeline intervals
    /// ([`crate::model::Profile::block_groups`]): what the Firefox Profiler and DHAT exports
    /// need. Costs a hash-map update per free. Default: [`DEFAULT_BLOCK_GROUPS`] (`false`).
    pub block_groups: bool,
    /// Which blocks live at the end count as runtime-owned instead of leaked
    /// ([`crate::analysis::suppress`]). Default: the built-in rules
    /// ([`Suppressions::builtin`]).
    pub suppressions: Suppressions,
    /// Replay the allocation events. Without them only stacks, module maps, embedded symbols,
    /// timeline samples and messages are read: what symbolizing and embedding symbols need,
    /// without decompressing the events. Default: [`DEFAULT_EVENTS`] (`true`).
    pub events: bool,
    /// Build the stacks' prefix tree ([`Profile::stacks`]) and know which recorded stack is
    /// which. Without it only the return addresses are collected ([`Profile::ips`], each
    /// once): what embedding symbols needs (a python3 profile's 6,500 stacks of ≈ 50 frames
    /// make 19,000 tree nodes but only 2,300 addresses). Default: [`DEFAULT_STACKS`] (`true`).
    pub stacks: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            symbolize: DEFAULT_SYMBOLIZE,
            progress: DEFAULT_PROGRESS,
            block_groups: DEFAULT_BLOCK_GROUPS,
            suppressions: Suppressions::builtin(),
            events: DEFAULT_EVENTS,
            stacks: DEFAULT_STACKS,
        }
    }
}

/// Why a profile could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file could not be opened or read.
    #[error("cannot read profile {path}: {error}; check the path and its permissions")]
    Io {
        /// The profile.
        path: PathBuf,
        /// The I/O error.
        error: io::Error,
    },
    /// The data is not a readable profile.
    #[error("{path}: {error}{hint}", hint = hint(error))]
    Format {
        /// The profile (`<input>` for a reader).
        path: PathBuf,
        /// What the format reader found.
        error: FormatError,
    },
}

fn hint(e: &FormatError) -> &'static str {
    match e {
        FormatError::NotAProfile => {
            "; pass a .tmk file written by `tidemark run` or the tidemark recorder"
        }
        FormatError::BadHeader(_) => {
            "; the file was overwritten or damaged at its start and cannot be read"
        }
        _ => "",
    }
}

/// Loads the profile at `path` and symbolizes it: [`read_path`], then the
/// [`crate::symbolize::symbolize`] pass (from the binaries on disk when
/// [`LoadOptions::symbolize`]).
pub fn load_path(path: &Path, opts: &LoadOptions) -> Result<Profile, LoadError> {
    load_file(path, opts, None, true)
}

/// Reads the profile at `path` without symbolizing it: every [`crate::model::Ip`] has its raw
/// address and no frames yet, and the symbols the profile embeds are in
/// [`Profile::embedded_symbols`]. Run [`crate::symbolize::symbolize`] before rendering.
pub fn read_path(path: &Path, opts: &LoadOptions) -> Result<Profile, LoadError> {
    load_file(path, opts, None, false)
}

/// Loads the profile at `path` like [`load_path`], and also cuts its activity into at most
/// `max_buckets` time buckets ([`Profile::time_buckets`]): what the interactive page needs to
/// recompute a time range's numbers. Costs one hash update per event.
pub fn load_path_with_time_buckets(
    path: &Path,
    opts: &LoadOptions,
    max_buckets: usize,
) -> Result<Profile, LoadError> {
    load_file(path, opts, Some(max_buckets), true)
}

fn load_file(
    path: &Path,
    opts: &LoadOptions,
    max_buckets: Option<usize>,
    symbolize: bool,
) -> Result<Profile, LoadError> {
    let file = File::open(path).map_err(|error| LoadError::Io {
        path: path.to_owned(),
        error,
    })?;
    let total_bytes = file.metadata().ok().map(|m| m.len());
    // The program is opened on a thread of its own while the profile loads (what the
    // symbolization pass would otherwise do after it): its header names it.
    let warmup = (symbolize && opts.symbolize)
        .then(|| Reader::new(BufReader::with_capacity(64 << 10, File::open(path).ok()?)).ok())
        .flatten()
        .and_then(|r| symbolize::ExeWarmup::start(&r.header().exe));
    let peak_blocks = opts.events.then(|| trailer_peak_blocks(path)).flatten();
    let reader = BufReader::with_capacity(1 << 20, file);
    let mut sink = StderrProgress::new(&path.display().to_string());
    let mut p = load_inner(
        reader,
        opts,
        total_bytes,
        opts.progress.then_some(&mut sink as &mut dyn ProgressSink),
        max_buckets,
        peak_blocks,
    )
    .map_err(|e| e.with_path(path))?;
    if symbolize {
        let progress = opts.progress.then_some(&mut sink as &mut dyn ProgressSink);
        let cache = warmup
            .map(|w| DebugCache::with_warmed(w.ready()))
            .unwrap_or_default();
        symbolize_pass(&mut p, opts, progress, cache);
    }
    Ok(p)
}

/// The trailer's count of blocks live at the peak (version 2 and later, exact profiles), read
/// before the profile itself: from chunk header to chunk header (each chunk's first byte says
/// its kind; the others are skipped unread) to the trailer chunk. `None` for a profile without
/// one (truncated, sampled, version 1) or anything unexpected: the read that follows finds what
/// is wrong.
fn trailer_peak_blocks(path: &Path) -> Option<u64> {
    use std::io::{Seek, SeekFrom};
    use tidemark::format::{
        trailer_key, ChunkCodec, ChunkKind, Cursor, Record, RecordIter, CHUNK_HEADER_LEN,
        CHUNK_MAGIC,
    };
    let mut f = BufReader::with_capacity(8 << 10, File::open(path).ok()?);
    let version = Reader::new(&mut f).ok()?.header().version;
    if version < 2 {
        return None;
    }
    // `Reader::new` read the header and nothing more from `f`'s buffer; the chunks start at
    // the header's end.
    let mut head = [0u8; CHUNK_HEADER_LEN + 1];
    loop {
        f.read_exact(&mut head).ok()?;
        if head[..4] != CHUNK_MAGIC {
            return None;
        }
        let len = u32::from_le_bytes(head[4..8].try_into().ok()?) as usize;
        if len == 0 {
            return None;
        }
        if head[CHUNK_HEADER_LEN] != ChunkKind::Trailer as u8 {
            f.seek(SeekFrom::Current(len as i64 - 1)).ok()?;
            continue;
        }
        let mut payload = vec![0u8; len - 1];
        f.read_exact(&mut payload).ok()?;
        let mut c = Cursor::new(&payload);
        // Stored, the records' length, then the TRAILER record, read by the format's decoder.
        if c.u8().ok()? != ChunkCodec::Stored as u8 {
            return None;
        }
        c.uvarint().ok()?;
        let records = &payload[c.position()..];
        return RecordIter::new(records, version, 0).find_map(|r| match r {
            Ok(Record::Trailer { values }) => values
                .iter()
                .find(|(k, _)| *k == trailer_key::PEAK_BLOCKS)
                .map(|&(_, v)| v),
            _ => None,
        });
    }
}

/// The symbolization stage of [`load_path`] and [`load_reader`], starting from the modules
/// `cache` has opened.
fn symbolize_pass(
    p: &mut Profile,
    opts: &LoadOptions,
    progress: Option<&mut dyn ProgressSink>,
    mut cache: DebugCache,
) {
    let sopts = SymbolizeOptions {
        use_files: opts.symbolize,
    };
    symbolize::symbolize_cached(p, &sopts, progress, &mut cache);
    // Stack-eligible bytes per stack need the allocating function, known only now.
    escape_analysis::count_stack_eligible(p);
    // Rules match function names: they apply once the frames are named.
    suppress::apply(p, &opts.suppressions);
}

/// Reads a profile from any reader like [`read_path`]: raw return addresses, nothing
/// symbolized.
pub fn read_reader<R: Read>(r: R, opts: &LoadOptions) -> Result<Profile, LoadError> {
    load_inner(r, opts, None, None, None, None)
}

/// Loads and symbolizes a profile from any reader (no progress percentage: the length is
/// unknown).
pub fn load_reader<R: Read>(r: R, opts: &LoadOptions) -> Result<Profile, LoadError> {
    let mut sink = StderrProgress::new("profile");
    let progress = opts.progress.then_some(&mut sink as &mut dyn ProgressSink);
    let mut p = load_inner(r, opts, None, progress, None, None)?;
    let progress = opts.progress.then_some(&mut sink as &mut dyn ProgressSink);
    symbolize_pass(&mut p, opts, progress, DebugCache::default());
    Ok(p)
}

/// Loads and symbolizes a profile, reporting progress to `progress` (`total_bytes` enables
/// percentages).
pub fn load_reader_with_progress<R: Read>(
    r: R,
    opts: &LoadOptions,
    total_bytes: Option<u64>,
    progress: &mut dyn ProgressSink,
) -> Result<Profile, LoadError> {
    let mut p = load_inner(r, opts, total_bytes, Some(&mut *progress), None, None)?;
    symbolize_pass(&mut p, opts, Some(progress), DebugCache::default());
    Ok(p)
}

impl LoadError {
    fn with_path(self, p: &Path) -> Self {
        match self {
            LoadError::Format { error, .. } => LoadError::Format {
                path: p.to_owned(),
                error,
            },
            LoadError::Io { error, .. } => LoadError::Io {
                path: p.to_owned(),
                error,
            },
        }
    }
}

fn format_error(error: FormatError) -> LoadError {
    match error {
        FormatError::Io(error) => LoadError::Io {
            path: PathBuf::from("<input>"),
            error,
        },
        error => LoadError::Format {
            path: PathBuf::from("<input>"),
            error,
        },
    }
}

/// Drops `value` on a thread of its own: freeing a loaded profile's many allocations (or the
/// loader's tables) takes milliseconds that nobody needs to wait for. If no thread can be
/// started, the closure holding it, and so the value, is dropped here.
pub fn drop_in_background<T: Send + 'static>(value: T) {
    let _ = std::thread::Builder::new()
        .name("tidemark-free".to_owned())
        .spawn(move || drop(value));
}

/// Builds the stack prefix tree from stack definitions.
#[derive(Default)]
pub(crate) struct StackBuilder {
    ip_index: FxHashMap<(u64, u64), IpId>,
    node_index: FxHashMap<(Option<StackId>, IpId), StackId>,
    /// Recorded stack id → its definition.
    defs: Defs,
    /// Only collect the return addresses ([`LoadOptions::stacks`] off).
    pub(crate) ips_only: bool,
    /// Set for version-3 files: a definition's own frames are new nodes (see [`Self::define`]).
    pub(crate) new_nodes_trusted: bool,
    /// `node_index` holds every node (set once a definition needs lookups).
    indexed: bool,
}

/// What the loader keeps of a stack definition.
#[derive(Debug, Clone, Copy)]
struct Def {
    /// Leaf node (`None` for an empty stack).
    leaf: Option<StackId>,
    /// Its frames are in the tree (not when loading without it, [`StackBuilder::ips_only`]: the
    /// stack is then not "defined", only its depth kept).
    in_tree: bool,
    /// Frames, and the module generation (where a `STACK_TAIL` naming it as its base starts).
    depth: u32,
    generation: u64,
    /// Cut at the frame limit ([`stack_was_cut`]).
    cut: bool,
}

/// Recorded stack ids below this find their definition in a vector; larger ones, in a map.
const DENSE_DEFS: u64 = 1 << 20;

/// Definitions by recorded stack id. The recorder numbers its stacks from 1 up: a vector
/// indexed by id, where three hash maps (leaf, depth, cut) took an insertion each per definition
/// (tens of thousands in a compiler's profile).
#[derive(Default)]
struct Defs {
    dense: Vec<Option<Def>>,
    sparse: FxHashMap<u64, Def>,
}

impl Defs {
    fn get(&self, id: u64) -> Option<&Def> {
        match id < DENSE_DEFS {
            true => self.dense.get(id as usize)?.as_ref(),
            false => self.sparse.get(&id),
        }
    }

    fn insert(&mut self, id: u64, def: Def) {
        if id < DENSE_DEFS {
            let i = id as usize;
            if i >= self.dense.len() {
                self.dense.resize((i + 1).next_power_of_two(), None);
            }
            self.dense[i] = Some(def);
        } else {
            self.sparse.insert(id, def);
        }
    }
}

/// True when a recorded stack of `frames` return addresses was cut at the recorder's frame limit
/// (`tidemark::unwind::MAX_FRAMES`): format v1 has no flag for it, and the recorder never
/// stores more frames than the limit, so a stack of exactly that many frames is taken as cut
/// (a stack exactly 128 frames deep is reported as cut too: rare, and harmless).
pub(crate) fn stack_was_cut(frames: usize) -> bool {
    frames >= tidemark::unwind::MAX_FRAMES
}

impl StackBuilder {
    /// The leaf node of recorded stack `id`: `None` when it was never defined, `Some(None)` for
    /// an empty stack (or one loaded without the tree).
    pub(crate) fn defined(&self, id: u64) -> Option<Option<StackId>> {
        self.defs.get(id).filter(|d| d.in_tree).map(|d| d.leaf)
    }

    /// Whether recorded stack `id` was cut at the recorder's frame limit ([`stack_was_cut`]).
    pub(crate) fn was_cut(&self, id: u64) -> bool {
        self.defs.get(id).is_some_and(|d| d.in_tree && d.cut)
    }

    /// Adds a stack definition (frames innermost first) of module generation `generation`.
    /// `outer` is the record's `(base, keep)`: its outermost `keep` frames are stack `base`'s,
    /// so the walk down the tree starts at that stack's node instead of the root (deep programs
    /// define tens of thousands of stacks that differ in their innermost frames only). With
    /// `outer_omitted` ([`OrderedState::own_frames_only`]), `frames` are the stack's own frames,
    /// inside the outer `keep` of `base`, of the same generation: the tree's walk starts at
    /// `base`'s node as it would with the outer frames given.
    pub(crate) fn define(
        &mut self,
        p: &mut Profile,
        id: u64,
        generation: u64,
        frames: &[u64],
        outer: Option<(u64, u32)>,
        outer_omitted: bool,
    ) {
        // The outer frames left out of `frames`: they are all of `frames` that is the stack's own.
        let omitted = match outer {
            Some((_, keep)) if outer_omitted => keep,
            _ => 0,
        };
        let start = outer.and_then(|(base, keep)| self.outer_node(p, base, keep, generation));
        // The decoder omits the outer frames only when the base is of the same generation, which
        // is when `outer_node` finds its node.
        debug_assert!(
            !outer_omitted || start.is_some(),
            "own frames only, but stack {id}'s base has no node of generation {generation}"
        );
        // A version-3 writer names as the base the earlier stack sharing the longest outer part
        // (of every earlier stack, `record::stacks`), and writes a plain `STACK` only when none
        // shares even the outermost frame: so the frames it adds are new nodes of the tree, made
        // without looking them up. A base of another generation (different addresses, different
        // nodes) and older files take the lookups, the index built first from the nodes made so
        // far.
        let fresh = self.new_nodes_trusted && (start.is_some() || outer.is_none());
        let (parent, own) = match start {
            Some((node, _)) if outer_omitted => (node, frames),
            Some((node, keep)) => (node, &frames[..frames.len() - keep]),
            None => (None, frames),
        };
        let depth = frames.len() as u32 + omitted;
        let cut = stack_was_cut(depth as usize);
        // Without the tree (`ips_only`) the stack is not "defined", only its depth kept.
        let (leaf, in_tree) = match self.ips_only {
            true => {
                // In the tree's order (outermost first), so the addresses are numbered alike.
                for &addr in own.iter().rev() {
                    self.ip_of(p, addr, generation);
                }
                (None, false)
            }
            false => (self.grow(p, parent, own, generation, fresh), true),
        };
        let def = Def {
            leaf,
            in_tree,
            depth,
            generation,
            cut,
        };
        self.defs.insert(id, def);
    }

    /// Adds `own` (innermost first) to the tree below `parent`; the leaf. `fresh`: the frames
    /// are new nodes, made without looking them up (see [`Self::define`]).
    fn grow(
        &mut self,
        p: &mut Profile,
        mut parent: Option<StackId>,
        own: &[u64],
        generation: u64,
        fresh: bool,
    ) -> Option<StackId> {
        if !fresh && !self.indexed {
            self.index_nodes(p);
        }
        for &addr in own.iter().rev() {
            let ip = self.ip_of(p, addr, generation);
            let node = if self.indexed {
                *self.node_index.entry((parent, ip)).or_insert_with(|| {
                    p.stacks.push(StackNode { parent, ip });
                    StackId((p.stacks.len() - 1) as u32)
                })
            } else {
                p.stacks.push(StackNode { parent, ip });
                StackId((p.stacks.len() - 1) as u32)
            };
            parent = Some(node);
        }
        parent
    }

    /// The id of return address `addr` of generation `generation`, numbered when new.
    #[inline]
    fn ip_of(&mut self, p: &mut Profile, addr: u64, generation: u64) -> IpId {
        *self.ip_index.entry((addr, generation)).or_insert_with(|| {
            p.ips.push(Ip {
                address: addr,
                generation,
                frames: Vec::new(),
            });
            IpId((p.ips.len() - 1) as u32)
        })
    }

    /// Indexes every node made so far by (parent, address): from now on each frame is looked up.
    fn index_nodes(&mut self, p: &Profile) {
        self.node_index.reserve(p.stacks.len());
        for (i, n) in p.stacks.iter().enumerate() {
            self.node_index
                .entry((n.parent, n.ip))
                .or_insert(StackId(i as u32));
        }
        self.indexed = true;
    }

    /// The node of stack `base`'s outermost `keep` frames, and `keep`, when `base` was defined
    /// with the same generation (its addresses are then the same tree nodes); `None` (walk from
    /// the root) otherwise. Without the tree (`ips_only`) the node is `None` but `keep` holds.
    fn outer_node(
        &self,
        p: &Profile,
        base: u64,
        keep: u32,
        generation: u64,
    ) -> Option<(Option<StackId>, usize)> {
        let &Def {
            leaf,
            depth,
            generation: g,
            ..
        } = self.defs.get(base)?;
        if g != generation || keep == 0 || keep > depth {
            return None;
        }
        if self.ips_only {
            return Some((None, keep as usize));
        }
        let mut node = leaf?;
        for _ in keep..depth {
            node = p.stacks[node.0 as usize].parent?;
        }
        Some((Some(node), keep as usize))
    }
}

/// Chunks (or pieces of event chunks) read ahead of the applying thread: bounds the memory
/// between the two (a piece is about [`PIECE_BYTES`], other chunks at most 1 MiB decompressed).
const CHUNKS_IN_FLIGHT: usize = 4;
/// Decoded bytes of an event chunk handed to the applying thread at a time. Decoding records on
/// the reading thread instead and handing them over decoded was tried: slower (0.31 → 0.42 of
/// heaptrack_print's time on a churn), a decoded record being tens of bytes.
const PIECE_BYTES: usize = 1 << 19;

/// Applies the records of `chunk` (at `chunk_offset` in the file); a chunk with a good checksum
/// that this reader cannot decode ends the profile there (`Some`).
fn apply_chunk(
    apply: &mut apply::Apply<'_>,
    state: &mut OrderedState,
    chunk_offset: u64,
    chunk: &ChunkBytes,
) -> Result<Option<Truncation>, LoadError> {
    match chunk.records(state).visit(|rec| apply.record(rec)) {
        Ok(()) => Ok(None),
        Err(FormatError::BadRecord { offset, reason }) => Ok(Some(Truncation {
            offset: chunk_offset.max(offset),
            reason: format!(
                "a chunk at byte {offset} holds a malformed record ({reason}); the rest of the \
                 file was ignored"
            ),
        })),
        Err(e) => Err(format_error(e)),
    }
}

/// Reads and applies every chunk on this thread; what [`apply_chunk`] says ended the profile.
fn read_here<R: Read>(
    reader: &mut Reader<R>,
    apply: &mut apply::Apply<'_>,
    mut progress: Option<&mut (dyn ProgressSink + '_)>,
    own_frames_only: bool,
) -> Result<Option<Truncation>, LoadError> {
    let mut state = OrderedState::default();
    state.own_frames_only = own_frames_only;
    let mut spare: Vec<u8> = Vec::new();
    loop {
        let chunk_offset = reader.offset();
        let mut malformed: Result<Option<Truncation>, LoadError> = Ok(None);
        let mut taken: Option<Vec<u8>> = None;
        let mut reuse = || std::mem::take(&mut spare);
        let mut send = |chunk: ChunkBytes| {
            malformed = apply_chunk(apply, &mut state, chunk_offset, &chunk);
            taken = Some(chunk.into_buffer());
            matches!(malformed, Ok(None))
        };
        let more = reader
            .next_chunk_pieces(PIECE_BYTES, &mut reuse, &mut send)
            .map_err(format_error)?;
        if let Some(b) = taken {
            spare = b;
        }
        match malformed {
            Ok(None) => {}
            other => return other,
        }
        if !more {
            return Ok(None);
        }
        if let Some(pr) = progress.as_deref_mut() {
            pr.update(reader.offset());
        }
    }
}

/// Reads chunks on this thread and applies them on a second one (see [`load_inner`]).
fn read_on_two_threads<R: Read>(
    reader: &mut Reader<R>,
    apply: &mut apply::Apply<'_>,
    mut progress: Option<&mut (dyn ProgressSink + '_)>,
    own_frames_only: bool,
) -> Result<Option<Truncation>, LoadError> {
    let (to_apply, chunks) = std::sync::mpsc::sync_channel::<(u64, ChunkBytes)>(CHUNKS_IN_FLIGHT);
    let (recycle, recycled) = std::sync::mpsc::channel::<Vec<u8>>();
    let decoded = std::thread::scope(|scope| {
        let applier = scope.spawn(move || -> Result<Option<Truncation>, LoadError> {
            let mut state = OrderedState::default();
            state.own_frames_only = own_frames_only;
            for (chunk_offset, chunk) in chunks {
                // A malformed record: keep what came before it, and say the profile ends
                // there (dropping `chunks` stops the reading thread).
                if let Some(t) = apply_chunk(apply, &mut state, chunk_offset, &chunk)? {
                    return Ok(Some(t));
                }
                // The reading side may be done already; the buffer is then dropped.
                let _ = recycle.send(chunk.into_buffer());
            }
            Ok(None)
        });
        let read = (|| -> Result<(), LoadError> {
            loop {
                let chunk_offset = reader.offset();
                let mut reuse = || recycled.try_recv().unwrap_or_default();
                // False: the applying thread stopped at a malformed record (or panicked:
                // join() says so).
                let mut send = |chunk| to_apply.send((chunk_offset, chunk)).is_ok();
                // An event chunk goes over in pieces as it is decoded, so that the applying
                // thread starts on it at once (a churn's few chunks hold millions of events
                // each: handed over whole, the two threads took turns).
                let more = reader
                    .next_chunk_pieces(PIECE_BYTES, &mut reuse, &mut send)
                    .map_err(format_error)?;
                if !more {
                    return Ok(());
                }
                if let Some(pr) = progress.as_deref_mut() {
                    pr.update(reader.offset());
                }
            }
        })();
        drop(to_apply);
        let applied = match applier.join() {
            Ok(applied) => applied,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        read.and(applied)
    });
    drop_in_background(recycled);
    decoded
}

/// `peak_blocks`: the trailer's count of blocks live at the peak, when known before the read
/// ([`trailer_peak_blocks`]): it sizes the replay's ring of young blocks.
fn load_inner<R: Read>(
    r: R,
    opts: &LoadOptions,
    total_bytes: Option<u64>,
    mut progress: Option<&mut dyn ProgressSink>,
    max_buckets: Option<usize>,
    peak_blocks: Option<u64>,
) -> Result<Profile, LoadError> {
    let mut reader = Reader::new(r).map_err(format_error)?;
    reader.skip_events(!opts.events);
    let mut p = Profile {
        header: reader.header().clone(),
        ..Profile::default()
    };
    let mut replay = Replay::new(p.header.sampling_rate);
    if opts.block_groups {
        replay = replay.with_block_groups();
    }
    if let Some(n) = max_buckets {
        replay = replay.with_time_buckets(n);
    }
    if p.header.version >= 2 {
        replay = replay.in_order(live::ring_for(peak_blocks));
    }
    let mut stacks = StackBuilder {
        ips_only: !opts.stacks,
        new_nodes_trusted: p.header.version >= 3,
        ..StackBuilder::default()
    };
    let mut escape = escape::EscapeTracker::default();
    // The escape tracker keeps its own table of live blocks: only for profiles whose header
    // says frame addresses follow every event (`--escape`, header key ESCAPE).
    let track = p.header.escape;
    let mut embedded: HashMap<(u64, u64), Vec<SymbolFrame>> = HashMap::new();
    let mut last_sample_ns = 0u64;
    let mut cpu = cpu::CpuBuilder::default();
    if let Some(pr) = progress.as_deref_mut() {
        pr.begin("loading", total_bytes);
    }
    // Two cores: this thread reads chunks, checks them and decompresses them; a second one
    // decodes their records and applies them (stacks, replay). Chunks pass between the two as
    // bytes (a few bytes per event, where decoded records would be tens) through a bounded
    // channel, so memory stays independent of the profile's length. Without the events (what
    // embedding symbols reads: a few small chunks) both happen here: a thread would cost more
    // than the work it takes (a shell script's run embeds hundreds of such profiles).
    let mut apply = apply::Apply {
        p: &mut p,
        replay: &mut replay,
        stacks: &mut stacks,
        embedded: &mut embedded,
        last_sample_ns: &mut last_sample_ns,
        cpu: &mut cpu,
        escape: &mut escape,
        track,
        dense: Vec::new(),
        slots: FxHashMap::default(),
        last_slot: None,
    };
    // The tree of stacks starts each definition at its base's node, and collecting return
    // addresses (embedding symbols) needs no stack whole: the decoder gives each stack's own
    // frames only, without rebuilding its outer ones. The escape tracker reads whole stacks.
    let own_frames_only = !track;
    let decoded = if opts.events {
        read_on_two_threads(
            &mut reader,
            &mut apply,
            progress.as_deref_mut(),
            own_frames_only,
        )
    } else {
        read_here(
            &mut reader,
            &mut apply,
            progress.as_deref_mut(),
            own_frames_only,
        )
    };
    let malformed = decoded?;
    // After a malformed record the reading thread may have read on: what it found there was
    // never the profile's.
    let trailing_damage = reader.trailing_damage().filter(|_| malformed.is_none());
    p.truncated = malformed.or_else(|| reader.truncation().cloned());
    p.readable_end = reader.offset();
    if let Some(d) = trailing_damage {
        p.warnings.push(format!(
            "the data appended after the profile's trailer is damaged at byte {} ({}); the \
             recorded numbers are complete, but embedded symbols in it were skipped",
            d.offset, d.reason
        ));
    }
    if let Some(pr) = progress {
        pr.finish();
    }

    let out = replay.finish();
    p.totals = out.totals;
    p.sampling_error = out.sampling_error;
    p.threads = out.threads;
    p.samples = out.samples;
    p.stack_stats = out.stats;
    p.block_groups = out.block_groups;
    p.escape = escape.finish(&out.stack_raw_ids);
    for (st, raw) in p.stack_stats.iter_mut().zip(&out.stack_raw_ids) {
        st.stack = stacks.defined(*raw).flatten();
        st.truncated = stacks.was_cut(*raw);
    }
    let undefined = out
        .stack_raw_ids
        .iter()
        .filter(|&&raw| stacks.defined(raw).is_none())
        .count();
    if undefined > 0 {
        p.warnings.push(format!(
            "{undefined} stack(s) used by events were never defined in the profile; \
             their allocations show as [unknown]"
        ));
    }
    if let Some(trailer) = &p.trailer {
        for &(k, v) in trailer {
            match k {
                trailer_key::END_NS => p.totals.duration_ns = v,
                trailer_key::DROPPED_EVENTS => p.totals.dropped_events = v,
                _ => {}
            }
        }
    }
    if p.totals.duration_ns == 0 {
        p.totals.duration_ns = last_sample_ns;
    }
    p.time_buckets = out.time_buckets;
    if let Some(last) = p.time_buckets.as_mut().and_then(|b| b.buckets.last_mut()) {
        last.end_ns = last.end_ns.max(p.totals.duration_ns);
    }
    cpu.finish(&mut p, &stacks, &out.stack_raw_ids);
    if p.totals.dropped_events > 0 {
        p.warnings.push(format!(
            "the recorder dropped {} event(s): counts are lower bounds",
            p.totals.dropped_events
        ));
    }
    if p.totals.late_events > 0 {
        p.warnings.push(format!(
            "{} event(s) arrived after a watermark had passed them (a recorder ordering bug); \
             they were applied late",
            p.totals.late_events
        ));
    }
    if p.header.sampling_rate > 0 {
        p.warnings.push(format!(
            "this profile was recorded with sampling (one sample per {} bytes on average): \
             counts and bytes are estimates, and temporaries are counted among sampled blocks only",
            p.header.sampling_rate
        ));
    }
    p.embedded_symbols = embedded;
    // Freeing the loader's tables and buffers takes milliseconds: off the command's path (a
    // read without the events has small ones, freed sooner than a thread starts).
    let leftovers = (stacks, reader.take_buffers());
    if opts.events {
        drop_in_background(leftovers);
    }
    Ok(p)
}

#[cfg(test)]
mod tests;
