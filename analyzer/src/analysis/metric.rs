//! The one definition of every metric: [`Metric`] and its row in [`METRICS`] (names, title,
//! unit, JSON key, docs anchor, where its value comes from, whether a profile has it).
//!
//! Flamegraphs, folded stacks, reports (HTML, Markdown, JSON, comparisons), `tidemark check`
//! budgets, exports, the viewer and the CLI's `--metric` read metrics through this table; a new
//! metric is one row here plus the module that computes its value (docs/architecture.md, "How to
//! add a metric").

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use super::Summary;
use crate::model::{Counts, Profile};

/// A metric: something measured per profile, and for some metrics per stack and site too.
///
/// The variants are in [`METRICS`] order (the order of reports); [`Metric::def`] gives the row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Metric {
    /// Allocation calls.
    Allocations,
    /// Requested bytes over every allocation call.
    Allocated,
    /// Live bytes at the instant of the global peak.
    Peak,
    /// Bytes still live at the end.
    Leaked,
    /// Bytes live at the end that the C/C++ runtime owns, not leaks (whole profile only).
    RuntimeOwned,
    /// Temporary allocations (count).
    Temporary,
    /// CPU time, ns (profiles recorded with `--cpu`).
    Cpu,
    /// Bytes of blocks that could have lived on the stack (profiles recorded with `--escape`).
    StackEligible,
    /// Least-squares slope of the live heap, bytes per second (whole profile only).
    Growth,
    /// Sustained growth, yes or no (whole profile only).
    LeakVerdict,
    /// Largest resident set size sampled (whole profile only).
    PeakRss,
    /// 99th percentile of the time inside the real allocator per call (whole profile only).
    AllocLatencyP99,
    /// Length of the recording (whole profile only).
    Duration,
}

/// How a metric's values read, and how they add up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Bytes.
    Bytes,
    /// Bytes per second.
    BytesPerSec,
    /// A count.
    Count,
    /// Nanoseconds.
    Nanos,
    /// Milliseconds.
    Millis,
    /// A yes/no verdict, averaged over runs (fraction of runs that said yes).
    Verdict,
}

/// Where a metric's value comes from.
#[derive(Debug, Clone, Copy)]
pub enum Source {
    /// A field of [`Counts`]: every stack, site, function and the whole profile has a value
    /// (flamegraphs, folded stacks, site tables, the summary).
    Counts(fn(&Counts) -> u64),
    /// Only the whole profile has a value, read from its [`Summary`]; `None` when the profile
    /// cannot measure it (too few timeline samples, say).
    Summary(fn(&Summary) -> Option<f64>),
}

/// One row of the metric table.
#[derive(Debug, Clone, Copy)]
pub struct MetricDef {
    /// The metric this row defines.
    pub metric: Metric,
    /// Name on the command line (`--metric NAME`) and in output file names.
    pub name: &'static str,
    /// Title of charts and flamegraphs.
    pub title: &'static str,
    /// Label of a report's row.
    pub label: &'static str,
    /// One line for `--help`.
    pub help: &'static str,
    /// Unit of the values.
    pub unit: Unit,
    /// What a per-stack value counts, as a flamegraph says it (inferno's `count_name`).
    pub counted: &'static str,
    /// Key in `tidemark summary --json` and in a report's `metrics`.
    pub json_key: &'static str,
    /// Anchor of its definition in docs/metrics.md.
    pub anchor: &'static str,
    /// The definition in one or two sentences (reports print it).
    pub definition: &'static str,
    /// Where the value comes from.
    pub source: Source,
    /// Whether a profile has this metric: `Err(what to do)` when it was not recorded (a metric
    /// that needs `--cpu`, say). Reports leave the metric out; commands that were asked for it
    /// fail with the message.
    pub available: fn(&Profile) -> Result<(), &'static str>,
}

/// Every profile has the metric.
fn always(_: &Profile) -> Result<(), &'static str> {
    Ok(())
}

/// Profiles recorded with `--cpu` (and holding samples) have the `cpu` metric.
fn has_cpu_samples(p: &Profile) -> Result<(), &'static str> {
    if p.cpu.is_some() {
        Ok(())
    } else if p.messages.iter().any(|m| m.text.contains("SIGPROF")) {
        Err(
            "this profile has no CPU samples: the program used SIGPROF itself, which stops CPU \
             sampling (see the recorder messages in `tidemark summary`)",
        )
    } else {
        Err(
            "this profile has no CPU samples: record with `tidemark run --cpu` (or \
             TIDEMARK_CPU_HZ=99 for the preload library and Tracking programs)",
        )
    }
}

