//! Loader tests on synthetic profiles.

use super::synthetic::{Builder, Ev, Rng};
use super::*;
use crate::analysis::function_totals;
use tidemark::format::{put_chunk_raw, sample_key, trailer_key};

const X: u64 = 0x100;

/// Two threads whose batches reach the file out of order, with an address that moves between
/// them: thread 1 allocates X twice, thread 2 frees it each time in between.
pub(crate) fn two_threads() -> Builder {
    let mut b = Builder::new();
    b.stacks(&[(1, &[0x1010, 0x2010]), (2, &[0x1110, 0x2010])])
        .symbols(&[
            (0x1010, &[("f", "a.c", 10)]),
            (0x1110, &[("inl", "a.c", 20), ("g", "a.c", 21)]),
            (0x2010, &[("main", "a.c", 30)]),
        ])
        .sample(1, 1_000_000, &[(sample_key::RSS_BYTES, 4096)])
        .batch(
            1,
            &[
                Ev::Alloc(0, X, 100, 1),
                Ev::Alloc(2, X, 50, 1),
                Ev::Alloc(4, 0x200, 10, 2),
                Ev::Free(5, 0x200),
            ],
        )
        .watermark(1)
        .batch(
            2,
            &[Ev::Free(1, X), Ev::Free(3, X), Ev::Alloc(6, 0x300, 7, 2)],
        )
        .watermark(7)
        .trailer(&[
            (trailer_key::END_NS, 5_000_000),
            (trailer_key::ALLOC_CALLS, 4),
        ]);
    b
}

fn load_bytes(bytes: &[u8]) -> Profile {
    load_reader(bytes, &LoadOptions::default()).expect("loads")
}

#[test]
fn replays_batches_in_sequence_order() {
    let p = load_bytes(&two_threads().bytes());
    let t = &p.totals;
    assert!(p.truncated.is_none());
    assert_eq!(t.counts.allocations, 4);
    assert_eq!(t.counts.allocated_bytes, 167);
    assert_eq!(t.frees, 3);
    assert_eq!(
        t.unmatched_frees, 0,
        "cross-thread frees pair with their blocks"
    );
    assert_eq!(t.reused_live_addresses, 0);
    assert_eq!(t.late_events, 0);
    assert_eq!(t.counts.peak_bytes, 100);
    assert_eq!(t.counts.leaked_bytes, 7);
    assert_eq!(t.counts.leaked_allocations, 1);
    // Only 0x200 (freed by its own thread right after allocation) is temporary; X was freed by
    // the other thread.
    assert_eq!(t.counts.temporary_allocations, 1);
    assert_eq!(t.duration_ns, 5_000_000);
    assert_eq!(p.duration_ms(), 5);
    assert_eq!(p.threads.len(), 2);
    assert_eq!(p.threads[0].allocations, 3);
}

#[test]
fn samples_see_the_replayed_heap() {
    let p = load_bytes(&two_threads().bytes());
    assert_eq!(p.samples.len(), 1);
    let s = &p.samples[0];
    // The sample with sequence 1 follows the allocation numbered 0 and precedes the free
    // numbered 1, although it comes first in the file.
    assert_eq!(s.live_bytes, 100);
    assert_eq!(s.live_blocks, 1);
    assert_eq!(s.value(sample_key::RSS_BYTES), Some(4096));
}

#[test]
fn per_stack_aggregates_and_function_totals() {
    let p = load_bytes(&two_threads().bytes());
    let f = function_totals(&p);
    assert_eq!(f["main"].allocations, 4);
    assert_eq!(f["main"].allocated_bytes, 167);
    assert_eq!(f["main"].peak_bytes, 100);
    assert_eq!(f["f"].allocations, 2);
    assert_eq!(f["f"].allocated_bytes, 150);
    assert_eq!(f["f"].peak_bytes, 100);
    assert_eq!(f["g"].allocations, 2);
    assert_eq!(f["inl"].allocated_bytes, 17);
    assert_eq!(f["inl"].temporary_allocations, 1);
    assert_eq!(f["g"].leaked_bytes, 7);
    assert_eq!(f["g"].leaked_allocations, 1);
    assert_eq!(f["f"].leaked_allocations, 0);
}

