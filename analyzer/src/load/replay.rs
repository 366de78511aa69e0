//! Replays allocation events in global sequence order and accumulates per-stack aggregates.
//!
//! A version-2 profile's events arrive in replay order and are applied as they come; a version-1
//! profile's go through [`Reorder`] first. Memory grows with the live blocks and the unique
//! stacks (and, for version 1, the events between two watermarks) — never with the length of the
//! recording.
//!
//! The per-stack breakdown at the global peak is computed in the same pass with a lazy snapshot:
//! a peak epoch increments whenever the live heap exceeds the previous peak; before a stack's live
//! bytes change, if it has not been touched in the current epoch, its current live bytes are its
//! bytes at the latest peak (nothing touched it since). At the end every stack is settled the
//! same way.
//!
//! A live block costs 8 bytes (its size, stack and thread; [`super::live`] keeps them): what a
//! sampled profile, block groups or time buckets also need of it (its weight, sequence number,
//! interval, time and variance) is kept in a second table only when one of them is asked for.
//! A free is a temporary when its block is the last its thread allocated: the same key and the
//! same thread (a block under that key allocated later by the same thread would be that last
//! allocation).

// Integer keys from the profile itself: a fast non-cryptographic hash (the replay's hot path).
use rustc_hash::FxHashMap as HashMap;

use super::buckets::{Born, BucketBuilder};
use super::live::{Block, Blocks, LiveTable};
use super::reorder::{Action, Pending, Reorder};
use extra::{Extra, Variance};

mod extra;
use crate::model::{BlockGroup, BlockGroups, Sample, StackStats, ThreadInfo, TimeBuckets, Totals};

/// Key of a [`BlockGroup`]: stack, allocating thread, allocation interval, and the freeing
/// thread and interval (`None`: live at the end).
type GroupKey = (u32, u32, u32, Option<(u32, u32)>);

/// What the replay keeps of a stack while it runs: the counters of its aggregates and its live
/// state, 104 bytes in one array. The public [`StackStats`] are made of them at the end (with
/// the live state beside them, a stack took 192 bytes in two arrays: the stacks an event
/// touches were three or four cache lines instead of two).
#[derive(Debug, Clone)]
struct Site {
    live_bytes: u64,
    live_blocks: u64,
    /// The peak epoch `peak_bytes` and `peak_blocks` were last brought up to date in.
    epoch_seen: u64,
    peak_bytes: u64,
    peak_blocks: u64,
    max_live_bytes: u64,
    max_live_blocks: u64,
    allocations: u64,
    allocated_bytes: u64,
    /// `u64::MAX` until the first allocation (then no larger than `max_block_bytes`).
    min_block_bytes: u64,
    max_block_bytes: u64,
    frees: u64,
    temporary_allocations: u64,
}

impl Default for Site {
    fn default() -> Self {
        Site {
            live_bytes: 0,
            live_blocks: 0,
            epoch_seen: 0,
            peak_bytes: 0,
            peak_blocks: 0,
            max_live_bytes: 0,
            max_live_blocks: 0,
            allocations: 0,
            allocated_bytes: 0,
            min_block_bytes: u64::MAX,
            max_block_bytes: 0,
            frees: 0,
            temporary_allocations: 0,
        }
    }
}

impl Site {
    /// Brings the stack's peak snapshot up to date before its live bytes change: untouched
    /// since the latest peak, its live bytes now are its bytes at that peak.
    #[inline(always)]
    fn touch(&mut self, epoch: u64) {
        if self.epoch_seen != epoch {
            self.peak_bytes = self.live_bytes;
            self.peak_blocks = self.live_blocks;
            self.epoch_seen = epoch;
        }
    }

    /// An allocation of `size_bytes` (the size asked for) was seen.
    #[inline(always)]
    fn sized(&mut self, size_bytes: u64) {
        self.min_block_bytes = self.min_block_bytes.min(size_bytes);
        self.max_block_bytes = self.max_block_bytes.max(size_bytes);
    }

