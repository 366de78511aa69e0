//! Times of events and lifetimes of blocks, from [`crate::model::BlockGroups`].
//!
//! Events carry sequence numbers, not times; timeline samples carry both. An event's time is
//! interpolated linearly inside its interval (between the samples around it; the start of the
//! process and the end of the recording bound the first and last intervals), so times are as
//! fine as the timeline interval allows and sums of times over a group are exact for that
//! interpolation.

use crate::model::{BlockGroup, Profile};

/// Maps sequence numbers to times, ns since the start of the process.
#[derive(Debug, Clone)]
pub struct SeqClock {
    /// `(seq, t_ns)` anchors: the start, every sample, the end.
    anchors: Vec<(u64, f64)>,
}

impl SeqClock {
    /// The clock of `p`: its samples, bounded by `(0, 0)` and `(end_seq, duration)`.
    /// `end_seq` is one past the last sequence number (see [`crate::model::BlockGroups`]).
    pub fn new(p: &Profile, end_seq: u64) -> SeqClock {
        let mut anchors = Vec::with_capacity(p.samples.len() + 2);
        anchors.push((0, 0.0));
        anchors.extend(p.samples.iter().map(|s| (s.seq, s.t_ns as f64)));
        let last_t = anchors.last().map_or(0.0, |a| a.1);
        let last_seq = anchors.last().map_or(0, |a| a.0);
        anchors.push((
            end_seq.max(last_seq),
            (p.totals.duration_ns as f64).max(last_t),
        ));
        SeqClock { anchors }
    }

    /// The bounds of interval `i` (between sample `i - 1` and sample `i`).
    fn bounds(&self, interval: u32) -> ((u64, f64), (u64, f64)) {
        let i = (interval as usize).min(self.anchors.len() - 2);
        (self.anchors[i], self.anchors[i + 1])
    }

    /// Sum of the times of `n` events of interval `interval` whose sequence numbers add up to
    /// `seq_sum`, ns.
    pub fn sum_ns(&self, interval: u32, n: u64, seq_sum: u128) -> f64 {
        let ((s0, t0), (s1, t1)) = self.bounds(interval);
        let slope = if s1 > s0 {
            (t1 - t0) / (s1 - s0) as f64
        } else {
            0.0
        };
        let n = n as f64;
        n * t0 + (seq_sum as f64 - n * s0 as f64) * slope
    }

    /// Time of the event numbered `seq`, ns.
    pub fn at_ns(&self, seq: u64) -> f64 {
        let i = self.anchors.partition_point(|a| a.0 <= seq);
        let interval = i.saturating_sub(1) as u32;
        self.sum_ns(interval, 1, u128::from(seq))
    }

    /// Mean allocation time of a group's blocks, ns.
    pub fn alloc_ns(&self, g: &BlockGroup) -> f64 {
        self.sum_ns(g.alloc_interval, g.records, g.alloc_seq_sum) / g.records.max(1) as f64
    }

    /// Mean free time of a group's blocks, ns (`None` for blocks live at the end).
    pub fn free_ns(&self, g: &BlockGroup) -> Option<f64> {
        let (_, interval) = g.free?;
        Some(self.sum_ns(interval, g.records, g.free_seq_sum) / g.records.max(1) as f64)
    }

    /// End of the recording, ns.
    pub fn end_ns(&self) -> f64 {
        self.anchors.last().map_or(0.0, |a| a.1)
    }
}

/// Total lifetime of the blocks of each stack (indexed like [`Profile::stack_stats`]), ns:
/// blocks live at the end count until the end of the recording, as DHAT counts them. In a
/// sampled profile each recorded block stands for its sampling weight. `None` when the profile
/// was loaded without block groups.
pub fn stack_lifetimes_ns(p: &Profile) -> Option<Vec<f64>> {
    let groups = p.block_groups.as_ref()?;
    let clock = SeqClock::new(p, groups.end_seq);
    let mut out = vec![0.0; p.stack_stats.len()];
    for g in &groups.groups {
        let alloc = clock.sum_ns(g.alloc_interval, g.records, g.alloc_seq_sum);
        let free = match g.free {
            Some((_, interval)) => clock.sum_ns(interval, g.records, g.free_seq_sum),
            None => clock.end_ns() * g.records as f64,
        };
        let weight = g.allocations as f64 / g.records.max(1) as f64;
        if let Some(slot) = out.get_mut(g.stack as usize) {
            *slot += (free - alloc).max(0.0) * weight;
        }
    }
    Some(out)
}

/// Time of the global peak (the allocation that reached it), ns; `None` without block groups.
pub fn peak_time_ns(p: &Profile) -> Option<f64> {
    let groups = p.block_groups.as_ref()?;
    Some(SeqClock::new(p, groups.end_seq).at_ns(p.totals.peak_seq))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{BlockGroups, Sample};

    fn profile() -> Profile {
        let mut p = Profile::default();
        p.totals.duration_ns = 3000;
        for (seq, t_ns) in [(10, 1000), (30, 2000)] {
            p.samples.push(Sample {
                seq,
                t_ns,
                ..Sample::default()
            });
        }
        p
    }

    #[test]
    fn times_interpolate_between_samples_and_bounds() {
        let p = profile();
        let c = SeqClock::new(&p, 40);
        assert_eq!(c.at_ns(0), 0.0);
        assert_eq!(c.at_ns(5), 500.0);
        assert_eq!(c.at_ns(10), 1000.0);
        assert_eq!(c.at_ns(20), 1500.0);
        assert_eq!(c.at_ns(35), 2500.0);
        // Two events of interval 1 (seq 12 and 18): 1100 + 1400.
        assert_eq!(c.sum_ns(1, 2, 30), 2500.0);
    }

    #[test]
    fn lifetimes_run_to_the_end_for_live_blocks() {
        let mut p = profile();
        p.stack_stats = vec![Default::default(); 2];
        p.block_groups = Some(BlockGroups {
            end_seq: 40,
            groups: vec![
                // seq 5 → seq 20: 500 ns → 1500 ns.
                BlockGroup {
                    stack: 0,
                    alloc_interval: 0,
                    free: Some((1, 1)),
                    records: 1,
                    allocations: 1,
                    bytes: 8,
                    alloc_seq_sum: 5,
                    free_seq_sum: 20,
                    ..BlockGroup::default()
                },
                // seq 35 (2500 ns), live until 3000 ns; stands for 3 allocations.
                BlockGroup {
                    stack: 1,
                    alloc_interval: 2,
                    free: None,
                    records: 1,
                    allocations: 3,
                    bytes: 24,
                    alloc_seq_sum: 35,
                    ..BlockGroup::default()
                },
            ],
        });
        assert_eq!(stack_lifetimes_ns(&p).unwrap(), vec![1000.0, 1500.0]);
    }
}
