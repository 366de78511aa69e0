//! Allocator call latency: a cheap clock, per-thread histograms, interval percentiles.
//!
//! ```text
//!  hook (owner thread)                          writer (each timeline sample)
//!  t0 = ticks(); real(); dt = ticks() - t0      for each thread: diff its cumulative buckets
//!  buckets[bucket(dt)] += 1  (load + store)     against the previous snapshot; max = swap(0)
//!  if dt > max: max.fetch_max(dt)               → Interval → p50 / p99 / max in ns
//! ```
//!
//! Buckets are log-linear: values below 8 ticks have one bucket each, every power of two above
//! has 8 sub-buckets (relative error below 12.5%). Counters are cumulative and only the owner
//! writes them, so the writer never resets anything another thread is incrementing.
//!
//! Reading the clock is not free: `rdtsc` costs ≈ 11 ns on this project's machines (AMD EPYC,
//! measured back to back; 15–30 ns in some virtual machines), so timing both ends of every call
//! would add ≈ 45 ns per malloc+free pair. Calls are therefore timed on a random subset, one in
//! [`Config::latency_every`] on average (`TIDEMARK_LATENCY_EVERY`, default 8). A thread that
//! already had [`BUSY_TIMED`] calls timed within the last [`WINDOW_TICKS`] ticks (≈ 5 ms) is
//! timed [`BUSY_SPARSER`] times less often until that window ends, and each of those calls
//! counts [`BUSY_SPARSER`] times, so the percentiles still describe an unbiased sample (each
//! call weighted by the inverse of its chance to be timed) while a C churn's 35 million calls a
//! second no longer pay for a clock read in every eighth call (−7% of its wall time). The
//! maximum is the slowest timed call.
//!
//! [`Config::latency_every`]: super::Config::latency_every

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Sub-buckets per power of two.
const SUB: u64 = 8;
/// log2 of [`SUB`].
const SUB_BITS: u32 = 3;
/// Values at or above `2^MAX_EXP` ticks share the last bucket (≈ 6 minutes at 3 GHz).
const MAX_EXP: u32 = 40;
/// Number of buckets.
pub const BUCKETS: usize = ((MAX_EXP - SUB_BITS + 1) as u64 * SUB) as usize;

/// The bucket of a value in ticks.
#[inline(always)]
pub fn bucket(ticks: u64) -> usize {
    if ticks < SUB {
        return ticks as usize;
    }
    let e = 63 - ticks.leading_zeros();
    if e >= MAX_EXP {
        return BUCKETS - 1;
    }
    let sub = (ticks >> (e - SUB_BITS)) & (SUB - 1);
    ((u64::from(e - SUB_BITS + 1)) * SUB + sub) as usize
}

/// Lowest value of bucket `i`, and its width, in ticks.
pub fn bucket_range(i: usize) -> (u64, u64) {
    let i = i as u64;
    if i < SUB {
        return (i, 1);
    }
    let e = (i / SUB) as u32 + SUB_BITS - 1;
    let sub = i % SUB;
    ((SUB + sub) << (e - SUB_BITS), 1 << (e - SUB_BITS))
}

/// The clock the hooks read: the TSC on x86_64, CLOCK_MONOTONIC in ns elsewhere.
#[inline(always)]
pub fn ticks() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: rdtsc is available on every x86_64 CPU and has no preconditions.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        crate::sys::clock::mono_ns()
    }
}

/// A simultaneous reading of CLOCK_MONOTONIC (ns) and [`ticks`]: the clock read between two
/// tick readings, the tightest of a few tries (a preemption in between would skew it).
pub fn clock_pair() -> (u64, u64) {
    let mut best = (0, 0, u64::MAX);
    for _ in 0..5 {
        let t0 = ticks();
        let ns = crate::sys::clock::mono_ns();
        let t1 = ticks();
        let spread = t1.wrapping_sub(t0);
        if spread < best.2 {
            best = (ns, t0 + spread / 2, spread);
        }
    }
    (best.0, best.1)
}

/// Ticks per nanosecond between two [`clock_pair`] readings; 1 when they are unusable.
pub fn ticks_per_ns(from: (u64, u64), to: (u64, u64)) -> f64 {
    let ns = to.0.saturating_sub(from.0);
    if ns == 0 || to.1 <= from.1 {
        return 1.0;
    }
    (to.1 - from.1) as f64 / ns as f64
}

