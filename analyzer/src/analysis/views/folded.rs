//! The call-tree views a flamegraph draws: folded stacks of one metric ([`FoldedView`]) and the
//! differential stacks of two profiles ([`DiffView`]).
//!
//! Folded lines (`main;f;g 1024`, root first, sorted) are the only thing the flamegraph renderer
//! shares with the model, as in inferno (`collapse` → folded text → `flamegraph`).

use std::collections::BTreeMap;

use crate::analysis::{Metric, MetricUnavailable, SiteFinder, Unit, UNKNOWN_FUNCTION};
use crate::model::{Profile, StackStats};
use crate::units;

/// Why a call-tree view cannot be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FoldedError {
    /// The profile does not have the metric asked for.
    #[error(transparent)]
    Unavailable(#[from] MetricUnavailable),
    /// The metric is measured on the whole profile only: it has no per-stack values to draw.
    #[error("{0} is measured on the whole profile only: no per-stack values to draw")]
    NotPerStack(Metric),
    /// Merging two folded profiles failed.
    #[error("cannot merge the folded stacks: {0}")]
    Merge(#[from] std::io::Error),
}

/// One metric's call tree as folded stacks, with the titles a flamegraph of it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoldedView {
    /// Folded lines, root first (`main;f;g 1024`), sorted, values adding up within `u64`.
    pub lines: Vec<String>,
    /// Title (`Allocated bytes — app (pid 42)`).
    pub title: String,
    /// Subtitle: the total, after a warning when the profile is truncated.
    pub subtitle: Option<String>,
    /// What one unit of a value is called (`bytes`, `allocations`).
    pub count_name: String,
    /// What to say when there is nothing to draw (`no leaked bytes in this profile`).
    pub empty_message: String,
}

/// The call tree of `m` over `p` ([`folded`], titled), the Rust runtime's start-up frames folded
/// into one frame. Fails for a metric the profile lacks or one with no per-stack values.
pub fn folded_view(p: &Profile, m: Metric) -> Result<FoldedView, FoldedError> {
    folded_view_with(p, m, false)
}

/// [`folded_view`], keeping the Rust runtime's start-up frames when `keep_runtime_frames`.
pub fn folded_view_with(
    p: &Profile,
    m: Metric,
    keep_runtime_frames: bool,
) -> Result<FoldedView, FoldedError> {
    if !m.is_per_stack() {
        return Err(FoldedError::NotPerStack(m));
    }
    view(p, m, fit_in_u64(folded_with(p, m, keep_runtime_frames)))
}

/// [`folded_view_with`] as a flamegraph draws it: each line cut after its first frame narrower
/// than `min_width_pct` per cent of the total, which the drawing leaves out
/// ([`super::drawn::drawn_lines`]; all the lines when the names do not allow it). inferno draws
/// the same SVG from these lines as from all of them.
pub fn flamegraph_view(
    p: &Profile,
    m: Metric,
    keep_runtime_frames: bool,
    min_width_pct: f64,
) -> Result<FoldedView, FoldedError> {
    if !m.is_per_stack() {
        return Err(FoldedError::NotPerStack(m));
    }
    m.check_available(p)?;
    let lines = super::drawn::drawn_lines(p, m, keep_runtime_frames, min_width_pct)
        .unwrap_or_else(|| fit_in_u64(folded_with(p, m, keep_runtime_frames)));
    view(p, m, lines)
}

/// The view of `lines` with the titles of `m` over `p`.
fn view(p: &Profile, m: Metric, lines: Vec<String>) -> Result<FoldedView, FoldedError> {
    let (title, subtitle) = titles(p, m);
    Ok(FoldedView {
        lines,
        title,
        subtitle,
        count_name: m.count_name().to_owned(),
        empty_message: format!("no {} in this profile", m.title().to_lowercase()),
    })
}

/// The folded line of a recorded stack, root → leaf, its root end shown by the one rule of
/// [`crate::analysis::stack_roots`]: a stack cut at the recorder's frame limit starts with
/// `[truncated]`, one that stopped unwinding before a thread or process entry with
/// `[unwinding stopped]`, so partial stacks gather under one marked root instead of passing for
/// separate roots; unless `keep_runtime_frames`, the Rust runtime's start-up frames are one
/// `[Rust runtime]` frame.
fn stack_line(p: &Profile, s: &StackStats, keep_runtime_frames: bool) -> String {
    let names = crate::analysis::stack_roots::display_names(p, s, keep_runtime_frames);
    if names.is_empty() {
        return UNKNOWN_FUNCTION.to_owned();
    }
    // Room for the value the folded line ends with (` 18446744073709551615`), so that adding
    // it does not copy the line again.
    let len = names.iter().map(|n| n.len() + 1).sum::<usize>() + 21;
    let mut line = String::with_capacity(len);
    for (i, n) in names.iter().enumerate() {
        if i > 0 {
            line.push(';');
        }
        line.push_str(n);
    }
    line
}

