//! Ordering a writer pass's events: a stable sort that merges the sorted runs the pass is made
//! of, in buffers kept from pass to pass.
//!
//! A pass holds each thread buffer's events (each buffer in order already), the events left
//! waiting from the previous pass, and a few timeline samples appended at the end: a handful of
//! sorted runs. `slice::sort_by_key` merged them well but allocated a scratch buffer of half the
//! pass on every call, and the recorder's allocator maps and unmaps buffers that large: page
//! faults and copies were ≈ 15% of the profiled process's CPU on a churn loop (perf). Here the
//! scratch space stays allocated, and a pass that is already in order is left as it is.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Stable k-way merge of sorted runs, reusing its buffers.
pub struct RunMerger<T> {
    scratch: Vec<T>,
    /// `(next, end)` of each run.
    runs: Vec<(usize, usize)>,
    /// `(key of the run's next item, run)`: ties go to the earlier run, which keeps it stable.
    heads: BinaryHeap<Reverse<(u64, usize)>>,
}

impl<T> Default for RunMerger<T> {
    fn default() -> Self {
        RunMerger {
            scratch: Vec::new(),
            runs: Vec::new(),
            heads: BinaryHeap::new(),
        }
    }
}

impl<T: Copy> RunMerger<T> {
    /// Sorts `items` by `key`, stably (items with equal keys keep their order).
    pub fn sort(&mut self, items: &mut Vec<T>, key: impl Fn(&T) -> u64) {
        self.runs.clear();
        let mut start = 0;
        for i in 1..items.len() {
            if key(&items[i]) < key(&items[i - 1]) {
                self.runs.push((start, i));
                start = i;
            }
        }
        if self.runs.is_empty() {
            return; // in order already (or empty)
        }
        self.runs.push((start, items.len()));
        self.heads.clear();
        for (r, &(next, _)) in self.runs.iter().enumerate() {
            self.heads.push(Reverse((key(&items[next]), r)));
        }
        self.scratch.clear();
        self.scratch.reserve(items.len());
        while let Some(Reverse((_, r))) = self.heads.pop() {
            let (next, end) = &mut self.runs[r];
            // Take this run's items up to the next head of another run at once: with a few long
            // runs (one per thread buffer) most of the pass moves without touching the heap.
            let limit = self.heads.peek().map(|Reverse(h)| *h);
            let from = *next;
            *next += 1;
            while *next < *end && limit.is_none_or(|l| (key(&items[*next]), r) < l) {
                *next += 1;
            }
            self.scratch.extend_from_slice(&items[from..*next]);
            if *next < *end {
                self.heads.push(Reverse((key(&items[*next]), r)));
            }
        }
        std::mem::swap(items, &mut self.scratch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_like_a_stable_sort() {
        // (key, original position): a stable sort keeps positions increasing among equal keys.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut rnd = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut m = RunMerger::default();
        for case in 0..200 {
            let n = (rnd() % 300) as usize;
            let runs = 1 + (rnd() % 6) as usize;
            let mut items: Vec<(u64, usize)> = Vec::new();
            for r in 0..runs {
                let mut k = rnd() % 10;
                for _ in 0..n / runs {
                    k += rnd() % 3; // repeated keys within and across runs
                    items.push((k + r as u64 % 2, 0));
                }
            }
            if case % 7 == 0 {
                items.push((0, 0)); // a sample appended at the end, before everything
            }
            for (i, it) in items.iter_mut().enumerate() {
                it.1 = i;
            }
            let mut want = items.clone();
            want.sort_by_key(|e| e.0);
            m.sort(&mut items, |e| e.0);
            assert_eq!(items, want, "case {case}");
        }
    }

    #[test]
    fn leaves_an_ordered_pass_alone() {
        let mut m = RunMerger::default();
        let mut items = vec![1u64, 2, 2, 5];
        m.sort(&mut items, |&k| k);
        assert_eq!(items, [1, 2, 2, 5]);
        let mut empty: Vec<u64> = Vec::new();
        m.sort(&mut empty, |&k| k);
        assert!(empty.is_empty());
    }
}
