//! Replays allocation events in global sequence order and accumulates per-stack aggregates.
//!
//! Events reach the file in per-thread batches, so their sequence numbers are not monotonic in the
//! file. Pending events wait until a watermark `W` releases every pending event below `W` (the
//! recorder promises nothing below `W` is still to come); the rest is released at the end. Memory
//! therefore grows with the events between two watermarks, the live blocks and the unique stacks —
//! never with the length of the recording.
//!
//! A thread's batch is already in sequence order, so pending events are kept as sorted *runs*
//! (one per batch; a new run starts whenever the order breaks) and merged through a min-heap of run
//! heads. The heap holds one entry per run, not per event: with a million events between two
//! watermarks this is what keeps the replay fast.
//!
//! The per-stack breakdown at the global peak is computed in the same pass with a lazy snapshot:
//! a peak epoch increments whenever the live heap exceeds the previous peak; before a stack's live
//! bytes change, if it has not been touched in the current epoch, its current live bytes are its
//! bytes at the latest peak (nothing touched it since). At the end every stack is settled the
//! same way.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

// Integer keys from the profile itself: a fast non-cryptographic hash (the replay's hot path).
use rustc_hash::FxHashMap as HashMap;

use super::buckets::{Born, BucketBuilder};
use crate::model::{BlockGroup, BlockGroups, Sample, StackStats, ThreadInfo, TimeBuckets, Totals};

/// What a pending entry does when released.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    /// A timeline sample; sorts before the events with its own sequence number.
    Sample { t_ns: u64, values: Vec<(u64, u64)> },
    /// Allocation (or a realloc's allocation half).
    Alloc {
        tid: u32,
        addr: u64,
        size_bytes: u64,
        stack: u32,
        realloc: bool,
    },
    /// Free (or a realloc's free half).
    Free { tid: u32, addr: u64, realloc: bool },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Pending {
    seq: u64,
    /// 0 for samples, 1 for events: a sample with sequence S precedes the event numbered S.
    class: u8,
    /// Arrival order, so equal keys (damaged data) still replay deterministically.
    arrival: u64,
    action: Action,
}

/// Replay order: sequence number, then samples before events, then arrival.
type Key = (u64, u8, u64);

impl Pending {
    fn key(&self) -> Key {
        (self.seq, self.class, self.arrival)
    }
}

/// A run of pending entries in replay order.
#[derive(Debug, Default)]
struct Run {
    items: VecDeque<Pending>,
}

/// The run being appended to.
#[derive(Debug, Clone, Copy)]
struct OpenRun {
    run: usize,
    tid: u32,
    last: Key,
}

/// A live block.
#[derive(Debug, Clone, Copy)]
struct Block {
    /// Requested bytes (in a sampled profile: the estimated bytes this sample stands for).
    size_bytes: u64,
    /// Allocations this block stands for: 1, or its sampling weight in a sampled profile.
    count: u64,
    seq: u64,
    stack: u32,
    tid: u32,
    /// Timeline interval of the allocation (samples replayed before it).
    interval: u32,
    /// When it was allocated (kept for the time buckets).
    born: Born,
    /// Sampled profiles: the variance this block adds to the estimates of live bytes and blocks
    /// (0 in exact mode).
    var: Variance,
}

/// Variances of a sampled estimate (bytes, count), Horvitz–Thompson: a block of `s` bytes
/// sampled with probability `p` (weight `w = 1/p`) adds `(1−p)/p² = w² − w` times `s²` and `1`.
#[derive(Debug, Clone, Copy, Default)]
struct Variance {
    bytes: f64,
    count: f64,
}

impl Variance {
    fn add(&mut self, o: Variance) {
        self.bytes += o.bytes;
        self.count += o.count;
    }
    fn sub(&mut self, o: Variance) {
        self.bytes = (self.bytes - o.bytes).max(0.0);
        self.count = (self.count - o.count).max(0.0);
    }
}

/// Key of a [`BlockGroup`]: stack, allocating thread, allocation interval, and the freeing
/// thread and interval (`None`: live at the end).
type GroupKey = (u32, u32, u32, Option<(u32, u32)>);

