//! `tidemark run`: launch a program with the recorder preloaded, then finish its profile.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command as Process, ExitStatus};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::SystemTime;

use anyhow::{anyhow, bail, Context as _};

use super::checks;
use super::output;
use super::{
    AllocatorArg, RunArgs, DEFAULT_WORKLOAD_DIR, DEFAULT_WORKLOAD_DURATION_MS, EXIT_ERROR,
};
use crate::analysis::summary;
use crate::load::StderrProgress;
use crate::load::{load_path, LoadOptions};
use crate::model::Profile;
use crate::render::units::{bytes, duration_ms};
use crate::render::{flamegraph_svg, summary_text, write_summary_json, Metric};
use crate::symbolize::embed_symbols_with_progress;

/// File name of the recorder library looked up next to the `tidemark` executable.
pub const PRELOAD_LIB: &str = "libtidemark_preload.so";
/// The built-in workload's binary (from the fixtures crate), next to the `tidemark` executable.
pub const WORKLOAD_BIN: &str = "tm-alloc-without-free";

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

/// Finds `name` next to the running `tidemark` executable, or one directory up (tests run from
/// `target/<profile>/deps`).
pub fn find_beside_exe(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    let found = [Some(dir), dir.parent()]
        .into_iter()
        .flatten()
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    found
}

fn preload_library() -> anyhow::Result<PathBuf> {
    find_beside_exe(PRELOAD_LIB).ok_or_else(|| {
        let dir = std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(Path::to_path_buf))
            .unwrap_or_default();
        anyhow!(
            "cannot find {PRELOAD_LIB} next to tidemark (looked in {} and its parent); build it \
             with `cargo build --release` in the tidemark workspace and run target/release/tidemark",
            dir.display()
        )
    })
}

