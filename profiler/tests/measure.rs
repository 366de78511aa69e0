//! `tidemark::measure` and `tidemark::stats` under `Tracking<System>`, in libtest's parallel
//! harness (this file is one test binary: one `#[global_allocator]` scenario).

use std::alloc::System;
use std::hint::black_box;
use tidemark::{measure, stats, Tracking};

#[global_allocator]
static ALLOC: Tracking<System> = Tracking::new(System);

#[test]
fn counts_exactly_what_the_closure_did() {
    let (_, m) = measure(|| {
        let v: Vec<u8> = black_box(Vec::with_capacity(100));
        drop(v);
        std::mem::forget(black_box(Box::new(5u64)));
    });
    assert_eq!(m.allocations, 2, "{m}");
    assert_eq!(m.allocated_bytes, 108, "{m}");
    assert_eq!(m.frees, 1, "{m}");
    assert_eq!(m.peak_bytes, 100, "{m}");
    assert_eq!(m.leaked_bytes, 8, "{m}");
    assert_eq!(m.leaked_allocations, 1, "{m}");
}

#[test]
fn realloc_is_one_allocation_of_the_new_size() {
    let mut v: Vec<u8> = Vec::with_capacity(16);
    let (_, m) = measure(|| {
        v.reserve_exact(64);
        black_box(&v);
    });
    assert_eq!(m.allocations, 1, "{m}");
    assert_eq!(m.allocated_bytes, 64, "{m}");
    // The old block was allocated outside the closure: its free is counted, not subtracted.
    assert_eq!(m.frees, 1, "{m}");
    assert_eq!(m.leaked_bytes, 64, "{m}");
}

#[test]
fn threads_in_parallel_see_only_their_own() {
    let handles: Vec<_> = (1..=8u64)
        .map(|k| {
            std::thread::spawn(move || {
                let (_, m) = measure(|| {
                    for _ in 0..(k * 100) {
                        black_box(Box::new([0u8; 24]));
                    }
                });
                (k, m)
            })
        })
        .collect();
    for h in handles {
        let (k, m) = h.join().unwrap();
        assert_eq!(m.allocations, k * 100, "thread {k}: {m}");
        assert_eq!(m.allocated_bytes, k * 2400, "thread {k}: {m}");
        assert_eq!(m.leaked_bytes, 0, "thread {k}: {m}");
        assert_eq!(m.peak_bytes, 24, "thread {k}: {m}");
    }
}

#[test]
fn nested_measurements_add_up() {
    let (_, outer) = measure(|| {
        let a = black_box(Box::new(1u32));
        let (_, inner) = measure(|| black_box(vec![0u8; 1000]).len());
        assert_eq!(inner.allocations, 1);
        assert_eq!(inner.leaked_bytes, 0);
        drop(a);
    });
    assert_eq!(outer.allocations, 2, "{outer}");
    assert_eq!(outer.allocated_bytes, 1004, "{outer}");
    assert_eq!(outer.peak_bytes, 1004, "{outer}");
    assert_eq!(outer.leaked_bytes, 0, "{outer}");
}

#[test]
fn a_panicking_closure_restores_the_scope() {
    let r = std::panic::catch_unwind(|| measure(|| panic!("boom")));
    assert!(r.is_err());
    let (_, m) = measure(|| black_box(Box::new(1u8)));
    assert_eq!(m.allocations, 1, "{m}");
}

#[test]
fn stats_are_process_wide() {
    let before = stats();
    let keep: Vec<Box<[u8; 4096]>> = (0..16).map(|_| Box::new([1u8; 4096])).collect();
    let after = stats();
    assert!(after.total_allocations >= before.total_allocations + 17);
    assert!(after.total_bytes >= before.total_bytes + 16 * 4096);
    assert!(after.peak_bytes >= 16 * 4096);
    drop(black_box(keep));
}

#[inline(never)]
fn recurse_kib(levels: u32) -> u64 {
    let pad = std::hint::black_box([levels as u8; 1024]);
    let below = if levels <= 1 {
        0
    } else {
        recurse_kib(levels - 1)
    };
    below + u64::from(std::hint::black_box(&pad)[7])
}

/// The closure's stack peak: 48 levels of 1 KiB frames measure at least 48 KiB and less than
/// 48 KiB plus the documented resolution and the frames' own overhead (a few dozen bytes each).
#[test]
fn measure_reports_the_stack_peak_of_the_closure() {
    let (v, m) = tidemark::measure(|| recurse_kib(48));
    assert_eq!(v, (1..=48).sum::<u64>());
    let want = 48 * 1024;
    assert!(
        m.stack_peak_bytes >= want && m.stack_peak_bytes < want + 48 * 64 + 1024,
        "{m}"
    );
    let (_, small) = tidemark::measure(|| std::hint::black_box(3) + 4);
    assert!(small.stack_peak_bytes < 2048, "{small}");
}
