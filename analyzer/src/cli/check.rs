//! `tidemark check`: budgets as an exit code for CI (0 within budget, 1 over, 2 error).

use super::{load, warn_truncated, CheckArgs, EXIT_CHECK_FAILED, EXIT_OK};
use anyhow::Context as _;

use crate::analysis::views::{evaluate_budgets, BudgetError, BudgetResult, BudgetVerdict, Budgets};
use crate::analysis::Unit;
use crate::render::timeline::{human_bytes, human_count};

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
fn distinct(r: &BudgetResult, v: f64) -> (String, String) {
    let show = show(r.budget.metric.unit());
    let limit = r.budget.limit;
    let (vt, lt) = (show(v), show(limit));
    if vt != lt || v == limit {
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
        format!("{lt} ({})", exact(limit)),
    )
}

pub(super) fn check(a: &CheckArgs) -> anyhow::Result<u8> {
    let p = load(&a.profile, &a.load)?;
    warn_truncated(&p, &a.profile);
    let budgets = Budgets {
        max_peak_bytes: a.max_peak,
        max_leaked_bytes: a.max_leaked,
        max_allocations: a.max_allocations,
        max_temporary: a.max_temporary,
        max_growth_bytes_per_sec: a.max_growth,
        max_rss_bytes: a.max_rss,
        no_leak: a.no_leak,
    };
    let eval = match evaluate_budgets(&p, &budgets) {
        Ok(eval) => eval,
        Err(BudgetError::Unavailable { flag, source }) => {
            return Err(anyhow::Error::new(source))
                .with_context(|| format!("{flag}: {}", a.profile.display()));
        }
        Err(e) => return Err(e.into()),
    };
    for r in &eval.results {
        let b = &r.budget;
        match (r.verdict(), r.value) {
            (BudgetVerdict::Over, Some(v)) => {
                let (v_text, limit_text) = distinct(r, v);
                println!(
                    "FAIL {}: {v_text} exceeds the budget of {limit_text} ({} {})",
                    b.what,
                    b.flag,
                    a.profile.display()
                );
            }
            (_, Some(v)) => {
                let (v_text, limit_text) = distinct(r, v);
                println!("ok   {}: {v_text} within {limit_text}", b.what)
            }
            (_, None) => {
                println!(
                    "FAIL {}: not measurable from {} (too few timeline samples); record longer or with a shorter --interval",
                    b.what,
                    a.profile.display()
                );
            }
        }
    }
    if let Some(l) = &eval.leak_check {
        if l.leak {
            println!("FAIL leak verdict: {} (--no-leak)", l.reason);
        } else {
            println!("ok   leak verdict: no leak ({})", l.reason);
        }
    }
    Ok(if eval.failed() > 0 {
        EXIT_CHECK_FAILED
    } else {
        EXIT_OK
    })
}
