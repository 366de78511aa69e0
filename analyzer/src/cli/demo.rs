//! `tidemark run` with no command: the built-in demo. Records the alloc-without-free workload and
//! small-objects in heap and stack mode (from the fixtures crate, next to the `tidemark`
//! executable), with frame addresses, and writes every output tidemark has into one directory,
//! so a new user sees all of them on the first try.

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
use crate::render::{flamegraph_svg, Metric};

/// The built-in workload's binary (from the fixtures crate), next to the `tidemark` executable.
pub const WORKLOAD_BIN: &str = "tm-alloc-without-free";

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
    // Built-in workloads are recorded with frame addresses: their outputs show heap vs stack.
    let (status, p) = record_one(a, preload, &exe, &argv, profile, true, true)?;
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
    written.extend(super::demo_stack::write_summaries(&p, &s, &dir)?);

    // The comparison report: the same work with small values on the heap, then on the stack.
    let (scenarios, files) = super::demo_stack::heap_vs_stack(&dir, &mut |bin, args, profile| {
        record_builtin(a, &preload, bin, args, profile)
    })?;
    written.extend(files);
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
