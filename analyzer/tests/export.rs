//! `tidemark export` read by the real consumers: `go tool pprof` reads every pprof export with
//! the profile's own totals and the fixtures' per-site truth; valgrind's `dh_view.html` (in
//! headless Chromium, driven by Selenium) loads the DHAT export without an error and shows the
//! profile's totals; the DHAT export agrees with the `dhat` crate's own file on the same
//! in-process workload; the Firefox Profiler export has the crate's processed-format version and
//! balanced allocation weights. `scripts/setup.sh` installs golang-go, chromium, chromium-driver
//! and python3-selenium.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::pprof::{pprof_raw, pprof_top};
use support::*;
use tidemark_analyzer::model::Profile;
use tidemark_fixtures::truth::{last_segment, Truth};

/// Runs `tidemark export ARGS` and fails the test unless it succeeds.
fn export(scratch: &Scratch, args: &[&str]) {
    let mut all = vec!["export"];
    all.extend_from_slice(args);
    tidemark_cli(&all, scratch).assert_success(&format!("tidemark {}", all.join(" ")));
}

/// Exports `profile` as pprof (at the end and at the peak), reads both with `go tool pprof -raw`
/// and checks the column sums against the profile's totals and every truth site.
fn check_pprof(scratch: &Scratch, profile: &Path, truth: &Truth) {
    let p: Profile = load(profile);
    let t = &p.totals;
    let end = scratch.join("end.pb.gz");
    let peak = scratch.join("peak.pb.gz");
    export(
        scratch,
        &["--format", "pprof", "-o", path_str(&end), path_str(profile)],
    );
    export(
        scratch,
        &[
            "--format",
            "pprof",
            "--at",
            "peak",
            "-o",
            path_str(&peak),
            path_str(profile),
        ],
    );
    let raw = pprof_raw(scratch, &end);
    assert_eq!((raw.period_type.as_str(), raw.period.as_str()), ("", "0"));
    assert_eq!(
        raw.types,
        [
            "alloc_objects/count",
            "alloc_space/bytes",
            "inuse_objects/count",
            "inuse_space/bytes"
        ]
    );
    assert_eq!(raw.sum("alloc_objects") as u64, t.counts.allocations);
    assert_eq!(raw.sum("alloc_space") as u64, t.counts.allocated_bytes);
    // In use at the end: the leaks and the runtime-owned blocks (both live then).
    assert_eq!(
        raw.sum("inuse_objects") as u64,
        t.counts.leaked_allocations + t.runtime_owned_allocations
    );
    assert_eq!(
        raw.sum("inuse_space") as u64,
        t.counts.leaked_bytes + t.runtime_owned_bytes
    );
    for site in &truth.sites {
        let name = last_segment(&site.function);
        assert_eq!(
            raw.site_sum("alloc_objects", name) as u64,
            site.allocations,
            "{name}: allocations"
        );
        if let Some(bytes) = site.allocated_bytes {
            assert_eq!(
                raw.site_sum("alloc_space", name) as u64,
                bytes,
                "{name}: bytes"
            );
        }
        assert_eq!(
            raw.site_sum("inuse_objects", name) as u64,
            site.leaked_allocations,
            "{name}: leaked allocations"
        );
        assert_eq!(
            raw.site_sum("inuse_space", name) as u64,
            site.leaked_bytes,
            "{name}: leaked bytes"
        );
    }
    let raw = pprof_raw(scratch, &peak);
    assert_eq!(raw.sum("alloc_space") as u64, t.counts.allocated_bytes);
    assert_eq!(raw.sum("inuse_objects") as u64, t.peak_blocks);
    assert_eq!(raw.sum("inuse_space") as u64, t.counts.peak_bytes);
}

#[test]
fn go_pprof_reads_alloc_without_free_with_exact_totals_and_sites() {
    let scratch = Scratch::new("export-awf");
    let truth_path = scratch.join("truth.json");
    let rec = record(
        &scratch,
        &fixture_bin("tm-alloc-without-free", &scratch),
        &[
            "--duration-ms",
            "300",
            "--threads",
            "2",
            "--sites",
            "4",
            "--block-size",
            "3000",
            "--truth",
            path_str(&truth_path),
        ],
    );
    check_pprof(&scratch, &rec.profile, &read_truth(&truth_path));
}

#[test]
fn go_pprof_reads_churn_with_exact_totals_and_sites() {
    let scratch = Scratch::new("export-churn");
    let truth_path = scratch.join("truth.json");
    let rec = record(
        &scratch,
        &fixture_bin("tm-churn", &scratch),
        &[
            "--threads",
            "2",
            "--iterations",
            "10000",
            "--truth",
            path_str(&truth_path),
        ],
    );
    check_pprof(&scratch, &rec.profile, &read_truth(&truth_path));
}

