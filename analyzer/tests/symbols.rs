//! Symbols come only from the code that ran: a binary rebuilt after the recording (another
//! build-id) is not used to name frames.

use std::path::{Path, PathBuf};
use std::process::Command;
use tidemark_analyzer::analysis::function_totals;
use tidemark_analyzer::load::{load_path, LoadOptions};

fn gcc(src: &str, out: &Path) {
    let c = out.with_extension("c");
    std::fs::write(&c, src).unwrap();
    let st = Command::new("gcc")
        .args([
            "-O2",
            "-g",
            "-fomit-frame-pointer",
            "-fno-optimize-sibling-calls",
            "-Wl,--build-id",
            "-o",
        ])
        .arg(out)
        .arg(&c)
        .status()
        .expect("gcc is needed (scripts/setup.sh installs it)");
    assert!(st.success());
}

const V1: &str = r#"#include <stdlib.h>
__attribute__((noinline)) void *named_site_one(int i) { return malloc(64 + i); }
int main(void) { for (int i = 0; i < 100; i++) free(named_site_one(i)); return 0; }
"#;
const V2: &str = r#"#include <stdlib.h>
#include <stdio.h>
__attribute__((noinline)) void *other_function(int i) { return calloc(1, 32 + i); }
int main(void) { void *p = other_function(3); printf("%p\n", p); free(p); return 0; }
"#;

