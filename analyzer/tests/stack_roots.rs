//! The root end of stacks, one rule in every output: a stack that stopped unwinding before a
//! thread or process entry starts with `[unwinding stopped]`, a stack cut at the frame limit with
//! `[truncated]` (folded stacks, flamegraphs, the JSON, DHAT and Firefox exports, the page's
//! call tree), and the Rust runtime's start-up frames fold into one `[Rust runtime]` frame in
//! flamegraphs unless `--keep-runtime-frames`.
//!
//! `tests/data/stacks/stopped.c` allocates 24 blocks under a function compiled without unwind
//! tables (`no_cfi.c`) and 8 blocks straight from `main`.

mod support;

use std::path::PathBuf;
use std::process::Command;

use support::{load, preload_lib, run_bounded, tidemark_cli, workspace_root, Scratch};
use tidemark_analyzer::render::{folded, Metric};

const STOPPED_BLOCKS: u64 = 24;
const WHOLE_BLOCKS: u64 = 8;
const STOPPED: &str = "[unwinding stopped]";

fn gcc(args: &[&str], scratch: &Scratch) {
    let out = Command::new("gcc")
        .args(args)
        .current_dir(scratch.path())
        .output()
        .unwrap_or_else(|e| panic!("cannot run gcc (scripts/setup.sh installs it): {e}"));
    assert!(
        out.status.success(),
        "gcc {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn compile_stopped(s: &Scratch) -> PathBuf {
    let dir = workspace_root().join("analyzer/tests/data/stacks");
    let main = dir.join("stopped.c");
    let no_cfi = dir.join("no_cfi.c");
    gcc(
        &[
            "-O2",
            "-g",
            "-fomit-frame-pointer",
            "-c",
            main.to_str().unwrap(),
            "-o",
            "s.o",
        ],
        s,
    );
    gcc(
        &[
            "-O2",
            "-fomit-frame-pointer",
            "-fno-asynchronous-unwind-tables",
            "-fno-unwind-tables",
            "-c",
            no_cfi.to_str().unwrap(),
            "-o",
            "n.o",
        ],
        s,
    );
    gcc(&["s.o", "n.o", "-o", "stopped"], s);
    s.join("stopped")
}

fn record(s: &Scratch, exe: &std::path::Path, out: &str) {
    preload_lib();
    let mut cmd = Command::new(support::tidemark());
    cmd.args(["run", "-o", out, "--"])
        .arg(exe)
        .current_dir(s.path());
    run_bounded(cmd, s, support::RUN_TIMEOUT).assert_success("tidemark run");
}

/// Sum of the values of folded lines matching `pred`.
fn sum(lines: &[String], pred: &dyn Fn(&str) -> bool) -> u64 {
    lines
        .iter()
        .filter(|l| pred(l))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum()
}

#[test]
fn stacks_that_stopped_unwinding_get_one_marked_root_everywhere() {
    let s = Scratch::new("stacks-stopped");
    let exe = compile_stopped(&s);
    record(&s, &exe, "stopped.tmk");
    let p = load(&s.join("stopped.tmk"));

    // Folded stacks: exactly the blocks allocated under through_no_cfi sit under the marker,
    // and the blocks allocated from main reach _start.
    let lines = folded(&p, Metric::Allocations);
    let stopped_root = format!("{STOPPED};through_no_cfi;alloc_block ");
    assert_eq!(
        sum(&lines, &|l| l.starts_with(&stopped_root)),
        STOPPED_BLOCKS,
        "{lines:?}"
    );
    assert_eq!(
        sum(&lines, &|l| l.contains("through_no_cfi")
            && !l.starts_with(STOPPED)),
        0,
        "{lines:?}"
    );
    assert_eq!(
        sum(&lines, &|l| l.starts_with("_start;")
            && l.contains(";main;alloc_block ")),
        WHOLE_BLOCKS,
        "{lines:?}"
    );

    // The command line's folded output and SVG flamegraph.
    let fg = tidemark_cli(
        [
            "flamegraph",
            "--folded",
            "--metric",
            "allocations",
            "-o",
            "-",
            "stopped.tmk",
        ],
        &s,
    );
    fg.assert_success("tidemark flamegraph --folded");
    assert!(
        fg.stdout
            .contains(&format!("{stopped_root}{STOPPED_BLOCKS}\n")),
        "{}",
        fg.describe()
    );
    let svg = tidemark_cli(["flamegraph", "-o", "-", "stopped.tmk"], &s);
    svg.assert_success("tidemark flamegraph");
    assert!(svg.stdout.contains(STOPPED), "no marker in the SVG");

    // The JSON export names the marker of each stack; DHAT and Firefox put it at the root.
    let j = tidemark_cli(["export", "--format", "json", "-o", "-", "stopped.tmk"], &s);
    j.assert_success("tidemark export --format json");
    let j: serde_json::Value = serde_json::from_str(&j.stdout).unwrap();
    let marked: u64 = j["stacks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|st| st["root"] == STOPPED)
        .map(|st| st["allocations"].as_u64().unwrap())
        .sum();
    assert_eq!(marked, STOPPED_BLOCKS);
    let d = tidemark_cli(["export", "--format", "dhat", "-o", "-", "stopped.tmk"], &s);
    d.assert_success("tidemark export --format dhat");
    let d: serde_json::Value = serde_json::from_str(&d.stdout).unwrap();
    let ftbl = d["ftbl"].as_array().unwrap();
    let dhat_marked: u64 = d["pps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|pp| {
            let fs = pp["fs"].as_array().unwrap();
            let root = fs.last().unwrap().as_u64().unwrap() as usize;
            ftbl[root] == STOPPED
        })
        .map(|pp| pp["tbk"].as_u64().unwrap())
        .sum();
    assert_eq!(dhat_marked, STOPPED_BLOCKS);
    let fx = tidemark_cli(
        ["export", "--format", "firefox", "-o", "-", "stopped.tmk"],
        &s,
    );
    fx.assert_success("tidemark export --format firefox");
    assert!(
        fx.stdout.contains(STOPPED),
        "no marker in the Firefox profile"
    );

    // The page's call tree: one root node named by the marker.
    let v = tidemark_analyzer::render::view::data::view_data(&p, "t", None, false);
    let strings = v["strings"].as_array().unwrap();
    let fns = v["frames"]["fn"].as_array().unwrap();
    let parents = v["nodes"]["parent"].as_array().unwrap();
    let frames = v["nodes"]["frame"].as_array().unwrap();
    let roots: Vec<&str> = (0..parents.len())
        .filter(|&i| parents[i] == -1)
        .map(|i| {
            let f = frames[i].as_u64().unwrap() as usize;
            strings[fns[f].as_u64().unwrap() as usize].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        roots.iter().filter(|r| **r == STOPPED).count(),
        1,
        "{roots:?}"
    );
    assert!(!roots.contains(&"through_no_cfi"), "{roots:?}");
}

#[test]
fn flamegraphs_fold_the_rust_runtime_unless_asked_to_keep_it() {
    let s = Scratch::new("stacks-runtime");
    let churn = support::fixture_bin("tm-churn", &s);
    preload_lib();
    let mut cmd = Command::new(support::tidemark());
    cmd.args(["run", "-o", "churn.tmk", "--"])
        .arg(&churn)
        .args(["--threads", "1", "--iterations", "500"])
        .current_dir(s.path());
    run_bounded(cmd, &s, support::RUN_TIMEOUT).assert_success("tidemark run");
    let fold = |extra: &[&str]| -> Vec<String> {
        let mut args = vec![
            "flamegraph",
            "--folded",
            "--metric",
            "allocations",
            "-o",
            "-",
        ];
        args.extend_from_slice(extra);
        args.push("churn.tmk");
        let r = tidemark_cli(args, &s);
        r.assert_success("tidemark flamegraph --folded");
        r.stdout.lines().map(str::to_owned).collect()
    };
    let folded_runtime = fold(&[]);
    let kept = fold(&["--keep-runtime-frames"]);
    let p = load(&s.join("churn.tmk"));
    // Same calls either way, all of the profile's.
    assert_eq!(sum(&folded_runtime, &|_| true), p.totals.counts.allocations);
    assert_eq!(sum(&kept, &|_| true), p.totals.counts.allocations);
    // The main thread's user code hangs under one [Rust runtime] frame, with nothing of the
    // start-up path left; kept, the same calls start at _start and go through lang_start.
    let user_calls = sum(&kept, &|l| {
        l.starts_with("_start;")
            && l.contains(";std::rt::lang_start")
            && l.contains(";tm_churn::main;")
    });
    assert!(user_calls > 0, "{kept:?}");
    assert_eq!(
        sum(&folded_runtime, &|l| l
            .starts_with("[Rust runtime];tm_churn::main;")
            && !l.contains("lang_start")),
        user_calls,
        "{folded_runtime:?}"
    );
    assert!(kept.iter().any(|l| l.contains("std::rt::lang_start")));
    assert!(!kept.iter().any(|l| l.contains("[Rust runtime]")));
}
