//! Format compatibility: a committed profile of every released format version keeps loading, and
//! gives the numbers the tidemark that wrote it printed.
//!
//! `tests/data/compat/vN-churn.tmk` was recorded by format version N's tidemark with
//! `tidemark run -o vN-churn.tmk -- tm-churn --threads 2 --iterations 3000 --seed 7 --truth
//! vN-churn.truth.json`; `vN-churn.summary.json` is that tidemark's `summary --json` of it, and
//! the truth file what the workload counted itself while it ran. `v5-fragmentation.tmk` (`tm-
//! fragmentation --blocks 4000 --hold-ms 0 --truth v5-fragmentation.truth.json`) holds version
//! 5's frees stream in the thread form (`docs/format.md` §2.3), which the churn's random frees
//! leave unused (their plain form is shorter).

mod support;

use std::path::PathBuf;
use support::*;
use tidemark_analyzer::load::{load_path, LoadOptions};

fn compat(name: &str) -> PathBuf {
    workspace_root()
        .join("analyzer/tests/data/compat")
        .join(name)
}

/// Loads a committed profile from its embedded symbols alone (the binaries that made it are not
/// on this machine) and checks it against what its writer printed and against the truth.
fn check(version: u16) {
    check_named(version, "churn");
}

fn check_named(version: u16, workload: &str) {
    let profile = compat(&format!("v{version}-{workload}.tmk"));
    let p = load_path(
        &profile,
        &LoadOptions {
            symbolize: false,
            progress: false,
            ..LoadOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("{}: {e}", profile.display()));
    assert_eq!(p.header.version, version);
    assert!(p.truncated.is_none(), "{:?}", p.truncated);
    let written: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(compat(&format!("v{version}-{workload}.summary.json"))).unwrap(),
    )
    .unwrap();
    let now = summary_json(&p, 10);
    for field in [
        "allocations",
        "reallocs",
        "frees",
        "unmatched_frees",
        "allocated_bytes",
        "peak_bytes",
        "peak_blocks",
        "leaked_bytes",
        "leaked_allocations",
        "temporary_allocations",
        "dropped_events",
    ] {
        assert_eq!(
            field_u64(&now, field),
            field_u64(&written, field),
            "v{version} {field}"
        );
    }
    let sites = |v: &serde_json::Value| -> Vec<(String, u64, u64)> {
        v["top_sites"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["function"].as_str().unwrap().to_owned(),
                    s["allocations"].as_u64().unwrap(),
                    s["allocated_bytes"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(sites(&now), sites(&written), "v{version} top sites");
    assert_matches_truth(
        &profile,
        &read_truth(&compat(&format!("v{version}-{workload}.truth.json"))),
    );
}

#[test]
fn version_1_profile_still_loads_with_its_numbers() {
    check(1);
}

#[test]
fn version_2_profile_loads_with_its_numbers() {
    check(2);
}

#[test]
fn version_3_profile_loads_with_its_numbers() {
    // Event chunks as columns, stacks as tails, samples as differences.
    check(3);
}

#[test]
fn version_4_profile_loads_with_its_numbers() {
    // Event chunks as columns with a lane per thread (codec 3): two threads' events interleaved.
    check(4);
}

#[test]
fn version_5_profile_loads_with_its_numbers() {
    // Frees in the thread form: by rank among the freeing thread's latest blocks (two threads'
    // events interleaved), far ones from either of the last two far blocks.
    check(5);
    check_named(5, "fragmentation");
}
