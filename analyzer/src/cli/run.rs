//! `tidemark run`: launch a program with the recorder preloaded ([`super::launcher`]), then
//! finish its profile: put it where `-o` says, embed its symbols, print the short summary, list
//! the child processes' profiles. With no command: [`super::demo`].

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::SystemTime;

use anyhow::{bail, Context as _};

use super::checks;
use super::images;
use super::launcher::{
    check_preloadable, child_profiles, describe_status, exit_code, extra_env, launch,
    preload_library, recorder_env, resolve_command,
};
use super::output;
use super::RunArgs;
use crate::analysis::summary;
use crate::embed::Embedder;
use crate::load::{load_path, LoadOptions};
use crate::model::Profile;
use crate::progress::{ProgressSink, StderrProgress};
use crate::render::units::bytes;
use crate::symbolize::Warmed;

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
        let (status, _) = record_one(a, &preload, &exe, &a.command, &output, false, false)?;
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

/// Finishes a run: sorts out the profiles it left ([`images::sort_out`]: the launched process's
/// final image is the profile), embeds their symbols (one progress line), prints the profile's
/// short summary on stderr, then renames the profiles from their temporary names onto `output`
/// and beside it. Only this run's temporary names are read, so the numbers printed are never
/// those of a profile another run wrote to the same `-o`.
fn finish_profile(
    output: &Path,
    tmp: &Path,
    started: SystemTime,
    argv: &[OsString],
    need_profile: bool,
    launched_pid: u32,
    warmed: Warmed,
) -> anyhow::Result<Option<Profile>> {
    let dir = parent_dir(output);
    let disk_full = checks::disk_full(&dir);
    let found = child_profiles(tmp, started);
    let run = images::sort_out(tmp, &found, launched_pid);
    let main = match (&run.main, tmp.exists()) {
        (Some(m), _) => m.path.clone(),
        (None, true) => tmp.to_owned(),
        (None, false) => {
            if let Some(w) = &disk_full {
                eprintln!("tidemark: error: {w}");
            }
            for w in checks::preload_dropped(argv) {
                eprintln!("tidemark: warning: {w}");
            }
            bail!(
                "no profile was written to {}: the recorder did not start in the program (it \
                 may ignore LD_PRELOAD, e.g. a static binary started by a script, or it failed; \
                 see any messages above)",
                output.display()
            );
        }
    };
    // Why the recorder may have stopped early: the disk, or the file size limit.
    let stopped = disk_full.or_else(|| checks::file_size_limit(&main));
    if std::fs::metadata(&main).is_ok_and(|m| m.len() == 0) {
        // Not even the header: nothing to embed symbols into nor to load. The empty file is
        // still this run's: left where the user asked for it.
        if let Some(w) = &stopped {
            eprintln!("tidemark: error: {w}");
        }
        output::persist(&main, output, "the profile")?;
        bail!(
            "the profile {} is empty: the recorder could not write even its header (see the \
             messages above)",
            output.display()
        );
    }
    output::start_writeback(&main);
    let mut embedded = embed_all(output, &main, &run, warmed);
    // The recorder already counted what the summary line says: no need to read the events back
    // (nor, mostly, the rest of the file: the embedding just read it).
    let quick = if need_profile {
        None
    } else {
        embedded
            .main
            .as_ref()
            .and_then(checks::QuickSummary::from_profile)
            .or_else(|| checks::QuickSummary::read(&main))
    };
    crate::load::drop_in_background(embedded.main.take());
    let (allocations, profile) = match quick {
        Some(quick) => {
            quick.print();
            (quick.line.allocations, None)
        }
        None => {
            let (p, allocations) = load_and_report(output, &main, stopped.as_deref())?;
            (allocations, Some(p))
        }
    };
    let counted = Counted {
        allocations,
        cut_short: stopped.is_some(),
    };
    finish_outputs(output, &main, tmp, &run, argv, counted, &embedded)?;
    Ok(profile)
}

/// Loads the finished profile at `main` and prints its summary line, the recorder's messages
/// and its warnings (what `tidemark run` says when the recorder's totals do not suffice); gives
/// the profile and its allocation calls.
fn load_and_report(
    output: &Path,
    main: &Path,
    stopped: Option<&str>,
) -> anyhow::Result<(Profile, u64)> {
    let loaded = load_path(
        main,
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
            if let Some(w) = stopped {
                eprintln!("tidemark: error: {w}");
            }
            output::persist(main, output, "the profile")?;
            return Err(anyhow::Error::new(e)
                .context(format!("the profile {} cannot be loaded", output.display())));
        }
    };
    let s = summary(&p, 0);
    if let Some(t) = &p.truncated {
        // "disk full" or "file size limit": what the message says first.
        let reason = match stopped.and_then(|w| w.split(':').next()) {
            Some(short) => short.to_owned(),
            None => t.reason.clone(),
        };
        eprintln!(
            "tidemark: warning: the profile is truncated ({reason}); numbers cover the recorded \
             part only"
        );
        if let Some(w) = stopped {
            eprintln!("tidemark: warning: {w}");
        }
    }
    checks::RunLine::of(&s).print();
    if let Some(c) = p.trailer.as_deref().and_then(checks::cpu_line) {
        eprintln!("{c}");
    }
    for m in &s.messages {
        eprintln!("tidemark: recorder {}: {}", m.level, m.text);
    }
    for w in checks::stack_warnings(&p) {
        eprintln!("tidemark: warning: {w}");
    }
    Ok((p, s.counts.allocations))
}

