//! Hostile but ordinary programs (issue 9): thread bursts, signal handlers that allocate, every
//! way out of a process (exit paths, exec, crashes), programs that bring their own allocator,
//! fork/vfork/posix_spawn/system/pipelines, huge blocks and many tiny ones.
//!
//! Each C fixture in `fixtures/c/` counts what it does and writes that ground truth. Every case
//! runs the program twice, natively and under the preload library (`LD_PRELOAD`, the way
//! `tidemark run` starts it), and checks:
//! - the program's exit status (code or signal) and stdout are the same in both runs;
//! - the program counted the same both times (its own truth);
//! - the profile of the program's process matches that truth per call site, exactly;
//! - the profile is not truncated, and `dropped_events` is what the case allows (0 unless said).

mod support;

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

use support::*;
use tidemark_fixtures::truth::Truth;

/// One program run natively and under the recorder.
struct Runs {
    scratch: Scratch,
    native: Finished,
    recorded: Finished,
    /// Profiles the recorded run wrote (one per process image).
    profiles: Vec<PathBuf>,
    native_truth: Option<Truth>,
    recorded_truth: Option<Truth>,
}

/// Environment that records `cmd` with the preload library, profiles going to `dir`. The
/// preload goes first in `LD_PRELOAD`, ahead of what the case preloads (as `tidemark run` does).
fn preload_env(cmd: &mut Command, dir: &Path, env: &[(&str, &str)]) {
    let mut ld = preload_lib().into_os_string();
    if let Some((_, more)) = env.iter().find(|(k, _)| *k == "LD_PRELOAD") {
        ld.push(":");
        ld.push(more);
    }
    cmd.env("LD_PRELOAD", ld)
        .env("TIDEMARK_OUTPUT", dir.join("profile.%p.tmk"));
}

/// Runs `exe ARGS --truth T` natively and under the preload; `env` is set for both runs.
fn run_both(name: &str, exe_src: &Path, args: &[&str], env: &[(&str, &str)]) -> Runs {
    let scratch = Scratch::new(name);
    let exe = scratch.join(
        exe_src
            .file_name()
            .and_then(OsStr::to_str)
            .expect("plain file name"),
    );
    std::fs::copy(exe_src, &exe).expect("copy the fixture into the scratch directory");
    let rec_dir = scratch.join("rec");
    std::fs::create_dir_all(&rec_dir).expect("create the profile directory");
    let native_truth = scratch.join("native-truth.json");
    let recorded_truth = scratch.join("recorded-truth.json");

    let mut cmd = Command::new(&exe);
    cmd.args(args).arg("--truth").arg(&native_truth);
    cmd.current_dir(scratch.path());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let native = run_bounded(cmd, &scratch, RUN_TIMEOUT);

    let mut cmd = Command::new(&exe);
    cmd.args(args).arg("--truth").arg(&recorded_truth);
    cmd.current_dir(scratch.path());
    for (k, v) in env {
        cmd.env(k, v);
    }
    preload_env(&mut cmd, &rec_dir, env);
    let recorded = run_bounded(cmd, &scratch, RUN_TIMEOUT);

    let read = |p: &Path| p.is_file().then(|| read_truth(p));
    Runs {
        native_truth: read(&native_truth),
        recorded_truth: read(&recorded_truth),
        profiles: list_dir(&rec_dir),
        native,
        recorded,
        scratch,
    }
}

fn describe_status(s: &ExitStatus) -> String {
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exit code {c}"),
        (_, Some(sig)) => format!("signal {sig}"),
        _ => format!("{s}"),
    }
}

impl Runs {
    /// The program behaved the same with and without the recorder.
    fn assert_unchanged(&self) {
        assert_eq!(
            describe_status(&self.native.status),
            describe_status(&self.recorded.status),
            "the recorder changed the exit status\nnative: {}\nrecorded: {}",
            self.native.describe(),
            self.recorded.describe()
        );
        assert_eq!(
            self.native.stdout,
            self.recorded.stdout,
            "the recorder changed stdout\nrecorded: {}",
            self.recorded.describe()
        );
        assert!(
            !self.recorded.stderr.contains("check failed"),
            "the program's own checks failed under the recorder: {}",
            self.recorded.describe()
        );
    }

