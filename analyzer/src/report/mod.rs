//! Comparison reports: scenarios (each one or more runs) side by side against a baseline.
//!
//! ```text
//!  profiles ─► RunInput (metrics, live-heap curve, folded stacks) ─► build() ─► Report
//!                                                                     ├─► JSON (serde)
//!                                                                     ├─► Markdown
//!                                                                     └─► HTML (inline SVG + CSS)
//! ```
//!
//! The JSON schema is documented in `docs/report.md`.

mod compare;
mod html;
mod markdown;
pub mod stack;

pub use compare::{compare_folded, Comparison, Hotspot, SiteGrowth};
pub use html::{html_escape, to_html};
pub use markdown::to_markdown;

use crate::analysis::stats::{estimate, welch_t_test, DEFAULT_ALPHA};
use serde::Serialize;
use std::collections::BTreeMap;

/// Version of the report JSON schema.
pub const REPORT_SCHEMA_VERSION: u32 = 1;

/// How a metric reads (the metric table's [`Unit`](crate::analysis::Unit)).
pub use crate::analysis::metric::Unit as MetricUnit;
/// The metrics a report compares, in display order: the metric table.
pub use crate::analysis::metric::{MetricDef, METRICS};

/// One run of a scenario, reduced to what a report needs.
#[derive(Debug, Clone, Default)]
pub struct RunInput {
    /// Where the profile came from.
    pub path: String,
    /// Metric values by JSON key ([`MetricDef::json_key`]); missing metrics are left out of the
    /// statistics.
    pub metrics: BTreeMap<String, f64>,
    /// Live heap over time: `(seconds, bytes)`.
    pub live_heap: Vec<(f64, f64)>,
    /// Folded stacks weighted by allocated bytes (`"root;…;leaf N"`).
    pub folded: Vec<String>,
    /// The profile was truncated.
    pub truncated: bool,
    /// Sites with stack-eligible blocks ([`stack::run_sites`]); empty without `--escape`.
    pub stack_eligible: Vec<stack::RunSite>,
}

/// A labelled scenario: one or more runs of the same thing.
#[derive(Debug, Clone, Default)]
pub struct ScenarioInput {
    /// Label given on the command line (`label=profile…`).
    pub label: String,
    /// Its runs.
    pub runs: Vec<RunInput>,
}

/// One metric of one scenario.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricStat {
    /// Runs that had this metric.
    pub n: usize,
    /// Mean over runs.
    pub mean: f64,
    /// Sample standard deviation (0 for one run).
    pub std_dev: f64,
    /// Lower end of the 95% CI of the mean.
    pub ci95_low: f64,
    /// Upper end of the 95% CI of the mean.
    pub ci95_high: f64,
    /// Mean minus the baseline's mean; `null` for the baseline itself.
    pub delta_vs_baseline: Option<f64>,
    /// Delta as a percentage of the baseline mean; `null` when the baseline mean is 0.
    pub delta_pct: Option<f64>,
    /// Welch's t-test p-value against the baseline; `null` unless both have two or more runs.
    pub p_value: Option<f64>,
    /// `p_value < 0.05`; `null` when no test was possible.
    pub significant: Option<bool>,
}

/// One scenario of a report.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioReport {
    /// Label.
    pub label: String,
    /// Number of runs.
    pub runs: usize,
    /// Profile paths.
    pub profiles: Vec<String>,
    /// How many of the runs were truncated.
    pub truncated_runs: usize,
    /// Statistics per metric name.
    pub metrics: BTreeMap<String, MetricStat>,
    /// Comparison of allocation stacks with the baseline (`null` for the baseline).
    pub comparison: Option<Comparison>,
    /// Sites whose blocks could live on the stack, means per run (left out when none: profiles
    /// recorded without `--escape`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stack_eligible_sites: Vec<stack::StackEligibleSite>,
}

/// A whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Schema version ([`REPORT_SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// Label of the baseline scenario.
    pub baseline: String,
    /// Significance level used.
    pub alpha: f64,
    /// Where the metric definitions are.
    pub definitions: String,
    /// Scenarios in the order given.
    pub scenarios: Vec<ScenarioReport>,
}

