//! Golden outputs: the committed profiles of every format version (`tests/data/compat/`) rendered
//! as folded stacks, summary text and JSON, timeline CSV and timeline SVG must stay byte for byte what is
//! committed in `tests/data/golden/`, so a refactor of the analyzer shows every change it makes
//! to an output. `TIDEMARK_BLESS=1` rewrites the expected files (then review the diff); a
//! mismatch names the file and line and keeps the actual output in a temporary file.

mod support;

use std::path::PathBuf;
use support::*;
use tidemark_analyzer::analysis::summary;
use tidemark_analyzer::load::{load_path, LoadOptions};
use tidemark_analyzer::render::{self, Metric};

fn golden_dir() -> PathBuf {
    workspace_root().join("analyzer/tests/data/golden")
}

fn check_golden(name: &str, actual: &str) {
    let path = golden_dir().join(name);
    if std::env::var_os("TIDEMARK_BLESS").is_some() {
        std::fs::create_dir_all(golden_dir()).unwrap();
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "missing {}; run with TIDEMARK_BLESS=1 to create it",
            path.display()
        )
    });
    if actual != expected {
        let kept = std::env::temp_dir().join(format!("tidemark-golden-{name}"));
        std::fs::write(&kept, actual).unwrap();
        for (i, (a, e)) in actual.lines().zip(expected.lines()).enumerate() {
            assert_eq!(
                a,
                e,
                "{}:{} differs (actual output kept in {})",
                path.display(),
                i + 1,
                kept.display()
            );
        }
        panic!(
            "{}: line count differs (actual output kept in {})",
            path.display(),
            kept.display()
        );
    }
}

fn outputs(version: u16) {
    let profile = workspace_root().join(format!("analyzer/tests/data/compat/v{version}-churn.tmk"));
    // Embedded symbols only: the outputs must not depend on the binaries of this machine.
    let p = load_path(
        &profile,
        &LoadOptions {
            symbolize: false,
            progress: false,
            ..LoadOptions::default()
        },
    )
    .unwrap();
    for (metric, name) in [(Metric::Allocated, "allocated"), (Metric::Leaked, "leaked")] {
        let mut folded = render::folded(&p, metric).join("\n");
        folded.push('\n');
        check_golden(&format!("v{version}-churn.{name}.folded"), &folded);
    }
    let s = summary(&p, 10);
    check_golden(
        &format!("v{version}-churn.summary.txt"),
        &render::summary_text(&s),
    );
    let mut json = Vec::new();
    render::write_summary_json(&s, &mut json).unwrap();
    check_golden(
        &format!("v{version}-churn.summary.json"),
        &String::from_utf8(json).unwrap(),
    );
    check_golden(
        &format!("v{version}-churn.timeline.csv"),
        &render::curves::csv(&p),
    );
    // What `tidemark timeline` draws.
    let svg = render::timeline::render_svg(
        &tidemark_analyzer::cli::timeline_title(&p),
        &render::curves::panels(&p, None),
        render::timeline::DEFAULT_WIDTH_PX,
    )
    .unwrap();
    check_golden(&format!("v{version}-churn.timeline.svg"), &svg);
}

#[test]
fn version_1_outputs_are_unchanged() {
    outputs(1);
}

#[test]
fn version_2_outputs_are_unchanged() {
    outputs(2);
}
