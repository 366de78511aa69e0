//! The folded lines a flamegraph is drawn from ([`drawn_lines`]): the call tree's lines with what
//! the drawing leaves out cut off, made without writing out every stack first.
//!
//! inferno draws no frame narrower than a minimum width (`min_width` per cent of the total), but
//! it parses every line and keeps every frame until the end. cc1plus's 23,700 deep C++ stacks
//! are 32 MB of folded lines for 5,200 frames drawn: building, sorting and parsing those lines
//! was two thirds of `tidemark flamegraph`. Here the stacks are sorted as their names (the
//! order of their folded lines, compared name by name), the width of every frame comes from one
//! pass over them, and each line is written only up to its first frame too narrow to draw.
//!
//! The lines give inferno the same frames with the same start and end, so the SVG is the same
//! byte for byte: a cut line stays where its line was (every later frame keeps its start), its
//! last frame is narrow (not drawn), consecutive lines cut alike become one.

use std::cmp::Ordering;

use crate::analysis::stack_roots::{
    may_have_runtime_frames, root_marker, runtime_prefix, RUNTIME_FRAME, TRUNCATED_FRAME,
    UNWINDING_STOPPED_FRAME,
};
use crate::analysis::{Metric, UNKNOWN_FUNCTION};
use crate::model::{Profile, StringId};

/// The lines inferno draws the same flamegraph from as from [`super::folded_with`]'s, with
/// every line cut after its first frame narrower than `min_width_pct` per cent of the total
/// (inferno's `min_width`), sorted, merged.
///
/// `None` when the stacks' names are not exactly the frames inferno would read from the lines
/// (a name holding `;`, a first frame with leading white space or `# `, a leaf inferno would read
/// a second count from), or when the values do not add up within `u64`: the caller then draws
/// all the lines.
pub fn drawn_lines(
    p: &Profile,
    m: Metric,
    keep_runtime_frames: bool,
    min_width_pct: f64,
) -> Option<Vec<String>> {
    if p.strings.iter().any(|s| s.contains(';')) {
        return None;
    }
    let names = Names::new(p);
    let (flat, stacks) = sorted_stacks(p, m, keep_runtime_frames, &names)?;
    let merged: Vec<(&[u32], u64)> = stacks
        .iter()
        .map(|s| (&flat[s.start as usize..s.end as usize], s.value))
        .collect();
    let total: u128 = merged.iter().map(|(_, v)| u128::from(*v)).sum();
    let total = u64::try_from(total).ok().filter(|&t| t > 0)?;

    let cut = first_narrow_frames(&merged, total, min_width_pct);

    let mut lines: Vec<(&[u32], u64)> = Vec::with_capacity(merged.len());
    for (&(stack, v), &c) in merged.iter().zip(&cut) {
        let above = lines.last().map(|&(last, _)| last);
        let kept = &stack[..kept_frames(stack, c, above, &names)];
        match lines.last_mut() {
            Some((last, sum)) if *last == kept => *sum += v,
            _ => lines.push((kept, v)),
        }
    }
    Some(
        lines
            .into_iter()
            .map(|(stack, v)| {
                use std::fmt::Write as _;
                let mut line = stack_text(stack, &names);
                let _ = write!(line, " {v}");
                line
            })
            .collect(),
    )
}

/// How many of `stack`'s frames its line keeps when cut after frame `cut` (`None`: all), below
/// the line `above`. A cut can sort before the line above (`f::g;x` above `f;y` cut to `f`),
/// and inferno refuses unsorted lines; a leaf such as `operator 2` would be read as a second
/// count. Such a line keeps frames until neither holds (at most all of them: the line itself).
pub(super) fn kept_frames(
    stack: &[u32],
    cut: Option<usize>,
    above: Option<&[u32]>,
    names: &impl Resolve,
) -> usize {
    let mut n = cut.map_or(stack.len(), |c| c + 1);
    while n < stack.len()
        && (!plain_leaf(names.get(stack[n - 1]))
            || above.is_some_and(|a| joined_cmp(&stack[..n], a, names) == Ordering::Less))
    {
        n += 1;
    }
    n
}

/// The folded text of `stack` (`main;f;g`), with room for the counts the caller appends.
pub(super) fn stack_text(stack: &[u32], names: &impl Resolve) -> String {
    let len = stack
        .iter()
        .map(|&id| names.get(id).len() + 1)
        .sum::<usize>()
        + 42;
    let mut line = String::with_capacity(len);
    for (i, &id) in stack.iter().enumerate() {
        if i > 0 {
            line.push(';');
        }
        line.push_str(names.get(id));
    }
    line
}