    /// The public aggregates (leaks are added after).
    fn stats(&self) -> StackStats {
        StackStats {
            counts: crate::model::Counts {
                allocations: self.allocations,
                allocated_bytes: self.allocated_bytes,
                peak_bytes: self.peak_bytes,
                temporary_allocations: self.temporary_allocations,
                ..Default::default()
            },
            peak_blocks: self.peak_blocks,
            max_live_bytes: self.max_live_bytes,
            max_live_blocks: self.max_live_blocks,
            // 0 when no allocation was seen.
            min_block_bytes: match self.min_block_bytes > self.max_block_bytes {
                true => 0,
                false => self.min_block_bytes,
            },
            max_block_bytes: self.max_block_bytes,
            frees: self.frees,
            ..StackStats::default()
        }
    }
}

/// Sampled profiles: fractions of a stack's estimated allocations and bytes not yet counted,
/// carried so the integer totals stay within one unit of the estimate.
#[derive(Debug, Clone, Default)]
struct Carry {
    count: f64,
    bytes: f64,
}

/// Most allocations one sampled event may stand for (see [`Replay::weigh`]).
const MAX_SAMPLE_WEIGHT: f64 = (1u64 << 32) as f64;

/// The replay engine.
#[derive(Debug, Default)]
pub(crate) struct Replay {
    /// Events arrive in replay order (format version 2's ordered stream): applied as they come,
    /// with no reordering.
    in_order: bool,
    /// Nothing is kept beside a live block (every allocation recorded, neither block groups nor
    /// time buckets asked for): events take [`Replay::apply_alloc_lean`] and
    /// [`Replay::apply_free_lean`].
    lean: bool,
    /// Sampled profiles: variance of the allocated estimates, of the live heap now, and of the
    /// live heap at the peak.
    var_allocated: Variance,
    var_live: Variance,
    var_peak: Variance,
    /// Events waiting for their turn (version 1 only).
    reorder: Reorder,
    /// Highest sequence number released so far (for detecting late events).
    released_seq: Option<u64>,
    live: Blocks,
    /// The rest of each live block, only for sampled profiles, block groups and time buckets.
    extras: Option<LiveTable<Extra>>,
    live_bytes: u64,
    live_blocks: u64,
    /// Mean bytes between samples; 0 for a profile of every allocation.
    sampling_rate: u64,
    epoch: u64,
    /// Per stack slot.
    sites: Vec<Site>,
    /// Per stack slot, sampled profiles only.
    carries: Vec<Carry>,
    /// Recorded stack id of each entry of `sites`.
    stack_raw_ids: Vec<u64>,
    threads: Vec<ThreadInfo>,
    /// Per entry of `threads`, the key (address or block number) of its last allocation.
    last_alloc: Vec<Option<u64>>,
    thread_index: HashMap<u32, usize>,
    /// The last thread looked up and its index: consecutive events mostly share their thread.
    last_thread: Option<(u32, usize)>,
    samples: Vec<Sample>,
    totals: Totals,
    /// Block groups, when asked for.
    groups: Option<HashMap<GroupKey, BlockGroup>>,
    /// One past the largest sequence number applied.
    end_seq: u64,
    /// Per-stack activity over time, when asked for.
    buckets: Option<BucketBuilder>,
}

/// What the replay produced.
pub(crate) struct ReplayOutput {
    /// Sampled profiles: the estimates' standard errors.
    pub sampling_error: Option<crate::model::SamplingError>,
    pub stats: Vec<StackStats>,
    pub stack_raw_ids: Vec<u64>,
    pub threads: Vec<ThreadInfo>,
    pub samples: Vec<Sample>,
    pub totals: Totals,
    pub block_groups: Option<BlockGroups>,
    pub time_buckets: Option<TimeBuckets>,
}

impl Replay {
    /// A replay for a profile recorded with `sampling_rate` (mean bytes between samples, 0 when
    /// every allocation was recorded). A sampled allocation of `size` bytes stands for
    /// `1 / (1 − e^(−size/R))` allocations (Poisson byte sampling, as jemalloc, tcmalloc and Go
    /// weight their heap profiles).
    pub(crate) fn new(sampling_rate: u64) -> Self {
        Replay {
            sampling_rate,
            extras: (sampling_rate != 0).then(LiveTable::default),
            ..Replay::default()
        }
    }

