//! Corrupted profiles never panic, hang or allocate without bound, through the whole load path
//! (reader → loader → symbolizer) and the analyses and renderers behind every output.
//!
//! Both format versions: the hand-built profiles here are version 1 (sequenced layout, every
//! record type by hand); version 2 is exercised on the committed version-2 profile (compressed
//! event chunks, the ordered layout) and on version-2 chunks of garbage.
//!
//! Deterministic (fixed seeds, a small PRNG): truncation at every offset of a small profile,
//! random bit flips, and chunks with VALID checksums holding garbage or adversarial records
//! (huge counts and varints, undefined and huge stack ids, 4096-frame stacks, sequence numbers
//! at the edge of u64, module maps and symbol tables claiming 2^60 entries). A counting global
//! allocator bounds the memory each load takes. Runs in a few seconds in release mode.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use tidemark::format::{
    put_alloc, put_chunk, put_chunk_raw, put_context, put_free, put_modules, put_realloc,
    put_sample, put_stack_v1 as put_stack, put_symbols, put_thread, put_trailer, put_uvarint,
    put_watermark, tag, AllocKind, ChunkKind, ChunkWriter, Header, Module, Segment, SymbolFrame,
};
use tidemark_analyzer::analysis;
use tidemark_analyzer::load::{load_reader, LoadOptions};
use tidemark_analyzer::model::Profile;
use tidemark_analyzer::render::{self, Metric};
use tidemark_fixtures::prng::SplitMix64;

// ---------------------------------------------------------------------------------------------
// Memory accounting: bytes allocated and not yet freed by the current thread, and its peak.

struct Counting;

thread_local! {
    static LIVE: Cell<i64> = const { Cell::new(0) };
    static PEAK: Cell<i64> = const { Cell::new(0) };
}

fn note(delta: i64) {
    // `try_with`: the allocator may run while thread-locals are being torn down.
    let _ = LIVE.try_with(|l| {
        let v = l.get() + delta;
        l.set(v);
        let _ = PEAK.try_with(|p| p.set(p.get().max(v)));
    });
}

// SAFETY: every call is forwarded to `System` unchanged; the bookkeeping allocates nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size() as i64);
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size() as i64);
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size as i64 - layout.size() as i64);
        // SAFETY: forwarded with the caller's arguments.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(-(layout.size() as i64));
        // SAFETY: forwarded with the caller's arguments.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Most a load of one of these (small, < 1 MiB) inputs may hold at once: a chunk's payload and a
/// model proportional to the input take well under 4 MiB here. A chunk claiming 60 MiB, or a
/// record claiming 2^60 entries, must not allocate anywhere near what it claims.
const MEMORY_BOUND_BYTES: i64 = 8 << 20;

/// Random cases per generator (bit flips; garbage records). About a second in release mode.
const CASES: u32 = 20_000;

/// Longest one load may take (they take microseconds to milliseconds).
const TIME_BOUND: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------------

/// A version-1 header (the hand-built profiles use version 1's sequenced layout).
fn header() -> Vec<u8> {
    let mut h = Header {
        version: 1,
        pid: 7,
        exe: "/nonexistent/app".into(),
        cmdline: vec!["app".into()],
        page_size: 4096,
        interval_ms: 10,
        source: "preload".into(),
        allocator: "glibc".into(),
        unwind: "dwarf".into(),
        ..Header::default()
    }
    .encode();
    h[8..10].copy_from_slice(&1u16.to_le_bytes());
    h
}

/// A version-1 chunk.
fn chunk(out: &mut Vec<u8>, f: impl FnOnce(&mut Vec<u8>)) {
    let mut p = Vec::new();
    f(&mut p);
    put_chunk_raw(out, &p);
}

