//! Budgets: `tidemark check`'s evaluation of a profile against limits (peak, leaked, allocation
//! calls, temporaries, growth, RSS) and the leak verdict, as typed results the CLI prints and
//! turns into an exit code.

use crate::analysis::{summary_with, Metric, MetricUnavailable, PressureOptions};
use crate::model::Profile;

/// The limits a profile is held to; `None` is not checked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Budgets {
    /// Peak heap, bytes (`--max-peak`).
    pub max_peak_bytes: Option<u64>,
    /// Leaked bytes (`--max-leaked`).
    pub max_leaked_bytes: Option<u64>,
    /// Allocation calls (`--max-allocations`).
    pub max_allocations: Option<u64>,
    /// Temporary allocations (`--max-temporary`).
    pub max_temporary: Option<u64>,
    /// Growth slope of the live heap, bytes per second (`--max-growth`).
    pub max_growth_bytes_per_sec: Option<f64>,
    /// Peak RSS, bytes (`--max-rss`).
    pub max_rss_bytes: Option<u64>,
    /// Fail on a leak verdict (`--no-leak`).
    pub no_leak: bool,
}

impl Budgets {
    /// Each budget given: its flag, what it limits, the metric measured, the limit. In the
    /// order `tidemark check` prints them.
    pub fn given(&self) -> Vec<Budget> {
        let bytes = |v: Option<u64>| v.map(|v| v as f64);
        [
            (
                "--max-peak",
                "peak heap",
                bytes(self.max_peak_bytes),
                Metric::Peak,
            ),
            (
                "--max-leaked",
                "leaked",
                bytes(self.max_leaked_bytes),
                Metric::Leaked,
            ),
            (
                "--max-allocations",
                "allocation calls",
                bytes(self.max_allocations),
                Metric::Allocations,
            ),
            (
                "--max-temporary",
                "temporary allocations",
                bytes(self.max_temporary),
                Metric::Temporary,
            ),
            (
                "--max-growth",
                "growth",
                self.max_growth_bytes_per_sec,
                Metric::Growth,
            ),
            (
                "--max-rss",
                "peak RSS",
                bytes(self.max_rss_bytes),
                Metric::PeakRss,
            ),
        ]
        .into_iter()
        .filter_map(|(flag, what, limit, metric)| {
            limit.map(|limit| Budget {
                flag,
                what,
                limit,
                metric,
            })
        })
        .collect()
    }
}

/// One budget.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    /// The command-line flag that sets it (`--max-peak`).
    pub flag: &'static str,
    /// What it limits, for people (`peak heap`).
    pub what: &'static str,
    /// The limit, in the metric's unit.
    pub limit: f64,
    /// The metric measured.
    pub metric: Metric,
}

/// How a measured value stands against its budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetVerdict {
    /// At or under the limit.
    Within,
    /// Over the limit.
    Over,
    /// The profile cannot measure it (too few timeline samples for a slope).
    NotMeasurable,
}

/// One budget and the measured value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetResult {
    /// The budget.
    pub budget: Budget,
    /// The measured value; `None` when the profile cannot measure it.
    pub value: Option<f64>,
}

impl BudgetResult {
    /// Within, over, or not measurable.
    pub fn verdict(&self) -> BudgetVerdict {
        match self.value {
            Some(v) if v > self.budget.limit => BudgetVerdict::Over,
            Some(_) => BudgetVerdict::Within,
            None => BudgetVerdict::NotMeasurable,
        }
    }
}

/// The leak verdict, when `--no-leak` asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeakCheck {
    /// Sustained growth was found.
    pub leak: bool,
    /// Why, in words.
    pub reason: String,
}

/// Every budget's result, in the order given, and the leak verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetEvaluation {
    /// One result per budget given.
    pub results: Vec<BudgetResult>,
    /// The leak verdict, when asked for.
    pub leak_check: Option<LeakCheck>,
}