#[test]
fn go_pprof_reads_a_sampled_profile_with_its_rate_and_weighted_totals() {
    let scratch = Scratch::new("export-sampled");
    preload_lib();
    let profile = scratch.join("sampled.tmk");
    let mut cmd = Command::new(tidemark());
    cmd.args(["run", "-o", path_str(&profile), "--"])
        .arg(fixture_bin("tm-churn", &scratch))
        .args(["--threads", "2", "--iterations", "10000"])
        .env("TIDEMARK_SAMPLE_RATE", "4096")
        .current_dir(scratch.path());
    run_bounded(cmd, &scratch, RUN_TIMEOUT).assert_success("tidemark run (sampled)");
    let p = load(&profile);
    assert_eq!(p.header.sampling_rate, 4096);
    let file = scratch.join("sampled.pb.gz");
    export(
        &scratch,
        &[
            "--format",
            "pprof",
            "-o",
            path_str(&file),
            path_str(&profile),
        ],
    );
    let raw = pprof_raw(&scratch, &file);
    assert_eq!(
        (raw.period_type.as_str(), raw.period.as_str()),
        ("space bytes", "4096")
    );
    let t = &p.totals;
    // The unbiased estimates the loader computed, summed: the profile's totals.
    assert_eq!(raw.sum("alloc_objects") as u64, t.counts.allocations);
    assert_eq!(raw.sum("alloc_space") as u64, t.counts.allocated_bytes);
    // In use at the end: the leaks and the runtime-owned blocks (both live then).
    assert_eq!(
        raw.sum("inuse_objects") as u64,
        t.counts.leaked_allocations + t.runtime_owned_allocations
    );
    assert_eq!(
        raw.sum("inuse_space") as u64,
        t.counts.leaked_bytes + t.runtime_owned_bytes
    );
    // More allocations than samples: each sample stands for its weight.
    assert!(t.counts.allocations as usize > raw.samples.len());
}

#[test]
fn go_pprof_top_names_the_c_sites_with_their_truth() {
    let scratch = Scratch::new("export-c-threads");
    let exe = compile_c("threads", &scratch, &["-pthread"]);
    let truth = read_truth(&fixture_source("c/threads.truth.json"));
    let rec = record(&scratch, &exe, &[] as &[&str]);
    check_pprof(&scratch, &rec.profile, &truth);
    let file = scratch.join("end.pb.gz");
    let objects = pprof_top(&scratch, &file, "alloc_objects");
    let space = pprof_top(&scratch, &file, "inuse_space");
    for site in &truth.sites {
        let name = site.function.as_str();
        let (flat, cum) = objects
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing from -top: {objects:?}"));
        assert_eq!(
            (*flat, *cum),
            (site.allocations, site.allocations),
            "{name}"
        );
        assert_eq!(
            space.get(name).map(|r| r.1),
            Some(site.leaked_bytes),
            "{name}"
        );
    }
}

