//! Outputs never destroy what is at the path, and a run never reports another run's numbers:
//! special files and symbolic links are refused (exit 2, a message naming them) and left as they
//! were; two concurrent runs with the same `-o` each print their own numbers and leave one
//! complete profile; `summary` refuses a FIFO instead of blocking; a full disk, and a command that
//! drops the preload (`env LD_PRELOAD=...`), are named.

mod support;

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::{
    fixture_bin, load, read_truth, run_bounded, tidemark, tidemark_cli, with_file_size_limit,
    Finished, Scratch,
};

/// `tidemark run -o OUT -- BIN ARGS`, started in the scratch directory (more arguments of the
/// program may follow).
fn tidemark_run(out: &Path, bin: &Path, args: &[&str], s: &Scratch) -> Command {
    let mut cmd = Command::new(tidemark());
    cmd.arg("run")
        .arg("-o")
        .arg(out)
        .arg("--")
        .arg(bin)
        .args(args)
        .current_dir(s.path());
    cmd
}

fn mkfifo(path: &Path) {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c` is a NUL-terminated path.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o644) };
    assert_eq!(rc, 0, "mkfifo {}", path.display());
}

fn assert_refused(r: &Finished, path: &Path, kind: &str) {
    assert_eq!(r.status.code(), Some(2), "{}", r.describe());
    let needle = format!("{}: it is {kind}", path.display());
    assert!(
        r.stderr.contains(&needle),
        "want {needle:?}: {}",
        r.describe()
    );
}

/// A small recorded profile to feed the output commands.
fn small_profile(scratch: &Scratch) -> PathBuf {
    let bin = fixture_bin("tm-alloc-without-free", scratch);
    let out = scratch.join("small.tmk");
    let r = tidemark_cli(
        [
            "run".as_ref(),
            "-o".as_ref(),
            out.as_os_str(),
            "--".as_ref(),
            bin.as_os_str(),
            "--duration-ms".as_ref(),
            "100".as_ref(),
        ],
        scratch,
    );
    r.assert_success("tidemark run");
    out
}

#[test]
fn dev_null_is_refused_and_stays_a_device() {
    let s = Scratch::new("out-devnull");
    let bin = fixture_bin("tm-alloc-without-free", &s);
    let r = tidemark_cli(
        [
            "run".as_ref(),
            "-o".as_ref(),
            "/dev/null".as_ref(),
            "--".as_ref(),
            bin.as_os_str(),
            "--duration-ms".as_ref(),
            "50".as_ref(),
        ],
        &s,
    );
    assert_refused(&r, Path::new("/dev/null"), "a character device");
    let m = fs::symlink_metadata("/dev/null").unwrap();
    assert!(m.file_type().is_char_device(), "/dev/null was replaced");
    // Nothing ran: the fixture would have printed nothing, but its profile would exist.
    assert!(
        !r.stderr.contains("exited with status"),
        "the program ran: {}",
        r.describe()
    );
}

#[test]
fn fifo_symlink_and_directory_are_refused_by_every_output() {
    let s = Scratch::new("out-special");
    let profile = small_profile(&s);
    let fifo = s.join("pipe");
    mkfifo(&fifo);
    let real = s.join("real.svg");
    fs::write(&real, b"keep me").unwrap();
    let link = s.join("link.svg");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let dir = s.join("adir");
    fs::create_dir(&dir).unwrap();
    let bin = fixture_bin("tm-alloc-without-free", &s);
    for (target, kind) in [
        (&fifo, "a FIFO (named pipe)"),
        (&link, "a symbolic link"),
        (&dir, "a directory"),
    ] {
        let t = target.as_os_str();
        let p = profile.as_os_str();
        let runs: Vec<Vec<&std::ffi::OsStr>> = vec![
            vec![
                "run".as_ref(),
                "-o".as_ref(),
                t,
                "--".as_ref(),
                bin.as_os_str(),
                "--duration-ms".as_ref(),
                "50".as_ref(),
            ],
            vec!["flamegraph".as_ref(), "-o".as_ref(), t, p],
            vec![
                "flamegraph".as_ref(),
                "--folded".as_ref(),
                "-o".as_ref(),
                t,
                p,
            ],
            vec!["timeline".as_ref(), "-o".as_ref(), t, p],
            vec!["report".as_ref(), "-o".as_ref(), t, p],
            vec!["diff".as_ref(), "-o".as_ref(), t, p, p],
        ];
        for args in runs {
            let r = tidemark_cli(&args, &s);
            assert_refused(&r, target, kind);
        }
    }
    // With no command, -o names the output directory: a FIFO there is refused too.
    let r = tidemark_cli(["run".as_ref(), "-o".as_ref(), fifo.as_os_str()], &s);
    assert_eq!(r.status.code(), Some(2), "{}", r.describe());
    assert!(
        r.stderr.contains("will not write the outputs to") && r.stderr.contains("not one"),
        "{}",
        r.describe()
    );
    assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(fs::read(&real).unwrap(), b"keep me");
    assert!(fs::read_dir(&dir).unwrap().next().is_none());
    // No temporary file was left behind by any refused command.
    let stray: Vec<_> = support::list_dir(s.path())
        .into_iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    assert!(stray.is_empty(), "temporary files left: {stray:?}");
}

#[test]
fn summary_refuses_a_fifo_instead_of_blocking() {
    let s = Scratch::new("out-summary-fifo");
    let fifo = s.join("profile.tmk");
    mkfifo(&fifo);
    let mut cmd = Command::new(tidemark());
    cmd.arg("summary").arg(&fifo).current_dir(s.path());
    // A blocked open would hit this timeout and fail the test.
    let r = run_bounded(cmd, &s, Duration::from_secs(20));
    assert_eq!(r.status.code(), Some(2), "{}", r.describe());
    assert!(
        r.stderr
            .contains("is a FIFO (named pipe), not a profile file"),
        "{}",
        r.describe()
    );
}

/// The first number of `N allocation calls` in a run's summary line.
fn printed_allocations(stderr: &str) -> u64 {
    let line = stderr
        .lines()
        .find(|l| l.contains(" allocation calls, "))
        .unwrap_or_else(|| panic!("no summary line in:\n{stderr}"));
    let n = line
        .trim_start_matches("tidemark: ")
        .split(' ')
        .next()
        .unwrap();
    n.replace(',', "").parse().unwrap()
}

#[test]
fn concurrent_runs_with_one_output_each_report_their_own_numbers() {
    let s = Scratch::new("out-concurrent");
    let bin = fixture_bin("tm-alloc-without-free", &s);
    let out = s.join("shared.tmk");
    // Very different allocation counts: 4 KiB blocks vs 64-byte blocks at the same rate.
    let configs = [("a", "4096"), ("b", "64")];
    let children: Vec<_> = configs
        .iter()
        .map(|(name, block)| {
            let truth = s.join(&format!("{name}.truth.json"));
            let args = [
                "--duration-ms",
                "600",
                "--rate",
                "2MiB",
                "--block-size",
                block,
            ];
            let mut cmd = tidemark_run(&out, &bin, &args, &s);
            cmd.arg("--truth").arg(&truth);
            (truth, cmd)
        })
        .collect();
    // Both start before either finishes.
    let started: Vec<_> = children
        .into_iter()
        .enumerate()
        .map(|(i, (truth, mut cmd))| {
            let err = s.join(&format!("run-{i}.stderr"));
            support::own_process_group(&mut cmd)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(fs::File::create(&err).unwrap());
            (truth, err, cmd.spawn().expect("start tidemark"))
        })
        .collect();
    let results: Vec<(PathBuf, Finished)> = started
        .into_iter()
        .map(|(truth, err, mut child)| {
            let status = support::wait_bounded(&mut child, support::RUN_TIMEOUT, "tidemark run");
            let stderr = fs::read_to_string(&err).unwrap();
            (
                truth,
                Finished {
                    status,
                    stdout: String::new(),
                    stderr,
                },
            )
        })
        .collect();
    let mut truths = Vec::new();
    for (truth_path, r) in &results {
        r.assert_success("concurrent tidemark run");
        let truth = read_truth(truth_path);
        let printed = printed_allocations(&r.stderr);
        let expected = truth.totals.allocations;
        // The process makes a few allocations of its own (runtime start-up) beyond the fixture's.
        assert!(
            printed >= expected && printed <= expected + 500,
            "run printed {printed} allocation calls, its own truth says {expected}: {}",
            r.describe()
        );
        truths.push(truth);
    }
    assert!(
        truths[1].totals.allocations > truths[0].totals.allocations + 2000,
        "the two runs must differ clearly"
    );
    // The final file is one whole profile: one of the two runs, complete.
    let p = load(&out);
    assert!(p.truncated.is_none(), "final profile is truncated");
    let got = p.totals.counts.allocations;
    let matches: Vec<_> = truths
        .iter()
        .filter(|t| got >= t.totals.allocations && got <= t.totals.allocations + 500)
        .collect();
    assert_eq!(matches.len(), 1, "final profile has {got} allocation calls");
    support::assert_matches_truth(&out, matches[0]);
    let stray: Vec<_> = support::list_dir(s.path())
        .into_iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    assert!(stray.is_empty(), "temporary files left: {stray:?}");
}

#[test]
fn child_profiles_are_named_after_the_output() {
    let s = Scratch::new("out-children");
    let bin = fixture_bin("tm-alloc-without-free", &s);
    let script = format!("{0} --duration-ms 30; {0} --duration-ms 30", bin.display());
    let r = tidemark_cli(
        [
            "run",
            "-o",
            "kids.tmk",
            "--",
            "/bin/sh",
            "-c",
            script.as_str(),
        ],
        &s,
    );
    r.assert_success("tidemark run -- sh -c");
    let names: Vec<String> = support::list_dir(s.path())
        .into_iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmk"))
        .collect();
    assert!(names.contains(&"kids.tmk".to_owned()), "{names:?}");
    let kids: Vec<&String> = names
        .iter()
        .filter(|n| n.starts_with("kids.") && n.as_str() != "kids.tmk")
        .collect();
    assert_eq!(kids.len(), 2, "{names:?}\n{}", r.describe());
    assert!(
        names.iter().all(|n| !n.starts_with('.')),
        "temporary names left: {names:?}"
    );
    for k in kids {
        assert!(
            r.stderr.contains(k.as_str()),
            "{k} not listed: {}",
            r.describe()
        );
        let p = load(&s.join(k));
        assert!(p.truncated.is_none());
        assert!(p.totals.counts.allocations > 0);
    }
}

#[test]
fn env_that_replaces_ld_preload_is_warned_about() {
    let s = Scratch::new("out-env");
    let bin = fixture_bin("tm-alloc-without-free", &s);
    let r = tidemark_cli(
        [
            "run".as_ref(),
            "-o".as_ref(),
            "env.tmk".as_ref(),
            "--".as_ref(),
            "env".as_ref(),
            "LD_PRELOAD=libm.so.6".as_ref(),
            bin.as_os_str(),
            "--duration-ms".as_ref(),
            "30".as_ref(),
        ],
        &s,
    );
    r.assert_success("tidemark run -- env LD_PRELOAD=...");
    let want = format!("{} ran without the recorder", bin.display());
    assert!(r.stderr.contains(&want), "{}", r.describe());
    assert!(r.stderr.contains("NOT in the profile"), "{}", r.describe());
}

#[test]
fn a_full_disk_is_named() {
    let s = Scratch::new("out-diskfull");
    let bin = fixture_bin("tm-alloc-without-free", &s);
    let mnt = s.join("small-fs");
    fs::create_dir(&mnt).unwrap();
    // A 16 KiB tmpfs in a private mount namespace (unprivileged users get one through a user
    // namespace); 64-byte blocks at 16 MiB/s for 1 s from 8 call sites on 4 threads are more events than
    // fit even compressed.
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let mut cmd = Command::new("unshare");
    if !root {
        cmd.args(["--user", "--map-root-user"]);
    }
    cmd.arg("--mount")
        .arg("sh")
        .arg("-c")
        .arg(r#"mount -t tmpfs -o size=16k tmpfs "$1" && exec "$2" run -o "$1/p.tmk" -- "$3" --duration-ms 1000 --rate 16MiB --block-size 64 --sites 8 --threads 4"#)
        .arg("sh")
        .arg(&mnt)
        .arg(tidemark())
        .arg(&bin)
        .current_dir(s.path());
    let r = run_bounded(cmd, &s, support::RUN_TIMEOUT);
    assert!(
        !r.stderr.contains("mount: "),
        "cannot mount a tmpfs (unshare from util-linux; scripts/setup.sh installs it): {}",
        r.describe()
    );
    assert!(r.stderr.contains("disk full"), "{}", r.describe());
    assert!(
        r.stderr.contains("the profile is truncated (disk full)")
            || r.stderr.contains("no profile was written"),
        "{}",
        r.describe()
    );
}

/// Under a file size limit (`ulimit -f`, inherited by the program) the recorder stops at the
/// limit and the program runs on; `tidemark run` names the limit instead of guessing that the
/// program was not recorded. Pipes for its output: the limit applies to every regular file.
#[test]
fn a_file_size_limit_is_named() {
    let s = Scratch::new("out-fsize");
    let bin = fixture_bin("tm-alloc-without-free", &s);
    // (limit, exit status, what it says): no header fits under 0 bytes (the empty profile
    // cannot be loaded); under 4 KiB the header does, not the events (a second of 64-byte
    // blocks at 16 MiB/s from 8 sites on 4 threads: 30–60 KB).
    for (limit, code, shown) in [
        (0u64, 2, "at most 0 B and the profile stopped at 0 B"),
        (4096, 0, "the profile is truncated (file size limit)"),
    ] {
        let out = s.join(&format!("p{limit}.tmk"));
        let args = [
            "--duration-ms",
            "1000",
            "--rate",
            "16MiB",
            "--block-size",
            "64",
        ];
        let mut cmd = tidemark_run(&out, &bin, &args, &s);
        cmd.args(["--sites", "8", "--threads", "4"]);
        with_file_size_limit(&mut cmd, limit);
        let r = cmd.output().expect("tidemark runs");
        let stderr = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(code), "limit {limit}: {stderr}");
        assert!(
            stderr.contains("file size limit: `ulimit -f` allows files of at most"),
            "limit {limit}: {stderr}"
        );
        assert!(stderr.contains(shown), "limit {limit}: {stderr}");
        assert!(
            stderr.contains("exited with status 0"),
            "limit {limit}: {stderr}"
        );
        // Nor a guess that the program did not start. (Under 4 KiB the symbols appended to the
        // cut profile do not fit either, which a warning says, naming the limit.)
        for wrong in ["holds no allocation calls", "was it started"] {
            assert!(!stderr.contains(wrong), "limit {limit}: {stderr}");
        }
        if limit == 0 {
            // Nothing is embedded into an empty file.
            assert!(!stderr.contains("cannot embed"), "{stderr}");
            assert!(stderr.contains("is empty: the recorder could not write even its header"));
        } else if stderr.contains("cannot embed") {
            assert!(stderr.contains("the file size limit (ulimit -f) stops the profile"));
        }
        // What was written is where the user asked for it.
        assert!(out.is_file(), "limit {limit}: {stderr}");
        assert!(fs::metadata(&out).unwrap().len() <= limit);
    }
    // tidemark ignores SIGXFSZ for its own writes; the program it runs does not. (The mask of
    // the signals 1–31: glibc's own real-time ones, which programs cannot see, differ once the
    // recorder's thread runs in the program.)
    let ignored = |recorded: bool| {
        let mut cmd = Command::new(tidemark());
        if recorded {
            cmd.args(["run", "-o", "sig.tmk", "--", "grep"]);
        } else {
            cmd = Command::new("grep");
        }
        cmd.args(["SigIgn", "/proc/self/status"])
            .current_dir(s.path());
        let r = cmd.output().expect("runs");
        assert!(r.status.success(), "{r:?}");
        let line = String::from_utf8(r.stdout).unwrap();
        let hex = line
            .trim()
            .strip_prefix("SigIgn:")
            .expect("a SigIgn line")
            .trim();
        u64::from_str_radix(hex, 16).unwrap() & 0xffff_ffff
    };
    assert_eq!(ignored(true), ignored(false));
    assert_eq!(ignored(true) & 1 << (libc::SIGXFSZ - 1), 0);
}

#[test]
fn recorder_messages_are_shown_by_summary() {
    use tidemark::format::{put_chunk, put_message, put_trailer, ChunkKind, Header, VERSION};
    let s = Scratch::new("out-messages");
    let mut bytes = Header {
        version: VERSION,
        pid: 9,
        exe: "/bin/app".into(),
        source: "preload".into(),
        allocator: "glibc".into(),
        unwind: "dwarf".into(),
        ..Header::default()
    }
    .encode();
    let text = "cannot write /x/p.tmk: No space left on device; recording stopped";
    let mut payload = Vec::new();
    put_message(&mut payload, 2, text);
    put_chunk(&mut bytes, ChunkKind::Meta, &payload);
    let mut payload = Vec::new();
    put_trailer(&mut payload, &[]);
    put_chunk(&mut bytes, ChunkKind::Trailer, &payload);
    fs::write(s.join("m.tmk"), &bytes).unwrap();
    let r = tidemark_cli(["summary", "m.tmk"], &s);
    r.assert_success("tidemark summary");
    assert!(
        r.stdout.contains("recorder messages:") && r.stdout.contains(text),
        "{}",
        r.describe()
    );
    let r = tidemark_cli(["summary", "--json", "m.tmk"], &s);
    r.assert_success("tidemark summary --json");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["messages"][0]["level"], "error");
    assert_eq!(v["messages"][0]["text"], text);
}
