//! `tidemark run` with no command: the built-in demo. Records the alloc-without-free and sawtooth
//! workloads (from the fixtures crate, next to the `tidemark` executable) and writes every output
//! tidemark has into one directory, so a new user sees all of them on the first try.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;

use anyhow::{anyhow, bail, Context as _};

use super::launcher::{exit_code, find_beside_exe, preload_library};
use super::output;
use super::run::record_one;
use super::{RunArgs, DEFAULT_WORKLOAD_DIR, DEFAULT_WORKLOAD_DURATION_MS};
use crate::model::Profile;
use crate::render::units::duration_ms;
use crate::render::{flamegraph_svg, summary_text, write_summary_json, Metric};

/// The built-in workload's binary (from the fixtures crate), next to the `tidemark` executable.
pub const WORKLOAD_BIN: &str = "tm-alloc-without-free";

/// The second built-in scenario of the default run: growth that is released (not a leak).
pub const SAWTOOTH_BIN: &str = "tm-sawtooth";

/// Records one built-in workload into `profile`; returns its exit status and the loaded profile.
fn record_builtin(
    a: &RunArgs,
    preload: &Path,
    bin: &str,
    args: &[OsString],
    profile: &Path,
) -> anyhow::Result<(ExitStatus, Profile)> {
    let exe = find_beside_exe(bin).ok_or_else(|| {
        anyhow!(
            "cannot find the built-in workload {bin} next to tidemark; build the whole \
             workspace with `cargo build --release` (it comes from the fixtures crate), or give \
             a command: tidemark run -- PROGRAM [ARGS]"
        )
    })?;
    let mut argv: Vec<OsString> = vec![bin.into()];
    argv.extend(args.iter().cloned());
    let (status, p) = record_one(a, preload, &exe, &argv, profile, true)?;
    Ok((
        status,
        p.expect("record_one loads the profile when asked to"),
    ))
}

/// `tidemark run` with no command: profile the built-in workload and write every output.
pub(super) fn run_workload(a: &RunArgs) -> anyhow::Result<u8> {
    let preload = preload_library()?;
    let dir = a
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_WORKLOAD_DIR));
    if dir.extension().is_some_and(|e| e == "tmk") {
        bail!(
            "{}: with no command, -o names the directory for the built-in workload's outputs, not \
             a profile; give a directory (or add `-- COMMAND` to profile a program)",
            dir.display()
        );
    }
    if let Ok(m) = fs::symlink_metadata(&dir) {
        if !m.is_dir() {
            bail!(
                "will not write the outputs to {}: with no command, -o names a directory, and \
                 this is not one; give a directory path",
                dir.display()
            );
        }
    }
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let profile = dir.join("profile.tmk");
    let truth = dir.join("truth.json");
    eprintln!(
        "tidemark: no command given: profiling the built-in workload (alloc-without-free, {})",
        duration_ms(DEFAULT_WORKLOAD_DURATION_MS)
    );
    let args: Vec<OsString> = vec![
        "--duration-ms".into(),
        DEFAULT_WORKLOAD_DURATION_MS.to_string().into(),
        "--truth".into(),
        truth.clone().into_os_string(),
    ];
    let (status, p) = record_builtin(a, &preload, WORKLOAD_BIN, &args, &profile)?;
    let mut written: Vec<PathBuf> = vec![profile.clone()];
    if truth.is_file() {
        written.push(truth);
    }
    for (name, metric) in [
        ("flamegraph.svg", Metric::Allocated),
        ("leaked.svg", Metric::Leaked),
    ] {
        let path = dir.join(name);
        output::write_to(&path, "the flamegraph", |w| {
            Ok(flamegraph_svg(&p, metric, false, w)?)
        })?;
        written.push(path);
    }
    let curves_path = dir.join("curves.svg");
    let svg = crate::render::timeline::render_svg(
        "tidemark timeline: built-in alloc-without-free workload",
        &crate::render::curves::panels(&p, a.limit),
        crate::render::timeline::DEFAULT_WIDTH_PX,
    )
    .context("cannot draw the timeline")?;
    output::write_atomically(&curves_path, svg.as_bytes(), "the timeline")?;
    written.push(curves_path);
    let view_path = dir.join("view.html");
    super::view::write_page_of(&profile, &view_path, a.limit)?;
    written.push(view_path);
    let s = crate::analysis::summary_with(
        &p,
        crate::analysis::DEFAULT_TOP_N,
        &crate::analysis::PressureOptions {
            limit_bytes: a.limit,
            ..Default::default()
        },
    );
    let txt = dir.join("summary.txt");
    output::write_atomically(&txt, summary_text(&s).as_bytes(), "the summary")?;
    written.push(txt);
    let json = dir.join("summary.json");
    output::write_to(&json, "the summary", |w| Ok(write_summary_json(&s, w)?))?;
    written.push(json);

    // A second scenario, so the first run shows a comparison too: growth that is released.
    eprintln!(
        "tidemark: recording a second scenario for the comparison report (sawtooth, {})",
        duration_ms(DEFAULT_WORKLOAD_DURATION_MS)
    );
    let saw_profile = dir.join("sawtooth.tmk");
    let saw_args: Vec<OsString> = vec![
        "--duration-ms".into(),
        DEFAULT_WORKLOAD_DURATION_MS.to_string().into(),
        "--truth".into(),
        dir.join("sawtooth.truth.json").into_os_string(),
    ];
    let (_, saw) = record_builtin(a, &preload, SAWTOOTH_BIN, &saw_args, &saw_profile)?;
    written.push(saw_profile.clone());
    let scenarios = vec![
        crate::report::ScenarioInput {
            label: "alloc-without-free".into(),
            runs: vec![super::report::run_input(&profile, &p)],
        },
        crate::report::ScenarioInput {
            label: "sawtooth".into(),
            runs: vec![super::report::run_input(&saw_profile, &saw)],
        },
    ];
    for (name, format) in [
        ("report.html", super::ReportFormat::Html),
        ("report.md", super::ReportFormat::Md),
    ] {
        let path = dir.join(name);
        super::report::write_report(&scenarios, None, &path, format)?;
        written.push(path);
    }
    eprintln!("tidemark: files written:");
    for w in &written {
        eprintln!("  {}", w.display());
    }
    Ok(exit_code(status))
}
