//! The comparison's stack-eligible sites: per scenario, the sites whose blocks could have been
//! local values (profiles recorded with `tidemark run --escape`; docs/metrics.md, "Heap vs
//! stack"), mean bytes and blocks per run. `report::stack` writes them as the report's "Could
//! live on the stack" section.

use std::collections::BTreeMap;

use serde::Serialize;

use super::report::ScenarioInput;
use crate::analysis::escape::{escape, EscapeOptions};
use crate::model::Profile;

/// Sites listed per scenario.
pub const STACK_SITES: usize = 10;

/// One site's stack-eligible blocks in one run: `(function, blocks, bytes)`.
pub type RunSite = (String, u64, u64);

/// A run's stack-eligible sites, most bytes first (empty without frame addresses).
pub fn run_sites(p: &Profile) -> Vec<RunSite> {
    let Some(e) = escape(p, &EscapeOptions::default()) else {
        return Vec::new();
    };
    let mut v: Vec<RunSite> = e
        .sites
        .into_iter()
        .filter(|s| s.stack_eligible_blocks > 0)
        .map(|s| (s.function, s.stack_eligible_blocks, s.stack_eligible_bytes))
        .collect();
    v.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
    v
}

/// A site of a scenario, averaged over its runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StackEligibleSite {
    /// The allocating function.
    pub function: String,
    /// Stack-eligible blocks per run (mean).
    pub blocks: f64,
    /// Their bytes per run (mean).
    pub bytes: f64,
}

/// The scenario's top sites, means over its runs.
pub fn scenario_sites(s: &ScenarioInput) -> Vec<StackEligibleSite> {
    let mut sum: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for r in &s.runs {
        for (f, blocks, b) in &r.stack_eligible {
            let e = sum.entry(f.as_str()).or_default();
            e.0 += blocks;
            e.1 += b;
        }
    }
    let n = s.runs.len().max(1) as f64;
    let mut v: Vec<StackEligibleSite> = sum
        .into_iter()
        .map(|(f, (blocks, b))| StackEligibleSite {
            function: f.to_owned(),
            blocks: blocks as f64 / n,
            bytes: b as f64 / n,
        })
        .collect();
    v.sort_by(|a, b| {
        b.bytes
            .total_cmp(&a.bytes)
            .then_with(|| a.function.cmp(&b.function))
    });
    v.truncate(STACK_SITES);
    v
}