/// Resolves a command name like the shell: a path when it contains `/`, else the first
/// executable match on `PATH`.
pub(crate) fn resolve_command(name: &OsStr) -> anyhow::Result<PathBuf> {
    if name.as_bytes().contains(&b'/') {
        let p = PathBuf::from(name);
        if !p.exists() {
            bail!("{}: no such file", p.display());
        }
        if p.is_dir() {
            bail!("{} is a directory, not a program", p.display());
        }
        return Ok(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| OsString::from("/usr/bin:/bin"));
    for dir in std::env::split_paths(&path) {
        let cand = dir.join(name);
        if let Ok(m) = fs::metadata(&cand) {
            if m.is_file() && m.mode() & 0o111 != 0 {
                return Ok(cand);
            }
        }
    }
    bail!(
        "command not found: {} (searched PATH); give a path such as ./{}",
        name.to_string_lossy(),
        name.to_string_lossy()
    )
}

/// Refuses programs that ignore `LD_PRELOAD`: statically linked executables (no program
/// interpreter) and setuid/setgid ones.
pub(crate) fn check_preloadable(exe: &Path) -> anyhow::Result<()> {
    let meta = fs::metadata(exe).with_context(|| format!("cannot inspect {}", exe.display()))?;
    // SAFETY: geteuid/getegid have no preconditions and cannot fail.
    let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let setuid = meta.mode() & 0o4000 != 0 && meta.uid() != euid;
    let setgid = meta.mode() & 0o2000 != 0 && meta.gid() != egid;
    if setuid || setgid {
        bail!(
            "{} is set{}id: the dynamic loader ignores LD_PRELOAD for it, so tidemark cannot \
             record it. Profile a copy without the set{}id bit, or build the program with the \
             in-process recorder (#[global_allocator] static A: tidemark::Tracking<System> = ...; \
             see docs/usage.md)",
            exe.display(),
            if setuid { "u" } else { "g" },
            if setuid { "u" } else { "g" },
        );
    }
    let file = File::open(exe).with_context(|| format!("cannot open {}", exe.display()))?;
    // SAFETY: read-only map used only within this function; see symbolize::debuginfo.
    let map = unsafe { memmap2::Mmap::map(&file) }
        .with_context(|| format!("cannot read {}", exe.display()))?;
    if map.len() < 4 || &map[..4] != b"\x7fELF" {
        // Scripts and other formats: their interpreter is what runs; let the loader decide.
        return Ok(());
    }
    if !has_interpreter(&map) {
        bail!(
            "{} is statically linked (it has no program interpreter), so LD_PRELOAD cannot see \
             its allocations. Link the in-process recorder instead: #[global_allocator] static \
             A: tidemark::Tracking<System> = ...; (see docs/usage.md)",
            exe.display()
        );
    }
    Ok(())
}

/// True when an ELF image has a `PT_INTERP` program header (it is dynamically linked).
/// Unparseable files count as dynamic: the loader will say what is wrong with them.
pub(crate) fn has_interpreter(data: &[u8]) -> bool {
    use object::elf::PT_INTERP;
    use object::read::elf::{ElfFile32, ElfFile64, ProgramHeader};
    use object::Endianness;
    if let Ok(f) = ElfFile64::<Endianness>::parse(data) {
        let e = f.endian();
        return f
            .elf_program_headers()
            .iter()
            .any(|ph| ph.p_type(e) == PT_INTERP);
    }
    if let Ok(f) = ElfFile32::<Endianness>::parse(data) {
        let e = f.endian();
        return f
            .elf_program_headers()
            .iter()
            .any(|ph| ph.p_type(e) == PT_INTERP);
    }
    true
}

/// Checks that the profile can be written at `path` and returns the temporary path the recorder
/// writes instead; [`finish_profile`] renames it onto `path` once the run is over (see
/// [`super::output`]). Nothing at `path` is touched here: a special file or a symbolic link there
/// is refused, a regular file is replaced only at the end.
fn prepare_output(path: &Path) -> anyhow::Result<PathBuf> {
    output::check_target(path, "the profile")?;
    let tmp = output::temp_path(path, ".tmk");
    // Probe the directory with the temporary name itself; the recorder creates it again with
    // O_EXCL, so the name must be free when the program starts.
    let probe = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .with_context(|| {
            format!(
                "cannot write the profile {}; check that the directory exists and is writable, \
                 or choose another -o",
                path.display()
            )
        })?;
    drop(probe);
    fs::remove_file(&tmp).with_context(|| format!("cannot remove {}", tmp.display()))?;
    Ok(tmp)
}

/// The environment of a recorded child.
pub(crate) fn recorder_env(
    preload: &Path,
    output: &Path,
    interval_ms: u64,
    unwind: &str,
    existing_preload: Option<&OsStr>,
) -> Vec<(&'static str, OsString)> {
    let mut ld = preload.as_os_str().to_owned();
    if let Some(old) = existing_preload.filter(|o| !o.is_empty()) {
        ld.push(":");
        ld.push(old);
    }
    // The recorder expands `%p`/`%e` in TIDEMARK_OUTPUT; `-o` is a plain path, so `%` is escaped.
    let mut out = OsString::new();
    for part in output
        .as_os_str()
        .as_bytes()
        .split(|&b| b == b'%')
        .enumerate()
    {
        if part.0 > 0 {
            out.push("%%");
        }
        out.push(OsStr::from_bytes(part.1));
    }
    vec![
        ("LD_PRELOAD", ld),
        ("TIDEMARK_OUTPUT", out),
        ("TIDEMARK_INTERVAL_MS", interval_ms.to_string().into()),
        ("TIDEMARK_UNWIND", unwind.into()),
    ]
}

/// The child being waited for, for [`forward_signal`].
static CHILD_PID: AtomicI32 = AtomicI32::new(0);

/// Passes SIGTERM/SIGHUP on to the child, so `kill <tidemark>` or `timeout` stop the program and
/// tidemark still finishes its profile.
extern "C" fn forward_signal(sig: libc::c_int) {
    let pid = CHILD_PID.load(Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe; the pid is our own child, which we have not reaped.
        unsafe { libc::kill(pid, sig) };
    }
}

/// While the child runs: SIGINT and SIGQUIT are ignored (the terminal sends them to the child
/// too), SIGTERM and SIGHUP are forwarded to the child; the old dispositions come back on drop.
struct ChildSignals {
    old: Vec<(libc::c_int, libc::sighandler_t)>,
}

impl ChildSignals {
    fn new(child_pid: u32) -> Self {
        CHILD_PID.store(child_pid as i32, Ordering::Relaxed);
        let forward = forward_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        let plan = [
            (libc::SIGINT, libc::SIG_IGN),
            (libc::SIGQUIT, libc::SIG_IGN),
            (libc::SIGTERM, forward),
            (libc::SIGHUP, forward),
        ];
        let old = plan
            .iter()
            // SAFETY: the handlers are SIG_IGN or `forward_signal`, which only does
            // async-signal-safe work; the previous handlers are restored in drop.
            .map(|&(sig, handler)| (sig, unsafe { libc::signal(sig, handler) }))
            .collect();
        ChildSignals { old }
    }
}

impl Drop for ChildSignals {
    fn drop(&mut self) {
        for &(sig, handler) in &self.old {
            // SAFETY: restores the disposition saved in `new`.
            unsafe { libc::signal(sig, handler) };
        }
        CHILD_PID.store(0, Ordering::Relaxed);
    }
}

/// Runs `exe` with `argv` (argv[0] included) under the recorder.
fn launch(
    exe: &Path,
    argv: &[OsString],
    env: &[(&'static str, OsString)],
) -> anyhow::Result<ExitStatus> {
    let mut cmd = Process::new(exe);
    if let Some(a0) = argv.first() {
        cmd.arg0(a0);
    }
    cmd.args(argv.iter().skip(1));
    for (k, v) in env {
        cmd.env(k, v);
    }
    // SAFETY: the closure runs in the forked child before exec and only makes one syscall
    // (prctl is async-signal-safe) without allocating.
    unsafe {
        cmd.pre_exec(|| {
            // If tidemark dies (SIGKILL from a test harness or the OOM killer), the command gets
            // SIGTERM instead of running on unobserved.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    // ETXTBSY: the program was just written (a build, a copy) and a process forked meanwhile
    // still holds the writing descriptor until it execs; that lasts milliseconds.
    let mut attempt = 0u64;
    let mut child = loop {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && attempt < 8 => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(10 * attempt));
            }
            r => break r.with_context(|| format!("cannot start {}", exe.display()))?,
        }
    };
    let _signals = ChildSignals::new(child.id());
    let status = child
        .wait()
        .with_context(|| format!("lost track of {}", exe.display()))?;
    Ok(status)
}

/// The shell's convention: the exit code, or 128 + the signal that killed the process.
pub(crate) fn exit_code(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(c), _) => (c & 0xff) as u8,
        (None, Some(sig)) => (128 + sig).min(255) as u8,
        (None, None) => EXIT_ERROR,
    }
}

fn describe_status(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        _ => "ended".to_owned(),
    }
}

