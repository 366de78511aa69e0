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

mod buckets;
mod cpu;
pub mod escape;
mod live;
mod ops;
mod reorder;
mod replay;
#[cfg(test)]
pub(crate) mod synthetic;

pub use crate::progress::{Progress, ProgressSink, StderrProgress};

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use rustc_hash::{FxHashMap, FxHashSet};
use tidemark::format::{trailer_key, FormatError, Reader, Record, SymbolFrame, Truncation};

use crate::analysis::escape as escape_analysis;
use crate::analysis::suppress::{self, Suppressions};
use crate::model::{Ip, IpId, Message, ModuleSnapshot, Profile, StackId, StackNode};
use crate::symbolize::{self, SymbolizeOptions};
use ops::{Op, ToOps};
use replay::Replay;

/// Default of [`LoadOptions::symbolize`].
pub const DEFAULT_SYMBOLIZE: bool = true;
/// Default of [`LoadOptions::progress`].
pub const DEFAULT_PROGRESS: bool = false;
/// Default of [`LoadOptions::block_groups`].
pub const DEFAULT_BLOCK_GROUPS: bool = false;
/// Default of [`LoadOptions::events`].
pub const DEFAULT_EVENTS: bool = true;

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
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            symbolize: DEFAULT_SYMBOLIZE,
            progress: DEFAULT_PROGRESS,
            block_groups: DEFAULT_BLOCK_GROUPS,
            suppressions: Suppressions::builtin(),
            events: DEFAULT_EVENTS,
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
    let reader = BufReader::with_capacity(1 << 20, file);
    let mut sink = StderrProgress::new(&path.display().to_string());
    let mut p = load_inner(
        reader,
        opts,
        total_bytes,
        opts.progress.then_some(&mut sink as &mut dyn ProgressSink),
        max_buckets,
    )
    .map_err(|e| e.with_path(path))?;
    if symbolize {
        let progress = opts.progress.then_some(&mut sink as &mut dyn ProgressSink);
        symbolize_pass(&mut p, opts, progress);
    }
    Ok(p)
}

/// The symbolization stage of [`load_path`] and [`load_reader`].
fn symbolize_pass(p: &mut Profile, opts: &LoadOptions, progress: Option<&mut dyn ProgressSink>) {
    let sopts = SymbolizeOptions {
        use_files: opts.symbolize,
    };
    symbolize::symbolize(p, &sopts, progress);
    // Stack-eligible bytes per stack need the allocating function, known only now.
    escape_analysis::count_stack_eligible(p);
    // Rules match function names: they apply once the frames are named.
    suppress::apply(p, &opts.suppressions);
}