/// Loads `file` into valgrind's dh_view.html in headless Chromium and returns what it shows.
fn dh_view(scratch: &Scratch, file: &Path) -> serde_json::Value {
    let viewer = [
        "/usr/libexec/valgrind/dh_view.html",
        "/usr/lib/valgrind/dh_view.html",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
    .expect("valgrind's dh_view.html is missing: run scripts/setup.sh (package valgrind)");
    let script = workspace_root().join("analyzer/tests/support/dh_view.py");
    // Debian's python3-selenium is installed for the system interpreter.
    let out = Command::new("/usr/bin/python3")
        .arg(&script)
        .arg(&viewer)
        .arg(file)
        .env("HOME", scratch.path())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "dh_view.py failed (scripts/setup.sh installs chromium, chromium-driver and \
         python3-selenium):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn dh_view_loads_the_dhat_export_and_shows_the_profile_totals() {
    let scratch = Scratch::new("export-dhview");
    let rec = record(
        &scratch,
        &fixture_bin("tm-churn", &scratch),
        &["--threads", "2", "--iterations", "5000"],
    );
    let p = load(&rec.profile);
    let file = scratch.join("dhat.json");
    export(
        &scratch,
        &[
            "--format",
            "dhat",
            "-o",
            path_str(&file),
            path_str(&rec.profile),
        ],
    );
    let shown = dh_view(&scratch, &file);
    assert_eq!(shown["loaded"], true, "{shown:#}");
    assert_eq!(shown["page_errors"], serde_json::json!([]), "{shown:#}");
    assert_eq!(shown["console_errors"], serde_json::json!([]), "{shown:#}");
    let t = &p.totals;
    for (key, want) in [
        ("total_bytes", t.counts.allocated_bytes),
        ("total_blocks", t.counts.allocations),
        ("gmax_bytes", t.counts.peak_bytes),
        ("gmax_blocks", t.peak_blocks),
        ("end_bytes", t.counts.leaked_bytes + t.runtime_owned_bytes),
        (
            "end_blocks",
            t.counts.leaked_allocations + t.runtime_owned_allocations,
        ),
    ] {
        assert_eq!(shown[key].as_u64(), Some(want), "{key}: {shown:#}");
    }
}

/// Per-function sums of a DHAT file's program points (each program point counted once per
/// function on its stack), keyed by the function's last path segment.
fn dhat_sites(v: &serde_json::Value) -> HashMap<String, (usize, BTreeMap<&'static str, u64>)> {
    const FIELDS: [&str; 8] = ["tb", "tbk", "mb", "mbk", "gb", "gbk", "eb", "ebk"];
    // `0xADDR: function (file:line[:col])`; the function name itself may hold spaces.
    let names: Vec<String> = v["ftbl"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let f = f.as_str().unwrap();
            let f = f.split_once(": ").map_or(f, |(_, rest)| rest);
            let f = match f.rfind(" (") {
                Some(i) if f.ends_with(')') => &f[..i],
                _ => f,
            };
            last_segment(f).to_owned()
        })
        .collect();
    let mut out: HashMap<String, (usize, BTreeMap<&'static str, u64>)> = HashMap::new();
    for pp in v["pps"].as_array().unwrap() {
        let mut seen: Vec<&String> = pp["fs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| &names[i.as_u64().unwrap() as usize])
            .collect();
        seen.sort();
        seen.dedup();
        for name in seen {
            let e = out.entry(name.clone()).or_default();
            e.0 += 1;
            for f in FIELDS {
                *e.1.entry(f).or_default() += pp[f].as_u64().unwrap_or(0);
            }
        }
    }
    out
}

#[test]
fn dhat_export_agrees_with_the_dhat_crate_on_the_same_workload() {
    let scratch = Scratch::new("export-dhat-crate");
    let theirs = scratch.join("dhat-heap.json");
    let ours_tmk = scratch.join("inproc.tmk");
    let ours = scratch.join("ours.json");
    let truth_path = scratch.join("truth.json");
    for (bin, args) in [
        ("tm-inproc-dhat", vec!["--profile", path_str(&theirs)]),
        (
            "tm-inproc-system",
            vec![
                "--profile",
                path_str(&ours_tmk),
                "--truth",
                path_str(&truth_path),
            ],
        ),
    ] {
        let mut cmd = Command::new(artifact(bin));
        cmd.args(["--n", "4000"]).args(args);
        run_bounded(cmd, &scratch, RUN_TIMEOUT).assert_success(bin);
    }
    export(
        &scratch,
        &[
            "--format",
            "dhat",
            "-o",
            path_str(&ours),
            path_str(&ours_tmk),
        ],
    );
    let read = |p: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    };
    let (theirs, ours) = (read(&theirs), read(&ours));
    for key in [
        "dhatFileVersion",
        "mode",
        "verb",
        "bklt",
        "bkacc",
        "tu",
        "Mtu",
        "tuth",
    ] {
        assert_eq!(theirs[key], ours[key], "{key}");
    }
    assert_eq!(ours["ftbl"][0], "[root]");
    let (theirs, ours) = (dhat_sites(&theirs), dhat_sites(&ours));
    let truth = read_truth(&truth_path);
    assert_eq!(truth.sites.len(), 5);
    for site in &truth.sites {
        let name = last_segment(&site.function);
        let (their_pps, t) = theirs
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing from the dhat crate's file"));
        let (our_pps, o) = ours
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing from the DHAT export"));
        // Totals, the share of the global peak and what is live at the end, per site.
        for f in ["tb", "tbk", "gb", "gbk", "eb", "ebk"] {
            assert_eq!(t[f], o[f], "{name}.{f}: dhat {t:?} vs export {o:?}");
        }
        assert_eq!(o["tbk"], site.allocations, "{name}: truth");
        // A program point's own maximum compares where both tools have one program point for
        // the site: the dhat crate keeps a realloc'd block in its first program point, tidemark
        // files the realloc under the stack that called it.
        if (*their_pps, *our_pps) == (1, 1) {
            for f in ["mb", "mbk"] {
                assert_eq!(t[f], o[f], "{name}.{f}: dhat {t:?} vs export {o:?}");
            }
        }
    }
}

#[test]
fn firefox_export_has_the_crate_schema_and_balanced_allocation_weights() {
    let scratch = Scratch::new("export-firefox");
    let rec = record(
        &scratch,
        &fixture_bin("tm-churn", &scratch),
        &["--threads", "2", "--iterations", "5000"],
    );
    let p = load(&rec.profile);
    let file = scratch.join("app.json.gz");
    export(
        &scratch,
        &[
            "--format",
            "firefox",
            "-o",
            path_str(&file),
            path_str(&rec.profile),
        ],
    );
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&file).unwrap())
        .read_to_string(&mut text)
        .expect("a .gz output is gzipped");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v["meta"]["preprocessedProfileVersion"].as_u64(),
        Some(tidemark_analyzer::render::export::firefox::PROCESSED_PROFILE_VERSION)
    );
    let threads = v["threads"].as_array().unwrap();
    assert_eq!(threads.len(), p.threads.len());
    let names: Vec<&str> = threads
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for t in &p.threads {
        assert!(
            t.name.is_empty() || names.contains(&t.name.as_str()),
            "{} missing from {names:?}",
            t.name
        );
    }
    // Each thread's track holds its own allocations (and the frees of those blocks): its
    // positive weights sum to the bytes that thread allocated, and all tracks to the totals.
    let mut all: Vec<i64> = Vec::new();
    for thread in threads {
        let na = &thread["nativeAllocations"];
        let Some(len) = na["length"].as_u64() else {
            continue;
        };
        for column in ["time", "weight", "stack", "memoryAddress", "threadId"] {
            assert_eq!(
                na[column].as_array().map(Vec::len),
                Some(len as usize),
                "{column}"
            );
        }
        assert_eq!(na["weightType"], "bytes");
        let w: Vec<i64> = na["weight"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_i64().unwrap())
            .collect();
        let tid: u32 = match &thread["tid"] {
            serde_json::Value::String(t) => t.parse().unwrap(),
            t => t.as_u64().unwrap() as u32,
        };
        let info = p.threads.iter().find(|t| t.tid == tid).unwrap();
        assert_eq!(
            w.iter().filter(|&&x| x > 0).sum::<i64>() as u64,
            info.allocated_bytes,
            "thread {tid} ({})",
            info.name
        );
        all.extend(w);
    }
    let allocating = p.threads.iter().filter(|t| t.allocated_bytes > 0).count();
    assert!(
        allocating >= 3,
        "tm-churn --threads 2: main and two workers allocate"
    );
    let t = &p.totals;
    assert_eq!(
        all.iter().filter(|&&x| x > 0).sum::<i64>() as u64,
        t.counts.allocated_bytes
    );
    assert_eq!(
        all.iter().sum::<i64>() as u64,
        t.counts.leaked_bytes + t.runtime_owned_bytes
    );
    let counters = v["counters"].as_array().unwrap();
    assert!(
        counters
            .iter()
            .any(|c| c["name"] == "Live heap" && c["category"] == "Memory"),
        "{counters:?}"
    );
}

