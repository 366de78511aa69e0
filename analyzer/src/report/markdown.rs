//! Markdown report, fit for a pull-request comment.

use super::{format_delta, format_value, significance_text_for, MetricStat, Report, METRICS};
use crate::render::timeline::human_bytes;
use std::fmt::Write as _;

/// Escapes text for a Markdown table cell (pipes, HTML-significant characters, backticks).
pub fn md_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '|' => out.push_str("\\|"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '`' => out.push('\''),
            '*' | '[' | ']' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            _ => out.push(c),
        }
    }
    out
}

/// A function name as a Markdown code span, safe inside a table cell.
pub fn md_code(s: &str) -> String {
    format!(
        "`{}`",
        s.replace('`', "'")
            .replace('|', "\\|")
            .replace(['\n', '\r'], " ")
    )
}

pub(crate) fn cell_value(def_unit: super::MetricUnit, s: &MetricStat) -> String {
    if s.n >= 2 && s.ci95_high > s.ci95_low {
        format!(
            "{} (95% CI {} – {}, n={})",
            format_value(def_unit, s.mean),
            format_value(def_unit, s.ci95_low),
            format_value(def_unit, s.ci95_high),
            s.n
        )
    } else if s.n >= 2 {
        format!("{} (n={}, no spread)", format_value(def_unit, s.mean), s.n)
    } else {
        format_value(def_unit, s.mean)
    }
}

/// Renders the report as Markdown.
pub fn to_markdown(r: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# tidemark comparison report\n");
    let _ = writeln!(
        o,
        "Baseline: **{}** · {} scenario(s) · metric definitions: [{}]({})\n",
        md_escape(&r.baseline),
        r.scenarios.len(),
        r.definitions,
        r.definitions
    );
    for s in &r.scenarios {
        if s.truncated_runs > 0 {
            let _ = writeln!(
                o,
                "> **Warning:** {} of {} run(s) of **{}** are truncated profiles; their numbers stop where the file ends.\n",
                s.truncated_runs,
                s.runs,
                md_escape(&s.label)
            );
        }
    }
    o.push_str("| Metric |");
    for s in &r.scenarios {
        let base = if s.label == r.baseline {
            " (baseline)"
        } else {
            ""
        };
        let _ = write!(
            o,
            " {}{} ({} run{}) |",
            md_escape(&s.label),
            base,
            s.runs,
            if s.runs == 1 { "" } else { "s" }
        );
    }
    o.push_str("\n|---|");
    for _ in &r.scenarios {
        o.push_str("---|");
    }
    o.push('\n');
    for def in METRICS {
        if r.scenarios
            .iter()
            .all(|s| !s.metrics.contains_key(def.json_key))
        {
            continue;
        }
        let _ = write!(o, "| [{}]({}#{}) |", def.label, r.definitions, def.anchor);
        for s in &r.scenarios {
            match s.metrics.get(def.json_key) {
                None => o.push_str(" – |"),
                Some(st) => {
                    let mut cell = cell_value(def.unit, st);
                    if st.delta_vs_baseline.is_some() {
                        let _ = write!(cell, "<br>{}", format_delta(def.unit, st));
                        let sig = significance_text_for(def.unit, st);
                        if !sig.is_empty() {
                            let _ = write!(cell, ", {sig}");
                        }
                    }
                    let _ = write!(o, " {cell} |");
                }
            }
        }
        o.push('\n');
    }
    for s in &r.scenarios {
        let Some(c) = &s.comparison else { continue };
        let _ = writeln!(
            o,
            "\n## {} vs {}\n",
            md_escape(&s.label),
            md_escape(&r.baseline)
        );
        let pct = c
            .total_cost_change_pct
            .map(|p| format!(" ({p:+.1}%)"))
            .unwrap_or_default();
        let _ = writeln!(
            o,
            "- Total allocated bytes per run (flamegraph area): {} → {}{}",
            human_bytes(c.total_cost_before),
            human_bytes(c.total_cost_after),
            pct
        );
        let _ = writeln!(
            o,
            "- Mean stack depth at allocation: {:.1} → {:.1} frames\n",
            c.mean_depth_before, c.mean_depth_after
        );
        if !c.hotspots.is_empty() {
            o.push_str("| Site | Share before | Share after |\n|---|---:|---:|\n");
            for h in &c.hotspots {
                let _ = writeln!(
                    o,
                    "| {} | {:.1}% | {:.1}% |",
                    md_code(&h.function),
                    h.share_before * 100.0,
                    h.share_after * 100.0
                );
            }
            o.push('\n');
        }
        if !c.top_growth.is_empty() {
            o.push_str("Sites that grew most:\n\n| Site | Before | After | Change |\n|---|---:|---:|---:|\n");
            for g in &c.top_growth {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | +{} |",
                    md_code(&g.site),
                    human_bytes(g.before),
                    human_bytes(g.after),
                    human_bytes(g.delta)
                );
            }
        }
    }
    o.push_str(&super::stack::markdown(r));
    o
}

#[cfg(test)]
mod tests {
    use super::super::tests::run;
    use super::super::{build, ScenarioInput};
    use super::*;

    #[test]
    fn golden_markdown() {
        let base = ScenarioInput {
            label: "before".into(),
            runs: vec![
                run("a1", 1024.0, 10.0, &["main;parse 300", "main;render 100"]),
                run("a2", 1024.0, 10.0, &["main;parse 300", "main;render 100"]),
            ],
        };
        let after = ScenarioInput {
            label: "after<T>|x".into(),
            runs: vec![
                run(
                    "b1",
                    2048.0,
                    12.0,
                    &["main;parse 100", "main;render;Vec<u8>::push 500"],
                ),
                run(
                    "b2",
                    2048.0,
                    12.0,
                    &["main;parse 100", "main;render;Vec<u8>::push 500"],
                ),
            ],
        };
        let md = to_markdown(&build(&[base, after], None).unwrap());
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/report/golden.md");
        if std::env::var_os("TIDEMARK_BLESS").is_some() {
            std::fs::create_dir_all(std::path::Path::new(path).parent().unwrap()).unwrap();
            std::fs::write(path, &md).unwrap();
        }
        let expected = std::fs::read_to_string(path)
            .unwrap_or_else(|_| panic!("missing {path}; run with TIDEMARK_BLESS=1 to create it"));
        if md != expected {
            let actual = std::env::temp_dir().join("tidemark-golden.md");
            std::fs::write(&actual, &md).unwrap();
            for (i, (a, e)) in md.lines().zip(expected.lines()).enumerate() {
                assert_eq!(
                    a,
                    e,
                    "{path}:{} differs (actual output kept in {})",
                    i + 1,
                    actual.display()
                );
            }
            panic!(
                "{path}: line count differs (actual output kept in {})",
                actual.display()
            );
        }
        assert!(md.contains("after&lt;T&gt;\\|x"));
    }

    #[test]
    fn escapes() {
        assert_eq!(md_escape("a|b<c>&`d`*"), "a\\|b&lt;c&gt;&amp;'d'\\*");
    }
}