/// Why a report cannot be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// No scenarios.
    #[error("a report needs at least one profile")]
    Empty,
    /// The baseline label names no scenario.
    #[error("baseline {0:?} is not one of the scenario labels")]
    UnknownBaseline(String),
    /// A scenario has no runs.
    #[error("scenario {0:?} has no profiles")]
    NoRuns(String),
    /// Two scenarios share a label.
    #[error("the label {0:?} is used twice; give each scenario its own label")]
    DuplicateLabel(String),
    /// A chart failed to draw.
    #[error(transparent)]
    Chart(#[from] crate::render::timeline::ChartError),
    /// A flamegraph failed to draw.
    #[error("cannot draw a flamegraph: {0}")]
    Flamegraph(String),
}

fn values(s: &ScenarioInput, metric: &str) -> Vec<f64> {
    s.runs
        .iter()
        .filter_map(|r| r.metrics.get(metric).copied())
        .filter(|v| v.is_finite())
        .collect()
}

/// Builds the report; `baseline` is a label, or `None` for the first scenario.
pub fn build(inputs: &[ScenarioInput], baseline: Option<&str>) -> Result<Report, ReportError> {
    let first = inputs.first().ok_or(ReportError::Empty)?;
    for (i, s) in inputs.iter().enumerate() {
        if s.runs.is_empty() {
            return Err(ReportError::NoRuns(s.label.clone()));
        }
        if inputs[..i].iter().any(|o| o.label == s.label) {
            return Err(ReportError::DuplicateLabel(s.label.clone()));
        }
    }
    let base = match baseline {
        Some(b) => inputs
            .iter()
            .find(|s| s.label == b)
            .ok_or_else(|| ReportError::UnknownBaseline(b.to_owned()))?,
        None => first,
    };
    let base_folded: Vec<&str> = base
        .runs
        .iter()
        .flat_map(|r| r.folded.iter().map(String::as_str))
        .collect();
    let scenarios = inputs
        .iter()
        .map(|s| {
            let is_base = std::ptr::eq(s, base);
            let mut metrics = BTreeMap::new();
            for def in METRICS {
                let xs = values(s, def.json_key);
                let Some(e) = estimate(&xs) else { continue };
                let bx = values(base, def.json_key);
                let (delta, pct, p) = if is_base {
                    (None, None, None)
                } else if let Some(be) = estimate(&bx) {
                    let d = e.mean - be.mean;
                    let pct = (be.mean != 0.0).then(|| 100.0 * d / be.mean.abs());
                    // A yes/no verdict is counted, not t-tested.
                    let p = (def.unit != MetricUnit::Verdict)
                        .then(|| welch_t_test(&bx, &xs).map(|w| w.p_value))
                        .flatten();
                    (Some(d), pct, p)
                } else {
                    (None, None, None)
                };
                metrics.insert(
                    def.json_key.to_owned(),
                    MetricStat {
                        n: e.n,
                        mean: e.mean,
                        std_dev: e.std_dev,
                        ci95_low: e.ci95_low,
                        ci95_high: e.ci95_high,
                        delta_vs_baseline: delta,
                        delta_pct: pct,
                        p_value: p,
                        significant: p.map(|p| p < DEFAULT_ALPHA),
                    },
                );
            }
            let comparison = (!is_base).then(|| {
                let after: Vec<&str> = s
                    .runs
                    .iter()
                    .flat_map(|r| r.folded.iter().map(String::as_str))
                    .collect();
                compare_folded(&base_folded, base.runs.len(), &after, s.runs.len())
            });
            ScenarioReport {
                label: s.label.clone(),
                runs: s.runs.len(),
                profiles: s.runs.iter().map(|r| r.path.clone()).collect(),
                truncated_runs: s.runs.iter().filter(|r| r.truncated).count(),
                metrics,
                comparison,
                stack_eligible_sites: stack::scenario_sites(s),
            }
        })
        .collect();
    Ok(Report {
        schema_version: REPORT_SCHEMA_VERSION,
        baseline: base.label.clone(),
        alpha: DEFAULT_ALPHA,
        definitions: "docs/metrics.md".to_owned(),
        scenarios,
    })
}

/// The report as pretty-printed JSON.
pub fn to_json(report: &Report) -> String {
    serde_json::to_string_pretty(report).expect("report serializes")
}

