//! Small things a new user ran into, each fixed and kept fixed: unknown report extensions,
//! unknown baselines, budgets that read equal after rounding, a profile name given for the
//! built-in workload's output directory, and the view's output name.

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
        &fixture_bin("tm-sawtooth", &scratch),
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
