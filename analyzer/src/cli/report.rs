//! `tidemark report`: scenarios side by side against a baseline, as HTML, Markdown or JSON.

use anyhow::{bail, Context};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{load, write_output, Loaded, ReportArgs, ReportFormat};
use crate::analysis::{pressure::live_heap_series, summary};
use crate::model::Profile;
use crate::render::{folded, folded_to_sites, Metric};
use crate::report::{self, RunInput, ScenarioInput, METRICS};

/// A file stem's trailing run number: `base.3` → `("base", 3)` (what `run --repeat` writes).
fn split_run_number(stem: &str) -> Option<(&str, u64)> {
    let (head, n) = stem.rsplit_once('.')?;
    if head.is_empty() || n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((head, n.parse().ok()?))
}

fn stem_of(path: &Path) -> String {
    path.file_stem()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned()
}

/// The label of a bare profile path: its file stem without a trailing run number
/// (`base.3.tmk` → `base`), so repeated runs group into one scenario.
pub(crate) fn label_of(path: &Path) -> String {
    let stem = stem_of(path);
    split_run_number(&stem).map_or_else(|| stem.clone(), |(head, _)| head.to_owned())
}

/// Expands `[LABEL=]PATTERN` arguments into `(label, path)` pairs, in order. Patterns with
/// `*`, `?` or `[` are expanded here (a shell does not expand `label=base.*.tmk`).
pub(crate) fn expand_inputs(args: &[String]) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for arg in args {
        let (label, pattern) = match arg.split_once('=') {
            Some((l, p)) if !l.is_empty() && !l.contains('/') => (Some(l.to_owned()), p),
            _ => (None, arg.as_str()),
        };
        let paths: Vec<PathBuf> = if pattern.contains(['*', '?', '[']) {
            let mut v: Vec<PathBuf> = glob::glob(pattern)
                .with_context(|| format!("bad pattern {pattern:?}"))?
                .filter_map(Result::ok)
                .collect();
            v.sort_by_key(|p| natural_key(p));
            if v.is_empty() {
                bail!("{pattern:?} matches no file");
            }
            v
        } else {
            vec![PathBuf::from(pattern)]
        };
        for p in paths {
            let l = label.clone().unwrap_or_else(|| label_of(&p));
            out.push((l, p));
        }
    }
    Ok(out)
}

/// Sorts `x.2.tmk` before `x.10.tmk`.
fn natural_key(p: &Path) -> (String, u64) {
    let stem = stem_of(p);
    match split_run_number(&stem) {
        Some((head, n)) => (head.to_owned(), n),
        None => (stem, 0),
    }
}

/// One profile reduced to what a report needs: every metric of the table the profile has, read
/// from its summary (the numbers `summary --json` prints).
pub(crate) fn run_input(path: &Path, p: &Profile) -> RunInput {
    let s = summary(p, 0);
    let mut metrics = BTreeMap::new();
    for def in METRICS {
        if def.metric.check_available(p).is_err() {
            continue;
        }
        if let Some(v) = def.metric.of_summary(&s) {
            metrics.insert(def.json_key.to_owned(), v);
        }
    }
    RunInput {
        path: path.display().to_string(),
        metrics,
        live_heap: live_heap_series(p),
        folded: folded_to_sites(p, Metric::Allocated),
        cpu_folded: p.cpu.is_some().then(|| folded(p, Metric::Cpu)),
        truncated: p.truncated.is_some(),
        stack_eligible: crate::report::stack::run_sites(p),
    }
}

/// Groups `(label, path)` pairs into scenarios (first appearance order), loading each profile.
pub(crate) fn scenarios(
    inputs: &[(String, PathBuf)],
    load_one: &mut dyn FnMut(&Path) -> anyhow::Result<Profile>,
) -> anyhow::Result<Vec<ScenarioInput>> {
    let mut out: Vec<ScenarioInput> = Vec::new();
    for (i, (label, path)) in inputs.iter().enumerate() {
        eprintln!(
            "tidemark: loading {}/{}: {} ({label})",
            i + 1,
            inputs.len(),
            path.display()
        );
        let p = load_one(path)?;
        if let Some(t) = &p.truncated {
            eprintln!(
                "tidemark: warning: {} is truncated ({}); its numbers cover the recorded part only",
                path.display(),
                t.reason
            );
        }
        let run = run_input(path, &p);
        match out.iter_mut().find(|s| &s.label == label) {
            Some(s) => s.runs.push(run),
            None => out.push(ScenarioInput {
                label: label.clone(),
                runs: vec![run],
            }),
        }
    }
    Ok(out)
}

