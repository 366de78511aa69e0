//! End-to-end: C programs built without frame pointers, run under `libtidemark_preload.so`,
//! profiles read back through `tidemark::format::Reader` and checked against exact counts.

mod support;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use support::*;
use tidemark::format::{sample_key as sk, AllocKind, Record};

/// Symbol size from `nm -S` (for "this return address lies in function f" checks).
fn symbol_size(exe: &std::path::Path, name: &str) -> u64 {
    let out = Command::new("nm").arg("-S").arg(exe).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() == 4 && f[3] == name {
            return u64::from_str_radix(f[1], 16).unwrap();
        }
    }
    panic!("{name} not in nm output");
}

fn parse_addr(stdout: &str, key: &str) -> u64 {
    let tok = stdout
        .split_whitespace()
        .find_map(|t| t.strip_prefix(&format!("{key}=")))
        .unwrap();
    u64::from_str_radix(tok.trim_start_matches("0x"), 16).unwrap()
}

#[test]
fn basic_program_exact_counts_and_stacks() {
    basic_program_on("glibc");
}

#[test]
fn basic_program_on_jemalloc_exact_counts_and_statistics() {
    let p = basic_program_on("jemalloc");
    // Every timeline sample carries jemalloc's statistics; the program's blocks are in them.
    let samples: Vec<&Vec<(u64, u64)>> = p
        .records
        .iter()
        .filter_map(|r| match r {
            Record::Sample { values, .. } => Some(values),
            _ => None,
        })
        .collect();
    assert!(!samples.is_empty());
    for v in &samples {
        let get = |k| v.iter().find(|p| p.0 == k).map(|p| p.1);
        for k in [
            sk::JEMALLOC_ALLOCATED,
            sk::JEMALLOC_ACTIVE,
            sk::JEMALLOC_RESIDENT,
            sk::JEMALLOC_MAPPED,
            sk::JEMALLOC_RETAINED,
        ] {
            assert!(get(k).is_some(), "sample without key {k}: {v:?}");
        }
        assert!(get(sk::JEMALLOC_ACTIVE) >= get(sk::JEMALLOC_ALLOCATED));
    }
    // The last sample sees the 700 blocks of 77 bytes that were never freed, at least.
    let last = samples.last().unwrap();
    let allocated = last
        .iter()
        .find(|p| p.0 == sk::JEMALLOC_ALLOCATED)
        .unwrap()
        .1;
    assert!(allocated >= 700 * 77, "{allocated}");
}