impl BudgetEvaluation {
    /// How many checks failed (over budget, not measurable, or a leak under `--no-leak`).
    pub fn failed(&self) -> usize {
        self.results
            .iter()
            .filter(|r| r.verdict() != BudgetVerdict::Within)
            .count()
            + usize::from(self.leak_check.as_ref().is_some_and(|l| l.leak))
    }
}

/// Why budgets cannot be evaluated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BudgetError {
    /// Nothing to check.
    #[error(
        "no budget given: use --max-peak, --max-leaked, --max-allocations, --max-temporary, \
         --max-growth, --max-rss or --no-leak"
    )]
    NoBudget,
    /// A budget's metric is not in this profile.
    #[error("{flag}: {source}")]
    Unavailable {
        /// The budget's flag.
        flag: &'static str,
        /// What the profile lacks.
        source: MetricUnavailable,
    },
}

/// Measures `p` against `budgets`.
pub fn evaluate_budgets(p: &Profile, budgets: &Budgets) -> Result<BudgetEvaluation, BudgetError> {
    let given = budgets.given();
    for b in &given {
        b.metric
            .check_available(p)
            .map_err(|source| BudgetError::Unavailable {
                flag: b.flag,
                source,
            })?;
    }
    if given.is_empty() && !budgets.no_leak {
        return Err(BudgetError::NoBudget);
    }
    let s = summary_with(p, 0, &PressureOptions::default());
    let results = given
        .into_iter()
        .map(|budget| BudgetResult {
            budget,
            value: budget.metric.of_summary(&s),
        })
        .collect();
    let leak_check = budgets.no_leak.then(|| LeakCheck {
        leak: s.pressure.leak_verdict,
        reason: s.pressure.leak_verdict_reason.clone(),
    });
    Ok(BudgetEvaluation {
        results,
        leak_check,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::synthetic::{Builder, Ev};
    use crate::load::{load_reader, LoadOptions};

    /// Five allocations (64, 64, 32, 1, 2 bytes), the 32-byte one freed at once: peak 160 bytes,
    /// 131 leaked, one temporary; no timeline samples, so no growth slope.
    fn profile() -> Profile {
        let mut b = Builder::new();
        b.stacks(&[(1, &[0x10])])
            .symbols(&[(0x10, &[("main", "main.rs", 1)])])
            .batch(
                1,
                &[
                    Ev::Alloc(0, 0xa, 64, 1),
                    Ev::Alloc(1, 0xb, 64, 1),
                    Ev::Alloc(2, 0xc, 32, 1),
                    Ev::Free(3, 0xc),
                    Ev::Alloc(4, 0xd, 1, 1),
                    Ev::Alloc(5, 0xe, 2, 1),
                ],
            )
            .trailer(&[]);
        load_reader(&b.bytes()[..], &LoadOptions::default()).unwrap()
    }

    #[test]
    fn budgets_are_measured_exactly_and_judged() {
        let p = profile();
        let budgets = Budgets {
            max_peak_bytes: Some(160),
            max_leaked_bytes: Some(130),
            max_temporary: Some(1),
            max_growth_bytes_per_sec: Some(1.0),
            ..Budgets::default()
        };
        let e = evaluate_budgets(&p, &budgets).unwrap();
        let got: Vec<(&str, Option<f64>, BudgetVerdict)> = e
            .results
            .iter()
            .map(|r| (r.budget.flag, r.value, r.verdict()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("--max-peak", Some(160.0), BudgetVerdict::Within),
                ("--max-leaked", Some(131.0), BudgetVerdict::Over),
                ("--max-temporary", Some(1.0), BudgetVerdict::Within),
                ("--max-growth", None, BudgetVerdict::NotMeasurable),
            ]
        );
        assert_eq!(e.leak_check, None);
        assert_eq!(e.failed(), 2);
        assert!(matches!(
            evaluate_budgets(&p, &Budgets::default()),
            Err(BudgetError::NoBudget)
        ));
    }
}
