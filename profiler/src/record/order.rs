//! The writer's event transform: thread buffers (sequenced layout, per thread) → one stream in
//! global order with blocks named by number (the version-2 ordered layout, `docs/format.md` §3.2).
//!
//! Each writer pass hands over the records of every thread buffer and the watermark `W` (every
//! event numbered below `W` is among them or earlier passes'). The events below `W` are sorted
//! by sequence number, timeline samples placed among them, and written in that order; later ones
//! wait for the next pass. In global order every free meets the block it frees, so a free names
//! its block by how many allocations ago it was made (`back`) instead of by address: churn, where
//! a block is freed right after it was made, encodes as `back = 1` again and again, which zstd
//! compresses to almost nothing, and the analyzer needs no reordering.

use super::wire;
use crate::format::{self, tag, AllocKind, Cursor, DecodeError, FreedBlock};
use ev::{Ev, Side, What, KEY_OTHER, KEY_SHIFT, NO_FRAMES, NO_SIDE, PREFETCH_AHEAD, WIDE};
use live::{Block, LiveBlocks};
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::VecDeque;

/// What the analyzer's replay computes from the stream, kept while it is written (exact mode):
/// the trailer carries it, so `tidemark run` prints its summary without reading the events back.
/// The definitions are the analyzer's (`docs/metrics.md`); a test keeps the two equal.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tally {
    /// Allocations, realloc's allocation halves included.
    pub allocations: u64,
    /// Frees of blocks the stream holds (realloc's free halves not counted), plus frees of
    /// unknown blocks.
    pub frees: u64,
    /// Frees (and realloc free halves) of blocks the stream never saw allocated.
    pub unmatched_frees: u64,
    /// Live requested bytes and blocks now.
    pub live_bytes: u64,
    pub live_blocks: u64,
    /// The largest live heap so far, and its blocks then.
    pub peak_bytes: u64,
    pub peak_blocks: u64,
    /// Blocks freed by their own thread with no other allocation of that thread in between.
    pub temporary: u64,
    /// Allocations (realloc's allocation halves included) with a recorded stack, and those of
    /// them whose stack was cut at the frame limit (`analysis::stack_quality`'s counts).
    pub stacked_allocations: u64,
    pub truncated_allocations: u64,
}

/// A block a free refers to.
#[derive(Debug, Clone, Copy)]
enum Freed {
    /// Allocated in this profile.
    Block(Block),
    /// Not allocated in this profile (before recording started, or not sampled): its address.
    Unknown(u64),
}

/// Timeline sample waiting for its place in the stream.
pub struct PendingSample {
    /// Sequence counter when it was taken.
    pub seq: u64,
    /// Time since start, ns.
    pub t_ns: u64,
    /// Its values.
    pub values: Vec<(u64, u64)>,
}

/// The thread and first sequence number of a thread buffer (from its leading context record).
pub fn buffer_start(bytes: &[u8]) -> (u32, u64) {
    let mut c = Cursor::new(bytes);
    match c.u8() {
        Ok(tag::CONTEXT) => (c.uvarint().unwrap_or(0) as u32, c.uvarint().unwrap_or(0)),
        _ => (0, 0),
    }
}

