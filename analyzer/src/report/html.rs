//! Self-contained HTML report: inline CSS, SVG and script, no network. Its flamegraphs are the
//! interactive page's component (`render/view/flame.js`): hover, zoom, search.

use super::markdown::cell_value;
use super::{
    format_delta, significance_text_for, MetricStat, MetricUnit, Report, ScenarioInput, METRICS,
};
use crate::analysis::views::growth_curves;
use crate::render::timeline::{self, human_bytes};
use crate::render::view;
use crate::render::xml::escape as html_escape;
use crate::render::RenderError;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

const CSS: &str = r#"
body{margin:24px auto;max-width:1200px;padding:0 16px}
h1{font-size:1.6em;margin-bottom:4px}h2{margin-top:32px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
table{border-collapse:collapse;margin:12px 0;font-size:.92em;font-variant-numeric:tabular-nums}th,td{border:1px solid #d0d7de;padding:6px 10px;vertical-align:top}
th{background:#f6f8fa;text-align:left}td.num{text-align:right}.muted{color:#57606a;font-size:.88em}
.up{color:#b42318}.down{color:#1a7f37}.ns{color:#57606a}.warn{background:#fff8c5;border:1px solid #d4a72c;padding:8px 12px;border-radius:6px}
figure{margin:12px 0}figcaption{color:#57606a;font-size:.9em;margin-bottom:4px}
details{margin:10px 0;border:1px solid #d0d7de;border-radius:6px;padding:6px 12px}details>summary{cursor:pointer;font-weight:600}
ul.story li{margin:4px 0}
dl.defs dt{font-weight:600;margin-top:8px}dl.defs dd{margin-left:16px}
"#;

/// Folded lines of a scenario: the mean per run of each stack.
fn merged_folded(s: &ScenarioInput) -> BTreeMap<String, f64> {
    merged_lines(s, |r| &r.folded)
}

/// The mean per run of each stack of the folded lines `lines` picks from each run.
fn merged_lines(
    s: &ScenarioInput,
    lines: impl Fn(&super::RunInput) -> &[String],
) -> BTreeMap<String, f64> {
    let mut sums: BTreeMap<String, f64> = BTreeMap::new();
    for r in &s.runs {
        for line in lines(r) {
            if let Some((stack, n)) = line.rsplit_once(' ') {
                if let Ok(n) = n.trim().parse::<u64>() {
                    *sums.entry(stack.to_owned()).or_default() += n as f64;
                }
            }
        }
    }
    let runs = s.runs.len().max(1) as f64;
    for v in sums.values_mut() {
        *v = (*v / runs).round();
    }
    sums
}

/// A call tree for the flamegraph component: parent-pointer arrays (a parent's index below its
/// children's), interned names, inclusive values, and the baseline's values for a differential.
#[derive(Default)]
struct FlameTree {
    names: Vec<String>,
    name_index: HashMap<String, u32>,
    parent: Vec<i64>,
    name: Vec<u32>,
    value: Vec<f64>,
    before: Vec<f64>,
    index: HashMap<(i64, u32), usize>,
}

impl FlameTree {
    fn add(&mut self, stack: &str, v: f64, before: bool) {
        let mut parent = -1i64;
        for frame in stack.split(';') {
            let id = match self.name_index.get(frame) {
                Some(&i) => i,
                None => {
                    self.names.push(frame.to_owned());
                    let i = (self.names.len() - 1) as u32;
                    self.name_index.insert(frame.to_owned(), i);
                    i
                }
            };
            let n = *self.index.entry((parent, id)).or_insert_with(|| {
                self.parent.push(parent);
                self.name.push(id);
                self.value.push(0.0);
                self.before.push(0.0);
                self.parent.len() - 1
            });
            if before {
                self.before[n] += v;
            } else {
                self.value[n] += v;
            }
            parent = n as i64;
        }
    }

    fn json(&self, id: &str, differential: bool) -> serde_json::Value {
        let mut v = serde_json::json!({
            "id": id, "names": self.names, "parent": self.parent, "name": self.name,
            "value": self.value,
        });
        if differential {
            v["before"] = serde_json::json!(self.before);
        }
        v
    }
}

/// Words for a metric's change: no test for a yes/no verdict.
fn change_note(unit: MetricUnit, st: &MetricStat) -> String {
    significance_text_for(unit, st)
}

/// The story: one line per scenario and metric that changed.
fn story(r: &Report) -> String {
    let mut o = String::from("<ul class=story>");
    let mut any = false;
    for s in r.scenarios.iter().filter(|s| s.label != r.baseline) {
        let mut changes: Vec<String> = Vec::new();
        for def in METRICS {
            let Some(st) = s.metrics.get(def.json_key) else {
                continue;
            };
            let Some(d) = st.delta_vs_baseline else {
                continue;
            };
            if d == 0.0 || st.significant == Some(false) {
                continue;
            }
            if def.unit == MetricUnit::Verdict {
                changes.push(format!(
                    "<b>{}</b>: {}",
                    def.label,
                    html_escape(&cell_value(def.unit, st))
                ));
                continue;
            }
            let class = if d > 0.0 { "up" } else { "down" };
            let note = change_note(def.unit, st);
            changes.push(format!(
                "<b>{}</b> <span class={class}>{}</span>{}",
                def.label,
                html_escape(&format_delta(def.unit, st)),
                if note.is_empty() {
                    String::new()
                } else {
                    format!(" <span class=muted>{}</span>", html_escape(&note))
                }
            ));
        }
        any = true;
        let _ = write!(
            o,
            "<li><b>{}</b> against <b>{}</b>: {}</li>",
            html_escape(&s.label),
            html_escape(&r.baseline),
            if changes.is_empty() {
                "no significant change.".to_owned()
            } else {
                changes.join("; ")
            }
        );
    }
    if !any {
        o.push_str("<li>One scenario: nothing to compare; its numbers are below.</li>");
    }
    o.push_str("</ul>\n");
    o
}

fn metrics_table(o: &mut String, r: &Report) {
    o.push_str("<table><tr><th>Metric</th>");
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
            .all(|s| !s.metrics.contains_key(def.json_key))
        {
            continue;
        }
        let _ = write!(
            o,
            "<tr><td><a href=\"#def-{}\">{}</a></td>",
            def.anchor, def.label
        );
        for s in &r.scenarios {
            let Some(st) = s.metrics.get(def.json_key) else {
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
                    html_escape(&change_note(def.unit, st))
                );
            }
            o.push_str("</td>");
        }
        o.push_str("</tr>\n");
    }
    o.push_str("</table>\n");
}

fn sites_that_grew(o: &mut String, r: &Report) {
    for s in &r.scenarios {
        let Some(c) = &s.comparison else { continue };
        let _ = writeln!(
            o,
            "<h3>{} against {}</h3>",
            html_escape(&s.label),
            html_escape(&r.baseline)
        );
        let pct = c
            .total_cost_change_pct
            .map(|p| format!(" ({p:+.1}%)"))
            .unwrap_or_default();
        let _ = writeln!(
            o,
            "<p>Allocated bytes per run (flamegraph area): {} → {}{}; mean stack depth at allocation {:.1} → {:.1} frames.</p>",
            human_bytes(c.total_cost_before),
            human_bytes(c.total_cost_after),
            pct,
            c.mean_depth_before,
            c.mean_depth_after
        );
        if c.top_growth.is_empty() {
            o.push_str("<p class=muted>No allocation site grew.</p>");
        } else {
            o.push_str(
                "<table><tr><th>Site</th><th>Before</th><th>After</th><th>Grew by</th></tr>",
            );
            for g in &c.top_growth {
                let _ = write!(
                    o,
                    "<tr><td><code>{}</code></td><td class=num>{}</td><td class=num>{}</td><td class=\"num up\">+{}</td></tr>",
                    html_escape(&g.site),
                    human_bytes(g.before),
                    human_bytes(g.after),
                    human_bytes(g.delta.abs())
                );
            }
            o.push_str("</table>\n");
        }
        if !c.hotspots.is_empty() {
            o.push_str(
                "<table><tr><th>Top sites</th><th>Share before</th><th>Share after</th></tr>",
            );
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
    }
}

/// The CPU folded lines of a run (none without CPU samples).
fn cpu_lines(r: &super::RunInput) -> &[String] {
    r.cpu_folded.as_deref().unwrap_or(&[])
}

/// CPU flamegraphs beside the allocation ones, when every run of every scenario has CPU samples
/// (`tidemark run --cpu`): one per scenario, differential against the baseline's as the
/// allocation graphs are.
fn cpu_flamegraphs(
    o: &mut String,
    graphs: &mut Vec<serde_json::Value>,
    r: &Report,
    inputs: &[ScenarioInput],
) {
    let all_have_cpu = !inputs.is_empty()
        && inputs
            .iter()
            .all(|s| !s.runs.is_empty() && s.runs.iter().all(|r| r.cpu_folded.is_some()));
    if !all_have_cpu {
        return;
    }
    let base_input = inputs.iter().find(|s| s.label == r.baseline);
    let base = base_input
        .map(|s| merged_lines(s, cpu_lines))
        .unwrap_or_default();
    for (i, (s, input)) in r.scenarios.iter().zip(inputs).enumerate() {
        let mut tree = FlameTree::default();
        for (stack, v) in &merged_lines(input, cpu_lines) {
            tree.add(stack, *v, false);
        }
        let id = format!("cpu-flame-{i}");
        let differential = s.comparison.is_some();
        let caption = if differential {
            for (stack, v) in &base {
                tree.add(stack, *v, true);
            }
            format!(
                "Differential CPU flamegraph of {} against {}: CPU time (ns) per run (widths: {}; red grew, blue shrank)",
                s.label, r.baseline, s.label
            )
        } else {
            format!("CPU flamegraph of {}: CPU time (ns) per run", s.label)
        };
        let _ = writeln!(o, "<details><summary>{}</summary>", html_escape(&caption));
        flame_box(o, &id, &caption);
        o.push_str("</details>\n");
        graphs.push(tree.json(&id, differential));
    }
}

/// One flamegraph component (filled in by the page's script from the embedded data).
fn flame_box(o: &mut String, id: &str, caption: &str) {
    let _ = writeln!(
        o,
        "<figure id=\"{id}\" class=flame-box><figcaption>{}</figcaption>\
         <div class=controls><label><input type=checkbox class=icicle checked> icicle (root on top)</label>\
         <label>Search <input type=search placeholder=\"function name or regex\"></label>\
         <button type=button class=unzoom>Reset zoom</button></div>\
         <div class=status></div><div class=\"status search-status\"></div><div class=graph></div></figure>",
        html_escape(caption)
    );
}

const INIT_JS: &str = r#"
const R = JSON.parse(document.getElementById("report-data").textContent);
const tip = document.getElementById("flame-tip");
for (const g of R.graphs) {
  const root = document.getElementById(g.id);
  const q = s => root.querySelector(s);
  const f = new Flame({ graph: q(".graph"), tip, status: q(".status"), searchStatus: q(".search-status"),
    search: q("input[type=search]"), unzoom: q(".unzoom"), icicle: q(".icicle") }, { emptyText: "No allocations recorded." });
  const tree = { parent: g.parent, name: n => g.names[g.name[n]], loc: () => "", value: Float64Array.from(g.value),
    before: g.before ? Float64Array.from(g.before) : undefined, unit: "bytes", label: "allocated bytes (mean per run)", format: fmtBytes };
  // Every graph gets its data now, collapsed or not: its total and search must not wait for a
  // "toggle" event, which the browser queues as a task and may run after the reader's first
  // keystrokes (input events go first). A collapsed graph has no width yet: it is laid out again
  // when it opens.
  f.set(tree);
  const details = root.closest("details");
  if (details && !details.open) details.addEventListener("toggle", () => { if (details.open) f.draw(); });
}
document.body.dataset.ready = "1";
"#;

/// How the HTML report is written (nothing to choose yet).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HtmlOptions {}

/// The report and the runs it was built from: the HTML page also draws the runs' growth curves
/// and flamegraphs.
#[derive(Debug, Clone, Copy)]
pub struct HtmlReport<'a> {
    /// The comparison.
    pub report: &'a Report,
    /// The scenarios it was built from, in the same order.
    pub inputs: &'a [ScenarioInput],
}

/// Writes the report as one self-contained HTML page ([`to_html`]).
pub fn write<W: std::io::Write>(
    v: &HtmlReport<'_>,
    _o: &HtmlOptions,
    mut out: W,
) -> Result<(), RenderError> {
    out.write_all(to_html(v.report, v.inputs)?.as_bytes())?;
    Ok(())
}

/// Renders the report as one self-contained HTML page: the story first (what changed, which
/// sites grew), then the metrics, then the heavy graphs collapsed (interactive flamegraphs:
/// hover, zoom, search), then the definitions every metric links to.
pub fn to_html(r: &Report, inputs: &[ScenarioInput]) -> Result<String, RenderError> {
    let mut o = String::new();
    let labels: Vec<String> = r.scenarios.iter().map(|s| html_escape(&s.label)).collect();
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8><meta name=viewport content=\"width=device-width,initial-scale=1\">\
         <title>tidemark report: {}</title><style>{}{CSS}</style></head><body>\n",
        labels.join(" vs "),
        view::CSS
    );
    let _ = writeln!(
        o,
        "<h1>tidemark comparison report</h1><p class=muted>Baseline: <b>{}</b> · {} scenarios · \
         <a href=\"#changes\">changes</a> · <a href=\"#metrics\">metrics</a> · <a href=\"#sites\">sites that grew</a> · \
         <a href=\"#graphs\">graphs</a> · <a href=\"#definitions\">definitions</a> (also in <code>{}</code>)</p>",
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
    o.push_str("<h2 id=changes>What changed</h2>\n");
    o.push_str(&story(r));
    o.push_str("<h2 id=metrics>Metrics</h2>\n");
    metrics_table(&mut o, r);
    o.push_str("<h2 id=sites>Sites that grew</h2>\n");
    if r.scenarios.iter().all(|s| s.comparison.is_none()) {
        o.push_str("<p class=muted>One scenario: nothing to compare.</p>");
    }
    sites_that_grew(&mut o, r);
    o.push_str(&super::stack::html(r));

    o.push_str("<h2 id=graphs>Graphs</h2>\n");
    let mut chart = Vec::new();
    timeline::write(
        &growth_curves(inputs),
        &timeline::ChartOptions { width_px: 1100 },
        &mut chart,
    )?;
    let chart = String::from_utf8_lossy(&chart);
    let _ = writeln!(
        o,
        "<details><summary>Growth curves</summary><figure>{chart}</figure></details>"
    );
    let base_input = inputs.iter().find(|s| s.label == r.baseline);
    let base_folded = base_input.map(merged_folded).unwrap_or_default();
    let mut graphs = Vec::new();
    for (i, (s, input)) in r.scenarios.iter().zip(inputs).enumerate() {
        let folded = merged_folded(input);
        let mut tree = FlameTree::default();
        for (stack, v) in &folded {
            tree.add(stack, *v, false);
        }
        let id = format!("flame-{i}");
        let differential = s.comparison.is_some();
        let caption = if differential {
            for (stack, v) in &base_folded {
                tree.add(stack, *v, true);
            }
            format!(
                "Differential flamegraph of {} against {}: allocated bytes per run (widths: {}; red grew, blue shrank)",
                s.label, r.baseline, s.label
            )
        } else {
            format!("Flamegraph of {}: allocated bytes per run", s.label)
        };
        let _ = writeln!(o, "<details><summary>{}</summary>", html_escape(&caption));
        flame_box(&mut o, &id, &caption);
        o.push_str("</details>\n");
        graphs.push(tree.json(&id, differential));
    }
    cpu_flamegraphs(&mut o, &mut graphs, r, inputs);
    o.push_str("<h2 id=definitions>Definitions</h2><dl class=defs>");
    for def in METRICS {
        let text = def.definition;
        let _ = write!(
            o,
            "<dt id=\"def-{}\">{}</dt><dd>{text}</dd>",
            def.anchor, def.label
        );
    }
    let _ = writeln!(
        o,
        "</dl><p class=muted>Full definitions: <code>{}</code>. With two or more runs per scenario, each metric shows the mean and its 95% confidence interval, and the change against the baseline is tested with Welch's t-test (significant when p &lt; {}); the leak verdict, a yes/no answer, is counted, not tested.</p>",
        html_escape(&r.definitions),
        r.alpha
    );
    let data = serde_json::json!({ "graphs": graphs });
    let _ = write!(
        o,
        "<div id=flame-tip class=tip hidden></div>\n<script id=report-data type=\"application/json\">{}</script>\n<script>\n{}\n{}\n{INIT_JS}</script>\n</body></html>\n",
        view::script_json(&data),
        view::FORMAT_JS,
        view::FLAME_JS
    );
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::super::{build, ScenarioInput};
    use super::*;
    use crate::analysis::views::report::tests::run;

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
        assert!(!html.contains("<img"), "flamegraphs are inline components");
        assert_eq!(html.matches("class=flame-box").count(), 2);
        assert!(
            html.contains("\"before\":"),
            "the second graph is differential"
        );
        // The story comes before the metrics and the graphs.
        let story = html.find("id=changes").unwrap();
        assert!(story < html.find("id=metrics").unwrap());
        assert!(html.find("id=sites").unwrap() < html.find("id=graphs").unwrap());
        // Every in-page link has its target.
        for part in html.split("href=\"#").skip(1) {
            let id = &part[..part.find('"').unwrap()];
            assert!(
                html.contains(&format!("id=\"{id}\"")) || html.contains(&format!("id={id}>")),
                "dead anchor #{id}"
            );
        }
    }
}