/// The output format: `--format`, else the output's extension (`.html`/`.htm`, `.md`, `.json`;
/// no extension or stdout: HTML). Any other extension is refused rather than silently written
/// as HTML.
fn format_of(a: &ReportArgs, out: &Path) -> anyhow::Result<ReportFormat> {
    if let Some(f) = a.format {
        return Ok(f);
    }
    Ok(match out.extension().and_then(|e| e.to_str()) {
        Some("md") | Some("markdown") => ReportFormat::Md,
        Some("json") => ReportFormat::Json,
        Some("html") | Some("htm") | None => ReportFormat::Html,
        Some(other) => bail!(
            "{}: a report is written as HTML (.html), Markdown (.md) or JSON (.json), not .{other};              rename the output or pass --format html|md|json",
            out.display()
        ),
    })
}

/// Checks `--baseline` against the labels before anything is loaded.
fn check_baseline(baseline: Option<&str>, inputs: &[(String, PathBuf)]) -> anyhow::Result<()> {
    let Some(b) = baseline else { return Ok(()) };
    let mut labels: Vec<&str> = Vec::new();
    for (l, _) in inputs {
        if !labels.contains(&l.as_str()) {
            labels.push(l);
        }
    }
    if !labels.contains(&b) {
        bail!(
            "--baseline {b:?} is not one of the scenario labels: {}",
            labels
                .iter()
                .map(|l| format!("{l:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

/// Writes a report of `scenarios` to `out` in `format`.
pub(crate) fn write_report(
    scen: &[ScenarioInput],
    baseline: Option<&str>,
    out: &Path,
    format: ReportFormat,
) -> anyhow::Result<()> {
    let r = report::build(scen, baseline)?;
    let body = match format {
        ReportFormat::Json => report::to_json(&r) + "\n",
        ReportFormat::Md => report::to_markdown(&r),
        ReportFormat::Html => report::to_html(&r, scen)?,
    };
    write_output(out, body.as_bytes())
}

pub(super) fn report(a: &ReportArgs) -> anyhow::Result<u8> {
    super::output::check_option(a.output.as_deref(), "the report")?;
    let inputs = expand_inputs(&a.profiles)?;
    if inputs.is_empty() {
        bail!("give at least one profile: tidemark report [LABEL=]PROFILE…");
    }
    let out = a
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from("report.html"));
    let format = format_of(a, &out)?;
    check_baseline(a.baseline.as_deref(), &inputs)?;
    let scen = scenarios(&inputs, &mut |p| load(p, &a.load).map(Loaded::into_inner))?;
    write_report(&scen, a.baseline.as_deref(), &out, format)?;
    if out.as_os_str() != "-" {
        eprintln!(
            "tidemark: report of {} scenario(s), {} profile(s) written to {}",
            scen.len(),
            inputs.len(),
            out.display()
        );
    }
    Ok(super::EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_group_repeated_runs() {
        assert_eq!(label_of(Path::new("/x/base.3.tmk")), "base");
        assert_eq!(label_of(Path::new("new.tmk")), "new");
        assert_eq!(label_of(Path::new("a.b.tmk")), "a.b");
        let v = expand_inputs(&["before=/nonexistent/a.tmk".into(), "/x/b.2.tmk".into()]).unwrap();
        assert_eq!(
            v[0],
            ("before".to_owned(), PathBuf::from("/nonexistent/a.tmk"))
        );
        assert_eq!(v[1].0, "b");
        assert!(expand_inputs(&["x=/nonexistent/*.tmk".into()]).is_err());
    }

    #[test]
    fn globs_expand_in_run_order() {
        let d = std::env::temp_dir().join(format!("tidemark-glob-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        for n in [1, 2, 10] {
            std::fs::write(d.join(format!("base.{n}.tmk")), b"").unwrap();
        }
        let v = expand_inputs(&[format!("before={}/base.*.tmk", d.display())]).unwrap();
        let names: Vec<String> = v
            .iter()
            .map(|(_, p)| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["base.1.tmk", "base.2.tmk", "base.10.tmk"]);
        assert!(v.iter().all(|(l, _)| l == "before"));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