#[test]
fn recursion_counts_once() {
    let mut b = Builder::new();
    b.stacks(&[(1, &[0x1010, 0x1010, 0x1010, 0x2010])])
        .symbols(&[
            (0x1010, &[("rec", "r.c", 1)]),
            (0x2010, &[("main", "r.c", 9)]),
        ])
        .batch(1, &[Ev::Alloc(0, 0x10, 8, 1), Ev::Alloc(1, 0x20, 8, 1)])
        .trailer(&[]);
    let p = load_bytes(&b.bytes());
    let f = function_totals(&p);
    assert_eq!(f["rec"].allocations, 2);
    assert_eq!(f["rec"].allocated_bytes, 16);
    assert_eq!(f["main"].allocations, 2);
}

#[test]
fn realloc_is_a_free_then_an_allocation() {
    let mut b = Builder::new();
    b.stacks(&[(1, &[0x1010])])
        .batch(
            1,
            &[
                Ev::Alloc(0, 0xa0, 10, 1),
                Ev::Realloc(1, 2, 0xa0, 0xb0, 20, 1),
                Ev::Realloc(3, 4, 0xdead, 0xc0, 5, 1),
                Ev::Free(5, 0xb0),
            ],
        )
        .trailer(&[]);
    let p = load_bytes(&b.bytes());
    let t = &p.totals;
    assert_eq!(
        t.counts.allocations, 3,
        "realloc counts as an allocation call"
    );
    assert_eq!(t.reallocs, 2);
    assert_eq!(t.frees, 1, "realloc's free half is not a free call");
    assert_eq!(
        t.unmatched_frees, 1,
        "realloc of a block from before recording"
    );
    assert_eq!(t.counts.allocated_bytes, 35);
    assert_eq!(t.counts.peak_bytes, 25);
    assert_eq!(t.counts.leaked_bytes, 5);
    // 0xa0: resized by the realloc right after its allocation → not temporary (resized, not
    // discarded). 0xb0: the realloc at sequence 4 allocated in between → not temporary.
    assert_eq!(t.counts.temporary_allocations, 0);
}

#[test]
fn temporaries_need_no_allocation_in_between() {
    let mut b = Builder::new();
    b.stacks(&[(1, &[0x1010])])
        .batch(
            1,
            &[
                Ev::Alloc(0, 0xa, 1, 1),
                Ev::Alloc(1, 0xb, 1, 1),
                Ev::Free(2, 0xa), // not temporary: 0xb was allocated in between
                Ev::Free(3, 0xb), // temporary: the frees in between do not count
                Ev::Alloc(4, 0xc, 1, 1),
            ],
        )
        .batch(2, &[Ev::Alloc(5, 0xd, 1, 1)])
        .batch(1, &[Ev::Free(6, 0xc)]) // temporary: thread 2's allocation does not count
        .trailer(&[]);
    let p = load_bytes(&b.bytes());
    assert_eq!(p.totals.counts.temporary_allocations, 2);
    assert_eq!(p.stack_stats[0].counts.temporary_allocations, 2);
}

#[test]
fn peak_breakdown_uses_the_peak_instant() {
    let mut b = Builder::new();
    b.stacks(&[(1, &[0x1]), (2, &[0x2]), (3, &[0x3])])
        .batch(
            1,
            &[
                Ev::Alloc(0, 0xa, 300, 1),
                Ev::Alloc(1, 0xb, 200, 2), // peak 500 = {1: 300, 2: 200}
                Ev::Free(2, 0xa),
                Ev::Alloc(3, 0xc, 250, 3), // 450 < 500
                Ev::Free(4, 0xb),
                Ev::Alloc(5, 0xd, 100, 2),
            ],
        )
        .trailer(&[]);
    let p = load_bytes(&b.bytes());
    assert_eq!(p.totals.counts.peak_bytes, 500);
    assert_eq!(p.totals.peak_blocks, 2);
    let peaks: Vec<u64> = p.stack_stats.iter().map(|s| s.counts.peak_bytes).collect();
    assert_eq!(peaks, vec![300, 200, 0]);
    assert_eq!(peaks.iter().sum::<u64>(), p.totals.counts.peak_bytes);
    let leaks: Vec<u64> = p
        .stack_stats
        .iter()
        .map(|s| s.counts.leaked_bytes)
        .collect();
    assert_eq!(leaks, vec![0, 100, 250]);
}

