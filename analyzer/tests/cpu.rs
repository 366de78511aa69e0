//! CPU samples (`tidemark run --cpu`), checked against what really ran: `fixtures/c/cpuburn.c`
//! spends CPU time in `burn_three` and `burn_one` in a 3:1 ratio and writes each function's
//! measured thread CPU time; the profile must show that ratio within 20%. Also: a program with
//! its own SIGPROF profiler keeps its signals; fork and exec under `--cpu`; `go tool pprof`
//! reads the CPU export with the profile's totals; `--metric cpu` without samples is refused.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::pprof::pprof_raw;
use support::*;

/// CPU time each run burns, ms: at 99 Hz, ≈ 300 samples (a share of 1/4 is then known to
/// about ±10%).
const BURN_MS: &str = "3000";

/// Records `cpuburn ARGS` with `tidemark run --cpu --cpu-hz 997 -o <scratch>/profile.tmk`.
///
/// Sampling noise: a function with k samples has a relative error of about 1/sqrt(k). At 99 Hz a
/// 3 s burn gives ~225 and ~75 samples, a ratio error of ~13% (one standard deviation), so a 20%
/// tolerance would fail about one run in eight; at 997 Hz (~2,250 and ~750 samples) the error is
/// ~4%, and 20% is five standard deviations.
fn record_cpu(scratch: &Scratch, exe: &Path, args: &[&str]) -> Finished {
    preload_lib();
    let mut cmd = Command::new(tidemark());
    cmd.args(["run", "--cpu", "--cpu-hz", "997", "-o"])
        .arg(scratch.join("profile.tmk"))
        .arg("--")
        .arg(exe)
        .args(args)
        .current_dir(scratch.path());
    run_bounded(cmd, scratch, RUN_TIMEOUT)
}

/// `(burn_three_ns, burn_one_ns)` the fixture measured.
fn measured(truth: &Path) -> (u64, u64) {
    let v: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(truth).unwrap_or_else(|e| panic!("{}: {e}", truth.display())),
    )
    .unwrap();
    (field_u64(&v, "burn_three_ns"), field_u64(&v, "burn_one_ns"))
}

/// Total CPU ns of `function` in `tidemark summary --json --top 100`'s CPU section.
fn cpu_total(summary: &serde_json::Value, function: &str) -> u64 {
    summary["cpu"]["top_functions"]
        .as_array()
        .expect("a cpu section with top_functions")
        .iter()
        .find(|f| f["function"] == function)
        .map(|f| field_u64(f, "total_ns"))
        .unwrap_or_else(|| panic!("{function} not among the CPU functions: {summary:#}"))
}

fn summary_cli(scratch: &Scratch, profile: &Path) -> serde_json::Value {
    let out = tidemark_cli(
        ["summary", "--json", "--top", "100", path_str(profile)],
        scratch,
    );
    out.assert_success("tidemark summary --json");
    serde_json::from_str(&out.stdout).expect("summary JSON")
}

/// The profile's ratio burn_three : burn_one lies within 20% of the measured one.
fn assert_ratio(summary: &serde_json::Value, truth: (u64, u64)) {
    let want = truth.0 as f64 / truth.1 as f64;
    let got = cpu_total(summary, "burn_three") as f64 / cpu_total(summary, "burn_one") as f64;
    assert!(
        (got / want - 1.0).abs() <= 0.20,
        "burn_three:burn_one is {got:.2} in the profile, {want:.2} measured (truth {truth:?})"
    );
}

#[test]
fn cpu_profile_shows_the_three_to_one_ratio_in_summary_and_folded() {
    let scratch = Scratch::new("cpu-ratio");
    let exe = compile_c("cpuburn", &scratch, &["-pthread"]);
    let truth = scratch.join("truth.json");
    let run = record_cpu(
        &scratch,
        &exe,
        &["burn", BURN_MS, "--truth", path_str(&truth)],
    );
    run.assert_success("tidemark run --cpu -- cpuburn burn");
    let profile = find_profile(scratch.path(), "profile");
    let summary = summary_cli(&scratch, &profile);
    assert_ratio(&summary, measured(&truth));
    let cpu = &summary["cpu"];
    assert_eq!(field_u64(cpu, "lost_samples"), 0, "{cpu:#}");
    let samples = field_u64(cpu, "samples");
    assert!(samples >= 100, "{samples} samples for 2 s of CPU at 99 Hz");
    // The CPU time the samples stand for is the CPU time the program used, within 20%.
    let burned = measured(&truth);
    let cpu_ns = field_u64(cpu, "cpu_ns") as f64;
    let want = (burned.0 + burned.1) as f64;
    assert!(
        cpu_ns >= want * 0.8 && cpu_ns <= want * 1.2 + 100e6,
        "{cpu_ns} ns sampled for {want} ns burned"
    );

    // Folded CPU stacks: the same ratio, each line's value in ns, summing to the total.
    let out = tidemark_cli(
        [
            "flamegraph",
            "--metric",
            "cpu",
            "--folded",
            "-o",
            "-",
            path_str(&profile),
        ],
        &scratch,
    );
    out.assert_success("tidemark flamegraph --metric cpu --folded");
    let mut total = 0u64;
    let (mut three, mut one) = (0u64, 0u64);
    for line in out.stdout.lines() {
        let (stack, v) = line.rsplit_once(' ').expect("folded line");
        let v: u64 = v.parse().expect("folded value");
        total += v;
        let frames: Vec<&str> = stack.split(';').collect();
        assert!(frames.contains(&"main"), "a stack without main: {line}");
        if frames.contains(&"burn_three") {
            three += v;
        }
        if frames.contains(&"burn_one") {
            one += v;
        }
    }
    assert_eq!(total, field_u64(cpu, "cpu_ns"));
    let want = burned.0 as f64 / burned.1 as f64;
    let got = three as f64 / one as f64;
    assert!(
        (got / want - 1.0).abs() <= 0.20,
        "folded ratio {got:.2}, measured {want:.2}"
    );

    // An SVG too.
    let svg = scratch.join("cpu.svg");
    let out = tidemark_cli(
        [
            "flamegraph",
            "--metric",
            "cpu",
            "-o",
            path_str(&svg),
            path_str(&profile),
        ],
        &scratch,
    );
    out.assert_success("tidemark flamegraph --metric cpu");
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.contains("burn_three") && text.contains("burn_one"));
}

