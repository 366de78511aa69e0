//! `tidemark view`: the page's data against the profile, and the page itself used in a real
//! browser (headless Chromium driven by puppeteer-core, installed by scripts/setup.sh): brush a
//! time range, search, sort, zoom; no console errors, no network. Screenshots of each view are
//! kept under `target/view-screenshots/`.

mod support;

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::{artifact, record, run_bounded, tidemark_cli, workspace_root, Scratch};
use tidemark::format::{Reader, Record};
use tidemark_analyzer::load::{load_path_with_time_buckets, LoadOptions};
use tidemark_analyzer::model::Profile;
use tidemark_analyzer::render::view::DEFAULT_BUCKETS;

/// The fixture's growing function: every byte of the sawtooth passes through it.
const GROW_FN: &str = "tm_sawtooth::saw_grow";

/// Records the sawtooth fixture. It runs straight from `target/release`: a copy made while
/// another test thread forks can fail to start with ETXTBSY.
fn sawtooth(scratch: &Scratch) -> (PathBuf, Profile) {
    let bin = artifact("tm-sawtooth");
    let rec = record(
        scratch,
        &bin,
        &["--duration-ms", "1200", "--period-ms", "300"],
    );
    let p = load_path_with_time_buckets(&rec.profile, &LoadOptions::default(), DEFAULT_BUCKETS)
        .unwrap_or_else(|e| panic!("loading {}: {e:#}", rec.profile.display()));
    (rec.profile, p)
}

/// Requested bytes of the allocation events numbered `lo <= seq < hi`, read straight from the
/// file's records (not through the loader the page's data comes from).
fn allocated_between(profile: &Path, lo: u64, hi: u64) -> u64 {
    let f = File::open(profile).unwrap();
    let mut r = Reader::new(BufReader::new(f)).unwrap();
    let mut sum = 0u64;
    while let Some(chunk) = r.next_chunk().unwrap() {
        for rec in chunk {
            match rec.unwrap() {
                Record::Alloc { seq, size, .. } | Record::Realloc { seq, size, .. }
                    if (lo..hi).contains(&seq) =>
                {
                    sum += size
                }
                _ => {}
            }
        }
    }
    sum
}

#[test]
fn time_buckets_add_up_to_the_profile() {
    let scratch = Scratch::new("view-buckets");
    let (path, p) = sawtooth(&scratch);
    let tb = p.time_buckets.as_ref().expect("loaded with time buckets");
    assert!(
        tb.buckets.len() <= DEFAULT_BUCKETS && tb.buckets.len() >= 10,
        "{} buckets",
        tb.buckets.len()
    );
    let cells = || tb.buckets.iter().flat_map(|b| b.cells.iter());
    assert_eq!(
        cells().map(|c| c.allocated_bytes).sum::<u64>(),
        p.totals.counts.allocated_bytes
    );
    assert_eq!(
        cells().map(|c| c.allocations).sum::<u64>(),
        p.totals.counts.allocations
    );
    assert_eq!(
        cells().map(|c| c.leaked_bytes).sum::<u64>(),
        p.totals.counts.leaked_bytes
    );
    assert_eq!(
        cells().map(|c| c.temporary_allocations).sum::<u64>(),
        p.totals.counts.temporary_allocations
    );
    // Live at the end of the last bucket, per stack, is what leaked from it.
    for (i, s) in p.stack_stats.iter().enumerate() {
        let live: i128 = cells()
            .filter(|c| c.stack as usize == i)
            .map(|c| c.allocated_bytes as i128 - c.freed_bytes as i128)
            .sum();
        assert_eq!(live, s.counts.leaked_bytes as i128, "stack {i}");
    }
    // Bucket bounds tile time and sequence numbers, and each bucket holds exactly the events of
    // its sequence range.
    for w in tb.buckets.windows(2) {
        assert_eq!(w[0].end_ns, w[1].start_ns);
        assert_eq!(w[0].seq_hi, w[1].seq_lo);
    }
    assert_eq!(tb.buckets[0].seq_lo, 0);
    assert_eq!(tb.buckets.last().unwrap().seq_hi, u64::MAX);
    for b in tb.buckets.iter().step_by(7) {
        let cell_sum: u64 = b.cells.iter().map(|c| c.allocated_bytes).sum();
        assert_eq!(cell_sum, allocated_between(&path, b.seq_lo, b.seq_hi));
    }
    let sizes: u64 = tb
        .buckets
        .iter()
        .flat_map(|b| b.size_histogram.iter())
        .sum();
    assert_eq!(sizes, p.totals.counts.allocations);
}

