//! The page's data: the profile aggregated into compact, columnar JSON.
//!
//! The page never receives per-event data. It gets the call tree as parent-pointer arrays (one
//! node per distinct function along a path, root first, so a parent's index is always below its
//! children's), one leaf node per recorded stack, the time buckets' per-stack sums (sparse: only
//! stacks active in a bucket), histograms per bucket, downsampled timeline series and threads.
//! A brushed time range is recomputed in the page from the buckets.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::{json, Value};
use tidemark::format::sample_key as key;

use crate::analysis::call_paths::runtime_prefix;
pub use crate::analysis::call_paths::RUNTIME_FRAME;
use crate::analysis::pressure::{limit, live_heap_series, rate_series, series};
use crate::analysis::stack_roots::{root_marker, TRUNCATED_FRAME};
use crate::analysis::views::series_with_gaps;
use crate::analysis::{Metric, SiteFinder, UNKNOWN_FUNCTION};
use crate::model::{FrameId, Profile, StringId, TimeBuckets};

/// Most points a timeline series keeps (the largest value of each slice is kept, so peaks stay).
pub const MAX_SERIES_POINTS: usize = 2000;

/// Strings and frames as the page sees them.
#[derive(Default)]
struct Tables {
    strings: Vec<String>,
    string_index: HashMap<String, u32>,
    frame_fn: Vec<u32>,
    frame_file: Vec<u32>,
    frame_line: Vec<u32>,
    frame_index: HashMap<Option<FrameId>, u32>,
}

impl Tables {
    fn string(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.string_index.get(s) {
            return i;
        }
        self.strings.push(s.to_owned());
        let i = (self.strings.len() - 1) as u32;
        self.string_index.insert(s.to_owned(), i);
        i
    }

    /// A frame that stands for several (no file, no line).
    fn named_frame(&mut self, name: &str) -> u32 {
        let func = self.string(name);
        let file = self.string("");
        if let Some(i) = (0..self.frame_fn.len()).find(|&i| {
            self.frame_fn[i] == func && self.frame_line[i] == 0 && self.frame_file[i] == file
        }) {
            return i as u32;
        }
        self.frame_fn.push(func);
        self.frame_file.push(file);
        self.frame_line.push(0);
        (self.frame_fn.len() - 1) as u32
    }

    fn frame(&mut self, p: &Profile, f: Option<FrameId>) -> u32 {
        if let Some(&i) = self.frame_index.get(&f) {
            return i;
        }
        let (func, file, line) = match f {
            Some(id) => {
                let fr = p.frame(id);
                (p.str(fr.function), p.str(fr.file), fr.line)
            }
            None => (UNKNOWN_FUNCTION, "", 0),
        };
        let func = self.string(func);
        let file = self.string(file);
        self.frame_fn.push(func);
        self.frame_file.push(file);
        self.frame_line.push(line);
        let i = (self.frame_fn.len() - 1) as u32;
        self.frame_index.insert(f, i);
        i
    }
}

/// The call tree: nodes keyed by (parent, function name).
#[derive(Default, Serialize)]
struct Tree {
    parent: Vec<i64>,
    frame: Vec<u32>,
    #[serde(skip)]
    index: HashMap<(i64, StringId), u32>,
}

fn series_json(points: Vec<(f64, f64)>) -> Value {
    let points = downsample(points, MAX_SERIES_POINTS);
    let t: Vec<f64> = points.iter().map(|p| (p.0 * 1e6).round() / 1e6).collect();
    let v: Vec<f64> = points.iter().map(|p| p.1.round()).collect();
    json!({ "t": t, "v": v })
}

/// Keeps at most `max` points: each slice of consecutive points gives its largest value (at the
/// slice's first time), so a peak is never averaged away. NaN marks a gap (see
/// [`series_with_gaps`]) and is written as `null`.
pub fn downsample(points: Vec<(f64, f64)>, max: usize) -> Vec<(f64, f64)> {
    if points.len() <= max || max == 0 {
        return points;
    }
    let per = points.len().div_ceil(max);
    points
        .chunks(per)
        .map(|c| {
            // NaN (a gap) only when the whole slice is one.
            let v = c
                .iter()
                .map(|p| p.1)
                .filter(|v| v.is_finite())
                .fold(f64::NAN, f64::max);
            (c[0].0, v)
        })
        .collect()
}

/// Largest index of a nonzero value + 1.
fn trimmed(h: &[u64]) -> &[u64] {
    let n = h.iter().rposition(|&v| v != 0).map_or(0, |i| i + 1);
    &h[..n]
}

fn buckets_json(tb: &TimeBuckets) -> Value {
    let mut start = Vec::new();
    let mut end = Vec::new();
    let mut seq_lo = Vec::new();
    let mut seq_hi: Vec<Option<u64>> = Vec::new();
    let mut cells = Vec::new();
    let mut size = Vec::new();
    let mut life = Vec::new();
    let mut threads = Vec::new();
    for b in &tb.buckets {
        start.push(b.start_ns);
        end.push(b.end_ns);
        seq_lo.push(b.seq_lo);
        seq_hi.push((b.seq_hi != u64::MAX).then_some(b.seq_hi));
        let mut flat: Vec<u64> = Vec::with_capacity(b.cells.len() * 8);
        for c in &b.cells {
            flat.extend([
                u64::from(c.stack),
                c.allocations,
                c.allocated_bytes,
                c.frees,
                c.freed_bytes,
                c.temporary_allocations,
                c.leaked_allocations,
                c.leaked_bytes,
            ]);
        }
        cells.push(flat);
        size.push(trimmed(&b.size_histogram).to_vec());
        life.push(trimmed(&b.lifetime_histogram).to_vec());
        let flat_threads: Vec<i64> = b
            .thread_net_bytes
            .iter()
            .flat_map(|&(t, v)| [i64::from(t), v])
            .collect();
        threads.push(flat_threads);
    }
    json!({
        "start_ns": start, "end_ns": end, "seq_lo": seq_lo, "seq_hi": seq_hi,
        "cell_width": 8, "cells": cells, "size": size, "life": life, "threads": threads,
    })
}

