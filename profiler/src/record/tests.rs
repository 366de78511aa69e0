//! The recorder core in-process, without the preload library: explicit `record_*` calls with
//! fake allocations, read back through the format reader. One test, since a process holds one
//! session at a time.

use super::*;
use crate::format::{sample_key, trailer_key, Reader, Record};
use std::collections::{HashMap, HashSet};
use std::hint::black_box;

#[inline(never)]
fn site_a(addr: usize) -> *mut u8 {
    // SAFETY: the "real" allocation is a fake address; nothing is dereferenced.
    black_box(unsafe { record_alloc(AllocKind::Malloc, 24, 0, || addr as *mut u8) })
}

#[inline(never)]
fn site_b(addr: usize) -> *mut u8 {
    // SAFETY: as above.
    black_box(unsafe { record_alloc(AllocKind::Calloc, 48, 0, || addr as *mut u8) })
}

/// An extra sampler: every sample carries key 999.
fn extra(out: &mut Vec<(u64, u64)>) {
    out.push((999, 42));
}

#[test]
fn session_records_threads_and_finishes_cleanly() {
    let dir = std::env::temp_dir().join(format!("tidemark-record-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("unit.tmk");
    let _ = std::fs::remove_file(&path);
    let cfg = Config {
        output: path.clone(),
        source: "in-process",
        allocator: "fake".to_owned(),
        flush_ms: 20,
        latency_every: 1,
        extra_sampler: Some(extra),
        ..Config::default()
    };
    start(cfg).unwrap();
    assert!(is_recording());
    assert_eq!(output_path().unwrap(), path);
    assert!(matches!(
        start(Config::default()),
        Err(RecordError::AlreadyStarted)
    ));

    for i in 0..100 {
        site_a(0x10_0000 + i * 32);
    }
    for i in 0..40 {
        // SAFETY: fake free of a fake block.
        unsafe { record_free((0x10_0000 + i * 32) as *mut u8, || {}) };
    }
    // SAFETY: fake frees and reallocs; the closures stand in for the allocator.
    unsafe {
        record_free(std::ptr::null_mut(), || {});
        let p = record_realloc(std::ptr::null_mut(), 7, AllocKind::Realloc, || {
            0x20_0000 as *mut u8
        });
        let q = record_realloc(p, 700, AllocKind::Realloc, || 0x30_0000 as *mut u8);
        let failed = record_realloc(q, 1 << 50, AllocKind::Reallocarray, std::ptr::null_mut);
        assert!(failed.is_null());
        let freed = record_realloc(q, 0, AllocKind::Realloc, std::ptr::null_mut);
        assert!(freed.is_null());
    }
    let threads: Vec<_> = (0..2)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..25 {
                    site_b(0x40_0000 + t * 0x1_0000 + i * 64);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(50));
    finish();
    finish();
    assert!(!is_recording());
    // After finish, calls pass through unrecorded.
    let mut called = false;
    // SAFETY: fake allocation.
    let p = unsafe {
        record_alloc(AllocKind::Malloc, 99, 0, || {
            called = true;
            0x50_0000 as *mut u8
        })
    };
    assert!(called && p as usize == 0x50_0000);

    let f = std::fs::File::open(&path).unwrap();
    let mut r = Reader::new(std::io::BufReader::new(f)).unwrap();
    assert_eq!(r.header().source, "in-process");
    assert_eq!(r.header().allocator, "fake");
    let mut recs = Vec::new();
    r.for_each_record(|rec| {
        recs.push(rec);
        Ok(())
    })
    .unwrap();
    assert!(r.truncation().is_none());
    let stacks: HashMap<u64, Vec<u64>> = recs
        .iter()
        .filter_map(|r| match r {
            Record::Stack { id, frames, .. } => Some((*id, frames.clone())),
            _ => None,
        })
        .collect();
    let mut sizes: HashMap<u64, Vec<(u32, u64, AllocKind)>> = HashMap::new();
    let mut frees = Vec::new();
    let mut reallocs = Vec::new();
    let mut max_seq = 0;
    let mut block_of_size = HashMap::new();
    for rec in &recs {
        match *rec {
            Record::Alloc {
                tid,
                size,
                stack,
                kind,
                seq,
                addr,
                ..
            } => {
                assert!(stacks.contains_key(&stack));
                block_of_size.insert(size, addr);
                sizes.entry(size).or_default().push((tid, stack, kind));
                max_seq = max_seq.max(seq);
            }
            Record::Free { addr, seq, .. } => {
                frees.push(addr);
                max_seq = max_seq.max(seq);
            }
            Record::Realloc {
                old_addr,
                new_addr,
                size,
                seq,
                ..
            } => {
                reallocs.push((old_addr, new_addr, size));
                max_seq = max_seq.max(seq);
            }
            _ => {}
        }
    }
    assert_eq!(sizes[&24].len(), 100);
    assert_eq!(
        sizes[&24].iter().map(|e| e.1).collect::<HashSet<_>>().len(),
        1
    );
    // `record_alloc` is inlined into `site_a`, which plays the allocation function: the stack
    // starts at the return address into its caller, this test.
    let frames = &stacks[&sizes[&24][0].1];
    let caller = session_records_threads_and_finishes_cleanly as *const () as usize as u64;
    assert!(frames.len() >= 2, "{frames:x?}");
    assert!(
        frames[0] > caller && frames[0] < caller + 64 * 1024,
        "the caller's frame should come first: {frames:x?}"
    );
    assert_eq!(sizes[&48].len(), 50);
    let tids: HashSet<u32> = sizes[&48].iter().map(|e| e.0).collect();
    assert_eq!(tids.len(), 2);
    assert_eq!(
        sizes[&7],
        vec![(sizes[&7][0].0, sizes[&7][0].1, AllocKind::Realloc)]
    );
    // The profile names blocks, not addresses: the realloc resizes the block `realloc(NULL, 7)`
    // made (at 0x20_0000), and `realloc(q, 0)` frees the resized one (at 0x30_0000).
    assert_eq!(reallocs.len(), 1);
    assert_eq!(reallocs[0].0, block_of_size[&7]);
    assert_eq!(reallocs[0].2, 700);
    assert_eq!(frees.len(), 41);
    assert!(frees.contains(&reallocs[0].1));
    for tid in &tids {
        assert!(recs
            .iter()
            .any(|r| matches!(r, Record::ThreadExit { tid: t, .. } if t == tid)));
    }
    // Timeline samples: the extra sampler's key in each, and the latency of the timed fake
    // calls (every call is timed here) in at least one, ordered.
    let samples: Vec<&Vec<(u64, u64)>> = recs
        .iter()
        .filter_map(|r| match r {
            Record::Sample { values, .. } => Some(values),
            _ => None,
        })
        .collect();
    assert!(!samples.is_empty());
    assert!(samples.iter().all(|v| v.contains(&(999, 42))));
    let lat: Vec<[u64; 3]> = samples
        .iter()
        .filter_map(|v| {
            let get = |k| v.iter().find(|p| p.0 == k).map(|p| p.1);
            Some([
                get(sample_key::ALLOC_LATENCY_P50_NS)?,
                get(sample_key::ALLOC_LATENCY_P99_NS)?,
                get(sample_key::ALLOC_LATENCY_MAX_NS)?,
            ])
        })
        .collect();
    assert!(!lat.is_empty());
    assert!(lat.iter().all(|[a, b, c]| a <= b && b <= c), "{lat:?}");
    let trailer = match recs.last().unwrap() {
        Record::Trailer { values } => values.clone(),
        other => panic!("last record is {other:?}"),
    };
    let get = |k| trailer.iter().find(|(kk, _)| *kk == k).unwrap().1;
    assert_eq!(get(trailer_key::ALLOC_CALLS), 151);
    assert_eq!(get(trailer_key::FREE_CALLS), 41);
    assert_eq!(get(trailer_key::REALLOC_CALLS), 1);
    assert_eq!(
        get(trailer_key::ALLOCATED_BYTES),
        100 * 24 + 50 * 48 + 7 + 700
    );
    assert!(get(trailer_key::END_SEQ) > max_seq);
    std::fs::remove_dir_all(&dir).unwrap();
}
