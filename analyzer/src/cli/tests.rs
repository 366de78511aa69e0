//! Command-line parsing and the pieces of `tidemark run` that need no recorder.

use super::launcher::{
    check_preloadable, child_profiles, exit_code, has_interpreter, recorder_env, resolve_command,
};
use super::*;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;

fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(std::iter::once("tidemark").chain(args.iter().copied()))
}

#[test]
fn summary_flags() {
    let Command::Summary(s) = parse(&["summary", "--json", "--top", "3", "a.tmk"])
        .unwrap()
        .command
    else {
        panic!("not summary")
    };
    assert!(s.json);
    assert_eq!(s.top, 3);
    assert_eq!(s.profile, Path::new("a.tmk"));
    let Command::Summary(s) = parse(&["summary", "a.tmk"]).unwrap().command else {
        panic!("not summary")
    };
    assert!(!s.json);
    assert_eq!(s.top, DEFAULT_TOP_N);
    assert!(parse(&["summary"]).is_err(), "the profile is required");
}

#[test]
fn flamegraph_flags() {
    let Command::Flamegraph(f) = parse(&[
        "flamegraph",
        "--metric",
        "leaked",
        "--inverted",
        "-o",
        "-",
        "p.tmk",
    ])
    .unwrap()
    .command
    else {
        panic!("not flamegraph")
    };
    assert_eq!(f.metric, Metric::Leaked);
    assert!(f.inverted);
    assert!(!f.folded);
    assert_eq!(f.output.as_deref(), Some(Path::new("-")));
    let Command::Flamegraph(f) = parse(&["flamegraph", "--folded", "p.tmk"]).unwrap().command
    else {
        panic!("not flamegraph")
    };
    assert_eq!(f.metric, Metric::Allocated);
    assert!(f.folded);
    assert!(parse(&["flamegraph", "--metric", "cpu", "p.tmk"]).is_err());
    for m in ["allocated", "allocations", "peak", "leaked", "temporary"] {
        assert!(
            parse(&["flamegraph", "--metric", m, "p.tmk"]).is_ok(),
            "{m}"
        );
    }
}

#[test]
fn default_flamegraph_output_sits_next_to_the_profile() {
    use super::flamegraph::default_output;
    assert_eq!(
        default_output(Path::new("dir/app.tmk"), Metric::Peak, false),
        Path::new("dir/app.peak.svg")
    );
    assert_eq!(
        default_output(Path::new("app.tmk"), Metric::Leaked, true),
        Path::new("app.leaked.folded")
    );
}

#[test]
fn run_flags_and_trailing_command() {
    let Command::Run(r) = parse(&[
        "run",
        "-o",
        "x.tmk",
        "--interval",
        "5ms",
        "--unwind",
        "fp",
        "--",
        "ls",
        "-l",
        "--color",
    ])
    .unwrap()
    .command
    else {
        panic!("not run")
    };
    assert_eq!(r.output.as_deref(), Some(Path::new("x.tmk")));
    assert_eq!(r.interval, 5);
    assert_eq!(r.unwind, UnwindArg::Fp);
    assert_eq!(r.command, vec!["ls", "-l", "--color"]);
    // Without `--`, everything from the first positional on belongs to the command.
    let Command::Run(r) = parse(&["run", "ls", "-o", "y"]).unwrap().command else {
        panic!("not run")
    };
    assert_eq!(r.command, vec!["ls", "-o", "y"]);
    assert!(r.output.is_none());
    assert_eq!(r.interval, DEFAULT_INTERVAL_MS);
    assert_eq!(r.unwind, UnwindArg::Dwarf);
    let Command::Run(r) = parse(&["run"]).unwrap().command else {
        panic!("not run")
    };
    assert!(r.command.is_empty(), "no command: the built-in workload");
}

#[test]
fn intervals() {
    assert_eq!(parse_interval_ms("10ms"), Ok(10));
    assert_eq!(parse_interval_ms("2s"), Ok(2000));
    assert_eq!(parse_interval_ms("250"), Ok(250));
    assert_eq!(parse_interval_ms(DEFAULT_INTERVAL), Ok(DEFAULT_INTERVAL_MS));
    assert!(parse_interval_ms("0ms").is_err());
    assert!(parse_interval_ms("fast").is_err());
    assert!(parse(&["run", "--interval", "soon", "--", "ls"]).is_err());
}