/// [`collect`]'s stacks sorted in the order of their folded lines, stacks that show alike (the
/// same names) one, their values added up: what [`super::folded_with`] writes as text.
pub(super) fn sorted_stacks(
    p: &Profile,
    m: Metric,
    keep_runtime_frames: bool,
    names: &Names<'_>,
) -> Option<(Vec<u32>, Vec<Stack>)> {
    let (flat, mut stacks) = collect(p, m, keep_runtime_frames, names)?;
    let ids = |s: &Stack| &flat[s.start as usize..s.end as usize];
    match NameRanks::new(&flat, names) {
        Some(r) => stacks.sort_unstable_by(|a, b| r.cmp(ids(a), ids(b), names)),
        None => stacks.sort_unstable_by(|a, b| joined_cmp(ids(a), ids(b), names)),
    }
    let mut merged: Vec<Stack> = Vec::with_capacity(stacks.len());
    for s in stacks {
        match merged.last_mut() {
            Some(last) if ids(last) == ids(&s) => last.value = last.value.saturating_add(s.value),
            _ => merged.push(s),
        }
    }
    Some((flat, merged))
}

/// A stack's names (`start..end` in the flat list of ids) and its value.
pub(super) struct Stack {
    pub(super) start: u32,
    pub(super) end: u32,
    pub(super) value: u64,
}

/// Every stack with a value of `m`, as ids of the names [`crate::analysis::stack_roots::display_names`]
/// gives it, one after the other in one list. `None` when a line of these names would not read
/// back as these frames.
fn collect(
    p: &Profile,
    m: Metric,
    keep_runtime_frames: bool,
    names: &Names<'_>,
) -> Option<(Vec<u32>, Vec<Stack>)> {
    // Without a Rust start-up frame in the profile there is nothing to fold (and no need to look
    // for one in every name).
    let fold_runtime = !keep_runtime_frames && may_have_runtime_frames(p);
    let mut flat: Vec<u32> = Vec::new();
    let mut stacks: Vec<Stack> = Vec::new();
    let mut own: Vec<u32> = Vec::new();
    let mut text: Vec<&str> = Vec::new();
    for s in &p.stack_stats {
        let value = m.of(&s.counts);
        if value == 0 {
            continue;
        }
        own.clear();
        own.extend(p.stack_frames(s.stack).map(|f| f.function.0));
        own.reverse();
        let fold = if fold_runtime {
            text.clear();
            text.extend(own.iter().map(|&id| names.get(id)));
            runtime_prefix(&text)
        } else {
            0
        };
        let root = own.first().map(|&id| names.get(id));
        let start = flat.len();
        match root_marker(root.as_slice(), s.truncated) {
            Some(TRUNCATED_FRAME) => flat.push(names.truncated),
            Some(_) => flat.push(names.stopped),
            None => {}
        }
        if fold > 0 {
            flat.push(names.runtime);
        }
        flat.extend_from_slice(&own[fold..]);
        if flat.len() == start {
            flat.push(names.unknown);
        }
        let first = names.get(flat[start]);
        if first.is_empty() || first.starts_with(char::is_whitespace) || first.starts_with("# ") {
            return None;
        }
        if !plain_leaf(names.get(flat[flat.len() - 1])) {
            return None;
        }
        stacks.push(Stack {
            start: u32::try_from(start).ok()?,
            end: u32::try_from(flat.len()).ok()?,
            value,
        });
    }
    Some((flat, stacks))
}

/// Names by id: the profile's strings, and the marker frames the outputs add. A marker the
/// string table also holds takes its id there, so that equal ids are equal names and equal
/// names equal ids.
pub(super) struct Names<'p> {
    p: &'p Profile,
    truncated: u32,
    stopped: u32,
    runtime: u32,
    unknown: u32,
}

/// Names by id ([`Names`], or the ids of two profiles' names in one space).
pub(super) trait Resolve {
    /// The name of `id`.
    fn get(&self, id: u32) -> &str;
}

impl Resolve for Names<'_> {
    fn get(&self, id: u32) -> &str {
        Names::get(self, id)
    }
}

impl<'p> Names<'p> {
    pub(super) const MARKERS: [&'static str; 4] = [
        TRUNCATED_FRAME,
        UNWINDING_STOPPED_FRAME,
        RUNTIME_FRAME,
        UNKNOWN_FUNCTION,
    ];

    pub(super) fn new(p: &'p Profile) -> Self {
        let id = |i: usize| {
            p.strings
                .find(Self::MARKERS[i])
                .map_or(u32::MAX - i as u32, |StringId(id)| id)
        };
        Names {
            p,
            truncated: id(0),
            stopped: id(1),
            runtime: id(2),
            unknown: id(3),
        }
    }

    /// The id of the marker `MARKERS[i]`.
    pub(super) fn marker(&self, i: usize) -> u32 {
        [self.truncated, self.stopped, self.runtime, self.unknown][i]
    }

