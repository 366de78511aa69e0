//! The timeline view: a profile's sampled series as chart panels over one time axis
//! ([`TimelineView`], drawn by `render::timeline::write`) and as named columns
//! ([`TimelineColumns`], written by `render::timeline::write_csv`).
//!
//! The panels are plain data ([`Panel`]s of [`Line`]s), so the same renderer draws one profile's
//! timeline and the overlaid curves of a comparison report.

use crate::analysis::escape::stack_depth_series;
use crate::analysis::pressure::{limit, live_heap_series, rate_series, series};
use crate::model::Profile;
use crate::units::{human_bytes, human_count, human_nanos};
use tidemark::format::sample_key as key;

/// What a panel's y axis measures; decides the tick labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Bytes (KiB/MiB/GiB labels).
    Bytes,
    /// Bytes per second.
    BytesPerSec,
    /// Nanoseconds (ns/µs/ms labels).
    Nanos,
    /// Events per second.
    PerSec,
    /// Percent.
    Percent,
    /// A plain count.
    Count,
}

impl Unit {
    /// Formats a value of this unit for a tick label.
    pub fn format(self, v: f64) -> String {
        match self {
            Unit::Bytes => human_bytes(v),
            Unit::BytesPerSec => format!("{}/s", human_bytes(v)),
            Unit::Nanos => human_nanos(v),
            Unit::PerSec => format!("{}/s", human_count(v)),
            Unit::Percent if v.abs() >= 10.0 || v.fract() == 0.0 => format!("{v:.0}%"),
            Unit::Percent => format!("{v:.1}%"),
            Unit::Count => human_count(v),
        }
    }
}

/// One curve.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// Legend text.
    pub label: String,
    /// `(seconds since start, value)` in time order.
    pub points: Vec<(f64, f64)>,
}

/// One panel: lines sharing a y axis.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    /// Panel title.
    pub title: String,
    /// Unit of the y axis.
    pub unit: Unit,
    /// Curves; empty lines are skipped, and a panel with no points (or only zeros) is not drawn.
    pub lines: Vec<Line>,
    /// Optional horizontal reference line (e.g. the memory limit), with its label.
    pub reference: Option<(String, f64)>,
}

/// A titled set of panels sharing one time axis.
#[derive(Debug, Clone, PartialEq)]
pub struct TimelineView {
    /// Chart title.
    pub title: String,
    /// Panels, top to bottom; the renderer leaves out those without data.
    pub panels: Vec<Panel>,
}

/// The timeline of `tidemark timeline`: [`panels`] under a title naming the profiled command
/// (and saying when the profile is truncated). `limit_override` replaces the recorded memory
/// limit.
pub fn timeline_view(p: &Profile, limit_override: Option<u64>) -> TimelineView {
    TimelineView {
        title: timeline_title(p),
        panels: panels(p, limit_override),
    }
}

/// The title `tidemark timeline` gives the SVG: the program's name, and a warning when the
/// profile is truncated.
pub fn timeline_title(p: &Profile) -> String {
    let mut title = format!(
        "tidemark timeline: {}",
        p.header
            .cmdline
            .first()
            .cloned()
            .unwrap_or_else(|| p.header.exe.clone())
    );
    if p.truncated.is_some() {
        title.push_str(" (TRUNCATED profile)");
    }
    title
}

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
            title: format!("Pressure against the limit ({})", human_bytes(l as f64)),
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

/// The raw series of a profile's timeline, one named column per series (see `docs/metrics.md`).
#[derive(Debug, Clone, PartialEq)]
pub struct TimelineColumns {
    /// `(column name, (seconds since start, value) in time order)`.
    pub columns: Vec<(&'static str, Vec<(f64, f64)>)>,
}

/// The raw series of `tidemark timeline --csv`.
pub fn timeline_columns(p: &Profile) -> TimelineColumns {
    let blocks: Vec<(f64, f64)> = p
        .samples
        .iter()
        .map(|s| (s.t_ns as f64 / 1e9, s.live_blocks as f64))
        .collect();
    let columns: Vec<(&'static str, Vec<(f64, f64)>)> = vec![
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
    let mut columns = columns;
    let stack = stack_depth_series(p);
    if !stack.is_empty() {
        columns.insert(2, ("stack_depth_bytes", stack));
    }
    TimelineColumns { columns }
}
