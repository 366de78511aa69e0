//! The report's "Could live on the stack" section: per scenario, the sites whose blocks could
//! have been local values (profiles recorded with `tidemark run --escape`; docs/metrics.md,
//! "Heap vs stack"), mean bytes and blocks per run. Left out when no scenario has them.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::{Report, ScenarioInput};
use crate::analysis::escape::{escape, EscapeOptions};
use crate::model::Profile;
use crate::render::units::{bytes, count};

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

/// The section's rows: `(scenario, site)`; empty when no scenario has any.
fn rows(r: &Report) -> Vec<(&str, &StackEligibleSite)> {
    r.scenarios
        .iter()
        .flat_map(|s| s.stack_eligible_sites.iter().map(|x| (s.label.as_str(), x)))
        .collect()
}

/// The section in Markdown (empty when no scenario was recorded with `--escape`).
pub fn markdown(r: &Report) -> String {
    let rows = rows(r);
    if rows.is_empty() {
        return String::new();
    }
    let mut o = format!(
        "\n## Could live on the stack\n\nBlocks freed by their own thread before the function \
         that allocated them returned, up to 4 KiB ([definition]({}#stack-eligible)); per run.\n\n\
         | Scenario | Site | Blocks | Bytes |\n|---|---|---:|---:|\n",
        r.definitions
    );
    for (label, s) in rows {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} |",
            super::markdown::md_escape(label),
            super::markdown::md_code(&s.function),
            count(s.blocks.round() as u64),
            bytes(s.bytes.round() as u64)
        );
    }
    o
}

/// The section in HTML (empty when no scenario was recorded with `--escape`).
pub fn html(r: &Report) -> String {
    let rows = rows(r);
    if rows.is_empty() {
        return String::new();
    }
    let esc = super::html::html_escape;
    let mut o = format!(
        "<h2 id=stack>Could live on the stack</h2>\n<p class=muted>Blocks freed by their own \
         thread before the function that allocated them returned, up to 4 KiB (<a href=\"{}#\
         stack-eligible\">definition</a>); per run.</p>\n<table><tr><th>Scenario</th><th>Site\
         </th><th>Blocks</th><th>Bytes</th></tr>\n",
        esc(&r.definitions)
    );
    for (label, s) in rows {
        let _ = writeln!(
            o,
            "<tr><td>{}</td><td><code>{}</code></td><td class=num>{}</td><td class=num>{}</td>\
             </tr>",
            esc(label),
            esc(&s.function),
            count(s.blocks.round() as u64),
            bytes(s.bytes.round() as u64)
        );
    }
    o.push_str("</table>\n");
    o
}
