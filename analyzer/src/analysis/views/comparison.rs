//! Comparison metrics over folded stacks (design §4): total-cost change, mean stack depth
//! change, the top functions' share before and after, and the sites that grew most.

use serde::Serialize;
use std::collections::BTreeMap;

/// How many hotspots and growing sites a comparison lists. Default: 10.
pub const TOP_N: usize = 10;

/// An allocation site's share of the total cost, before and after.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hotspot {
    /// Function name of the site (the leaf of its folded stacks).
    pub function: String,
    /// Share of the baseline's total cost allocated at this site, 0..=1.
    pub share_before: f64,
    /// Share of this scenario's total cost allocated at this site, 0..=1.
    pub share_after: f64,
}

/// An allocation site (the leaf frame of a folded stack) whose cost changed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SiteGrowth {
    /// Leaf frame.
    pub site: String,
    /// Mean cost per run in the baseline.
    pub before: f64,
    /// Mean cost per run in this scenario.
    pub after: f64,
    /// `after − before`.
    pub delta: f64,
}

/// Comparison of one scenario's stacks with the baseline's (costs are means per run).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// Total cost (flamegraph area) of the baseline.
    pub total_cost_before: f64,
    /// Total cost of this scenario.
    pub total_cost_after: f64,
    /// `after − before`.
    pub total_cost_change: f64,
    /// Change in percent of the baseline; `null` when the baseline is 0.
    pub total_cost_change_pct: Option<f64>,
    /// Cost-weighted mean stack depth of the baseline.
    pub mean_depth_before: f64,
    /// Cost-weighted mean stack depth of this scenario.
    pub mean_depth_after: f64,
    /// The top functions (by share in either profile) with their shares.
    pub hotspots: Vec<Hotspot>,
    /// Sites whose cost grew most.
    pub top_growth: Vec<SiteGrowth>,
}

struct Folded {
    total: f64,
    depth_weighted: f64,
    leaf: BTreeMap<String, f64>,
}

fn parse(lines: &[&str], runs: usize) -> Folded {
    let per_run = 1.0 / runs.max(1) as f64;
    let mut f = Folded {
        total: 0.0,
        depth_weighted: 0.0,
        leaf: BTreeMap::new(),
    };
    for line in lines {
        let Some((stack, count)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(count) = count.trim().parse::<f64>() else {
            continue;
        };
        let cost = count * per_run;
        let frames: Vec<&str> = stack.split(';').filter(|s| !s.is_empty()).collect();
        f.total += cost;
        f.depth_weighted += cost * frames.len() as f64;
        if let Some(leaf) = frames.last() {
            *f.leaf.entry((*leaf).to_owned()).or_default() += cost;
        }
    }
    f
}

/// Compares folded stacks (`"a;b;c N"` lines, all runs concatenated) of a baseline with `runs`
/// runs against a scenario's.
pub fn compare_folded(
    before: &[&str],
    before_runs: usize,
    after: &[&str],
    after_runs: usize,
) -> Comparison {
    let b = parse(before, before_runs);
    let a = parse(after, after_runs);
    let share = |m: &BTreeMap<String, f64>, total: f64, k: &str| {
        if total > 0.0 {
            m.get(k).copied().unwrap_or(0.0) / total
        } else {
            0.0
        }
    };
    // Hotspots are sites (leaves): inclusive shares are dominated by the frames every stack
    // shares (`main`, `_start`, thread entry points) and say nothing about a shift.
    let mut names: Vec<&String> = b.leaf.keys().chain(a.leaf.keys()).collect();
    names.sort();
    names.dedup();
    let mut hotspots: Vec<Hotspot> = names
        .into_iter()
        .map(|n| Hotspot {
            function: n.clone(),
            share_before: share(&b.leaf, b.total, n),
            share_after: share(&a.leaf, a.total, n),
        })
        .collect();
    hotspots.sort_by(|x, y| {
        let kx = x.share_before.max(x.share_after);
        let ky = y.share_before.max(y.share_after);
        ky.total_cmp(&kx).then_with(|| x.function.cmp(&y.function))
    });
    hotspots.truncate(TOP_N);
    let mut sites: Vec<&String> = b.leaf.keys().chain(a.leaf.keys()).collect();
    sites.sort();
    sites.dedup();
    let mut growth: Vec<SiteGrowth> = sites
        .into_iter()
        .map(|s| {
            let before = b.leaf.get(s).copied().unwrap_or(0.0);
            let after = a.leaf.get(s).copied().unwrap_or(0.0);
            SiteGrowth {
                site: s.clone(),
                before,
                after,
                delta: after - before,
            }
        })
        .filter(|g| g.delta > 0.0)
        .collect();
    growth.sort_by(|x, y| {
        y.delta
            .total_cmp(&x.delta)
            .then_with(|| x.site.cmp(&y.site))
    });
    growth.truncate(TOP_N);
    let depth = |f: &Folded| {
        if f.total > 0.0 {
            f.depth_weighted / f.total
        } else {
            0.0
        }
    };
    Comparison {
        total_cost_before: b.total,
        total_cost_after: a.total,
        total_cost_change: a.total - b.total,
        total_cost_change_pct: (b.total > 0.0).then(|| 100.0 * (a.total - b.total) / b.total),
        mean_depth_before: depth(&b),
        mean_depth_after: depth(&a),
        hotspots,
        top_growth: growth,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_shift() {
        let before = ["main;parse;alloc 300", "main;render 100"];
        let after = ["main;parse;alloc 100", "main;render;deep;x 300"];
        let c = compare_folded(&before, 1, &after, 1);
        assert_eq!(c.total_cost_before, 400.0);
        assert_eq!(c.total_cost_after, 400.0);
        assert_eq!(c.total_cost_change_pct, Some(0.0));
        assert_eq!(c.mean_depth_before, (3.0 * 300.0 + 2.0 * 100.0) / 400.0);
        assert_eq!(c.mean_depth_after, (3.0 * 100.0 + 4.0 * 300.0) / 400.0);
        let share = |name: &str| {
            let h = c.hotspots.iter().find(|h| h.function == name).unwrap();
            (h.share_before, h.share_after)
        };
        assert_eq!(share("alloc"), (0.75, 0.25));
        assert_eq!(share("x"), (0.0, 0.75));
        assert_eq!(share("render"), (0.25, 0.0));
        assert!(
            c.hotspots.iter().all(|h| h.function != "main"),
            "roots are not sites"
        );
        assert_eq!(c.top_growth[0].site, "x");
        assert_eq!(c.top_growth[0].delta, 300.0);
        assert_eq!(c.top_growth.len(), 1);
    }

    #[test]
    fn runs_are_averaged_and_junk_skipped() {
        let c = compare_folded(
            &["a;b 10", "a;b 30", "garbage", "a;c notanumber"],
            2,
            &["a;b 20"],
            1,
        );
        assert_eq!(c.total_cost_before, 20.0);
        assert_eq!(c.total_cost_change, 0.0);
    }
}