/// Runs `basic.c` on `allocator` and checks the exact records every entry point leaves.
fn basic_program_on(allocator: &str) -> Profile {
    let dir = Scratch::new(&format!("basic-{allocator}"));
    let exe = build_c(&dir, "basic");
    let out_path = dir.path("basic.tmk");
    let mut c = preloaded(&exe, &out_path);
    c.env("TIDEMARK_ALLOCATOR", allocator);
    let out = run_ok(c);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p = read_profile(&out_path);

    // Header.
    assert!(p.truncation.is_none(), "{:?}", p.truncation);
    assert_eq!(p.header.source, "preload");
    assert_eq!(p.header.allocator, allocator);
    assert_eq!(p.header.unwind, "dwarf");
    assert_eq!(p.header.exe, exe.to_string_lossy());
    assert_eq!(p.header.cmdline, vec![exe.to_string_lossy().into_owned()]);
    assert_eq!(p.header.page_size, 4096);
    assert_eq!(p.header.interval_ms, 10);

    // Every event's stack is defined; collect events by size.
    /// `(addr, stack, kind, align, tid)` of the allocations of one size.
    type Events = Vec<(u64, u64, AllocKind, u64, u32)>;
    let mut by_size: HashMap<u64, Events> = HashMap::new();
    let mut frees: HashSet<u64> = HashSet::new();
    let mut free_count = 0;
    let mut reallocs = Vec::new();
    let mut seqs = HashSet::new();
    for r in &p.records {
        match *r {
            Record::Alloc {
                tid,
                seq,
                addr,
                size,
                stack,
                kind,
                align,
            } => {
                p.stack_of(stack);
                assert!(seqs.insert(seq));
                by_size
                    .entry(size)
                    .or_default()
                    .push((addr, stack, kind, align, tid));
            }
            Record::Free { seq, addr, .. } => {
                assert!(seqs.insert(seq));
                frees.insert(addr);
                free_count += 1;
            }
            Record::Realloc {
                free_seq,
                seq,
                old_addr,
                new_addr,
                size,
                stack,
                kind,
                ..
            } => {
                p.stack_of(stack);
                assert!(free_seq < seq);
                assert!(seqs.insert(seq) && seqs.insert(free_seq));
                reallocs.push((old_addr, new_addr, size, kind));
            }
            _ => {}
        }
    }

    // 1000 x malloc(77) from one call site, 300 of them freed.
    let a77 = &by_size[&77];
    assert_eq!(a77.len(), 1000);
    assert!(a77.iter().all(|e| e.2 == AllocKind::Malloc && e.3 == 0));
    let stack77: HashSet<u64> = a77.iter().map(|e| e.1).collect();
    assert_eq!(stack77.len(), 1, "one call site, one stack");
    let freed77 = a77.iter().filter(|e| frees.contains(&e.0)).count();
    assert_eq!(freed77, 300);

    // The stack: alloc77's call site first, then main's; both in the executable.
    let frames = p.stack_of(*stack77.iter().next().unwrap());
    let alloc77 = parse_addr(&stdout, "alloc77");
    let main_fn = parse_addr(&stdout, "main");
    let exe_mod = p.module_of(frames[0]).expect("frame in a known module");
    assert_eq!(exe_mod.path, exe.to_string_lossy());
    assert!(
        frames[0] > alloc77 && frames[0] < alloc77 + symbol_size(&exe, "alloc77"),
        "{frames:x?}"
    );
    let basic_size = symbol_size(&exe, "basic");
    assert!(
        frames[1..]
            .iter()
            .any(|&f| f > main_fn && f < main_fn + basic_size),
        "the caller's frame is missing: {frames:x?}"
    );
    assert!(frames.len() >= 3 && frames.len() < 20, "{frames:x?}");
    assert!(
        frames
            .iter()
            .any(|&f| p.module_of(f).is_some_and(|m| m.path.contains("libc.so"))),
        "__libc_start_main should be on the stack: {frames:x?}"
    );

    // calloc(10, 12).
    let c = &by_size[&120];
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].2, AllocKind::Calloc);

    // realloc(NULL, 40) is an allocation of kind realloc; realloc(p, 4000) a realloc record;
    // realloc(p, 0) a free; the failed realloc records nothing.
    assert_eq!(by_size[&40].len(), 1);
    assert_eq!(by_size[&40][0].2, AllocKind::Realloc);
    let r4000: Vec<_> = reallocs.iter().filter(|r| r.2 == 4000).collect();
    assert_eq!(r4000.len(), 1);
    assert_eq!(r4000[0].0, by_size[&40][0].0);
    assert_eq!(r4000[0].3, AllocKind::Realloc);
    assert!(
        frees.contains(&r4000[0].1),
        "realloc(p, 0) must be recorded as a free"
    );
    assert!(
        !reallocs.iter().any(|r| r.2 > 1 << 40),
        "failed realloc recorded"
    );
    assert_eq!(by_size[&8].len(), 1);
    assert!(frees.contains(&by_size[&8][0].0));
    // reallocarray(NULL, 7, 9) allocates 63 bytes of kind reallocarray; reallocarray(p, 11,
    // 13) is a realloc record of 143; the overflowing call records nothing; the block is freed.
    assert_eq!(by_size[&63].len(), 1);
    assert_eq!(by_size[&63][0].2, AllocKind::Reallocarray);
    let r143: Vec<_> = reallocs.iter().filter(|r| r.2 == 143).collect();
    assert_eq!(r143.len(), 1);
    assert_eq!(r143[0].0, by_size[&63][0].0);
    assert_eq!(r143[0].3, AllocKind::Reallocarray);
    assert!(frees.contains(&r143[0].1));
    assert_eq!(reallocs.len(), 2, "{reallocs:?}");

    // Aligned entry points with their kinds and alignments.
    let kinds = |size: u64| {
        by_size[&size]
            .iter()
            .map(|e| (e.2, e.3))
            .collect::<Vec<_>>()
    };
    assert_eq!(kinds(100), vec![(AllocKind::PosixMemalign, 64)]);
    assert_eq!(kinds(64), vec![(AllocKind::AlignedAlloc, 32)]);
    assert_eq!(kinds(10), vec![(AllocKind::Memalign, 128)]);
    assert_eq!(
        by_size[&5].iter().map(|e| e.2).collect::<HashSet<_>>(),
        HashSet::from([AllocKind::Valloc, AllocKind::Pvalloc])
    );

    // strdup allocates inside libc: the first frame is in libc, the next in the program.
    let dup = &by_size[&15];
    assert_eq!(dup.len(), 1);
    let f = p.stack_of(dup[0].1);
    assert!(
        p.module_of(f[0]).unwrap().path.contains("libc.so"),
        "{f:x?}"
    );
    assert_eq!(p.module_of(f[1]).unwrap().path, exe.to_string_lossy());

    // malloc inside a qsort callback: the stack passes through libc's frames back into the
    // program (qsort_site, then basic).
    let q = &by_size[&91];
    assert_eq!(q.len(), 1);
    let f = p.stack_of(q[0].1);
    let in_exe: Vec<bool> = f
        .iter()
        .map(|&a| {
            p.module_of(a)
                .is_some_and(|m| m.path == exe.to_string_lossy())
        })
        .collect();
    let first_libc = in_exe.iter().position(|&x| !x).expect("libc frames");
    assert!(
        in_exe[first_libc..].iter().any(|&x| x),
        "no program frame after libc: {f:x?}"
    );
    assert!(f.iter().any(|&a| a > main_fn && a < main_fn + basic_size));

    // Two threads x 50 x malloc(33), each with its own tid and thread records.
    let t33 = &by_size[&33];
    assert_eq!(t33.len(), 100);
    let tids: HashSet<u32> = t33.iter().map(|e| e.4).collect();
    assert_eq!(tids.len(), 2);
    for tid in &tids {
        assert_eq!(t33.iter().filter(|e| e.4 == *tid).count(), 50);
        assert!(p.records.iter().any(|r| matches!(r, Record::Thread { tid: t, stack_lo, stack_hi, .. } if t == tid && stack_lo < stack_hi)));
        assert!(p
            .records
            .iter()
            .any(|r| matches!(r, Record::ThreadExit { tid: t, .. } if t == tid)));
    }
    let stacks33: HashSet<u64> = t33.iter().map(|e| e.1).collect();
    assert_eq!(
        stacks33.len(),
        1,
        "both threads allocate from the same call site"
    );

    // Nothing recorded for free(NULL) or the calloc overflow; the trailer's totals match.
    assert!(!frees.contains(&0));
    let trailer = p
        .records
        .iter()
        .find_map(|r| match r {
            Record::Trailer { values } => Some(values.clone()),
            _ => None,
        })
        .expect("trailer");
    let get = |k| {
        trailer
            .iter()
            .find(|(kk, _)| *kk == k)
            .map(|p| p.1)
            .unwrap()
    };
    use tidemark::format::trailer_key as tk;
    let n_alloc = p
        .records
        .iter()
        .filter(|r| matches!(r, Record::Alloc { .. }))
        .count() as u64;
    assert_eq!(get(tk::ALLOC_CALLS), n_alloc);
    assert_eq!(get(tk::FREE_CALLS), free_count);
    assert_eq!(get(tk::REALLOC_CALLS), reallocs.len() as u64);
    assert_eq!(get(tk::DROPPED_EVENTS), 0);
    assert!(get(tk::END_SEQ) > seqs.iter().copied().max().unwrap());

    // Timeline samples; no watermark (format version 3: the stream is in order).
    assert!(p.records.iter().any(|r| matches!(r, Record::Sample { values, .. } if values.iter().any(|(k, v)| *k == tidemark::format::sample_key::RSS_BYTES && *v > 0))));
    assert!(!p
        .records
        .iter()
        .any(|r| matches!(r, Record::Watermark { .. })));
    p
}

