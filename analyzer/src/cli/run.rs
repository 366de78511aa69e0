//! `tidemark run`: launch a program with the recorder preloaded ([`super::launcher`]), then
//! finish its profile: put it where `-o` says, embed its symbols, print the short summary, list
//! the child processes' profiles. With no command: [`super::demo`].

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::SystemTime;

use anyhow::{bail, Context as _};

use super::checks;
use super::launcher::{
    check_preloadable, child_profiles, describe_status, exit_code, extra_env, launch,
    preload_library, recorder_env, resolve_command,
};
use super::output;
use super::RunArgs;
use crate::analysis::summary;
use crate::embed::embed_symbols_with_progress;
use crate::load::StderrProgress;
use crate::load::{load_path, LoadOptions};
use crate::model::Profile;
use crate::render::units::bytes;

/// Parses an interval: `10ms`, `1s`, `250` (ms). At least 1 ms.
pub fn parse_interval_ms(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000)
    } else {
        (s, 1)
    };
    let n: u64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a duration: write e.g. 10ms, 1s or 250 (ms)"))?;
    let ms = n.saturating_mul(scale);
    if ms == 0 {
        return Err("the interval must be at least 1ms".to_owned());
    }
    Ok(ms)
}

/// Checks that the profile can be written at `path` and returns the temporary path the recorder
/// writes instead; [`finish_profile`] renames it onto `path` once the run is over (see
/// [`super::output`]). Nothing at `path` is touched here: a special file or a symbolic link there
/// is refused, a regular file is replaced only at the end.
fn prepare_output(path: &Path) -> anyhow::Result<PathBuf> {
    output::check_target(path, "the profile")?;
    // The same rule as every other output: missing directories are created.
    output::prepare_dir(path)?;
    let tmp = output::temp_path(path, ".tmk");
    // Probe the directory with the temporary name itself; the recorder creates it again with
    // O_EXCL, so the name must be free when the program starts.
    let probe = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .with_context(|| {
            format!(
                "cannot write the profile {}; check that its directory is writable, or choose \
                 another -o",
                path.display()
            )
        })?;
    drop(probe);
    fs::remove_file(&tmp).with_context(|| format!("cannot remove {}", tmp.display()))?;
    Ok(tmp)
}

/// Default `-o`: `tidemark.<exe name>.<tidemark's pid>.tmk`.
fn default_output(exe: &Path) -> PathBuf {
    let name = exe
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "program".to_owned());
    PathBuf::from(format!("tidemark.{name}.{}.tmk", std::process::id()))
}

/// `base.tmk` → `base.3.tmk` (run 3 of a `--repeat`).
pub(crate) fn numbered(path: &Path, run: u32) -> PathBuf {
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    let name = match path.extension() {
        Some(ext) => format!("{stem}.{run}.{}", ext.to_string_lossy()),
        None => format!("{stem}.{run}"),
    };
    path.with_file_name(name)
}

pub(super) fn run(a: &RunArgs) -> anyhow::Result<u8> {
    if a.command.is_empty() {
        return super::demo::run_workload(a);
    }
    let preload = preload_library()?;
    let exe = resolve_command(&a.command[0])?;
    check_preloadable(&exe)?;
    extra_env(a)?; // option errors before anything runs
    let base = a.output.clone().unwrap_or_else(|| default_output(&exe));
    let mut worst = 0u8;
    for run in 1..=a.repeat {
        let output = if a.repeat > 1 {
            numbered(&base, run)
        } else {
            base.clone()
        };
        if a.repeat > 1 {
            eprintln!("tidemark: run {run} of {}: {}", a.repeat, output.display());
        }
        let (status, _) = record_one(a, &preload, &exe, &a.command, &output, false)?;
        let code = exit_code(status);
        if worst == 0 {
            worst = code;
        }
    }
    if a.repeat > 1 {
        eprintln!(
            "tidemark: {} runs written; compare them with: tidemark report LABEL={} …",
            a.repeat,
            numbered(&base, 0)
                .display()
                .to_string()
                .replace(".0.", ".*.")
        );
    }
    Ok(worst)
}

/// Embeds symbols into the profile the recorder wrote at `tmp`, loads it, prints a short summary
/// on stderr, then renames it (and the child processes' profiles named after it) onto `output`.
/// Only `tmp` is read: its name is this run's own, so the numbers printed are never those of a
/// profile another run wrote to the same `-o`.
fn finish_profile(
    output: &Path,
    tmp: &Path,
    started: SystemTime,
    argv: &[OsString],
    need_profile: bool,
) -> anyhow::Result<Option<Profile>> {
    let dir = parent_dir(output);
    let disk_full = checks::disk_full(&dir);
    if !tmp.exists() {
        if let Some(w) = &disk_full {
            eprintln!("tidemark: error: {w}");
        }
        for w in checks::preload_dropped(argv) {
            eprintln!("tidemark: warning: {w}");
        }
        bail!(
            "no profile was written to {}: the recorder did not start in the program (it may \
             ignore LD_PRELOAD, e.g. a static binary started by a script, or it failed; see any \
             messages above)",
            output.display()
        );
    }
    if let Err(e) = embed_and_warn(tmp, true) {
        // The numbers do not depend on it: loading symbolizes from the binaries instead.
        eprintln!(
            "tidemark: warning: cannot embed symbols into the profile: {e:#}; they are read from \
             the binaries when it is loaded"
        );
    }
    if !need_profile {
        if let Some(quick) = checks::QuickSummary::read(tmp) {
            // The recorder already counted what the summary line says: no need to read the
            // events back.
            quick.print();
            return finish_outputs(output, tmp, started, argv, quick.line.allocations)
                .map(|()| None);
        }
    }
    let loaded = load_path(
        tmp,
        &LoadOptions {
            symbolize: true,
            progress: true,
            ..LoadOptions::default()
        },
    );
    let p = match loaded {
        Ok(p) => p,
        Err(e) => {
            // Still this run's file: leave it where the user asked for it, then say why.
            if let Some(w) = &disk_full {
                eprintln!("tidemark: error: {w}");
            }
            output::persist(tmp, output, "the profile")?;
            return Err(anyhow::Error::new(e)
                .context(format!("the profile {} cannot be loaded", output.display())));
        }
    };
    let s = summary(&p, 0);
    if let Some(t) = &p.truncated {
        let reason = match &disk_full {
            Some(_) => "disk full".to_owned(),
            None => t.reason.clone(),
        };
        eprintln!(
            "tidemark: warning: the profile is truncated ({reason}); numbers cover the recorded \
             part only"
        );
        if let Some(w) = &disk_full {
            eprintln!("tidemark: warning: {w}");
        }
    }
    checks::RunLine::of(&s).print();
    for m in &s.messages {
        eprintln!("tidemark: recorder {}: {}", m.level, m.text);
    }
    for w in checks::stack_warnings(&p) {
        eprintln!("tidemark: warning: {w}");
    }
    finish_outputs(output, tmp, started, argv, s.allocations)?;
    Ok(Some(p))
}