/// A small, complete profile with every kind of record.
fn base_profile() -> Vec<u8> {
    let mut out = header();
    chunk(&mut out, |p| {
        put_modules(
            p,
            1,
            &[Module {
                path: "/nonexistent/app".into(),
                build_id: vec![1, 2, 3, 4],
                base: 0x1000,
                segments: vec![Segment {
                    start: 0x1000,
                    size: 0x10000,
                    flags: 5,
                }],
            }],
        )
    });
    chunk(&mut out, |p| {
        put_thread(p, 1, b"main", 0x7000_0000, 0x7010_0000);
        put_stack(p, 1, &[0x1010, 0x1020, 0x1030]);
        put_stack(p, 2, &[0x1040, 0x1030]);
    });
    chunk(&mut out, |p| {
        put_context(p, 1, 1);
        put_alloc(p, 0, 0xa000, 64, 1, AllocKind::Malloc, 0);
        put_alloc(p, 1, 0xb000, 128, 2, AllocKind::Calloc, 0);
        put_free(p, 1, 0xa000);
        put_realloc(p, 1, 1, 0xb000, 0xc000, 256, 1, AllocKind::Realloc);
        put_alloc(p, 1, 0xd000, 32, 2, AllocKind::Malloc, 16);
    });
    chunk(&mut out, |p| {
        put_sample(p, 6, 5_000_000, &[(1, 288), (2, 2)])
    });
    chunk(&mut out, |p| put_watermark(p, 6));
    chunk(&mut out, |p| {
        put_symbols(
            p,
            None,
            &[(
                0x1010,
                vec![SymbolFrame {
                    function: "app::f".into(),
                    file: "src/f.rs".into(),
                    line: 3,
                }],
            )],
        )
    });
    chunk(&mut out, |p| put_trailer(p, &[(1, 6_000_000), (2, 0)]));
    out
}

/// Loads `bytes` and runs every analysis and renderer on the result; fails the test on a panic,
/// on a load slower than [`TIME_BOUND`] or one holding more than [`MEMORY_BOUND_BYTES`].
fn exercise(case: &str, bytes: &[u8], symbolize: bool) -> Option<Profile> {
    let started = Instant::now();
    let live_before = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(live_before));
    let result = catch_unwind(AssertUnwindSafe(|| {
        let opts = LoadOptions {
            symbolize,
            progress: false,
            ..LoadOptions::default()
        };
        let p = load_reader(bytes, &opts).ok()?;
        let peak = PEAK.with(Cell::get) - live_before;
        assert!(
            peak < MEMORY_BOUND_BYTES,
            "{case}: loading {} bytes held {peak} bytes at its peak",
            bytes.len()
        );
        let _ = analysis::summary(&p, 10);
        let _ = analysis::sites(&p);
        let _ = analysis::function_totals(&p);
        let _ = analysis::stack_quality(&p).warnings();
        for m in Metric::ALL {
            let _ = render::folded(&p, m);
            let _ = render::folded_to_sites(&p, m);
            let mut svg = Vec::new();
            let _ = render::flamegraph_svg(&p, m, false, &mut svg);
        }
        let _ = render::timeline::csv(&tidemark_analyzer::analysis::views::timeline_columns(&p));
        Some(p)
    }));
    let elapsed = started.elapsed();
    assert!(
        elapsed < TIME_BOUND,
        "{case}: took {elapsed:?} on {} bytes",
        bytes.len()
    );
    match result {
        Ok(p) => p,
        Err(e) => {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("{case}: panicked: {msg}");
        }
    }
}

#[test]
fn the_base_profile_loads_whole() {
    let p = exercise("base", &base_profile(), false).expect("the base profile loads");
    assert!(p.truncated.is_none(), "{:?}", p.truncated);
    assert_eq!(p.totals.counts.allocations, 4);
    assert_eq!(p.totals.frees, 1);
}

#[test]
fn truncation_at_every_offset() {
    let base = base_profile();
    for len in 0..base.len() {
        if let Some(p) = exercise(&format!("cut at {len}"), &base[..len], false) {
            assert!(
                p.truncated.is_some(),
                "cut at {len} of {} is not flagged",
                base.len()
            );
        }
    }
}

#[test]
fn random_bit_flips() {
    let base = base_profile();
    let mut rng = SplitMix64::new(0x7ede_0001);
    for i in 0..CASES {
        let mut bytes = base.clone();
        for _ in 0..=rng.below(8) {
            let at = rng.below(bytes.len() as u64) as usize;
            bytes[at] ^= 1 << rng.below(8);
        }
        if rng.below(4) == 0 {
            let keep = rng.below(bytes.len() as u64) as usize;
            bytes.truncate(keep);
        }
        exercise(&format!("flip case {i}"), &bytes, i % 50 == 0);
    }
}

/// A varint from the adversarial set: 0, small, edges of every width, u64::MAX.
fn nasty(rng: &mut SplitMix64) -> u64 {
    match rng.below(10) {
        0 => 0,
        1 => rng.below(8),
        2 => 1 << 60,
        3 => u64::MAX,
        4 => u64::from(u32::MAX),
        5 => u64::MAX - rng.below(4),
        6 => 1 << rng.below(64),
        7 => 4096 + rng.below(3) - 1,
        _ => rng.next_u64(),
    }
}