/// The values of every timeline sample.
fn samples(p: &Profile) -> Vec<&Vec<(u64, u64)>> {
    p.records
        .iter()
        .filter_map(|r| match r {
            Record::Sample { values, .. } => Some(values),
            _ => None,
        })
        .collect()
}

fn value(v: &[(u64, u64)], k: u64) -> Option<u64> {
    v.iter().find(|p| p.0 == k).map(|p| p.1)
}

#[test]
fn samples_carry_allocator_latency() {
    for (every, allocator) in [("1", "glibc"), ("8", "jemalloc")] {
        let dir = Scratch::new(&format!("latency-{every}"));
        let exe = build_c(&dir, "basic");
        let out_path = dir.path("latency.tmk");
        let mut c = preloaded(&exe, &out_path);
        c.env("TIDEMARK_LATENCY_EVERY", every)
            .env("TIDEMARK_ALLOCATOR", allocator);
        run_ok(c);
        let p = read_profile(&out_path);
        let mut with = 0;
        for v in samples(&p) {
            let keys = [
                sk::ALLOC_LATENCY_P50_NS,
                sk::ALLOC_LATENCY_P99_NS,
                sk::ALLOC_LATENCY_MAX_NS,
            ];
            let [p50, p99, max] = keys.map(|k| value(v, k));
            match (p50, p99, max) {
                (Some(p50), Some(p99), Some(max)) => {
                    with += 1;
                    assert!(p50 <= p99 && p99 <= max, "{p50} {p99} {max}");
                    assert!(p50 > 0 && max < 10_000_000_000, "{p50} {max}");
                }
                (None, None, None) => {}
                other => panic!("latency keys come together: {other:?}"),
            }
        }
        assert!(
            with >= 1,
            "no sample with latency keys ({every}, {allocator})"
        );
    }
}