/// Clock ticks per nanosecond, measured against CLOCK_MONOTONIC over `over_ns` (sleeping).
/// On targets where [`ticks`] already counts ns, 1 without waiting. (The writer measures
/// over its whole run instead, without waiting.)
#[cfg(test)]
pub fn calibrate(over_ns: u64) -> f64 {
    if cfg!(not(target_arch = "x86_64")) {
        return 1.0;
    }
    let from = clock_pair();
    std::thread::sleep(std::time::Duration::from_nanos(over_ns));
    ticks_per_ns(from, clock_pair())
}

/// One thread's latency counters. The owner records; the writer reads through [`Collector`].
pub struct ThreadLatency {
    counts: [AtomicU32; BUCKETS],
    max_ticks: AtomicU64,
    /// The writer's snapshot of `counts` at its previous sample (writer only).
    seen: UnsafeCell<[u32; BUCKETS]>,
    /// Calls until the next timed one, and the random state that draws the gaps (owner only).
    pick: UnsafeCell<(u32, u64)>,
    /// How often the thread is timed lately (owner only).
    rate: UnsafeCell<Rate>,
}

/// Timed calls a thread has within one window before it is timed less often.
pub const BUSY_TIMED: u32 = 256;
/// How much less often a busy thread is timed (a power of two).
pub const BUSY_SPARSER: u32 = 8;
/// The window's length in clock ticks (≈ 5 ms at 3 GHz).
pub const WINDOW_TICKS: u64 = 1 << 24;

/// A thread's timing rate: its current window and what the gaps are drawn with.
#[derive(Debug, Clone, Copy)]
struct Rate {
    /// Clock reading of the window's first timed call.
    window_start: u64,
    /// Timed calls in the window.
    timed: u32,
    /// The gap being counted down was drawn `sparser` times longer than 1 in `every`.
    sparser: u32,
    /// What the call that ends the current gap counts for.
    weight: u32,
}

// SAFETY: `counts` and `max_ticks` are atomics; `seen` is touched only by the writer thread
// and `pick` and `rate` only by the owning thread (documented on each method).
unsafe impl Sync for ThreadLatency {}

impl ThreadLatency {
    /// Zeroed counters; `seed` makes the timed subset differ between threads.
    pub fn new(seed: u64) -> ThreadLatency {
        ThreadLatency {
            counts: [const { AtomicU32::new(0) }; BUCKETS],
            max_ticks: AtomicU64::new(0),
            seen: UnsafeCell::new([0; BUCKETS]),
            pick: UnsafeCell::new((1, seed | 1)),
            rate: UnsafeCell::new(Rate {
                window_start: 0,
                timed: 0,
                sparser: 1,
                weight: 1,
            }),
        }
    }

    /// Whether this call is timed, for one call in `every` (a power of two, at least 1) on
    /// average. The gaps between timed calls are drawn uniformly from the odd numbers 1 ..
    /// 2·`every` − 1, so the choice never locks onto a periodic pattern of calls (alternating
    /// malloc and free) and costs one decrement on the calls that are not timed.
    ///
    /// # Safety
    /// Called only by the owning thread.
    #[inline(always)]
    pub unsafe fn pick(&self, every: u32) -> bool {
        {
            // SAFETY: per the contract, only the owner touches `pick`.
            let left = unsafe { &mut (*self.pick.get()).0 };
            *left -= 1;
            if *left != 0 {
                return false;
            }
        }
        // SAFETY: as above (the borrow above has ended).
        unsafe { self.next_gap(every) };
        true
    }

    /// Draws the gap to the next timed call, at the thread's current rate.
    ///
    /// # Safety
    /// Called only by the owning thread.
    #[cold]
    unsafe fn next_gap(&self, every: u32) {
        // SAFETY: per the contract, only the owner touches `pick` and `rate`.
        let ((left, x), r) = unsafe { (&mut *self.pick.get(), &mut *self.rate.get()) };
        // The call ending this gap counts for how much sparser the gap was drawn.
        r.weight = r.sparser;
        // xorshift64.
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        let mean = every.saturating_mul(r.sparser).min(1 << 30);
        *left = 1 + ((*x >> 32) as u32 & (2 * mean - 2));
    }