    /// The profile whose strings these are.
    pub(super) fn table(&self) -> &'p Profile {
        self.p
    }

    pub(super) fn get(&self, id: u32) -> &'p str {
        match u32::MAX - id {
            i @ 0..=3 => Self::MARKERS[i as usize],
            _ => self.p.str(StringId(id)),
        }
    }
}

/// For each of the sorted, merged `stacks`, the index of its first frame narrower than
/// `min_width_pct` per cent of `total` as inferno measures it: frames open while consecutive
/// lines share them, a frame's width is the sum of its lines' values, and it is dropped when
/// `(end - start) as f64 < min_width / (100.0 / total as f64)`.
pub(super) fn first_narrow_frames(
    stacks: &[(&[u32], u64)],
    total: u64,
    min_width_pct: f64,
) -> Vec<Option<usize>> {
    let widthpertime_pct = 100.0 / total as f64;
    let minwidth_time = min_width_pct / widthpertime_pct;
    let mut cut: Vec<Option<usize>> = vec![None; stacks.len()];
    // The open frames, one per depth: (start time, first line).
    let mut open: Vec<(u64, usize)> = Vec::new();
    // Closes the frames deeper than `depth` at `time` before line `line`; a narrow one marks its
    // lines (a shallower frame closes later and overwrites: the first narrow frame wins).
    let mut close = |open: &mut Vec<(u64, usize)>, depth: usize, time: u64, line: usize| {
        while open.len() > depth {
            let d = open.len() - 1;
            let Some((start, first)) = open.pop() else {
                break;
            };
            if ((time - start) as f64) < minwidth_time {
                for c in &mut cut[first..line] {
                    *c = Some(d);
                }
            }
        }
    };
    let mut prev: &[u32] = &[];
    let mut time = 0u64;
    for (i, &(stack, v)) in stacks.iter().enumerate() {
        let shared = prev.iter().zip(stack).take_while(|(a, b)| a == b).count();
        close(&mut open, shared, time, i);
        open.resize(stack.len(), (time, i));
        prev = stack;
        time += v;
    }
    close(&mut open, 0, time, stacks.len());
    cut
}

/// True when inferno reads `leaf`, the last frame of a line, as it is: it trims white space at
/// the end of a line and reads a last word of digits (and a dot) as a second count.
pub(super) fn plain_leaf(leaf: &str) -> bool {
    if leaf.is_empty() || leaf.ends_with(char::is_whitespace) {
        return false;
    }
    leaf.rsplit_once(' ')
        .is_none_or(|(_, word)| !word.chars().all(|c| c.is_ascii_digit() || c == '.'))
}

/// The order of the folded lines of two stacks of name ids (`a.join(";")` against
/// `b.join(";")`), compared name by name: equal ids (equal names) are passed over without
/// reading them.
pub(super) fn joined_cmp(a: &[u32], b: &[u32], names: &impl Resolve) -> Ordering {
    for (i, (&x, &y)) in a.iter().zip(b).enumerate() {
        if x == y {
            continue;
        }
        let (xb, yb) = (names.get(x).as_bytes(), names.get(y).as_bytes());
        let c = mismatch(xb, yb);
        if c < xb.len() && c < yb.len() {
            return xb[c].cmp(&yb[c]);
        }
        // One name begins the other: what follows the shorter (`;` or the end) decides.
        let joined = |ids: &[u32]| -> Vec<u8> {
            let text: Vec<&str> = ids.iter().map(|&id| names.get(id)).collect();
            text.join(";").into_bytes()
        };
        return joined(&a[i..]).cmp(&joined(&b[i..]));
    }
    a.len().cmp(&b.len())
}

/// The order of the names of a set of stacks as it shows in their folded lines where a `;`
/// follows them: each name's rank among the names `name;` sorted. Sorting the stacks then
/// compares two numbers at their first differing frame instead of reading two names (cc1plus's
/// 23,700 deep C++ stacks: `flamegraph` 0.97–0.98×, docs/performance.md speed round 19).
struct NameRanks {
    /// Rank by [`NameRanks::slot_of`] of the id; `u32::MAX` for ids the stacks do not hold.
    ranks: Vec<u32>,
    /// Profile strings (the ids below it); the four markers' ids follow.
    strings: usize,
}