/// Formats a metric value for people.
pub fn format_value(unit: MetricUnit, v: f64) -> String {
    use crate::render::timeline::{human_bytes, human_count, human_nanos};
    match unit {
        MetricUnit::Bytes => human_bytes(v),
        MetricUnit::BytesPerSec => format!("{}/s", human_bytes(v)),
        MetricUnit::Count => {
            if v.fract() == 0.0 && (0.0..1e15).contains(&v.abs()) {
                let n = crate::render::units::count(v.abs() as u64);
                if v < 0.0 {
                    format!("-{n}")
                } else {
                    n
                }
            } else {
                human_count(v)
            }
        }
        MetricUnit::Nanos => human_nanos(v),
        MetricUnit::Millis if v.abs() >= 1000.0 => format!("{:.2} s", v / 1000.0),
        MetricUnit::Millis => format!("{v:.0} ms"),
        MetricUnit::Verdict => {
            if v >= 1.0 {
                "leak".to_owned()
            } else if v <= 0.0 {
                "no leak".to_owned()
            } else {
                format!("leak in {:.0}% of runs", v * 100.0)
            }
        }
    }
}

/// A signed delta for people (`+1.2 MiB (+12.0%)`).
pub fn format_delta(unit: MetricUnit, stat: &MetricStat) -> String {
    let Some(d) = stat.delta_vs_baseline else {
        return "baseline".to_owned();
    };
    let sign = if d > 0.0 {
        "+"
    } else if d < 0.0 {
        "−"
    } else {
        "±"
    };
    let body = match unit {
        MetricUnit::Verdict => format!("{:.0} pts", d.abs() * 100.0),
        _ => format_value(unit, d.abs()),
    };
    match stat.delta_pct {
        Some(p) if unit != MetricUnit::Verdict => format!("{sign}{body} ({sign}{:.1}%)", p.abs()),
        _ => format!("{sign}{body}"),
    }
}

/// Words for a metric's significance.
pub fn significance_text(stat: &MetricStat) -> String {
    significance_text_for(MetricUnit::Count, stat)
}

/// [`significance_text`] for a metric of `unit`: a yes/no verdict is counted, never tested.
pub fn significance_text_for(unit: MetricUnit, stat: &MetricStat) -> String {
    if unit == MetricUnit::Verdict {
        return String::new();
    }
    match (stat.p_value, stat.delta_vs_baseline) {
        (_, None) => String::new(),
        (Some(p), _) if p < DEFAULT_ALPHA => format!("significant (p{})", format_p(p)),
        (Some(p), _) => format!("not significant (p{})", format_p(p)),
        (None, Some(0.0)) => "no change".to_owned(),
        (None, Some(_)) => "untested (needs ≥2 runs each)".to_owned(),
    }
}

