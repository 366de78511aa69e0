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

/// The lean path (nothing kept beside a block) and the full one (block groups asked for) give
/// the same aggregates on an event stream with every case the replay distinguishes: several
/// threads and stacks, numbered blocks (in and beyond the ring) and addresses, reallocs, frees
/// by another thread, addresses reused while live, unmatched frees, and new peaks.
#[test]
fn the_lean_path_and_the_full_one_agree() {
    use tidemark::format::BLOCK_ID;
    let ring = 64;
    let mut lean = Replay::new(0).in_order(ring);
    let mut full = Replay::new(0).with_block_groups().in_order(ring);
    assert!(lean.lean && !full.lean);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut live: Vec<u64> = Vec::new();
    let (mut seq, mut block) = (0u64, 0u64);
    for _ in 0..20_000 {
        let r = next();
        let tid = 100 + (r % 3) as u32;
        let stack = ((r >> 8) % 5) as u32;
        let size = (r >> 16) % 5000;
        for rp in [&mut lean, &mut full] {
            while rp.sites.len() <= stack as usize {
                rp.new_stack(rp.sites.len() as u64 + 1);
            }
        }
        match (r >> 32) % 10 {
            // Allocations: numbered blocks mostly, an address now and then (some reused).
            0..=4 => {
                let addr = match (r >> 40) % 8 {
                    0 => 0x1000 + (r >> 44) % 16 * 16,
                    _ => {
                        block += 1;
                        BLOCK_ID | block
                    }
                };
                for rp in [&mut lean, &mut full] {
                    rp.alloc(tid, seq, addr, size, stack, false);
                }
                live.push(addr);
                seq += 1;
            }
            // Frees of a live block (the last one often: temporaries), by any thread.
            5..=7 if !live.is_empty() => {
                let i = match (r >> 40) % 2 {
                    0 => live.len() - 1,
                    _ => (r >> 41) as usize % live.len(),
                };
                let addr = live.swap_remove(i);
                for rp in [&mut lean, &mut full] {
                    rp.free(tid, seq, addr, false);
                }
                seq += 1;
            }
            // Reallocs: the free half of a live block, the allocation half a new block.
            8 if !live.is_empty() => {
                let i = (r >> 41) as usize % live.len();
                let old = live.swap_remove(i);
                block += 1;
                let new = BLOCK_ID | block;
                for rp in [&mut lean, &mut full] {
                    rp.free(tid, seq, old, true);
                    rp.alloc(tid, seq + 1, new, size, stack, true);
                }
                live.push(new);
                seq += 2;
            }
            // A free of something never allocated.
            _ => {
                for rp in [&mut lean, &mut full] {
                    rp.free(tid, seq, 0xdead_0000 + (r >> 48), (r >> 40) % 2 == 0);
                }
                seq += 1;
            }
        }
    }
    let (a, b) = (lean.finish(), full.finish());
    assert!(a.totals.reused_live_addresses > 0 && a.totals.unmatched_frees > 0);
    assert!(a.totals.counts.temporary_allocations > 0 && a.totals.reallocs > 0);
    assert!(a.totals.counts.leaked_allocations > 0);
    assert_eq!(a.totals, b.totals);
    assert_eq!(a.stats, b.stats);
    assert_eq!(a.threads, b.threads);
    assert!(a.block_groups.is_none() && b.block_groups.is_some());
}