/// One record with a valid tag and adversarial fields (or random bytes after a random tag).
fn nasty_record(p: &mut Vec<u8>, rng: &mut SplitMix64) {
    let tags = [
        tag::CONTEXT,
        tag::ALLOC,
        tag::FREE,
        tag::REALLOC,
        tag::STACK,
        tag::THREAD,
        tag::THREAD_EXIT,
        tag::MODULES,
        tag::SAMPLE,
        tag::WATERMARK,
        tag::TRAILER,
        tag::MESSAGE,
        tag::SYMBOLS,
    ];
    let t = tags[rng.below(tags.len() as u64) as usize];
    p.push(t);
    // A random number of adversarial varints; the reader must reject or accept them safely.
    for _ in 0..rng.below(12) {
        put_uvarint(p, nasty(rng));
    }
    if rng.below(3) == 0 {
        for _ in 0..rng.below(32) {
            p.push(rng.next_u64() as u8);
        }
    }
}

#[test]
fn valid_checksums_with_garbage_records() {
    let mut rng = SplitMix64::new(0x7ede_0002);
    let base = base_profile();
    // Everything up to (not including) the trailer chunk: a prefix that loads.
    let prefix_len = base.len() - {
        let mut t = Vec::new();
        chunk(&mut t, |p| put_trailer(p, &[(1, 6_000_000), (2, 0)]));
        t.len()
    };
    for i in 0..CASES {
        let mut bytes = if rng.below(2) == 0 {
            header()
        } else {
            base[..prefix_len].to_vec()
        };
        for _ in 0..1 + rng.below(3) {
            chunk(&mut bytes, |p| {
                for _ in 0..1 + rng.below(6) {
                    nasty_record(p, &mut rng);
                }
            });
        }
        exercise(&format!("garbage case {i}"), &bytes, false);
    }
}

#[test]
fn adversarial_header_values() {
    let mut rng = SplitMix64::new(0x7ede_0003);
    let base = base_profile();
    let body_start = header().len();
    for i in 0..2000 {
        let h = Header {
            version: 1,
            pid: nasty(&mut rng) as u32,
            exe: "/nonexistent/app".into(),
            cmdline: vec![],
            start_unix_ns: nasty(&mut rng),
            start_mono_ns: nasty(&mut rng),
            page_size: nasty(&mut rng),
            sampling_rate: nasty(&mut rng),
            interval_ms: nasty(&mut rng),
            source: "preload".into(),
            limit_bytes: nasty(&mut rng),
            allocator: "glibc".into(),
            unwind: ["fp", "dwarf", ""][rng.below(3) as usize].into(),
            allocator_requested: ["", "system", "jemalloc"][rng.below(3) as usize].into(),
            escape: rng.below(2) == 1,
        };
        let mut bytes = h.encode();
        bytes[8..10].copy_from_slice(&1u16.to_le_bytes());
        bytes.extend_from_slice(&base[body_start..]);
        exercise(&format!("header case {i}: {h:?}"), &bytes, false);
    }
}

