//! `tidemark check`: budgets as an exit code for CI (0 within budget, 1 over, 2 error).

use super::{load, warn_truncated, CheckArgs, EXIT_CHECK_FAILED, EXIT_OK};
use anyhow::Context as _;

use crate::analysis::{summary_with, Metric, PressureOptions, Unit};
use crate::render::timeline::{human_bytes, human_count};

/// One budget and the measured value.
struct Budget {
    flag: &'static str,
    what: &'static str,
    limit: f64,
    value: Option<f64>,
    show: fn(f64) -> String,
}

/// How a budget's numbers read.
fn show(unit: Unit) -> fn(f64) -> String {
    match unit {
        Unit::Bytes => |v| human_bytes(v),
        Unit::BytesPerSec => |v| format!("{}/s", human_bytes(v)),
        _ => |v| human_count(v),
    }
}

/// The value and the budget as text; when rounding makes them read the same (`6.9 MiB exceeds
/// the budget of 6.9 MiB`), the exact numbers follow.
fn distinct(b: &Budget, v: f64) -> (String, String) {
    let (vt, lt) = ((b.show)(v), (b.show)(b.limit));
    if vt != lt || v == b.limit {
        return (vt, lt);
    }
    let exact = |x: f64| {
        if x.fract() == 0.0 && (0.0..1e18).contains(&x) {
            crate::render::units::count(x as u64)
        } else {
            format!("{x:.3}")
        }
    };
    (
        format!("{vt} ({})", exact(v)),
        format!("{lt} ({})", exact(b.limit)),
    )
}

pub(super) fn check(a: &CheckArgs) -> anyhow::Result<u8> {
    let p = load(&a.profile, &a.load)?;
    warn_truncated(&p, &a.profile);
    let s = summary_with(&p, 0, &PressureOptions::default());
    let mut budgets = Vec::new();
    for (flag, what, limit, metric) in [
        (
            "--max-peak",
            "peak heap",
            a.max_peak.map(|v| v as f64),
            Metric::Peak,
        ),
        (
            "--max-leaked",
            "leaked",
            a.max_leaked.map(|v| v as f64),
            Metric::Leaked,
        ),
        (
            "--max-allocations",
            "allocation calls",
            a.max_allocations.map(|v| v as f64),
            Metric::Allocations,
        ),
        (
            "--max-temporary",
            "temporary allocations",
            a.max_temporary.map(|v| v as f64),
            Metric::Temporary,
        ),
        ("--max-growth", "growth", a.max_growth, Metric::Growth),
        (
            "--max-rss",
            "peak RSS",
            a.max_rss.map(|v| v as f64),
            Metric::PeakRss,
        ),
    ] {
        let Some(limit) = limit else { continue };
        metric
            .check_available(&p)
            .with_context(|| format!("{flag}: {}", a.profile.display()))?;
        budgets.push(Budget {
            flag,
            what,
            limit,
            value: metric.of_summary(&s),
            show: show(metric.unit()),
        });
    }
    if budgets.is_empty() && !a.no_leak {
        anyhow::bail!(
            "no budget given: use --max-peak, --max-leaked, --max-allocations, --max-temporary, \
             --max-growth, --max-rss or --no-leak"
        );
    }
    let mut failed = 0;
    for b in &budgets {
        match b.value {
            Some(v) if v > b.limit => {
                failed += 1;
                let (v_text, limit_text) = distinct(b, v);
                println!(
                    "FAIL {}: {v_text} exceeds the budget of {limit_text} ({} {})",
                    b.what,
                    b.flag,
                    a.profile.display()
                );
            }
            Some(v) => {
                let (v_text, limit_text) = distinct(b, v);
                println!("ok   {}: {v_text} within {limit_text}", b.what)
            }
            None => {
                failed += 1;
                println!(
                    "FAIL {}: not measurable from {} (too few timeline samples); record longer or with a shorter --interval",
                    b.what,
                    a.profile.display()
                );
            }
        }
    }
    if a.no_leak {
        if s.pressure.leak_verdict {
            failed += 1;
            println!(
                "FAIL leak verdict: {} (--no-leak)",
                s.pressure.leak_verdict_reason
            );
        } else {
            println!(
                "ok   leak verdict: no leak ({})",
                s.pressure.leak_verdict_reason
            );
        }
    }
    Ok(if failed > 0 {
        EXIT_CHECK_FAILED
    } else {
        EXIT_OK
    })
}
