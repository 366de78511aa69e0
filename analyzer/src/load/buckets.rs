//! Builds [`TimeBuckets`] during the replay: a bounded number of buckets, each a power-of-two run
//! of sample intervals. When the next interval would need one bucket too many, neighbouring
//! buckets merge pairwise and each covers twice as many intervals, so memory stays bounded by
//! `max_buckets × stacks active per bucket` whatever the length of the recording.

use rustc_hash::FxHashMap as HashMap;

use crate::model::time_buckets::{log2_bin, Bucket, BucketCell, TimeBuckets, LOG2_BINS};

#[derive(Debug, Clone, Default)]
struct Building {
    cells: HashMap<u32, BucketCell>,
    size_histogram: Vec<u64>,
    lifetime_histogram: Vec<u64>,
    thread_net_bytes: HashMap<u32, i64>,
}

impl Building {
    fn new() -> Self {
        Building {
            size_histogram: vec![0; LOG2_BINS],
            lifetime_histogram: vec![0; LOG2_BINS],
            ..Building::default()
        }
    }

    fn cell(&mut self, stack: u32) -> &mut BucketCell {
        self.cells.entry(stack).or_insert_with(|| BucketCell {
            stack,
            ..BucketCell::default()
        })
    }

    fn absorb(&mut self, o: Building) {
        for (stack, c) in o.cells {
            let d = self.cell(stack);
            d.allocations += c.allocations;
            d.allocated_bytes = d.allocated_bytes.saturating_add(c.allocated_bytes);
            d.frees += c.frees;
            d.freed_bytes = d.freed_bytes.saturating_add(c.freed_bytes);
            d.temporary_allocations += c.temporary_allocations;
            d.leaked_allocations += c.leaked_allocations;
            d.leaked_bytes = d.leaked_bytes.saturating_add(c.leaked_bytes);
        }
        for (a, b) in self.size_histogram.iter_mut().zip(o.size_histogram) {
            *a += b;
        }
        for (a, b) in self.lifetime_histogram.iter_mut().zip(o.lifetime_histogram) {
            *a += b;
        }
        for (tid, v) in o.thread_net_bytes {
            *self.thread_net_bytes.entry(tid).or_default() += v;
        }
    }
}

/// Where and when a block was allocated, kept with the live block.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Born {
    /// Sample interval of the allocation.
    pub interval: u32,
    /// Estimated time of the allocation, ns.
    pub t_ns: u64,
}

/// The builder.
#[derive(Debug)]
pub(crate) struct BucketBuilder {
    max_buckets: usize,
    shift: u32,
    buckets: Vec<Building>,
    /// `(seq, t_ns)` of every sample released so far.
    samples: Vec<(u64, u64)>,
}

impl BucketBuilder {
    pub(crate) fn new(max_buckets: usize) -> Self {
        BucketBuilder {
            max_buckets: max_buckets.max(2),
            shift: 0,
            buckets: Vec::new(),
            samples: Vec::new(),
        }
    }

    /// The current sample interval (samples released so far).
    fn interval(&self) -> u32 {
        self.samples.len() as u32
    }

    fn bucket(&mut self, interval: u32) -> &mut Building {
        let mut b = (interval >> self.shift) as usize;
        while b >= self.max_buckets {
            let old = std::mem::take(&mut self.buckets);
            let mut merged: Vec<Building> = Vec::with_capacity(old.len().div_ceil(2));
            let mut it = old.into_iter();
            while let Some(mut first) = it.next() {
                if let Some(second) = it.next() {
                    first.absorb(second);
                }
                merged.push(first);
            }
            self.buckets = merged;
            self.shift += 1;
            b = (interval >> self.shift) as usize;
        }
        while self.buckets.len() <= b {
            self.buckets.push(Building::new());
        }
        &mut self.buckets[b]
    }

    /// The estimated time of the event numbered `seq`: the last sample's time plus the sequence
    /// distance at the previous interval's pace, never beyond one more interval.
    fn estimate_ns(&self, seq: u64) -> u64 {
        match self.samples.as_slice() {
            [] => 0,
            [(s1, t1)] => {
                if *s1 == 0 {
                    *t1
                } else {
                    (*t1 as u128 * seq.min(*s1) as u128 / *s1 as u128) as u64
                }
            }
            [.., (s0, t0), (s1, t1)] => {
                let dt = t1.saturating_sub(*t0);
                let ds = s1.saturating_sub(*s0).max(1);
                let extra = (seq.saturating_sub(*s1) as u128 * dt as u128 / ds as u128) as u64;
                t1 + extra.min(dt)
            }
        }
    }

    pub(crate) fn sample(&mut self, seq: u64, t_ns: u64) {
        self.samples.push((seq, t_ns));
    }

    pub(crate) fn alloc(
        &mut self,
        seq: u64,
        stack: u32,
        tid: u32,
        count: u64,
        size_bytes: u64,
        request_bytes: u64,
    ) -> Born {
        let born = Born {
            interval: self.interval(),
            t_ns: self.estimate_ns(seq),
        };
        let b = self.bucket(born.interval);
        let c = b.cell(stack);
        c.allocations += count;
        c.allocated_bytes = c.allocated_bytes.saturating_add(size_bytes);
        b.size_histogram[log2_bin(request_bytes)] += count;
        *b.thread_net_bytes.entry(tid).or_default() += size_bytes as i64;
        born
    }