/// The transform's state across passes.
#[derive(Default)]
pub struct Orderer {
    /// Events numbered at or above the last watermark, waiting for the next pass: each taken
    /// buffer's in a vector of its own (nothing is moved when the events before them are
    /// written), in the order the buffers were taken.
    runs: Vec<Run>,
    /// The events of the buffer being taken (then a run's vector).
    taking: Vec<Ev>,
    /// Vectors of runs written out, for the next buffers' events (at most [`SPARE_RUNS`]).
    spare_runs: Vec<Vec<Ev>>,
    /// The events of one write when they had to be sorted (reused).
    ready: Vec<Ev>,
    /// Timeline samples not written yet, in order of their numbers (samples are few: they are
    /// merged into the events as those are written, so the events of one thread need no sort).
    samples: VecDeque<PendingSample>,
    /// The last sample written: the next is written as differences from it.
    sample_deltas: format::SampleDeltas,
    /// Live blocks by address.
    live: LiveBlocks,
    /// Message records from the threads, for the pass's meta chunk.
    pub messages: Vec<u8>,
    /// Side entries of waiting events.
    side: Vec<Side>,
    /// Records attached to waiting events (escape mode), as written by the recorder: at an
    /// event's [`Side::frames`], their length (u32, little-endian), then their bytes.
    attached: Vec<u8>,
    /// The previous pass's `side` and `attached`, reused by [`Self::keep_waiting_side`].
    spare_side: Vec<Side>,
    spare_attached: Vec<u8>,
    /// Per thread, the number of its latest allocation, except for thread `last_tid`, whose
    /// latest is `last_n` (events come in runs of one thread: the map is touched on switches).
    last_alloc: FxHashMap<u32, u64>,
    last_tid: Option<u32>,
    last_n: u64,
    tally: Tally,
    /// Ids of the stacks cut at the frame limit.
    truncated: FxHashSet<u64>,
    /// The free half of a realloc in flight, per thread.
    realloc_freed: FxHashMap<u32, Freed>,
    /// Number of the next block.
    next_block: u64,
    /// Events written (each allocation and free counts one, a realloc two).
    written_seq: u64,
    /// Thread of the last event written in the current chunk (`u32::MAX`: none yet; reset by
    /// [`Self::new_chunk`]).
    tid: u32,
}

impl Orderer {
    /// The running totals of what was written.
    pub fn tally(&self) -> Tally {
        self.tally
    }

    /// Notes stacks cut at the frame limit (before any event naming them is written).
    pub fn note_truncated(&mut self, ids: &[u64]) {
        self.truncated.extend(ids.iter().copied());
    }

    /// Counts an allocation's stack for the trailer's stack-quality totals.
    #[inline]
    fn count_stack(&mut self, stack: u64) {
        if stack != 0 {
            self.tally.stacked_allocations += 1;
            if !self.truncated.is_empty() && self.truncated.contains(&stack) {
                self.tally.truncated_allocations += 1;
            }
        }
    }

    /// Events written so far: the trailer's end sequence.
    pub fn end_seq(&self) -> u64 {
        self.written_seq
    }

    /// Takes the events of one thread buffer (sequenced layout); records without a sequence
    /// number (threads, thread exits) go straight to `out`.
    pub fn take_buffer(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        if self.take_events(bytes, out).is_err() {
            // The recorder wrote it in this very process: a record it cannot read back is a
            // bug, and the rest of the buffer cannot be trusted.
            debug_assert!(false, "undecodable thread buffer");
        }
        if !self.taking.is_empty() {
            // One thread's events, numbered as they happened: in order already. (Stable, were
            // they not: frees of one thread that read the same number keep their order.)
            if !self.taking.is_sorted_by_key(|e| e.key) {
                self.taking.sort_by_key(|e| e.key);
            }
            let next = self.spare_runs.pop().unwrap_or_default();
            let evs = std::mem::replace(&mut self.taking, next);
            self.runs.push(Run { evs, at: 0 });
        }
    }