#[test]
fn a_thread_that_never_allocates_is_sampled_on_its_own_thread() {
    let scratch = Scratch::new("cpu-threads");
    let exe = compile_c("cpuburn", &scratch, &["-pthread"]);
    let truth = scratch.join("truth.json");
    let run = record_cpu(
        &scratch,
        &exe,
        &["threads", BURN_MS, "--truth", path_str(&truth)],
    );
    run.assert_success("tidemark run --cpu -- cpuburn threads");
    let profile = find_profile(scratch.path(), "profile");
    let p = load(&profile);
    let cpu = p.cpu.as_ref().expect("CPU samples");
    let main_tid = p.header.pid;
    let on_main = cpu.samples.iter().filter(|s| s.tid == main_tid).count();
    let elsewhere = cpu.samples.len() - on_main;
    assert!(
        elsewhere >= 100 && on_main * 10 < elsewhere,
        "{elsewhere} samples on the burning thread, {on_main} on main (waiting in pthread_join)"
    );
    assert_ratio(&summary_cli(&scratch, &profile), measured(&truth));
}

#[test]
fn go_pprof_reads_the_cpu_export_with_the_profile_totals() {
    let scratch = Scratch::new("cpu-pprof");
    let exe = compile_c("cpuburn", &scratch, &["-pthread"]);
    let truth = scratch.join("truth.json");
    let run = record_cpu(
        &scratch,
        &exe,
        &["burn", BURN_MS, "--truth", path_str(&truth)],
    );
    run.assert_success("tidemark run --cpu -- cpuburn burn");
    let profile = find_profile(scratch.path(), "profile");
    let p = load(&profile);
    let summary = summary_cli(&scratch, &profile);
    let cpu = p.cpu.as_ref().expect("CPU samples");
    let file = scratch.join("cpu.pb.gz");
    let out = tidemark_cli(
        [
            "export",
            "--format",
            "pprof",
            "--metric",
            "cpu",
            "-o",
            path_str(&file),
            path_str(&profile),
        ],
        &scratch,
    );
    out.assert_success("tidemark export --format pprof --metric cpu");
    let raw = pprof_raw(&scratch, &file);
    assert_eq!(raw.types, ["samples/count", "cpu/nanoseconds"]);
    assert_eq!(raw.period_type, "cpu nanoseconds");
    assert_eq!(raw.period, cpu.period_ns.to_string());
    assert_eq!(raw.sum("samples") as u64, cpu.sample_count());
    assert_eq!(raw.sum("cpu") as u64, cpu.cpu_ns);
    // Per function, pprof's sums are the profile's own totals, exactly.
    for f in ["burn_three", "burn_one", "main"] {
        assert_eq!(
            raw.site_sum("cpu", f) as u64,
            cpu_total(&summary, f),
            "{f}: pprof against tidemark summary"
        );
    }
    let (t3, t1) = measured(&truth);
    let want = t3 as f64 / t1 as f64;
    let got = raw.site_sum("cpu", "burn_three") as f64 / raw.site_sum("cpu", "burn_one") as f64;
    assert!(
        (got / want - 1.0).abs() <= 0.20,
        "pprof ratio {got:.2}, measured {want:.2}"
    );
    // -top names the burning functions.
    let top = support::pprof::go_pprof(&scratch, &["-top", "-cum", path_str(&file)]);
    assert!(
        top.contains("burn_three") && top.contains("burn_one"),
        "{top}"
    );
}