    /// Events will arrive in replay order (a version-2 profile): apply each as it comes. Call
    /// it after [`Replay::with_block_groups`] and [`Replay::with_time_buckets`].
    /// `ring`: the slots of the ring of young blocks ([`super::live::ring_for`]).
    pub(crate) fn in_order(mut self, ring: usize) -> Self {
        self.in_order = true;
        // Version 2 names blocks by number: a ring finds the young ones (the rest of each block,
        // when kept, in a table of the same shape).
        self.live = Blocks::with_ring(ring);
        if self.extras.is_some() {
            // Its entries are several times a block's: the default ring bounds their memory.
            self.extras = Some(LiveTable::with_ring(super::live::RING));
        }
        // Sampling, block groups and time buckets each keep an `Extra` per block.
        self.lean = self.extras.is_none();
        self
    }

    /// Also groups blocks by stack, threads and timeline intervals ([`BlockGroups`]).
    pub(crate) fn with_block_groups(mut self) -> Self {
        self.groups = Some(HashMap::default());
        self.extras.get_or_insert_with(LiveTable::default);
        self
    }

    /// Adds a block that ended (freed at `free = (tid, seq)`) or is live at the end (`None`).
    fn group_block(&mut self, block: &Block, extra: &Extra, free: Option<(u32, u64)>) {
        let interval = self.samples.len() as u32;
        let Some(groups) = self.groups.as_mut() else {
            return;
        };
        let key = (
            block.stack,
            block.tid,
            extra.interval,
            free.map(|(tid, _)| (tid, interval)),
        );
        let g = groups.entry(key).or_insert_with(|| BlockGroup {
            stack: block.stack,
            alloc_tid: block.tid,
            alloc_interval: extra.interval,
            free: key.3,
            ..BlockGroup::default()
        });
        g.records += 1;
        g.allocations += extra.count;
        g.bytes = g.bytes.saturating_add(block.size_bytes);
        g.alloc_seq_sum += u128::from(extra.seq);
        if let Some((_, seq)) = free {
            g.free_seq_sum += u128::from(seq);
        }
    }

    /// Also cut the activity into at most `max_buckets` time buckets ([`TimeBuckets`]).
    pub(crate) fn with_time_buckets(mut self, max_buckets: usize) -> Self {
        self.buckets = Some(BucketBuilder::new(max_buckets));
        self.extras.get_or_insert_with(LiveTable::default);
        self
    }

    /// The allocations and bytes an allocation of `size_bytes` from `stack` stands for, and the
    /// variance it adds to the estimates.
    fn weigh(&mut self, stack: u32, size_bytes: u64) -> (u64, u64, Variance) {
        if self.sampling_rate == 0 {
            return (1, size_bytes, Variance::default());
        }
        let r = self.sampling_rate as f64;
        let size = size_bytes.max(1) as f64;
        // Capped so that counts summed over any profile stay within u64: only a damaged header
        // (an absurd rate) comes near it.
        let w = (1.0 / (1.0 - (-size / r).exp())).min(MAX_SAMPLE_WEIGHT);
        let var = Variance {
            bytes: (w * w - w) * (size_bytes as f64) * (size_bytes as f64),
            count: w * w - w,
        };
        self.var_allocated.add(var);
        let c = &mut self.carries[stack as usize];
        c.count += w;
        c.bytes += w * size_bytes as f64;
        let count = c.count.floor();
        let bytes = c.bytes.floor();
        c.count -= count;
        c.bytes -= bytes;
        (count as u64, bytes as u64, var)
    }

    /// Ends the open run: the next event starts a new one (at chunk boundaries and watermarks).
    pub(crate) fn seal(&mut self) {
        self.reorder.seal();
    }