/// Replay-only state of a stack next to its public aggregates.
#[derive(Debug, Clone, Default)]
struct StackLive {
    live_bytes: u64,
    live_blocks: u64,
    /// An allocation was seen (the block size range is set).
    sized: bool,
    epoch_seen: u64,
    /// Fractions of estimated allocations and bytes not yet counted (sampled profiles), carried
    /// so the integer totals stay within one unit of the estimate.
    carry_count: f64,
    carry_bytes: f64,
}

/// Most allocations one sampled event may stand for (see [`Replay::weigh`]).
const MAX_SAMPLE_WEIGHT: f64 = (1u64 << 32) as f64;

/// The replay engine.
#[derive(Debug, Default)]
pub(crate) struct Replay {
    /// Events arrive in replay order (format version 2's ordered stream): applied as they come,
    /// with no reordering.
    in_order: bool,
    /// Sampled profiles: variance of the allocated estimates, of the live heap now, and of the
    /// live heap at the peak.
    var_allocated: Variance,
    var_live: Variance,
    var_peak: Variance,
    /// Heads of the pending runs: `(key of the head event, run index)`.
    heap: BinaryHeap<Reverse<(Key, usize)>>,
    /// Pending runs (a slab; emptied runs are recycled through `free_runs`).
    runs: Vec<Run>,
    free_runs: Vec<usize>,
    /// The run events are appended to, while the batch stays in order.
    open: Option<OpenRun>,
    pending: usize,
    arrival: u64,
    /// Highest sequence number released so far (for detecting late events).
    released_seq: Option<u64>,
    live: HashMap<u64, Block>,
    /// Per thread, the sequence number of its last allocation.
    last_alloc_seq: HashMap<u32, u64>,
    live_bytes: u64,
    live_blocks: u64,
    /// Mean bytes between samples; 0 for a profile of every allocation.
    sampling_rate: u64,
    epoch: u64,
    stats: Vec<StackStats>,
    stack_live: Vec<StackLive>,
    /// Recorded stack id → index in `stats`.
    stack_index: HashMap<u64, u32>,
    /// Recorded stack id of each entry of `stats`.
    stack_raw_ids: Vec<u64>,
    threads: Vec<ThreadInfo>,
    thread_index: HashMap<u32, usize>,
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
            ..Replay::default()
        }
    }

    /// Events will arrive in replay order (a version-2 profile): apply each as it comes.
    pub(crate) fn in_order(mut self) -> Self {
        self.in_order = true;
        self
    }

    /// Also groups blocks by stack, threads and timeline intervals ([`BlockGroups`]).
    pub(crate) fn with_block_groups(mut self) -> Self {
        self.groups = Some(HashMap::default());
        self
    }

    /// Adds a block that ended (freed at `free = (tid, seq)`) or is live at the end (`None`).
    fn group_block(&mut self, block: &Block, free: Option<(u32, u64)>) {
        let interval = self.samples.len() as u32;
        let Some(groups) = self.groups.as_mut() else {
            return;
        };
        let key = (
            block.stack,
            block.tid,
            block.interval,
            free.map(|(tid, _)| (tid, interval)),
        );
        let g = groups.entry(key).or_insert_with(|| BlockGroup {
            stack: block.stack,
            alloc_tid: block.tid,
            alloc_interval: block.interval,
            free: key.3,
            ..BlockGroup::default()
        });
        g.records += 1;
        g.allocations += block.count;
        g.bytes = g.bytes.saturating_add(block.size_bytes);
        g.alloc_seq_sum += u128::from(block.seq);
        if let Some((_, seq)) = free {
            g.free_seq_sum += u128::from(seq);
        }
    }

    /// Also cut the activity into at most `max_buckets` time buckets ([`TimeBuckets`]).
    pub(crate) fn with_time_buckets(mut self, max_buckets: usize) -> Self {
        self.buckets = Some(BucketBuilder::new(max_buckets));
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
        let s = &mut self.stack_live[stack as usize];
        s.carry_count += w;
        s.carry_bytes += w * size_bytes as f64;
        let count = s.carry_count.floor();
        let bytes = s.carry_bytes.floor();
        s.carry_count -= count;
        s.carry_bytes -= bytes;
        (count as u64, bytes as u64, var)
    }

    /// Appends an entry of thread `tid` (`u32::MAX` for samples, which always get a run of their
    /// own) to the open run when it keeps the run sorted, else to a new run.
    fn push(&mut self, tid: u32, seq: u64, class: u8, action: Action) {
        self.arrival += 1;
        let item = Pending {
            seq,
            class,
            arrival: self.arrival,
            action,
        };
        if self.in_order {
            self.apply(item);
            return;
        }
        let key = item.key();
        self.pending += 1;
        if let Some(open) = self.open.as_mut() {
            if open.tid == tid && class == 1 && key > open.last {
                open.last = key;
                self.runs[open.run].items.push_back(item);
                return;
            }
        }
        let run = match self.free_runs.pop() {
            Some(r) => r,
            None => {
                self.runs.push(Run::default());
                self.runs.len() - 1
            }
        };
        self.runs[run].items.push_back(item);
        self.heap.push(Reverse((key, run)));
        self.open = (class == 1).then_some(OpenRun {
            run,
            tid,
            last: key,
        });
    }

    /// Ends the open run: the next event starts a new one (at chunk boundaries and watermarks).
    pub(crate) fn seal(&mut self) {
        self.open = None;
    }

    fn stack_slot(&mut self, raw: u64) -> u32 {
        if let Some(&i) = self.stack_index.get(&raw) {
            return i;
        }
        let i = self.stats.len() as u32;
        self.stats.push(StackStats::default());
        self.stack_live.push(StackLive::default());
        self.stack_raw_ids.push(raw);
        self.stack_index.insert(raw, i);
        i
    }

    /// The thread's entry, created on first sight.
    pub(crate) fn thread(&mut self, tid: u32) -> &mut ThreadInfo {
        let i = *self.thread_index.entry(tid).or_insert_with(|| {
            self.threads.push(ThreadInfo {
                tid,
                ..ThreadInfo::default()
            });
            self.threads.len() - 1
        });
        &mut self.threads[i]
    }

    /// Queues an allocation.
    pub(crate) fn alloc(&mut self, tid: u32, seq: u64, addr: u64, size_bytes: u64, stack: u64) {
        let stack = self.stack_slot(stack);
        self.push(
            tid,
            seq,
            1,
            Action::Alloc {
                tid,
                addr,
                size_bytes,
                stack,
                realloc: false,
            },
        );
    }

    /// Queues a free.
    pub(crate) fn free(&mut self, tid: u32, seq: u64, addr: u64) {
        self.push(
            tid,
            seq,
            1,
            Action::Free {
                tid,
                addr,
                realloc: false,
            },
        );
    }

    /// Queues both halves of a realloc.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn realloc(
        &mut self,
        tid: u32,
        free_seq: u64,
        seq: u64,
        old_addr: u64,
        new_addr: u64,
        size_bytes: u64,
        stack: u64,
    ) {
        let stack = self.stack_slot(stack);
        self.push(
            tid,
            free_seq,
            1,
            Action::Free {
                tid,
                addr: old_addr,
                realloc: true,
            },
        );
        self.push(
            tid,
            seq,
            1,
            Action::Alloc {
                tid,
                addr: new_addr,
                size_bytes,
                stack,
                realloc: true,
            },
        );
    }

    /// Queues a timeline sample.
    pub(crate) fn sample(&mut self, seq: u64, t_ns: u64, values: Vec<(u64, u64)>) {
        self.push(u32::MAX, seq, 0, Action::Sample { t_ns, values });
    }

    /// Releases every pending entry with a sequence number below `seq`.
    pub(crate) fn watermark(&mut self, seq: u64) {
        self.seal();
        self.release(|key| key.0 < seq);
    }

    /// Applies pending entries in replay order while `take(head key)` holds.
    fn release(&mut self, take: impl Fn(Key) -> bool) {
        while let Some(&Reverse((key, run))) = self.heap.peek() {
            if !take(key) {
                break;
            }
            self.heap.pop();
            let r = &mut self.runs[run];
            let Some(item) = r.items.pop_front() else {
                continue;
            };
            if let Some(head) = r.items.front() {
                self.heap.push(Reverse((head.key(), run)));
            } else {
                self.free_runs.push(run);
            }
            self.pending -= 1;
            self.apply(item);
        }
    }

    /// Pending entries (for tests and memory accounting).
    #[cfg(test)]
    pub(crate) fn pending(&self) -> usize {
        self.pending
    }

    /// Brings a stack's peak snapshot up to date before its live bytes change.
    fn touch(&mut self, stack: u32) {
        let s = &mut self.stack_live[stack as usize];
        if s.epoch_seen != self.epoch {
            let st = &mut self.stats[stack as usize];
            st.counts.peak_bytes = s.live_bytes;
            st.peak_blocks = s.live_blocks;
            s.epoch_seen = self.epoch;
        }
    }

    /// Removes a live block from the books (its bytes leave its stack and the heap).
    fn release_block(&mut self, block: &Block) {
        self.var_live.sub(block.var);
        self.touch(block.stack);
        let s = &mut self.stack_live[block.stack as usize];
        s.live_bytes = s.live_bytes.saturating_sub(block.size_bytes);
        s.live_blocks = s.live_blocks.saturating_sub(block.count);
        self.live_bytes = self.live_bytes.saturating_sub(block.size_bytes);
        self.live_blocks = self.live_blocks.saturating_sub(block.count);
    }

    fn apply(&mut self, p: Pending) {
        if p.class == 1 {
            match self.released_seq {
                Some(r) if p.seq < r => self.totals.late_events += 1,
                _ => self.released_seq = Some(p.seq),
            }
            self.end_seq = self.end_seq.max(p.seq + 1);
        }
        match p.action {
            Action::Sample { t_ns, values } => {
                if let Some(b) = self.buckets.as_mut() {
                    b.sample(p.seq, t_ns);
                }
                self.samples.push(Sample {
                    t_ns,
                    seq: p.seq,
                    values,
                    live_bytes: self.live_bytes,
                    live_blocks: self.live_blocks,
                })
            }
            Action::Alloc {
                tid,
                addr,
                size_bytes,
                stack,
                realloc,
            } => {
                let st = &mut self.stats[stack as usize];
                let live = &mut self.stack_live[stack as usize];
                if !live.sized || size_bytes < st.min_block_bytes {
                    st.min_block_bytes = size_bytes;
                }
                live.sized = true;
                st.max_block_bytes = st.max_block_bytes.max(size_bytes);
                let request_bytes = size_bytes;
                let (count, size_bytes, var) = self.weigh(stack, size_bytes);
                self.var_live.add(var);
                let born = match self.buckets.as_mut() {
                    Some(b) => b.alloc(p.seq, stack, tid, count, size_bytes, request_bytes),
                    None => Born::default(),
                };
                let block = Block {
                    size_bytes,
                    count,
                    seq: p.seq,
                    stack,
                    tid,
                    interval: self.samples.len() as u32,
                    born,
                    var,
                };
                if let Some(old) = self.live.insert(addr, block) {
                    // The address was handed out again without a recorded free.
                    self.totals.reused_live_addresses += 1;
                    self.release_block(&old);
                    self.group_block(&old, Some((tid, p.seq)));
                    if let Some(b) = self.buckets.as_mut() {
                        b.free(
                            old.born,
                            None,
                            old.stack,
                            old.tid,
                            old.count,
                            old.size_bytes,
                            false,
                        );
                    }
                }
                self.touch(stack);
                let live = &mut self.stack_live[stack as usize];
                live.live_bytes = live.live_bytes.saturating_add(size_bytes);
                live.live_blocks += count;
                let (live_bytes, live_blocks) = (live.live_bytes, live.live_blocks);
                let st = &mut self.stats[stack as usize];
                // `>=`: the latest of equal maxima, as DHAT keeps it.
                if live_bytes >= st.max_live_bytes {
                    st.max_live_bytes = live_bytes;
                    st.max_live_blocks = live_blocks;
                }
                st.counts.allocations += count;
                st.counts.allocated_bytes = st.counts.allocated_bytes.saturating_add(size_bytes);
                self.totals.counts.allocations += count;
                if realloc {
                    self.totals.reallocs += count;
                }
                self.totals.counts.allocated_bytes = self
                    .totals
                    .counts
                    .allocated_bytes
                    .saturating_add(size_bytes);
                self.live_bytes = self.live_bytes.saturating_add(size_bytes);
                self.live_blocks += count;
                if self.live_bytes > self.totals.counts.peak_bytes {
                    self.totals.counts.peak_bytes = self.live_bytes;
                    self.totals.peak_blocks = self.live_blocks;
                    self.var_peak = self.var_live;
                    self.totals.peak_seq = p.seq;
                    self.epoch += 1;
                }
                self.last_alloc_seq.insert(tid, p.seq);
                let t = self.thread(tid);
                t.allocations += count;
                t.allocated_bytes = t.allocated_bytes.saturating_add(size_bytes);
            }
            Action::Free { tid, addr, realloc } => match self.live.remove(&addr) {
                None => {
                    self.totals.unmatched_frees += 1;
                    if !realloc {
                        self.totals.frees += 1;
                    }
                }
                Some(block) => {
                    self.release_block(&block);
                    self.group_block(&block, Some((tid, p.seq)));
                    if !realloc {
                        self.totals.frees += block.count;
                    }
                    let st = &mut self.stats[block.stack as usize];
                    st.frees += block.count;
                    // A block resized by realloc was not discarded: not a temporary (counting
                    // it would flag every growing Vec as churn).
                    let temporary = !realloc
                        && block.tid == tid
                        && self.last_alloc_seq.get(&tid) == Some(&block.seq);
                    if temporary {
                        st.counts.temporary_allocations += block.count;
                        self.totals.counts.temporary_allocations += block.count;
                    }
                    if let Some(b) = self.buckets.as_mut() {
                        b.free(
                            block.born,
                            Some(p.seq),
                            block.stack,
                            block.tid,
                            block.count,
                            block.size_bytes,
                            temporary,
                        );
                    }
                }
            },
        }
    }

    /// Releases everything still pending and settles leaks and the peak breakdown.
    pub(crate) fn finish(mut self) -> ReplayOutput {
        self.seal();
        self.release(|_| true);
        for i in 0..self.stats.len() {
            self.touch(i as u32);
        }
        if self.groups.is_some() {
            let live: Vec<Block> = self.live.values().copied().collect();
            for block in &live {
                self.group_block(block, None);
            }
        }
        for block in self.live.values() {
            let st = &mut self.stats[block.stack as usize];
            st.counts.leaked_allocations += block.count;
            st.counts.leaked_bytes = st.counts.leaked_bytes.saturating_add(block.size_bytes);
            self.totals.counts.leaked_allocations += block.count;
            self.totals.counts.leaked_bytes = self
                .totals
                .counts
                .leaked_bytes
                .saturating_add(block.size_bytes);
            if let Some(b) = self.buckets.as_mut() {
                b.leaked(block.born, block.stack, block.count, block.size_bytes);
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
            stats: self.stats,
            stack_raw_ids: self.stack_raw_ids,
            threads: self.threads,
            samples: self.samples,
            totals: self.totals,
            block_groups: self.groups.map(|g| BlockGroups {
                groups: g.into_values().collect(),
                end_seq: self.end_seq,
            }),
            time_buckets: self.buckets.map(BucketBuilder::finish),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_breakdown_is_taken_at_the_peak_instant() {
        let mut r = Replay::default();
        // stack 1: +100 (seq 0), stack 2: +50 (seq 1) → peak 150 = {1:100, 2:50}
        r.alloc(1, 0, 0xa, 100, 1);
        r.alloc(1, 1, 0xb, 50, 2);
        // free a (seq 2), then stack 2 grows to 140 (< 150): peak unchanged
        r.free(1, 2, 0xa);
        r.alloc(1, 3, 0xc, 90, 2);
        let out = r.finish();
        assert_eq!(out.totals.counts.peak_bytes, 150);
        assert_eq!(out.stats[0].counts.peak_bytes, 100);
        assert_eq!(out.stats[1].counts.peak_bytes, 50);
        assert_eq!(out.stats[1].counts.leaked_bytes, 140);
        assert_eq!((out.stats[0].peak_blocks, out.stats[1].peak_blocks), (1, 1));
        // Stack 2's own maximum is after the peak: 140 bytes in 2 blocks.
        assert_eq!(
            (out.stats[1].max_live_bytes, out.stats[1].max_live_blocks),
            (140, 2)
        );
        assert_eq!(
            (out.stats[1].min_block_bytes, out.stats[1].max_block_bytes),
            (50, 90)
        );
        assert!(out.block_groups.is_none());
    }

    #[test]
    fn heap_releases_below_watermark_only() {
        let mut r = Replay::default();
        r.alloc(1, 5, 0xa, 1, 1);
        r.alloc(2, 2, 0xb, 1, 1);
        r.watermark(3);
        assert_eq!(r.pending(), 1);
        r.watermark(6);
        assert_eq!(r.pending(), 0);
    }

    #[test]
    fn unsorted_batches_and_samples_still_replay_in_order() {
        let mut r = Replay::default();
        // Thread 1's batch is out of order (damaged or reordered data): runs split where the
        // order breaks.
        r.free(1, 4, 0xa);
        r.alloc(1, 3, 0xa, 10, 1);
        r.alloc(1, 5, 0xb, 20, 1);
        r.sample(3, 100, vec![]);
        r.alloc(2, 0, 0xa, 30, 2);
        r.free(2, 1, 0xa);
        r.alloc(2, 2, 0xc, 40, 2);
        r.watermark(3);
        assert_eq!(r.pending(), 4);
        let out = r.finish();
        assert_eq!(out.totals.unmatched_frees, 0);
        assert_eq!(out.totals.reused_live_addresses, 0);
        assert_eq!(out.totals.counts.leaked_bytes, 60);
        assert_eq!(out.totals.counts.peak_bytes, 60);
        // The sample with sequence 3 sees the heap after events 0..=2: only 0xc is live.
        assert_eq!(out.samples[0].live_bytes, 40);
        assert_eq!(out.totals.late_events, 0);
    }

    #[test]
    fn sampled_events_are_weighted() {
        // R = 1000 bytes: a 1000-byte sample stands for 1/(1 - e^-1) ≈ 1.582 allocations; a
        // 1 MB sample for exactly one.
        let mut r = Replay::new(1000);
        for i in 0..1000 {
            r.alloc(1, i, 0x1000 + i, 1000, 1);
        }
        r.alloc(1, 1000, 0x10, 1_000_000, 2);
        for i in 0..500 {
            r.free(1, 1001 + i, 0x1000 + i);
        }
        let out = r.finish();
        let w = 1.0 / (1.0 - (-1.0f64).exp());
        let expect = (1000.0 * w).floor() as u64;
        assert_eq!(out.stats[0].counts.allocations, expect);
        assert_eq!(
            out.stats[0].counts.allocated_bytes,
            (1000.0 * w * 1000.0).floor() as u64
        );
        assert_eq!(out.stats[1].counts.allocations, 1);
        assert_eq!(out.stats[1].counts.allocated_bytes, 1_000_000);
        assert_eq!(out.totals.counts.allocations, expect + 1);
        // Live and leaked use the same per-block amounts, so they stay consistent.
        let leaked: u64 = out.stats.iter().map(|s| s.counts.leaked_allocations).sum();
        assert_eq!(leaked, out.totals.counts.leaked_allocations);
        assert!(
            out.totals
                .counts
                .leaked_allocations
                .abs_diff(expect / 2 + 1)
                <= 2
        );
        assert_eq!(
            out.totals.frees + out.totals.counts.leaked_allocations,
            out.totals.counts.allocations
        );
    }
}
