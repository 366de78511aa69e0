//! Self-contained HTML report: inline CSS and SVG, no network, no external scripts.

use super::markdown::cell_value;
use super::{format_delta, significance_text, Report, ReportError, ScenarioInput, METRICS};
use crate::render::timeline::{self, human_bytes, Line, Panel, Unit};
use base64::Engine as _;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Escapes text for HTML element content and attribute values.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

const CSS: &str = r#"
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:1200px;color:#1b1f24;padding:0 16px}
h1{font-size:1.6em;margin-bottom:4px}h2{margin-top:36px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
table{border-collapse:collapse;margin:12px 0;font-size:.92em}th,td{border:1px solid #d0d7de;padding:6px 10px;vertical-align:top}
th{background:#f6f8fa;text-align:left}td.num{text-align:right}.muted{color:#57606a;font-size:.88em}
.up{color:#b42318}.down{color:#1a7f37}.ns{color:#57606a}.warn{background:#fff8c5;border:1px solid #d4a72c;padding:8px 12px;border-radius:6px}
figure{margin:12px 0}figcaption{color:#57606a;font-size:.9em;margin-bottom:4px}img.flame{width:100%;border:1px solid #d0d7de}
dl.defs dt{font-weight:600;margin-top:8px}dl.defs dd{margin-left:16px}
"#;

fn merged_folded(s: &ScenarioInput) -> Vec<String> {
    let mut sums: BTreeMap<&str, u64> = BTreeMap::new();
    for r in &s.runs {
        for line in &r.folded {
            if let Some((stack, n)) = line.rsplit_once(' ') {
                if let Ok(n) = n.trim().parse::<u64>() {
                    *sums.entry(stack).or_default() += n;
                }
            }
        }
    }
    let runs = s.runs.len().max(1) as u64;
    sums.into_iter()
        .map(|(k, v)| format!("{k} {}", v.div_ceil(runs)))
        .collect()
}

fn flame_svg(lines: &[String], title: &str) -> Result<String, ReportError> {
    crate::render::diff::folded_svg(lines, title, None, "bytes").map_err(ReportError::Flamegraph)
}

fn diff_svg(before: &[String], after: &[String], title: &str) -> Result<String, ReportError> {
    crate::render::diff::differential_svg(before, after, title, "bytes")
        .map_err(ReportError::Flamegraph)
}

fn img(svg: &str, alt: &str) -> String {
    if svg.is_empty() {
        return format!(
            "<p class=muted>{}: no allocations recorded.</p>",
            html_escape(alt)
        );
    }
    // An <img> keeps each flamegraph's own script and ids out of the page (no clashes between
    // several graphs); open the image on its own for the interactive version.
    format!(
        "<img class=flame alt=\"{}\" src=\"data:image/svg+xml;base64,{}\">",
        html_escape(alt),
        base64::engine::general_purpose::STANDARD.encode(svg)
    )
}

const DEFINITIONS: &[(&str, &str, &str)] = &[
    ("allocations", "Allocation calls", "Calls to allocation functions (malloc, calloc, realloc, aligned variants; Rust alloc/realloc), realloc included."),
    ("peak", "Peak heap", "The largest live heap (requested bytes) at any instant of the run."),
    ("leaked", "Leaked", "Bytes still live when the profile ends."),
    ("temporary", "Temporary", "A block freed by the same thread with no other allocation by that thread in between."),
    ("growth", "Growth slope", "Least-squares slope of the live heap over the steady part of the run (after the first 10%)."),
    ("leak-verdict", "Leak verdict", "Sustained growth: the live heap's troughs rise across the run; a plateau, single step or sawtooth is not a leak."),
    ("peak-rss", "Peak RSS", "Largest resident set size sampled."),
    ("allocator-latency", "Allocator latency p99", "99th percentile of time spent inside the real allocator per call."),
];

/// Renders the report as one self-contained HTML page.
pub fn to_html(r: &Report, inputs: &[ScenarioInput]) -> Result<String, ReportError> {
    let mut o = String::new();
    let labels: Vec<String> = r.scenarios.iter().map(|s| html_escape(&s.label)).collect();
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8><meta name=viewport content=\"width=device-width,initial-scale=1\">\
         <title>tidemark report: {}</title><style>{CSS}</style></head><body>\n",
        labels.join(" vs ")
    );
    let _ = writeln!(
        o,
        "<h1>tidemark comparison report</h1><p class=muted>Baseline: <b>{}</b> · {} scenarios · definitions: <a href=\"#definitions\">below</a> and in <code>{}</code></p>",
        html_escape(&r.baseline),
        r.scenarios.len(),
        html_escape(&r.definitions)
    );
    for s in &r.scenarios {
        if s.truncated_runs > 0 {
            let _ = writeln!(
                o,
                "<p class=warn>Warning: {} of {} run(s) of <b>{}</b> are truncated profiles; their numbers stop where the file ends.</p>",
                s.truncated_runs,
                s.runs,
                html_escape(&s.label)
            );
        }
    }
    o.push_str("<h2>Metrics</h2><table><tr><th>Metric</th>");
    for s in &r.scenarios {
        let base = if s.label == r.baseline {
            " <span class=muted>(baseline)</span>"
        } else {
            ""
        };
        let _ = write!(
            o,
            "<th>{}{base}<br><span class=muted>{} run(s)</span></th>",
            html_escape(&s.label),
            s.runs
        );
    }
    o.push_str("</tr>\n");
    for def in METRICS {
        if r.scenarios
            .iter()
            .all(|s| !s.metrics.contains_key(def.name))
        {
            continue;
        }
        let _ = write!(
            o,
            "<tr><td><a href=\"#def-{}\">{}</a></td>",
            def.anchor, def.title
        );
        for s in &r.scenarios {
            let Some(st) = s.metrics.get(def.name) else {
                o.push_str("<td>–</td>");
                continue;
            };
            let _ = write!(
                o,
                "<td class=num>{}",
                html_escape(&cell_value(def.unit, st))
            );
            if let Some(d) = st.delta_vs_baseline {
                let class = match st.significant {
                    Some(false) => "ns",
                    _ if d > 0.0 => "up",
                    _ if d < 0.0 => "down",
                    _ => "ns",
                };
                let _ = write!(
                    o,
                    "<br><span class={class}>{}</span> <span class=muted>{}</span>",
                    html_escape(&format_delta(def.unit, st)),
                    html_escape(&significance_text(st))
                );
            }
            o.push_str("</td>");
        }
        o.push_str("</tr>\n");
    }
    o.push_str("</table>\n");

    let lines: Vec<Line> = inputs
        .iter()
        .filter_map(|s| {
            let run = s.runs.first()?;
            Some(Line {
                label: s.label.clone(),
                points: run.live_heap.clone(),
            })
        })
        .collect();
    let chart = timeline::render_svg(
        "Live heap over time (first run of each scenario)",
        &[Panel {
            title: "Live heap".into(),
            unit: Unit::Bytes,
            lines,
            reference: None,
        }],
        1100,
    )?;
    let _ = writeln!(o, "<h2>Growth curves</h2><figure>{chart}</figure>");

    let base_input = inputs.iter().find(|s| s.label == r.baseline);
    let base_folded = base_input.map(merged_folded).unwrap_or_default();
    for (s, input) in r.scenarios.iter().zip(inputs) {
        let _ = writeln!(o, "<h2>{}</h2>", html_escape(&s.label));
        let folded = merged_folded(input);
        let flame = flame_svg(
            &folded,
            &format!("{}: allocated bytes (mean per run)", s.label),
        )?;
        let _ = writeln!(
            o,
            "<figure><figcaption>Flamegraph of allocated bytes</figcaption>{}</figure>",
            img(&flame, &format!("flamegraph of {}", s.label))
        );
        let Some(c) = &s.comparison else { continue };
        let diff = diff_svg(
            &base_folded,
            &folded,
            &format!("{} vs {}: allocated bytes", s.label, r.baseline),
        )?;
        let _ = writeln!(
            o,
            "<figure><figcaption>Differential flamegraph against {} (red grew, blue shrank)</figcaption>{}</figure>",
            html_escape(&r.baseline),
            img(&diff, &format!("differential flamegraph of {} against {}", s.label, r.baseline))
        );
        let pct = c
            .total_cost_change_pct
            .map(|p| format!(" ({p:+.1}%)"))
            .unwrap_or_default();
        let _ = writeln!(
            o,
            "<ul><li>Total allocated bytes per run (flamegraph area): {} → {}{}</li><li>Mean stack depth at allocation: {:.1} → {:.1} frames</li></ul>",
            human_bytes(c.total_cost_before),
            human_bytes(c.total_cost_after),
            pct,
            c.mean_depth_before,
            c.mean_depth_after
        );
        if !c.hotspots.is_empty() {
            o.push_str("<table><tr><th>Site</th><th>Share before</th><th>Share after</th></tr>");
            for h in &c.hotspots {
                let _ = write!(
                    o,
                    "<tr><td><code>{}</code></td><td class=num>{:.1}%</td><td class=num>{:.1}%</td></tr>",
                    html_escape(&h.function),
                    h.share_before * 100.0,
                    h.share_after * 100.0
                );
            }
            o.push_str("</table>\n");
        }
        if !c.top_growth.is_empty() {
            o.push_str("<p>Sites that grew most:</p><table><tr><th>Site</th><th>Before</th><th>After</th><th>Change</th></tr>");
            for g in &c.top_growth {
                let _ = write!(
                    o,
                    "<tr><td><code>{}</code></td><td class=num>{}</td><td class=num>{}</td><td class=\"num up\">+{}</td></tr>",
                    html_escape(&g.site),
                    human_bytes(g.before),
                    human_bytes(g.after),
                    human_bytes(g.delta)
                );
            }
            o.push_str("</table>\n");
        }
    }
    o.push_str("<h2 id=definitions>Definitions</h2><dl class=defs>");
    for (anchor, title, text) in DEFINITIONS {
        let _ = write!(o, "<dt id=\"def-{anchor}\">{title}</dt><dd>{text}</dd>");
    }
    let _ = write!(
        o,
        "</dl><p class=muted>Full definitions: <code>{}</code>. With two or more runs per scenario, each metric shows the mean and its 95% confidence interval, and the change against the baseline is tested with Welch's t-test (significant when p &lt; {}).</p>\n</body></html>\n",
        html_escape(&r.definitions),
        r.alpha
    );
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::super::tests::run;
    use super::super::{build, ScenarioInput};
    use super::*;

    #[test]
    fn escapes_and_embeds() {
        let a = ScenarioInput {
            label: "base".into(),
            runs: vec![run("a", 10.0, 1.0, &["main;f 10"])],
        };
        let b = ScenarioInput {
            label: "new<&>".into(),
            runs: vec![run(
                "b",
                20.0,
                1.0,
                &["main;std::vector<int>::push_back 20"],
            )],
        };
        let inputs = [a, b];
        let html = to_html(&build(&inputs, None).unwrap(), &inputs).unwrap();
        assert!(html.contains("new&lt;&amp;&gt;"));
        assert!(!html.contains("new<&>"));
        assert!(html.contains("std::vector&lt;int&gt;::push_back"));
        assert!(html.contains("data:image/svg+xml;base64,"));
        assert!(
            !html.contains("http://") || !html.contains("src=\"http"),
            "no external resources"
        );
        assert_eq!(
            html.matches("<img").count(),
            3,
            "two flamegraphs and one differential"
        );
    }
}
