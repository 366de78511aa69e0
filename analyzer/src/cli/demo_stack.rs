//! The heap-vs-stack part of `tidemark run` with no command: the built-in workloads are recorded
//! with frame addresses (`--escape`), their summary shows the stack next to the heap, and the
//! comparison report is `tm-small-objects --mode heap` against `--mode stack`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;

use super::output;
use crate::analysis::escape::{escape, EscapeOptions};
use crate::analysis::Summary;
use crate::model::Profile;
use crate::render::escape::{add_escape_json, escape_text};
use crate::render::{summary_text, write_summary_json};
use crate::report::ScenarioInput;

/// The workload of the comparison.
pub const SMALL_OBJECTS_BIN: &str = "tm-small-objects";
/// Its iterations in the default run.
const SMALL_OBJECTS_ITERATIONS: u64 = 200_000;

/// Writes `summary.txt` and `summary.json` of `p` into `dir` (with the escape section when the
/// profile has frame addresses); returns their paths.
pub(super) fn write_summaries(
    p: &Profile,
    s: &Summary,
    dir: &Path,
) -> anyhow::Result<[PathBuf; 2]> {
    let esc = escape(p, &EscapeOptions::default());
    let mut text = summary_text(s);
    if let Some(e) = &esc {
        text.push_str(&escape_text(
            e,
            &s.thread_stacks,
            crate::analysis::DEFAULT_TOP_N,
        ));
    }
    let txt = dir.join("summary.txt");
    output::write_atomically(&txt, text.as_bytes(), "the summary")?;
    let json = dir.join("summary.json");
    output::write_to(&json, "the summary", |w| {
        match &esc {
            None => write_summary_json(s, w)?,
            Some(e) => {
                let mut v = serde_json::to_value(s)?;
                add_escape_json(&mut v, e);
                serde_json::to_writer_pretty(&mut *w, &v)?;
                writeln!(w)?;
            }
        }
        Ok(())
    })?;
    Ok([txt, json])
}

/// Records `tm-small-objects` in heap and in stack mode into `dir` with `record` (workload,
/// arguments, profile); returns the two scenarios (heap first: the baseline) and the files
/// written.
#[allow(clippy::type_complexity)]
pub(super) fn heap_vs_stack(
    dir: &Path,
    record: &mut dyn FnMut(&str, &[OsString], &Path) -> anyhow::Result<(ExitStatus, Profile)>,
) -> anyhow::Result<(Vec<ScenarioInput>, Vec<PathBuf>)> {
    let mut scenarios = Vec::new();
    let mut written = Vec::new();
    for mode in ["heap", "stack"] {
        eprintln!(
            "tidemark: recording small-objects --mode {mode} for the heap vs stack comparison"
        );
        let profile = dir.join(format!("small-objects-{mode}.tmk"));
        let truth = dir.join(format!("small-objects-{mode}.truth.json"));
        let args: Vec<OsString> = vec![
            "--mode".into(),
            mode.into(),
            "--iterations".into(),
            SMALL_OBJECTS_ITERATIONS.to_string().into(),
            "--truth".into(),
            truth.clone().into_os_string(),
        ];
        let (_, p) = record(SMALL_OBJECTS_BIN, &args, &profile)?;
        scenarios.push(ScenarioInput {
            label: format!("small-objects-{mode}"),
            runs: vec![super::report::run_input(&profile, &p)],
        });
        written.push(profile);
        if truth.is_file() {
            written.push(truth);
        }
    }
    Ok((scenarios, written))
}