/// What the finish knows of the main profile's events.
struct Counted {
    /// Its allocation calls.
    allocations: u64,
    /// The disk or the file size limit stopped the recording (and the user was told).
    cut_short: bool,
}

/// Puts the profile at `main` where the user asked and the run's other profiles beside it, and
/// says what is where, each profile once.
fn finish_outputs(
    output: &Path,
    main: &Path,
    tmp: &Path,
    run: &images::RunProfiles,
    argv: &[OsString],
    counted: Counted,
    embedded: &Embedded,
) -> anyhow::Result<()> {
    let Counted {
        allocations,
        cut_short,
    } = counted;
    output::persist(main, output, "the profile")?;
    match &run.main {
        Some(m) => eprintln!(
            "tidemark: profile written to {}: {}",
            output.display(),
            m.describe()
        ),
        None => eprintln!("tidemark: profile written to {}", output.display()),
    }
    let earlier = images::rename_earlier(output, &run.earlier);
    report_earlier(&run.earlier, &earlier, run.main.as_ref());
    let others: Vec<PathBuf> = run
        .children
        .iter()
        .map(|c| c.path.clone())
        .chain(run.unreadable.iter().cloned())
        .collect();
    let children = output::rename_children(tmp, output, others);
    report_children(&run.children, &children);
    report_running(output, &run.children, &children, &embedded.running);
    if run.earlier.is_empty() {
        // A command that exec'd is the program itself; one that did not may be a wrapper that
        // runs the program as a child.
        busiest_child_note(&run.children, &children, allocations, &embedded.allocations);
    }
    let mut dropped = checks::preload_dropped(argv);
    // No allocation calls because the disk or the file size limit stopped the recording before
    // any: said above already.
    if dropped.is_empty()
        && allocations == 0
        && !cut_short
        && children.is_empty()
        && earlier.is_empty()
    {
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

/// How many profiles of each kind are named one by one; the rest are counted.
const CHILDREN_LISTED: usize = 5;

/// Says which programs the launched process ran before its final image, and where their profiles
/// are.
fn report_earlier(
    earlier: &[images::ProfileFile],
    renamed: &[PathBuf],
    main: Option<&images::ProfileFile>,
) {
    let Some(main) = main.filter(|_| !earlier.is_empty()) else {
        return;
    };
    let chain: Vec<String> = earlier
        .iter()
        .chain(std::iter::once(main))
        .map(images::ProfileFile::program)
        .collect();
    eprintln!(
        "tidemark: pid {} exec'd {} time(s): {}; the profile is the last program's, the earlier \
         ones are beside it:",
        main.pid,
        earlier.len(),
        chain.join(" → ")
    );
    for (image, path) in earlier.iter().zip(renamed).take(CHILDREN_LISTED) {
        eprintln!(
            "tidemark:   {} ({}, {})",
            path.display(),
            image.program(),
            bytes(images::size_bytes(path))
        );
    }
    if earlier.len() > CHILDREN_LISTED {
        eprintln!(
            "tidemark:   ... and {} more beside it",
            earlier.len() - CHILDREN_LISTED
        );
    }
}

/// Lists the other processes' profiles (`renamed`: their final names; the first
/// `children.len()` of them have a readable header), the largest first (a cheap proxy for the
/// most interesting).
fn report_children(children: &[images::ProfileFile], renamed: &[PathBuf]) {
    if renamed.is_empty() {
        return;
    }
    let mut by_size: Vec<(u64, &PathBuf, Option<&images::ProfileFile>)> = renamed
        .iter()
        .enumerate()
        .map(|(i, c)| (images::size_bytes(c), c, children.get(i)))
        .collect();
    by_size.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    eprintln!(
        "tidemark: {} more profile(s) from child processes{}:",
        renamed.len(),
        if renamed.len() > CHILDREN_LISTED {
            ", largest first"
        } else {
            ""
        }
    );
    for (size, c, who) in by_size.iter().take(CHILDREN_LISTED) {
        match who {
            Some(f) => eprintln!(
                "tidemark:   {} ({}, pid {}, {})",
                c.display(),
                f.program(),
                f.pid,
                bytes(*size)
            ),
            None => eprintln!("tidemark:   {} ({})", c.display(), bytes(*size)),
        }
    }
    if renamed.len() > CHILDREN_LISTED {
        eprintln!(
            "tidemark:   ... and {} more beside it",
            renamed.len() - CHILDREN_LISTED
        );
    }
}

/// Says which child profiles did not end with their trailer: a process still running when the
/// command ended (a daemon, a job left in the background) completes its profile when it exits,
/// without embedded symbols, and the programs it starts from then on write profiles under hidden
/// temporary names, which no finish renames; a process already gone was killed before it could
/// finish its profile (`SIGKILL`, the OOM killer), which holds what was recorded until then.
fn report_running(
    output: &Path,
    children: &[images::ProfileFile],
    renamed: &[PathBuf],
    running: &[PathBuf],
) {
    let (alive, gone): (Vec<_>, Vec<_>) = children
        .iter()
        .zip(renamed)
        .filter(|(c, _)| running.contains(&c.path))
        .partition(|(c, _)| process_exists(c.pid));
    if let Some((first, path)) = alive.first() {
        let stem = output
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        eprintln!(
            "tidemark: note: {} child process(es) still running when the command ended (pid {}, \
             {}: {}): a profile is complete once its process exits, without embedded symbols \
             (loading it reads them from the binaries); programs such a process starts from now \
             on write hidden .{stem}.tidemark-….tmk profiles in {}",
            alive.len(),
            first.pid,
            first.program(),
            path.display(),
            parent_dir(output).display()
        );
    }
    for (c, path) in gone {
        eprintln!(
            "tidemark: warning: child process {} ({}) ended without finishing its profile (killed?): \
             {} holds what was recorded until then",
            c.pid,
            c.program(),
            path.display()
        );
    }
}

/// True when a process with this id exists (one that may not be signalled counts).
fn process_exists(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// When a child process made more allocation calls than the profiled process (a wrapper that
/// runs the real program as a child and waits), says which, from the recorders' own totals
/// (`counted`, by the path a profile had when its symbols were embedded; read from the file
/// for the others).
fn busiest_child_note(
    children: &[images::ProfileFile],
    renamed: &[PathBuf],
    allocations: u64,
    counted: &HashMap<PathBuf, u64>,
) {
    let busiest = children
        .iter()
        .zip(renamed)
        .filter_map(|(f, path)| {
            let calls = match counted.get(&f.path) {
                Some(&calls) => Some(calls),
                None => checks::QuickSummary::read(path).map(|q| q.line.allocations),
            };
            calls.map(|calls| (calls, f, path))
        })
        .max_by(|a, b| a.0.cmp(&b.0).then_with(|| b.2.cmp(a.2)));
    if let Some((calls, f, path)) = busiest.filter(|b| b.0 > allocations) {
        eprintln!(
            "tidemark: note: the child process {} made more allocation calls ({}) than the \
             command itself ({}): it is in {}",
            f.describe(),
            crate::render::units::count(calls),
            crate::render::units::count(allocations),
            path.display()
        );
    }
}

/// What [`embed_all`] read: the main profile without its events, and the allocation calls
/// each profile's recorder counted (when its totals stand for it: see
/// [`checks::QuickSummary`]), by path.
struct Embedded {
    main: Option<Profile>,
    allocations: HashMap<PathBuf, u64>,
    /// The other profiles that did not end with their trailer: processes still running.
    running: Vec<PathBuf>,
}

/// Embeds symbols into every profile of the run, with one progress line for all of them: the
/// main one even when truncated, the others only when complete (a child may still be running,
/// and writing it). Failures are warnings: loading symbolizes from the binaries instead. Several
/// profiles share one reader of a debug file read in part and what was named for the ones
/// before ([`Embedder::for_several`]). (Two threads with an embedder each were tried: a make
/// build's finish 0.965× for 1.5× the memory, both opening `cc1` and libc; not kept.)
fn embed_all(output: &Path, main: &Path, run: &images::RunProfiles, warmed: Warmed) -> Embedded {
    let others: Vec<&Path> = run
        .earlier
        .iter()
        .chain(&run.children)
        .map(|f| f.path.as_path())
        .collect();
    let label = match others.len() {
        0 => output.display().to_string(),
        n => format!("{} and {n} more profile(s)", output.display()),
    };
    let mut line = StderrProgress::new(&label);
    let count = 1 + others.len() as u64;
    line.begin("symbolizing", Some(count * OverallProgress::UNITS));
    let mut warnings = Vec::new();
    // The modules opened while the command ran (see `symbolize::prewarm`).
    let mut embedder = Embedder::with_warmed(warmed);
    if !others.is_empty() {
        embedder = embedder.for_several();
    }
    let mut embedded = Embedded {
        main: None,
        allocations: HashMap::new(),
        running: Vec::new(),
    };
    for (index, path) in std::iter::once(main).chain(others).enumerate() {
        let mut progress = OverallProgress {
            line: &mut line,
            index: index as u64,
            total: None,
        };
        let done = if index == 0 {
            embedder.embed_read(path, Some(&mut progress)).map(Some)
        } else {
            embedder.embed_complete(path, Some(&mut progress))
        };
        match done {
            Ok(Some((report, p))) => {
                warnings.extend(report.warnings);
                if let Some(q) = checks::QuickSummary::from_profile(&p) {
                    embedded
                        .allocations
                        .insert(path.to_owned(), q.line.allocations);
                }
                if index == 0 {
                    embedded.main = Some(p);
                }
            }
            Ok(None) => embedded.running.push(path.to_owned()),
            Err(e) => warnings.push(format!(
                "cannot embed symbols into {}: {e}; they are read from the binaries when it is \
                 loaded",
                path.display()
            )),
        }
    }
    // Freeing the opened debug information (libc's inflated sections, a Rust program's
    // indexes) takes a few milliseconds the user would wait for: off the finish's path.
    crate::load::drop_in_background(embedder);
    line.finish();
    for w in merge_hints(warnings) {
        eprintln!("tidemark: warning: {w}");
    }
    embedded
}

/// The warnings of all the profiles of a run, each once; the debug-package hints of one
/// module (one per profile that has its frames: a shell script's many `bash` children) become
/// one hint with their addresses added up.
fn merge_hints(warnings: Vec<String>) -> Vec<String> {
    const MIDDLE: &str = " return address(es) in ";
    let mut hints: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    let mut out: Vec<String> = Vec::new();
    for w in warnings {
        let parsed = w
            .strip_prefix("hint: ")
            .and_then(|r| r.split_once(MIDDLE))
            .and_then(|(n, rest)| Some((n.parse::<u64>().ok()?, rest.to_owned())));
        match parsed {
            Some((n, rest)) => *hints.entry(rest).or_default() += n,
            None => out.push(w),
        }
    }
    out.sort();
    out.dedup();
    out.extend(
        hints
            .into_iter()
            .map(|(rest, n)| format!("hint: {n}{MIDDLE}{rest}")),
    );
    out
}

/// One profile's symbolization as a share of [`embed_all`]'s single progress line.
struct OverallProgress<'a> {
    line: &'a mut StderrProgress,
    /// Which profile (0-based).
    index: u64,
    /// Its own step's total.
    total: Option<u64>,
}

impl OverallProgress<'_> {
    /// Units per profile on the shared line.
    const UNITS: u64 = 1000;
}

impl ProgressSink for OverallProgress<'_> {
    fn begin(&mut self, _step: &str, total: Option<u64>) {
        self.total = total;
        self.line.update(self.index * Self::UNITS);
    }

    fn update(&mut self, done: u64) {
        let share = self
            .total
            .filter(|&t| t > 0)
            .map_or(0, |t| done.min(t) * Self::UNITS / t);
        self.line.update(self.index * Self::UNITS + share);
    }

    fn finish(&mut self) {
        self.line.update((self.index + 1) * Self::UNITS);
    }
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
    escape: bool,
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
    if escape && !a.escape {
        env.push(("TIDEMARK_ESCAPE", "1".into()));
    }
    let started = SystemTime::now();
    let (status, pid, warmed) = launch(exe, argv, &env, &abs_output)?;
    let name = exe.file_name().unwrap_or(exe.as_os_str()).to_string_lossy();
    eprintln!("tidemark: {name} {}", describe_status(status));
    let p = finish_profile(output, &tmp, started, argv, need_profile, pid, warmed)?;
    Ok((status, p))
}

#[cfg(test)]
mod tests {
    use super::merge_hints;

    #[test]
    fn hints_of_one_module_add_up_and_other_warnings_stay_once() {
        let tail = "in /usr/bin/bash have no symbols (frames read bash+0x…): install bash-dbgsym";
        let got = merge_hints(vec![
            format!("hint: 10 return address(es) {tail}"),
            "cannot read /x: gone".to_owned(),
            format!("hint: 32 return address(es) {tail}"),
            "cannot read /x: gone".to_owned(),
            "hint: 3 return address(es) in /usr/bin/env have no symbols".to_owned(),
        ]);
        assert_eq!(
            got,
            vec![
                "cannot read /x: gone".to_owned(),
                format!("hint: 42 return address(es) {tail}"),
                "hint: 3 return address(es) in /usr/bin/env have no symbols".to_owned(),
            ]
        );
    }
}