#[test]
fn export_refuses_a_directory_and_writes_text_to_stdout() {
    let scratch = Scratch::new("export-cli");
    let rec = record(
        &scratch,
        &fixture_bin("tm-churn", &scratch),
        &["--threads", "1", "--iterations", "2000"],
    );
    let dir = scratch.join("a-directory");
    std::fs::create_dir(&dir).unwrap();
    let out = tidemark_cli(
        [
            "export",
            "--format",
            "json",
            "-o",
            path_str(&dir),
            path_str(&rec.profile),
        ],
        &scratch,
    );
    assert_eq!(out.status.code(), Some(2), "{}", out.describe());
    assert!(
        out.stderr.contains("not a regular file"),
        "{}",
        out.describe()
    );
    assert!(dir.is_dir());

    let folded = tidemark_cli(
        [
            "export",
            "--format",
            "folded",
            "--metric",
            "leaked",
            "-o",
            "-",
            path_str(&rec.profile),
        ],
        &scratch,
    );
    folded.assert_success("export --format folded -o -");
    let flamegraph = tidemark_cli(
        [
            "flamegraph",
            "--folded",
            "--keep-runtime-frames",
            "--metric",
            "leaked",
            "-o",
            "-",
            path_str(&rec.profile),
        ],
        &scratch,
    );
    assert_eq!(folded.stdout, flamegraph.stdout);
    let leaked: u64 = folded
        .stdout
        .lines()
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(leaked, load(&rec.profile).totals.counts.leaked_bytes);

    // An existing file is replaced; no temporary file is left beside it.
    let json = scratch.join("out.json");
    std::fs::write(&json, "old").unwrap();
    export(
        &scratch,
        &[
            "--format",
            "json",
            "-o",
            path_str(&json),
            path_str(&rec.profile),
        ],
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(v["schema"], "tidemark-export-1");
    assert!(list_dir(scratch.path())
        .iter()
        .all(|p| !p.to_string_lossy().contains(".tmp")));

    let bad = tidemark_cli(
        [
            "export",
            "--format",
            "dhat",
            "--metric",
            "peak",
            "-o",
            "x.json",
            path_str(&rec.profile),
        ],
        &scratch,
    );
    assert_eq!(bad.status.code(), Some(2), "{}", bad.describe());
    assert!(
        bad.stderr.contains("--metric peak does not apply"),
        "{}",
        bad.describe()
    );
}
