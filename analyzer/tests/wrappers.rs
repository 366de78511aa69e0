//! Wrapper programs: `tidemark run -o app.tmk -- ./shim.sh ARGS` where the shim is a real
//! `#!/bin/sh` script. A shim that `exec`s the program leaves the program's profile at `-o` (the
//! process's final image) and the shell's beside it; a shim that runs the program as a child
//! and waits leaves the shell's at `-o` and the program's as a child profile. Each profile says
//! which process it is, and the program's numbers are exactly the workload's ground truth.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use support::*;
use tidemark_analyzer::model::Profile;

/// Writes an executable `#!/bin/sh` script `name` into `scratch`.
fn shim(scratch: &Scratch, name: &str, body: &str) -> PathBuf {
    let path = scratch.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

/// The profiles in `dir` beside `app.tmk`: `app.<more>.tmk`.
fn profiles_beside(dir: &Path) -> Vec<PathBuf> {
    list_dir(dir)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("app.") && n.ends_with(".tmk") && n != "app.tmk")
        })
        .collect()
}

/// `tidemark summary PROFILE`'s first line.
fn summary_first_line(scratch: &Scratch, profile: &Path) -> String {
    let r = tidemark_cli(["summary", "--no-symbolize", path_str(profile)], scratch);
    r.assert_success("tidemark summary");
    r.stdout.lines().next().unwrap_or_default().to_owned()
}

/// Writes the script `name` with `body` and runs it under `tidemark run -o app.tmk`, which must
/// succeed.
fn run_script(scratch: &Scratch, name: &str, body: &str) -> Finished {
    shim(scratch, name, body);
    let script = format!("./{name}");
    let r = tidemark_cli(["run", "-o", "app.tmk", "--", &script], scratch);
    r.assert_success(&format!("tidemark run -- {script}"));
    r
}

/// The line of `r`'s stderr that holds `needle`; fails with the run's output otherwise.
fn stderr_line<'r>(r: &'r Finished, needle: &str) -> &'r str {
    r.stderr
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?}\n{}", r.describe()))
}

/// The profile beside `app.tmk` that `bin` wrote.
fn profile_of(scratch: &Scratch, bin: &Path, r: &Finished) -> PathBuf {
    profiles_beside(scratch.path())
        .into_iter()
        .find(|p| {
            tidemark_analyzer::load::read_path(p, &Default::default())
                .is_ok_and(|p| same_file(Path::new(&p.header.exe), bin))
        })
        .unwrap_or_else(|| panic!("no profile of the program\n{}", r.describe()))
}

fn assert_is_the_shell(p: &Profile, what: &str) {
    assert!(
        same_file(Path::new(&p.header.exe), Path::new("/bin/sh")),
        "{what} should be the shell's profile, its executable is {}",
        p.header.exe
    );
}