/// The page's data for `p`, which must have been loaded with time buckets (without them the
/// whole profile is one bucket and no range can be selected). Unless `keep_runtime_frames`, the
/// Rust runtime's start-up frames of each stack fold into one [`RUNTIME_FRAME`].
pub fn view_data(
    p: &Profile,
    title: &str,
    limit_override: Option<u64>,
    keep_runtime_frames: bool,
) -> Value {
    let mut t = Tables::default();
    let mut tree = Tree::default();
    let mut stack_node: Vec<i64> = Vec::with_capacity(p.stack_stats.len());
    let mut stack_site: Vec<u32> = Vec::with_capacity(p.stack_stats.len());
    let mut stack_peak: Vec<u64> = Vec::with_capacity(p.stack_stats.len());
    let mut frames: Vec<FrameId> = Vec::new();
    let mut finder = SiteFinder::new(p);
    for s in &p.stack_stats {
        frames.clear();
        for ip in p.stack_ips(s.stack) {
            frames.extend(p.ip(ip).frames.iter().copied());
        }
        let mut parent: i64 = -1;
        if frames.is_empty() {
            let f = t.frame(p, None);
            // No function id names "[unknown]": a sentinel keeps its node apart.
            let name = StringId(u32::MAX);
            parent = node(&mut tree, parent, name, f) as i64;
        }
        frames.reverse();
        let names: Vec<&str> = frames.iter().map(|&f| p.str(p.frame(f).function)).collect();
        if let Some(marker) = root_marker(&names, s.truncated) {
            let f = t.named_frame(marker);
            // No function id names a marker frame: a sentinel per marker keeps its node apart.
            let id = if marker == TRUNCATED_FRAME {
                u32::MAX - 2
            } else {
                u32::MAX - 3
            };
            parent = node(&mut tree, parent, StringId(id), f) as i64;
        }
        let fold = if keep_runtime_frames {
            0
        } else {
            runtime_prefix(&names)
        };
        if fold > 0 {
            let f = t.named_frame(RUNTIME_FRAME);
            // No function id names the folded frame: a sentinel keeps its node apart.
            parent = node(&mut tree, parent, StringId(u32::MAX - 1), f) as i64;
        }
        for &fid in &frames[fold..] {
            let f = t.frame(p, Some(fid));
            parent = node(&mut tree, parent, p.frame(fid).function, f) as i64;
        }
        stack_node.push(parent);
        stack_site.push(t.frame(p, finder.frame(s.stack)));
        stack_peak.push(Metric::Peak.of(&s.counts));
    }
    let buckets = p.time_buckets.as_ref().map(buckets_json);
    let threads: Vec<Value> = p
        .threads
        .iter()
        .map(|th| {
            json!({
                "tid": th.tid, "name": th.name, "allocations": th.allocations,
                "allocated_bytes": th.allocated_bytes,
                "stack_bytes": th.stack_hi.saturating_sub(th.stack_lo),
                "stack_high_water_bytes": th.stack_high_water_bytes,
            })
        })
        .collect();
    let lim = limit(p, limit_override).map(|(l, _)| l);
    let mut warnings: Vec<String> = p.warnings.clone();
    warnings.extend(
        p.messages
            .iter()
            .filter(|m| m.level > 0)
            .map(|m| format!("recorder {}: {}", m.level_name(), m.text)),
    );
    json!({
        "title": title,
        "exe": p.header.exe,
        "pid": p.header.pid,
        "cmdline": p.header.cmdline,
        "duration_ns": p.totals.duration_ns,
        "sampling_rate": p.header.sampling_rate,
        "truncated": p.truncated.as_ref().map(|t| t.reason.clone()),
        "warnings": warnings,
        "totals": p.totals,
        "limit_bytes": lim,
        "strings": t.strings,
        "frames": { "fn": t.frame_fn, "file": t.frame_file, "line": t.frame_line },
        "nodes": tree,
        "stacks": { "node": stack_node, "site": stack_site, "peak": stack_peak },
        "buckets": buckets,
        "series": {
            "live": series_json(live_heap_series(p)),
            "rss": series_json(series(p, key::RSS_BYTES)),
            "rss_anon": series_json(series(p, key::RSS_ANON_BYTES)),
            "je_resident": series_json(series(p, key::JEMALLOC_RESIDENT)),
            "cgroup": series_json(series(p, key::CGROUP_CURRENT_BYTES)),
            "rate_bytes": series_json(rate_series(p, key::ALLOCATED_BYTES)),
            "rate_calls": series_json(rate_series(p, key::ALLOC_CALLS)),
            "lat_p50": series_json(series_with_gaps(p, key::ALLOC_LATENCY_P50_NS)),
            "lat_p99": series_json(series_with_gaps(p, key::ALLOC_LATENCY_P99_NS)),
            "lat_max": series_json(series_with_gaps(p, key::ALLOC_LATENCY_MAX_NS)),
            "threads": series_json(series(p, key::THREADS)),
        },
        "threads": threads,
    })
}

fn node(tree: &mut Tree, parent: i64, name: StringId, frame: u32) -> u32 {
    *tree.index.entry((parent, name)).or_insert_with(|| {
        tree.parent.push(parent);
        tree.frame.push(frame);
        (tree.parent.len() - 1) as u32
    })
}
