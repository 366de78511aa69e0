//! A profile's timeline as chart panels and CSV columns (the data side of `tidemark timeline`).

use super::timeline::{self, Line, Panel, Unit};
use crate::analysis::escape::stack_depth_series;
use crate::analysis::pressure::{limit, live_heap_series, rate_series, series};
use crate::model::Profile;
use tidemark::format::sample_key as key;

/// A sampled value over time with a gap (a NaN point) at every sample that lacks it: an interval
/// with no timed allocator call is drawn as a gap, not a ramp.
pub fn series_with_gaps(p: &Profile, k: u64) -> Vec<(f64, f64)> {
    if !p.samples.iter().any(|s| s.value(k).is_some()) {
        return Vec::new();
    }
    p.samples
        .iter()
        .map(|s| {
            (
                s.t_ns as f64 / 1e9,
                s.value(k).map_or(f64::NAN, |v| v as f64),
            )
        })
        .collect()
}

fn line(label: &str, points: Vec<(f64, f64)>) -> Line {
    Line {
        label: label.to_owned(),
        points,
    }
}

/// The panels of `tidemark timeline`, sharing one time axis: heap vs RSS vs allocator resident,
/// allocation rate (bytes and calls), allocator latency, page faults, pressure against the limit,
/// jemalloc's own counters and PSI when present. Panels without data are left out by the
/// renderer.
pub fn panels(p: &Profile, limit_override: Option<u64>) -> Vec<Panel> {
    let lim = limit(p, limit_override);
    let mut out = vec![Panel {
        title: "Live heap vs RSS vs allocator resident".into(),
        unit: Unit::Bytes,
        lines: vec![
            line("live heap (requested bytes)", live_heap_series(p)),
            line("RSS", series(p, key::RSS_BYTES)),
            line("RSS anon", series(p, key::RSS_ANON_BYTES)),
            line("jemalloc resident", series(p, key::JEMALLOC_RESIDENT)),
            line(
                "cgroup memory.current",
                series(p, key::CGROUP_CURRENT_BYTES),
            ),
        ],
        reference: lim.map(|(l, _)| ("limit".to_owned(), l as f64)),
    }];
    out.push(Panel {
        title: "Stack: deepest point per interval (recorded with --escape)".into(),
        unit: Unit::Bytes,
        lines: vec![line("any thread", stack_depth_series(p))],
        reference: None,
    });
    out.push(Panel {
        title: "Allocation rate (bytes)".into(),
        unit: Unit::BytesPerSec,
        lines: vec![line("allocated", rate_series(p, key::ALLOCATED_BYTES))],
        reference: None,
    });
    out.push(Panel {
        title: "Allocation rate (calls)".into(),
        unit: Unit::PerSec,
        lines: vec![
            line("allocation calls", rate_series(p, key::ALLOC_CALLS)),
            line("free calls", rate_series(p, key::FREE_CALLS)),
        ],
        reference: None,
    });
    out.push(Panel {
        title: "Allocator latency per interval".into(),
        unit: Unit::Nanos,
        lines: vec![
            line("p50", series_with_gaps(p, key::ALLOC_LATENCY_P50_NS)),
            line("p99", series_with_gaps(p, key::ALLOC_LATENCY_P99_NS)),
            line("max", series_with_gaps(p, key::ALLOC_LATENCY_MAX_NS)),
        ],
        reference: None,
    });
    out.push(Panel {
        title: "Page faults".into(),
        unit: Unit::PerSec,
        lines: vec![
            line("minor", rate_series(p, key::MINOR_FAULTS)),
            line("major", rate_series(p, key::MAJOR_FAULTS)),
        ],
        reference: None,
    });
    if let Some((l, _)) = lim {
        let pct = |pts: Vec<(f64, f64)>| {
            pts.into_iter()
                .map(|(t, v)| (t, 100.0 * v / l as f64))
                .collect()
        };
        out.push(Panel {
            title: format!(
                "Pressure against the limit ({})",
                timeline::human_bytes(l as f64)
            ),
            unit: Unit::Percent,
            lines: vec![
                line("live heap / limit", pct(live_heap_series(p))),
                line("RSS / limit", pct(series(p, key::RSS_BYTES))),
            ],
            reference: Some(("limit".to_owned(), 100.0)),
        });
    }
    out.push(Panel {
        title: "jemalloc".into(),
        unit: Unit::Bytes,
        lines: vec![
            line("allocated", series(p, key::JEMALLOC_ALLOCATED)),
            line("active", series(p, key::JEMALLOC_ACTIVE)),
            line("resident", series(p, key::JEMALLOC_RESIDENT)),
            line("mapped", series(p, key::JEMALLOC_MAPPED)),
            line("retained", series(p, key::JEMALLOC_RETAINED)),
        ],
        reference: None,
    });
    let centi = |pts: Vec<(f64, f64)>| pts.into_iter().map(|(t, v)| (t, v / 100.0)).collect();
    out.push(Panel {
        title: "Memory pressure stall (PSI avg10)".into(),
        unit: Unit::Percent,
        lines: vec![
            line("some", centi(series(p, key::PSI_SOME_AVG10_CENTI))),
            line("full", centi(series(p, key::PSI_FULL_AVG10_CENTI))),
        ],
        reference: None,
    });
    out
}

