//! Replays allocation events in global sequence order and accumulates per-stack aggregates.
//!
//! Events reach the file in per-thread batches, so their sequence numbers are not monotonic in the
//! file. Pending events wait in a min-heap keyed by sequence number; a watermark `W` releases every
//! pending event below `W` (the recorder promises nothing below `W` is still to come), and the
//! rest is released at the end. Memory therefore grows with the events between two watermarks,
//! the live blocks and the unique stacks — never with the length of the recording.
//!
//! The per-stack breakdown at the global peak is computed in the same pass with a lazy snapshot:
//! a peak epoch increments whenever the live heap exceeds the previous peak; before a stack's live
//! bytes change, if it has not been touched in the current epoch, its current live bytes are its
//! bytes at the latest peak (nothing touched it since). At the end every stack is settled the
//! same way.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};

use crate::model::{Sample, StackStats, ThreadInfo, Totals};

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

impl Ord for Pending {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.seq, self.class, self.arrival).cmp(&(other.seq, other.class, other.arrival))
    }
}

impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A live block.
#[derive(Debug, Clone, Copy)]
struct Block {
    size_bytes: u64,
    seq: u64,
    stack: u32,
    tid: u32,
}

/// Replay-only state of a stack next to its public aggregates.
#[derive(Debug, Clone, Default)]
struct StackLive {
    live_bytes: u64,
    epoch_seen: u64,
}

/// The replay engine.
#[derive(Debug, Default)]
pub(crate) struct Replay {
    heap: BinaryHeap<Reverse<Pending>>,
    arrival: u64,
    /// Highest sequence number released so far (for detecting late events).
    released_seq: Option<u64>,
    live: HashMap<u64, Block>,
    /// Per thread, the sequence number of its last allocation.
    last_alloc_seq: HashMap<u32, u64>,
    live_bytes: u64,
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
}

/// What the replay produced.
pub(crate) struct ReplayOutput {
    pub stats: Vec<StackStats>,
    pub stack_raw_ids: Vec<u64>,
    pub threads: Vec<ThreadInfo>,
    pub samples: Vec<Sample>,
    pub totals: Totals,
}

impl Replay {
    fn push(&mut self, seq: u64, class: u8, action: Action) {
        self.arrival += 1;
        self.heap.push(Reverse(Pending {
            seq,
            class,
            arrival: self.arrival,
            action,
        }));
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
            free_seq,
            1,
            Action::Free {
                tid,
                addr: old_addr,
                realloc: true,
            },
        );
        self.push(
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
        self.push(seq, 0, Action::Sample { t_ns, values });
    }

    /// Releases every pending entry with a sequence number below `seq`.
    pub(crate) fn watermark(&mut self, seq: u64) {
        while let Some(Reverse(top)) = self.heap.peek() {
            if top.seq >= seq {
                break;
            }
            let Some(Reverse(p)) = self.heap.pop() else {
                break;
            };
            self.apply(p);
        }
    }

    /// Pending entries (for tests and memory accounting).
    #[cfg(test)]
    pub(crate) fn pending(&self) -> usize {
        self.heap.len()
    }

    /// Brings a stack's peak snapshot up to date before its live bytes change.
    fn touch(&mut self, stack: u32) {
        let s = &mut self.stack_live[stack as usize];
        if s.epoch_seen != self.epoch {
            self.stats[stack as usize].peak_bytes = s.live_bytes;
            s.epoch_seen = self.epoch;
        }
    }

    /// Removes a live block from the books (its bytes leave its stack and the heap).
    fn release_block(&mut self, block: &Block) {
        self.touch(block.stack);
        let s = &mut self.stack_live[block.stack as usize];
        s.live_bytes = s.live_bytes.saturating_sub(block.size_bytes);
        self.live_bytes = self.live_bytes.saturating_sub(block.size_bytes);
    }

    fn apply(&mut self, p: Pending) {
        if p.class == 1 {
            match self.released_seq {
                Some(r) if p.seq < r => self.totals.late_events += 1,
                _ => self.released_seq = Some(p.seq),
            }
        }
        match p.action {
            Action::Sample { t_ns, values } => self.samples.push(Sample {
                t_ns,
                seq: p.seq,
                values,
                live_bytes: self.live_bytes,
                live_blocks: self.live.len() as u64,
            }),
            Action::Alloc {
                tid,
                addr,
                size_bytes,
                stack,
                realloc,
            } => {
                let block = Block {
                    size_bytes,
                    seq: p.seq,
                    stack,
                    tid,
                };
                if let Some(old) = self.live.insert(addr, block) {
                    // The address was handed out again without a recorded free.
                    self.totals.reused_live_addresses += 1;
                    self.release_block(&old);
                }
                self.touch(stack);
                self.stack_live[stack as usize].live_bytes = self.stack_live[stack as usize]
                    .live_bytes
                    .saturating_add(size_bytes);
                let st = &mut self.stats[stack as usize];
                st.allocations += 1;
                st.allocated_bytes = st.allocated_bytes.saturating_add(size_bytes);
                self.totals.allocations += 1;
                if realloc {
                    self.totals.reallocs += 1;
                }
                self.totals.allocated_bytes =
                    self.totals.allocated_bytes.saturating_add(size_bytes);
                self.live_bytes = self.live_bytes.saturating_add(size_bytes);
                if self.live_bytes > self.totals.peak_bytes {
                    self.totals.peak_bytes = self.live_bytes;
                    self.totals.peak_blocks = self.live.len() as u64;
                    self.totals.peak_seq = p.seq;
                    self.epoch += 1;
                }
                self.last_alloc_seq.insert(tid, p.seq);
                let t = self.thread(tid);
                t.allocations += 1;
                t.allocated_bytes = t.allocated_bytes.saturating_add(size_bytes);
            }
            Action::Free { tid, addr, realloc } => {
                if !realloc {
                    self.totals.frees += 1;
                }
                match self.live.remove(&addr) {
                    None => self.totals.unmatched_frees += 1,
                    Some(block) => {
                        self.release_block(&block);
                        let st = &mut self.stats[block.stack as usize];
                        st.frees += 1;
                        if block.tid == tid && self.last_alloc_seq.get(&tid) == Some(&block.seq) {
                            st.temporary_allocations += 1;
                            self.totals.temporary_allocations += 1;
                        }
                    }
                }
            }
        }
    }

    /// Releases everything still pending and settles leaks and the peak breakdown.
    pub(crate) fn finish(mut self) -> ReplayOutput {
        self.watermark(u64::MAX);
        // Entries with the largest possible sequence number survive `watermark(u64::MAX)`.
        while let Some(Reverse(p)) = self.heap.pop() {
            self.apply(p);
        }
        for i in 0..self.stats.len() {
            self.touch(i as u32);
        }
        for block in self.live.values() {
            let st = &mut self.stats[block.stack as usize];
            st.leaked_allocations += 1;
            st.leaked_bytes = st.leaked_bytes.saturating_add(block.size_bytes);
            self.totals.leaked_allocations += 1;
            self.totals.leaked_bytes = self.totals.leaked_bytes.saturating_add(block.size_bytes);
        }
        ReplayOutput {
            stats: self.stats,
            stack_raw_ids: self.stack_raw_ids,
            threads: self.threads,
            samples: self.samples,
            totals: self.totals,
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
        assert_eq!(out.totals.peak_bytes, 150);
        assert_eq!(out.stats[0].peak_bytes, 100);
        assert_eq!(out.stats[1].peak_bytes, 50);
        assert_eq!(out.stats[1].leaked_bytes, 140);
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
}