#[test]
fn a_later_higher_peak_replaces_the_breakdown() {
    let mut b = Builder::new();
    b.stacks(&[(1, &[0x1]), (2, &[0x2])])
        .batch(
            1,
            &[
                Ev::Alloc(0, 0xa, 100, 1), // peak 100 = {1: 100}
                Ev::Free(1, 0xa),
                Ev::Alloc(2, 0xb, 60, 2),
                Ev::Alloc(3, 0xc, 60, 2), // peak 120 = {2: 120}
                Ev::Free(4, 0xb),
            ],
        )
        .trailer(&[]);
    let p = load_bytes(&b.bytes());
    assert_eq!(p.totals.counts.peak_bytes, 120);
    let peaks: Vec<u64> = p.stack_stats.iter().map(|s| s.counts.peak_bytes).collect();
    assert_eq!(peaks, vec![0, 120]);
}

#[test]
fn unknown_frees_and_undefined_stacks() {
    let mut b = Builder::new();
    b.batch(1, &[Ev::Free(0, 0x999), Ev::Alloc(1, 0x10, 4, 77)]);
    let p = load_bytes(&b.bytes());
    assert_eq!(p.totals.unmatched_frees, 1);
    assert_eq!(p.totals.counts.leaked_bytes, 4);
    assert!(p.truncated.is_some(), "no trailer");
    assert!(p.warnings.iter().any(|w| w.contains("never defined")));
    let f = function_totals(&p);
    assert_eq!(f[crate::analysis::UNKNOWN_FUNCTION].allocations, 1);
}

#[test]
fn duration_falls_back_to_the_last_sample() {
    let mut b = Builder::new();
    b.sample(0, 7_000_000, &[]).sample(0, 9_500_000, &[]);
    let p = load_bytes(&b.bytes());
    assert_eq!(p.duration_ms(), 9);
    assert!(p.truncated.is_some());
}

#[test]
fn without_symbols_frames_name_module_and_offset() {
    let mut b = Builder::new();
    b.modules(1, &[("/nonexistent/libx.so", 0x7000, 0x1000)])
        .stacks(&[(1, &[0x7123, 0x9999])])
        .batch(1, &[Ev::Alloc(0, 0x10, 4, 1)])
        .trailer(&[]);
    let p = load_reader(
        &b.bytes()[..],
        &LoadOptions {
            symbolize: false,
            progress: false,
            ..LoadOptions::default()
        },
    )
    .unwrap();
    let lines = crate::render::folded(&p, crate::render::Metric::Allocated);
    assert_eq!(lines, vec!["0x9999;libx.so+0x123 4"]);
    // With symbolization on, the missing file is a warning, not an error.
    let p = load_bytes(&b.bytes());
    assert!(p
        .warnings
        .iter()
        .any(|w| w.contains("/nonexistent/libx.so")));
}

#[test]
fn every_prefix_loads_or_fails_cleanly() {
    let bytes = two_threads().bytes();
    let header_len = Builder::new().bytes().len();
    for cut in 0..bytes.len() {
        match load_reader(&bytes[..cut], &LoadOptions::default()) {
            Ok(p) => assert!(p.truncated.is_some(), "cut at {cut} not flagged"),
            Err(e) => assert!(
                cut < header_len,
                "cut at {cut} after the header failed: {e}"
            ),
        }
    }
    let p = load_bytes(&bytes);
    assert!(p.truncated.is_none());
}

