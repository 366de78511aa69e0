//! Puts the events of a version-1 profile back in global sequence order before the replay
//! applies them.
//!
//! Events reach a version-1 file in per-thread batches, so their sequence numbers are not
//! monotonic in the file. Pending events wait until a watermark `W` releases every pending event
//! below `W` (the recorder promises nothing below `W` is still to come); the rest is released at
//! the end. Memory therefore grows with the events between two watermarks, never with the length
//! of the recording. (A version-2 profile is written in order and never comes here.)
//!
//! A thread's batch is already in sequence order, so pending events are kept as sorted *runs*
//! (one per batch; a new run starts whenever the order breaks) and merged through a min-heap of run
//! heads. The heap holds one entry per run, not per event: with a million events between two
//! watermarks this is what keeps the replay fast.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// What a pending entry does when released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Action {
    /// A timeline sample; sorts before the events with its own sequence number.
    Sample { t_ns: u64, values: Vec<(u64, u64)> },
    /// Allocation (or a realloc's allocation half) from stack slot `stack`.
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

/// An entry waiting for its turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Pending {
    pub seq: u64,
    /// 0 for samples, 1 for events: a sample with sequence S precedes the event numbered S.
    pub class: u8,
    /// Arrival order, so equal keys (damaged data) still replay deterministically.
    arrival: u64,
    pub action: Action,
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

/// Pending entries, merged back into replay order.
#[derive(Debug, Default)]
pub(super) struct Reorder {
    /// Heads of the pending runs: `(key of the head event, run index)`.
    heap: BinaryHeap<Reverse<(Key, usize)>>,
    /// Pending runs (a slab; emptied runs are recycled through `free_runs`).
    runs: Vec<Run>,
    free_runs: Vec<usize>,
    /// The run events are appended to, while the batch stays in order.
    open: Option<OpenRun>,
    pending: usize,
    arrival: u64,
}

impl Reorder {
    /// Appends an entry of thread `tid` (`u32::MAX` for samples, which always get a run of their
    /// own) to the open run when it keeps the run sorted, else to a new run.
    pub(super) fn push(&mut self, tid: u32, seq: u64, class: u8, action: Action) {
        self.arrival += 1;
        let item = Pending {
            seq,
            class,
            arrival: self.arrival,
            action,
        };
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
    pub(super) fn seal(&mut self) {
        self.open = None;
    }

    /// The next pending entry in replay order when its sequence number is below `below` (any
    /// entry for `None`).
    pub(super) fn pop(&mut self, below: Option<u64>) -> Option<Pending> {
        while let Some(&Reverse((key, run))) = self.heap.peek() {
            if below.is_some_and(|b| key.0 >= b) {
                return None;
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
            return Some(item);
        }
        None
    }

    /// Pending entries (for tests and memory accounting).
    #[cfg(test)]
    pub(super) fn pending(&self) -> usize {
        self.pending
    }
}
