//! Whether the recorded stacks can be trusted: stacks cut at the recorder's frame limit, and
//! frame-pointer walks that broke on code without frame pointers.
//!
//! Both limits are silent in the data itself (a cut stack looks like a stack with a different
//! root; a broken frame-pointer walk looks like a short stack), so every output that shows
//! stacks warns with the share of allocations affected (docs/limits.md).

use serde::Serialize;

use crate::model::Profile;

/// A frame-pointer profile is suspect when the allocation-weighted median stack has at most this
/// many return addresses: `malloc`'s caller and one more frame is what a walk gets when the first
/// function without a frame pointer reuses `rbp` (docs/limits.md).
pub const FP_SUSPECT_MEDIAN_DEPTH: u64 = 2;

/// A frame-pointer profile is suspect when more than this share of its allocations have stacks
/// whose outermost return address lies in no loaded module (the walk followed a `rbp` holding
/// data, not a frame).
pub const FP_SUSPECT_UNMAPPED_SHARE: f64 = 0.5;

/// How trustworthy the stacks of a profile are.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StackQuality {
    /// Allocation calls with a recorded stack.
    pub allocations: u64,
    /// Of those, calls whose stack was cut at the recorder's frame limit.
    pub truncated_allocations: u64,
    /// The profile was recorded with frame-pointer unwinding.
    pub frame_pointers: bool,
    /// Allocation-weighted median number of return addresses per stack.
    pub median_depth: u64,
    /// Calls whose stack has at most [`FP_SUSPECT_MEDIAN_DEPTH`] return addresses.
    pub shallow_allocations: u64,
    /// Calls whose outermost return address lies in no module of the profile's module maps.
    pub unmapped_root_allocations: u64,
}

impl StackQuality {
    /// True when the frame-pointer walks look broken: recorded with `fp` and the median stack is
    /// at most [`FP_SUSPECT_MEDIAN_DEPTH`] deep, or most stacks end outside every module.
    pub fn frame_pointers_look_broken(&self) -> bool {
        self.frame_pointers
            && self.allocations > 0
            && (self.median_depth <= FP_SUSPECT_MEDIAN_DEPTH
                || share(self.unmapped_root_allocations, self.allocations)
                    > FP_SUSPECT_UNMAPPED_SHARE)
    }

    /// The warnings every output shows, empty when the stacks look sound.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.truncated_allocations > 0 {
            out.push(format!(
                "{} of allocation calls ({} of {}) have stacks deeper than the recorder's \
                 {}-frame limit: their outermost frames are missing, and flamegraphs show them \
                 under a [truncated] root",
                percent(self.truncated_allocations, self.allocations),
                self.truncated_allocations,
                self.allocations,
                tidemark::unwind::MAX_FRAMES
            ));
        }
        if self.frame_pointers_look_broken() {
            let affected = self.shallow_allocations.max(self.unmapped_root_allocations);
            out.push(format!(
                "the stacks look broken: recorded with --unwind fp, {} of allocation calls have \
                 stacks of at most {} frames or ending outside any loaded module (median depth \
                 {}); the program (or its libraries) was built without frame pointers. Record \
                 again with --unwind dwarf (the default)",
                percent(affected, self.allocations),
                FP_SUSPECT_MEDIAN_DEPTH,
                self.median_depth
            ));
        }
        out
    }
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn percent(part: u64, whole: u64) -> String {
    format!("{:.1}%", share(part, whole) * 100.0)
}

/// Measures the stacks of `p`.
pub fn stack_quality(p: &Profile) -> StackQuality {
    let frame_pointers = p.header.unwind == "fp";
    let mut q = StackQuality {
        frame_pointers,
        ..StackQuality::default()
    };
    // Segments of every module snapshot, sorted, for the outermost-address check.
    let mut segments: Vec<(u64, u64)> = p
        .modules
        .iter()
        .flat_map(|s| s.modules.iter())
        .flat_map(|m| m.segments.iter())
        .map(|s| (s.start, s.start.saturating_add(s.size)))
        .collect();
    segments.sort_unstable();
    let mapped = |addr: u64| {
        let i = segments.partition_point(|&(start, _)| start <= addr);
        segments[..i]
            .iter()
            .rev()
            .take(64)
            .any(|&(_, end)| addr < end)
    };
    let mut depths: Vec<(u64, u64)> = Vec::with_capacity(p.stack_stats.len());
    for s in &p.stack_stats {
        if s.stack.is_none() || s.counts.allocations == 0 {
            continue;
        }
        q.allocations += s.counts.allocations;
        if s.truncated {
            q.truncated_allocations += s.counts.allocations;
        }
        if !frame_pointers {
            continue;
        }
        let mut depth = 0u64;
        let mut outermost = None;
        for ip in p.stack_ips(s.stack) {
            depth += 1;
            outermost = Some(p.ip(ip).address);
        }
        depths.push((depth, s.counts.allocations));
        if depth <= FP_SUSPECT_MEDIAN_DEPTH {
            q.shallow_allocations += s.counts.allocations;
        }
        if !segments.is_empty() && outermost.is_some_and(|a| !mapped(a)) {
            q.unmapped_root_allocations += s.counts.allocations;
        }
    }
    if frame_pointers && q.allocations > 0 {
        depths.sort_unstable();
        let half = q.allocations.div_ceil(2);
        let mut seen = 0u64;
        for (depth, n) in depths {
            seen += n;
            if seen >= half {
                q.median_depth = depth;
                break;
            }
        }
    }
    q
}