/// Profiles recorded with frame addresses (`tidemark run --escape`).
fn escape_recorded(p: &Profile) -> Result<(), &'static str> {
    match p.escape {
        Some(_) => Ok(()),
        None => Err("this profile has no frame addresses; record with tidemark run --escape"),
    }
}

/// The metric table, in report order. `METRICS[m as usize].metric == m` for every [`Metric`].
pub const METRICS: &[MetricDef] = &[
    MetricDef {
        metric: Metric::Allocations,
        name: "allocations",
        title: "Allocation calls",
        label: "Allocation calls",
        help: "Allocation calls.",
        unit: Unit::Count,
        counted: "allocations",
        json_key: "allocations",
        anchor: "allocations",
        definition: "Calls to allocation functions (malloc, calloc, realloc, aligned variants; \
                     Rust alloc/realloc), realloc included.",
        source: Source::Counts(|c| c.allocations),
        available: always,
    },
    MetricDef {
        metric: Metric::Allocated,
        name: "allocated",
        title: "Allocated bytes",
        label: "Allocated bytes",
        help: "Requested bytes over every allocation call.",
        unit: Unit::Bytes,
        counted: "bytes",
        json_key: "allocated_bytes",
        anchor: "allocated-bytes",
        definition: "Requested bytes over every allocation call.",
        source: Source::Counts(|c| c.allocated_bytes),
        available: always,
    },
    MetricDef {
        metric: Metric::Peak,
        name: "peak",
        title: "Live bytes at the peak",
        label: "Peak heap",
        help: "Live bytes at the global peak.",
        unit: Unit::Bytes,
        counted: "bytes",
        json_key: "peak_bytes",
        anchor: "peak",
        definition: "The largest live heap (requested bytes) at any instant of the run.",
        source: Source::Counts(|c| c.peak_bytes),
        available: always,
    },
    MetricDef {
        metric: Metric::Leaked,
        name: "leaked",
        title: "Leaked bytes (live at the end)",
        label: "Leaked bytes",
        help: "Bytes still live at the end (runtime-owned blocks left out).",
        unit: Unit::Bytes,
        counted: "bytes",
        json_key: "leaked_bytes",
        anchor: "leaked",
        definition: "Bytes still live when the profile ends, not counting the blocks the \
                     runtime owns (runtime-owned bytes).",
        source: Source::Counts(|c| c.leaked_bytes),
        available: always,
    },
    MetricDef {
        metric: Metric::RuntimeOwned,
        name: "runtime-owned",
        title: "Runtime-owned bytes (live at the end, not leaks)",
        label: "Runtime-owned bytes",
        help: "Bytes live at the end that the C/C++ runtime keeps for a thread or the process.",
        unit: Unit::Bytes,
        counted: "bytes",
        json_key: "runtime_owned_bytes",
        anchor: "runtime-owned",
        definition: "Bytes live at the end that a suppression rule names runtime-owned (the \
                     loader's data, locale tables, each thread's DTV, libstdc++'s emergency \
                     pool, a suppression file's patterns): kept by the runtime, not leaked.",
        source: Source::Summary(|s| Some(s.runtime_owned_bytes as f64)),
        available: always,
    },
    MetricDef {
        metric: Metric::Temporary,
        name: "temporary",
        title: "Temporary allocations",
        label: "Temporary allocations",
        help: "Temporary allocations.",
        unit: Unit::Count,
        counted: "allocations",
        json_key: "temporary_allocations",
        anchor: "temporary",
        definition: "A block freed by the same thread with no other allocation by that thread \
                     in between.",
        source: Source::Counts(|c| c.temporary_allocations),
        available: always,
    },
    MetricDef {
        metric: Metric::Cpu,
        name: "cpu",
        title: "CPU time",
        label: "CPU time",
        help: "CPU time from the CPU samples (profiles recorded with --cpu).",
        unit: Unit::Nanos,
        counted: "ns",
        json_key: "cpu_ns",
        anchor: "cpu",
        definition: "CPU time of the program's threads, from their on-CPU stack samples (one \
                     per sampling period of each thread's CPU time).",
        source: Source::Counts(|c| c.cpu_ns),
        available: has_cpu_samples,
    },
    MetricDef {
        metric: Metric::StackEligible,
        name: "stack-eligible",
        title: "Could live on the stack (bytes)",
        label: "Stack-eligible bytes",
        help: "Bytes of blocks freed before their function returned, same thread, up to 4 KiB \
               (recorded with --escape).",
        unit: Unit::Bytes,
        counted: "bytes",
        json_key: "stack_eligible_bytes",
        anchor: "stack-eligible",
        definition: "Requested bytes of blocks freed by the allocating thread while the \
                     allocating function was still running, each no larger than 4 KiB: they \
                     could have been local values.",
        source: Source::Counts(|c| c.stack_eligible_bytes),
        available: escape_recorded,
    },
    MetricDef {
        metric: Metric::Growth,
        name: "growth",
        title: "Growth slope",
        label: "Growth slope",
        help: "Least-squares slope of the live heap.",
        unit: Unit::BytesPerSec,
        counted: "bytes/s",
        json_key: "growth_bytes_per_sec",
        anchor: "growth",
        definition: "Least-squares slope of the live heap over the steady part of the run \
                     (after the first 10%).",
        source: Source::Summary(|s| s.pressure.growth_bytes_per_sec),
        available: always,
    },
    MetricDef {
        metric: Metric::LeakVerdict,
        name: "leak-verdict",
        title: "Leak verdict",
        label: "Leak verdict",
        help: "Sustained growth of the live heap, yes or no.",
        unit: Unit::Verdict,
        counted: "runs",
        json_key: "leak_verdict",
        anchor: "leak-verdict",
        definition: "Sustained growth: the live heap's troughs rise across the run; a plateau, \
                     single step or sawtooth is not a leak. A yes/no answer per run: the report \
                     shows in how many runs it said yes, with no significance test.",
        source: Source::Summary(|s| Some(if s.pressure.leak_verdict { 1.0 } else { 0.0 })),
        available: always,
    },
    MetricDef {
        metric: Metric::PeakRss,
        name: "peak-rss",
        title: "Peak RSS",
        label: "Peak RSS",
        help: "Largest resident set size sampled.",
        unit: Unit::Bytes,
        counted: "bytes",
        json_key: "peak_rss_bytes",
        anchor: "peak-rss",
        definition: "Largest resident set size sampled.",
        source: Source::Summary(|s| s.pressure.peak_rss_bytes.map(|v| v as f64)),
        available: always,
    },
    MetricDef {
        metric: Metric::AllocLatencyP99,
        name: "alloc-latency-p99",
        title: "Allocator latency p99",
        label: "Allocator latency p99",
        help: "99th percentile of the time inside the allocator per call.",
        unit: Unit::Nanos,
        counted: "ns",
        json_key: "alloc_latency_p99_ns",
        anchor: "allocator-latency",
        definition: "99th percentile of time spent inside the real allocator per call.",
        source: Source::Summary(|s| s.pressure.alloc_latency_p99_ns),
        available: always,
    },
    MetricDef {
        metric: Metric::Duration,
        name: "duration",
        title: "Duration",
        label: "Duration",
        help: "Length of the recording.",
        unit: Unit::Millis,
        counted: "ms",
        json_key: "duration_ms",
        anchor: "duration",
        definition: "Wall-clock length of the recording.",
        source: Source::Summary(|s| Some(s.duration_ms as f64)),
        available: always,
    },
];

