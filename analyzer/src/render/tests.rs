//! Renderer tests: folded lines and SVG on synthetic profiles.

use super::*;
use crate::load::synthetic::{Builder, Ev};
use crate::load::{load_reader, LoadOptions};

fn profile(bytes: &[u8]) -> Profile {
    load_reader(bytes, &LoadOptions::default()).unwrap()
}

fn sample() -> Profile {
    let mut b = Builder::new();
    b.stacks(&[
        (1, &[0x10, 0x20, 0x30]),
        (2, &[0x11, 0x20, 0x30]),
        (3, &[0x12, 0x30]),
        (4, &[0x10, 0x20, 0x30]), // same frames as 1: merged into one line
    ])
    .symbols(&[
        (0x10, &[("leaf_a", "x.rs", 1)]),
        (0x11, &[("inlined;odd", "x.rs", 2), ("leaf_b", "x.rs", 3)]),
        (0x12, &[("leaf_c", "x.rs", 4)]),
        (0x20, &[("mid", "x.rs", 5)]),
        (0x30, &[("main", "x.rs", 6)]),
    ])
    .batch(
        1,
        &[
            Ev::Alloc(0, 0xa, 100, 1),
            Ev::Alloc(1, 0xb, 10, 2),
            Ev::Free(2, 0xb),
            Ev::Alloc(3, 0xc, 1000, 3),
            Ev::Alloc(4, 0xd, 5, 4),
            Ev::Free(5, 0xc),
        ],
    )
    .trailer(&[]);
    profile(&b.bytes())
}

#[test]
fn folded_lines_root_first_sorted_and_merged() {
    let p = sample();
    assert_eq!(
        folded(&p, Metric::Allocated),
        vec![
            "[unwinding stopped];main;leaf_c 1000",
            "[unwinding stopped];main;mid;leaf_a 105",
            "[unwinding stopped];main;mid;leaf_b;inlined:odd 10",
        ]
    );
    assert_eq!(
        folded(&p, Metric::Allocations),
        vec![
            "[unwinding stopped];main;leaf_c 1",
            "[unwinding stopped];main;mid;leaf_a 2",
            "[unwinding stopped];main;mid;leaf_b;inlined:odd 1"
        ]
    );
    assert_eq!(
        folded(&p, Metric::Leaked),
        vec!["[unwinding stopped];main;mid;leaf_a 105"]
    );
    assert_eq!(
        folded(&p, Metric::Peak),
        // The peak comes with the last allocation (1105 live), before leaf_c's block is freed.
        vec![
            "[unwinding stopped];main;leaf_c 1000",
            "[unwinding stopped];main;mid;leaf_a 105"
        ]
    );
    assert_eq!(
        folded(&p, Metric::Temporary),
        // leaf_c's block is freed after another allocation: not temporary.
        vec!["[unwinding stopped];main;mid;leaf_b;inlined:odd 1"]
    );
}

#[test]
fn metric_names_round_trip() {
    for m in Metric::ALL {
        assert_eq!(m.name().parse::<Metric>().unwrap(), m);
    }
    assert!("bogus".parse::<Metric>().is_err());
}

#[test]
fn svg_is_deterministic_and_titled() {
    let p = sample();
    let mut a = Vec::new();
    flamegraph_svg(&p, Metric::Allocated, false, &mut a).unwrap();
    let mut b = Vec::new();
    flamegraph_svg(&p, Metric::Allocated, false, &mut b).unwrap();
    assert_eq!(a, b);
    let svg = String::from_utf8(a).unwrap();
    assert!(svg.contains("<svg"));
    assert!(svg.contains("Allocated bytes"));
    assert!(svg.contains("leaf_c"));
    assert!(svg.contains("bytes"));
    let mut inv = Vec::new();
    flamegraph_svg(&p, Metric::Allocations, true, &mut inv).unwrap();
    let inv = String::from_utf8(inv).unwrap();
    assert!(inv.contains("Allocation calls"));
    assert!(inv.contains("allocations"));
}

#[test]
fn empty_metric_gives_a_valid_svg_that_says_so() {
    let mut b = Builder::new();
    b.stacks(&[(1, &[0x10])])
        .batch(1, &[Ev::Alloc(0, 0xa, 8, 1), Ev::Free(1, 0xa)])
        .trailer(&[]);
    let p = profile(&b.bytes());
    let mut out = Vec::new();
    flamegraph_svg(&p, Metric::Leaked, false, &mut out).unwrap();
    let svg = String::from_utf8(out).unwrap();
    assert!(svg.starts_with("<?xml"));
    assert!(svg.contains("no leaked bytes"), "{svg}");
}

#[test]
fn truncated_profile_warns_in_the_subtitle() {
    let mut b = Builder::new();
    b.stacks(&[(1, &[0x10])])
        .batch(1, &[Ev::Alloc(0, 0xa, 8, 1)]);
    let p = profile(&b.bytes());
    assert!(p.truncated.is_some());
    let mut out = Vec::new();
    flamegraph_svg(&p, Metric::Allocated, false, &mut out).unwrap();
    let svg = String::from_utf8(out).unwrap();
    assert!(svg.contains("WARNING: truncated profile"), "{svg}");
    let mut out = Vec::new();
    flamegraph_svg(&p, Metric::Leaked, false, &mut out).unwrap();
    assert!(String::from_utf8(out)
        .unwrap()
        .contains("WARNING: truncated"));
}

#[test]
fn summary_text_and_json() {
    let p = sample();
    let s = crate::analysis::summary(&p, 10);
    let text = summary_text(&s);
    assert!(text.contains("allocations  4 calls"), "{text}");
    assert!(text.contains("leaf_c (x.rs:4)"), "{text}");
    let mut json = Vec::new();
    write_summary_json(&s, &mut json).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(v["allocations"], 4);
    assert_eq!(v["allocated_bytes"], 1115);
    assert_eq!(v["truncated"], false);
    assert_eq!(v["top_sites"][0]["function"], "leaf_c");
    assert_eq!(v["top_sites"][0]["line"], 4);
}