/// Profiles written by child processes (and programs the command `exec`s, which find the first
/// name taken): `<stem>.<pid>.tmk` or `<stem>.<pid>.<n>.tmk` beside `profile`, modified since
/// `since`.
pub(crate) fn child_profiles(profile: &Path, since: SystemTime) -> Vec<PathBuf> {
    let Some(stem) = profile
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
    else {
        return Vec::new();
    };
    let dir = match profile.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let Ok(entries) = fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(mid) = name
                .strip_prefix(&stem)
                .and_then(|r| r.strip_prefix('.'))
                .and_then(|r| r.strip_suffix(".tmk"))
            else {
                return false;
            };
            let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
            let numbered = match mid.split_once('.') {
                Some((pid, n)) => digits(pid) && digits(n),
                None => digits(mid),
            };
            numbered
                && e.metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t >= since)
        })
        .map(|e| {
            if profile.parent().is_some_and(|d| !d.as_os_str().is_empty()) {
                e.path()
            } else {
                PathBuf::from(e.file_name())
            }
        })
        .collect();
    out.sort();
    out
}

/// Default `-o`: `tidemark.<exe name>.<tidemark's pid>.tmk`.
fn default_output(exe: &Path) -> PathBuf {
    let name = exe
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "program".to_owned());
    PathBuf::from(format!("tidemark.{name}.{}.tmk", std::process::id()))
}

/// Recorder settings beyond output, interval and unwinding: limit, trace, allocator.
pub(crate) fn extra_env(a: &RunArgs) -> anyhow::Result<Vec<(&'static str, OsString)>> {
    let mut env = Vec::new();
    if let Some(limit) = a.limit {
        env.push(("TIDEMARK_LIMIT_BYTES", limit.to_string().into()));
    }
    if a.trace {
        env.push(("TIDEMARK_TRACE", "1".into()));
    }
    match a.allocator {
        AllocatorArg::System => {
            if a.malloc_conf.is_some() {
                bail!("--malloc-conf sets jemalloc options: add --allocator jemalloc");
            }
            env.push(("TIDEMARK_ALLOCATOR", "glibc".into()));
        }
        AllocatorArg::Jemalloc => {
            env.push(("TIDEMARK_ALLOCATOR", "jemalloc".into()));
            if let Some(conf) = &a.malloc_conf {
                env.push(("TIDEMARK_MALLOC_CONF", conf.into()));
            }
        }
    }
    Ok(env)
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
        return run_workload(a);
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
    finish_outputs(output, tmp, started, argv, s.counts.allocations)?;
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

/// The second built-in scenario of the default run: growth that is released (not a leak).
pub const SAWTOOTH_BIN: &str = "tm-sawtooth";

/// Runs `exe` with `argv` under the recorder into `output`, then finishes the profile (symbols,
/// summary); returns the command's exit status and the loaded profile.
fn record_one(
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
fn run_workload(a: &RunArgs) -> anyhow::Result<u8> {
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
        let mut f = output::AtomicOutput::create(&path, "the flamegraph")?;
        flamegraph_svg(&p, metric, false, &mut f)
            .with_context(|| format!("cannot write {}", path.display()))?;
        f.commit()?;
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
    let mut f = output::AtomicOutput::create(&json, "the summary")?;
    write_summary_json(&s, &mut f).with_context(|| format!("cannot write {}", json.display()))?;
    f.commit()?;
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
