//! Escape classes and stack peaks against programs that know them: `fixtures/c/escape.c` (built
//! without frame pointers) and `tm-small-objects` (Rust), both under `tidemark run --escape`.
//! Each site's blocks must all be in the class the program gave them (these sites are 100% one
//! class: the test asks for exactly that), and the main thread's stack peak must lie within
//! [`PEAK_TOLERANCE_BYTES`] above what the program measured.

mod support;

use serde_json::Value;
use support::*;

/// How far the recorded stack peak may exceed the program's own measure. The program measures
/// down to a local variable of its deepest allocating frame; the recorder down to that frame's
/// stack pointer at the malloc call, which lies at most that frame's size (tens of bytes here)
/// below it. The recorded peak is a lower bound of the true one (docs/metrics.md): it may not be
/// below the program's measure.
const PEAK_TOLERANCE_BYTES: u64 = 1024;

fn record_escape(scratch: &Scratch, program: &std::path::Path, args: &[&str]) -> Value {
    record_escape_to(scratch, "profile.tmk", program, args)
}

fn record_escape_to(
    scratch: &Scratch,
    name: &str,
    program: &std::path::Path,
    args: &[&str],
) -> Value {
    let out = scratch.join(name);
    let mut run_args = vec![
        "run",
        "--escape",
        "-o",
        path_str(&out),
        "--",
        path_str(program),
    ];
    run_args.extend_from_slice(args);
    tidemark_cli(&run_args, scratch).assert_success("tidemark run --escape");
    let summary = tidemark_cli(["summary", "--json", path_str(&out)], scratch);
    summary.assert_success("tidemark summary --json");
    serde_json::from_str(&summary.stdout).expect("summary --json is JSON")
}

fn class_count(site: &Value, class: &str) -> u64 {
    match class {
        "local" | "other_thread" | "never_freed" => site[class].as_u64().unwrap(),
        depth => site["caller_depths"][depth].as_u64().unwrap_or(0),
    }
}

fn check_against_truth(summary: &Value, truth: &Value) {
    let sites = summary["escape_sites"].as_array().expect("escape_sites");
    for t in truth["sites"].as_array().unwrap() {
        let name = t["function"].as_str().unwrap();
        let site = sites
            .iter()
            .find(|s| {
                let f = s["function"].as_str().unwrap();
                f == name || f.ends_with(&format!("::{name}"))
            })
            .unwrap_or_else(|| panic!("no escape site {name} in {sites:#?}"));
        let blocks = t["blocks"].as_u64().unwrap();
        assert_eq!(site["blocks"].as_u64(), Some(blocks), "{name}: {site:#}");
        let class = t["class"].as_str().unwrap();
        assert_eq!(
            class_count(site, class),
            blocks,
            "{name} is {class}: {site:#}"
        );
        let size = t["size"].as_u64().unwrap();
        assert_eq!(
            site["bytes"].as_u64(),
            Some(blocks * size),
            "{name}: {site:#}"
        );
        let eligible = if class == "local" && size <= 4096 {
            blocks
        } else {
            0
        };
        assert_eq!(
            site["stack_eligible_blocks"].as_u64(),
            Some(eligible),
            "{name}"
        );
    }
    let threads = summary["threads"].as_array().expect("threads list");
    let main = &threads[0];
    let peak = main["stack_peak_bytes"].as_u64().unwrap();
    let truth_peak = truth["main_stack_peak_bytes"].as_u64().unwrap();
    assert!(
        truth_peak > 64 * 1024,
        "the program recursed 64 KiB deep: {truth_peak}"
    );
    assert!(
        peak >= truth_peak && peak - truth_peak <= PEAK_TOLERANCE_BYTES,
        "main stack peak {peak} vs the program's {truth_peak}"
    );
    assert_eq!(main["stack_size_bytes"].as_u64().unwrap() % 4096, 0);
    assert!(
        threads.len() >= 2,
        "the worker thread is listed: {threads:#?}"
    );
}

#[test]
fn c_sites_have_their_escape_classes_and_the_stack_peak() {
    let scratch = Scratch::new("escape-c");
    let exe = compile_c("escape", &scratch, &["-pthread"]);
    let truth_path = scratch.join("truth.json");
    let summary = record_escape(&scratch, &exe, &["--truth", path_str(&truth_path)]);
    let mut truth: Value =
        serde_json::from_str(&std::fs::read_to_string(&truth_path).unwrap()).unwrap();
    // The C program writes its sites as an object keyed by function.
    let sites: Vec<Value> = truth["sites"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(f, v)| {
            let mut v = v.clone();
            v["function"] = Value::from(f.clone());
            v
        })
        .collect();
    truth["sites"] = Value::from(sites);
    check_against_truth(&summary, &truth);
    assert_eq!(summary["stack_eligible_blocks"].as_u64(), Some(1001));
    // The timeline's stack series reaches the recursion's depth in some interval.
    let out = scratch.join("profile.tmk");
    let csv = tidemark_cli(["timeline", "--csv", "-o", "-", path_str(&out)], &scratch);
    csv.assert_success("tidemark timeline --csv");
    let mut lines = csv.stdout.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = header
        .iter()
        .position(|h| *h == "stack_depth_bytes")
        .expect("a stack_depth_bytes column");
    let deepest = lines
        .filter_map(|l| l.split(',').nth(col)?.parse::<u64>().ok())
        .max()
        .unwrap();
    let truth_peak = truth["main_stack_peak_bytes"].as_u64().unwrap();
    assert!(
        deepest >= truth_peak && deepest - truth_peak <= PEAK_TOLERANCE_BYTES,
        "deepest interval {deepest} vs the program's {truth_peak}"
    );
}

