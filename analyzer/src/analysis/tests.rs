//! Analysis tests.

use super::*;
use crate::load::synthetic::{Builder, Ev};
use crate::load::{load_reader, LoadOptions};

fn rust_profile() -> Profile {
    let mut b = Builder::new();
    b.stacks(&[
        // Vec growth inside app::parse: plumbing frames innermost.
        (1, &[0x10, 0x11, 0x20, 0x30]),
        // Box::new inlined into app::build.
        (2, &[0x12, 0x30]),
        // Only plumbing: the innermost frame is the site.
        (3, &[0x10]),
        // Empty stack.
        (4, &[]),
    ])
    .symbols(&[
        (0x10, &[("__rust_alloc", "", 0)]),
        (0x11, &[("alloc::raw_vec::finish_grow", "raw_vec.rs", 1)]),
        (0x20, &[("app::parse", "src/parse.rs", 42)]),
        (
            0x12,
            &[
                ("alloc::boxed::Box<T>::new", "boxed.rs", 2),
                ("app::build", "src/build.rs", 7),
            ],
        ),
        (0x30, &[("main", "src/main.rs", 3)]),
    ])
    .batch(
        1,
        &[
            Ev::Alloc(0, 0xa, 64, 1),
            Ev::Alloc(1, 0xb, 64, 1),
            Ev::Alloc(2, 0xc, 32, 2),
            Ev::Free(3, 0xc),
            Ev::Alloc(4, 0xd, 1, 3),
            Ev::Alloc(5, 0xe, 2, 4),
        ],
    )
    .trailer(&[]);
    load_reader(&b.bytes()[..], &LoadOptions::default()).unwrap()
}

#[test]
fn sites_skip_allocator_plumbing() {
    let p = rust_profile();
    let s = sites(&p);
    let names: Vec<(&str, &str, u32)> = s
        .iter()
        .map(|s| (s.function.as_str(), s.file.as_str(), s.line))
        .collect();
    assert_eq!(
        names,
        vec![
            ("app::parse", "src/parse.rs", 42),
            ("app::build", "src/build.rs", 7),
            ("[unknown]", "", 0),
            ("__rust_alloc", "", 0),
        ]
    );
    assert_eq!(s[0].counts.allocations, 2);
    assert_eq!(s[0].counts.allocated_bytes, 128);
    assert_eq!(s[0].counts.leaked_bytes, 128);
    assert_eq!(s[1].counts.temporary_allocations, 1);
}

#[test]
fn summary_fields() {
    let p = rust_profile();
    let s = summary(&p, 1);
    assert_eq!(s.counts.allocations, 5);
    assert_eq!(s.frees, 1);
    assert_eq!(s.counts.allocated_bytes, 163);
    assert_eq!(s.counts.peak_bytes, 160);
    assert_eq!(s.counts.leaked_bytes, 131);
    assert_eq!(s.counts.leaked_allocations, 4);
    assert_eq!(s.counts.temporary_allocations, 1);
    assert_eq!(s.threads, 1);
    assert!(!s.truncated);
    assert_eq!(s.top_sites.len(), 1);
    assert_eq!(s.process.pid, 42);
    let v = serde_json::to_value(&s).unwrap();
    for key in [
        "allocations",
        "frees",
        "allocated_bytes",
        "peak_bytes",
        "leaked_bytes",
        "leaked_allocations",
        "temporary_allocations",
        "duration_ms",
        "truncated",
        "top_sites",
        "threads",
        "unmatched_frees",
        "messages",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    for key in [
        "function",
        "file",
        "line",
        "allocations",
        "allocated_bytes",
        "peak_bytes",
        "leaked_bytes",
        "leaked_allocations",
        "temporary_allocations",
    ] {
        assert!(
            v["top_sites"][0].get(key).is_some(),
            "missing top_sites.{key}"
        );
    }
}

#[test]
fn function_totals_include_inlined_frames() {
    let p = rust_profile();
    let f = function_totals(&p);
    assert_eq!(f["alloc::boxed::Box<T>::new"].allocations, 1);
    assert_eq!(f["app::build"].allocated_bytes, 32);
    assert_eq!(f["main"].allocations, 3);
    assert_eq!(f["__rust_alloc"].allocations, 3);
    assert_eq!(f[UNKNOWN_FUNCTION].allocations, 1);
}