/// Like [`folded`], with each stack cut at its allocation site: the allocator plumbing inside the
/// site (`alloc`, `RawVec::grow`, `operator new`, …) is left out, so the leaf of every line is the
/// site (docs/metrics.md). Comparisons use these lines: their leaves are the sites.
pub fn folded_to_sites(p: &Profile, m: Metric) -> Vec<String> {
    let mut lines: BTreeMap<String, u64> = BTreeMap::new();
    let mut finder = SiteFinder::new(p);
    for s in &p.stack_stats {
        let v = m.of(&s.counts);
        if v == 0 {
            continue;
        }
        let frames: Vec<&crate::model::Frame> = p.stack_frames(s.stack).collect();
        let site = finder.index(s.stack);
        let mut names: Vec<&str> = frames[site..].iter().map(|f| p.str(f.function)).collect();
        names.reverse();
        if let Some(marker) = crate::analysis::stack_roots::root_marker(&names, s.truncated) {
            names.insert(0, marker);
        }
        let line = if names.is_empty() {
            UNKNOWN_FUNCTION.to_owned()
        } else {
            names.join(";")
        };
        let e = lines.entry(line).or_default();
        *e = e.saturating_add(v);
    }
    lines
        .into_iter()
        .map(|(stack, v)| format!("{stack} {v}"))
        .collect()
}

/// Folded stacks for `m`, root first (`main;f;g 1024`), one line per distinct stack, sorted,
/// stacks with a zero value left out; every frame kept (the Rust runtime's too), root markers
/// as [`crate::analysis::stack_roots`] says.
pub fn folded(p: &Profile, m: Metric) -> Vec<String> {
    folded_with(p, m, true)
}

/// [`folded`], with the Rust runtime's start-up frames folded into one `[Rust runtime]` frame
/// unless `keep_runtime_frames` (what `tidemark flamegraph` draws by default).
pub fn folded_with(p: &Profile, m: Metric, keep_runtime_frames: bool) -> Vec<String> {
    // Without a Rust start-up frame in the profile there is nothing to fold.
    let keep_runtime_frames =
        keep_runtime_frames || !crate::analysis::stack_roots::may_have_runtime_frames(p);
    // Each half of the stacks made into sorted lines on a thread of its own, then merged
    // (python3's 6,100 stacks are 4 MB of lines: 12 ms on one thread).
    let lines = |stats: &[StackStats]| -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = stats
            .iter()
            .filter_map(|s| {
                let v = m.of(&s.counts);
                (v != 0).then(|| (stack_line(p, s, keep_runtime_frames), v))
            })
            .collect();
        v.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        v
    };
    let stats = &p.stack_stats;
    let (a, b) = if stats.len() < PARALLEL_STACKS {
        (lines(stats), Vec::new())
    } else {
        let (first, second) = stats.split_at(stats.len() / 2);
        std::thread::scope(|scope| {
            let other = scope.spawn(|| lines(second));
            let a = lines(first);
            match other.join() {
                Ok(b) => (a, b),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    };
    // Sorted and merged, equal lines (stacks that fold alike) added up.
    let mut merged: Vec<(String, u64)> = Vec::with_capacity(a.len() + b.len());
    let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
    loop {
        let next = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if y.0 < x.0 => b.next(),
            (Some(_), _) => a.next(),
            (None, Some(_)) => b.next(),
            (None, None) => break,
        };
        let Some((line, v)) = next else { break };
        match merged.last_mut() {
            Some((last, n)) if *last == line => *n = n.saturating_add(v),
            _ => merged.push((line, v)),
        }
    }
    merged
        .into_iter()
        .map(|(mut line, v)| {
            use std::fmt::Write as _;
            let _ = write!(line, " {v}");
            line
        })
        .collect()
}

/// Stacks from which [`folded_with`] makes its lines on two threads.
const PARALLEL_STACKS: usize = 512;

/// The title and subtitle of a flamegraph of `p`.
fn titles(p: &Profile, m: Metric) -> (String, Option<String>) {
    let exe = p
        .header
        .exe
        .rsplit('/')
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or("profile");
    let title = format!("{} — {exe} (pid {})", m.title(), p.header.pid);
    let total = p
        .stack_stats
        .iter()
        .fold(0u64, |t, s| t.saturating_add(m.of(&s.counts)));
    let total = match m.unit() {
        Unit::Bytes => units::bytes(total),
        _ => format!("{} {}", units::count(total), m.count_name()),
    };
    let mut sub = format!("total {total}");
    if let Some(t) = &p.truncated {
        sub = format!(
            "WARNING: truncated profile ({}); numbers cover the recorded part only — {sub}",
            t.reason
        );
    }
    (title, Some(sub))
}

/// Folded lines whose values add up within `u64` (inferno sums them): a damaged profile can hold
/// per-stack values near `u64::MAX`; they are then scaled down alike (real profiles never need
/// it: 2^64 bytes is 16 EiB).
fn fit_in_u64(lines: Vec<String>) -> Vec<String> {
    let value = |l: &str| -> u64 {
        l.rsplit_once(' ')
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0)
    };
    let total: u128 = lines.iter().map(|l| u128::from(value(l))).sum();
    if total <= u128::from(u64::MAX) {
        return lines;
    }
    let divisor = total.div_ceil(u128::from(u64::MAX)) as u64;
    lines
        .iter()
        .map(|l| match l.rsplit_once(' ') {
            Some((stack, _)) => format!("{stack} {}", value(l) / divisor),
            None => l.clone(),
        })
        .collect()
}