/// A fresh scratch directory named after `what` and this test process.
fn scratch(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tidemark-{what}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `exe` under the preload library, its profile written to `profile`.
fn record(exe: &Path, profile: &Path) {
    let rel = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release");
    let preload = rel.join("libtidemark_preload.so");
    assert!(preload.exists(), "run `cargo build --release` first");
    let st = Command::new(exe)
        .env("LD_PRELOAD", &preload)
        .env("TIDEMARK_OUTPUT", profile)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn a_rebuilt_binary_does_not_name_the_recorded_frames() {
    let dir = scratch("symbols");
    let exe = dir.join("prog");
    gcc(V1, &exe);
    let profile = dir.join("p.tmk");
    record(&exe, &profile);

    // Same binary: named.
    let p = load_path(&profile, &LoadOptions::default()).unwrap();
    let named = function_totals(&p);
    assert_eq!(
        named.get("named_site_one").map(|t| t.allocations),
        Some(100),
        "{:?}",
        named.keys()
    );

    // Rebuilt with other code at the same path: never named from it.
    gcc(V2, &exe);
    let p = load_path(&profile, &LoadOptions::default()).unwrap();
    let totals = function_totals(&p);
    assert!(
        !totals.contains_key("named_site_one"),
        "symbols taken from the rebuilt file"
    );
    assert!(
        !totals.contains_key("other_function"),
        "symbols taken from the rebuilt file"
    );
    assert!(
        totals.keys().any(|k| k.starts_with("prog+0x")),
        "{:?}",
        totals.keys()
    );
    assert!(
        p.warnings.iter().any(|w| w.contains("build-id")),
        "{:?}",
        p.warnings
    );
    let _ = std::fs::remove_dir_all(&dir);
}

const EARLY: &str = r#"#include <stdlib.h>
void *volatile keep;
int main(void) { for (int i = 0; i < 10; i++) { keep = malloc(32 + i); free(keep); } return 0; }
"#;
const SPREAD: &str = r#"#include <stdio.h>
#include <stdlib.h>
#include <string.h>
void *volatile keep;
static int cmp(const void *a, const void *b) {
    keep = malloc(16);
    free(keep);
    return *(const int *)a - *(const int *)b;
}
int main(void) {
    int v[64];
    for (int i = 0; i < 64; i++) v[i] = (i * 37) % 64;
    qsort(v, 64, sizeof v[0], cmp);
    char *s = strdup("tidemark");
    FILE *f = fopen("/proc/self/status", "r");
    if (f) fclose(f);
    free(s);
    return 0;
}
"#;

/// The profiles of one run are embedded with one reader of libc's debug file, read in part
/// for the first profile's addresses and then further for the next one's (its libc frames lie
/// in other units): the symbols embedded are those each profile gets when embedded alone.
#[test]
fn profiles_embedded_together_get_the_symbols_each_gets_alone() {
    use tidemark_analyzer::embed::Embedder;
    let dir = scratch("embed-joint");
    let mut recorded = Vec::new();
    for (name, src) in [("early", EARLY), ("spread", SPREAD)] {
        let exe = dir.join(name);
        gcc(src, &exe);
        let profile = dir.join(format!("{name}.tmk"));
        record(&exe, &profile);
        recorded.push(profile);
    }
    let copy = |p: &Path, tag: &str| {
        let to = p.with_extension(format!("{tag}.tmk"));
        std::fs::copy(p, &to).unwrap();
        to
    };
    let together: Vec<_> = recorded.iter().map(|p| copy(p, "together")).collect();
    let alone: Vec<_> = recorded.iter().map(|p| copy(p, "alone")).collect();
    let mut joint = Embedder::default().for_several();
    let mut resolved = Vec::new();
    for p in &together {
        let report = joint.embed(p, None).unwrap();
        assert!(
            report.resolved > 0 && !report.already_embedded,
            "{report:?}"
        );
        resolved.push(report.resolved);
    }
    // The same program's profile once more: every address was named for the first one (the
    // embedder remembers them), and it gets the same names.
    let again = copy(&recorded[0], "again");
    let report = joint.embed(&again, None).unwrap();
    assert_eq!(report.resolved, resolved[0], "{report:?}");
    for p in &alone {
        Embedder::default().embed(p, None).unwrap();
    }
    let names = |p: &Path| {
        // Binaries and debug files moved away would not matter: the embedded symbols name it.
        let p = load_path(p, &LoadOptions::default()).unwrap();
        assert!(!p.embedded_symbols.is_empty());
        function_totals(&p)
    };
    for (t, a) in together.iter().zip(&alone) {
        assert_eq!(names(t), names(a), "{}", t.display());
    }
    assert_eq!(names(&again), names(&alone[0]));
    let spread = names(&together[1]);
    assert!(
        spread
            .keys()
            .any(|k| k.contains("msort") || k.contains("qsort")),
        "libc's sort is named: {:?}",
        spread.keys()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A stripped program whose debug file is not installed: `tidemark run` embeds what its own
/// file names, and loading the profile names nothing more (the file is not read again, its
/// frames read `prog+0x…` with a hint); once the debug file its `.gnu_debuglink` names is
/// installed, loading the same profile again names its frames.
#[test]
fn a_debug_file_installed_after_the_run_names_the_frames() {
    let dir = scratch("debuglater");
    let exe = dir.join("prog");
    gcc(V1, &exe);
    let debug = dir.join("prog.debug");
    let stash = dir.join("stash");
    std::fs::create_dir_all(&stash).unwrap();
    let run = |tool: &str, args: &[&std::ffi::OsStr]| {
        let st = Command::new(tool)
            .args(args)
            .status()
            .unwrap_or_else(|e| panic!("{tool} (binutils, installed with gcc): {e}"));
        assert!(st.success(), "{tool} {args:?}");
    };
    run(
        "objcopy",
        &[
            "--only-keep-debug".as_ref(),
            exe.as_os_str(),
            debug.as_os_str(),
        ],
    );
    run("strip", &["--strip-all".as_ref(), exe.as_os_str()]);
    let link = format!("--add-gnu-debuglink={}", debug.display());
    run("objcopy", &[link.as_ref(), exe.as_os_str()]);
    // Not installed while the program runs.
    let stashed = stash.join("prog.debug");
    std::fs::rename(&debug, &stashed).unwrap();

    let tidemark = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/tidemark");
    let profile = dir.join("p.tmk");
    let out = Command::new(&tidemark)
        .arg("run")
        .arg("-o")
        .arg(&profile)
        .arg("--")
        .arg(&exe)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let p = load_path(&profile, &LoadOptions::default()).unwrap();
    assert!(!p.embedded_symbols.is_empty(), "the run embeds symbols");
    let totals = function_totals(&p);
    assert!(
        !totals.contains_key("named_site_one"),
        "{:?}",
        totals.keys()
    );
    assert_eq!(
        totals
            .iter()
            .filter(|(k, _)| k.starts_with("prog+0x"))
            .map(|(_, t)| t.allocations)
            .max(),
        Some(100),
        "{:?}",
        totals.keys()
    );
    assert!(
        p.warnings
            .iter()
            .any(|w| w.starts_with("hint: ") && w.contains(&*exe.to_string_lossy())),
        "{:?}",
        p.warnings
    );

    // Installed: the same profile loaded again names the frames.
    std::fs::rename(&stashed, &debug).unwrap();
    let p = load_path(&profile, &LoadOptions::default()).unwrap();
    let totals = function_totals(&p);
    assert_eq!(
        totals.get("named_site_one").map(|t| t.allocations),
        Some(100),
        "{:?}",
        totals.keys()
    );
    assert!(
        !p.warnings.iter().any(|w| w.starts_with("hint: ")),
        "{:?}",
        p.warnings
    );
    let _ = std::fs::remove_dir_all(&dir);
}
