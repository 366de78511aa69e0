//! The differential lines a differential flamegraph is drawn from ([`drawn_diff_lines`]): the
//! lines of [`super::differential_lines`] (`stack BEFORE AFTER`, sorted), each cut after its first
//! frame too narrow to draw, made from the two profiles' stacks without writing out their folded
//! lines, merging them as text and sorting the result (`tidemark diff` of two cc1plus profiles:
//! 64 MB of folded lines, 229 MB at peak).
//!
//! Widths come from the new profile (inferno's differential mode). Unlike the lines of one
//! profile ([`super::drawn`]), lines cut alike are not merged: inferno scales its colours by the
//! largest change of any one line, so every line keeps its two counts. A cut line keeps its
//! place and ends with a frame inferno does not draw; a frame drawn is never the last frame of a
//! cut line, so the change it is coloured by is the one it had. inferno draws the same SVG, byte
//! for byte.

use std::cmp::Ordering;

use super::drawn::{
    first_narrow_frames, joined_cmp, kept_frames, sorted_stacks, stack_text, Names, Resolve,
};
use crate::analysis::Metric;
use crate::model::{Profile, StringId};

/// The lines inferno draws the same differential flamegraph from as from
/// [`super::differential_lines`] of the two profiles' [`super::folded()`] lines: each cut after
/// its first frame narrower than `min_width_pct` per cent of the new profile's total, in the same
/// order, with the same counts.
///
/// `None` when the names do not allow it (as [`super::drawn::drawn_lines`], and also two names
/// one of which begins the other followed by a byte up to a space: their lines would not sort as
/// their stacks do), or when the new profile has nothing: the caller then takes the whole lines.
pub fn drawn_diff_lines(
    before: &Profile,
    after: &Profile,
    m: Metric,
    min_width_pct: f64,
) -> Option<Vec<String>> {
    if !plain_names(&[before, after]) {
        return None;
    }
    let (nb, na) = (Names::new(before), Names::new(after));
    if after.strings.len() >= EXTRA as usize {
        return None;
    }
    let b = sorted(before, m, &nb)?;
    let a = sorted(after, m, &na)?;
    // One space of ids: the new profile's, and the names only the old one has after them.
    let mut space = Space {
        after: &na,
        extra: Vec::new(),
    };
    let mut memo: Vec<u32> = vec![u32::MAX; before.strings.len()];
    let mut remap = |id: u32| -> u32 {
        match memo.get_mut(id as usize) {
            Some(to) if *to != u32::MAX => *to,
            Some(to) => {
                *to = space.find(nb.get(id));
                *to
            }
            None => space.find(nb.get(id)),
        }
    };
    let b: Vec<(Vec<u32>, u64)> = b
        .into_iter()
        .map(|(ids, v)| (ids.iter().map(|&id| remap(id)).collect(), v))
        .collect();

    // Merged in order: each stack once, with its count in each profile.
    let mut union: Vec<(&[u32], u64, u64)> = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < b.len() || j < a.len() {
        let order = match (b.get(i), a.get(j)) {
            (Some(x), Some(y)) => joined_cmp(&x.0, &y.0, &space),
            (Some(_), None) => Ordering::Less,
            _ => Ordering::Greater,
        };
        match order {
            Ordering::Less => {
                union.push((&b[i].0, b[i].1, 0));
                i += 1;
            }
            Ordering::Greater => {
                union.push((&a[j].0, 0, a[j].1));
                j += 1;
            }
            Ordering::Equal => {
                union.push((&a[j].0, b[i].1, a[j].1));
                i += 1;
                j += 1;
            }
        }
    }
    let total: u128 = union.iter().map(|&(_, _, v)| u128::from(v)).sum();
    let total = u64::try_from(total).ok().filter(|&t| t > 0)?;
    let widths: Vec<(&[u32], u64)> = union.iter().map(|&(s, _, v)| (s, v)).collect();
    let cut = first_narrow_frames(&widths, total, min_width_pct);

    let mut lines = Vec::with_capacity(union.len());
    let mut above: Option<&[u32]> = None;
    for (&(stack, old, new), &c) in union.iter().zip(&cut) {
        // Cut as one profile's lines are ([`kept_frames`]), but every line kept.
        let kept = &stack[..kept_frames(stack, c, above, &space)];
        above = Some(kept);
        let mut line = stack_text(kept, &space);
        use std::fmt::Write as _;
        let _ = write!(line, " {old} {new}");
        lines.push(line);
    }
    Some(lines)
}

/// A profile's stacks as ids of `names`, sorted in the order of their folded lines, stacks that
/// fold alike added up (what [`super::folded()`] writes as text), each in a vector of its own.
fn sorted(p: &Profile, m: Metric, names: &Names<'_>) -> Option<Vec<(Vec<u32>, u64)>> {
    let (flat, stacks) = sorted_stacks(p, m, true, names)?;
    Some(
        stacks
            .iter()
            .map(|s| (flat[s.start as usize..s.end as usize].to_vec(), s.value))
            .collect(),
    )
}

/// True when the profiles' names are frames inferno reads back as they are and their lines
/// sort as their stacks: no name holds `;` or a control byte, and no name begins another that
/// goes on with a byte up to a space (`f` and `f 2`: the line `…;f 5 6` sorts after `…;f 2 …`).
fn plain_names(profiles: &[&Profile]) -> bool {
    let mut all: Vec<&str> = Names::MARKERS.to_vec();
    for p in profiles {
        all.extend(p.strings.iter());
    }
    if all.iter().any(|s| s.bytes().any(|b| b == b';' || b < b' ')) {
        return false;
    }
    all.sort_unstable();
    all.dedup();
    // The names that begin with `x` follow it, the one with the smallest next byte first.
    all.windows(2)
        .all(|w| !(w[1].starts_with(w[0]) && w[1].as_bytes()[w[0].len()] <= b' '))
}

/// The new profile's names and the old one's others, in one space of ids.
struct Space<'a> {
    after: &'a Names<'a>,
    /// Names of the old profile the new one lacks: ids from `EXTRA` on.
    extra: Vec<&'a str>,
}

/// The first id of [`Space::extra`] (above any string table's, below the markers').
const EXTRA: u32 = 1 << 31;

impl<'a> Space<'a> {
    /// The id of `text` in this space, added when new.
    fn find(&mut self, text: &'a str) -> u32 {
        if let Some(i) = Names::MARKERS.iter().position(|&m| m == text) {
            return self.after.marker(i);
        }
        if let Some(StringId(id)) = self.after.table().strings.find(text) {
            return id;
        }
        self.extra.push(text);
        EXTRA + (self.extra.len() - 1) as u32
    }
}

impl Resolve for Space<'_> {
    fn get(&self, id: u32) -> &str {
        match id.checked_sub(EXTRA) {
            Some(i) if (i as usize) < self.extra.len() => self.extra[i as usize],
            _ => self.after.get(id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_whose_lines_would_not_sort_as_their_stacks_are_refused() {
        let with = |names: &[&str]| {
            let mut p = Profile::default();
            for n in names {
                p.strings.intern(n);
            }
            plain_names(&[&p])
        };
        assert!(with(&[
            "f",
            "f::g",
            "f:",
            "operator new",
            "operator new[]",
            "x 2"
        ]));
        assert!(!with(&["f", "f 2"]), "`…;f 5 6` sorts after `…;f 2 …`");
        assert!(!with(&["operator", "operator new"]));
        assert!(!with(&["a;b"]));
        assert!(!with(&["tab\there"]));
        // A marker frame counts as a name.
        assert!(!with(&["[unknown] 1"]));
    }
}
