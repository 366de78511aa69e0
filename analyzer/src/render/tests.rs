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

/// 1,500 stacks over names that sort awkwardly (`f`, `f::g`, `f:`, `operator 2`), some rooted
/// at `_start` and some not, with sizes from 1 byte to 1 GB: most frames are too narrow to draw.
fn many_narrow_frames() -> Profile {
    many_narrow_frames_from(0x9e37_79b9_7f4a_7c15)
}

/// [`many_narrow_frames`] from another seed.
fn many_narrow_frames_from(seed: u64) -> Profile {
    use crate::load::synthetic::Rng;
    const NAMES: [&str; 12] = [
        "_start",
        "main",
        "f",
        "f::g",
        "f:",
        "fa",
        "operator 2",
        "x y",
        "g",
        "h<int>",
        "h",
        "k",
    ];
    let ip = |n: usize| 0x1000 + 16 * n as u64;
    let mut rng = Rng(seed);
    let mut stacks: Vec<(u64, Vec<u64>)> = Vec::new();
    for id in 1..=1500u64 {
        let depth = 1 + rng.below(14) as usize;
        // Leaf first; the root last: `_start` for most.
        let mut frames: Vec<u64> = (0..depth)
            .map(|_| ip(1 + rng.below(NAMES.len() as u64 - 1) as usize))
            .collect();
        if rng.below(4) != 0 {
            frames.push(ip(0));
        }
        // A leaf `operator 2` would be read as a second count: keep it inside the stacks.
        if frames[0] == ip(6) {
            frames[0] = ip(2);
        }
        stacks.push((id, frames));
    }
    let stack_refs: Vec<(u64, &[u64])> = stacks.iter().map(|(id, f)| (*id, &f[..])).collect();
    let frames: Vec<[(&str, &str, u32); 1]> = NAMES.iter().map(|n| [(*n, "x.c", 1)]).collect();
    let symbols: Vec<crate::load::synthetic::SymbolEntry<'_>> = frames
        .iter()
        .enumerate()
        .map(|(n, f)| (ip(n), &f[..]))
        .collect();
    let events: Vec<Ev> = (0..1500u64)
        .map(|i| {
            let size = (1 + rng.below(9)) * 10u64.pow(rng.below(10) as u32);
            Ev::Alloc(i, 0x10_0000 + 0x1000 * i, size, 1 + i)
        })
        .collect();
    let mut b = Builder::new();
    b.stacks(&stack_refs)
        .symbols(&symbols)
        .batch(1, &events)
        .trailer(&[]);
    profile(&b.bytes())
}

/// Bytes of folded lines.
fn line_bytes(lines: &[String]) -> usize {
    lines.iter().map(String::len).sum()
}

#[test]
fn flamegraph_from_the_cut_lines_is_the_flamegraph_of_all_lines() {
    let p = many_narrow_frames();
    for m in [Metric::Allocated, Metric::Allocations, Metric::Leaked] {
        for inverted in [false, true] {
            let min_width = flamegraph::inferno_options("", None, "", inverted).min_width;
            let drawn = crate::analysis::views::flamegraph_view(&p, m, false, min_width).unwrap();
            let all = crate::analysis::views::folded_view(&p, m).unwrap();
            let (cut, whole) = (line_bytes(&drawn.lines), line_bytes(&all.lines));
            // One allocation per stack: 1 of 1,500 is wide enough to draw.
            let expect_cut = m != Metric::Allocations;
            assert!(
                !expect_cut || (cut * 3 < whole * 2 && drawn.lines.len() < all.lines.len()),
                "{m:?}: {} lines of {cut} bytes cut from {} of {whole}",
                drawn.lines.len(),
                all.lines.len()
            );
            let o = flamegraph::FlamegraphOptions { inverted };
            let (mut a, mut b) = (Vec::new(), Vec::new());
            flamegraph::write(&drawn, &o, &mut a).unwrap();
            flamegraph::write(&all, &o, &mut b).unwrap();
            assert!(
                a == b,
                "{m:?} inverted {inverted}: the SVGs differ ({} and {} bytes)",
                a.len(),
                b.len()
            );
            let mut c = Vec::new();
            flamegraph_svg(&p, m, inverted, &mut c).unwrap();
            assert!(a == c);
        }
    }
}

#[test]
fn differential_flamegraph_from_the_cut_lines_is_the_one_of_all_lines() {
    use crate::analysis::views::{diff_flamegraph_view, diff_view};
    let before = many_narrow_frames_from(7);
    let after = many_narrow_frames_from(11);
    let min_width = flamegraph::inferno_options("", None, "", false).min_width;
    for m in [Metric::Allocated, Metric::Allocations, Metric::Leaked] {
        let cut = diff_flamegraph_view(&before, &after, m, "t", "nothing", min_width).unwrap();
        let whole = diff_view(
            &folded(&before, m),
            &folded(&after, m),
            "t",
            m.count_name(),
            "nothing",
        )
        .unwrap();
        assert_eq!(cut.lines.len(), whole.lines.len(), "{m:?}: every line kept");
        if m != Metric::Allocations {
            assert!(
                line_bytes(&cut.lines) * 3 < line_bytes(&whole.lines) * 2,
                "{m:?}: {} of {} bytes",
                line_bytes(&cut.lines),
                line_bytes(&whole.lines)
            );
        }
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let o = flamegraph::FlamegraphOptions::default();
        flamegraph::write_diff(&cut, &o, &mut a).unwrap();
        flamegraph::write_diff(&whole, &o, &mut b).unwrap();
        assert!(
            a == b,
            "{m:?}: the SVGs differ ({} and {} bytes)",
            a.len(),
            b.len()
        );
    }
    // A new profile with nothing to show gives the placeholder either way.
    let empty = Profile::default();
    let v = diff_flamegraph_view(&before, &empty, Metric::Allocated, "t", "none", min_width);
    assert!(v.unwrap().lines.is_empty());
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
