//! Runtime-owned blocks are not leaks: the built-in rules (per-thread DTV, locale), a user's
//! suppression file, `--no-default-suppressions`, and what `summary`, the leaked flamegraph,
//! `check` and `report` make of them.
//!
//! `tests/data/leaks/runtime_owned.c` leaks 5 blocks of 100 bytes (`real_leak`), keeps 3 blocks
//! of 1000 bytes in `my_cache_init`, calls `setlocale` under `LC_ALL=C.UTF-8` and joins a thread.

mod support;

use std::process::Command;

use serde_json::Value;
use support::{preload_lib, run_bounded, tidemark_cli, workspace_root, Finished, Scratch};

const REAL: (u64, u64) = (5, 500);
const CACHE: (u64, u64) = (3, 3000);

fn record(s: &Scratch) {
    let src = workspace_root().join("analyzer/tests/data/leaks/runtime_owned.c");
    let exe = s.join("runtime_owned");
    let out = Command::new("gcc")
        .args(["-O2", "-g", "-fomit-frame-pointer", "-o"])
        .arg(&exe)
        .arg(&src)
        .arg("-lpthread")
        .output()
        .unwrap_or_else(|e| panic!("cannot run gcc (scripts/setup.sh installs it): {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    preload_lib();
    let mut cmd = Command::new(support::tidemark());
    cmd.args(["run", "-o", "ro.tmk", "--"])
        .arg(&exe)
        .env("LC_ALL", "C.UTF-8")
        .current_dir(s.path());
    run_bounded(cmd, s, support::RUN_TIMEOUT).assert_success("tidemark run");
}

fn summary(s: &Scratch, extra: &[&str]) -> Value {
    let mut args = vec!["summary", "--json"];
    args.extend_from_slice(extra);
    args.push("ro.tmk");
    let r = tidemark_cli(args, s);
    r.assert_success("tidemark summary --json");
    serde_json::from_str(&r.stdout).unwrap()
}

fn n(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing: {v}"))
}

fn rule<'v>(v: &'v Value, label: &str) -> Option<&'v Value> {
    v["runtime_owned"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule"] == label)
}

fn check(s: &Scratch, extra: &[&str]) -> Finished {
    let mut args = vec!["check", "--max-leaked", "500"];
    args.extend_from_slice(extra);
    args.push("ro.tmk");
    tidemark_cli(args, s)
}

#[test]
fn runtime_owned_blocks_are_not_leaks_and_a_file_adds_rules() {
    let s = Scratch::new("suppressions");
    record(&s);

    // Built-in rules: exactly the program's own blocks are leaked; the DTV and the locale data
    // are runtime-owned, and together they are what is live at the end without the rules.
    let def = summary(&s, &[]);
    assert_eq!(n(&def, "leaked_allocations"), REAL.0 + CACHE.0, "{def}");
    assert_eq!(n(&def, "leaked_bytes"), REAL.1 + CACHE.1);
    for label in ["per-thread DTV", "locale"] {
        let r = rule(&def, label).unwrap_or_else(|| panic!("no {label} rule: {def}"));
        assert!(n(r, "blocks") > 0, "{r}");
    }
    let all = summary(&s, &["--no-default-suppressions"]);
    assert_eq!(n(&all, "runtime_owned_blocks"), 0);
    assert_eq!(
        n(&all, "leaked_allocations"),
        n(&def, "leaked_allocations") + n(&def, "runtime_owned_blocks")
    );
    assert_eq!(
        n(&all, "leaked_bytes"),
        n(&def, "leaked_bytes") + n(&def, "runtime_owned_bytes")
    );
    let text = tidemark_cli(["summary", "ro.tmk"], &s);
    assert!(
        text.stdout
            .contains("runtime-owned, not leaks (per-thread DTV"),
        "{}",
        text.describe()
    );

    // A user's file: the cache becomes runtime-owned under its own label.
    std::fs::write(
        s.join("app.supp"),
        "# kept for the life of the process\n  my_cache_init   # the cache\n\n",
    )
    .unwrap();
    let user = summary(&s, &["--suppressions", "app.supp"]);
    assert_eq!(n(&user, "leaked_allocations"), REAL.0, "{user}");
    assert_eq!(n(&user, "leaked_bytes"), REAL.1);
    let file_rule = rule(&user, "suppression file").expect("the file's rule");
    assert_eq!((n(file_rule, "blocks"), n(file_rule, "bytes")), CACHE);

    // The leaked flamegraph shows only the leaks.
    let fg = tidemark_cli(
        [
            "flamegraph",
            "--folded",
            "--metric",
            "leaked",
            "--suppressions",
            "app.supp",
            "-o",
            "-",
            "ro.tmk",
        ],
        &s,
    );
    fg.assert_success("tidemark flamegraph --folded --metric leaked");
    let lines: Vec<&str> = fg.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].ends_with(";main;real_leak 500"), "{lines:?}");

    // Budgets: within 500 leaked bytes only once the cache is suppressed.
    assert_eq!(
        check(&s, &["--suppressions", "app.supp"]).status.code(),
        Some(0)
    );
    assert_eq!(check(&s, &[]).status.code(), Some(1));

    // The report's leaked numbers are the summary's.
    let r = tidemark_cli(
        [
            "report",
            "--suppressions",
            "app.supp",
            "ro.tmk",
            "-o",
            "-",
            "--format",
            "json",
        ],
        &s,
    );
    r.assert_success("tidemark report");
    let r: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        r["scenarios"][0]["metrics"]["leaked_bytes"]["mean"].as_f64(),
        Some(REAL.1 as f64)
    );
}

#[test]
fn a_bad_suppression_file_is_an_error_naming_the_file_and_line() {
    let s = Scratch::new("suppressions-bad");
    std::fs::write(s.join("x.tmk"), b"not read").unwrap();
    std::fs::write(s.join("bad.supp"), "ok_name\n*\n").unwrap();
    let r = tidemark_cli(["summary", "--suppressions", "bad.supp", "x.tmk"], &s);
    assert_eq!(r.status.code(), Some(2), "{}", r.describe());
    assert!(r.stderr.contains("bad.supp:2: "), "{}", r.describe());
    let r = tidemark_cli(["summary", "--suppressions", "missing.supp", "x.tmk"], &s);
    assert_eq!(r.status.code(), Some(2), "{}", r.describe());
    assert!(r.stderr.contains("missing.supp"), "{}", r.describe());
}
