//! The report's "Could live on the stack" section: the stack-eligible sites of each scenario
//! ([`crate::analysis::views::stack_eligible`]) as Markdown and HTML. Left out when no scenario
//! has them.

use std::fmt::Write as _;

use super::Report;
/// The view, kept at its old paths: [`crate::analysis::views::stack_eligible`].
pub use crate::analysis::views::stack_eligible::{
    run_sites, scenario_sites, RunSite, StackEligibleSite, STACK_SITES,
};
use crate::units::{bytes, count};

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
    let esc = crate::render::xml::escape;
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