    /// Counts one timed call of `dt` ticks that started at clock reading `t0` (owner thread).
    ///
    /// # Safety
    /// Called only by the owning thread, after [`ThreadLatency::pick`] said the call is timed.
    #[inline(always)]
    pub unsafe fn record_at(&self, t0: u64, dt: u64) {
        // SAFETY: per the contract, only the owner touches `rate`.
        let r = unsafe { &mut *self.rate.get() };
        self.count(dt, r.weight);
        if t0.wrapping_sub(r.window_start) > WINDOW_TICKS {
            // A new window: timed as often as asked until it is busy again.
            r.window_start = t0;
            r.timed = 0;
            r.sparser = 1;
        }
        r.timed += 1;
        if r.timed == BUSY_TIMED {
            r.sparser = BUSY_SPARSER;
        }
    }

    /// Counts one call of `dt` ticks at weight 1 (tests).
    #[cfg(test)]
    pub fn record(&self, dt: u64) {
        self.count(dt, 1);
    }

    /// Adds `weight` calls of `dt` ticks (owner thread: the only writer of `counts`).
    #[inline(always)]
    fn count(&self, dt: u64, weight: u32) {
        let c = &self.counts[bucket(dt)];
        c.store(
            c.load(Ordering::Relaxed).wrapping_add(weight),
            Ordering::Relaxed,
        );
        if dt > self.max_ticks.load(Ordering::Relaxed) {
            self.max_ticks.fetch_max(dt, Ordering::Relaxed);
        }
    }
}

/// Latency of the calls in one interval (or several merged), in ticks.
#[derive(Clone)]
pub struct Interval {
    counts: Box<[u64; BUCKETS]>,
    /// Calls counted.
    pub calls: u64,
    /// Slowest call, ticks (0 when unknown).
    pub max_ticks: u64,
}

impl Default for Interval {
    fn default() -> Self {
        Interval {
            counts: Box::new([0; BUCKETS]),
            calls: 0,
            max_ticks: 0,
        }
    }
}

impl Interval {
    /// Counts `n` calls of `ticks` each.
    #[cfg(test)]
    pub fn add(&mut self, ticks: u64, n: u64) {
        self.counts[bucket(ticks)] += n;
        self.calls += n;
        self.max_ticks = self.max_ticks.max(ticks);
    }

    /// Adds another interval's calls.
    pub fn merge(&mut self, o: &Interval) {
        for (a, b) in self.counts.iter_mut().zip(o.counts.iter()) {
            *a += b;
        }
        self.calls += o.calls;
        self.max_ticks = self.max_ticks.max(o.max_ticks);
    }

    /// Empties it.
    pub fn clear(&mut self) {
        self.counts.fill(0);
        self.calls = 0;
        self.max_ticks = 0;
    }

    /// The slowest call in ticks: the exact maximum, or, when the owner's update raced with
    /// the writer's reset, the lowest value of the highest non-empty bucket.
    pub fn max(&self) -> u64 {
        let top = self
            .counts
            .iter()
            .rposition(|&c| c != 0)
            .map_or(0, |i| bucket_range(i).0);
        self.max_ticks.max(top)
    }

    /// The `q`-quantile (0 < q ≤ 1) in ticks: the middle of the bucket holding the call of
    /// rank ⌈q·n⌉, capped at [`Interval::max`]. `None` without calls.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.calls == 0 {
            return None;
        }
        let rank = ((q * self.calls as f64).ceil() as u64).clamp(1, self.calls);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (lo, width) = bucket_range(i);
                return Some((lo + width / 2).min(self.max()));
            }
        }
        Some(self.max())
    }

    /// `(p50, p99, max)` in ns for `ticks_per_ns`, ordered p50 ≤ p99 ≤ max. `None` without
    /// calls.
    pub fn summary_ns(&self, ticks_per_ns: f64) -> Option<[u64; 3]> {
        let ns = |t: u64| (t as f64 / ticks_per_ns).round() as u64;
        let p50 = ns(self.quantile(0.50)?);
        let p99 = ns(self.quantile(0.99)?).max(p50);
        let max = ns(self.max()).max(p99);
        Some([p50, p99, max])
    }
}

