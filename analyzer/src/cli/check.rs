//! `tidemark check`: budgets as an exit code for CI (0 within budget, 1 over, 2 error).

use super::{load, warn_truncated, CheckArgs, EXIT_CHECK_FAILED, EXIT_OK};
use crate::analysis::{summary_with, PressureOptions};
use crate::render::timeline::{human_bytes, human_count};

/// One budget and the measured value.
struct Budget {
    flag: &'static str,
    what: &'static str,
    limit: f64,
    value: Option<f64>,
    show: fn(f64) -> String,
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
    let bytes = |v: f64| human_bytes(v);
    let rate = |v: f64| format!("{}/s", human_bytes(v));
    let calls = |v: f64| human_count(v);
    let mut budgets = Vec::new();
    let mut add = |flag, what, limit: Option<f64>, value: Option<f64>, show: fn(f64) -> String| {
        if let Some(limit) = limit {
            budgets.push(Budget {
                flag,
                what,
                limit,
                value,
                show,
            });
        }
    };
    add(
        "--max-peak",
        "peak heap",
        a.max_peak.map(|v| v as f64),
        Some(s.counts.peak_bytes as f64),
        bytes,
    );
    add(
        "--max-leaked",
        "leaked",
        a.max_leaked.map(|v| v as f64),
        Some(s.counts.leaked_bytes as f64),
        bytes,
    );
    add(
        "--max-allocations",
        "allocation calls",
        a.max_allocations.map(|v| v as f64),
        Some(s.counts.allocations as f64),
        calls,
    );
    add(
        "--max-temporary",
        "temporary allocations",
        a.max_temporary.map(|v| v as f64),
        Some(s.counts.temporary_allocations as f64),
        calls,
    );
    add(
        "--max-growth",
        "growth",
        a.max_growth,
        s.pressure.growth_bytes_per_sec,
        rate,
    );
    add(
        "--max-rss",
        "peak RSS",
        a.max_rss.map(|v| v as f64),
        s.pressure.peak_rss_bytes.map(|v| v as f64),
        bytes,
    );
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
