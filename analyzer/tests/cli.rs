//! The command line: help, `summary --json` fields, flamegraph outputs, `run` with and without a
//! command. Numbers are checked against the library (and the library against fixture truth in
//! ground_truth.rs), so these tests are about wiring and formats.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::process::Command;
use std::time::Duration;

use support::*;

#[test]
fn help_lists_the_commands_and_run_options() {
    let scratch = Scratch::new("help");
    let top = tidemark_cli(["--help"], &scratch);
    top.assert_success("tidemark --help");
    for word in ["run", "summary", "flamegraph"] {
        assert!(
            top.stdout.contains(word),
            "--help lacks {word}: {}",
            top.stdout
        );
    }
    let run = tidemark_cli(["run", "--help"], &scratch);
    run.assert_success("tidemark run --help");
    for word in ["--interval", "--unwind", "-o"] {
        assert!(
            run.stdout.contains(word),
            "run --help lacks {word}: {}",
            run.stdout
        );
    }
    let flame = tidemark_cli(["flamegraph", "--help"], &scratch);
    flame.assert_success("tidemark flamegraph --help");
    for word in ["--metric", "--inverted", "--folded"] {
        assert!(
            flame.stdout.contains(word),
            "flamegraph --help lacks {word}: {}",
            flame.stdout
        );
    }
    let bad = tidemark_cli(["no-such-subcommand"], &scratch);
    assert_eq!(bad.status.code(), Some(2), "{}", bad.describe());
}

fn churn_profile(scratch: &Scratch) -> std::path::PathBuf {
    record(
        scratch,
        &fixture_bin("tm-churn", scratch),
        &["--threads", "2", "--iterations", "4000"],
    )
    .profile
}

#[test]
fn summary_json_has_the_documented_fields_and_library_values() {
    let scratch = Scratch::new("summary-json");
    let profile = churn_profile(&scratch);
    let r = tidemark_cli(
        ["summary", "--json", "--top", "3", path_str(&profile)],
        &scratch,
    );
    r.assert_success("tidemark summary --json");
    let json: serde_json::Value = serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("summary --json is not JSON ({e}): {}", r.describe()));

    let lib = summary_json(&load(&profile), 3);
    for field in [
        "allocations",
        "frees",
        "allocated_bytes",
        "peak_bytes",
        "leaked_bytes",
        "leaked_allocations",
        "temporary_allocations",
    ] {
        assert_eq!(
            field_u64(&json, field),
            field_u64(&lib, field),
            "{field}: CLI and library disagree"
        );
    }
    assert!(
        json.get("duration_ms").is_some(),
        "duration_ms missing: {json:#}"
    );
    assert_eq!(json.get("truncated"), Some(&serde_json::Value::Bool(false)));

    let sites = json["top_sites"].as_array().expect("top_sites is an array");
    assert!(
        !sites.is_empty() && sites.len() <= 3,
        "--top 3 gave {} sites",
        sites.len()
    );
    for site in sites {
        for field in [
            "allocations",
            "allocated_bytes",
            "peak_bytes",
            "leaked_bytes",
            "leaked_allocations",
            "temporary_allocations",
        ] {
            field_u64(site, field);
        }
        assert!(
            site.get("function").is_some_and(|f| f.is_string()),
            "{site:#}"
        );
        assert!(
            site.get("file").is_some() && site.get("line").is_some(),
            "{site:#}"
        );
    }
    // The churn sites allocate almost everything, so they lead the list.
    let functions: Vec<&str> = sites
        .iter()
        .filter_map(|s| s["function"].as_str())
        .collect();
    assert!(
        functions.iter().any(|f| f.contains("churn_")),
        "top sites do not show the churn sites: {functions:?}"
    );

    let text = tidemark_cli(["summary", path_str(&profile)], &scratch);
    text.assert_success("tidemark summary");
    assert!(!text.stdout.trim().is_empty());
}

/// Parses folded lines `frame;frame;... COUNT`.
fn parse_folded(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (stack, count) = l
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("folded line without a count: {l:?}"));
            let count = count
                .parse()
                .unwrap_or_else(|e| panic!("bad count in folded line {l:?}: {e}"));
            (stack.to_owned(), count)
        })
        .collect()
}