/// Loads and symbolizes a profile from any reader (no progress percentage: the length is
/// unknown).
pub fn load_reader<R: Read>(r: R, opts: &LoadOptions) -> Result<Profile, LoadError> {
    let mut sink = StderrProgress::new("profile");
    let progress = opts.progress.then_some(&mut sink as &mut dyn ProgressSink);
    let mut p = load_inner(r, opts, None, progress, None)?;
    let progress = opts.progress.then_some(&mut sink as &mut dyn ProgressSink);
    symbolize_pass(&mut p, opts, progress);
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
    let mut p = load_inner(r, opts, total_bytes, Some(&mut *progress), None)?;
    symbolize_pass(&mut p, opts, Some(progress));
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

/// Builds the stack prefix tree from stack definitions.
#[derive(Default)]
pub(crate) struct StackBuilder {
    ip_index: FxHashMap<(u64, u64), IpId>,
    node_index: FxHashMap<(Option<StackId>, IpId), StackId>,
    /// Recorded stack id → leaf node (`None` for an empty stack).
    pub(crate) defined: FxHashMap<u64, Option<StackId>>,
    /// Recorded stack ids whose definition was cut at the frame limit ([`stack_was_cut`]).
    pub(crate) cut: FxHashSet<u64>,
}

/// True when a recorded stack of `frames` return addresses was cut at the recorder's frame limit
/// (`tidemark::unwind::MAX_FRAMES`): format v1 has no flag for it, and the recorder never
/// stores more frames than the limit, so a stack of exactly that many frames is taken as cut
/// (a stack exactly 128 frames deep is reported as cut too: rare, and harmless).
pub(crate) fn stack_was_cut(frames: usize) -> bool {
    frames >= tidemark::unwind::MAX_FRAMES
}

impl StackBuilder {
    /// Adds a stack definition (frames innermost first) of module generation `generation`.
    pub(crate) fn define(&mut self, p: &mut Profile, id: u64, generation: u64, frames: &[u64]) {
        let mut parent: Option<StackId> = None;
        for &addr in frames.iter().rev() {
            let ip = *self.ip_index.entry((addr, generation)).or_insert_with(|| {
                p.ips.push(Ip {
                    address: addr,
                    generation,
                    frames: Vec::new(),
                });
                IpId((p.ips.len() - 1) as u32)
            });
            let node = *self.node_index.entry((parent, ip)).or_insert_with(|| {
                p.stacks.push(StackNode { parent, ip });
                StackId((p.stacks.len() - 1) as u32)
            });
            parent = Some(node);
        }
        self.defined.insert(id, parent);
        if stack_was_cut(frames.len()) {
            self.cut.insert(id);
        } else {
            self.cut.remove(&id);
        }
    }
}

/// Records per batch handed from the decoding thread to the applying one.
const BATCH_RECORDS: usize = 4096;
/// Batches decoded ahead of the applying thread: bounds the memory between the two.
const BATCHES_IN_FLIGHT: usize = 4;

fn load_inner<R: Read>(
    r: R,
    opts: &LoadOptions,
    total_bytes: Option<u64>,
    mut progress: Option<&mut dyn ProgressSink>,
    max_buckets: Option<usize>,
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
        replay = replay.in_order();
    }
    let mut stacks = StackBuilder::default();
    let mut escape = escape::EscapeTracker::default();
    // The escape tracker keeps its own table of live blocks: only for profiles whose header
    // says frame addresses follow every event (`--escape`, header key ESCAPE).
    let track = p.header.escape;
    let mut embedded: HashMap<(u64, u64), Vec<SymbolFrame>> = HashMap::new();
    let mut last_sample_ns = 0u64;
    let mut cpu = cpu::CpuBuilder::default();
    let mut malformed: Option<Truncation> = None;
    if let Some(pr) = progress.as_deref_mut() {
        pr.begin("loading", total_bytes);
    }
    // Two cores: this thread reads and decodes chunks (decompression, varints), a second one
    // applies the records (stacks, replay); batches of records pass between them through a
    // bounded channel, so memory stays independent of the profile's length.
    let (to_apply, batches) = std::sync::mpsc::sync_channel::<Vec<Op>>(BATCHES_IN_FLIGHT);
    let (recycle, recycled) = std::sync::mpsc::channel::<Vec<Op>>();
    let decoded = std::thread::scope(|scope| {
        let (p, replay, stacks, embedded, last_sample_ns, cpu, escape) = (
            &mut p,
            &mut replay,
            &mut stacks,
            &mut embedded,
            &mut last_sample_ns,
            &mut cpu,
            &mut escape,
        );
        let applier = scope.spawn(move || {
            // A realloc's free half, waiting for its allocation half (escape tracker only).
            let mut realloc_from = 0u64;
            for mut batch in batches {
                for op in batch.drain(..) {
                    match op {
                        Op::NewStack(raw) => {
                            replay.new_stack(raw);
                        }
                        Op::Alloc {
                            tid,
                            stack,
                            seq,
                            addr,
                            size,
                            realloc,
                        } => {
                            if track {
                                let raw = replay.raw_stack(stack);
                                match realloc {
                                    true => escape.realloc(tid, realloc_from, addr, size, raw),
                                    false => escape.alloc(tid, addr, size, raw),
                                }
                            }
                            replay.alloc(tid, seq, addr, size, stack, realloc);
                        }
                        Op::Free {
                            tid,
                            seq,
                            addr,
                            realloc,
                        } => {
                            if track {
                                match realloc {
                                    true => realloc_from = addr,
                                    false => escape.free(tid, addr),
                                }
                            }
                            replay.free(tid, seq, addr, realloc);
                        }
                        // Frame records only feed the escape tracker: moved, not copied.
                        Op::Frames { tid, sp, cfas } => escape.frames(tid, sp, cfas),
                        Op::Returns(ips) => escape.returns(ips),
                        Op::Other(rec) => {
                            if track {
                                track_escape(&rec, escape);
                            }
                            apply_record(*rec, p, replay, stacks, embedded, last_sample_ns, cpu);
                        }
                    }
                }
                // The decoding side may be done already; the buffer is then dropped.
                let _ = recycle.send(batch);
            }
        });
        let mut decode = || -> Result<(), LoadError> {
            let mut batch: Vec<Op> = Vec::with_capacity(BATCH_RECORDS + 2);
            let mut to_ops = ToOps::default();
            'chunks: loop {
                let chunk_offset = reader.offset();
                let Some(records) = reader.next_chunk().map_err(format_error)? else {
                    break;
                };
                for rec in records {
                    match rec {
                        Ok(rec) => to_ops.push(rec, &mut batch),
                        Err(FormatError::BadRecord { offset, reason }) => {
                            // A chunk with a good checksum that this reader cannot decode: keep
                            // what came before it, and say the profile ends there.
                            malformed = Some(Truncation {
                                offset: chunk_offset.max(offset),
                                reason: format!(
                                    "a chunk at byte {offset} holds a malformed record \
                                     ({reason}); the rest of the file was ignored"
                                ),
                            });
                            break 'chunks;
                        }
                        Err(e) => return Err(format_error(e)),
                    }
                    if batch.len() >= BATCH_RECORDS {
                        let next = recycled
                            .try_recv()
                            .unwrap_or_else(|_| Vec::with_capacity(BATCH_RECORDS + 2));
                        if to_apply.send(std::mem::replace(&mut batch, next)).is_err() {
                            break 'chunks; // the applying thread panicked: join() says so
                        }
                    }
                }
                if let Some(pr) = progress.as_deref_mut() {
                    pr.update(reader.offset());
                }
            }
            if !batch.is_empty() {
                let _ = to_apply.send(batch);
            }
            Ok(())
        };
        let decoded = decode();
        drop(to_apply);
        if let Err(panic) = applier.join() {
            std::panic::resume_unwind(panic);
        }
        decoded
    });
    decoded?;
    p.truncated = malformed.or_else(|| reader.truncation().cloned());
    if let Some(d) = reader.trailing_damage() {
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
        st.stack = stacks.defined.get(raw).copied().flatten();
        st.truncated = stacks.cut.contains(raw);
    }
    let undefined = out
        .stack_raw_ids
        .iter()
        .filter(|raw| !stacks.defined.contains_key(raw))
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
    Ok(p)
}

