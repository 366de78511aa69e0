//! Runtime escape analysis: per allocation site, where its blocks were freed relative to the
//! function that allocated them (definitions in `docs/metrics.md`, "Escape classes"), and which
//! of them could have lived on the stack. Needs a profile recorded with `tidemark run --escape`.
//!
//! The loader counts each stack's same-thread frees by the innermost frame still running at the
//! free ([`StackEscape`]); here, once frames are symbolized, the allocating function is chosen
//! (the first frame that is not allocator machinery, as for sites) and each block is classed:
//! *local* when that function was still running, *escaped to caller at depth k* when its k-th
//! caller was the innermost one still running, *other thread*, or *never freed*.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::SiteFinder;
use crate::model::{FrameId, Profile, StackEscape, StackId};

/// Default size limit of a block that "could live on the stack" (`--stack-threshold`).
pub const DEFAULT_STACK_THRESHOLD_BYTES: u64 = 4096;

/// Options of [`escape`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EscapeOptions {
    /// Largest local block counted as stack-eligible, bytes. Default:
    /// [`DEFAULT_STACK_THRESHOLD_BYTES`].
    pub stack_threshold_bytes: u64,
}

impl Default for EscapeOptions {
    fn default() -> Self {
        EscapeOptions {
            stack_threshold_bytes: DEFAULT_STACK_THRESHOLD_BYTES,
        }
    }
}

/// Escape classes of one allocation site (counts are blocks).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EscapeSite {
    /// The allocating function (the site).
    pub function: String,
    /// Its source file, empty when unknown.
    pub file: String,
    /// Its source line, 0 when unknown.
    pub line: u32,
    /// Blocks allocated here.
    pub blocks: u64,
    /// Their requested bytes.
    pub bytes: u64,
    /// Freed by the allocating thread while the allocating function was still running.
    pub local: u64,
    /// Requested bytes of the local blocks.
    pub local_bytes: u64,
    /// Freed by the allocating thread after the function returned, while a caller ran.
    pub caller: u64,
    /// [`Self::caller`] by depth: `"1"` the direct caller, `"2"` its caller… A block whose
    /// every recorded frame had returned counts at one past the deepest recorded caller.
    pub caller_depths: BTreeMap<String, u64>,
    /// Freed by another thread.
    pub other_thread: u64,
    /// Live at the end of the profile.
    pub never_freed: u64,
    /// Blocks that could not be classed (no frame addresses at allocation or free).
    pub unknown: u64,
    /// Local blocks of at most the threshold: they could have lived on the stack.
    pub stack_eligible_blocks: u64,
    /// Their requested bytes.
    pub stack_eligible_bytes: u64,
    /// Share of the site's blocks that are local, 0..=1.
    pub local_share: f64,
    /// What to try instead of the heap, when some blocks are stack-eligible.
    pub hint: String,
}

/// Escape analysis of a whole profile.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Escape {
    /// Sites, most local bytes first (ties: more blocks, then by name).
    pub sites: Vec<EscapeSite>,
    /// Stack-eligible blocks over every site.
    pub stack_eligible_blocks: u64,
    /// Their requested bytes.
    pub stack_eligible_bytes: u64,
    /// The threshold used.
    pub stack_threshold_bytes: u64,
}

/// Stack use of one thread.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ThreadStack {
    /// Kernel thread id.
    pub tid: u32,
    /// Name, empty when unknown.
    pub name: String,
    /// Size of its stack mapping (the main thread: the stack rlimit), bytes.
    pub stack_size_bytes: u64,
    /// Deepest stack use seen: the top of the stack minus the lowest stack pointer of a
    /// recorded event (a lower bound of the true peak, docs/metrics.md). `None` when the
    /// profile does not measure it for this thread: no `THREAD_EXIT` record (a file cut short),
    /// or one with 0 (no event of the thread was unwound).
    pub stack_peak_bytes: Option<u64>,
}

/// Per-thread stack sizes and peaks, in order of first appearance.
pub fn thread_stacks(p: &Profile) -> Vec<ThreadStack> {
    p.threads
        .iter()
        .map(|t| ThreadStack {
            tid: t.tid,
            name: t.name.clone(),
            stack_size_bytes: t.stack_hi.saturating_sub(t.stack_lo),
            stack_peak_bytes: t.stack_high_water_bytes.filter(|&b| b > 0),
        })
        .collect()
}

/// The deepest stack use of any thread per timeline interval, `(seconds, bytes)`; empty for a
/// profile recorded without `--escape`.
pub fn stack_depth_series(p: &Profile) -> Vec<(f64, f64)> {
    p.escape.as_ref().map_or_else(Vec::new, |e| {
        e.stack_depth
            .iter()
            .map(|&(t, b)| (t as f64 / 1e9, b as f64))
            .collect()
    })
}