#[test]
fn adversarial_records_with_valid_checksums() {
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut add = |name: &'static str, f: &dyn Fn(&mut Vec<u8>)| {
        let mut out = header();
        chunk(&mut out, |p| f(p));
        cases.push((name, out));
    };
    add("modules claiming 2^60 entries", &|p| {
        p.push(tag::MODULES);
        put_uvarint(p, 1);
        put_uvarint(p, 1 << 60);
        p.extend_from_slice(&[0; 64]);
    });
    add("module with 2^60 segments", &|p| {
        p.push(tag::MODULES);
        put_uvarint(p, 1);
        put_uvarint(p, 1);
        put_uvarint(p, 0); // path ""
        put_uvarint(p, 0); // build id
        put_uvarint(p, 0x1000);
        put_uvarint(p, 1 << 60);
        for _ in 0..1000 {
            put_uvarint(p, u64::MAX);
        }
    });
    add("module segments wrapping the address space", &|p| {
        put_modules(
            p,
            1,
            &[Module {
                path: "/nonexistent/x".into(),
                build_id: vec![],
                base: u64::MAX,
                segments: vec![
                    Segment {
                        start: u64::MAX - 10,
                        size: u64::MAX,
                        flags: 5,
                    };
                    3
                ],
            }],
        );
        put_stack(p, 1, &[u64::MAX, 0, u64::MAX - 5]);
        put_context(p, 1, 1);
        put_alloc(p, 0, 1, 1, 1, AllocKind::Malloc, 0);
    });
    add("symbols claiming 2^60 entries", &|p| {
        let mut body = Vec::new();
        put_uvarint(&mut body, 1 << 60);
        put_uvarint(&mut body, 0x1000);
        put_uvarint(&mut body, 1 << 60);
        p.push(tag::SYMBOLS);
        put_uvarint(p, body.len() as u64);
        p.extend_from_slice(&body);
    });
    add("samples with 2^60 values", &|p| {
        p.push(tag::SAMPLE);
        put_uvarint(p, 1);
        put_uvarint(p, 1);
        put_uvarint(p, 1 << 60);
    });
    add("trailer with 2^60 values", &|p| {
        p.push(tag::TRAILER);
        put_uvarint(p, 1 << 60);
    });
    add("a string claiming 2^60 bytes", &|p| {
        p.push(tag::MESSAGE);
        p.push(2);
        put_uvarint(p, 1 << 60);
    });
    add("a varint of eleven bytes", &|p| {
        p.push(tag::WATERMARK);
        p.extend_from_slice(&[0xff; 11]);
    });
    add("stacks of 4096 and 4097 frames", &|p| {
        let frames: Vec<u64> = (0..4096u64).map(|i| 0x1000 + i * 16).collect();
        put_stack(p, 1, &frames);
        put_stack(p, 2, &frames.repeat(2)[..4097]);
    });
    add("4096-frame stacks of one recursive frame, many ids", &|p| {
        let frames = vec![0x1234u64; 4096];
        for id in 0..40 {
            put_stack(p, id, &frames);
        }
        put_context(p, 1, 1);
        for id in 0..40 {
            put_alloc(p, 1, 0x10_0000 + id * 64, 64, id, AllocKind::Malloc, 0);
        }
    });
    add("events on undefined and huge stack ids", &|p| {
        put_context(p, 1, 0);
        put_alloc(p, 0, 0x1000, 10, u64::MAX, AllocKind::Malloc, 0);
        put_alloc(p, 1, 0x2000, 10, 1 << 60, AllocKind::Malloc, 0);
        put_realloc(
            p,
            1,
            1,
            0x2000,
            0x3000,
            20,
            u64::MAX - 1,
            AllocKind::Realloc,
        );
    });
    add("sizes and addresses at the edge of u64", &|p| {
        put_stack(p, 1, &[0x1000]);
        put_context(p, u32::MAX, u64::MAX - 3);
        put_alloc(p, 0, u64::MAX, u64::MAX, 1, AllocKind::Malloc, u64::MAX);
        put_alloc(p, 1, 0, u64::MAX, 1, AllocKind::Malloc, 0);
        put_realloc(p, 1, 1, u64::MAX, 1, u64::MAX, 1, AllocKind::Realloc);
        put_free(p, 5, u64::MAX);
        put_free(p, 0, 0);
    });
    add("sequence numbers wrapping around", &|p| {
        put_stack(p, 1, &[0x1000]);
        put_context(p, 1, u64::MAX);
        for i in 0..50u64 {
            put_alloc(p, 1, 0x1000 + i * 16, 16, 1, AllocKind::Malloc, 0);
        }
        put_watermark(p, u64::MAX);
        put_watermark(p, 0);
        put_sample(p, u64::MAX, u64::MAX, &[(u64::MAX, u64::MAX)]);
        put_sample(p, 0, 0, &[]);
    });
    add(
        "the same address allocated twice and freed three times",
        &|p| {
            put_stack(p, 1, &[0x1000]);
            put_context(p, 1, 1);
            put_alloc(p, 0, 0x5000, 8, 1, AllocKind::Malloc, 0);
            put_alloc(p, 1, 0x5000, 8, 1, AllocKind::Malloc, 0);
            put_free(p, 1, 0x5000);
            put_free(p, 1, 0x5000);
            put_free(p, 1, 0x5000);
            put_realloc(p, 1, 1, 0x5000, 0x5000, 0, 1, AllocKind::Realloc);
        },
    );
    add("a stack redefined with a different length", &|p| {
        put_stack(p, 1, &[0x1000; 128]);
        put_stack(p, 1, &[0x1000, 0x2000]);
        put_context(p, 1, 1);
        put_alloc(p, 0, 0x5000, 8, 1, AllocKind::Malloc, 0);
    });
    add(
        "unknown extensible records and a trailer in the middle",
        &|p| {
            p.push(200);
            put_uvarint(p, 3);
            p.extend_from_slice(b"abc");
            put_trailer(p, &[(1, 1)]);
            put_stack(p, 1, &[0x1000]);
        },
    );
    for (name, bytes) in &cases {
        exercise(name, bytes, false);
        exercise(name, bytes, true);
    }
    // A chunk claiming more than the format allows, and one claiming more than the file holds.
    let mut huge = header();
    huge.extend_from_slice(&tidemark::format::CHUNK_MAGIC);
    huge.extend_from_slice(&u32::MAX.to_le_bytes());
    huge.extend_from_slice(&0u32.to_le_bytes());
    let p = exercise("chunk length u32::MAX", &huge, false).expect("loads as truncated");
    assert!(p.truncated.is_some());
    let mut short = header();
    short.extend_from_slice(&tidemark::format::CHUNK_MAGIC);
    short.extend_from_slice(&((60u32 << 20).to_le_bytes()));
    short.extend_from_slice(&0u32.to_le_bytes());
    short.extend_from_slice(&[0; 100]);
    let p = exercise("chunk length past the end", &short, false).expect("loads as truncated");
    assert!(p.truncated.is_some());
}