#[test]
fn jemalloc_backend_returns_early_blocks_to_glibc_and_takes_options() {
    let dir = Scratch::new("backend");
    build_shared(&dir, "early");
    let exe = build_c_with(&dir, "backend", &["early"]);
    let run = |allocator: &str, conf: Option<&str>, name: &str| {
        let out_path = dir.path(name);
        let mut c = preloaded(&exe, &out_path);
        c.env("TIDEMARK_ALLOCATOR", allocator);
        if let Some(conf) = conf {
            c.env("TIDEMARK_MALLOC_CONF", conf);
        }
        let out = run_ok(c);
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(stdout.ends_with("ok\n"), "{stdout}");
        (stdout, read_profile(&out_path))
    };

    let (stdout, p) = run("jemalloc", Some("dirty_decay_ms:0,narenas:2"), "je.tmk");
    assert_eq!(p.header.allocator, "jemalloc");
    assert!(stdout.contains("dirty_decay_ms=0\n"), "{stdout}");
    assert!(stdout.contains("jemalloc_serves=1\n"), "{stdout}");
    // The glibc blocks from the library constructor: reallocs and frees are recorded like any
    // other (their allocation predates the profile).
    let reallocs: Vec<(u64, u64, u64, AllocKind)> = p
        .records
        .iter()
        .filter_map(|r| match *r {
            Record::Realloc {
                old_addr,
                new_addr,
                size,
                kind,
                ..
            } => Some((old_addr, new_addr, size, kind)),
            _ => None,
        })
        .collect();
    assert_eq!(reallocs.len(), 2, "{reallocs:x?}");
    // The profile names blocks, not addresses: the first realloc resizes early_a, the 100-byte
    // block of the library's constructor (recorded when the recorder started).
    let block_sizes: std::collections::HashMap<u64, u64> = p
        .records
        .iter()
        .filter_map(|r| match *r {
            Record::Alloc { addr, size, .. } => Some((addr, size)),
            _ => None,
        })
        .collect();
    assert_eq!(block_sizes.get(&reallocs[0].0), Some(&100), "{reallocs:x?}");
    assert_eq!(
        (reallocs[0].2, reallocs[0].3, reallocs[1].2, reallocs[1].3),
        (5000, AllocKind::Realloc, 30, AllocKind::Reallocarray)
    );
    let frees: HashSet<u64> = p
        .records
        .iter()
        .filter_map(|r| match *r {
            Record::Free { addr, .. } => Some(addr),
            _ => None,
        })
        .collect();
    assert!(frees.contains(&reallocs[0].1) && frees.contains(&reallocs[1].1));
    // free(early_b), realloc(early_c, 0), two frees of the moved blocks, free of the 1 MiB
    // block, and whatever libc frees at exit.
    assert!(frees.len() >= 5, "{frees:x?}");
    assert!(p
        .records
        .iter()
        .any(|r| matches!(r, Record::Alloc { size, .. } if *size == 1 << 20)));

    // jemalloc's own default when no option is given: the option above took effect.
    let (stdout, _) = run("jemalloc", None, "je-default.tmk");
    assert!(stdout.contains("dirty_decay_ms=10000\n"), "{stdout}");

    // On glibc, mallctl is refused and the early blocks are glibc's as everything else.
    let (stdout, p) = run("glibc", Some("dirty_decay_ms:0"), "glibc.tmk");
    assert_eq!(p.header.allocator, "glibc");
    assert!(stdout.contains("mallctl=ENOENT\n"), "{stdout}");

    // The constructor's blocks were live when the recorder started: they are recorded as
    // allocations with their requested sizes and entry points, so the profile covers them and
    // their later frees match.
    let early: Vec<(u64, u64, AllocKind)> = p
        .records
        .iter()
        .filter_map(|r| match *r {
            Record::Alloc {
                addr, size, kind, ..
            } => Some((addr, size, kind)),
            _ => None,
        })
        .collect();
    // The profile names blocks, not addresses: early_a is the 100-byte malloc, and the
    // program's realloc(early_a, 5000) names that block.
    let early_a = early
        .iter()
        .find(|&&(_, s, k)| s == 100 && k == AllocKind::Malloc)
        .unwrap_or_else(|| panic!("early_a (100 bytes) not recorded: {early:x?}"))
        .0;
    assert!(
        p.records
            .iter()
            .any(|r| matches!(*r, Record::Realloc { old_addr, .. } if old_addr == early_a)),
        "the realloc of early_a does not name its block"
    );
    for (size, kind) in [
        (200, AllocKind::Malloc),
        (300, AllocKind::Calloc),
        (400, AllocKind::Malloc),
    ] {
        assert!(
            early.iter().any(|&(_, s, k)| s == size && k == kind),
            "{kind:?}({size}) from the constructor not recorded: {early:x?}"
        );
    }
}