#[test]
fn a_program_with_its_own_sigprof_profiler_keeps_its_signals() {
    let scratch = Scratch::new("cpu-sigprof");
    let exe = compile_c("cpuburn", &scratch, &["-pthread"]);
    let native = {
        let mut cmd = Command::new(&exe);
        cmd.args(["sigprof", "500"]).current_dir(scratch.path());
        run_bounded(cmd, &scratch, RUN_TIMEOUT)
    };
    native.assert_success("cpuburn sigprof");
    let run = record_cpu(&scratch, &exe, &["sigprof", "500"]);
    run.assert_success("tidemark run --cpu -- cpuburn sigprof");
    assert!(
        native.stdout.contains("sigprof handled: yes"),
        "{}",
        native.describe()
    );
    let program_output = |s: &str| s.lines().filter(|l| !l.starts_with("tidemark")).count();
    assert!(
        run.stdout.contains("sigprof handled: yes"),
        "the program's SIGPROF handler got no signal under --cpu: {}",
        run.describe()
    );
    assert_eq!(program_output(&native.stdout), program_output(&run.stdout));
    let p = load(&find_profile(scratch.path(), "profile"));
    assert!(
        p.messages.iter().any(|m| m.text.contains("SIGPROF")),
        "no message says why sampling stopped: {:?}",
        p.messages
    );
}

/// Under `--cpu`, a process that forks a burning child and then execs itself leaves three
/// profiles (parent before exec, child, exec'd image), each with CPU samples of `burn_three`.
#[test]
fn fork_and_exec_under_cpu_sampling_profile_every_process() {
    let scratch = Scratch::new("cpu-forkexec");
    let exe = compile_c("cpuburn", &scratch, &["-pthread"]);
    let dir = scratch.join("out");
    std::fs::create_dir_all(&dir).unwrap();
    let run = {
        let mut cmd = Command::new(tidemark());
        cmd.args(["run", "--cpu", "-o"])
            .arg(dir.join("profile.tmk"))
            .arg("--")
            .arg(&exe)
            .args(["forkexec", "500"])
            .current_dir(scratch.path());
        run_bounded(cmd, &scratch, RUN_TIMEOUT)
    };
    run.assert_success("tidemark run --cpu -- cpuburn forkexec");
    let profiles: Vec<PathBuf> = list_dir(&dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "tmk"))
        .collect();
    assert_eq!(profiles.len(), 3, "{profiles:?}\n{}", run.describe());
    for path in &profiles {
        let p = load(path);
        assert!(p.truncated.is_none(), "{} is truncated", path.display());
        let summary = summary_json(&p, 100);
        assert!(
            cpu_total(&summary, "burn_three") > 0,
            "{}: no CPU time in burn_three",
            path.display()
        );
    }
}

#[test]
fn metric_cpu_on_a_profile_without_samples_is_a_clear_error() {
    let scratch = Scratch::new("cpu-none");
    let exe = compile_c("cpuburn", &scratch, &["-pthread"]);
    let rec = record(&scratch, &exe, &["burn", "100"]);
    for args in [
        vec!["flamegraph", "--metric", "cpu", "-o", "x.svg"],
        vec![
            "export", "--format", "pprof", "--metric", "cpu", "-o", "x.pb.gz",
        ],
    ] {
        let mut args: Vec<&str> = args;
        args.push(path_str(&rec.profile));
        let out = tidemark_cli(&args, &scratch);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", out.describe());
        assert!(
            out.stderr.contains("no CPU samples") && out.stderr.contains("--cpu"),
            "{args:?}: {}",
            out.stderr
        );
    }
}

/// A report of two scenarios recorded with `--cpu` has their CPU time among its metrics and a
/// CPU flamegraph beside the allocation ones, differential for the second scenario.
#[test]
fn report_shows_cpu_flamegraphs_when_both_scenarios_have_samples() {
    let scratch = Scratch::new("cpu-report");
    let exe = compile_c("cpuburn", &scratch, &["-pthread"]);
    let mut profiles = Vec::new();
    for (name, ms) in [("base", "300"), ("new", "600")] {
        let dir = scratch.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let mut cmd = Command::new(tidemark());
        cmd.args(["run", "--cpu", "-o"])
            .arg(dir.join("profile.tmk"))
            .arg("--")
            .arg(&exe)
            .args(["burn", ms])
            .current_dir(scratch.path());
        run_bounded(cmd, &scratch, RUN_TIMEOUT).assert_success("tidemark run --cpu");
        profiles.push(format!(
            "{name}={}",
            path_str(&find_profile(&dir, "profile"))
        ));
    }
    let html = scratch.join("r.html");
    let out = tidemark_cli(
        ["report", &profiles[0], &profiles[1], "-o", path_str(&html)],
        &scratch,
    );
    out.assert_success("tidemark report");
    let text = std::fs::read_to_string(&html).unwrap();
    assert!(
        text.contains("CPU flamegraph of base"),
        "no CPU flamegraph of base"
    );
    assert!(
        text.contains("Differential CPU flamegraph of new against base"),
        "no differential CPU flamegraph"
    );
    assert!(text.contains("CPU time"), "no CPU time metric");
    assert!(text.contains("burn_three"));
}