    /// The truth the recorded run wrote, which must equal the native run's when `same` is set
    /// (deterministic programs).
    fn truth(&self, same: bool) -> &Truth {
        let t = self.recorded_truth.as_ref().unwrap_or_else(|| {
            panic!(
                "the recorded run wrote no truth file: {}",
                self.recorded.describe()
            )
        });
        if same {
            assert_eq!(
                self.native_truth.as_ref(),
                Some(t),
                "native and recorded runs counted differently"
            );
        }
        t
    }

    /// The profile whose header names `exe_name` as the executable.
    fn profile_of(&self, exe_name: &str) -> PathBuf {
        let found: Vec<&PathBuf> = self
            .profiles
            .iter()
            .filter(|p| {
                let file = std::fs::File::open(p).expect("open a profile");
                let reader = tidemark::format::Reader::new(std::io::BufReader::new(file))
                    .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                Path::new(&reader.header().exe)
                    .file_name()
                    .is_some_and(|n| n == exe_name)
            })
            .collect();
        match found.as_slice() {
            [one] => (*one).clone(),
            other => panic!(
                "expected one profile of {exe_name} in {}, found {other:?} among {:?}\n{}",
                self.scratch.path().display(),
                self.profiles,
                self.recorded.describe()
            ),
        }
    }
}

/// Checks `profile` against `truth` (exact per site, not truncated) and returns its dropped
/// event count.
fn check_profile(profile: &Path, truth: &Truth) -> u64 {
    let loaded = load(profile);
    assert_loaded_matches_truth(&loaded, profile, truth);
    loaded.totals.dropped_events
}