/// The names of the call tree's nodes in the page's data.
fn tree_names(data: &serde_json::Value) -> Vec<String> {
    let strings = data["strings"].as_array().unwrap();
    let frame_fn = data["frames"]["fn"].as_array().unwrap();
    data["nodes"]["frame"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let s = frame_fn[f.as_u64().unwrap() as usize].as_u64().unwrap() as usize;
            strings[s].as_str().unwrap().to_owned()
        })
        .collect()
}

#[test]
fn rust_runtime_frames_fold_into_one_unless_kept() {
    let scratch = Scratch::new("view-runtime");
    let (_, p) = sawtooth(&scratch);
    let folded = tidemark_analyzer::render::view::view_data(&p, "t", None, false);
    let kept = tidemark_analyzer::render::view::view_data(&p, "t", None, true);
    let folded_names = tree_names(&folded);
    let kept_names = tree_names(&kept);
    let runtime = tidemark_analyzer::render::view::data::RUNTIME_FRAME;
    assert!(folded_names.iter().any(|n| n == runtime));
    assert!(!folded_names
        .iter()
        .any(|n| n.starts_with("std::rt::lang_start")));
    assert!(kept_names
        .iter()
        .any(|n| n.starts_with("std::rt::lang_start")));
    assert!(!kept_names.iter().any(|n| n == runtime));
    // The fixture's own functions stay, directly under the folded frame.
    let parents = folded["nodes"]["parent"].as_array().unwrap();
    let main = folded_names
        .iter()
        .position(|n| n == "tm_sawtooth::main")
        .expect("tm_sawtooth::main in the tree");
    let parent = parents[main].as_i64().unwrap();
    assert!(parent >= 0 && folded_names[parent as usize] == runtime);
}

fn node_modules() -> PathBuf {
    let dir = workspace_root().join("analyzer/tests/browser");
    assert!(
        dir.join("node_modules/puppeteer-core").is_dir() && Path::new("/usr/bin/chromium").exists(),
        "the browser tests need chromium and puppeteer-core in {}: run scripts/setup.sh",
        dir.display()
    );
    dir
}