    /// Decodes a buffer's records (the hot part of the writer: no allocation per event).
    fn take_events(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> Result<(), DecodeError> {
        let mut c = Cursor::new(bytes);
        let (mut tid, mut seq) = (0u32, 0u64);
        let kind_of = |b: u8| AllocKind::from_u8(b).ok_or(DecodeError("unknown allocation kind"));
        while !c.is_empty() {
            let start = c.position();
            let t = c.u8()?;
            match t {
                tag::CONTEXT => {
                    tid = c.uvarint()? as u32;
                    seq = c.uvarint()?;
                }
                tag::ALLOC => {
                    seq += c.uvarint()?;
                    let addr = wire::address(&mut c)?;
                    let size = c.uvarint()?;
                    let stack = c.uvarint()?;
                    let kind = kind_of(c.u8()?)?;
                    let align = c.uvarint()?;
                    let key = Ev::key(seq, What::Alloc, kind);
                    self.push(key, addr, size, stack, tid, align);
                }
                tag::FREE => {
                    seq += c.uvarint()?;
                    let addr = wire::address(&mut c)?;
                    self.push(Ev::free_key(seq), addr, 0, 0, tid, 0);
                }
                tag::REALLOC => {
                    let free_seq = seq + c.uvarint()?;
                    seq = free_seq + c.uvarint()?;
                    let old = wire::address(&mut c)?;
                    let key = Ev::key(free_seq, What::ReallocFree, AllocKind::Realloc);
                    self.push(key, old, 0, 0, tid, 0);
                    let addr = wire::address(&mut c)?;
                    let size = c.uvarint()?;
                    let stack = c.uvarint()?;
                    let kind = kind_of(c.u8()?)?;
                    let key = Ev::key(seq, What::ReallocAlloc, kind);
                    self.push(key, addr, size, stack, tid, 0);
                }
                tag::THREAD => {
                    let t = c.uvarint()? as u32;
                    let name = c.bytes()?;
                    let (lo, hi) = (c.uvarint()?, c.uvarint()?);
                    format::put_thread(out, t, name, lo, hi);
                }
                tag::THREAD_EXIT => {
                    let t = c.uvarint()? as u32;
                    format::put_thread_exit(out, t, c.uvarint()?);
                }
                tag::EVENT_FRAMES => {
                    // The frames of the event just before it in this buffer (the recorder
                    // reserves room for both at once); they travel with it.
                    c.uvarint()?;
                    for _ in 0..c.uvarint()? {
                        c.uvarint()?;
                    }
                    self.attach(&bytes[start..c.position()]);
                }
                tag::EVENT_RETURNS => {
                    c.bytes()?;
                    self.attach(&bytes[start..c.position()]);
                }
                tag::MESSAGE => {
                    // Into a meta chunk: readers that pass over events still see them.
                    let level = c.u8()?;
                    let text = String::from_utf8_lossy(c.bytes()?);
                    format::put_message(&mut self.messages, level, &text);
                }
                _ => return Err(DecodeError("unknown record in a thread buffer")),
            }
        }
        Ok(())
    }

    /// Adds an event to the waiting ones, with a side entry when it needs one.
    #[inline]
    fn push(&mut self, key: u64, addr: u64, size: u64, stack: u64, tid: u32, align: u64) {
        let narrow = |v: u64| u32::try_from(v).ok().filter(|&v| v != WIDE);
        let mut e = Ev {
            key,
            addr,
            size: WIDE,
            stack: WIDE,
            tid,
            side: NO_SIDE,
        };
        match (narrow(size), narrow(stack)) {
            (Some(sz), Some(st)) if align == 0 => {
                e.size = sz;
                e.stack = st;
            }
            _ => e.side = self.new_side(size, stack, align),
        }
        self.taking.push(e);
    }

    /// Adds a side entry; returns its index.
    fn new_side(&mut self, size: u64, stack: u64, align: u64) -> u32 {
        self.side.push(Side {
            size,
            stack,
            align,
            frames: NO_FRAMES,
        });
        (self.side.len() - 1) as u32
    }

    /// Queues a timeline sample that took the sequence number `seq`.
    pub fn take_sample(&mut self, sample: PendingSample) {
        // After every sample numbered at or below it: samples of equal numbers keep the order
        // they were taken in.
        let at = self.samples.partition_point(|s| s.seq <= sample.seq);
        self.samples.insert(at, sample);
    }

    /// Says the next record written starts a new chunk (which must name its thread again).
    pub fn new_chunk(&mut self) {
        self.tid = u32::MAX;
    }

    /// Writes every waiting event numbered below `watermark` to `out` (the chunk being gathered),
    /// in order; calls `flush` whenever `out` holds at least `chunk_bytes`, at a record boundary.
    /// The caller writes out the rest as a chunk when it is time, then calls [`Self::new_chunk`].
    pub fn write_below(
        &mut self,
        watermark: u64,
        out: &mut Vec<u8>,
        chunk_bytes: usize,
        mut flush: impl FnMut(&mut Vec<u8>) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let below = watermark.saturating_mul(1 << KEY_SHIFT);
        // Each run's events below the watermark are a prefix of what waits of it: found by
        // bisection, so the events that keep waiting are not read at all. (A pass of many
        // threads' buffers is written in slices whose watermarks lag behind most of what it
        // took — a thread's buffer spans numbers the other threads' buffers span too —, and
        // reading every waiting event at each slice read each event of a burst of 300 threads
        // many times over: a fifth of the writer's time.)
        let mut runs = std::mem::take(&mut self.runs);
        // (run, start, end) of the events to write.
        let mut parts: Vec<(usize, usize, usize)> = Vec::with_capacity(runs.len());
        for (i, r) in runs.iter_mut().enumerate() {
            let n = r.evs[r.at..].partition_point(|e| e.key < below);
            if n > 0 {
                parts.push((i, r.at, r.at + n));
                r.at += n;
            }
        }
        // With one thread (or threads taking turns) the parts follow each other in order: they
        // are written from where they are; else they are merged into a copy ([`merge_parts`]).
        // Equal keys across parts are in order too (the merge keeps equal keys in the order of
        // their parts): frees read the counter without advancing it, so a program freeing
        // 1.5 M blocks in a row gives them all one number, and its parts were merged (copied,
        // into a vector grown page by page) though one thread made them all.
        let in_order = parts
            .windows(2)
            .all(|w| runs[w[0].0].evs[w[0].2 - 1].key <= runs[w[1].0].evs[w[1].1].key);
        let result = if in_order {
            parts.iter().try_for_each(|&(i, s, e)| {
                self.write_events(&runs[i].evs[s..e], out, chunk_bytes, &mut flush)
            })
        } else {
            let slices: Vec<&[Ev]> = parts.iter().map(|&(i, s, e)| &runs[i].evs[s..e]).collect();
            let mut ready = std::mem::take(&mut self.ready);
            ready.clear();
            // Written in batches as they are merged: a pass of 300 threads' buffers merged
            // whole grew its copy to 40 MB (a page fault per 4 KiB, every pass).
            let result = merge_parts(&slices, &mut ready, &mut |batch: &[Ev]| {
                self.write_events(batch, out, chunk_bytes, &mut flush)
            });
            self.ready = ready;
            result
        };
        // Runs written out give their vectors to the next buffers.
        runs.retain_mut(|r| {
            if r.at < r.evs.len() {
                return true;
            }
            self.spare(std::mem::take(&mut r.evs));
            false
        });
        self.runs = runs;
        result?;
        while self.samples.front().is_some_and(|s| s.seq < watermark) {
            self.write_sample(out);
        }
        // No watermark: the stream is in order, so readers need none (format version 3; one per
        // writer pass was ≈ 10% of a short C loop's profile).
        self.keep_waiting_side();
        Ok(())
    }

    /// Writes `events` (in order) to `out`, placing timeline samples among them, calling `flush`
    /// as [`Self::write_below`] says.
    fn write_events(
        &mut self,
        events: &[Ev],
        out: &mut Vec<u8>,
        chunk_bytes: usize,
        flush: &mut impl FnMut(&mut Vec<u8>) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        for (i, &e) in events.iter().enumerate() {
            // The live-block lookup of a free a few events ahead starts loading now.
            if let Some(ahead) = events.get(i + PREFETCH_AHEAD) {
                if matches!(ahead.what(), What::Free | What::ReallocFree) {
                    self.live.prefetch(ahead.addr);
                }
            }
            // A sample took its number S as an event does: after the frees that read S; no
            // event has its key.
            while self
                .samples
                .front()
                .is_some_and(|s| (s.seq << KEY_SHIFT | KEY_OTHER) < e.key)
            {
                self.write_sample(out);
            }
            self.write(e, out);
            if out.len() >= chunk_bytes {
                flush(out)?;
                // Each chunk names its thread again, so chunks decode on their own.
                self.tid = u32::MAX;
            }
        }
        Ok(())
    }

    /// Writes the first waiting sample.
    fn write_sample(&mut self, out: &mut Vec<u8>) {
        if let Some(s) = self.samples.pop_front() {
            // Its number is the next event's, which readers count: not written.
            self.sample_deltas.put(out, s.t_ns, &s.values);
        }
    }

    /// Attaches a record to the event just taken: the recorder writes an event's frame records
    /// right after it, in the same buffer, so that event's attachments are the last ones.
    fn attach(&mut self, rec: &[u8]) {
        let Some(&e) = self.taking.last() else {
            return;
        };
        let side = if e.side == NO_SIDE {
            let side = self.new_side(u64::from(e.size), u64::from(e.stack), 0);
            if let Some(last) = self.taking.last_mut() {
                last.side = side;
            }
            side
        } else {
            e.side
        };
        let sd = &mut self.side[side as usize];
        if sd.frames == NO_FRAMES {
            sd.frames = self.attached.len() as u32;
            self.attached.extend_from_slice(&0u32.to_le_bytes());
        }
        let at = sd.frames as usize;
        self.attached.extend_from_slice(rec);
        let len = (self.attached.len() - at - 4) as u32;
        self.attached[at..at + 4].copy_from_slice(&len.to_le_bytes());
    }

    /// The records attached at `frames` in `attached`.
    fn attachments(attached: &[u8], frames: u32) -> &[u8] {
        if frames == NO_FRAMES {
            return &[];
        }
        let at = frames as usize;
        let mut len = [0u8; 4];
        len.copy_from_slice(&attached[at..at + 4]);
        &attached[at + 4..at + 4 + u32::from_le_bytes(len) as usize]
    }

    /// Drops the side entries and attachments of events already written, keeping the waiting
    /// ones' (into the spare vectors, which are swapped in: no allocation per pass).
    fn keep_waiting_side(&mut self) {
        if self.side.is_empty() {
            return;
        }
        let (mut side, mut attached) = (
            std::mem::take(&mut self.spare_side),
            std::mem::take(&mut self.spare_attached),
        );
        side.clear();
        attached.clear();
        for r in &mut self.runs {
            for e in r.evs[r.at..].iter_mut().filter(|e| e.side != NO_SIDE) {
                let mut sd = self.side[e.side as usize];
                if sd.frames != NO_FRAMES {
                    let rec = Self::attachments(&self.attached, sd.frames);
                    sd.frames = attached.len() as u32;
                    attached.extend_from_slice(&(rec.len() as u32).to_le_bytes());
                    attached.extend_from_slice(rec);
                }
                e.side = side.len() as u32;
                side.push(sd);
            }
        }
        self.spare_side = std::mem::replace(&mut self.side, side);
        self.spare_attached = std::mem::replace(&mut self.attached, attached);
    }

    /// Keeps a written run's vector, emptied, for the next buffers (up to [`SPARE_RUNS`]).
    fn spare(&mut self, mut evs: Vec<Ev>) {
        evs.clear();
        if self.spare_runs.len() < SPARE_RUNS && evs.capacity() > 0 {
            self.spare_runs.push(evs);
        }
    }

    fn switch_to(&mut self, tid: u32, out: &mut Vec<u8>) {
        if self.tid != tid {
            format::put_thread_switch(out, tid);
            self.tid = tid;
        }
    }

    /// Removes the block at `addr` (a free by thread `tid`; `realloc`: a realloc's free half).
    fn freed(&mut self, addr: u64, tid: u32, realloc: bool) -> Freed {
        match self.live.remove(addr) {
            Some(b) => {
                // Numbers are unique and a thread's latest is one of its own blocks: equal
                // numbers mean the block is the freeing thread's, made last.
                let temporary = !realloc && self.last_alloc_of(tid) == Some(b.n);
                let t = &mut self.tally;
                t.live_bytes -= b.size;
                t.live_blocks -= 1;
                if !realloc {
                    t.frees += 1;
                    t.temporary += u64::from(temporary);
                }
                Freed::Block(b)
            }
            None => {
                let t = &mut self.tally;
                t.unmatched_frees += 1;
                if !realloc {
                    t.frees += 1;
                }
                Freed::Unknown(addr)
            }
        }
    }

    /// Makes the next block, at `addr`.
    fn allocated(&mut self, addr: u64, size: u64, tid: u32) {
        let n = self.next_block;
        self.next_block += 1;
        // An address handed out again without a recorded free keeps its old block live (as
        // the analyzer sees it: the stream names blocks, and that one was never freed).
        self.live.insert(addr, Block { n, size });
        self.set_last_alloc(tid, n);
        let t = &mut self.tally;
        t.allocations += 1;
        t.live_bytes += size;
        t.live_blocks += 1;
        if t.live_bytes > t.peak_bytes {
            t.peak_bytes = t.live_bytes;
            t.peak_blocks = t.live_blocks;
        }
    }

    /// The number of the latest allocation of thread `tid`.
    #[inline]
    fn last_alloc_of(&self, tid: u32) -> Option<u64> {
        if self.last_tid == Some(tid) {
            Some(self.last_n)
        } else {
            self.last_alloc.get(&tid).copied()
        }
    }

    /// Notes that block `n` is the latest allocation of thread `tid`.
    #[inline]
    fn set_last_alloc(&mut self, tid: u32, n: u64) {
        if self.last_tid != Some(tid) {
            if let Some(t) = self.last_tid {
                self.last_alloc.insert(t, self.last_n);
            }
            self.last_tid = Some(tid);
        }
        self.last_n = n;
    }

    /// How the stream names a freed block now.
    fn named(&self, f: Freed) -> FreedBlock {
        match f {
            Freed::Block(b) => FreedBlock::Back(self.next_block - b.n),
            Freed::Unknown(addr) => FreedBlock::Unknown(addr),
        }
    }

    /// The size, stack id and alignment of `e`, and its attached records.
    #[inline]
    fn parts(&self, e: &Ev) -> (u64, u64, u64, &[u8]) {
        if e.side == NO_SIDE {
            return (u64::from(e.size), u64::from(e.stack), 0, &[]);
        }
        let sd = &self.side[e.side as usize];
        let frames = Self::attachments(&self.attached, sd.frames);
        (sd.size, sd.stack, sd.align, frames)
    }

    fn write(&mut self, e: Ev, out: &mut Vec<u8>) {
        match e.what() {
            What::Alloc => {
                self.switch_to(e.tid, out);
                let (size, stack, align, frames) = self.parts(&e);
                format::put_block_alloc(out, size, stack, e.kind(), align);
                out.extend_from_slice(frames);
                self.allocated(e.addr, size, e.tid);
                self.count_stack(stack);
                self.written_seq += 1;
            }
            What::Free => {
                self.switch_to(e.tid, out);
                let f = self.freed(e.addr, e.tid, false);
                format::put_block_free(out, self.named(f));
                out.extend_from_slice(self.parts(&e).3);
                self.written_seq += 1;
            }
            What::ReallocFree => {
                // Written with the allocation half, as one record numbered with it.
                let f = self.freed(e.addr, e.tid, true);
                self.realloc_freed.insert(e.tid, f);
            }
            What::ReallocAlloc => {
                self.switch_to(e.tid, out);
                let f = self
                    .realloc_freed
                    .remove(&e.tid)
                    .unwrap_or(Freed::Unknown(0));
                let (size, stack, _, frames) = self.parts(&e);
                format::put_block_realloc(out, self.named(f), size, stack, e.kind());
                out.extend_from_slice(frames);
                self.allocated(e.addr, size, e.tid);
                self.count_stack(stack);
                self.written_seq += 2;
            }
        }
    }
}

/// Events merged before they are written (2 MiB; a few in tests, so that every test that
/// merges crosses batches).
#[cfg(not(test))]
const READY_BATCH: usize = 1 << 16;
#[cfg(test)]
const READY_BATCH: usize = 7;

/// Merges the events of `parts` (each in key order) in key order, equal keys in the order of
/// their parts (what a stable sort of the parts one after the other gives), and hands them to
/// `emit` in batches of about [`READY_BATCH`] gathered in `out`. Many threads' buffers of one
/// pass overlap in runs of a few events (two threads running at once take turns with the
/// counter), and sorting their copies merged every event about log2(parts) times (the burst of
/// 300 threads: a tenth of the writer's time); here each is copied once, a run at a time: the
/// part with the smallest next key gives every event below the next key of any other part,
/// found by galloping. Parts join the heap only when their first key comes up, so it holds the
/// few that overlap.
fn merge_parts(
    parts: &[&[Ev]],
    out: &mut Vec<Ev>,
    emit: &mut impl FnMut(&[Ev]) -> std::io::Result<()>,
) -> std::io::Result<()> {
    use std::cmp::Reverse;
    if let [a, b] = parts {
        return merge_two(a, b, out, emit);
    }
    let mut order: Vec<u32> = (0..parts.len() as u32).collect();
    order.sort_unstable_by_key(|&i| (parts[i as usize][0].key, i));
    let mut at: Vec<usize> = vec![0; parts.len()];
    let mut heap: std::collections::BinaryHeap<Reverse<(u64, u32)>> =
        std::collections::BinaryHeap::with_capacity(8);
    let head = |at: &[usize], i: u32| (parts[i as usize][at[i as usize]].key, i);
    let mut next = 0;
    loop {
        while let Some(&i) = order.get(next) {
            if heap.peek().is_some_and(|Reverse(top)| *top < head(&at, i)) {
                break;
            }
            heap.push(Reverse(head(&at, i)));
            next += 1;
        }
        let Some(Reverse((_, i))) = heap.pop() else {
            break;
        };
        let mut bound = heap.peek().map(|Reverse(top)| *top);
        if let Some(&j) = order.get(next) {
            let first = head(&at, j);
            bound = Some(bound.map_or(first, |b| b.min(first)));
        }
        let part = parts[i as usize];
        let s = at[i as usize];
        let n = match bound {
            None => part.len() - s,
            Some(b) => gallop(&part[s..], |ev| (ev.key, i) < b),
        };
        // A few events (threads taking turns): pushed one by one, cheaper than a copy call.
        if n <= 4 {
            for &ev in &part[s..s + n] {
                out.push(ev);
            }
        } else {
            out.extend_from_slice(&part[s..s + n]);
        }
        at[i as usize] = s + n;
        if s + n < part.len() {
            heap.push(Reverse(head(&at, i)));
        }
        if out.len() >= READY_BATCH {
            emit(out)?;
            out.clear();
        }
    }
    emit(out)?;
    out.clear();
    Ok(())
}

/// [`merge_parts`] of two parts (two threads taking turns: runs of a few events each), without
/// the heap: equal keys from `a` first.
fn merge_two(
    a: &[Ev],
    b: &[Ev],
    out: &mut Vec<Ev>,
    emit: &mut impl FnMut(&[Ev]) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let end = out.len() + READY_BATCH.min(a.len() - i + b.len() - j);
        out.reserve(end - out.len());
        while i < a.len() && j < b.len() && out.len() < end {
            if b[j].key < a[i].key {
                out.push(b[j]);
                j += 1;
            } else {
                out.push(a[i]);
                i += 1;
            }
        }
        if out.len() >= READY_BATCH {
            emit(out)?;
            out.clear();
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    emit(out)?;
    out.clear();
    Ok(())
}

/// How many events at the start of `run` satisfy `below` (true for a prefix of it): by steps
/// doubling from the start, then bisection (the prefixes are mostly short).
fn gallop(run: &[Ev], below: impl Fn(&Ev) -> bool) -> usize {
    let mut hi = 1;
    while hi < run.len() && below(&run[hi]) {
        hi *= 2;
    }
    let lo = hi / 2;
    let hi = hi.min(run.len());
    lo + run[lo..hi].partition_point(&below)
}

/// Emptied run vectors kept for the next buffers (each up to a buffer's events, 64 KiB of
/// records: ≈ 256 KiB).
const SPARE_RUNS: usize = 64;

/// One taken buffer's events: `evs[at..]` are waiting, in order of number.
struct Run {
    evs: Vec<Ev>,
    at: usize,
}

#[path = "order_ev.rs"]
mod ev;

#[path = "live.rs"]
mod live;

#[cfg(test)]
#[path = "order_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "order_synth.rs"]
mod synth;
