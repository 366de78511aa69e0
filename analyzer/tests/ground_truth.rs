//! Exact mode is exact: per-site allocations, bytes, leaks and temporaries in a profile recorded
//! through LD_PRELOAD equal what the fixture measured while it ran.
//!
//! The Rust fixtures are release builds without frame pointers and the C fixtures are built with
//! `-fomit-frame-pointer`, so these runs exercise the default (DWARF) unwinder.

mod support;

use std::ffi::OsStr;
use support::*;

#[test]
fn alloc_without_free_matches_truth_across_threads_and_sites() {
    let scratch = Scratch::new("awf-truth");
    let truth_path = scratch.join("truth.json");
    let rec = record(
        &scratch,
        &fixture_bin("tm-alloc-without-free", &scratch),
        &[
            "--duration-ms",
            "500",
            "--threads",
            "2",
            "--sites",
            "8",
            "--block-size",
            "6000",
            "--truth",
            truth_path.to_str().unwrap(),
        ],
    );
    let truth = read_truth(&truth_path);
    assert_eq!(truth.sites.len(), 8);
    assert!(
        truth.sites.iter().all(|s| s.allocations > 0),
        "every site should have allocated in 500 ms: {truth:#?}"
    );
    assert_matches_truth(&rec.profile, &truth);

    // The whole-profile numbers include the runtime's own allocations, so they bound the sites'.
    let s = summary_json(&load(&rec.profile), 10);
    assert!(field_u64(&s, "allocations") >= truth.totals.allocations);
    assert!(field_u64(&s, "leaked_bytes") >= truth.totals.leaked_bytes);
    assert!(field_u64(&s, "peak_bytes") >= truth.totals.leaked_bytes);
}

#[test]
fn churn_two_threads_matches_truth_including_temporaries() {
    let scratch = Scratch::new("churn-truth");
    let truth_path = scratch.join("truth.json");
    let rec = record(
        &scratch,
        &fixture_bin("tm-churn", &scratch),
        &[
            "--threads",
            "2",
            "--iterations",
            "20000",
            "--truth",
            truth_path.to_str().unwrap(),
        ],
    );
    let truth = read_truth(&truth_path);
    let keep = truth.site("churn_keep").expect("churn_keep in truth");
    assert!(
        keep.temporary_allocations.unwrap() > 0,
        "the seed should make some pool blocks temporaries: {keep:?}"
    );
    assert_matches_truth(&rec.profile, &truth);
}

#[test]
fn churn_deep_stacks_match_truth() {
    let scratch = Scratch::new("churn-deep");
    let truth_path = scratch.join("truth.json");
    let rec = record(
        &scratch,
        &fixture_bin("tm-churn", &scratch),
        &[
            "--threads",
            "2",
            "--iterations",
            "5000",
            "--depth",
            "25",
            "--seed",
            "99",
            "--truth",
            truth_path.to_str().unwrap(),
        ],
    );
    assert_matches_truth(&rec.profile, &read_truth(&truth_path));
}

/// Runs a C fixture plain and under the recorder; both runs must pass the program's own checks
/// and count exactly the committed truth, and the profile must match it.
fn check_c_fixture(name: &str, gcc_flags: &[&str]) {
    let scratch = Scratch::new(&format!("c-{name}"));
    let exe = compile_c(name, &scratch, gcc_flags);
    let committed = read_truth(&fixture_source(&format!("c/{name}.truth.json")));

    // Plain run: the committed truth is what the program does.
    let plain_truth = scratch.join("plain-truth.json");
    let mut cmd = std::process::Command::new(&exe);
    cmd.arg("--truth").arg(&plain_truth);
    run_bounded(cmd, &scratch, RUN_TIMEOUT).assert_success(&format!("{name} (plain)"));
    assert_eq!(
        read_truth(&plain_truth),
        committed,
        "fixtures/c/{name}.truth.json is stale: the program now counts differently"
    );

    // Under the preload: glibc's semantics hold (the program exits 0) and the counts agree.
    let preload_truth = scratch.join("preload-truth.json");
    let rec = record(
        &scratch,
        &exe,
        &[OsStr::new("--truth"), preload_truth.as_os_str()],
    );
    assert!(
        !rec.run.stderr.contains("check failed"),
        "{name} saw changed malloc semantics under the preload:\n{}",
        rec.run.describe()
    );
    assert_eq!(read_truth(&preload_truth), committed);
    assert_matches_truth(&rec.profile, &committed);
}

#[test]
fn c_entry_points_keep_glibc_semantics_and_match_truth() {
    check_c_fixture("entry_points", &[]);
}

#[test]
fn c_threads_cross_thread_frees_match_truth() {
    check_c_fixture("threads", &["-pthread"]);
}

/// The writer computes the replay's totals while it orders the stream and puts them in the
/// trailer (what `tidemark run` prints without reading the events back): they equal the
/// analyzer's, on a multi-threaded churn with temporaries, reallocs and leaks.
#[test]
fn trailer_totals_equal_the_replay() {
    use tidemark::format::trailer_key as k;
    let scratch = Scratch::new("trailer-totals");
    let rec = record(
        &scratch,
        &fixture_bin("tm-churn", &scratch),
        &["--threads", "2", "--iterations", "20000"],
    );
    let p = load(&rec.profile);
    let trailer = p.trailer.clone().expect("a clean run ends with a trailer");
    let get = |key| {
        trailer
            .iter()
            .find(|(kk, _)| *kk == key)
            .map(|&(_, v)| v)
            .unwrap_or_else(|| panic!("trailer key {key} missing: {trailer:?}"))
    };
    let t = &p.totals;
    assert_eq!(get(k::ALLOCATIONS), t.counts.allocations);
    assert_eq!(get(k::FREES), t.frees);
    assert_eq!(get(k::UNMATCHED_FREES), t.unmatched_frees);
    assert_eq!(get(k::PEAK_BYTES), t.counts.peak_bytes);
    assert_eq!(get(k::PEAK_BLOCKS), t.peak_blocks);
    let s = tidemark_analyzer::analysis::summary(&p, 0);
    // The recorder counts every block live at the end; the analyzer splits off the
    // runtime-owned ones (docs/metrics.md).
    assert_eq!(
        get(k::LEAKED_BYTES),
        s.counts.leaked_bytes + s.runtime_owned_bytes
    );
    assert_eq!(
        get(k::LEAKED_BLOCKS),
        s.counts.leaked_allocations + s.runtime_owned_blocks
    );
    assert_eq!(
        get(k::TEMPORARY_ALLOCATIONS),
        s.counts.temporary_allocations
    );
    assert!(s.counts.temporary_allocations > 1000 && s.counts.leaked_allocations > 10);
    // The stack-quality counts `tidemark run` warns from without reading the events back.
    let q = tidemark_analyzer::analysis::stack_quality(&p);
    assert_eq!(get(k::STACKED_ALLOCATIONS), q.allocations);
    assert_eq!(get(k::TRUNCATED_ALLOCATIONS), q.truncated_allocations);
    assert!(q.allocations > 1000);
}