    /// A new stack slot (the next index of `sites`) for the recorded stack id `raw`. The loader
    /// hands out slots in the order stacks first appear in allocation events.
    pub(crate) fn new_stack(&mut self, raw: u64) -> u32 {
        let i = self.sites.len() as u32;
        self.sites.push(Site::default());
        if self.sampling_rate != 0 {
            self.carries.push(Carry::default());
        }
        self.stack_raw_ids.push(raw);
        i
    }

    /// An allocation from the recorded stack id `raw`, its slot made on first sight (tests
    /// feed raw ids directly).
    #[cfg(test)]
    pub(crate) fn alloc_raw(&mut self, tid: u32, seq: u64, addr: u64, size: u64, raw: u64) {
        let slot = match self.stack_raw_ids.iter().position(|&r| r == raw) {
            Some(i) => i as u32,
            None => self.new_stack(raw),
        };
        self.alloc(tid, seq, addr, size, slot, false);
    }

    /// The index of thread `tid` in `threads`, if it has an entry.
    fn find_thread(&mut self, tid: u32) -> Option<usize> {
        if let Some((t, i)) = self.last_thread {
            if t == tid {
                return Some(i);
            }
        }
        let i = *self.thread_index.get(&tid)?;
        self.last_thread = Some((tid, i));
        Some(i)
    }

    /// The index of thread `tid` in `threads`, created on first sight.
    #[inline(always)]
    fn thread_slot(&mut self, tid: u32) -> usize {
        match self.last_thread {
            Some((t, i)) if t == tid => i,
            _ => self.thread_slot_slow(tid),
        }
    }

    /// [`Replay::thread_slot`] for a thread other than the last one's.
    #[inline(never)]
    fn thread_slot_slow(&mut self, tid: u32) -> usize {
        if let Some(i) = self.find_thread(tid) {
            return i;
        }
        self.threads.push(ThreadInfo {
            tid,
            ..ThreadInfo::default()
        });
        self.last_alloc.push(None);
        let i = self.threads.len() - 1;
        self.thread_index.insert(tid, i);
        self.last_thread = Some((tid, i));
        i
    }

    /// `block` from the live table, with its thread's id in place of its index.
    #[inline(always)]
    fn with_tid(&self, block: Block) -> Block {
        Block {
            tid: self.threads[block.tid as usize].tid,
            ..block
        }
    }

    /// The thread's entry, created on first sight.
    pub(crate) fn thread(&mut self, tid: u32) -> &mut ThreadInfo {
        let i = self.thread_slot(tid);
        &mut self.threads[i]
    }

    /// An allocation (or a realloc's allocation half) from stack slot `stack`.
    pub(crate) fn alloc(
        &mut self,
        tid: u32,
        seq: u64,
        addr: u64,
        size_bytes: u64,
        stack: u32,
        realloc: bool,
    ) {
        if self.lean {
            self.apply_alloc_lean(seq, tid, addr, size_bytes, stack, realloc);
        } else if self.in_order {
            self.apply_alloc(seq, tid, addr, size_bytes, stack, realloc);
        } else {
            let action = Action::Alloc {
                tid,
                addr,
                size_bytes,
                stack,
                realloc,
            };
            self.reorder.push(tid, seq, 1, action);
        }
    }

    /// A free (or a realloc's free half).
    pub(crate) fn free(&mut self, tid: u32, seq: u64, addr: u64, realloc: bool) {
        if self.lean {
            self.apply_free_lean(seq, tid, addr, realloc);
        } else if self.in_order {
            self.apply_free(seq, tid, addr, realloc);
        } else {
            let action = Action::Free { tid, addr, realloc };
            self.reorder.push(tid, seq, 1, action);
        }
    }

    /// A timeline sample.
    pub(crate) fn sample(&mut self, seq: u64, t_ns: u64, values: Vec<(u64, u64)>) {
        if self.in_order {
            self.apply_sample(seq, t_ns, values);
        } else {
            self.reorder
                .push(u32::MAX, seq, 0, Action::Sample { t_ns, values });
        }
    }

    /// Releases every pending entry with a sequence number below `seq`.
    pub(crate) fn watermark(&mut self, seq: u64) {
        self.seal();
        self.release(Some(seq));
    }