/// Index of the physical frame (return address) holding the site of `leaf`: the allocating
/// function's frame, whose CFA the recorder wrote at that index.
pub fn site_physical_index(p: &Profile, leaf: Option<StackId>) -> usize {
    physical_index(&mut SiteFinder::new(p), p, leaf)
}

/// [`site_physical_index`] with a finder shared over many stacks.
fn physical_index(finder: &mut SiteFinder, p: &Profile, leaf: Option<StackId>) -> usize {
    let mut expanded = finder.index(leaf);
    for (i, ip) in p.stack_ips(leaf).enumerate() {
        let n = p.ip(ip).frames.len();
        if expanded < n {
            return i;
        }
        expanded -= n;
    }
    0
}

/// Sets each stack's `stack_eligible_bytes` (default threshold) and the total's, once frames are
/// symbolized (the allocating function is chosen by name). Nothing without frame addresses.
pub fn count_stack_eligible(p: &mut Profile) {
    let Some(data) = p.escape.as_ref() else {
        return;
    };
    let opts = EscapeOptions::default();
    let mut per_stack = Vec::with_capacity(p.stack_stats.len());
    let mut finder = SiteFinder::new(p);
    for (st, e) in p.stack_stats.iter().zip(&data.stacks) {
        let mut site = EscapeSite::default();
        add_stack(
            &mut site,
            e,
            physical_index(&mut finder, p, st.stack),
            &opts,
        );
        per_stack.push(site.stack_eligible_bytes);
    }
    let mut total = 0u64;
    for (st, bytes) in p.stack_stats.iter_mut().zip(per_stack) {
        st.counts.stack_eligible_bytes = bytes;
        total = total.saturating_add(bytes);
    }
    p.totals.counts.stack_eligible_bytes = total;
}

/// Escape classes per site; `None` when the profile holds no frame addresses.
pub fn escape(p: &Profile, opts: &EscapeOptions) -> Option<Escape> {
    let per_stack = &p.escape.as_ref()?.stacks;
    let mut by_site: HashMap<Option<FrameId>, EscapeSite> = HashMap::new();
    let mut finder = SiteFinder::new(p);
    for (st, e) in p.stack_stats.iter().zip(per_stack) {
        let site = by_site.entry(finder.frame(st.stack)).or_default();
        add_stack(site, e, physical_index(&mut finder, p, st.stack), opts);
    }
    let mut out = Escape {
        stack_threshold_bytes: opts.stack_threshold_bytes,
        ..Escape::default()
    };
    for (f, mut s) in by_site {
        if s.blocks == 0 {
            continue;
        }
        (s.function, s.file, s.line) = super::site_location(p, f);
        s.local_share = s.local as f64 / s.blocks as f64;
        s.hint = hint(&s).to_owned();
        out.stack_eligible_blocks += s.stack_eligible_blocks;
        out.stack_eligible_bytes += s.stack_eligible_bytes;
        out.sites.push(s);
    }
    out.sites.sort_by(|a, b| {
        b.local_bytes
            .cmp(&a.local_bytes)
            .then(b.blocks.cmp(&a.blocks))
            .then_with(|| a.function.cmp(&b.function))
            .then(a.line.cmp(&b.line))
    });
    Some(out)
}

/// Adds one stack's blocks to its site; `site_at` is the allocating function's frame index.
fn add_stack(site: &mut EscapeSite, e: &StackEscape, site_at: usize, opts: &EscapeOptions) {
    for (&(index, size), &n) in &e.same_thread {
        site.blocks += n;
        site.bytes += size * n;
        let index = usize::from(index);
        if index <= site_at {
            site.local += n;
            site.local_bytes += size * n;
            if size <= opts.stack_threshold_bytes {
                site.stack_eligible_blocks += n;
                site.stack_eligible_bytes += size * n;
            }
        } else {
            site.caller += n;
            *site
                .caller_depths
                .entry((index - site_at).to_string())
                .or_default() += n;
        }
    }
    for (count, (n, bytes)) in [
        (&mut site.other_thread, e.other_thread),
        (&mut site.never_freed, e.never_freed),
        (&mut site.unknown, e.unknown),
    ] {
        *count += n;
        site.blocks += n;
        site.bytes += bytes;
    }
}

/// A one-line suggestion for a site with stack-eligible blocks.
fn hint(s: &EscapeSite) -> &'static str {
    if s.stack_eligible_blocks == 0 {
        return "";
    }
    let mean = s.stack_eligible_bytes / s.stack_eligible_blocks;
    if s.local == s.blocks && mean <= 256 {
        "a local value or fixed-size array instead of a heap block"
    } else if s.local == s.blocks {
        "an inline buffer (array, SmallVec/ArrayVec) sized for the common case"
    } else {
        "reuse one buffer across calls, or an inline buffer for the local cases"
    }
}