impl Metric {
    /// Every metric, in [`METRICS`] order.
    pub const ALL: [Metric; 13] = [
        Metric::Allocations,
        Metric::Allocated,
        Metric::Peak,
        Metric::Leaked,
        Metric::RuntimeOwned,
        Metric::Temporary,
        Metric::Cpu,
        Metric::StackEligible,
        Metric::Growth,
        Metric::LeakVerdict,
        Metric::PeakRss,
        Metric::AllocLatencyP99,
        Metric::Duration,
    ];

    /// Its row of [`METRICS`].
    pub fn def(self) -> &'static MetricDef {
        &METRICS[self as usize]
    }

    /// The metrics with a value per stack and site (what `--metric` offers), in table order.
    pub fn per_stack() -> impl Iterator<Item = Metric> {
        Metric::ALL.into_iter().filter(|m| m.is_per_stack())
    }

    /// The CLI name (`allocated`, `allocations`, `peak`, `leaked`, `temporary`, …).
    pub fn name(self) -> &'static str {
        self.def().name
    }

    /// What a per-stack value counts: `"bytes"`, `"allocations"`, …
    pub fn count_name(self) -> &'static str {
        self.def().counted
    }

    /// A title for charts.
    pub fn title(self) -> &'static str {
        self.def().title
    }

    /// The unit of its values.
    pub fn unit(self) -> Unit {
        self.def().unit
    }

    /// Its value in one aggregate (a stack, site, function or the whole profile); 0 for a
    /// metric measured on the whole profile only.
    pub fn of(self, c: &Counts) -> u64 {
        match self.def().source {
            Source::Counts(f) => f(c),
            Source::Summary(_) => 0,
        }
    }

    /// Its value for the whole profile; `None` when the profile cannot measure it.
    pub fn of_summary(self, s: &Summary) -> Option<f64> {
        match self.def().source {
            Source::Counts(f) => Some(f(&s.counts) as f64),
            Source::Summary(f) => f(s),
        }
    }

    /// True when every stack and site has a value ([`Source::Counts`]).
    pub fn is_per_stack(self) -> bool {
        matches!(self.def().source, Source::Counts(_))
    }

    /// `Ok` when `p` has this metric; else the error says what to record.
    pub fn check_available(self, p: &Profile) -> Result<(), MetricUnavailable> {
        self.def().check_available(p)
    }
}