fn numbers(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

#[test]
fn the_page_works_in_a_real_browser() {
    let driver_dir = node_modules();
    let scratch = Scratch::new("view-browser");
    let (profile, p) = sawtooth(&scratch);
    let html = scratch.join("page.html");
    tidemark_cli(
        [
            "view".as_ref(),
            profile.as_os_str(),
            "-o".as_ref(),
            html.as_os_str(),
        ],
        &scratch,
    )
    .assert_success("tidemark view");
    let page = std::fs::read_to_string(&html).unwrap();
    for tag in ["<script src", "<link", "<img", "@import", "url("] {
        assert!(
            !page.contains(tag),
            "the page is self-contained: found {tag}"
        );
    }
    let shots = support::release_dir()
        .parent()
        .unwrap()
        .join("view-screenshots");
    let mut cmd = Command::new("node");
    cmd.current_dir(&driver_dir)
        .arg(driver_dir.join("drive.mjs"))
        .arg(&html)
        .arg(&shots)
        .arg("saw_grow");
    let run = run_bounded(cmd, &scratch, support::RUN_TIMEOUT);
    run.assert_success("node drive.mjs (the browser driver)");
    let out: serde_json::Value = serde_json::from_str(run.stdout.trim())
        .unwrap_or_else(|e| panic!("driver output is not JSON ({e}): {}", run.stdout));

    // Nothing went wrong and nothing was fetched.
    for k in ["console", "pageErrors", "requests", "resources"] {
        assert_eq!(out[k], serde_json::json!([]), "{k}: {}", out[k]);
    }

    // The whole run: the flamegraph's total is the profile's.
    assert_eq!(
        out["full"]["flame"]["total"].as_f64().unwrap() as u64,
        p.totals.counts.allocated_bytes
    );

    // Search: exactly the frames named like the term light up, and the sum is the function's
    // inclusive total.
    let matched: Vec<&str> = out["search"]["matched"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(!matched.is_empty(), "{}", out["search"]);
    assert!(
        matched.iter().all(|n| n.contains("saw_grow")),
        "{matched:?}"
    );
    let unmatched = out["search"]["unmatched"].as_array().unwrap();
    assert!(unmatched
        .iter()
        .all(|n| !n.as_str().unwrap().contains("saw_grow")));
    let fn_total = tidemark_analyzer::analysis::function_totals(&p)[GROW_FN].allocated_bytes;
    assert_eq!(out["search"]["sum"].as_f64().unwrap() as u64, fn_total);

    // The brushed range: a strict part of the run, and the flamegraph's total is the requested
    // bytes of exactly the events in its bucket range, counted from the file's records.
    let sel = &out["brushed"]["selection"];
    let b0: usize = sel["b0"].as_str().unwrap().parse().unwrap();
    let b1: usize = sel["b1"].as_str().unwrap().parse().unwrap();
    let n = p.time_buckets.as_ref().unwrap().buckets.len();
    assert!(
        0 < b0 && b0 < b1 && b1 < n - 1,
        "brushed buckets {b0}..={b1} of {n}"
    );
    let lo: u64 = sel["seqLo"].as_str().unwrap().parse().unwrap();
    let hi: u64 = sel["seqHi"].as_str().unwrap().parse().unwrap();
    let expected = allocated_between(&profile, lo, hi);
    assert!(expected > 0 && expected < p.totals.counts.allocated_bytes);
    assert_eq!(
        out["brushed"]["flame"]["total"].as_f64().unwrap() as u64,
        expected,
        "{}",
        out["brushed"]
    );
    let shown = tidemark_analyzer::render::units::count(expected);
    assert!(
        sel["text"].as_str().unwrap().contains(&shown),
        "the selection line shows the exact bytes {shown}: {}",
        sel["text"]
    );

    // Hover and zoom.
    assert!(out["timelineTip"].as_str().unwrap().contains("live heap"));
    assert!(out["flameTip"].as_str().unwrap().contains("of the total"));
    assert!(out["zoomed"]["text"]
        .as_str()
        .unwrap()
        .contains("zoomed to"));

    // Sorting the sites table by calls, both ways.
    let desc = numbers(&out["sortedDesc"]);
    let asc = numbers(&out["sortedAsc"]);
    assert!(
        desc.len() >= 2 && desc.windows(2).all(|w| w[0] >= w[1]),
        "{desc:?}"
    );
    assert!(asc.windows(2).all(|w| w[0] <= w[1]), "{asc:?}");
    let mut rev = asc.clone();
    rev.reverse();
    assert_eq!(rev, desc);
    assert!(!numbers(&out["backtraces"]).is_empty());

    for name in [
        "page",
        "timeline",
        "timeline-brushed",
        "flamegraph",
        "flamegraph-search",
        "flamegraph-brushed",
        "tables",
        "tables-sorted",
        "histograms",
        "threads",
    ] {
        let f = shots.join(format!("{name}.png"));
        assert!(
            std::fs::metadata(&f)
                .map(|m| m.len() > 1000)
                .unwrap_or(false),
            "{} missing",
            f.display()
        );
    }
}

#[test]
fn the_report_s_flamegraphs_are_the_page_s_component() {
    let driver_dir = node_modules();
    let scratch = Scratch::new("view-report");
    let (profile, p) = sawtooth(&scratch);
    let html = scratch.join("report.html");
    // The same profile twice: a comparison with no change, whose graphs must still add up.
    tidemark_cli(
        [
            "report".as_ref(),
            format!("a={}", profile.display()).as_ref(),
            format!("b={}", profile.display()).as_ref(),
            "-o".as_ref(),
            html.as_os_str(),
        ] as [&std::ffi::OsStr; 5],
        &scratch,
    )
    .assert_success("tidemark report");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(!page.contains("<img"), "flamegraphs are inline components");
    let shots = support::release_dir()
        .parent()
        .unwrap()
        .join("view-screenshots");
    let mut cmd = Command::new("node");
    cmd.current_dir(&driver_dir)
        .arg(driver_dir.join("drive.mjs"))
        .arg("--report")
        .arg(&html)
        .arg(&shots)
        .arg("saw_grow");
    let run = run_bounded(cmd, &scratch, support::RUN_TIMEOUT);
    run.assert_success("node drive.mjs --report");
    let out: serde_json::Value = serde_json::from_str(run.stdout.trim())
        .unwrap_or_else(|e| panic!("driver output is not JSON ({e}): {}", run.stdout));
    for k in ["console", "pageErrors", "requests", "resources"] {
        assert_eq!(out[k], serde_json::json!([]), "{k}: {}", out[k]);
    }
    let graphs = out["graphs"].as_array().unwrap();
    assert_eq!(graphs.len(), 2, "{out}");
    let fn_total = tidemark_analyzer::analysis::function_totals(&p)[GROW_FN].allocated_bytes;
    for g in graphs {
        assert_eq!(
            g["total"].as_f64().unwrap() as u64,
            p.totals.counts.allocated_bytes
        );
        assert_eq!(g["sum"].as_f64().unwrap() as u64, fn_total, "{g}");
        assert!(g["matched"].as_u64().unwrap() >= 1 && g["frames"].as_u64().unwrap() > 5);
    }
}

/// Runs the driver's smoke mode (load, brush, switch metrics and tabs) and returns its report.
fn smoke(driver_dir: &Path, html: &Path, name: &str, scratch: &Scratch) -> serde_json::Value {
    let shots = support::release_dir()
        .parent()
        .unwrap()
        .join("view-screenshots");
    let mut cmd = Command::new("node");
    cmd.current_dir(driver_dir)
        .arg(driver_dir.join("drive.mjs"))
        .arg("--smoke")
        .arg(html)
        .arg(&shots)
        .arg(name);
    let run = run_bounded(cmd, scratch, support::RUN_TIMEOUT);
    run.assert_success("node drive.mjs --smoke");
    serde_json::from_str(run.stdout.trim())
        .unwrap_or_else(|e| panic!("driver output is not JSON ({e}): {}", run.stdout))
}

#[test]
fn truncated_and_sample_less_profiles_give_working_pages() {
    let driver_dir = node_modules();
    let scratch = Scratch::new("view-edges");
    let bin = artifact("tm-sawtooth");
    // One sample interval longer than the run: the timeline has next to nothing.
    let out = scratch.join("sparse.tmk");
    let mut cmd = Command::new(support::tidemark());
    cmd.args(["run", "--interval", "10s", "-o"])
        .arg(&out)
        .arg("--")
        .arg(&bin)
        .args(["--duration-ms", "200"])
        .current_dir(scratch.path());
    run_bounded(cmd, &scratch, support::RUN_TIMEOUT).assert_success("tidemark run --interval 10s");
    // The same profile cut short, inside its events (symbols follow the trailer, so cutting
    // too late only damages them): loads as truncated, and the page says so.
    let bytes = std::fs::read(&out).unwrap();
    let cut = scratch.join("cut.tmk");
    let no_symbols = LoadOptions {
        symbolize: false,
        ..LoadOptions::default()
    };
    let truncated_at = [2, 3, 4, 6, 10, 20].into_iter().find(|d| {
        std::fs::write(&cut, &bytes[..bytes.len() / d]).unwrap();
        tidemark_analyzer::load::load_path(&cut, &no_symbols).is_ok_and(|p| p.truncated.is_some())
    });
    assert!(
        truncated_at.is_some(),
        "no cut of {} loads as truncated",
        out.display()
    );
    for (name, profile, truncated) in [("sparse", &out, false), ("truncated", &cut, true)] {
        let html = scratch.join(&format!("{name}.html"));
        tidemark_cli(
            [
                "view".as_ref(),
                profile.as_os_str(),
                "-o".as_ref(),
                html.as_os_str(),
            ],
            &scratch,
        )
        .assert_success("tidemark view");
        let got = smoke(&driver_dir, &html, name, &scratch);
        for k in ["console", "pageErrors", "requests", "resources"] {
            assert_eq!(got[k], serde_json::json!([]), "{name} {k}: {}", got[k]);
        }
        let warned = got["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("Truncated profile"));
        assert_eq!(warned, truncated, "{name}: {got}");
        assert!(
            got["flame"].as_str().unwrap().starts_with("Total "),
            "{got}"
        );
    }
}