impl NameRanks {
    /// The ranks of the names in `flat`; `None` when a name holds `;` (its line would not split
    /// back into the same names, and a name followed by `;` would not order as one).
    fn new(flat: &[u32], names: &Names<'_>) -> Option<NameRanks> {
        let strings = names.table().strings.len();
        let mut ranks = vec![u32::MAX; strings + Names::MARKERS.len()];
        let slot = |id: u32| Self::slot_of(id, strings);
        let mut distinct: Vec<u32> = Vec::new();
        for &id in flat {
            let r = ranks.get_mut(slot(id))?;
            if *r == u32::MAX {
                *r = 0;
                distinct.push(id);
            }
        }
        if distinct.iter().any(|&id| names.get(id).contains(';')) {
            return None;
        }
        // `a;` against `b;`: their bytes, and where one name begins the other, `;` against
        // the longer one's next byte.
        distinct.sort_unstable_by(|&x, &y| {
            let (a, b) = (names.get(x).as_bytes(), names.get(y).as_bytes());
            let c = mismatch(a, b);
            let at = |s: &[u8]| s.get(c).copied().unwrap_or(b';');
            at(a).cmp(&at(b)).then(a.len().cmp(&b.len()))
        });
        for (rank, &id) in distinct.iter().enumerate() {
            ranks[slot(id)] = u32::try_from(rank).ok()?;
        }
        Some(NameRanks { ranks, strings })
    }

    /// Index of `id` in the ranks: a string's id, or a marker's after them.
    #[inline]
    fn slot_of(id: u32, strings: usize) -> usize {
        match u32::MAX - id {
            i @ 0..=3 => strings + i as usize,
            _ => id as usize,
        }
    }

    /// [`joined_cmp`] of two stacks whose names are all ranked: where both go on after their
    /// first differing frame, the ranks decide; where one ends there, the names' bytes.
    #[inline]
    fn cmp(&self, a: &[u32], b: &[u32], names: &impl Resolve) -> Ordering {
        let i = first_difference(a, b);
        let (Some(&x), Some(&y)) = (a.get(i), b.get(i)) else {
            return a.len().cmp(&b.len());
        };
        if i + 1 < a.len() && i + 1 < b.len() {
            let rank = |id: u32| self.ranks[Self::slot_of(id, self.strings)];
            return rank(x).cmp(&rank(y));
        }
        joined_cmp(&a[i..], &b[i..], names)
    }
}

/// The index of the first frame where `a` and `b` differ (the shorter one's length when one
/// begins the other), eight frames at a time: sorted deep stacks share long outer parts.
#[inline]
fn first_difference(a: &[u32], b: &[u32]) -> usize {
    let n = a.len().min(b.len());
    let mut i = 0;
    while i + 8 <= n {
        let x: [u32; 8] = a[i..i + 8].try_into().unwrap_or_default();
        let y: [u32; 8] = b[i..i + 8].try_into().unwrap_or_default();
        if x != y {
            break;
        }
        i += 8;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

/// The length of the common prefix of `a` and `b`, eight bytes at a time.
fn mismatch(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let mut i = 0;
    while i + 8 <= n {
        let x = u64::from_le_bytes(a[i..i + 8].try_into().unwrap_or_default());
        let y = u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or_default());
        if x != y {
            return i + ((x ^ y).trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joined_order_is_the_order_of_the_joined_lines() {
        let names: [&[&str]; 9] = [
            &["r", "f"],
            &["r", "f::g", "x"],
            &["r", "f", "y"],
            &["r", "f:", "z"],
            &["r", "fa"],
            &["r"],
            &["r", "f", "y", "w"],
            &["q", "operator new[]"],
            &["q", "operator new", "a"],
        ];
        let mut p = Profile::default();
        let ids: Vec<Vec<u32>> = names
            .iter()
            .map(|n| n.iter().map(|s| p.strings.intern(s).0).collect())
            .collect();
        let table = Names::new(&p);
        for (a, x) in names.iter().zip(&ids) {
            for (b, y) in names.iter().zip(&ids) {
                assert_eq!(
                    joined_cmp(x, y, &table),
                    a.join(";").cmp(&b.join(";")),
                    "{a:?} against {b:?}"
                );
            }
        }
        // The ranks give the same order wherever both stacks go on past their first
        // difference, and fall back to the names where one ends there.
        let flat: Vec<u32> = ids.concat();
        let ranks = NameRanks::new(&flat, &table).expect("no name holds `;`");
        for (a, x) in names.iter().zip(&ids) {
            for (b, y) in names.iter().zip(&ids) {
                assert_eq!(
                    ranks.cmp(x, y, &table),
                    a.join(";").cmp(&b.join(";")),
                    "ranked: {a:?} against {b:?}"
                );
            }
        }
        assert_eq!(mismatch(b"abcdefghijk", b"abcdefghiXk"), 9);
        assert_eq!(mismatch(b"abc", b"abcdef"), 3);
    }

    #[test]
    fn leaves_inferno_reads_as_they_are() {
        assert!(plain_leaf("operator new"));
        assert!(plain_leaf("f(int, 2)"));
        assert!(!plain_leaf("operator 2"));
        assert!(!plain_leaf("x 1.5"));
        assert!(!plain_leaf("f "));
        assert!(!plain_leaf(""));
    }
}