#[test]
fn jemalloc_is_refused_when_too_many_blocks_predate_the_library() {
    let dir = Scratch::new("early-overflow");
    build_shared(&dir, "early");
    let exe = build_c_with(&dir, "backend", &["early"]);
    let out_path = dir.path("overflow.tmk");
    let mut c = preloaded(&exe, &out_path);
    c.env("TIDEMARK_ALLOCATOR", "jemalloc")
        .env("EARLY_BLOCKS", "5000");
    let out = run_ok(c);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        stderr.starts_with("tidemark: ")
            && stderr.ends_with(" to the bundled jemalloc; staying on the program's allocator\n"),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        stdout.contains("mallctl=ENOENT\n") && stdout.ends_with("ok\n"),
        "{stdout}"
    );
    assert_eq!(read_profile(&out_path).header.allocator, "glibc");
}

#[test]
fn cross_thread_churn_on_jemalloc() {
    let dir = Scratch::new("threads-je");
    let exe = build_c(&dir, "threads");
    let out_path = dir.path("threads.tmk");
    let mut c = preloaded(&exe, &out_path);
    c.env("TIDEMARK_ALLOCATOR", "jemalloc");
    run_ok(c);
    let p = read_profile(&out_path);
    assert!(p.truncation.is_none());
    assert_eq!(p.header.allocator, "jemalloc");
    let allocs = p
        .records
        .iter()
        .filter(|r| matches!(r, Record::Alloc { .. }))
        .count();
    assert!(allocs >= 400_000, "{allocs}");
}

