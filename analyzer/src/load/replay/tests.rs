//! The replay on hand-fed events.
use super::*;

#[test]
fn peak_breakdown_is_taken_at_the_peak_instant() {
    let mut r = Replay::default();
    // stack 1: +100 (seq 0), stack 2: +50 (seq 1) → peak 150 = {1:100, 2:50}
    r.alloc_raw(1, 0, 0xa, 100, 1);
    r.alloc_raw(1, 1, 0xb, 50, 2);
    // free a (seq 2), then stack 2 grows to 140 (< 150): peak unchanged
    r.free(1, 2, 0xa, false);
    r.alloc_raw(1, 3, 0xc, 90, 2);
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
    r.alloc_raw(1, 5, 0xa, 1, 1);
    r.alloc_raw(2, 2, 0xb, 1, 1);
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
    r.free(1, 4, 0xa, false);
    r.alloc_raw(1, 3, 0xa, 10, 1);
    r.alloc_raw(1, 5, 0xb, 20, 1);
    r.sample(3, 100, vec![]);
    r.alloc_raw(2, 0, 0xa, 30, 2);
    r.free(2, 1, 0xa, false);
    r.alloc_raw(2, 2, 0xc, 40, 2);
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
        r.alloc_raw(1, i, 0x1000 + i, 1000, 1);
    }
    r.alloc_raw(1, 1000, 0x10, 1_000_000, 2);
    for i in 0..500 {
        r.free(1, 1001 + i, 0x1000 + i, false);
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
