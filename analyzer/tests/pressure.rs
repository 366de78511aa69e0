//! Pressure curves against workloads with known shapes: growth slope, leak verdict,
//! time-to-limit, fragmentation, the jemalloc backend's series, the live trace and the timeline
//! outputs. The workloads run under `tidemark run` (LD_PRELOAD), as a user would run them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tidemark::format::sample_key as key;
use tidemark_analyzer::analysis::{pressure, PressureOptions};
use tidemark_analyzer::load::{load_path, LoadOptions};
use tidemark_analyzer::model::Profile;

fn release_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release");
    for bin in [
        "tidemark",
        "libtidemark_preload.so",
        "tm-alloc-without-free",
        "tm-sawtooth",
    ] {
        assert!(
            d.join(bin).exists(),
            "{} missing: run `cargo build --release` first (scripts/test.sh does)",
            d.join(bin).display()
        );
    }
    d
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tidemark-pressure-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `tidemark run [run_args] -o PROFILE -- BIN bin_args`, asserting success.
fn record(
    name: &str,
    run_args: &[&str],
    bin: &str,
    bin_args: &[&str],
) -> (Profile, Output, PathBuf) {
    let rel = release_dir();
    let dir = scratch(name);
    let profile = dir.join("p.tmk");
    let out = Command::new(rel.join("tidemark"))
        .arg("run")
        .args(run_args)
        .arg("-o")
        .arg(&profile)
        .arg("--")
        .arg(rel.join(bin))
        .args(bin_args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tidemark run {bin} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p = load_path(&profile, &LoadOptions::default()).expect("profile loads");
    assert!(p.truncated.is_none());
    (p, out, profile)
}

const MIB: f64 = 1024.0 * 1024.0;

#[test]
fn alloc_without_free_slope_within_5_percent_and_a_leak() {
    let (p, _, _) = record(
        "awf",
        &["--limit", "256MiB"],
        "tm-alloc-without-free",
        &[
            "--rate",
            "16MiB",
            "--duration-ms",
            "1500",
            "--block-size",
            "16384",
        ],
    );
    let pr = pressure(&p, &PressureOptions::default());
    let slope = pr.growth_bytes_per_sec.expect("enough samples for a slope");
    let rate = 16.0 * MIB;
    assert!(
        (slope - rate).abs() / rate < 0.05,
        "slope {slope:.0} B/s is not within 5% of the configured {rate:.0} B/s"
    );
    assert!(pr.growth_r2.unwrap() > 0.95, "{pr:?}");
    assert!(pr.leak_verdict, "{}", pr.leak_verdict_reason);
    // Time to the limit: (limit − live at the end) / slope.
    let live_end = p.samples.last().unwrap().live_bytes as f64;
    let expect = (256.0 * MIB - live_end) / slope;
    let ttl = pr.time_to_limit_sec.expect("a limit was given");
    assert!(
        (ttl - expect).abs() < 1e-6 * expect.max(1.0),
        "{ttl} vs {expect}"
    );
    assert!(
        (ttl - (256.0 - 24.0) / 16.0).abs() < 1.0,
        "about 14.5 s left: {ttl}"
    );
    assert_eq!(pr.limit_bytes, Some(256 << 20));
    assert!(
        pr.peak_rss_bytes.unwrap() as f64 > 20.0 * MIB,
        "RSS follows the touched heap"
    );
    assert!(pr.alloc_latency_p99_ns.is_some(), "latency sampled");
}

#[test]
fn sawtooth_and_churn_are_not_leaks() {
    let (p, _, _) = record(
        "saw",
        &[],
        "tm-sawtooth",
        &[
            "--duration-ms",
            "2000",
            "--rate",
            "32MiB",
            "--period-ms",
            "400",
        ],
    );
    assert!(p.samples.len() >= 100, "{} samples", p.samples.len());
    let pr = pressure(&p, &PressureOptions::default());
    assert!(pr.growth_bytes_per_sec.is_some());
    assert!(
        !pr.leak_verdict,
        "sawtooth called a leak: {}",
        pr.leak_verdict_reason
    );
    let peak = p.totals.counts.peak_bytes as f64;
    assert!(peak > 8.0 * MIB, "the teeth reach about 10 MiB: {peak}");

    let (p, _, _) = record(
        "churn",
        &[],
        "tm-churn",
        &["--threads", "2", "--iterations", "1000000", "--steady"],
    );
    assert!(
        p.samples.len() >= 10,
        "churn ran long enough to judge: {} samples",
        p.samples.len()
    );
    let pr = pressure(&p, &PressureOptions::default());
    assert!(
        !pr.leak_verdict,
        "churn called a leak: {}",
        pr.leak_verdict_reason
    );
}

#[test]
fn fragmentation_shows_rss_well_above_live() {
    let (p, _, _) = record(
        "frag",
        &[],
        "tm-fragmentation",
        &[
            "--blocks",
            "40000",
            "--block-size",
            "1024",
            "--hold-ms",
            "300",
        ],
    );
    let pr = pressure(&p, &PressureOptions::default());
    let ratio = pr
        .fragmentation_ratio
        .expect("live heap large enough at the end");
    assert!(
        ratio > 1.5,
        "RSS/live {ratio:.2} should exceed 1.5 after freeing every other block"
    );
}

#[test]
fn jemalloc_backend_carries_jemalloc_series_and_keeps_exact_counts() {
    let (p, _, _) = record(
        "jemalloc",
        &[
            "--allocator",
            "jemalloc",
            "--malloc-conf",
            "dirty_decay_ms:0",
        ],
        "tm-alloc-without-free",
        &["--rate", "16MiB", "--duration-ms", "800"],
    );
    assert_eq!(p.header.allocator, "jemalloc");
    for k in [
        key::JEMALLOC_ALLOCATED,
        key::JEMALLOC_ACTIVE,
        key::JEMALLOC_RESIDENT,
        key::JEMALLOC_MAPPED,
    ] {
        assert!(
            p.samples.iter().any(|s| s.value(k).is_some_and(|v| v > 0)),
            "no jemalloc series {k} in the timeline"
        );
    }
    let pr = pressure(&p, &PressureOptions::default());
    assert!(pr.leak_verdict, "{}", pr.leak_verdict_reason);
    let rate = 16.0 * MIB;
    let slope = pr.growth_bytes_per_sec.unwrap();
    assert!((slope - rate).abs() / rate < 0.05, "{slope}");
}

#[test]
fn trace_prints_a_line_per_second() {
    let (_, out, _) = record(
        "trace",
        &["--trace", "--limit", "1GiB"],
        "tm-alloc-without-free",
        &["--duration-ms", "1500"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("tm @")).collect();
    assert!(!lines.is_empty(), "no trace line in:\n{err}");
    assert!(
        lines[0].contains("heap") && lines[0].contains("rss") && lines[0].contains("limit"),
        "{}",
        lines[0]
    );
}

#[test]
fn timeline_svg_and_csv() {
    let (p, _, profile) = record(
        "timeline",
        &[],
        "tm-alloc-without-free",
        &["--duration-ms", "600"],
    );
    let rel = release_dir();
    let svg = profile.with_extension("svg");
    let st = Command::new(rel.join("tidemark"))
        .args(["timeline", "--limit", "64MiB", "-o"])
        .arg(&svg)
        .arg(&profile)
        .status()
        .unwrap();
    assert!(st.success());
    let text = std::fs::read_to_string(&svg).unwrap();
    for label in [
        "Live heap",
        "RSS",
        "Allocation rate",
        "Allocator latency",
        "Page faults",
        "Pressure against the limit",
    ] {
        assert!(text.contains(label), "timeline SVG lacks {label:?}");
    }
    let csv = Command::new(rel.join("tidemark"))
        .args(["timeline", "--csv", "-o", "-"])
        .arg(&profile)
        .output()
        .unwrap();
    assert!(csv.status.success());
    let csv = String::from_utf8(csv.stdout).unwrap();
    let header = csv.lines().next().unwrap();
    assert!(
        header.starts_with("t_sec,live_bytes,live_blocks,"),
        "{header}"
    );
    assert!(header.contains("rss_bytes") && header.contains("alloc_latency_p99_ns"));
    let rows = csv.lines().count() - 1;
    assert_eq!(rows, p.samples.len(), "one row per sample");
    let last: Vec<&str> = csv.lines().last().unwrap().split(',').collect();
    assert_eq!(
        last[1].parse::<u64>().unwrap(),
        p.samples.last().unwrap().live_bytes
    );
}
