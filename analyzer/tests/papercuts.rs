//! Small things a new user ran into, each fixed and kept fixed: unknown report extensions,
//! unknown baselines, budgets that read equal after rounding, a profile name given for the
//! built-in workload's output directory, and the view's output name.
//!
//! The fixture runs straight from `target/release`: a copy made while another test thread forks
//! can fail to start with ETXTBSY (the child holds the copy's write descriptor until it execs).

mod support;

use support::*;

#[test]
fn report_refuses_an_unknown_extension_and_an_unknown_baseline_before_loading() {
    let scratch = Scratch::new("papercut-report");
    // The profiles do not exist: the refusals must come before anything is loaded.
    let pdf = tidemark_cli(["report", "a=/nonexistent/a.tmk", "-o", "x.pdf"], &scratch);
    assert_eq!(pdf.status.code(), Some(2), "{}", pdf.describe());
    assert!(
        pdf.stderr.contains(".pdf") && pdf.stderr.contains("--format"),
        "{}",
        pdf.describe()
    );
    assert!(!scratch.join("x.pdf").exists());
    let base = tidemark_cli(
        [
            "report",
            "before=/nonexistent/a.tmk",
            "after=/nonexistent/b.tmk",
            "--baseline",
            "zzz",
        ],
        &scratch,
    );
    assert_eq!(base.status.code(), Some(2), "{}", base.describe());
    assert!(
        base.stderr.contains("\"zzz\"")
            && base.stderr.contains("\"before\", \"after\"")
            && !base.stderr.contains("cannot read profile"),
        "{}",
        base.describe()
    );
}

#[test]
fn check_shows_exact_numbers_when_value_and_budget_round_alike() {
    let scratch = Scratch::new("papercut-check");
    let profile = record(
        &scratch,
        &artifact("tm-sawtooth"),
        &["--duration-ms", "400"],
    )
    .profile;
    let peak = field_u64(&summary_json(&load(&profile), 0), "peak_bytes");
    let over = tidemark_cli(
        [
            "check".to_owned(),
            "--max-peak".to_owned(),
            (peak - 1).to_string(),
            path_str(&profile).to_owned(),
        ],
        &scratch,
    );
    assert_eq!(over.status.code(), Some(1), "{}", over.describe());
    let exact = tidemark_analyzer::render::units::count(peak);
    let budget = tidemark_analyzer::render::units::count(peak - 1);
    assert!(
        over.stdout
            .contains(&format!("({exact}) exceeds the budget of"))
            && over.stdout.contains(&format!("({budget})")),
        "{}",
        over.describe()
    );
}

#[test]
fn run_with_no_command_refuses_a_profile_name_for_its_output_directory() {
    let scratch = Scratch::new("papercut-run");
    let r = tidemark_cli(["run", "-o", "x.tmk"], &scratch);
    assert_eq!(r.status.code(), Some(2), "{}", r.describe());
    assert!(r.stderr.contains("directory"), "{}", r.describe());
    assert!(
        !scratch.join("x.tmk").exists(),
        "no directory x.tmk is made"
    );
}

#[test]
fn view_refuses_an_output_that_is_not_html() {
    let scratch = Scratch::new("papercut-view");
    let r = tidemark_cli(["view", "/nonexistent/a.tmk", "-o", "x.pdf"], &scratch);
    assert_eq!(r.status.code(), Some(2), "{}", r.describe());
    assert!(r.stderr.contains("*.html"), "{}", r.describe());
}

#[test]
fn summary_sorts_sites_by_any_metric_and_lists_their_call_paths() {
    use tidemark_analyzer::analysis::{call_paths, sites, SiteSort};
    let scratch = Scratch::new("papercut-summary");
    let profile = record(
        &scratch,
        &artifact("tm-sawtooth"),
        &["--duration-ms", "300"],
    )
    .profile;
    let p = load(&profile);
    for (flag, key) in [
        ("calls", "allocations"),
        ("leaked", "leaked_bytes"),
        ("peak", "peak_bytes"),
        ("temporary", "temporary_allocations"),
    ] {
        let r = tidemark_cli(
            [
                "summary",
                "--json",
                "--top",
                "5",
                "--sort",
                flag,
                path_str(&profile),
            ],
            &scratch,
        );
        r.assert_success("tidemark summary --sort");
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        let got: Vec<u64> = v["top_sites"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s[key].as_u64().unwrap())
            .collect();
        let mut want: Vec<u64> = sites(&p)
            .iter()
            .map(|s| serde_json::to_value(s).unwrap()[key].as_u64().unwrap())
            .collect();
        want.sort_unstable_by(|a, b| b.cmp(a));
        want.truncate(5);
        assert_eq!(got, want, "--sort {flag}");
    }
    // Every site's call paths add up to the site, and the text lists them under it.
    for site in sites(&p).iter().take(5) {
        let paths = call_paths(&p, site, SiteSort::Allocated, usize::MAX);
        let sum: u64 = paths.iter().map(|c| c.totals.allocated_bytes).sum();
        assert_eq!(sum, site.counts.allocated_bytes, "{}", site.function);
    }
    let text = tidemark_cli(
        [
            "summary",
            "--top",
            "1",
            "--backtrace",
            "3",
            path_str(&profile),
        ],
        &scratch,
    );
    text.assert_success("tidemark summary --backtrace");
    assert!(
        text.stdout.contains("call paths of the top sites")
            && text.stdout.contains("← tm_sawtooth::main")
            && text.stdout.contains("← [Rust runtime]")
            && !text.stdout.contains("std::rt::lang_start_internal"),
        "{}",
        text.stdout
    );
}