/// The raw series as CSV, one named column per series (see `docs/metrics.md`).
pub fn csv(p: &Profile) -> String {
    let blocks: Vec<(f64, f64)> = p
        .samples
        .iter()
        .map(|s| (s.t_ns as f64 / 1e9, s.live_blocks as f64))
        .collect();
    let cols: Vec<(&str, Vec<(f64, f64)>)> = vec![
        ("live_bytes", live_heap_series(p)),
        ("live_blocks", blocks),
        ("allocated_bytes", series(p, key::ALLOCATED_BYTES)),
        ("alloc_calls", series(p, key::ALLOC_CALLS)),
        ("free_calls", series(p, key::FREE_CALLS)),
        ("rss_bytes", series(p, key::RSS_BYTES)),
        ("rss_anon_bytes", series(p, key::RSS_ANON_BYTES)),
        ("rss_file_bytes", series(p, key::RSS_FILE_BYTES)),
        ("minor_faults", series(p, key::MINOR_FAULTS)),
        ("major_faults", series(p, key::MAJOR_FAULTS)),
        ("threads", series(p, key::THREADS)),
        ("alloc_latency_p50_ns", series(p, key::ALLOC_LATENCY_P50_NS)),
        ("alloc_latency_p99_ns", series(p, key::ALLOC_LATENCY_P99_NS)),
        ("alloc_latency_max_ns", series(p, key::ALLOC_LATENCY_MAX_NS)),
        ("cgroup_current_bytes", series(p, key::CGROUP_CURRENT_BYTES)),
        ("cgroup_max_bytes", series(p, key::CGROUP_MAX_BYTES)),
        ("psi_some_avg10_centi", series(p, key::PSI_SOME_AVG10_CENTI)),
        ("psi_full_avg10_centi", series(p, key::PSI_FULL_AVG10_CENTI)),
        (
            "jemalloc_allocated_bytes",
            series(p, key::JEMALLOC_ALLOCATED),
        ),
        ("jemalloc_active_bytes", series(p, key::JEMALLOC_ACTIVE)),
        ("jemalloc_resident_bytes", series(p, key::JEMALLOC_RESIDENT)),
        ("jemalloc_mapped_bytes", series(p, key::JEMALLOC_MAPPED)),
        ("jemalloc_retained_bytes", series(p, key::JEMALLOC_RETAINED)),
    ];
    let mut cols = cols;
    let stack = stack_depth_series(p);
    if !stack.is_empty() {
        cols.insert(2, ("stack_depth_bytes", stack));
    }
    timeline::write_csv(&cols)
}