    /// Applies pending entries in replay order, those below `below` (all for `None`).
    fn release(&mut self, below: Option<u64>) {
        while let Some(item) = self.reorder.pop(below) {
            self.apply(item);
        }
    }

    /// Pending entries (for tests and memory accounting).
    #[cfg(test)]
    pub(crate) fn pending(&self) -> usize {
        self.reorder.pending()
    }

    /// Removes a live block standing for `count` allocations from the books (its bytes leave
    /// its stack and the heap); its stack's entry, for the caller's counts. The general path
    /// takes its variance out of the live estimate first.
    #[inline(always)]
    fn release_block(&mut self, block: &Block, count: u64) -> &mut Site {
        self.live_bytes = self.live_bytes.saturating_sub(block.size_bytes);
        self.live_blocks = self.live_blocks.saturating_sub(count);
        let s = &mut self.sites[block.stack as usize];
        s.touch(self.epoch);
        s.live_bytes = s.live_bytes.saturating_sub(block.size_bytes);
        s.live_blocks = s.live_blocks.saturating_sub(count);
        s
    }

    /// The rest of the live block at `addr`, taken out of its table.
    fn take_extra(&mut self, addr: u64) -> Extra {
        self.extras
            .as_mut()
            .and_then(|m| m.remove(addr))
            .unwrap_or(Extra::EXACT)
    }

    fn apply(&mut self, p: Pending) {
        match p.action {
            Action::Sample { t_ns, values } => self.apply_sample(p.seq, t_ns, values),
            Action::Alloc {
                tid,
                addr,
                size_bytes,
                stack,
                realloc,
            } => self.apply_alloc(p.seq, tid, addr, size_bytes, stack, realloc),
            Action::Free { tid, addr, realloc } => self.apply_free(p.seq, tid, addr, realloc),
        }
    }

    /// Bookkeeping of every event's sequence number.
    fn sequenced(&mut self, seq: u64) {
        match self.released_seq {
            Some(r) if seq < r => self.totals.late_events += 1,
            _ => self.released_seq = Some(seq),
        }
        self.end_seq = self.end_seq.max(seq + 1);
    }

    fn apply_sample(&mut self, seq: u64, t_ns: u64, values: Vec<(u64, u64)>) {
        if let Some(b) = self.buckets.as_mut() {
            b.sample(seq, t_ns);
        }
        self.samples.push(Sample {
            t_ns,
            seq,
            values,
            live_bytes: self.live_bytes,
            live_blocks: self.live_blocks,
        })
    }

    fn apply_alloc(
        &mut self,
        seq: u64,
        tid: u32,
        addr: u64,
        size_bytes: u64,
        stack: u32,
        realloc: bool,
    ) {
        self.sequenced(seq);
        self.sites[stack as usize].sized(size_bytes);
        let request_bytes = size_bytes;
        let (count, size_bytes, var) = self.weigh(stack, size_bytes);
        self.var_live.add(var);
        let ti = self.thread_slot(tid);
        // The live table keeps the thread's index (see `Blocks`).
        let block = Block {
            size_bytes,
            stack,
            tid: ti as u32,
        };
        let old = self.live.insert(addr, block).map(|b| self.with_tid(b));
        let old_extra = match self.extras.is_some() {
            false => Extra::EXACT,
            true => {
                let born = match self.buckets.as_mut() {
                    Some(b) => b.alloc(seq, stack, tid, count, size_bytes, request_bytes),
                    None => Born::default(),
                };
                let extra = Extra {
                    count,
                    seq,
                    interval: self.samples.len() as u32,
                    born,
                    var,
                };
                let extras = self.extras.as_mut().expect("checked");
                extras.insert(addr, extra).unwrap_or(Extra::EXACT)
            }
        };
        if let Some(old) = old {
            // The address was handed out again without a recorded free.
            self.totals.reused_live_addresses += 1;
            self.var_live.sub(old_extra.var);
            self.release_block(&old, old_extra.count);
            self.group_block(&old, &old_extra, Some((tid, seq)));
            if let Some(b) = self.buckets.as_mut() {
                b.free(
                    old_extra.born,
                    None,
                    old.stack,
                    old.tid,
                    old_extra.count,
                    old.size_bytes,
                    false,
                );
            }
        }
        self.count_alloc(seq, ti, stack, size_bytes, count, realloc);
        self.last_alloc[ti] = Some(addr);
    }