/// Whether a profile ended with a trailer, and its dropped-event count, read with the format
/// reader alone (no symbolization: cheap for the child processes' profiles).
fn complete_and_dropped(profile: &Path) -> (bool, u64) {
    let file = std::fs::File::open(profile).expect("open a profile");
    let mut reader = tidemark::format::Reader::new(std::io::BufReader::new(file))
        .unwrap_or_else(|e| panic!("{}: {e}", profile.display()));
    let mut dropped = 0;
    reader
        .for_each_record(|r| {
            if let tidemark::format::Record::Trailer { values } = r {
                dropped = values
                    .iter()
                    .find(|(k, _)| *k == tidemark::format::trailer_key::DROPPED_EVENTS)
                    .map_or(0, |(_, v)| *v);
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{}: {e}", profile.display()));
    (reader.truncation().is_none(), dropped)
}

fn compile(name: &str, flags: &[&str]) -> (Scratch, PathBuf) {
    let scratch = Scratch::new(&format!("build-{name}"));
    let exe = compile_c(name, &scratch, flags);
    (scratch, exe)
}

/// A daemon's start: stderr pointed at a log of its own, every descriptor above stderr closed
/// (one by one, or by `close_range`), then files of its own opened onto the lowest numbers. The
/// profile's descriptor is among those closed: the recorder must not write into the program's
/// file (its number now), must not close it, and opens the profile again; its `--trace` lines
/// stay out of the program's log; the program's output and the profile are exact.
#[test]
fn a_program_that_closes_every_descriptor_keeps_its_files_and_an_exact_profile() {
    let (_b, exe) = compile("closefds", &["-pthread"]);
    for mode in ["loop", "range"] {
        // `--trace` lines every second: none may land in the program's log on descriptor 2.
        let runs = run_both(
            &format!("closefds-{mode}"),
            &exe,
            &[mode],
            &[("TIDEMARK_TRACE", "1")],
        );
        runs.assert_unchanged();
        assert!(
            runs.recorded.stdout.contains("own file on fd 3")
                && runs
                    .recorded
                    .stdout
                    .contains("written before the allocations\nwritten after the allocations\n")
                && runs
                    .recorded
                    .stdout
                    .contains("own.log holds 22 bytes:\nlog started\nlog ended\n"),
            "{mode}: {}",
            runs.recorded.describe()
        );
        let truth = runs.truth(true);
        let profile = runs.profile_of("closefds");
        let dropped = check_profile(&profile, truth);
        assert_eq!(dropped, 0, "{mode}: events dropped");
        let p = load(&profile);
        assert!(
            p.messages.iter().any(|m| m.text.contains("reopened")),
            "{mode}: {:?}",
            p.messages
        );
    }
}

/// A shell script that opens its own descriptor 3 (`exec 3>file`, the usual first free number,
/// where the profile's descriptor used to be): its file holds what it wrote, nothing of the
/// profile, and the profile is complete.
#[test]
fn a_script_writing_to_its_own_descriptor_3_keeps_its_file() {
    let s = Scratch::new("bash-fd3");
    let script = "exec 3>own.txt; x=; for i in $(seq 3000); do x=\"$x$i\"; done; \
                  echo \"written on 3\" >&3; exec 3>&-; echo done";
    let rec = record(&s, Path::new("/bin/bash"), &["-c", script]);
    assert!(rec.run.stdout.contains("done"), "{}", rec.run.describe());
    let own = std::fs::read(s.join("own.txt")).expect("the script's file");
    assert_eq!(
        String::from_utf8_lossy(&own),
        "written on 3\n",
        "the script's file holds other bytes"
    );
    let (complete, dropped) = complete_and_dropped(&rec.profile);
    assert!(complete && dropped == 0, "{}", rec.run.describe());
}

/// Under a file size limit (`ulimit -f`): a write past it raises SIGXFSZ, which kills the
/// process. The profile's writes must fail instead (recording stops, or never starts when even
/// the header does not fit) and the program run as it runs without the recorder.
#[test]
fn a_file_size_limit_stops_the_recording_not_the_program() {
    let (_b, exe) = compile("burst", &["-pthread"]);
    let s = Scratch::new("fsize");
    let run = |limit: Option<u64>, pairs: &str| {
        let mut cmd = Command::new(&exe);
        // 4 × 200,000 pairs, 1.6 M events: 19–55 KB of profile, past the second limit below
        // whatever the threads' interleaving (4 × 50,000 wrote 8–17 KB: sometimes under 8 KiB).
        cmd.args(["4", pairs]).current_dir(s.path());
        if let Some(limit) = limit {
            preload_env(&mut cmd, s.path(), &[]);
            with_file_size_limit(&mut cmd, limit);
        }
        // Pipes, not files, for its output: the limit applies to every regular file.
        cmd.output().expect("the fixture runs")
    };
    // 0: not even the header fits; 4 KiB: the header and its module map, not the events;
    // 64 KiB: events, encoded by then on the writer's encoding thread (16 M events, whose
    // chunks are handed over a megabyte at a time), whose failed write stops the recording.
    for (limit, pairs) in [(0, "200000"), (4096, "200000"), (65536, "2000000")] {
        let native = run(None, pairs);
        assert!(native.status.success(), "{native:?}");
        let recorded = run(Some(limit), pairs);
        let stderr = String::from_utf8_lossy(&recorded.stderr);
        assert_eq!(
            describe_status(&native.status),
            describe_status(&recorded.status),
            "limit {limit}: {stderr}"
        );
        assert_eq!(native.stdout, recorded.stdout, "limit {limit}");
        assert!(stderr.contains("File too large"), "limit {limit}: {stderr}");
    }
}

#[test]
fn thousand_threads_released_together_lose_nothing() {
    let (_b, exe) = compile("burst", &["-pthread"]);
    let runs = run_both("burst", &exe, &["1000", "1000"], &[]);
    runs.assert_unchanged();
    let truth = runs.truth(true);
    let site = |f: &str| truth.sites.iter().find(|s| s.function == f).unwrap();
    assert_eq!(site("burst_alloc").allocations, 1_000_000);
    assert_eq!(site("burst_leak").leaked_allocations, 1_000);
    let dropped = check_profile(&runs.profile_of("burst"), truth);
    assert_eq!(dropped, 0, "no event may be dropped");
}

/// Runs `fixtures/c/exits.c` in each mode: the profile is complete (trailer) and exact.
fn check_exit_modes(modes: &[&str]) {
    let (_b, exe) = compile("exits", &[]);
    for mode in modes {
        let runs = run_both(&format!("exits-{mode}"), &exe, &[mode], &[]);
        runs.assert_unchanged();
        let truth = runs.truth(true);
        let after = truth
            .sites
            .iter()
            .find(|s| s.function == "after_failed")
            .unwrap();
        assert_eq!(
            after.allocations,
            if mode.starts_with("failed_") { 25 } else { 0 }
        );
        let profile = runs.profile_of("exits");
        let dropped = check_profile(&profile, truth);
        assert_eq!(dropped, 0, "{mode}: events dropped");
        if mode.starts_with("exec") || mode.ends_with("execve") {
            assert!(
                runs.recorded.stdout.contains("exec ok"),
                "{mode}: {}",
                runs.recorded.describe()
            );
            let echo = runs.profile_of("echo");
            assert!(complete_and_dropped(&echo).0, "{mode}: echo's profile");
        }
    }
}

#[test]
fn exits_without_atexit_leave_a_complete_profile() {
    check_exit_modes(&["exit", "_exit", "_Exit", "quick_exit", "exit_group"]);
}

#[test]
fn every_exec_call_finishes_the_profile_first() {
    check_exit_modes(&[
        "execl",
        "execle",
        "execlp",
        "execv",
        "execve",
        "execvp",
        "execvpe",
        "syscall_execve",
        "fexecve",
    ]);
}

/// A failed exec keeps recording into the same profile, which stays exact.
#[test]
fn a_failed_exec_resumes_recording() {
    check_exit_modes(&["failed_execv", "failed_execl", "failed_execvp"]);
}

/// A failed assert, abort and a segfault: the profile holds everything, and the program dies of
/// the same signal.
#[test]
fn crashes_leave_a_complete_profile() {
    check_exit_modes(&["abort", "assert", "segv"]);
}

/// A shared library of the system (an allocator the tests need), or a failure saying how to
/// install it.
fn system_lib(file: &str) -> String {
    let dirs = [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib64",
        "/usr/lib",
    ];
    dirs.iter()
        .map(|d| Path::new(d).join(file))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{file} is not installed: run scripts/setup.sh"))
        .to_string_lossy()
        .into_owned()
}

/// Runs `fixtures/c/foreign.c` expecting `allocator` to serve it, with `env`.
fn check_foreign(case: &str, exe: &Path, allocator: &str, env: &[(&str, &str)]) {
    let runs = run_both(case, exe, &[allocator], env);
    runs.assert_unchanged();
    let truth = runs.truth(true);
    let profile = runs.profile_of(exe.file_name().unwrap().to_str().unwrap());
    assert_eq!(check_profile(&profile, truth), 0, "{case}: events dropped");
    assert_eq!(
        load(&profile).header.allocator,
        allocator,
        "{case}: the header names the wrong allocator"
    );
}

#[test]
fn programs_keep_the_allocator_they_bring() {
    // Linked in.
    system_lib("libjemalloc.so");
    let (_b, linked) = compile("foreign", &["-DLINKED_JEMALLOC", "-ljemalloc", "-ldl"]);
    check_foreign("foreign-linked-jemalloc", &linked, "jemalloc", &[]);
    // Preloaded after the recorder, and none at all.
    let (_b2, exe) = compile("foreign", &["-ldl"]);
    check_foreign("foreign-glibc", &exe, "glibc", &[]);
    // A non-PIE executable holding malloc's address (a canonical PLT entry, as Debian's
    // python3 has) does not define malloc: recorded, and glibc named.
    let (_b3, nonpie) = compile(
        "foreign",
        &["-fno-pic", "-no-pie", "-DTAKE_MALLOC_ADDRESS", "-ldl"],
    );
    check_foreign("foreign-nonpie-malloc-address", &nonpie, "glibc", &[]);
    for (name, file) in [
        ("jemalloc", "libjemalloc.so.2"),
        ("mimalloc", "libmimalloc.so.2"),
        ("tcmalloc", "libtcmalloc.so.4"),
    ] {
        let lib = system_lib(file);
        check_foreign(
            &format!("foreign-preloaded-{name}"),
            &exe,
            name,
            &[("LD_PRELOAD", &lib)],
        );
    }
}

/// Through `tidemark run`, with the user's `LD_PRELOAD` naming the allocator: the recorder goes
/// first, the program keeps the allocator, and the summary names it.
#[test]
fn tidemark_run_keeps_a_preloaded_allocator_and_names_it() {
    let lib = system_lib("libmimalloc.so.2");
    let (_b, exe) = compile("foreign", &["-ldl"]);
    let scratch = Scratch::new("foreign-run");
    let out = scratch.join("p.tmk");
    let mut cmd = Command::new(tidemark());
    cmd.arg("run")
        .arg("-o")
        .arg(&out)
        .arg("--")
        .arg(&exe)
        .arg("mimalloc")
        .env("LD_PRELOAD", &lib)
        .current_dir(scratch.path());
    let run = run_bounded(cmd, &scratch, RUN_TIMEOUT);
    run.assert_success("tidemark run -- foreign mimalloc");
    assert!(
        run.stdout.contains("blocks served by mimalloc"),
        "{}",
        run.describe()
    );
    let summary = tidemark_cli([OsStr::new("summary"), out.as_os_str()], &scratch);
    summary.assert_success("tidemark summary");
    assert!(
        summary.stdout.contains("allocator    mimalloc"),
        "{}",
        summary.describe()
    );
}

#[test]
fn an_allocator_preloaded_ahead_of_the_recorder_is_reported_not_hidden() {
    let lib = system_lib("libjemalloc.so.2");
    let (_b, exe) = compile("foreign", &["-ldl"]);
    let scratch = Scratch::new("foreign-ahead");
    let rec_dir = scratch.join("rec");
    std::fs::create_dir_all(&rec_dir).unwrap();
    let mut native = Command::new(&exe);
    native.arg("jemalloc").env("LD_PRELOAD", &lib);
    let native = run_bounded(native, &scratch, RUN_TIMEOUT);
    let mut rec = Command::new(&exe);
    let mut ld = std::ffi::OsString::from(&lib);
    ld.push(":");
    ld.push(preload_lib());
    rec.arg("jemalloc")
        .env("LD_PRELOAD", ld)
        .env("TIDEMARK_OUTPUT", rec_dir.join("p.tmk"));
    let rec = run_bounded(rec, &scratch, RUN_TIMEOUT);
    native.assert_success("foreign with jemalloc preloaded");
    rec.assert_success("foreign with jemalloc preloaded ahead of tidemark");
    assert_eq!(native.stdout, rec.stdout);
    assert!(
        rec.stderr.contains("comes before libtidemark_preload.so"),
        "no warning on stderr: {}",
        rec.describe()
    );
    let p = load(&rec_dir.join("p.tmk"));
    assert_eq!(p.header.allocator, "jemalloc");
    assert!(
        p.messages.iter().any(|m| m.text.contains("not recorded")),
        "the profile does not say its malloc calls were not seen: {:?}",
        p.messages
    );
}

/// A signal handler allocating while the thread is inside malloc or the recorder: each of its
/// events is recorded, or counted in `dropped_events` — never lost silently. The handler mallocs
/// and frees within one invocation, so an invocation is either recorded whole or dropped whole
/// (two events).
#[test]
fn allocations_in_signal_handlers_are_recorded_or_counted() {
    let (_b, exe) = compile("signals", &[]);
    let runs = run_both("signals", &exe, &["1000000"], &[]);
    runs.assert_unchanged();
    let mut truth = runs.truth(false).clone();
    let profile_path = runs.profile_of("signals");
    let profile = load(&profile_path);
    let dropped = profile.totals.dropped_events;
    let handler = truth
        .sites
        .iter_mut()
        .find(|s| s.function == "handler_alloc")
        .unwrap();
    let handler = &mut handler.counts;
    assert!(handler.allocations > 0, "the timer never fired");
    assert_eq!(
        dropped % 2,
        0,
        "a handler invocation was split: {dropped} dropped"
    );
    let missed = dropped / 2;
    assert!(
        missed <= handler.allocations,
        "{dropped} events dropped, more than the handler's {} invocations",
        handler.allocations
    );
    // What the profile must hold: every handler invocation that was not counted as dropped.
    handler.allocations -= missed;
    handler.allocated_bytes = handler.allocated_bytes.map(|b| b - 200 * missed);
    assert_matches_truth(&profile_path, &truth);
}

/// The profile written by process `pid`.
fn profile_by_pid(runs: &Runs, pid: u64) -> PathBuf {
    runs.profiles
        .iter()
        .find(|p| {
            let file = std::fs::File::open(p).expect("open a profile");
            tidemark::format::Reader::new(std::io::BufReader::new(file))
                .is_ok_and(|r| u64::from(r.header().pid) == pid)
        })
        .unwrap_or_else(|| {
            panic!(
                "no profile of pid {pid} among {:?}\n{}",
                runs.profiles,
                runs.recorded.describe()
            )
        })
        .clone()
}

/// The truth's counts with the writing process's pid (in "config") taken out.
fn pid_and_counts(t: &Truth) -> (u64, Truth) {
    let pid = t.config["pid"]
        .as_u64()
        .unwrap_or_else(|| panic!("truth without a pid: {t:?}"));
    let mut counts = t.clone();
    counts.config = serde_json::Value::Null;
    (pid, counts)
}

/// Runs `fixtures/c/procs.c` in each mode: every process's profile is complete and exact.
fn check_proc_modes(modes: &[&str]) {
    let (_b, exe) = compile("procs", &["-pthread"]);
    for &mode in modes {
        let runs = run_both(&format!("procs-{mode}"), &exe, &[mode], &[]);
        runs.assert_unchanged();
        let (pid, truth) = pid_and_counts(runs.truth(false));
        let (_, native) = pid_and_counts(runs.native_truth.as_ref().expect("native truth"));
        assert_eq!(
            native, truth,
            "{mode}: native and recorded runs counted differently"
        );
        let profile = profile_by_pid(&runs, pid);
        assert_eq!(check_profile(&profile, &truth), 0, "{mode}: events dropped");
        for p in &runs.profiles {
            assert_eq!(
                complete_and_dropped(p),
                (true, 0),
                "{mode}: {} is truncated or dropped events",
                p.display()
            );
        }
        let site = |t: &Truth, f: &str| {
            t.sites
                .iter()
                .find(|s| s.function == f)
                .unwrap()
                .counts
                .clone()
        };
        match mode {
            "fork_threads" => {
                assert_eq!(site(&truth, "thread_alloc").allocations, 80_000);
                for k in 0..5 {
                    let path = runs.scratch.join(&format!("recorded-truth.json.child{k}"));
                    let (child_pid, child) = pid_and_counts(&read_truth(&path));
                    assert_eq!(site(&child, "child_alloc").leaked_allocations, 6);
                    let child_profile = profile_by_pid(&runs, child_pid);
                    check_profile(&child_profile, &child);
                }
            }
            "huge" => assert_eq!(site(&truth, "huge_alloc").allocated_bytes, Some(2 << 30)),
            "tiny" => assert_eq!(site(&truth, "tiny_alloc").allocations, 10_000_000),
            _ => assert_eq!(site(&truth, "after_spawn").allocations, 10),
        }
    }
}

#[test]
fn fork_while_threads_allocate_gives_every_process_an_exact_profile() {
    check_proc_modes(&["fork_threads"]);
}

#[test]
fn vfork_posix_spawn_system_and_pipelines_match_truth() {
    check_proc_modes(&["vfork_exec", "posix_spawn", "system", "pipeline"]);
}

#[test]
fn gigabyte_blocks_and_ten_million_tiny_allocations_match_truth() {
    check_proc_modes(&["huge", "tiny"]);
}

/// A library's constructor allocates before the recorder starts: every event is in the profile
/// (the freed ones too, beyond any fixed table size), under an explicit
/// `[before tidemark started]` frame rather than a guessed stack, and the program's later frees
/// match.
#[test]
fn allocations_before_the_recorder_started_are_counted_and_labelled() {
    let build = Scratch::new("build-early");
    let src = fixture_source("c/early.c");
    let gcc = |args: &[&OsStr]| {
        let out = Command::new("gcc")
            .args(["-O2", "-g", "-fomit-frame-pointer", "-Wall"])
            .args(args)
            .output()
            .expect("run gcc (scripts/setup.sh installs it)");
        assert!(
            out.status.success(),
            "gcc: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let lib = build.join("libearly.so");
    gcc(&[
        OsStr::new("-shared"),
        OsStr::new("-fPIC"),
        OsStr::new("-DEARLY_LIB"),
        OsStr::new("-o"),
        lib.as_os_str(),
        src.as_os_str(),
    ]);
    let exe = build.join("early");
    gcc(&[
        OsStr::new("-o"),
        exe.as_os_str(),
        src.as_os_str(),
        OsStr::new("-L"),
        build.path().as_os_str(),
        OsStr::new("-learly"),
    ]);
    let lib_dir = build.path().to_str().expect("UTF-8 path");
    let runs = run_both("early", &exe, &[], &[("LD_LIBRARY_PATH", lib_dir)]);
    runs.assert_unchanged();
    let truth = runs.truth(true);
    assert_eq!(truth.sites[0].allocations, 5120);
    let profile = runs.profile_of("early");
    assert_eq!(check_profile(&profile, truth), 0);
}

/// dlopen, allocate at once, dlclose, dlopen another library (often at the same address),
/// allocate at once: each library's allocations carry its own name (module generations, and a
/// stack through a module the recorder did not know yet makes it rebuild its map first).
#[test]
fn dlclosed_and_reloaded_libraries_keep_their_own_names() {
    let s = Scratch::new("dlreuse");
    let exe = compile_c("dlreuse", &s, &["-ldl"]);
    let a = build_plugin(&s, Some("-DPLUGIN_A"), "libplugin_a.so");
    let b = build_plugin(&s, None, "libplugin_b.so");
    let rec = record(&s, &exe, &[a.as_os_str(), b.as_os_str()]);
    assert!(rec.run.stdout.contains("ok"), "{}", rec.run.describe());
    let p = load(&rec.profile);
    assert!(p.truncated.is_none());
    let totals = function_totals(&p);
    let got = |f: &str| totals.get(f).copied().unwrap_or_default();
    assert_eq!(
        (
            got("plugin_a_alloc").allocations,
            got("plugin_a_alloc").allocated_bytes
        ),
        (10, 1230),
        "{totals:#?}"
    );
    assert_eq!(
        (
            got("plugin_b_alloc").allocations,
            got("plugin_b_alloc").allocated_bytes
        ),
        (7, 539),
        "{totals:#?}"
    );
    assert_eq!(got("plugin_a_alloc").leaked_allocations, 10);
    assert_eq!(got("plugin_b_alloc").leaked_allocations, 7);

    // A read for return addresses only (what embedding symbols makes, each stack's own frames
    // decoded without its outer ones, those of a base of another generation included) finds
    // the addresses of the whole load, in the same order.
    let opts = tidemark_analyzer::load::LoadOptions {
        events: false,
        stacks: false,
        progress: false,
        ..Default::default()
    };
    let only = tidemark_analyzer::load::read_path(&rec.profile, &opts).expect("profile reads");
    let addresses = |ips: &[tidemark_analyzer::model::Ip]| -> Vec<(u64, u64)> {
        ips.iter().map(|ip| (ip.address, ip.generation)).collect()
    };
    assert_eq!(addresses(&only.ips), addresses(&p.ips));
    assert!(
        p.ips.iter().any(|ip| ip.generation > 1),
        "the reloaded library's addresses have a later generation"
    );

    // The loader's tree, built from each stack's own frames started at its base's node, holds
    // the stacks the decoder rebuilds whole: the allocations per whole stack agree.
    let whole = allocations_per_whole_stack(&rec.profile);
    assert!(whole.keys().any(|frames| frames.iter().any(|f| f.1 > 1)));
    assert_eq!(allocations_per_tree_stack(&p), whole);
}

/// A library dlopened, allocated from and dlclosed 2,000 times, by a relative path: the program
/// runs to its end every time (the recorder enumerating the modules while the program unloads
/// one read the module's unwind header after the loader had unmapped it: a crash in about one
/// run in six), and every allocation is attributed to the library (the loader keeps
/// `./libplugin_b.so` as the module's name, which the recorder now makes absolute: before, none
/// was named). Named after the library's function: nearly all; a few of the 2,000 generations'
/// addresses (39 in one run of three) can stay `libplugin_b.so+0x…` — an open race between the
/// names looked up while the command runs and the module maps, docs/performance.md (speed
/// round 14) — so their sum is what is exact here.
#[test]
fn a_library_loaded_and_unloaded_thousands_of_times_by_a_relative_path() {
    let s = Scratch::new("dlcycle");
    let exe = compile_c("dlcycle", &s, &["-ldl"]);
    build_plugin(&s, None, "libplugin_b.so");
    const CYCLES: u64 = 2000;
    for _ in 0..3 {
        let rec = record(&s, &exe, &["./libplugin_b.so", &CYCLES.to_string()]);
        // The library came back at another address (the fixture holds a page where it was):
        // one file, named at two load biases.
        assert!(
            rec.run.stdout.contains("ok, loaded at two addresses"),
            "{}",
            rec.run.describe()
        );
        // Named by the run (the symbols it embedded), and again from the files alone, every
        // address in one pass (what a profile without embedded symbols gets).
        let embedded = load(&rec.profile);
        let mut from_files = tidemark_analyzer::load::read_path(&rec.profile, &Default::default())
            .expect("profile loads");
        from_files.embedded_symbols.clear();
        tidemark_analyzer::symbolize::symbolize(&mut from_files, &Default::default(), None);
        for p in [&embedded, &from_files] {
            assert!(p.truncated.is_none());
            let totals = function_totals(p);
            let named = totals.get("plugin_b_alloc").copied().unwrap_or_default();
            assert_eq!(
                (
                    named.allocations,
                    named.allocated_bytes,
                    named.leaked_allocations
                ),
                (CYCLES, CYCLES * 77, CYCLES),
                "{totals:#?}"
            );
        }
        std::fs::remove_file(&rec.profile).expect("profile removed");
    }
}

/// Builds `dlreuse_plugin.c` into `name` in the scratch directory (`-DPLUGIN_A`: the library
/// with `plugin_a_alloc`, else `plugin_b_alloc`).
fn build_plugin(s: &Scratch, define: Option<&str>, name: &str) -> PathBuf {
    let out = s.join(name);
    let mut cmd = Command::new("gcc");
    cmd.args(["-O2", "-g", "-fomit-frame-pointer", "-shared", "-fPIC"]);
    if let Some(d) = define {
        cmd.arg(d);
    }
    let built = cmd
        .arg("-o")
        .arg(&out)
        .arg(fixture_source("c/dlreuse_plugin.c"))
        .output()
        .expect("gcc (scripts/setup.sh installs it)");
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    out
}

/// Allocation calls per stack (return addresses with their module generation, innermost
/// first), each stack's frames as the format's decoder rebuilds them whole.
fn allocations_per_whole_stack(profile: &Path) -> BTreeMap<Vec<(u64, u64)>, u64> {
    use tidemark::format::{Reader, Record};
    let file = std::fs::File::open(profile).expect("profile opens");
    let mut reader = Reader::new(std::io::BufReader::new(file)).expect("profile reads");
    let mut frames: HashMap<u64, Vec<(u64, u64)>> = HashMap::new();
    let mut calls: BTreeMap<Vec<(u64, u64)>, u64> = BTreeMap::new();
    while let Some(records) = reader.next_chunk().expect("chunk reads") {
        for rec in records {
            match rec.expect("record decodes") {
                Record::Stack {
                    id,
                    generation,
                    frames: f,
                    outer_omitted,
                    ..
                } => {
                    assert!(!outer_omitted, "a default reader gets whole stacks");
                    frames.insert(id, f.iter().map(|&a| (a, generation)).collect());
                }
                Record::Alloc { stack, .. } | Record::Realloc { stack, .. } => {
                    *calls.entry(frames[&stack].clone()).or_default() += 1;
                }
                _ => {}
            }
        }
    }
    calls
}

/// Allocation calls per stack of a loaded profile, each stack read from its leaf up the tree.
fn allocations_per_tree_stack(
    p: &tidemark_analyzer::model::Profile,
) -> BTreeMap<Vec<(u64, u64)>, u64> {
    let mut calls: BTreeMap<Vec<(u64, u64)>, u64> = BTreeMap::new();
    for s in p.stack_stats.iter().filter(|s| s.counts.allocations > 0) {
        let mut frames = Vec::new();
        let mut node = s.stack;
        while let Some(n) = node {
            let n = p.stacks[n.0 as usize];
            let ip = &p.ips[n.ip.0 as usize];
            frames.push((ip.address, ip.generation));
            node = n.parent;
        }
        *calls.entry(frames).or_default() += s.counts.allocations;
    }
    calls
}