#[test]
fn empty_and_foreign_files_are_errors_with_a_hint() {
    let e = load_reader(&b""[..], &LoadOptions::default()).unwrap_err();
    assert!(e.to_string().contains("empty"), "{e}");
    let e = load_reader(&b"hello world, not a profile"[..], &LoadOptions::default()).unwrap_err();
    assert!(e.to_string().contains("tidemark run"), "{e}");
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..300 {
        let n = rng.below(200) as usize;
        let data: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
        let _ = load_reader(&data[..], &LoadOptions::default());
        // The same bytes after a valid header.
        let mut with_header = Builder::new().bytes();
        with_header.extend_from_slice(&data);
        let _ = load_reader(&with_header[..], &LoadOptions::default());
    }
}

#[test]
fn garbled_chunks_with_good_checksums_never_panic() {
    let mut rng = Rng(12345);
    let valid = two_threads().bytes();
    let header_len = Builder::new().bytes().len();
    let opts = LoadOptions {
        symbolize: false,
        progress: false,
        ..LoadOptions::default()
    };
    for round in 0..2000 {
        let mut out = Builder::new().bytes();
        if round % 2 == 0 {
            // Random records: a random tag byte followed by random varint-ish bytes.
            let mut payload = Vec::new();
            for _ in 0..rng.below(40) {
                payload.push(rng.below(14) as u8);
                for _ in 0..rng.below(12) {
                    let b = rng.next() as u8;
                    payload.push(if rng.below(4) == 0 { b } else { b & 0x7f });
                }
            }
            put_chunk_raw(&mut out, &payload);
        } else {
            // Valid chunks with a few bytes flipped, checksums recomputed.
            let mut r = tidemark::format::Reader::new(&valid[..]).unwrap();
            let mut payloads = Vec::new();
            let mut offset = header_len;
            while let Ok(Some(_)) = r.next_chunk() {
                let end = r.offset() as usize;
                payloads.push(valid[offset + 12..end].to_vec());
                offset = end;
            }
            for mut p in payloads {
                if !p.is_empty() && rng.below(2) == 0 {
                    for _ in 0..1 + rng.below(3) {
                        let i = rng.below(p.len() as u64) as usize;
                        p[i] ^= 1 << rng.below(8);
                    }
                }
                put_chunk_raw(&mut out, &p);
            }
        }
        if let Ok(p) = load_reader(&out[..], &opts) {
            // Whatever was loaded is internally consistent.
            let allocs: u64 = p.stack_stats.iter().map(|s| s.counts.allocations).sum();
            assert_eq!(allocs, p.totals.counts.allocations);
            let _ = crate::analysis::summary(&p, 5);
            let _ = crate::render::folded(&p, crate::render::Metric::Peak);
        }
    }
}

#[test]
fn malformed_record_truncates_instead_of_failing() {
    let mut b = two_threads();
    b.chunk(|p| p.extend_from_slice(&[2, 0xff])); // an allocation cut short
    let p = load_bytes(&b.bytes());
    // The trailer came first, so the reader saw a clean end; the bad chunk after it is reported.
    let t = p.truncated.expect("flagged");
    assert!(t.reason.contains("malformed"), "{}", t.reason);
    assert_eq!(p.totals.counts.allocations, 4);
    // Read without the events (on one thread: what embedding symbols does), the profile ends at
    // the same place, for the same reason.
    let opts = LoadOptions {
        symbolize: false,
        events: false,
        ..LoadOptions::default()
    };
    let here = load_inner(&b.bytes()[..], &opts, None, None, None, None).unwrap();
    assert_eq!(here.truncated, Some(t));
}