#[test]
fn live_trace_prints_a_line_per_second() {
    let dir = Scratch::new("trace");
    build_shared(&dir, "early");
    let exe = build_c_with(&dir, "backend", &["early"]);
    for (allocator, limit) in [("jemalloc", Some("1073741824")), ("glibc", None)] {
        let out_path = dir.path(&format!("trace-{allocator}.tmk"));
        let mut c = preloaded(&exe, &out_path);
        c.args(["churn", "1500"])
            .env("TIDEMARK_TRACE", "1")
            .env("TIDEMARK_ALLOCATOR", allocator);
        if let Some(l) = limit {
            c.env("TIDEMARK_LIMIT_BYTES", l);
        }
        let out = run_ok(c);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("tm @")).collect();
        assert!(!lines.is_empty(), "no trace line: {stderr}");
        for l in &lines {
            for part in [" heap ", "/s) rss ", " allocs ", "/s p99 alloc "] {
                assert!(l.contains(part), "{part:?} missing in {l:?}");
            }
            assert_eq!(l.contains(" limit "), limit.is_some(), "{l}");
            // Human units: bytes in B/KiB/MiB/GiB, the heap growing.
            assert!(l.contains("iB (+") || l.contains("B (+"), "{l}");
        }
        // The profile itself is unaffected.
        assert!(read_profile(&out_path).truncation.is_none());
    }
}

#[test]
fn frame_pointer_mode_starts_at_the_same_call_site() {
    let dir = Scratch::new("fp");
    let exe = build_c(&dir, "basic");
    let out_path = dir.path("fp.tmk");
    let mut c = preloaded(&exe, &out_path);
    c.env("TIDEMARK_UNWIND", "fp");
    let out = run_ok(c);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let p = read_profile(&out_path);
    assert_eq!(p.header.unwind, "fp");
    let alloc77 = parse_addr(&stdout, "alloc77");
    let a77: Vec<u64> = p
        .records
        .iter()
        .filter_map(|r| match r {
            Record::Alloc {
                size: 77, stack, ..
            } => Some(*stack),
            _ => None,
        })
        .collect();
    assert_eq!(a77.len(), 1000);
    let f = p.stack_of(a77[0]);
    assert!(f[0] > alloc77 && f[0] < alloc77 + symbol_size(&exe, "alloc77"));
}

