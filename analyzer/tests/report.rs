//! Comparison reports, differential flamegraphs and budgets, end to end: repeated runs recorded
//! with `tidemark run --repeat`, a pair with a known difference and a pair with none, the HTML
//! report opened in headless Chromium.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

fn rel() -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release");
    for bin in ["tidemark", "libtidemark_preload.so", "tm-churn"] {
        assert!(
            d.join(bin).exists(),
            "{} missing: run `cargo build --release` first (scripts/test.sh does)",
            d.join(bin).display()
        );
    }
    d
}

fn tidemark(args: &[&str]) -> Output {
    Command::new(rel().join("tidemark"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(o: &Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what} failed ({}): {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// Three runs of churn at 20k iterations per thread (a), three identical ones (same), three at
/// 40k (b): deterministic counts, so (a, same) differ in nothing and (a, b) in every count.
struct Runs {
    dir: PathBuf,
}

fn runs() -> &'static Runs {
    static RUNS: OnceLock<Runs> = OnceLock::new();
    RUNS.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("tidemark-report-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let churn = rel().join("tm-churn");
        for (name, iters) in [("a", "20000"), ("same", "20000"), ("b", "40000")] {
            let o = dir.join(format!("{name}.tmk"));
            let out = Command::new(rel().join("tidemark"))
                .args(["run", "--repeat", "3", "-o"])
                .arg(&o)
                .arg("--")
                .arg(&churn)
                .args(["--threads", "2", "--iterations", iters])
                .output()
                .unwrap();
            ok(&out, "tidemark run --repeat 3");
        }
        Runs { dir }
    })
}

fn p(name: &str) -> String {
    runs().dir.join(name).display().to_string()
}

fn summary_json(path: &str) -> Value {
    serde_json::from_str(&ok(
        &tidemark(&["summary", "--json", path]),
        "summary --json",
    ))
    .unwrap()
}

/// A profile's numbers split into the program's own and two runtime effects that vary with
/// timing: DTV allocations (`allocate_dtv`) and blocks live at the end under std's thread
/// machinery rather than the fixture's sites.
#[derive(Debug, Default)]
struct Split {
    /// (allocation calls, allocated bytes, leaked bytes) outside the runtime effects.
    program: (u64, u64, u64),
    dtv_calls: u64,
    dtv_bytes: u64,
    thread_leaked_bytes: u64,
}

fn split_runtime_effects(path: &str) -> Split {
    let folded = |metric: &str| -> Vec<(String, u64)> {
        let out = ok(
            &tidemark(&[
                "flamegraph",
                "--folded",
                "--keep-runtime-frames",
                "--metric",
                metric,
                "-o",
                "-",
                path,
            ]),
            "flamegraph --folded",
        );
        out.lines()
            .map(|l| {
                let (stack, n) = l.rsplit_once(' ').unwrap();
                (stack.to_owned(), n.parse().unwrap())
            })
            .collect()
    };
    let mut s = Split::default();
    for (stack, n) in folded("allocations") {
        if stack.contains(";allocate_dtv") {
            s.dtv_calls += n;
        } else {
            s.program.0 += n;
        }
    }
    for (stack, n) in folded("allocated") {
        if stack.contains(";allocate_dtv") {
            s.dtv_bytes += n;
        } else {
            s.program.1 += n;
        }
    }
    for (stack, n) in folded("leaked") {
        if stack.contains(";tm_churn::churn_") {
            s.program.2 += n;
        } else {
            s.thread_leaked_bytes += n;
        }
    }
    s
}

#[test]
fn repeat_numbers_the_profiles() {
    for name in ["a", "same", "b"] {
        for n in 1..=3 {
            assert!(
                runs().dir.join(format!("{name}.{n}.tmk")).is_file(),
                "{name}.{n}.tmk missing"
            );
        }
        assert!(!runs().dir.join(format!("{name}.tmk")).exists());
    }
}

#[test]
fn json_report_numbers_equal_summary_json_and_differences_are_judged() {
    let out = runs().dir.join("r.json");
    ok(
        &tidemark(&[
            "report",
            &format!("a={}", p("a.*.tmk")),
            &format!("same={}", p("same.*.tmk")),
            &format!("b={}", p("b.*.tmk")),
            "-o",
            out.to_str().unwrap(),
        ]),
        "report",
    );
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(r["baseline"], "a");
    let scen = r["scenarios"].as_array().unwrap();
    assert_eq!(scen.len(), 3);
    // Means equal the mean of each input's `summary --json`.
    for (s, name) in scen.iter().zip(["a", "same", "b"]) {
        assert_eq!(s["label"], name);
        assert_eq!(s["runs"], 3);
        for metric in [
            "allocations",
            "allocated_bytes",
            "peak_bytes",
            "leaked_bytes",
            "temporary_allocations",
            "duration_ms",
        ] {
            let vals: Vec<f64> = (1..=3)
                .map(|n| {
                    summary_json(&p(&format!("{name}.{n}.tmk")))[metric]
                        .as_f64()
                        .unwrap()
                })
                .collect();
            let mean = vals.iter().sum::<f64>() / 3.0;
            let got = s["metrics"][metric]["mean"].as_f64().unwrap();
            assert!(
                (got - mean).abs() <= 1e-9 * mean.abs().max(1.0),
                "{name}.{metric}: {got} vs {mean}"
            );
            let lo = s["metrics"][metric]["ci95_low"].as_f64().unwrap();
            let hi = s["metrics"][metric]["ci95_high"].as_f64().unwrap();
            assert!(
                lo <= mean && mean <= hi,
                "{name}.{metric}: CI [{lo}, {hi}] excludes the mean"
            );
        }
    }
    // No real difference in what the program does: a and same run the same code. Two runtime
    // effects still vary with timing (docs/limits.md): glibc gives a new thread the cached stack
    // of a finished one, DTV included, so how many threads allocate a DTV (`allocate_dtv`)
    // varies; and a thread still tearing down (std's spawn packet, scope data, thread handle)
    // when the process exits leaves its blocks live. Outside those, every count is exact and
    // equal; the report's deltas are exactly what those effects add.
    let same = &scen[1]["metrics"];
    let base = split_runtime_effects(&p("a.1.tmk"));
    let mut effects = [[0f64; 3]; 2];
    // The most bytes the runtime effects added to one run.
    let mut runtime_bytes_max = 0f64;
    for (g, name) in ["a", "same"].into_iter().enumerate() {
        for n in 1..=3 {
            let run = split_runtime_effects(&p(&format!("{name}.{n}.tmk")));
            assert_eq!(
                run.program, base.program,
                "{name}.{n}: the program's own numbers"
            );
            assert!(
                run.dtv_calls <= 3,
                "{name}.{n}: {} DTV allocations",
                run.dtv_calls
            );
            runtime_bytes_max =
                runtime_bytes_max.max((run.dtv_bytes + run.thread_leaked_bytes) as f64);
            effects[g][0] += run.dtv_calls as f64 / 3.0;
            effects[g][1] += run.dtv_bytes as f64 / 3.0;
            effects[g][2] += run.thread_leaked_bytes as f64 / 3.0;
        }
    }
    for (i, metric) in ["allocations", "allocated_bytes", "leaked_bytes"]
        .into_iter()
        .enumerate()
    {
        let delta = same[metric]["delta_vs_baseline"].as_f64().unwrap();
        let explained = effects[1][i] - effects[0][i];
        // Means of ~10^7 bytes: their difference carries float rounding well below a byte.
        assert!(
            (delta - explained).abs() < 1e-3,
            "{metric}: {delta} vs {explained}"
        );
        // Where the runtime effects happened to come out alike, there is no difference at all,
        // and the report must not claim one.
        if explained == 0.0 {
            assert_eq!(
                same[metric]["significant"], false,
                "{metric}: {}",
                same[metric]
            );
        }
    }
    assert_ne!(
        same["temporary_allocations"]["significant"], true,
        "temporary_allocations: {}",
        same["temporary_allocations"]
    );
    // The peak moves with the same runtime effects when a DTV or a finishing thread's blocks are
    // live at that instant, and with how long the two threads' pools are full at once: a thread
    // that ends (emptying its pool) before the other reaches its largest heap leaves a peak lower
    // by up to that pool, and when each thread runs depends on scheduling (and on the recorder
    // making a thread wait for its writer). So the peak moves by at most the runtime effects'
    // bytes plus what is live at the peak beyond the blocks still live at the end (the pools).
    if same["peak_bytes"]["significant"] == true {
        let delta = same["peak_bytes"]["delta_vs_baseline"].as_f64().unwrap();
        let pools_max = ["a", "same"]
            .iter()
            .flat_map(|name| (1..=3).map(move |n| format!("{name}.{n}.tmk")))
            .map(|f| {
                let j = summary_json(&p(&f));
                j["peak_bytes"].as_f64().unwrap() - j["leaked_bytes"].as_f64().unwrap()
            })
            .fold(0f64, f64::max);
        assert!(
            delta.abs() <= runtime_bytes_max + pools_max,
            "peak_bytes: {delta} beyond the runtime effects' {runtime_bytes_max} bytes and the \
             pools' {pools_max}: {}",
            same["peak_bytes"]
        );
    }
    // A known difference (twice the iterations): found, and significant.
    let b = &scen[2]["metrics"];
    assert!(b["allocations"]["delta_vs_baseline"].as_f64().unwrap() > 0.0);
    assert_eq!(
        b["allocations"]["significant"], true,
        "{}",
        b["allocations"]
    );
    assert_eq!(b["allocated_bytes"]["significant"], true);
    let c = &scen[2]["comparison"];
    assert!(c["total_cost_change_pct"].as_f64().unwrap() > 50.0, "{c}");
    assert!(
        c["top_growth"][0]["site"]
            .as_str()
            .unwrap()
            .contains("churn_"),
        "{c}"
    );
}

#[test]
fn markdown_report_for_a_pull_request() {
    let out = ok(
        &tidemark(&[
            "report",
            &p("a.1.tmk"),
            &p("b.1.tmk"),
            "--format",
            "md",
            "-o",
            "-",
        ]),
        "report --format md",
    );
    assert!(out.starts_with("# tidemark comparison report"));
    assert!(
        out.contains("| Metric | a (baseline) (1 run) | b (1 run) |"),
        "{out}"
    );
    assert!(out.contains("## b vs a"));
    assert!(out.contains("`tm_churn::churn_"), "sites named: {out}");
}

#[test]
fn html_report_renders_in_chromium_without_errors_or_network() {
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|c| Path::new(c).exists())
        .expect("chromium is needed for this test: run scripts/setup.sh (it installs Debian's chromium)");
    let html = runs().dir.join("r.html");
    ok(
        &tidemark(&[
            "report",
            &format!("before<&>={}", p("a.*.tmk")),
            &format!("after={}", p("b.*.tmk")),
            "-o",
            html.to_str().unwrap(),
        ]),
        "report html",
    );
    let page = std::fs::read_to_string(&html).unwrap();
    // Static: nothing external is referenced (SVG namespace URIs are names, never fetched).
    for bad in [
        "src=\"http",
        "src=\"//",
        "href=\"http",
        "href=\"//",
        "url(http",
        "url(//",
        "@import",
    ] {
        assert!(
            !page.contains(bad),
            "the report references an external resource: {bad}"
        );
    }
    // Dynamic: a copy of the page with a probe that lists every resource it loaded.
    let probe = runs().dir.join("r-probe.html");
    let script = "<script>addEventListener('load',()=>{const p=document.createElement('pre');\
        p.id='tm-resources';p.textContent=JSON.stringify(performance.getEntriesByType('resource')\
        .map(e=>e.name));document.body.appendChild(p);});</script></body>";
    std::fs::write(&probe, page.replacen("</body>", script, 1)).unwrap();
    let profile_dir = runs().dir.join("chromium-profile");
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=3000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile_dir.display()))
        .arg(format!("file://{}", probe.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("before&lt;&amp;&gt;"),
        "the escaped label is in the rendered page"
    );
    assert!(dom.contains("after"));
    assert!(dom.contains("Growth curves") && dom.contains("Differential flamegraph"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let console: Vec<&str> = stderr.lines().filter(|l| l.contains("CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:?}");
    let start = dom
        .find("<pre id=\"tm-resources\">")
        .expect("the probe ran")
        + "<pre id=\"tm-resources\">".len();
    let list = &dom[start..start + dom[start..].find("</pre>").unwrap()];
    let names: Vec<String> =
        serde_json::from_str(&list.replace("&quot;", "\"").replace("&amp;", "&")).unwrap();
    let external: Vec<&String> = names
        .iter()
        .filter(|n| !n.starts_with("data:") && !n.starts_with("file:"))
        .collect();
    assert!(external.is_empty(), "the page requested {external:?}");
}

#[test]
fn diff_writes_a_differential_flamegraph() {
    let out = runs().dir.join("d.svg");
    ok(
        &tidemark(&[
            "diff",
            &p("a.1.tmk"),
            &p("b.1.tmk"),
            "--metric",
            "allocations",
            "-o",
            out.to_str().unwrap(),
        ]),
        "diff",
    );
    let svg = std::fs::read_to_string(&out).unwrap();
    assert!(svg.contains("<svg") && svg.contains("churn_"));
    assert!(svg.contains("rgb("), "coloured frames");
}

#[test]
fn check_budgets_on_both_sides_of_the_truth() {
    let prof = p("a.1.tmk");
    let s = summary_json(&prof);
    let peak = s["peak_bytes"].as_u64().unwrap();
    let allocs = s["allocations"].as_u64().unwrap();
    let leaked = s["leaked_bytes"].as_u64().unwrap();
    let code = |args: &[&str]| {
        let mut v = vec!["check"];
        v.extend_from_slice(args);
        v.push(&prof);
        tidemark(&v).status.code()
    };
    let (above_peak, below_peak) = ((peak + 1).to_string(), (peak - 1).to_string());
    let (above_allocs, below_allocs) = (allocs.to_string(), (allocs - 1).to_string());
    assert_eq!(
        code(&[
            "--max-peak",
            &above_peak,
            "--max-allocations",
            &above_allocs
        ]),
        Some(0)
    );
    assert_eq!(code(&["--max-peak", &below_peak]), Some(1));
    assert_eq!(code(&["--max-allocations", &below_allocs]), Some(1));
    assert_eq!(code(&["--max-leaked", &leaked.to_string()]), Some(0));
    assert_eq!(
        code(&["--max-leaked", "0"]),
        Some(if leaked > 0 { 1 } else { 0 })
    );
    assert_eq!(code(&["--max-peak", "64MiB"]), Some(0));
    // Too short a run to fit a slope: a growth budget cannot be met, and says why.
    let o = tidemark(&["check", "--max-growth", "1GiB/s", &prof]);
    if o.status.code() == Some(1) {
        assert!(String::from_utf8_lossy(&o.stdout).contains("not measurable"));
    } else {
        assert_eq!(o.status.code(), Some(0));
    }
    let o = tidemark(&["check", "--max-peak", &below_peak, &prof]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("FAIL peak heap") && text.contains("--max-peak"),
        "{text}"
    );
    // Errors: no budget, a bad size, a missing file.
    assert_eq!(code(&[]), Some(2));
    assert_eq!(code(&["--max-peak", "lots"]), Some(2));
    assert_eq!(
        tidemark(&["check", "--max-peak", "1", "/nonexistent.tmk"])
            .status
            .code(),
        Some(2)
    );
}