fn format_p(p: f64) -> String {
    if p < 0.001 {
        "<0.001".to_owned()
    } else {
        format!("={p:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn run(path: &str, peak: f64, allocs: f64, folded: &[&str]) -> RunInput {
        let mut metrics = BTreeMap::new();
        metrics.insert("peak_bytes".to_owned(), peak);
        metrics.insert("allocations".to_owned(), allocs);
        metrics.insert("leak_verdict".to_owned(), 0.0);
        RunInput {
            path: path.to_owned(),
            metrics,
            live_heap: vec![(0.0, 0.0), (1.0, peak)],
            folded: folded.iter().map(|s| (*s).to_owned()).collect(),
            truncated: false,
            stack_eligible: Vec::new(),
        }
    }

    fn scen(label: &str, runs: Vec<RunInput>) -> ScenarioInput {
        ScenarioInput {
            label: label.into(),
            runs,
        }
    }

    #[test]
    fn a_yes_no_verdict_is_counted_not_tested() {
        let leaky = |path: &str| {
            let mut r = run(path, 10.0, 1.0, &["main 1"]);
            r.metrics.insert("leak_verdict".to_owned(), 1.0);
            r
        };
        let base = scen(
            "a",
            vec![
                run("a1", 10.0, 1.0, &["main 1"]),
                run("a2", 10.0, 1.0, &["main 1"]),
            ],
        );
        let new = scen("b", vec![leaky("b1"), leaky("b2")]);
        let r = build(&[base, new], None).unwrap();
        let v = &r.scenarios[1].metrics["leak_verdict"];
        assert_eq!(v.delta_vs_baseline, Some(1.0));
        assert_eq!((v.p_value, v.significant), (None, None));
        assert_eq!(significance_text_for(MetricUnit::Verdict, v), "");
    }

    #[test]
    fn deltas_and_significance() {
        let base = scen(
            "before",
            vec![
                run("a1", 100.0, 10.0, &["main;f 100"]),
                run("a2", 102.0, 10.0, &["main;f 102"]),
                run("a3", 98.0, 10.0, &["main;f 98"]),
            ],
        );
        let after = scen(
            "after",
            vec![
                run("b1", 150.0, 10.0, &["main;g 150"]),
                run("b2", 151.0, 10.0, &["main;g 151"]),
                run("b3", 149.0, 10.0, &["main;g 149"]),
            ],
        );
        let r = build(&[base, after], None).unwrap();
        assert_eq!(r.baseline, "before");
        let peak = &r.scenarios[1].metrics["peak_bytes"];
        assert_eq!(peak.delta_vs_baseline, Some(50.0));
        assert!((peak.delta_pct.unwrap() - 50.0).abs() < 1e-9);
        assert_eq!(peak.significant, Some(true));
        let allocs = &r.scenarios[1].metrics["allocations"];
        assert_eq!(allocs.p_value, Some(1.0));
        assert_eq!(allocs.significant, Some(false));
        assert!(r.scenarios[0].metrics["peak_bytes"]
            .delta_vs_baseline
            .is_none());
        assert!(r.scenarios[0].comparison.is_none());
        let c = r.scenarios[1].comparison.as_ref().unwrap();
        assert_eq!(c.total_cost_before, 100.0);
        assert_eq!(c.total_cost_after, 150.0);
    }

    #[test]
    fn noise_is_not_called_significant() {
        let base = scen(
            "x",
            vec![
                run("1", 100.0, 5.0, &[]),
                run("2", 110.0, 5.0, &[]),
                run("3", 90.0, 5.0, &[]),
            ],
        );
        let same = scen(
            "y",
            vec![
                run("4", 105.0, 5.0, &[]),
                run("5", 95.0, 5.0, &[]),
                run("6", 101.0, 5.0, &[]),
            ],
        );
        let r = build(&[base, same], Some("x")).unwrap();
        assert_eq!(
            r.scenarios[1].metrics["peak_bytes"].significant,
            Some(false)
        );
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(matches!(build(&[], None), Err(ReportError::Empty)));
        let a = scen("a", vec![run("1", 1.0, 1.0, &[])]);
        assert!(matches!(
            build(&[a.clone(), a.clone()], None),
            Err(ReportError::DuplicateLabel(_))
        ));
        assert!(matches!(
            build(std::slice::from_ref(&a), Some("zz")),
            Err(ReportError::UnknownBaseline(_))
        ));
        assert!(matches!(
            build(&[scen("e", vec![])], None),
            Err(ReportError::NoRuns(_))
        ));
    }

    #[test]
    fn values_read_well() {
        assert_eq!(format_value(MetricUnit::Bytes, 1536.0), "1.5 KiB");
        assert_eq!(format_value(MetricUnit::Count, 5241.0), "5,241");
        assert_eq!(format_value(MetricUnit::Count, 12_345_678.0), "12,345,678");
        assert_eq!(format_value(MetricUnit::Millis, 1502.0), "1.50 s");
        assert_eq!(format_value(MetricUnit::Millis, 850.0), "850 ms");
        assert_eq!(format_value(MetricUnit::Verdict, 1.0), "leak");
        assert_eq!(
            format_value(MetricUnit::Verdict, 0.5),
            "leak in 50% of runs"
        );
        let s = MetricStat {
            n: 1,
            mean: 2.0,
            std_dev: 0.0,
            ci95_low: 2.0,
            ci95_high: 2.0,
            delta_vs_baseline: Some(-1024.0),
            delta_pct: Some(-50.0),
            p_value: None,
            significant: None,
        };
        assert_eq!(format_delta(MetricUnit::Bytes, &s), "−1.0 KiB (−50.0%)");
        assert_eq!(significance_text(&s), "untested (needs ≥2 runs each)");
    }
}