#[test]
fn sigkill_leaves_a_readable_truncated_profile() {
    let dir = Scratch::new("kill");
    let exe = build_c(&dir, "basic");
    let out_path = dir.path("kill.tmk");
    let mut c = preloaded(&exe, &out_path);
    c.arg("spin").stdout(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    // Let at least one flush (every 100 ms) reach the file.
    std::thread::sleep(std::time::Duration::from_millis(400));
    child.kill().unwrap();
    child.wait().unwrap();
    let p = read_profile(&out_path);
    assert!(p.truncation.is_some());
    let allocs = p
        .records
        .iter()
        .filter(|r| matches!(r, Record::Alloc { .. }))
        .count();
    assert!(
        allocs > 10_000,
        "only {allocs} allocations reached the file"
    );
    for r in &p.records {
        if let Record::Alloc { stack, .. } = r {
            p.stack_of(*stack);
        }
    }
}

#[test]
fn fork_child_writes_its_own_profile() {
    let dir = Scratch::new("fork");
    let exe = build_c(&dir, "basic");
    let out_path = dir.path("fork.tmk");
    let mut c = preloaded(&exe, &out_path);
    c.arg("fork");
    let out = run_ok(c);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let child: u32 = stdout
        .trim()
        .strip_prefix("child=")
        .unwrap()
        .parse()
        .unwrap();
    let count = |p: &Profile, size: u64| {
        p.records
            .iter()
            .filter(|r| matches!(r, Record::Alloc { size: s, .. } if *s == size))
            .count()
    };
    let parent = read_profile(&out_path);
    assert_eq!(count(&parent, 66), 10);
    assert_eq!(count(&parent, 55), 0);
    let child_path = dir.path(&format!("fork.{child}.tmk"));
    let cp = read_profile(&child_path);
    assert_eq!(cp.header.pid, child);
    assert!(cp.truncation.is_none(), "{:?}", cp.truncation);
    assert_eq!(count(&cp, 55), 10);
    assert_eq!(count(&cp, 66), 0);
}

#[test]
fn sampling_records_a_poisson_fraction_and_only_sampled_frees() {
    let dir = Scratch::new("sample");
    let exe = build_c(&dir, "basic");
    let out_path = dir.path("sample.tmk");
    let mut c = preloaded(&exe, &out_path);
    c.env("TIDEMARK_SAMPLE_RATE", "4096");
    run_ok(c);
    let p = read_profile(&out_path);
    assert_eq!(p.header.sampling_rate, 4096);
    let mut live = HashSet::new();
    let mut n77 = 0;
    for r in &p.records {
        match *r {
            Record::Alloc {
                addr, size, stack, ..
            } => {
                p.stack_of(stack);
                n77 += usize::from(size == 77);
                live.insert(addr);
            }
            Record::Realloc {
                old_addr, new_addr, ..
            } => {
                assert!(live.remove(&old_addr));
                live.insert(new_addr);
            }
            Record::Free { addr, .. } => {
                assert!(
                    live.remove(&addr),
                    "free of a block that was not sampled: {addr:#x}"
                );
            }
            _ => {}
        }
    }
    // 1000 blocks of 77 bytes, each sampled with probability 1 - e^(-77/4096) = 1.86%.
    assert!((4..=45).contains(&n77), "{n77} of 1000 sampled");
    // Large blocks are nearly always sampled: 4000 > 4096 * ln(1/0.38).
    assert!(p.records.len() < 2000);
}

#[test]
fn dlopened_module_is_mapped_and_unwound() {
    let dir = Scratch::new("dlopen");
    let exe = build_c(&dir, "dlopen");
    let plugin = dir.path("libplugin.so");
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs/plugin.c");
    let out = Command::new("gcc")
        .args(["-O2", "-fomit-frame-pointer", "-shared", "-fPIC", "-o"])
        .arg(&plugin)
        .arg(&src)
        .output()
        .unwrap();
    assert!(out.status.success());
    let out_path = dir.path("dlopen.tmk");
    let mut c = preloaded(&exe, &out_path);
    c.arg(&plugin);
    run_ok(c);
    let p = read_profile(&out_path);
    let generations: Vec<u64> = p
        .records
        .iter()
        .filter_map(|r| match r {
            Record::Modules { generation, .. } => Some(*generation),
            _ => None,
        })
        .collect();
    assert!(
        generations.len() >= 2,
        "no new module map after dlopen: {generations:?}"
    );
    assert!(p.modules.iter().any(|m| m.path == plugin.to_string_lossy()));
    let stacks: HashSet<u64> = p
        .records
        .iter()
        .filter_map(|r| match r {
            Record::Alloc {
                size: 123, stack, ..
            } => Some(*stack),
            _ => None,
        })
        .collect();
    assert_eq!(stacks.len(), 1);
    let f = p.stack_of(*stacks.iter().next().unwrap());
    let module = |a: u64| p.module_of(a).map(|m| m.path.clone()).unwrap_or_default();
    assert_eq!(module(f[0]), plugin.to_string_lossy(), "{f:x?}");
    assert_eq!(
        module(f[1]),
        exe.to_string_lossy(),
        "main after the plugin: {f:x?}"
    );
}

#[test]
fn cross_thread_churn_replays_consistently_by_sequence() {
    let dir = Scratch::new("threads");
    let exe = build_c(&dir, "threads");
    let out_path = dir.path("threads.tmk");
    run_ok(preloaded(&exe, &out_path));
    let p = read_profile(&out_path);
    assert!(p.truncation.is_none());
    // (seq, op): op 0 = alloc addr, 1 = free addr.
    let mut ops: Vec<(u64, u8, u64)> = Vec::new();
    let mut tids = HashSet::new();
    for r in &p.records {
        match *r {
            Record::Alloc { seq, addr, tid, .. } => {
                ops.push((seq, 0, addr));
                tids.insert(tid);
            }
            Record::Free { seq, addr, tid } => {
                ops.push((seq, 1, addr));
                tids.insert(tid);
            }
            Record::Realloc {
                free_seq,
                seq,
                old_addr,
                new_addr,
                tid,
                ..
            } => {
                tids.insert(tid);
                ops.push((free_seq, 1, old_addr));
                ops.push((seq, 0, new_addr));
            }
            _ => {}
        }
    }
    assert!(tids.len() >= 8, "{tids:?}");
    ops.sort_unstable();
    for w in ops.windows(2) {
        assert_ne!(w[0].0, w[1].0, "sequence number used twice");
    }
    let mut live: HashSet<u64> = HashSet::new();
    let (mut allocs, mut frees, mut unknown_frees) = (0, 0, 0);
    for (seq, op, addr) in ops {
        if op == 0 {
            assert!(
                live.insert(addr),
                "seq {seq}: {addr:#x} allocated while live"
            );
            allocs += 1;
        } else if live.remove(&addr) {
            frees += 1;
        } else {
            // Only blocks allocated before recording started (none here) may be unknown.
            unknown_frees += 1;
        }
    }
    // 4 x 50000 x 2 mallocs plus realloc'd blocks, all freed.
    assert!(allocs >= 400_000, "{allocs}");
    assert!(frees >= 400_000, "{frees}");
    assert!(
        unknown_frees < 10,
        "{unknown_frees} frees of unknown blocks"
    );
}

#[test]
fn unwritable_output_disables_recording_with_one_line() {
    let dir = Scratch::new("unwritable");
    let exe = build_c(&dir, "basic");
    let out = run_ok(preloaded(
        &exe,
        std::path::Path::new("/proc/nonexistent/x.tmk"),
    ));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        err,
        "tidemark: cannot write /proc/nonexistent/x.tmk: No such file or directory; recording disabled\n"
    );
}

