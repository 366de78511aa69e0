//! Stack limits are never silent: stacks cut at the recorder's 128-frame limit are marked (a
//! `[truncated]` root in folded stacks and flamegraphs, a warning with the share affected), and
//! frame-pointer walks on code without frame pointers are reported with a hint to use DWARF.
//! The program (`tests/data/stacks/deep.c`) allocates 40 blocks 300 frames deep and 160 blocks
//! near `main`.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::{load, preload_lib, run_bounded, tidemark, workspace_root, Finished, Scratch};
use tidemark_analyzer::analysis::{stack_quality, summary};
use tidemark_analyzer::render::{folded, Metric};

const DEEP_BLOCKS: u64 = 40;
const SHALLOW_BLOCKS: u64 = 160;

fn compile_deep(scratch: &Scratch) -> PathBuf {
    let src = workspace_root().join("analyzer/tests/data/stacks/deep.c");
    let exe = scratch.join("deep");
    let out = Command::new("gcc")
        .args(["-O2", "-g", "-fomit-frame-pointer", "-o"])
        .arg(&exe)
        .arg(&src)
        .output()
        .unwrap_or_else(|e| panic!("cannot run gcc (scripts/setup.sh installs it): {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

fn run(scratch: &Scratch, exe: &Path, unwind: &str, out: &str) -> Finished {
    preload_lib();
    let mut cmd = Command::new(tidemark());
    cmd.args(["run", "--unwind", unwind, "-o", out, "--"])
        .arg(exe)
        .current_dir(scratch.path());
    let r = run_bounded(cmd, scratch, support::RUN_TIMEOUT);
    r.assert_success("tidemark run");
    r
}

#[test]
fn stacks_beyond_the_frame_limit_are_marked_and_counted() {
    let s = Scratch::new("stacks-deep");
    let exe = compile_deep(&s);
    let r = run(&s, &exe, "dwarf", "deep.tmk");
    let p = load(&s.join("deep.tmk"));
    let q = stack_quality(&p);
    assert_eq!(q.truncated_allocations, DEEP_BLOCKS, "{q:?}");
    assert!(q.allocations >= DEEP_BLOCKS + SHALLOW_BLOCKS, "{q:?}");
    let share = format!("({DEEP_BLOCKS} of {})", q.allocations);
    assert!(
        r.stderr.contains(&share) && r.stderr.contains("128-frame limit"),
        "{}",
        r.describe()
    );

    // Folded stacks: every deep allocation sits under one [truncated] root, nothing else does.
    let lines = folded(&p, Metric::Allocations);
    let count = |pred: &dyn Fn(&str) -> bool| -> u64 {
        lines
            .iter()
            .filter(|l| pred(l))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum()
    };
    assert_eq!(
        count(&|l| l.starts_with("[truncated];")),
        DEEP_BLOCKS,
        "{lines:?}"
    );
    assert_eq!(
        count(&|l| l.contains("deep_alloc") && !l.starts_with("[truncated];")),
        0,
        "{lines:?}"
    );
    assert_eq!(count(&|l| l.contains(";shallow_alloc ")), SHALLOW_BLOCKS);

    // The summary (text and JSON) carries the warning too.
    let sum = summary(&p, 5);
    assert!(
        sum.warnings.iter().any(|w| w.contains(&share)),
        "{:?}",
        sum.warnings
    );
    let cli = support::tidemark_cli(["summary", "deep.tmk"], &s);
    cli.assert_success("tidemark summary");
    assert!(cli.stdout.contains(&share), "{}", cli.describe());
    let fg = support::tidemark_cli(["flamegraph", "--folded", "-o", "-", "deep.tmk"], &s);
    fg.assert_success("tidemark flamegraph --folded");
    assert!(
        fg.stdout.contains("[truncated];recurse;"),
        "{}",
        fg.describe()
    );
}

#[test]
fn frame_pointer_walks_on_frameless_code_are_reported() {
    let s = Scratch::new("stacks-fp");
    let exe = compile_deep(&s);
    let fp = run(&s, &exe, "fp", "fp.tmk");
    assert!(
        fp.stderr.contains("the stacks look broken") && fp.stderr.contains("--unwind dwarf"),
        "{}",
        fp.describe()
    );
    let q = stack_quality(&load(&s.join("fp.tmk")));
    assert!(q.frame_pointers && q.frame_pointers_look_broken(), "{q:?}");
    let cli = support::tidemark_cli(["summary", "fp.tmk"], &s);
    assert!(
        cli.stdout.contains("the stacks look broken"),
        "{}",
        cli.describe()
    );

    // The same program unwound with DWARF: full stacks, no warning.
    let dwarf = run(&s, &exe, "dwarf", "dwarf.tmk");
    assert!(
        !dwarf.stderr.contains("the stacks look broken"),
        "{}",
        dwarf.describe()
    );
    let q = stack_quality(&load(&s.join("dwarf.tmk")));
    assert!(!q.frame_pointers_look_broken(), "{q:?}");
}