/// Feeds the escape tracker the records other than events (it keeps its own block table: frames
/// arrive after their event).
fn track_escape(rec: &Record, e: &mut escape::EscapeTracker) {
    match rec {
        Record::Stack { id, frames, .. } => e.stack(*id, frames),
        &Record::Thread { tid, stack_hi, .. } => e.thread_top(tid, stack_hi),
        &Record::Sample { t_ns, .. } => e.sample(t_ns),
        _ => {}
    }
}

fn apply_record(
    rec: Record,
    p: &mut Profile,
    replay: &mut Replay,
    stacks: &mut StackBuilder,
    embedded: &mut HashMap<(u64, u64), Vec<SymbolFrame>>,
    last_sample_ns: &mut u64,
    cpu: &mut cpu::CpuBuilder,
) {
    match rec {
        Record::Stack {
            id,
            generation,
            frames,
            ..
        } => stacks.define(p, id, generation, &frames),
        Record::Thread {
            tid,
            name,
            stack_lo,
            stack_hi,
        } => {
            let t = replay.thread(tid);
            t.name = name;
            t.stack_lo = stack_lo;
            t.stack_hi = stack_hi;
        }
        Record::ThreadExit {
            tid,
            stack_high_water_bytes,
        } => replay.thread(tid).stack_high_water_bytes = Some(stack_high_water_bytes),
        Record::Modules {
            generation,
            modules,
        } => p.modules.push(ModuleSnapshot {
            generation,
            modules,
        }),
        Record::Sample { seq, t_ns, values } => {
            *last_sample_ns = (*last_sample_ns).max(t_ns);
            replay.sample(seq, t_ns, values);
        }
        Record::Watermark { seq } => replay.watermark(seq),
        Record::Trailer { values } => p.trailer = Some(values),
        Record::Message { level, text } => p.messages.push(Message { level, text }),
        Record::Symbols {
            generation,
            entries,
        } => embedded.extend(entries.into_iter().map(|(ip, f)| ((ip, generation), f))),
        Record::CpuSample {
            tid,
            t_ns,
            stack,
            weight_ns,
        } => cpu.push(tid, t_ns, stack, weight_ns),
        // Events come as `Op`s (ops.rs), never here.
        Record::Alloc { .. }
        | Record::Free { .. }
        | Record::Realloc { .. }
        | Record::EventFrames { .. }
        | Record::EventReturns { .. } => {}
    }
}

#[cfg(test)]
mod tests;