#[test]
fn flamegraph_writes_svg_and_sorted_folded_lines_that_add_up() {
    let scratch = Scratch::new("flamegraph");
    let profile = churn_profile(&scratch);
    let summary = summary_json(&load(&profile), 10);

    for extra in [
        &[][..],
        &["--inverted"][..],
        &["--metric", "allocations"][..],
    ] {
        let svg = scratch.join("out.svg");
        let _ = fs::remove_file(&svg);
        let mut args: Vec<std::ffi::OsString> = vec!["flamegraph".into()];
        args.extend(extra.iter().map(Into::into));
        args.extend([
            "-o".into(),
            svg.clone().into_os_string(),
            profile.clone().into(),
        ]);
        tidemark_cli(&args, &scratch).assert_success(&format!("tidemark flamegraph {extra:?}"));
        let text = fs::read_to_string(&svg).expect("flamegraph wrote the SVG");
        assert!(text.contains("<svg"), "{extra:?}: not an SVG");
        assert!(
            text.contains("churn_"),
            "{extra:?}: the SVG lacks the churn frames"
        );
    }

    let expected: BTreeMap<&str, u64> = [
        ("allocated", field_u64(&summary, "allocated_bytes")),
        ("allocations", field_u64(&summary, "allocations")),
        ("leaked", field_u64(&summary, "leaked_bytes")),
        ("peak", field_u64(&summary, "peak_bytes")),
    ]
    .into();
    for (metric, total) in expected {
        let folded = scratch.join(&format!("{metric}.folded"));
        let r = tidemark_cli(
            [
                "flamegraph",
                "--folded",
                "--metric",
                metric,
                "-o",
                path_str(&folded),
                path_str(&profile),
            ],
            &scratch,
        );
        r.assert_success(&format!("tidemark flamegraph --folded --metric {metric}"));
        let lines = parse_folded(&fs::read_to_string(&folded).unwrap());
        assert!(!lines.is_empty() || total == 0, "{metric}: no folded lines");
        for pair in lines.windows(2) {
            assert!(
                pair[0].0 < pair[1].0,
                "{metric}: folded lines not sorted or not merged:\n{}\n{}",
                pair[0].0,
                pair[1].0
            );
        }
        let sum: u64 = lines.iter().map(|(_, c)| c).sum();
        assert_eq!(
            sum, total,
            "{metric}: folded counts add up to {sum}, summary says {total}"
        );
    }
}

#[test]
fn run_exits_with_the_command_status() {
    let scratch = Scratch::new("exit-status");
    let out = scratch.join("profile.tmk");
    let r = tidemark_cli(
        ["run", "-o", path_str(&out), "--", "/bin/sh", "-c", "exit 3"],
        &scratch,
    );
    assert_eq!(r.status.code(), Some(3), "{}", r.describe());
    load(&find_profile(scratch.path(), "profile"));
}

#[test]
fn run_without_a_command_profiles_the_builtin_workload_into_tidemark_out() {
    let scratch = Scratch::new("run-default");
    let mut cmd = Command::new(tidemark());
    cmd.arg("run").current_dir(scratch.path());
    let r = run_bounded(cmd, &scratch, Duration::from_secs(120));
    r.assert_success("tidemark run (no command)");

    let out = scratch.join("tidemark-out");
    let truth_path = out.join("truth.json");
    assert!(
        truth_path.is_file(),
        "tidemark-out/truth.json missing; tidemark-out holds {:?}",
        list_dir(&out)
    );
    let truth = read_truth(&truth_path);
    assert_eq!(truth.workload, "alloc-without-free");
    assert_eq!(truth.config["duration_ms"], 2000);

    let profiles: Vec<_> = list_dir(&out)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "tmk"))
        .collect();
    assert_eq!(
        profiles.len(),
        3,
        "expected the workload's profile and small-objects in heap and stack mode in \
         tidemark-out: {:?}",
        list_dir(&out)
    );
    assert_matches_truth(&out.join("profile.tmk"), &truth);
    // Heap vs stack: the built-in workloads are recorded with frame addresses.
    let text = fs::read_to_string(out.join("summary.txt")).expect("summary.txt written");
    assert!(text.contains("could live on the stack"), "{text}");
    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert!(
        json["escape_sites"].is_array() && json["threads"].is_array(),
        "{json}"
    );

    // The pressure chart and the comparison report of the two scenarios.
    let curves = fs::read_to_string(out.join("curves.svg")).expect("curves.svg written");
    assert!(
        curves.contains("Live heap"),
        "curves.svg has no live-heap panel"
    );
    let view = fs::read_to_string(out.join("view.html")).expect("view.html written");
    assert!(view.contains("id=\"profile-data\"") && view.contains("alloc_without_free"));
    let html = fs::read_to_string(out.join("report.html")).expect("report.html written");
    assert!(html.contains("small-objects-heap") && html.contains("small-objects-stack"));
    let md = fs::read_to_string(out.join("report.md")).expect("report.md written");
    assert!(md.contains("| [Leak verdict]"), "{md}");
    assert!(md.contains("| [Stack-eligible bytes]"), "{md}");
    assert!(
        md.contains("| small-objects-heap | `tidemark_fixtures::escape::small_object` |"),
        "{md}"
    );

    // Every other output a new user gets: SVGs that are SVGs, JSON that parses.
    let files = list_dir(&out);
    let svgs: Vec<_> = files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "svg"))
        .collect();
    assert!(!svgs.is_empty(), "no SVG in tidemark-out: {files:?}");
    for svg in svgs {
        let text = fs::read_to_string(svg).unwrap();
        assert!(text.contains("<svg"), "{} is not an SVG", svg.display());
    }
    for json in files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json") && **p != truth_path)
    {
        let text = fs::read_to_string(json).unwrap();
        serde_json::from_str::<serde_json::Value>(&text)
            .unwrap_or_else(|e| panic!("{} is not JSON: {e}", json.display()));
    }
}
