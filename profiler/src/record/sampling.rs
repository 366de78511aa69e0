//! Poisson byte sampling: on average one sample per `rate` allocated bytes, as jemalloc,
//! tcmalloc and Go do. A block of `n` bytes is recorded with probability `1 - e^(-n/rate)`;
//! the header stores the rate and each event its real size, so the analyzer can weight it.
//! Frees are recorded only for sampled blocks, found in a [`SampledSet`].

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Per-thread state: bytes left until the next sample, and a xorshift generator.
#[derive(Debug, Clone, Copy)]
pub struct Countdown {
    left: i64,
    rng: u64,
}

impl Countdown {
    /// A countdown seeded from `seed` (any value).
    pub fn new(seed: u64, rate: u64) -> Countdown {
        let mut c = Countdown {
            left: 0,
            rng: seed | 1,
        };
        c.left = c.draw(rate);
        c
    }

    fn next_u64(&mut self) -> u64 {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// An exponentially distributed gap with mean `rate` bytes.
    fn draw(&mut self, rate: u64) -> i64 {
        // Uniform in (0, 1]: never 0, so the logarithm is finite.
        let u = ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64;
        (-u.ln() * rate as f64).min(i64::MAX as f64 / 2.0) as i64 + 1
    }

    /// True when an allocation of `size` bytes is to be recorded.
    #[inline]
    pub fn take(&mut self, size: usize, rate: u64) -> bool {
        self.left -= size as i64;
        if self.left > 0 {
            return false;
        }
        // Memoryless: a fresh gap starts after this block.
        self.left = self.draw(rate);
        true
    }
}

const WAYS: usize = 8;

/// Counters of the filter in front of the set: 32 KiB, small enough to stay near the cores of
/// the threads that free.
const FILTER: usize = 8192;

/// Addresses of live sampled blocks: set-associative, lock-free, no tombstones (each
/// bucket is one cache line of eight slots; 0 marks a free slot).
///
/// A counting filter stands in front of it: how many live sampled blocks hash to each of
/// [`FILTER`] counters. Nearly every free in sampling mode is of an unsampled block; its
/// counter is 0, and [`SampledSet::may_contain`] says so from one load of a small array
/// instead of a cache miss in the set (1 Mi slots, 8 MiB) and without the thread's state.
pub struct SampledSet {
    slots: Box<[AtomicU64]>,
    buckets: usize,
    /// Live sampled blocks per filter counter (32 bits: no count of blocks the set can hold
    /// overflows one, however the addresses fall).
    filter: Box<[AtomicU32]>,
}

impl SampledSet {
    /// A set for `buckets` × 8 addresses (`buckets` rounded up to a power of two).
    pub fn new(buckets: usize) -> SampledSet {
        let buckets = buckets.next_power_of_two();
        SampledSet {
            // 8 MiB in a session, of which a program touches the pages of the buckets it fills:
            // mapped on first touch, not all at start (2,048 page faults and 8 MiB resident in
            // every sampled process). An insert touches a page first with an exchange (a write);
            // only a free that passes the filter for another block's sake may read a page first,
            // and that page then costs one flush when written (`sys::mem`), once.
            // SAFETY: zero bytes are a valid (empty) `AtomicU64`.
            slots: unsafe { crate::sys::mem::zeroed_slice_lazy(buckets * WAYS) },
            buckets,
            filter: (0..FILTER).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    /// The filter counter of `addr` (hash bits other than the bucket's).
    #[inline(always)]
    fn counter(&self, addr: u64) -> &AtomicU32 {
        let h = (addr >> 4).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 51;
        &self.filter[(h as usize) & (FILTER - 1)]
    }

    /// False when `addr` is certainly not in the set; true when it may be. A block is
    /// counted before its address is returned to the program and uncounted only when it is
    /// removed, so a free of a sampled block always sees its count.
    #[inline(always)]
    pub fn may_contain(&self, addr: u64) -> bool {
        self.counter(addr).load(Ordering::Acquire) != 0
    }

    #[inline]
    fn bucket(&self, addr: u64) -> &[AtomicU64] {
        let h = (addr >> 4).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 20;
        let b = (h as usize) & (self.buckets - 1);
        &self.slots[b * WAYS..(b + 1) * WAYS]
    }

    /// Adds `addr`; false when its bucket is full (the block is then not recorded).
    pub fn insert(&self, addr: u64) -> bool {
        let added = self.bucket(addr).iter().any(|s| {
            s.compare_exchange(0, addr, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        });
        if added {
            self.counter(addr).fetch_add(1, Ordering::AcqRel);
        }
        added
    }

    /// Removes `addr`; true when it was present.
    #[inline]
    pub fn remove(&self, addr: u64) -> bool {
        if !self.may_contain(addr) {
            return false;
        }
        let removed = self.bucket(addr).iter().any(|s| {
            s.load(Ordering::Relaxed) == addr
                && s.compare_exchange(addr, 0, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
        });
        if removed {
            self.counter(addr).fetch_sub(1, Ordering::AcqRel);
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_probability_matches_poisson() {
        let rate = 4096;
        let mut c = Countdown::new(42, rate);
        for (size, expect) in [
            (64usize, 1.0 - (-64.0f64 / 4096.0).exp()),
            (8192, 1.0 - (-2.0f64).exp()),
        ] {
            let n = 200_000;
            let hits = (0..n).filter(|_| c.take(size, rate)).count();
            let p = hits as f64 / n as f64;
            assert!((p - expect).abs() < 0.01, "size {size}: {p} vs {expect}");
        }
    }

    #[test]
    fn set_inserts_and_removes() {
        let s = SampledSet::new(16);
        assert!(s.insert(0x1000));
        assert!(s.insert(0x2000));
        assert!(!s.remove(0x3000));
        assert!(s.remove(0x1000));
        assert!(!s.remove(0x1000));
        // One bucket holds eight addresses at most.
        let same_bucket: Vec<u64> = (1..100_000u64)
            .map(|i| i * 16)
            .filter(|&a| std::ptr::eq(s.bucket(a).as_ptr(), s.bucket(0x2000).as_ptr()))
            .take(8)
            .collect();
        let inserted = same_bucket.iter().filter(|&&a| s.insert(a)).count();
        assert_eq!(inserted, 7);
    }

    #[test]
    fn filter_counts_what_the_set_holds() {
        let s = SampledSet::new(1 << 10);
        let addrs: Vec<u64> = (1..=5000u64).map(|i| 0x7f00_0000_0000 + i * 48).collect();
        assert!(addrs.iter().all(|&a| !s.may_contain(a)));
        let held: Vec<u64> = addrs.iter().copied().filter(|&a| s.insert(a)).collect();
        assert!(held.len() > 4000, "{}", held.len());
        // Every address the set holds passes the filter (no false negatives).
        assert!(held.iter().all(|&a| s.may_contain(a)));
        // A block not held is not removed, and does not change the counts.
        let outside = 0x7f00_0000_0000 + 5001 * 48;
        assert!(!s.remove(outside));
        for &a in &held {
            assert!(s.remove(a));
        }
        // All removed: every counter is back at zero.
        assert!(addrs.iter().all(|&a| !s.may_contain(a)));
        assert!(s.filter.iter().all(|c| c.load(Ordering::Relaxed) == 0));
    }
}
