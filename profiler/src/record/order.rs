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

use crate::format::{self, tag, AllocKind, Cursor, DecodeError, FreedBlock};
use live::{Block, LiveBlocks};
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::VecDeque;

/// One event of a pass, decoded from a thread buffer.
#[derive(Debug, Clone, Copy)]
struct Ev {
    /// Sort key: sequence number × 4, + 1 for frees, + 2 for the other events: frees that read
    /// `S` without advancing the counter go before the event (or timeline sample, which takes
    /// its number the same way) that took `S` (`record::seq`'s invariant).
    key: u64,
    tid: u32,
    /// Where the records attached to it (`EVENT_FRAMES`, `EVENT_RETURNS`) start in
    /// [`Orderer::attached`] ([`NO_FRAMES`]: none).
    frames: u32,
    what: What,
}

/// How many events ahead of the one being written a free's live-block slot is prefetched.
const PREFETCH_AHEAD: usize = 8;

/// [`Ev::frames`] of an event without frame addresses.
const NO_FRAMES: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
enum What {
    Alloc {
        addr: u64,
        size: u64,
        stack: u64,
        kind: AllocKind,
        align: u64,
    },
    Free {
        addr: u64,
    },
    /// The free half of a realloc; the allocation half follows on the same thread.
    ReallocFree {
        addr: u64,
    },
    ReallocAlloc {
        addr: u64,
        size: u64,
        stack: u64,
        kind: AllocKind,
    },
}

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
    /// Events numbered at or above the last watermark, waiting for the next pass.
    waiting: Vec<Ev>,
    /// Timeline samples not written yet, in order of their numbers (samples are few: they are
    /// merged into the events as those are written, so the events of one thread need no sort).
    samples: VecDeque<PendingSample>,
    /// Live blocks by address.
    live: LiveBlocks,
    /// Message records from the threads, for the pass's meta chunk.
    pub messages: Vec<u8>,
    /// Records attached to waiting events (escape mode), as written by the recorder: at an
    /// event's [`Ev::frames`], their length (u32, little-endian), then their bytes.
    attached: Vec<u8>,
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
    since_watermark: u32,
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
    }

    /// Decodes a buffer's records (the hot part of the writer: no allocation per event).
    fn take_events(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> Result<(), DecodeError> {
        let mut c = Cursor::new(bytes);
        let (mut tid, mut seq) = (0u32, 0u64);
        let kind_of = |b: u8| AllocKind::from_u8(b).ok_or(DecodeError("unknown allocation kind"));
        while !c.is_empty() {
            let start = c.position();
            let t = c.u8()?;
            let what = match t {
                tag::CONTEXT => {
                    tid = c.uvarint()? as u32;
                    seq = c.uvarint()?;
                    continue;
                }
                tag::ALLOC => {
                    seq += c.uvarint()?;
                    What::Alloc {
                        addr: c.uvarint()?,
                        size: c.uvarint()?,
                        stack: c.uvarint()?,
                        kind: kind_of(c.u8()?)?,
                        align: c.uvarint()?,
                    }
                }
                tag::FREE => {
                    seq += c.uvarint()?;
                    self.waiting.push(Ev {
                        key: seq * 4 + 1,
                        tid,
                        frames: NO_FRAMES,
                        what: What::Free { addr: c.uvarint()? },
                    });
                    continue;
                }
                tag::REALLOC => {
                    let free_seq = seq + c.uvarint()?;
                    seq = free_seq + c.uvarint()?;
                    let old = c.uvarint()?;
                    self.waiting.push(Ev {
                        key: free_seq * 4 + 2,
                        tid,
                        frames: NO_FRAMES,
                        what: What::ReallocFree { addr: old },
                    });
                    What::ReallocAlloc {
                        addr: c.uvarint()?,
                        size: c.uvarint()?,
                        stack: c.uvarint()?,
                        kind: kind_of(c.u8()?)?,
                    }
                }
                tag::THREAD => {
                    let t = c.uvarint()? as u32;
                    let name = c.bytes()?;
                    let (lo, hi) = (c.uvarint()?, c.uvarint()?);
                    format::put_thread(out, t, name, lo, hi);
                    continue;
                }
                tag::THREAD_EXIT => {
                    let t = c.uvarint()? as u32;
                    format::put_thread_exit(out, t, c.uvarint()?);
                    continue;
                }
                tag::EVENT_FRAMES => {
                    // The frames of the event just before it in this buffer (the recorder
                    // reserves room for both at once); they travel with it.
                    c.uvarint()?;
                    for _ in 0..c.uvarint()? {
                        c.uvarint()?;
                    }
                    self.attach(&bytes[start..c.position()]);
                    continue;
                }
                tag::EVENT_RETURNS => {
                    c.bytes()?;
                    self.attach(&bytes[start..c.position()]);
                    continue;
                }
                tag::MESSAGE => {
                    // Into a meta chunk: readers that pass over events still see them.
                    let level = c.u8()?;
                    let text = String::from_utf8_lossy(c.bytes()?);
                    format::put_message(&mut self.messages, level, &text);
                    continue;
                }
                _ => return Err(DecodeError("unknown record in a thread buffer")),
            };
            self.waiting.push(Ev {
                key: seq * 4 + 2,
                tid,
                frames: NO_FRAMES,
                what,
            });
        }
        Ok(())
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
        // Stable: each buffer is in order already, and frees of one thread that read the same
        // number keep their order. With one thread (or threads taking turns) the whole pass
        // usually is in order, and is not sorted again. (A merge of the runs with kept buffers,
        // tried instead, made the writer fall behind a single-thread churn loop: 0.13 → 0.20 s
        // and 50 → 185 MB.)
        if !self.waiting.is_sorted_by_key(|e| e.key) {
            self.waiting.sort_by_key(|e| e.key);
        }
        let n = self.waiting.partition_point(|e| e.key < watermark * 4);
        for i in 0..n {
            // The live-block lookup of a free a few events ahead starts loading now.
            if let Some(ahead) = self.waiting.get(i + PREFETCH_AHEAD) {
                if let What::Free { addr } | What::ReallocFree { addr } = ahead.what {
                    self.live.prefetch(addr);
                }
            }
            let e = self.waiting[i];
            // A sample took its number S as an event does: after the frees that read S (key
            // 4 S + 1); no event has its key 4 S + 2.
            while self.samples.front().is_some_and(|s| s.seq * 4 + 2 < e.key) {
                self.write_sample(out);
            }
            self.write(e, out);
            if out.len() >= chunk_bytes {
                flush(out)?;
                // Each chunk names its thread again, so chunks decode on their own.
                self.tid = u32::MAX;
            }
        }
        while self.samples.front().is_some_and(|s| s.seq < watermark) {
            self.write_sample(out);
        }
        self.waiting.drain(..n);
        if self.since_watermark > 0 {
            // Every event of the stream so far is written.
            format::put_watermark(out, self.written_seq);
            self.since_watermark = 0;
        }
        self.keep_waiting_frames();
        Ok(())
    }

    /// Writes the first waiting sample.
    fn write_sample(&mut self, out: &mut Vec<u8>) {
        if let Some(s) = self.samples.pop_front() {
            format::put_sample(out, self.written_seq, s.t_ns, &s.values);
        }
    }

    /// Attaches a record to the event just taken: the recorder writes an event's frame records
    /// right after it, in the same buffer, so that event's attachments are the last ones.
    fn attach(&mut self, rec: &[u8]) {
        let Some(e) = self.waiting.last_mut() else {
            return;
        };
        if e.frames == NO_FRAMES {
            e.frames = self.attached.len() as u32;
            self.attached.extend_from_slice(&0u32.to_le_bytes());
        }
        let at = e.frames as usize;
        self.attached.extend_from_slice(rec);
        let len = (self.attached.len() - at - 4) as u32;
        self.attached[at..at + 4].copy_from_slice(&len.to_le_bytes());
    }

    /// The records attached to event `e`.
    fn attachments(&self, e: &Ev) -> &[u8] {
        if e.frames == NO_FRAMES {
            return &[];
        }
        let at = e.frames as usize;
        let mut len = [0u8; 4];
        len.copy_from_slice(&self.attached[at..at + 4]);
        &self.attached[at + 4..at + 4 + u32::from_le_bytes(len) as usize]
    }

    /// Drops the attachments of events already written, keeping the waiting ones'.
    fn keep_waiting_frames(&mut self) {
        if self.attached.is_empty() {
            return;
        }
        let mut kept = Vec::new();
        for i in 0..self.waiting.len() {
            let e = self.waiting[i];
            if e.frames == NO_FRAMES {
                continue;
            }
            let rec = self.attachments(&e);
            let at = kept.len() as u32;
            kept.extend_from_slice(&(rec.len() as u32).to_le_bytes());
            kept.extend_from_slice(rec);
            self.waiting[i].frames = at;
        }
        self.attached = kept;
    }

    /// Writes the records attached to event `e` after it.
    fn write_frames(&self, e: &Ev, out: &mut Vec<u8>) {
        out.extend_from_slice(self.attachments(e));
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

    fn write(&mut self, e: Ev, out: &mut Vec<u8>) {
        match e.what {
            What::Alloc {
                addr,
                size,
                stack,
                kind,
                align,
            } => {
                self.switch_to(e.tid, out);
                format::put_block_alloc(out, size, stack, kind, align);
                self.write_frames(&e, out);
                self.allocated(addr, size, e.tid);
                self.count_stack(stack);
                self.written_seq += 1;
            }
            What::Free { addr } => {
                self.switch_to(e.tid, out);
                let f = self.freed(addr, e.tid, false);
                format::put_block_free(out, self.named(f));
                self.write_frames(&e, out);
                self.written_seq += 1;
            }
            What::ReallocFree { addr } => {
                // Written with the allocation half, as one record numbered with it.
                let f = self.freed(addr, e.tid, true);
                self.realloc_freed.insert(e.tid, f);
                return;
            }
            What::ReallocAlloc {
                addr,
                size,
                stack,
                kind,
            } => {
                self.switch_to(e.tid, out);
                let f = self
                    .realloc_freed
                    .remove(&e.tid)
                    .unwrap_or(Freed::Unknown(0));
                format::put_block_realloc(out, self.named(f), size, stack, kind);
                self.write_frames(&e, out);
                self.allocated(addr, size, e.tid);
                self.count_stack(stack);
                self.written_seq += 2;
            }
        }
        // One watermark per pass (in `write_below`), none in between: version 2's stream is in
        // order, so readers need none to release events, and one every 4096 events broke the
        // repetition zstd finds in a churn loop (≈ 600 of its 750 bytes per MiB of events).
        self.since_watermark += 1;
    }
}

#[path = "live.rs"]
mod live;

#[cfg(test)]
#[path = "order_tests.rs"]
mod tests;