    /// Counts an allocation of `size_bytes` standing for `count` allocations: in its stack's
    /// live bytes and aggregates, the totals and the peak, its thread's (both paths).
    #[inline(always)]
    fn count_alloc(
        &mut self,
        seq: u64,
        ti: usize,
        stack: u32,
        size_bytes: u64,
        count: u64,
        realloc: bool,
    ) {
        let s = &mut self.sites[stack as usize];
        s.touch(self.epoch);
        s.live_bytes = s.live_bytes.saturating_add(size_bytes);
        s.live_blocks += count;
        // `>=`: the latest of equal maxima, as DHAT keeps it.
        if s.live_bytes >= s.max_live_bytes {
            s.max_live_bytes = s.live_bytes;
            s.max_live_blocks = s.live_blocks;
        }
        s.allocations += count;
        s.allocated_bytes = s.allocated_bytes.saturating_add(size_bytes);
        let totals = &mut self.totals;
        totals.counts.allocations += count;
        if realloc {
            totals.reallocs += count;
        }
        totals.counts.allocated_bytes = totals.counts.allocated_bytes.saturating_add(size_bytes);
        self.live_bytes = self.live_bytes.saturating_add(size_bytes);
        self.live_blocks += count;
        if self.live_bytes > totals.counts.peak_bytes {
            totals.counts.peak_bytes = self.live_bytes;
            totals.peak_blocks = self.live_blocks;
            // Zero in a profile of every allocation.
            self.var_peak = self.var_live;
            totals.peak_seq = seq;
            self.epoch += 1;
        }
        let t = &mut self.threads[ti];
        t.allocations += count;
        t.allocated_bytes = t.allocated_bytes.saturating_add(size_bytes);
    }

    /// [`Replay::apply_alloc`] when nothing is kept beside a block ([`Replay::lean`]): each block
    /// stands for one allocation and carries no variance, group or bucket, so the same effects
    /// take a third of the branches (the replay is the analyzer's busiest thread).
    #[inline]
    fn apply_alloc_lean(
        &mut self,
        seq: u64,
        tid: u32,
        addr: u64,
        size_bytes: u64,
        stack: u32,
        realloc: bool,
    ) {
        self.sequenced(seq);
        let ti = self.thread_slot(tid);
        let block = Block {
            size_bytes,
            stack,
            tid: ti as u32,
        };
        if let Some(old) = self.live.insert(addr, block) {
            // The address was handed out again without a recorded free.
            self.totals.reused_live_addresses += 1;
            self.release_block(&old, 1);
        }
        self.sites[stack as usize].sized(size_bytes);
        self.count_alloc(seq, ti, stack, size_bytes, 1, realloc);
        self.last_alloc[ti] = Some(addr);
    }

    /// [`Replay::apply_free`] when nothing is kept beside a block ([`Replay::lean`]).
    #[inline]
    fn apply_free_lean(&mut self, seq: u64, tid: u32, addr: u64, realloc: bool) {
        self.sequenced(seq);
        // The table's block names its thread by index.
        let Some(block) = self.live.remove(addr) else {
            self.totals.unmatched_frees += 1;
            self.totals.frees += u64::from(!realloc);
            return;
        };
        let ti = block.tid as usize;
        // A temporary: freed by the thread that allocated it, its last allocation (realloc's
        // free half never is: see `apply_free`). The block's thread index is that thread's.
        let temporary =
            !realloc && self.threads[ti].tid == tid && self.last_alloc[ti] == Some(addr);
        let s = self.release_block(&block, 1);
        s.frees += 1;
        s.temporary_allocations += u64::from(temporary);
        self.totals.frees += u64::from(!realloc);
        self.totals.counts.temporary_allocations += u64::from(temporary);
    }