#[test]
fn a_memory_limit_needs_a_unit() {
    let scratch = Scratch::new("papercut-limit");
    let r = tidemark_cli(["run", "--limit", "12", "--", "/bin/true"], &scratch);
    assert_eq!(r.status.code(), Some(2), "{}", r.describe());
    assert!(r.stderr.contains("12MiB"), "{}", r.describe());
    let ok = tidemark_cli(
        ["run", "--limit", "12MiB", "-o", "l.tmk", "--", "/bin/true"],
        &scratch,
    );
    ok.assert_success("tidemark run --limit 12MiB");
}

/// `tidemark run … 2>&1 | head -1`: the reader of stderr goes away after the first line. The
/// command still finishes the profile and exits with the program's status (no panic, no 101).
#[test]
fn a_closed_stderr_is_not_an_error() {
    use std::process::{Command, Stdio};
    let scratch = Scratch::new("papercut-stderr");
    let mut child = Command::new(tidemark())
        .args(["run", "-o", "closed.tmk", "--", "/bin/true"])
        .current_dir(scratch.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tidemark");
    // Close the read end at once: every write to stderr then fails (EPIPE).
    drop(child.stderr.take());
    let status = child.wait().expect("wait for tidemark");
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(
        scratch.join("closed.tmk").is_file(),
        "the profile was not finished"
    );
}

#[test]
fn every_command_help_has_an_example() {
    let scratch = Scratch::new("papercut-help");
    for cmd in [
        "run",
        "summary",
        "flamegraph",
        "timeline",
        "report",
        "diff",
        "check",
        "export",
        "view",
    ] {
        let r = tidemark_cli([cmd, "--help"], &scratch);
        r.assert_success(&format!("tidemark {cmd} --help"));
        assert!(
            r.stdout.contains("Example") && r.stdout.contains(&format!("tidemark {cmd} ")),
            "tidemark {cmd} --help has no example:\n{}",
            r.stdout
        );
    }
}

#[test]
fn the_allocator_asked_for_and_the_one_that_served_are_both_reported() {
    let scratch = Scratch::new("papercut-allocator");
    let churn = artifact("tm-churn");
    let run = |allocator: Option<&str>, out: &str| -> serde_json::Value {
        let mut args = vec!["run".to_owned()];
        if let Some(a) = allocator {
            args.extend(["--allocator".to_owned(), a.to_owned()]);
        }
        args.extend(["-o".to_owned(), out.to_owned(), "--".to_owned()]);
        args.push(path_str(&churn).to_owned());
        args.extend(["--threads", "1", "--iterations", "200"].map(str::to_owned));
        tidemark_cli(args, &scratch).assert_success("tidemark run");
        let s = tidemark_cli(["summary", "--json", out], &scratch);
        s.assert_success("tidemark summary --json");
        serde_json::from_str(&s.stdout).unwrap()
    };
    // tm-churn brings no allocator of its own: `system` is served by glibc, and both are said.
    let system = run(Some("system"), "system.tmk");
    assert_eq!(
        system["process"]["allocator"], "glibc",
        "{}",
        system["process"]
    );
    assert_eq!(system["process"]["allocator_requested"], "system");
    let text = tidemark_cli(["summary", "system.tmk"], &scratch);
    assert!(
        text.stdout
            .contains("allocator    glibc (asked: system, the program's own allocator)"),
        "{}",
        text.describe()
    );
    let jemalloc = run(Some("jemalloc"), "jemalloc.tmk");
    assert_eq!(jemalloc["process"]["allocator"], "jemalloc");
    assert_eq!(jemalloc["process"]["allocator_requested"], "jemalloc");
    // The default is `system`, asked for as well.
    let default = run(None, "default.tmk");
    assert_eq!(default["process"]["allocator_requested"], "system");
    // The preload library without TIDEMARK_ALLOCATOR was asked nothing: no such field.
    preload_lib();
    let mut cmd = std::process::Command::new(&churn);
    cmd.args(["--threads", "1", "--iterations", "200"])
        .env("LD_PRELOAD", preload_lib())
        .env("TIDEMARK_OUTPUT", scratch.join("plain.tmk"))
        .env_remove("TIDEMARK_ALLOCATOR")
        .current_dir(scratch.path());
    run_bounded(cmd, &scratch, RUN_TIMEOUT).assert_success("preloaded tm-churn");
    let plain = summary_json(&load(&scratch.join("plain.tmk")), 0);
    assert_eq!(plain["process"]["allocator"], "glibc");
    assert!(
        plain["process"].get("allocator_requested").is_none(),
        "{}",
        plain["process"]
    );
}
