//! Comparison reports, rendered: the comparison view ([`crate::analysis::views::report`]) as
//! JSON, Markdown and self-contained HTML.
//!
//! ```text
//!  profiles ─► RunInput (metrics, live-heap curve, folded stacks) ─► analysis::views::build ─► Report
//!                                                                     ├─► JSON (serde): to_json
//!                                                                     ├─► Markdown: markdown::write
//!                                                                     └─► HTML (inline SVG + CSS): html::write
//! ```
//!
//! The JSON schema is documented in `docs/report.md`.

pub mod html;
pub mod markdown;
pub mod stack;

/// The comparison view, kept at its old paths: [`crate::analysis::views`].
pub use crate::analysis::views::comparison::{compare_folded, Comparison, Hotspot, SiteGrowth};
pub use crate::analysis::views::report::{
    build, MetricStat, Report, ReportError, RunInput, ScenarioInput, ScenarioReport,
    REPORT_SCHEMA_VERSION,
};
/// The escaper every renderer uses, kept at its old path: [`crate::render::xml::escape`].
pub use crate::render::xml::escape as html_escape;
pub use html::to_html;
pub use markdown::to_markdown;

use crate::analysis::stats::DEFAULT_ALPHA;

/// How a metric reads (the metric table's [`Unit`](crate::analysis::Unit)).
pub use crate::analysis::metric::Unit as MetricUnit;
/// The metrics a report compares, in display order: the metric table.
pub use crate::analysis::metric::{MetricDef, METRICS};

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