    /// A block left the heap: freed (`freed_seq`), or dropped because its address came back
    /// from the allocator without a recorded free (`None`: no lifetime, not a temporary).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn free(
        &mut self,
        born: Born,
        freed_seq: Option<u64>,
        stack: u32,
        tid: u32,
        count: u64,
        size_bytes: u64,
        temporary: bool,
    ) {
        let now = self.interval();
        let lifetime = freed_seq.map(|s| self.estimate_ns(s).saturating_sub(born.t_ns));
        {
            let b = self.bucket(now);
            let c = b.cell(stack);
            c.frees += count;
            c.freed_bytes = c.freed_bytes.saturating_add(size_bytes);
            *b.thread_net_bytes.entry(tid).or_default() -= size_bytes as i64;
        }
        let b = self.bucket(born.interval);
        if temporary {
            b.cell(stack).temporary_allocations += count;
        }
        if let Some(l) = lifetime {
            b.lifetime_histogram[log2_bin(l)] += count;
        }
    }

    /// A block still live at the end.
    pub(crate) fn leaked(&mut self, born: Born, stack: u32, count: u64, size_bytes: u64) {
        let c = self.bucket(born.interval).cell(stack);
        c.leaked_allocations += count;
        c.leaked_bytes = c.leaked_bytes.saturating_add(size_bytes);
    }

    /// The buckets, covering every interval up to the last sample's. The last bucket's end time
    /// is the last sample's; the loader sets it to the profile's end once known.
    pub(crate) fn finish(mut self) -> TimeBuckets {
        // One bucket at least, and every interval up to the last one covered.
        let last = self.interval();
        self.bucket(last);
        let k = 1u64 << self.shift;
        let n = self.buckets.len();
        let bound = |i: u64| -> (u64, u64) {
            // Interval i starts at sample i-1 (the start for i = 0).
            match i.checked_sub(1).and_then(|j| self.samples.get(j as usize)) {
                Some(&(seq, t)) => (seq, t),
                None if i == 0 => (0, 0),
                None => (u64::MAX, self.samples.last().map_or(0, |s| s.1)),
            }
        };
        let buckets = self
            .buckets
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let (seq_lo, start_ns) = bound(i as u64 * k);
                let (seq_hi, end_ns) = if i + 1 == n {
                    (u64::MAX, self.samples.last().map_or(0, |s| s.1))
                } else {
                    bound((i as u64 + 1) * k)
                };
                let mut cells: Vec<BucketCell> = b.cells.values().cloned().collect();
                cells.sort_by_key(|c| c.stack);
                let mut thread_net_bytes: Vec<(u32, i64)> =
                    b.thread_net_bytes.iter().map(|(&t, &v)| (t, v)).collect();
                thread_net_bytes.sort_unstable();
                Bucket {
                    start_ns,
                    end_ns: end_ns.max(start_ns),
                    seq_lo,
                    seq_hi,
                    cells,
                    size_histogram: b.size_histogram.clone(),
                    lifetime_histogram: b.lifetime_histogram.clone(),
                    thread_net_bytes,
                }
            })
            .collect();
        TimeBuckets {
            intervals_per_bucket: k,
            buckets,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::replay::Replay;

    /// 40 intervals into at most 4 buckets: the buckets merge pairwise (8, then 16 intervals
    /// each) and still tile the run with exact sequence bounds, and every sum is kept.
    #[test]
    fn buckets_merge_and_keep_every_event() {
        let mut r = Replay::new(0).with_time_buckets(4);
        let mut seq = 0;
        for i in 0..40u64 {
            // Interval i: two allocations of stack 1 (i+1 bytes each), one free of the first.
            let a = 0x1000 + 16 * i;
            r.alloc_raw(1, seq, a, i + 1, 1);
            r.alloc_raw(1, seq + 1, a + 8, i + 1, 1);
            r.free(1, seq + 2, a, false);
            seq += 3;
            r.sample(seq, (i + 1) * 10_000_000, vec![]);
            r.watermark(seq);
        }
        let out = r.finish();
        let tb = out.time_buckets.unwrap();
        assert!(tb.buckets.len() <= 4, "{}", tb.buckets.len());
        assert_eq!(tb.intervals_per_bucket, 16);
        assert_eq!(tb.buckets[0].seq_lo, 0);
        assert_eq!(tb.buckets[0].seq_hi, 16 * 3);
        assert_eq!(tb.buckets[0].end_ns, 160_000_000);
        for w in tb.buckets.windows(2) {
            assert_eq!(w[0].seq_hi, w[1].seq_lo);
            assert_eq!(w[0].end_ns, w[1].start_ns);
        }
        let first: u64 = tb.buckets[0].cells.iter().map(|c| c.allocated_bytes).sum();
        assert_eq!(first, (1..=16).map(|b| 2 * b).sum::<u64>());
        let cells = || tb.buckets.iter().flat_map(|b| b.cells.iter());
        assert_eq!(cells().map(|c| c.allocations).sum::<u64>(), 80);
        assert_eq!(cells().map(|c| c.frees).sum::<u64>(), 40);
        assert_eq!(
            cells().map(|c| c.leaked_bytes).sum::<u64>(),
            out.totals.counts.leaked_bytes
        );
        // Each freed block was followed by another allocation of its thread before its free:
        // none is a temporary.
        assert_eq!(cells().map(|c| c.temporary_allocations).sum::<u64>(), 0);
        let sizes: u64 = tb
            .buckets
            .iter()
            .flat_map(|b| b.size_histogram.iter())
            .sum();
        assert_eq!(sizes, 80);
        let lifetimes: u64 = tb
            .buckets
            .iter()
            .flat_map(|b| b.lifetime_histogram.iter())
            .sum();
        assert_eq!(lifetimes, 40);
    }
}