/// Puts the profile at `tmp` (and its children's) where the user asked, embedding the children's
/// symbols, and says what is where.
fn finish_outputs(
    output: &Path,
    tmp: &Path,
    started: SystemTime,
    argv: &[OsString],
    allocations: u64,
) -> anyhow::Result<()> {
    output::persist(tmp, output, "the profile")?;
    eprintln!("tidemark: profile written to {}", output.display());
    let children = output::rename_children(tmp, output, child_profiles(tmp, started));
    for child in &children {
        // A child may still be running: only complete profiles get symbols embedded.
        embed_and_warn(child, false)?;
    }
    report_children(&children);
    let mut dropped = checks::preload_dropped(argv);
    if dropped.is_empty() && allocations == 0 && children.is_empty() {
        dropped.push(checks::NO_EVENTS.to_owned());
    }
    for w in dropped {
        eprintln!("tidemark: warning: {w}");
    }
    eprintln!(
        "tidemark: next: tidemark summary {0}  |  tidemark flamegraph {0}",
        output.display()
    );
    Ok(())
}

/// The directory of `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// How many child profiles are named one by one; the rest are counted.
const CHILDREN_LISTED: usize = 5;

/// Lists child-process profiles, the largest first (a cheap proxy for the most interesting).
fn report_children(children: &[PathBuf]) {
    if children.is_empty() {
        return;
    }
    let mut by_size: Vec<(u64, &PathBuf)> = children
        .iter()
        .map(|c| (fs::metadata(c).map(|m| m.len()).unwrap_or(0), c))
        .collect();
    by_size.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    eprintln!(
        "tidemark: {} more profile(s) from child processes and exec'd programs{}:",
        children.len(),
        if children.len() > CHILDREN_LISTED {
            ", largest first"
        } else {
            ""
        }
    );
    for (size, c) in by_size.iter().take(CHILDREN_LISTED) {
        eprintln!("tidemark:   {} ({})", c.display(), bytes(*size));
    }
    if children.len() > CHILDREN_LISTED {
        eprintln!(
            "tidemark:   ... and {} more beside it",
            children.len() - CHILDREN_LISTED
        );
    }
}

fn embed_and_warn(path: &Path, allow_truncated: bool) -> anyhow::Result<()> {
    if !allow_truncated && !is_complete(path) {
        return Ok(());
    }
    let mut progress = StderrProgress::new(&path.display().to_string());
    let report = embed_symbols_with_progress(path, &mut progress)?;
    let mut warnings = report.warnings;
    warnings.sort();
    warnings.dedup();
    for w in warnings {
        eprintln!("tidemark: warning: {w}");
    }
    Ok(())
}

/// True when the profile at `path` ends with its trailer.
fn is_complete(path: &Path) -> bool {
    let Ok(f) = File::open(path) else {
        return false;
    };
    let Ok(mut r) = tidemark::format::Reader::new(std::io::BufReader::new(f)) else {
        return false;
    };
    while let Ok(Some(_)) = r.next_chunk() {}
    r.truncation().is_none()
}

/// Runs `exe` with `argv` under the recorder into `output`, then finishes the profile (symbols,
/// summary); returns the command's exit status and the loaded profile.
pub(super) fn record_one(
    a: &RunArgs,
    preload: &Path,
    exe: &Path,
    argv: &[OsString],
    output: &Path,
    need_profile: bool,
) -> anyhow::Result<(ExitStatus, Option<Profile>)> {
    let tmp = prepare_output(output)?;
    let abs_output = std::path::absolute(&tmp).unwrap_or_else(|_| tmp.clone());
    let mut env = recorder_env(
        preload,
        &abs_output,
        a.interval,
        a.unwind.env_value(),
        std::env::var_os("LD_PRELOAD").as_deref(),
    );
    env.extend(extra_env(a)?);
    let started = SystemTime::now();
    let status = launch(exe, argv, &env)?;
    let name = exe.file_name().unwrap_or(exe.as_os_str()).to_string_lossy();
    eprintln!("tidemark: {name} {}", describe_status(status));
    let p = finish_profile(output, &tmp, started, argv, need_profile)?;
    Ok((status, p))
}