#[test]
fn a_shim_that_execs_the_program_leaves_the_programs_profile_at_the_output() {
    let scratch = Scratch::new("wrapper-exec");
    let bin = fixture_bin("tm-alloc-without-free", &scratch);
    shim(
        &scratch,
        "shim.sh",
        &format!("exec \"{}\" \"$@\"\n", bin.display()),
    );
    let r = tidemark_cli(
        [
            "run",
            "-o",
            "app.tmk",
            "--",
            "./shim.sh",
            "--duration-ms",
            "200",
            "--truth",
            "truth.json",
        ],
        &scratch,
    );
    r.assert_success("tidemark run -- ./shim.sh");
    let profile = scratch.join("app.tmk");
    let p = load(&profile);
    // The final image: the program the shell exec'd, with exactly the workload's numbers.
    assert!(
        same_file(Path::new(&p.header.exe), &bin),
        "app.tmk is of {}, not of the exec'd {}\n{}",
        p.header.exe,
        bin.display(),
        r.describe()
    );
    assert_loaded_matches_truth(&p, &profile, &read_truth(&scratch.join("truth.json")));
    // The shell's image: same process, beside it, named as the first image.
    let shell = scratch.join(&format!("app.{}.exec0.tmk", p.header.pid));
    let s = load(&shell);
    assert_eq!(s.header.pid, p.header.pid, "one process, two images");
    assert_is_the_shell(&s, "app.<pid>.exec0.tmk");
    assert_eq!(
        profiles_beside(scratch.path()),
        vec![shell.clone()],
        "the shell's image is the only other profile\n{}",
        r.describe()
    );
    // Listed once, and the chain of programs is said.
    let shell_name = shell.file_name().unwrap().to_str().unwrap();
    assert_eq!(r.stderr.matches(shell_name).count(), 1, "{}", r.describe());
    assert!(
        r.stderr.contains("exec'd 1 time(s)") && r.stderr.contains("→ tm-alloc-without-free"),
        "{}",
        r.describe()
    );
    assert!(
        r.stderr.contains(&format!(
            "profile written to app.tmk: tm-alloc-without-free --duration-ms 200 --truth \
             truth.json (pid {}, {})",
            p.header.pid, p.header.exe
        )),
        "{}",
        r.describe()
    );
    // `summary` says which process each profile is.
    let first = summary_first_line(&scratch, &profile);
    assert!(
        first.starts_with(&format!("profile      {}: ", profile.display()))
            && first.contains(&format!("pid {}", p.header.pid))
            && first.contains("--duration-ms 200"),
        "{first}"
    );
    let first = summary_first_line(&scratch, &shell);
    assert!(
        first.contains("sh ./shim.sh --duration-ms 200")
            && first.contains(&format!("pid {}", p.header.pid)),
        "{first}"
    );
}

#[test]
fn a_shim_that_runs_the_program_as_a_child_leaves_it_beside_the_shells_profile() {
    let scratch = Scratch::new("wrapper-child");
    let bin = fixture_bin("tm-alloc-without-free", &scratch);
    // Not the script's last command, so the shell cannot turn it into an exec.
    shim(
        &scratch,
        "shim.sh",
        &format!("\"{}\" \"$@\"\nstatus=$?\nexit $status\n", bin.display()),
    );
    let r = tidemark_cli(
        [
            "run",
            "-o",
            "app.tmk",
            "--",
            "./shim.sh",
            "--duration-ms",
            "200",
            "--truth",
            "truth.json",
        ],
        &scratch,
    );
    r.assert_success("tidemark run -- ./shim.sh");
    let profile = scratch.join("app.tmk");
    let s = load(&profile);
    assert_is_the_shell(&s, "app.tmk");
    let children = profiles_beside(scratch.path());
    assert_eq!(children.len(), 1, "{children:?}\n{}", r.describe());
    let child = &children[0];
    let c = load(child);
    assert!(
        same_file(Path::new(&c.header.exe), &bin),
        "{}: {}",
        child.display(),
        c.header.exe
    );
    assert_eq!(
        child.file_name().unwrap().to_str().unwrap(),
        format!("app.{}.tmk", c.header.pid)
    );
    assert_ne!(c.header.pid, s.header.pid);
    assert_loaded_matches_truth(&c, child, &read_truth(&scratch.join("truth.json")));
    // Listed once among the children, and named as where the allocations are.
    let child_name = child.file_name().unwrap().to_str().unwrap();
    let listed = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("tidemark:   ") && l.contains(child_name))
        .count();
    assert_eq!(listed, 1, "{}", r.describe());
    assert!(
        r.stderr.contains("made more allocation calls")
            && r.stderr
                .lines()
                .any(|l| l.contains("made more allocation calls") && l.contains(child_name)),
        "{}",
        r.describe()
    );
    assert!(!r.stderr.contains("exec'd"), "{}", r.describe());
    let first = summary_first_line(&scratch, child);
    assert!(
        first.contains(&format!("pid {}", c.header.pid)) && first.contains("--duration-ms 200"),
        "{first}"
    );
}