/// Events gather into chunks of megabytes, whether the writer encodes them itself or hands them
/// to its encoding thread (once it is pressed): a chunk is finished for its size, or a flush
/// interval after the events before it were gathered, never at every pass. (Counting any job
/// queued for the encoding thread as events waiting finished a chunk at every pass once the
/// first flush interval was up: a churn's 3 event chunks became 33.)
#[test]
fn events_gather_into_large_chunks() {
    let dir = Scratch::new("chunks");
    let exe = build_c(&dir, "walkload");
    let out_path = dir.path("churn.tmk");
    let mut c = preloaded(&exe, &out_path);
    c.args(["churn", "10", "2000000"]);
    run_ok(c);
    let f = std::fs::File::open(&out_path).unwrap();
    let mut r = tidemark::format::Reader::new(BufReader::new(f)).unwrap();
    let (mut chunks, mut events) = (0u64, 0u64);
    let mut end_ns = None;
    while let Some(it) = r.next_chunk().unwrap() {
        let mut n = 0;
        for rec in it {
            match rec.unwrap() {
                Record::Alloc { .. } | Record::Free { .. } | Record::Realloc { .. } => n += 1,
                Record::Trailer { values } => {
                    end_ns = values
                        .iter()
                        .find(|&&(k, _)| k == tidemark::format::trailer_key::END_NS)
                        .map(|&(_, v)| v);
                }
                _ => {}
            }
        }
        if n > 0 {
            chunks += 1;
            events += n;
        }
    }
    assert!(events >= 4_000_000, "{events} events");
    let end_ns = end_ns.expect("a finished profile");
    // A chunk holds up to 8 MiB of records (a churn's are ≈ 4 bytes an event): one per 2 M
    // events, plus one per flush interval (100 ms) the run lasted, plus the last.
    let most = events / 2_000_000 + end_ns / 100_000_000 + 2;
    assert!(
        chunks <= most,
        "{chunks} event chunks for {events} events in {} ms (at most {most})",
        end_ns / 1_000_000
    );
}