#[test]
fn load_path_names_the_file_in_errors() {
    let dir = std::env::temp_dir().join(format!("tidemark-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("empty.tmk");
    std::fs::write(&path, b"").unwrap();
    let e = load_path(&path, &LoadOptions::default()).unwrap_err();
    assert!(e.to_string().contains("empty.tmk"), "{e}");
    let e = load_path(&dir.join("missing.tmk"), &LoadOptions::default()).unwrap_err();
    assert!(e.to_string().contains("missing.tmk"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Without the stack tree, the loader collects the same return addresses, in the same order,
/// as with it (what embedding symbols relies on), and builds no tree.
#[test]
fn addresses_without_the_stack_tree_are_the_same() {
    let mut b = Builder::new();
    b.modules(1, &[("/nonexistent/libx.so", 0x7000, 0x1000)])
        .stacks(&[
            (1, &[0x7123, 0x7456, 0x9999]),
            (2, &[0x7124, 0x7456, 0x9999]),
            (3, &[0x7789]),
        ])
        .batch(1, &[Ev::Alloc(0, 0x10, 4, 1), Ev::Alloc(0, 0x20, 8, 3)])
        .trailer(&[]);
    let opts = |stacks| LoadOptions {
        symbolize: false,
        progress: false,
        events: false,
        stacks,
        ..LoadOptions::default()
    };
    let tree = load_inner(&b.bytes()[..], &opts(true), None, None, None, None).unwrap();
    let flat = load_inner(&b.bytes()[..], &opts(false), None, None, None, None).unwrap();
    let ips = |p: &Profile| -> Vec<(u64, u64)> {
        p.ips.iter().map(|ip| (ip.address, ip.generation)).collect()
    };
    assert_eq!(ips(&flat), ips(&tree));
    assert_eq!(ips(&flat).len(), 5);
    assert!(!tree.stacks.is_empty());
    assert!(flat.stacks.is_empty());
}

/// The trailer's peak block count, read before the profile (it sizes the replay's ring): the
/// value the whole read finds, for every version that has it; nothing for version 1 or a
/// profile cut before its trailer.
#[test]
fn the_trailer_is_found_from_chunk_header_to_chunk_header() {
    use tidemark::format::trailer_key;
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/compat");
    for v in [
        "v2-churn",
        "v3-churn",
        "v4-churn",
        "v5-churn",
        "v5-fragmentation",
    ] {
        let path = data.join(format!("{v}.tmk"));
        let p = read_path(&path, &LoadOptions::default()).unwrap();
        let whole = p
            .trailer
            .as_ref()
            .and_then(|t| t.iter().find(|(k, _)| *k == trailer_key::PEAK_BLOCKS))
            .map(|&(_, v)| v);
        // Writers since version 3's wrote the replay's totals.
        assert!(whole.is_some() || v.starts_with("v2"), "{v}");
        assert_eq!(trailer_peak_blocks(&path), whole, "{v}");
    }
    assert_eq!(trailer_peak_blocks(&data.join("v1-churn.tmk")), None);
    // Cut before the trailer: mid-file, and inside an early chunk. (A damaged trailer chunk
    // is not checked here: its count only sizes the ring.)
    let bytes = std::fs::read(data.join("v5-churn.tmk")).unwrap();
    let dir = std::env::temp_dir().join(format!("tidemark-trailer-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = read_path(&data.join("v5-churn.tmk"), &LoadOptions::default()).unwrap();
    for end in [p.readable_end as usize / 2, 200] {
        let cut = dir.join("cut.tmk");
        std::fs::write(&cut, &bytes[..end]).unwrap();
        assert_eq!(trailer_peak_blocks(&cut), None, "cut at {end}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(trailer_peak_blocks(&dir.join("missing.tmk")), None);
}

#[test]
fn the_ring_grows_with_the_live_blocks_within_bounds() {
    use super::live::{ring_for, MAX_RING, RING};
    assert_eq!(ring_for(None), RING);
    assert_eq!(ring_for(Some(0)), RING);
    assert_eq!(ring_for(Some(RING as u64)), RING);
    assert_eq!(ring_for(Some(RING as u64 + 1)), 2 * RING);
    assert_eq!(ring_for(Some(84_822)), 1 << 17);
    assert_eq!(ring_for(Some(3_000_000)), MAX_RING);
    assert_eq!(ring_for(Some(u64::MAX)), MAX_RING);
}