impl MetricDef {
    /// `Ok` when `p` has this metric; else the error says what to record.
    pub fn check_available(&self, p: &Profile) -> Result<(), MetricUnavailable> {
        (self.available)(p).map_err(|why| MetricUnavailable {
            metric: self.metric,
            why,
        })
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown metric name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown metric {0:?}: use one of {names}", names = per_stack_names())]
pub struct UnknownMetric(pub String);

fn per_stack_names() -> String {
    Metric::per_stack()
        .map(Metric::name)
        .collect::<Vec<_>>()
        .join(", ")
}

impl FromStr for Metric {
    type Err = UnknownMetric;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        METRICS
            .iter()
            .find(|d| d.name == s)
            .map(|d| d.metric)
            .ok_or_else(|| UnknownMetric(s.to_owned()))
    }
}

/// The profile does not have the metric asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no {metric} values: {why}")]
pub struct MetricUnavailable {
    /// The metric.
    pub metric: Metric,
    /// Why, and what to do (`this profile has no CPU samples; record with --cpu`).
    pub why: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_has_its_row_and_a_unique_name() {
        assert_eq!(Metric::ALL.len(), METRICS.len());
        for (i, m) in Metric::ALL.into_iter().enumerate() {
            assert_eq!(m as usize, i, "{m}: variant order");
            assert_eq!(METRICS[i].metric, m, "{m}: row order");
            assert_eq!(m.name().parse::<Metric>().unwrap(), m);
            assert_eq!(METRICS.iter().filter(|d| d.name == m.name()).count(), 1);
            assert_eq!(
                METRICS
                    .iter()
                    .filter(|d| d.json_key == m.def().json_key)
                    .count(),
                1
            );
        }
    }

    #[test]
    fn counts_and_summary_agree() {
        let counts = Counts {
            allocations: 1,
            allocated_bytes: 2,
            peak_bytes: 3,
            leaked_bytes: 4,
            leaked_allocations: 5,
            temporary_allocations: 6,
            cpu_ns: 9,
            stack_eligible_bytes: 8,
        };
        let s = Summary {
            counts,
            duration_ms: 7,
            ..Summary::default()
        };
        let per_stack: Vec<u64> = Metric::per_stack().map(|m| m.of(&counts)).collect();
        assert_eq!(per_stack, [1, 2, 3, 4, 6, 9, 8]);
        for m in Metric::per_stack() {
            assert_eq!(m.of_summary(&s), Some(m.of(&counts) as f64));
        }
        assert_eq!(Metric::Duration.of_summary(&s), Some(7.0));
        assert_eq!(Metric::Duration.of(&counts), 0);
        assert_eq!(Metric::LeakVerdict.of_summary(&s), Some(0.0));
    }

    #[test]
    fn a_profile_without_the_metric_is_told_what_to_record() {
        let p = Profile::default();
        for m in Metric::ALL {
            if m == Metric::Cpu {
                let e = m.check_available(&p).unwrap_err();
                assert!(e.to_string().contains("--cpu"), "{e}");
                continue;
            }
            if m == Metric::StackEligible {
                let e = m.check_available(&p).unwrap_err();
                assert!(e.to_string().contains("--escape"), "{e}");
                continue;
            }
            assert_eq!(m.check_available(&p), Ok(()), "{m}");
        }
        // A row that needs data only some profiles have, as `cpu` will.
        let needs_samples = MetricDef {
            available: |p| {
                if p.samples.is_empty() {
                    Err("this profile has no CPU samples; record with --cpu")
                } else {
                    Ok(())
                }
            },
            ..*Metric::Allocations.def()
        };
        let e = needs_samples.check_available(&p).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no allocations values: this profile has no CPU samples; record with --cpu"
        );
        let mut with_samples = Profile::default();
        with_samples.samples.push(Default::default());
        assert_eq!(needs_samples.check_available(&with_samples), Ok(()));
    }
}
