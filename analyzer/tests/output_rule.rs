//! One rule for every output (docs/usage.md): missing directories are created, for the profile of
//! `tidemark run -o` as for any other output, and a path that is not a regular file is refused.

mod support;

use support::*;

#[test]
fn every_output_creates_missing_directories_and_refuses_special_files() {
    let scratch = Scratch::new("output-rule");
    let bin = fixture_bin("tm-alloc-without-free", &scratch);
    let r = tidemark_cli(
        [
            "run",
            "-o",
            "new/dir/app.tmk",
            "--",
            path_str(&bin),
            "--duration-ms",
            "100",
        ],
        &scratch,
    );
    r.assert_success("tidemark run -o new/dir/app.tmk");
    let profile = scratch.join("new/dir/app.tmk");
    assert!(profile.is_file(), "{}", r.describe());
    for (args, written) in [
        (
            vec!["timeline", "--csv", "-o", "t/a/curves.csv"],
            "t/a/curves.csv",
        ),
        (vec!["flamegraph", "-o", "f/a/alloc.svg"], "f/a/alloc.svg"),
        (
            vec!["export", "--format", "json", "-o", "e/a/app.json"],
            "e/a/app.json",
        ),
        (vec!["report", "-o", "r/a/report.md"], "r/a/report.md"),
    ] {
        let mut args: Vec<&str> = args;
        args.push(path_str(&profile));
        let r = tidemark_cli(&args, &scratch);
        r.assert_success(&args.join(" "));
        assert!(scratch.join(written).is_file(), "{}", r.describe());
    }
    // A directory where the file should go: refused by every command alike.
    std::fs::create_dir(scratch.join("taken")).unwrap();
    for cmd in ["timeline", "flamegraph", "report", "diff"] {
        let mut args = vec![cmd, "-o", "taken", path_str(&profile)];
        if cmd == "diff" {
            args.push(path_str(&profile));
        }
        let r = tidemark_cli(&args, &scratch);
        assert_eq!(r.status.code(), Some(2), "{cmd}: {}", r.describe());
        assert!(
            r.stderr.contains("not a regular file"),
            "{cmd}: {}",
            r.describe()
        );
    }
    let r = tidemark_cli(
        [
            "run",
            "-o",
            "taken",
            "--",
            path_str(&bin),
            "--duration-ms",
            "10",
        ],
        &scratch,
    );
    assert_eq!(r.status.code(), Some(2), "{}", r.describe());
    assert!(r.stderr.contains("not a regular file"), "{}", r.describe());
}