#[test]
fn help_and_version_parse_as_displays() {
    let e = parse(&["--help"]).unwrap_err();
    assert!(!e.use_stderr());
    let e = parse(&["--version"]).unwrap_err();
    assert!(!e.use_stderr());
    let e = parse(&["frobnicate"]).unwrap_err();
    assert!(e.use_stderr());
}

#[test]
fn ld_preload_is_prepended() {
    let env = recorder_env(
        Path::new("/t/libtidemark_preload.so"),
        Path::new("/o/p.tmk"),
        10,
        "dwarf",
        Some(std::ffi::OsStr::new("/other.so")),
    );
    let get = |k: &str| {
        env.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(get("LD_PRELOAD"), "/t/libtidemark_preload.so:/other.so");
    assert_eq!(get("TIDEMARK_OUTPUT"), "/o/p.tmk");
    assert_eq!(get("TIDEMARK_INTERVAL_MS"), "10");
    assert_eq!(get("TIDEMARK_UNWIND"), "dwarf");
    let env = recorder_env(Path::new("/t/l.so"), Path::new("/a%p/b%"), 1, "fp", None);
    assert_eq!(env[0].1, "/t/l.so");
    assert_eq!(env[1].1, "/a%%p/b%%", "-o is a plain path, not a template");
}

#[test]
fn commands_resolve_through_path() {
    let sh = resolve_command(std::ffi::OsStr::new("sh")).unwrap();
    assert!(sh.is_absolute());
    let e = resolve_command(std::ffi::OsStr::new("no-such-command-tidemark")).unwrap_err();
    assert!(e.to_string().contains("command not found"), "{e}");
    let e = resolve_command(std::ffi::OsStr::new("./no/such/file")).unwrap_err();
    assert!(e.to_string().contains("no such file"), "{e}");
}

#[test]
fn dynamic_executables_pass_and_this_one_has_an_interpreter() {
    let exe = std::env::current_exe().unwrap();
    check_preloadable(&exe).unwrap();
    let data = std::fs::read(&exe).unwrap();
    assert!(has_interpreter(&data));
    // Scripts pass (their interpreter is what the loader runs).
    let dir = std::env::temp_dir().join(format!("tidemark-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("s.sh");
    std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
    check_preloadable(&script).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn static_executables_are_refused() {
    // A minimal static ELF: this test binary's header with every PT_INTERP turned into PT_NULL.
    let exe = std::env::current_exe().unwrap();
    let mut data = std::fs::read(&exe).unwrap();
    let phoff = u64::from_le_bytes(data[0x20..0x28].try_into().unwrap()) as usize;
    let phentsize = u16::from_le_bytes(data[0x36..0x38].try_into().unwrap()) as usize;
    let phnum = u16::from_le_bytes(data[0x38..0x3a].try_into().unwrap()) as usize;
    for i in 0..phnum {
        let at = phoff + i * phentsize;
        if u32::from_le_bytes(data[at..at + 4].try_into().unwrap()) == 3 {
            data[at..at + 4].copy_from_slice(&0u32.to_le_bytes());
        }
    }
    assert!(!has_interpreter(&data));
    let dir = std::env::temp_dir().join(format!("tidemark-static-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fake = dir.join("static-prog");
    std::fs::write(&fake, &data).unwrap();
    let e = check_preloadable(&fake).unwrap_err().to_string();
    assert!(
        e.contains("statically linked") && e.contains("tidemark::Tracking"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn exit_codes_follow_the_shell() {
    assert_eq!(exit_code(ExitStatus::from_raw(0)), 0);
    assert_eq!(exit_code(ExitStatus::from_raw(3 << 8)), 3);
    assert_eq!(exit_code(ExitStatus::from_raw(9)), 128 + 9); // killed by SIGKILL
}

#[test]
fn child_profiles_match_stem_and_pid() {
    let dir = std::env::temp_dir().join(format!("tidemark-children-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let since = std::time::SystemTime::now() - std::time::Duration::from_secs(5);
    for name in [
        "main.tmk",
        "main.123.tmk",
        "main.x.tmk",
        "other.5.tmk",
        "main.45.2.tmk",
    ] {
        std::fs::write(dir.join(name), b"").unwrap();
    }
    let found = child_profiles(&dir.join("main.tmk"), since);
    assert_eq!(
        found,
        vec![dir.join("main.123.tmk"), dir.join("main.45.2.tmk")]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn broken_pipe_is_recognized() {
    let e = anyhow::Error::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
    assert!(is_broken_pipe(&e));
    let e = anyhow::Error::from(std::io::Error::from(std::io::ErrorKind::NotFound));
    assert!(!is_broken_pipe(&e));
}