/// A script running the program eight times: nine profiles (the shell's and the programs'),
/// embedded by one embedder that names each address once for all of them. Each program's
/// profile carries its own symbols and its exact numbers.
#[test]
fn a_script_running_the_program_eight_times_gets_each_profile_named() {
    let scratch = Scratch::new("wrapper-eight");
    let bin = fixture_bin("tm-alloc-without-free", &scratch);
    let runs: String = (0..8)
        .map(|i| {
            format!(
                "\"{}\" --duration-ms 20 --truth truth{i}.json || exit 1\n",
                bin.display()
            )
        })
        .collect();
    let r = run_script(&scratch, "eight.sh", &format!("{runs}exit 0\n"));
    let beside = profiles_beside(scratch.path());
    assert!(beside.len() >= 8, "{beside:?}\n{}", r.describe());
    let mut programs = 0;
    for path in &beside {
        let p = load(path);
        if !same_file(Path::new(&p.header.exe), &bin) {
            continue;
        }
        programs += 1;
        assert!(
            !p.embedded_symbols.is_empty(),
            "{}: no symbols embedded\n{}",
            path.display(),
            r.describe()
        );
        let i = p
            .header
            .cmdline
            .iter()
            .find_map(|a| a.strip_prefix("truth")?.strip_suffix(".json"))
            .unwrap_or_else(|| panic!("{}: {:?}", path.display(), p.header.cmdline))
            .to_owned();
        let truth = read_truth(&scratch.join(&format!("truth{i}.json")));
        assert_loaded_matches_truth(&p, path, &truth);
    }
    assert_eq!(programs, 8, "{beside:?}\n{}", r.describe());
}

/// A script that leaves the program running in the background: the finish says the process is
/// still running and where its profile is; once the program exits, that profile is complete and
/// exact.
#[test]
fn a_program_left_running_in_the_background_is_named_and_its_profile_completes() {
    let scratch = Scratch::new("wrapper-background");
    let bin = fixture_bin("tm-alloc-without-free", &scratch);
    // The script ends once the program has started recording (its profile beside the shell's:
    // a fixed pause was too short on a loaded machine), while it still runs.
    let r = run_script(
        &scratch,
        "bg.sh",
        &format!(
            "\"{}\" --duration-ms 1500 --truth truth.json &\n\
             n=0\n\
             while [ \"$(ls -a | grep -c '^\\.app\\.tidemark-')\" -lt 2 ] && [ $n -lt 400 ]; do\n\
             \x20 sleep 0.025; n=$((n + 1))\n\
             done\n\
             exit 0\n",
            bin.display()
        ),
    );
    let note = stderr_line(&r, "still running when the command ended");
    let program = profile_of(&scratch, &bin, &r);
    let name = program.file_name().unwrap().to_str().unwrap();
    assert!(note.contains(name), "{note}");
    // Wait for the program to end (it writes its truth last, after its profile's trailer).
    let truth_path = scratch.join("truth.json");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !truth_path.exists() || load(&program).truncated.is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "the program did not end"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_loaded_matches_truth(&load(&program), &program, &read_truth(&truth_path));
}

/// A child killed before it could finish its profile: the finish says so, and the profile holds
/// what was recorded until then (a readable, truncated profile).
#[test]
fn a_child_killed_before_finishing_its_profile_is_named() {
    let scratch = Scratch::new("wrapper-killed");
    let bin = fixture_bin("tm-alloc-without-free", &scratch);
    let r = run_script(
        &scratch,
        "kill.sh",
        &format!(
            "\"{}\" --duration-ms 5000 &\nsleep 0.3\nkill -9 $!\nwait\nexit 0\n",
            bin.display()
        ),
    );
    let warning = stderr_line(&r, "ended without finishing its profile");
    assert!(
        !r.stderr.contains("still running when the command ended"),
        "{}",
        r.describe()
    );
    let program = profile_of(&scratch, &bin, &r);
    let name = program.file_name().unwrap().to_str().unwrap();
    assert!(warning.contains(name), "{warning}");
    let p = load(&program);
    assert!(
        p.truncated.is_some(),
        "a killed process's profile ends early"
    );
    assert!(
        p.totals.counts.allocations > 0,
        "what was recorded is there"
    );
}