#[test]
fn rust_sites_have_their_escape_classes_heap_mode_against_stack_mode() {
    let scratch = Scratch::new("escape-rust");
    let exe = fixture_bin("tm-small-objects", &scratch);
    let truth_path = scratch.join("truth.json");
    let heap = record_escape_to(
        &scratch,
        "heap.tmk",
        &exe,
        &[
            "--mode",
            "heap",
            "--iterations",
            "20000",
            "--truth",
            path_str(&truth_path),
        ],
    );
    let truth: Value =
        serde_json::from_str(&std::fs::read_to_string(&truth_path).unwrap()).unwrap();
    check_against_truth(&heap, &truth);
    let stack = record_escape_to(
        &scratch,
        "stack.tmk",
        &exe,
        &[
            "--mode",
            "stack",
            "--iterations",
            "20000",
            "--truth",
            path_str(&truth_path),
        ],
    );
    let truth: Value =
        serde_json::from_str(&std::fs::read_to_string(&truth_path).unwrap()).unwrap();
    check_against_truth(&stack, &truth);
    let eligible = |v: &Value| v["stack_eligible_blocks"].as_u64().unwrap();
    assert!(
        eligible(&heap) >= eligible(&stack) + 20_000,
        "heap mode has 20,000 more stack-eligible blocks: {} vs {}",
        eligible(&heap),
        eligible(&stack)
    );
    // The report: the stack-eligible row with its drop, and the section naming the site.
    let report = tidemark_cli(
        [
            "report",
            "heap=heap.tmk",
            "stack=stack.tmk",
            "-o",
            "-",
            "--format",
            "md",
        ],
        &scratch,
    );
    report.assert_success("tidemark report");
    let md = &report.stdout;
    let row = md
        .lines()
        .find(|l| l.contains("#stack-eligible)"))
        .unwrap_or_else(|| panic!("a stack-eligible row:\n{md}"));
    assert!(row.contains("−"), "a drop from heap to stack: {row}");
    let section = &md[md.find("## Could live on the stack").expect("the section")..];
    assert!(section.contains("| heap | `tidemark_fixtures::escape::small_object` | 20,000 |"));
    assert!(!section.contains("| stack | `tidemark_fixtures::escape::small_object`"));
    // A flamegraph of the metric, and a clear refusal for a profile without frame addresses.
    let svg = tidemark_cli(
        [
            "flamegraph",
            "--metric",
            "stack-eligible",
            "-o",
            "-",
            "heap.tmk",
        ],
        &scratch,
    );
    svg.assert_success("tidemark flamegraph --metric stack-eligible");
    assert!(svg.stdout.contains("small_object"));
}

#[test]
fn profiles_without_escape_list_threads_and_their_count() {
    let scratch = Scratch::new("escape-off");
    let exe = fixture_bin("tm-small-objects", &scratch);
    let rec = record(&scratch, &exe, &["--iterations", "10"]);
    let summary = tidemark_cli(["summary", "--json", path_str(&rec.profile)], &scratch);
    summary.assert_success("tidemark summary --json");
    let v: Value = serde_json::from_str(&summary.stdout).unwrap();
    // The same `threads` list as with `--escape`, and the count beside it.
    let threads = v["threads"].as_array().expect("threads list");
    assert_eq!(
        v["thread_count"].as_u64(),
        Some(threads.len() as u64),
        "{v}"
    );
    assert!(threads.len() >= 2, "main and the worker: {threads:#?}");
    for t in threads {
        assert!(t["tid"].as_u64().is_some_and(|tid| tid > 0), "{t}");
        assert!(t["name"].is_string(), "{t}");
        let size = t["stack_size_bytes"].as_u64().expect("stack size");
        assert!(size > 0 && size % 4096 == 0, "{t}");
        // Null, or a measured lower bound within the stack.
        let peak = &t["stack_peak_bytes"];
        assert!(
            peak.is_null() || peak.as_u64().is_some_and(|p| p > 0 && p <= size),
            "{t}"
        );
    }
    // Without `--escape` the recorder still notes the stack pointer of every unwound
    // allocation, so the main thread, which allocates, has a measured peak.
    assert!(
        threads[0]["stack_peak_bytes"].as_u64().is_some(),
        "{}",
        threads[0]
    );
    assert!(v.get("escape_sites").is_none());
    let svg = tidemark_cli(
        [
            "flamegraph",
            "--metric",
            "stack-eligible",
            "-o",
            "-",
            path_str(&rec.profile),
        ],
        &scratch,
    );
    assert_eq!(svg.status.code(), Some(2), "{}", svg.describe());
    assert!(
        svg.stderr.contains("record with tidemark run --escape"),
        "{}",
        svg.stderr
    );
}