/// The writer's side: turns each thread's cumulative counters into per-interval counts.
#[derive(Default)]
pub struct Collector {
    /// Calls since the last [`Collector::take`].
    pub current: Interval,
}

impl Collector {
    /// Adds what `t` counted since the previous call for `t`, and resets its maximum.
    ///
    /// # Safety
    /// Called only by the writer thread (the one owner of every `seen` snapshot).
    pub unsafe fn collect(&mut self, t: &ThreadLatency) {
        // SAFETY: per the contract, the writer is the only user of `seen`.
        let seen = unsafe { &mut *t.seen.get() };
        let cur = &mut self.current;
        for ((c, s), out) in t
            .counts
            .iter()
            .zip(seen.iter_mut())
            .zip(cur.counts.iter_mut())
        {
            let now = c.load(Ordering::Relaxed);
            let d = now.wrapping_sub(*s);
            if d != 0 {
                *s = now;
                *out += u64::from(d);
                cur.calls += u64::from(d);
            }
        }
        cur.max_ticks = cur.max_ticks.max(t.max_ticks.swap(0, Ordering::Relaxed));
    }

    /// Hands out the calls collected since the last take and starts a new interval.
    pub fn take(&mut self, into: &mut Interval) {
        into.clone_from(&self.current);
        self.current.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_log_linear_and_contiguous() {
        for v in 0..8 {
            assert_eq!(bucket(v), v as usize);
        }
        let mut prev = 0;
        for v in 1..5000u64 {
            let b = bucket(v);
            assert!(b == prev || b == prev + 1, "{v}: {prev} -> {b}");
            let (lo, w) = bucket_range(b);
            assert!(
                lo <= v && v < lo + w,
                "{v} not in bucket {b} = [{lo}, {})",
                lo + w
            );
            // Relative width at most 1/8 above the exact range.
            assert!(v < 8 || w * 8 <= lo, "{v}: width {w} at {lo}");
            prev = b;
        }
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
        assert_eq!(bucket((1 << 40) - 1), BUCKETS - 1);
        let (lo, w) = bucket_range(BUCKETS - 1);
        assert_eq!(lo + w, 1 << 40);
    }

    #[test]
    fn percentiles_of_known_distributions() {
        let mut i = Interval::default();
        assert_eq!(i.quantile(0.5), None);
        assert_eq!(i.summary_ns(1.0), None);
        // 980 calls of 100 ticks, 15 of 1000, 5 of 50000.
        i.add(100, 980);
        i.add(1000, 15);
        i.add(50_000, 5);
        let p50 = i.quantile(0.5).unwrap();
        let p99 = i.quantile(0.99).unwrap();
        assert!((96..=104).contains(&p50), "{p50}");
        assert!((960..=1024).contains(&p99), "{p99}");
        assert_eq!(i.max(), 50_000);
        assert_eq!(
            i.quantile(1.0).unwrap(),
            50_000.min(i.quantile(1.0).unwrap())
        );
        // 2.5 ticks per ns.
        let [a, b, c] = i.summary_ns(2.5).unwrap();
        assert!((38..=42).contains(&a), "{a}");
        assert!((384..=410).contains(&b), "{b}");
        assert_eq!(c, 20_000);
        // A single call: every percentile is that call.
        let mut one = Interval::default();
        one.add(777, 1);
        let [a, b, c] = one.summary_ns(1.0).unwrap();
        assert!(a <= b && b <= c && c == 777 && a >= 736, "{a} {b} {c}");
    }

    #[test]
    fn uniform_values_give_matching_quantiles() {
        let mut i = Interval::default();
        for v in 1..=10_000u64 {
            i.add(v, 1);
        }
        for q in [0.5, 0.9, 0.99] {
            let got = i.quantile(q).unwrap() as f64;
            let want = q * 10_000.0;
            assert!((got - want).abs() / want < 0.07, "q{q}: {got} vs {want}");
        }
    }

    #[test]
    fn collector_diffs_cumulative_counters() {
        let t = ThreadLatency::new(1);
        let mut c = Collector::default();
        let mut out = Interval::default();
        for _ in 0..10 {
            t.record(50);
        }
        t.record(9000);
        // SAFETY: this test plays the writer.
        unsafe { c.collect(&t) };
        c.take(&mut out);
        assert_eq!(out.calls, 11);
        assert_eq!(out.max(), 9000);
        // Nothing new: an empty interval, and the maximum was reset.
        // SAFETY: as above.
        unsafe { c.collect(&t) };
        c.take(&mut out);
        assert_eq!(out.calls, 0);
        assert_eq!(out.max(), 0);
        t.record(70);
        // SAFETY: as above.
        unsafe { c.collect(&t) };
        c.take(&mut out);
        assert_eq!(out.calls, 1);
        assert_eq!(out.max(), 70);
    }

    #[test]
    fn counters_wrap_without_losing_calls() {
        let t = ThreadLatency::new(1);
        t.counts[bucket(5)].store(u32::MAX - 1, Ordering::Relaxed);
        let mut c = Collector::default();
        let mut out = Interval::default();
        // SAFETY: this test plays the writer.
        unsafe { c.collect(&t) };
        c.take(&mut out);
        for _ in 0..5 {
            t.record(5);
        }
        // SAFETY: as above.
        unsafe { c.collect(&t) };
        c.take(&mut out);
        assert_eq!(out.calls, 5);
    }

    #[test]
    fn pick_times_about_one_call_in_every() {
        for every in [1u32, 2, 8, 64] {
            let t = ThreadLatency::new(0x1234_5678);
            // SAFETY: this thread owns `t`.
            let picks: Vec<bool> = (0..160_000).map(|_| unsafe { t.pick(every) }).collect();
            let n = picks.iter().filter(|&&p| p).count();
            let want = 160_000 / every as usize;
            assert!(n.abs_diff(want) * 20 < want, "every {every}: {n} vs {want}");
            // Alternating calls (malloc, free, malloc, ...) are both timed about as often.
            let even = picks.iter().step_by(2).filter(|&&p| p).count();
            assert!(
                even.abs_diff(n - even) * 10 < n,
                "every {every}: {even} of {n}"
            );
        }
    }

    /// A thread timed often within one window is timed `BUSY_SPARSER` times less often for the
    /// rest of it, each such call counting that much more; a new window starts afresh.
    #[test]
    fn busy_threads_are_timed_less_often_with_weights_that_keep_the_counts() {
        let every = 8u32;
        let t = ThreadLatency::new(0x9e37_79b9);
        let calls = 400_000u64;
        let mut timed = 0u64;
        // All calls within one window: 10 ticks apart.
        for i in 0..calls {
            // SAFETY: this thread owns `t`.
            if unsafe { t.pick(every) } {
                timed += 1;
                // SAFETY: as above; the call was picked.
                unsafe { t.record_at(i * 10, 3) };
            }
        }
        let counted: u64 = t
            .counts
            .iter()
            .map(|c| u64::from(c.load(Ordering::Relaxed)))
            .sum();
        let want = calls / u64::from(every);
        // Far fewer clock reads than one in `every`...
        assert!(timed * 4 < want, "{timed} timed calls");
        // ... counting for about as many calls.
        assert!(
            counted.abs_diff(want) * 10 < want,
            "{counted} counted, {want} wanted"
        );
        // A call after the window: timed as often as asked again.
        // SAFETY: as above.
        let r = unsafe { *t.rate.get() };
        assert_eq!(r.sparser, BUSY_SPARSER);
        let mut later = 0u64;
        for i in 0..80_000u64 {
            // SAFETY: as above.
            if unsafe { t.pick(every) } {
                later += 1;
                // SAFETY: as above; each call in a window of its own.
                unsafe { t.record_at((i + 1) * (WINDOW_TICKS + 1) + calls * 10, 3) };
            }
        }
        assert!(
            later.abs_diff(10_000) < 1_000,
            "{later} timed after the window"
        );
    }

    #[test]
    fn tsc_calibration_matches_the_monotonic_clock() {
        let per_ns = calibrate(5_000_000);
        assert!(per_ns > 0.05 && per_ns < 20.0, "{per_ns} ticks per ns");
        // Measure a 30 ms sleep in ticks and convert back.
        let a = clock_pair();
        std::thread::sleep(std::time::Duration::from_millis(30));
        let b = clock_pair();
        let est = (b.1 - a.1) as f64 / per_ns;
        let real = (b.0 - a.0) as f64;
        assert!((est - real).abs() / real < 0.05, "{est} ns vs {real} ns");
    }
}
