//! Shared helpers for the end-to-end tests: where the built artifacts are, scratch directories,
//! running `tidemark run` with a bounded timeout, compiling the C fixtures, and comparing a
//! profile with a fixture's ground truth.
//!
//! The tests use the release artifacts (`target/release/tidemark`, `libtidemark_preload.so`, the
//! fixture binaries) because those are what users run; `scripts/test.sh` builds them first.

// Each test crate uses a different subset of these helpers.
#![allow(dead_code)]

pub mod pprof;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tidemark_analyzer::load::{load_path, LoadOptions};
use tidemark_fixtures::truth::{last_segment, Truth};

/// Longest a recorded fixture run may take before the test kills it and fails (they normally take
/// a few seconds).
pub const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("analyzer crate lives inside the workspace")
        .to_path_buf()
}

/// `target/release` (honouring `CARGO_TARGET_DIR` when it is set).
pub fn release_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| {
            if t.is_absolute() {
                t
            } else {
                workspace_root().join(t)
            }
        })
        .unwrap_or_else(|| workspace_root().join("target"));
    target.join("release")
}

/// A built artifact in `target/release`, or a failure that says how to build it.
pub fn artifact(name: &str) -> PathBuf {
    let path = release_dir().join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build --release --workspace` first (scripts/test.sh does)",
        path.display()
    );
    path
}

/// The `tidemark` binary.
pub fn tidemark() -> PathBuf {
    artifact("tidemark")
}

/// The preload library.
pub fn preload_lib() -> PathBuf {
    artifact("libtidemark_preload.so")
}

/// A source file of the fixtures crate.
pub fn fixture_source(relative: &str) -> PathBuf {
    workspace_root().join("fixtures").join(relative)
}

/// A scratch directory under cargo's per-target temp dir. Removed when dropped, except when the
/// test is failing: then it is kept and its path printed, so the profile can be inspected.
pub struct Scratch {
    path: PathBuf,
}

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("{name}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        Scratch { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept scratch directory {}", self.path.display());
        } else if let Err(e) = fs::remove_dir_all(&self.path) {
            eprintln!("cannot remove {}: {e}", self.path.display());
        }
    }
}

/// What a finished command left behind.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    pub fn describe(&self) -> String {
        format!(
            "status {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status, self.stdout, self.stderr
        )
    }

    /// Fails the test unless the command exited 0.
    pub fn assert_success(&self, what: &str) {
        assert!(self.status.success(), "{what} failed: {}", self.describe());
    }
}

/// Puts the command in a process group of its own, so a timeout can end it with everything it
/// started (see [`wait_bounded`]).
pub fn own_process_group(cmd: &mut Command) -> &mut Command {
    cmd.process_group(0)
}

/// Waits for `child` (started with [`own_process_group`]) at most `timeout`, killing its whole
/// process group when the time is up.
pub fn wait_bounded(child: &mut Child, timeout: Duration, what: &str) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status,
            Ok(None) if Instant::now() >= deadline => {
                // SAFETY: kill(2) on the process group our child leads; the child is not reaped
                // yet, so its id (and the group's) cannot have been reused.
                unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
                let _ = child.wait();
                panic!("{what} did not finish within {timeout:?}; killed it and its children");
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("waiting for {what}: {e}"),
        }
    }
}

/// Runs `cmd` with stdout and stderr captured in files of `scratch`, with a bounded timeout.
pub fn run_bounded(mut cmd: Command, scratch: &Scratch, timeout: Duration) -> Finished {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let out_path = scratch.join(&format!("cmd-{n}.stdout"));
    let err_path = scratch.join(&format!("cmd-{n}.stderr"));
    let what = format!("{cmd:?}");
    own_process_group(&mut cmd)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_path).expect("create stdout file"))
        .stderr(fs::File::create(&err_path).expect("create stderr file"));
    // A program this test process just wrote (a fixture compiled into the scratch directory)
    // can be held open for writing by a child another test thread forked meanwhile, until that
    // child execs: the exec fails with ETXTBSY for that moment. Retried briefly; any other
    // error fails at once.
    let mut tries = 0;
    let mut child = loop {
        match cmd.spawn() {
            Ok(child) => break child,
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 50 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("cannot start {what}: {e}"),
        }
    };
    let status = wait_bounded(&mut child, timeout, &what);
    Finished {
        status,
        stdout: fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: fs::read_to_string(&err_path).unwrap_or_default(),
    }
}

/// Starts `cmd` under a file size limit (`ulimit -f`, `RLIMIT_FSIZE`) of `limit` bytes (the
/// hard limit left unlimited). Its output should go to pipes: the limit applies to every
/// regular file it writes.
pub fn with_file_size_limit(cmd: &mut Command, limit: u64) {
    // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child here.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: limit,
                rlim_max: libc::RLIM_INFINITY,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Runs `tidemark ARGS` and captures its output.
pub fn tidemark_cli<I, S>(args: I, scratch: &Scratch) -> Finished
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(tidemark());
    cmd.args(args).current_dir(scratch.path());
    run_bounded(cmd, scratch, RUN_TIMEOUT)
}

/// A profile recorded by `tidemark run`.
pub struct Recorded {
    pub profile: PathBuf,
    pub run: Finished,
}

/// Records `program ARGS` with `tidemark run -o <scratch>/profile.tmk -- program ARGS`.
pub fn record<S: AsRef<OsStr>>(scratch: &Scratch, program: &Path, args: &[S]) -> Recorded {
    // Checked here so a missing preload is reported as such, not as a failed run.
    preload_lib();
    let out = scratch.join("profile.tmk");
    let mut cmd = Command::new(tidemark());
    cmd.arg("run")
        .arg("-o")
        .arg(&out)
        .arg("--")
        .arg(program)
        .args(args)
        .current_dir(scratch.path());
    let run = run_bounded(cmd, scratch, RUN_TIMEOUT);
    run.assert_success(&format!("tidemark run -- {}", program.display()));
    let profile = find_profile(scratch.path(), "profile");
    Recorded { profile, run }
}

/// The profile `tidemark run -o DIR/STEM.tmk` wrote: `DIR/STEM.tmk` itself, or the single file in
/// `DIR` whose name starts with `STEM` (a per-process name such as `STEM.<pid>.tmk`).
pub fn find_profile(dir: &Path, stem: &str) -> PathBuf {
    let exact = dir.join(format!("{stem}.tmk"));
    if exact.is_file() {
        return exact;
    }
    let candidates: Vec<PathBuf> = list_dir(dir)
        .into_iter()
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(stem))
        })
        .collect();
    match candidates.as_slice() {
        [one] => one.clone(),
        [] => panic!(
            "no profile named {stem}* in {}; it holds {:?}",
            dir.display(),
            list_dir(dir)
        ),
        many => panic!("several profiles in {}: {many:?}", dir.display()),
    }
}

pub fn list_dir(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// A fixture binary of the `tidemark-fixtures` crate, linked (or copied) into `scratch`: a
/// rebuild of `target/release` while the test runs (another `cargo build` in the same tree) then
/// cannot change the binary between recording and symbolizing — the linker and cargo replace the
/// file rather than write into it, so a hard link keeps the old contents.
///
/// A hard link first because a copy holds the new file open for writing: a child that another
/// test thread forks meanwhile inherits that descriptor until it execs, and executing the copy
/// then fails with "Text file busy" (ETXTBSY).
pub fn fixture_bin(name: &str, scratch: &Scratch) -> PathBuf {
    use std::os::unix::fs::MetadataExt;
    let copy = scratch.join(name);
    let src = artifact(name);
    if let (Ok(a), Ok(b)) = (fs::metadata(&src), fs::metadata(&copy)) {
        if (a.dev(), a.ino()) == (b.dev(), b.ino()) {
            // Linked already (asked for twice): copying a file onto itself would empty it.
            return copy;
        }
    }
    if fs::hard_link(&src, &copy).is_err() {
        let _ = fs::remove_file(&copy);
        fs::copy(&src, &copy).unwrap_or_else(|e| {
            panic!("cannot copy {name} into {}: {e}", scratch.path().display())
        });
    }
    copy
}

/// Compiles `fixtures/c/<name>.c` the way the fixtures document (`-O2 -g -fomit-frame-pointer`).
pub fn compile_c(name: &str, scratch: &Scratch, extra: &[&str]) -> PathBuf {
    let src = fixture_source(&format!("c/{name}.c"));
    let exe = scratch.join(name);
    // Libraries (`-l...`) go after the source, where the linker looks for them.
    let (libs, flags): (Vec<&str>, Vec<&str>) = extra.iter().partition(|f| f.starts_with("-l"));
    let out = Command::new("gcc")
        .args(["-O2", "-g", "-fomit-frame-pointer", "-Wall"])
        .args(flags)
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .args(libs)
        .output()
        .unwrap_or_else(|e| panic!("cannot run gcc (scripts/setup.sh installs it): {e}"));
    assert!(
        out.status.success(),
        "gcc failed on {}:\n{}",
        src.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

/// Loads a profile through the library, failing the test with the error.
pub fn load(path: &Path) -> tidemark_analyzer::model::Profile {
    load_path(path, &LoadOptions::default())
        .unwrap_or_else(|e| panic!("loading {}: {e:#}", path.display()))
}

/// Per-function totals of a profile as plain numbers, keyed by function name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub allocations: u64,
    pub allocated_bytes: u64,
    pub leaked_allocations: u64,
    pub leaked_bytes: u64,
    pub temporary_allocations: u64,
}

pub fn function_totals(profile: &tidemark_analyzer::model::Profile) -> BTreeMap<String, Totals> {
    tidemark_analyzer::analysis::function_totals(profile)
        .into_iter()
        .map(|(name, t)| {
            let totals = Totals {
                allocations: t.allocations,
                allocated_bytes: t.allocated_bytes,
                leaked_allocations: t.leaked_allocations,
                leaked_bytes: t.leaked_bytes,
                temporary_allocations: t.temporary_allocations,
            };
            (name, totals)
        })
        .collect()
}

/// Compares every site of `truth` with the profile's per-function totals and fails with a table
/// of every mismatch (site, field, expected, got).
pub fn assert_matches_truth(profile_path: &Path, truth: &Truth) {
    assert_loaded_matches_truth(&load(profile_path), profile_path, truth);
}

/// [`assert_matches_truth`] for a profile already loaded from `profile_path`.
pub fn assert_loaded_matches_truth(
    profile: &tidemark_analyzer::model::Profile,
    profile_path: &Path,
    truth: &Truth,
) {
    assert!(
        profile.truncated.is_none(),
        "{} is truncated ({:?}) after a clean run",
        profile_path.display(),
        profile.truncated
    );
    let totals = function_totals(profile);
    let mut problems = String::new();
    for site in &truth.sites {
        let name = last_segment(&site.function);
        let matches: Vec<(&String, &Totals)> = totals
            .iter()
            .filter(|(f, _)| last_segment(f) == name)
            .collect();
        let got = match matches.as_slice() {
            [] if site.allocations == 0 => Totals::default(),
            [] => {
                let _ = writeln!(
                    problems,
                    "  {name}: expected {} allocations, the profile has no function {name}",
                    site.allocations
                );
                continue;
            }
            [(_, t)] => **t,
            many => {
                let names: Vec<&String> = many.iter().map(|(f, _)| *f).collect();
                let _ = writeln!(problems, "  {name}: several functions match: {names:?}");
                continue;
            }
        };
        let mut check = |field: &str, expected: Option<u64>, got: u64| {
            if let Some(expected) = expected {
                if expected != got {
                    let _ = writeln!(
                        problems,
                        "  {name}.{field}: expected {expected}, got {got} (diff {:+})",
                        got as i128 - expected as i128
                    );
                }
            }
        };
        check("allocations", Some(site.allocations), got.allocations);
        check("allocated_bytes", site.allocated_bytes, got.allocated_bytes);
        check(
            "leaked_allocations",
            Some(site.leaked_allocations),
            got.leaked_allocations,
        );
        check("leaked_bytes", Some(site.leaked_bytes), got.leaked_bytes);
        check(
            "temporary_allocations",
            site.temporary_allocations,
            got.temporary_allocations,
        );
    }
    if !problems.is_empty() {
        let sites: Vec<&str> = truth.sites.iter().map(|s| s.function.as_str()).collect();
        let mut seen = String::new();
        for (f, t) in totals.iter().filter(|(_, t)| t.allocations > 0).take(60) {
            let _ = writeln!(seen, "  {f}: {t:?}");
        }
        panic!(
            "{} does not match the {} truth for {sites:?}:\n{problems}functions in the profile \
             (first 60):\n{seen}",
            profile_path.display(),
            truth.workload
        );
    }
}

/// Reads a truth file, failing the test with the reason.
pub fn read_truth(path: &Path) -> Truth {
    Truth::read(path).unwrap_or_else(|e| panic!("reading truth {}: {e}", path.display()))
}

/// The summary as JSON, the same value `tidemark summary --json` prints.
pub fn summary_json(profile: &tidemark_analyzer::model::Profile, top: usize) -> serde_json::Value {
    serde_json::to_value(tidemark_analyzer::analysis::summary(profile, top))
        .expect("summary serializes")
}

/// A numeric field of a JSON object, failing the test with the object when it is not there.
pub fn field_u64(v: &serde_json::Value, name: &str) -> u64 {
    v.get(name)
        .and_then(serde_json::Value::as_u64)
        .unwrap_or_else(|| panic!("field {name:?} missing or not an unsigned number in {v:#}"))
}

/// A scratch path as `&str` (scratch paths are plain ASCII), for argument lists.
pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("scratch paths are UTF-8")
}