/// Two folded profiles merged for a differential flamegraph (inferno's differential mode: widths
/// from the new profile, colour by the change from the old).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffView {
    /// Differential lines (`a;b;c BEFORE AFTER`), sorted; empty when the new profile has nothing.
    pub lines: Vec<String>,
    /// Title.
    pub title: String,
    /// Subtitle (how to read the colours).
    pub subtitle: Option<String>,
    /// What one unit of a value is called (`bytes`, `allocations`).
    pub count_name: String,
    /// What to say when there is nothing to draw.
    pub empty_message: String,
}

/// The differential view of `before` → `after` (folded lines, any order).
pub fn diff_view(
    before: &[String],
    after: &[String],
    title: &str,
    count_name: &str,
    empty_message: &str,
) -> Result<DiffView, FoldedError> {
    let lines = if after.is_empty() {
        Vec::new()
    } else {
        differential_lines(before, after)?
    };
    Ok(DiffView {
        lines,
        title: title.to_owned(),
        subtitle: Some(DIFF_SUBTITLE.to_owned()),
        count_name: count_name.to_owned(),
        empty_message: empty_message.to_owned(),
    })
}

/// [`diff_view`] of two profiles' [`folded()`] lines of `m`, as a differential flamegraph draws
/// it: each line cut after its first frame narrower than `min_width_pct` per cent of the new
/// profile's total ([`super::drawn_diff::drawn_diff_lines`]; the whole lines when the names do
/// not allow it). inferno draws the same SVG from these lines as from the whole ones.
pub fn diff_flamegraph_view(
    before: &Profile,
    after: &Profile,
    m: Metric,
    title: &str,
    empty_message: &str,
    min_width_pct: f64,
) -> Result<DiffView, FoldedError> {
    let has_any = after.stack_stats.iter().any(|s| m.of(&s.counts) != 0);
    match super::drawn_diff::drawn_diff_lines(before, after, m, min_width_pct) {
        Some(lines) if has_any => Ok(DiffView {
            lines,
            title: title.to_owned(),
            subtitle: Some(DIFF_SUBTITLE.to_owned()),
            count_name: m.count_name().to_owned(),
            empty_message: empty_message.to_owned(),
        }),
        _ => diff_view(
            &folded(before, m),
            &folded(after, m),
            title,
            m.count_name(),
            empty_message,
        ),
    }
}

/// How to read a differential flamegraph.
const DIFF_SUBTITLE: &str = "widths: new profile · red grew, blue shrank";

/// The differential folded lines (`"a;b;c BEFORE AFTER"`) of two folded profiles, sorted.
pub fn differential_lines(
    before: &[String],
    after: &[String],
) -> Result<Vec<String>, std::io::Error> {
    let mut diff = Vec::new();
    inferno::differential::from_readers(
        inferno::differential::Options::default(),
        before.join("\n").as_bytes(),
        after.join("\n").as_bytes(),
        &mut diff,
    )?;
    let mut lines: Vec<String> = String::from_utf8_lossy(&diff)
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differential_has_two_columns() {
        let before = vec!["main;a 100".to_owned(), "main;b 50".to_owned()];
        let after = vec!["main;a 10".to_owned(), "main;c 90".to_owned()];
        let lines = differential_lines(&before, &after).unwrap();
        assert!(lines.contains(&"main;a 100 10".to_owned()), "{lines:?}");
        assert!(lines.contains(&"main;c 0 90".to_owned()), "{lines:?}");
        assert!(diff_view(&before, &[], "t", "bytes", "nothing")
            .unwrap()
            .lines
            .is_empty());
    }
}