    fn apply_free(&mut self, seq: u64, tid: u32, addr: u64, realloc: bool) {
        self.sequenced(seq);
        let Some(block) = self.live.remove(addr).map(|b| self.with_tid(b)) else {
            self.totals.unmatched_frees += 1;
            if !realloc {
                self.totals.frees += 1;
            }
            return;
        };
        let extra = self.take_extra(addr);
        self.var_live.sub(extra.var);
        self.release_block(&block, extra.count);
        self.group_block(&block, &extra, Some((tid, seq)));
        if !realloc {
            self.totals.frees += extra.count;
        }
        self.sites[block.stack as usize].frees += extra.count;
        // A block resized by realloc was not discarded: not a temporary (counting it would flag
        // every growing Vec as churn).
        let temporary = !realloc
            && block.tid == tid
            && self
                .find_thread(tid)
                .is_some_and(|i| self.last_alloc[i] == Some(addr));
        if temporary {
            self.sites[block.stack as usize].temporary_allocations += extra.count;
            self.totals.counts.temporary_allocations += extra.count;
        }
        if let Some(b) = self.buckets.as_mut() {
            b.free(
                extra.born,
                Some(seq),
                block.stack,
                block.tid,
                extra.count,
                block.size_bytes,
                temporary,
            );
        }
    }

    /// Releases everything still pending and settles leaks and the peak breakdown.
    pub(crate) fn finish(mut self) -> ReplayOutput {
        self.seal();
        self.release(None);
        let mut stats: Vec<StackStats> = (self.sites.iter_mut())
            .map(|s| {
                s.touch(self.epoch);
                s.stats()
            })
            .collect();
        let extra_of = |extras: &Option<LiveTable<Extra>>, addr: &u64| {
            extras
                .as_ref()
                .and_then(|m| m.get(*addr).copied())
                .unwrap_or(Extra::EXACT)
        };
        if self.groups.is_some() {
            let live: Vec<(Block, Extra)> = self
                .live
                .iter()
                .map(|(addr, b)| (self.with_tid(b), extra_of(&self.extras, &addr)))
                .collect();
            for (block, extra) in &live {
                self.group_block(block, extra, None);
            }
        }
        for (addr, block) in self.live.iter() {
            let block = self.with_tid(block);
            let extra = extra_of(&self.extras, &addr);
            let st = &mut stats[block.stack as usize];
            st.counts.leaked_allocations += extra.count;
            st.counts.leaked_bytes = st.counts.leaked_bytes.saturating_add(block.size_bytes);
            self.totals.counts.leaked_allocations += extra.count;
            self.totals.counts.leaked_bytes = self
                .totals
                .counts
                .leaked_bytes
                .saturating_add(block.size_bytes);
            if let Some(b) = self.buckets.as_mut() {
                b.leaked(extra.born, block.stack, extra.count, block.size_bytes);
            }
        }
        let sampling_error = (self.sampling_rate != 0).then(|| crate::model::SamplingError {
            allocations: self.var_allocated.count.sqrt(),
            allocated_bytes: self.var_allocated.bytes.sqrt(),
            peak_bytes: self.var_peak.bytes.sqrt(),
            leaked_bytes: self.var_live.bytes.sqrt(),
            leaked_allocations: self.var_live.count.sqrt(),
        });
        ReplayOutput {
            sampling_error,
            stats,
            stack_raw_ids: self.stack_raw_ids,
            threads: self.threads,
            samples: self.samples,
            totals: self.totals,
            block_groups: self.groups.map(|g| {
                // In key order: the same whatever order the live table lists blocks in.
                let mut groups: Vec<BlockGroup> = g.into_values().collect();
                groups.sort_unstable_by_key(|g| (g.stack, g.alloc_tid, g.alloc_interval, g.free));
                BlockGroups {
                    groups,
                    end_seq: self.end_seq,
                }
            }),
            time_buckets: self.buckets.map(BucketBuilder::finish),
        }
    }
}

#[cfg(test)]
mod tests;