/// The committed version-2 profile: compressed event chunks in the ordered layout.
fn v2_profile() -> Vec<u8> {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/compat/v2-churn.tmk");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn version_2_truncations_and_bit_flips() {
    let base = v2_profile();
    let p = exercise("v2 base", &base, false).expect("the v2 profile loads");
    assert!(p.truncated.is_none());
    // Where the trailer chunk ends: a cut after it only loses appended symbols.
    let mut at = 16 + u32::from_le_bytes(base[12..16].try_into().unwrap()) as usize + 4;
    let mut trailer_end = base.len();
    while at + 12 <= base.len() {
        let len = u32::from_le_bytes(base[at + 4..at + 8].try_into().unwrap()) as usize;
        let kind = base[at + 12];
        at += 12 + len;
        if kind == ChunkKind::Trailer as u8 {
            trailer_end = at;
            break;
        }
    }
    let step = (base.len() / 2000).max(1);
    for len in (0..base.len()).step_by(step) {
        if let Some(p) = exercise(&format!("v2 cut at {len}"), &base[..len], false) {
            assert_eq!(
                p.truncated.is_some(),
                len < trailer_end,
                "v2 cut at {len} (trailer ends at {trailer_end})"
            );
        }
    }
    let mut rng = SplitMix64::new(0x7ede_0004);
    for i in 0..CASES / 10 {
        let mut bytes = base.clone();
        for _ in 0..=rng.below(8) {
            let at = rng.below(bytes.len() as u64) as usize;
            bytes[at] ^= 1 << rng.below(8);
        }
        exercise(&format!("v2 flip case {i}"), &bytes, false);
    }
}

#[test]
fn version_2_chunks_of_garbage_with_valid_checksums() {
    let mut rng = SplitMix64::new(0x7ede_0005);
    let mut zstd = ChunkWriter::new(1).unwrap();
    let kinds = [
        ChunkKind::Events,
        ChunkKind::Definitions,
        ChunkKind::Meta,
        ChunkKind::Trailer,
        ChunkKind::Appendix,
    ];
    for i in 0..CASES {
        let mut bytes = Header {
            version: 2,
            pid: 7,
            ..Header::default()
        }
        .encode();
        for _ in 0..1 + rng.below(3) {
            let mut p = Vec::new();
            for _ in 0..1 + rng.below(40) {
                nasty_record(&mut p, &mut rng);
            }
            let kind = kinds[rng.below(kinds.len() as u64) as usize];
            match rng.below(3) {
                0 => put_chunk(&mut bytes, kind, &p),
                1 => zstd.put(&mut bytes, kind, &p).unwrap(),
                _ => {
                    // A payload whose framing (kind, codec, length) is itself garbage.
                    let mut raw = vec![rng.below(6) as u8, rng.below(3) as u8];
                    put_uvarint(&mut raw, nasty(&mut rng));
                    raw.extend_from_slice(&p);
                    put_chunk_raw(&mut bytes, &raw);
                }
            }
        }
        exercise(&format!("v2 garbage case {i}"), &bytes, false);
    }
}
