//! Allocation sites are the first frame outside allocator machinery, for Rust and C++ alike: a Rust
//! program (built here with rustc, release, `line-tables-only` debug info, its own counting
//! `#[global_allocator]`) and a C++ program (g++ -O2, without frame pointers, a counting
//! `operator new`) print how many allocation calls each of their functions makes; the profile
//! must attribute exactly those calls to that function as the site — not to `__rustc::__rdl_alloc`,
//! `alloc::raw_vec::…`, `<[T]>::to_vec`, hashbrown, `operator new`, `std::vector<…>::
//! _M_realloc_insert`, `std::__cxx11::basic_string<…>::_M_create` or `strdup`.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::{load, record, workspace_root, Scratch};
use tidemark_analyzer::analysis::{sites, without_return_type};

fn source(name: &str) -> PathBuf {
    workspace_root()
        .join("analyzer/tests/data/sites")
        .join(name)
}

fn build(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what} (scripts/setup.sh installs it): {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `site <function> <calls>` lines the programs print.
fn printed_truth(stdout: &str) -> BTreeMap<String, u64> {
    let truth: BTreeMap<String, u64> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("site "))
        .map(|l| {
            let (name, n) = l.split_once(' ').expect("site NAME COUNT");
            (name.to_owned(), n.parse().expect("a count"))
        })
        .collect();
    assert!(truth.len() >= 6, "the program printed no truth: {stdout}");
    truth
}

/// The bare function name of a site: no return type, arguments, ABI tag or path.
fn bare(function: &str) -> &str {
    let name = without_return_type(function);
    let name = &name[..name.find(['(', '[']).unwrap_or(name.len())];
    name.rsplit("::").next().unwrap_or(name)
}

/// Records `exe` and compares its printed truth with the per-site allocation counts.
fn check_sites(scratch: &Scratch, exe: &Path) {
    let rec = record(scratch, exe, &[] as &[&str]);
    let truth = printed_truth(&rec.run.stdout);
    let p = load(&rec.profile);
    let all = sites(&p);
    let mut got: BTreeMap<String, u64> = BTreeMap::new();
    for s in &all {
        *got.entry(bare(&s.function).to_owned()).or_default() += s.counts.allocations;
    }
    let mut problems = Vec::new();
    for (name, &expected) in &truth {
        let n = got.get(name).copied().unwrap_or(0);
        if n != expected {
            problems.push(format!("{name}: expected {expected} calls, got {n}"));
        }
    }
    // No site is machinery (what the old list let through: `__rustc::__rdl_alloc`, …).
    for s in &all {
        if tidemark_analyzer::analysis::is_allocator_plumbing(&s.function)
            || s.function.contains("__rust")
            || s.function.contains("_M_create")
            || s.function.contains("_M_realloc_insert")
        {
            problems.push(format!("machinery shown as a site: {}", s.function));
        }
    }
    if !problems.is_empty() {
        let listing: Vec<String> = all
            .iter()
            .map(|s| {
                format!(
                    "  {} x{} ({}:{})",
                    s.function, s.counts.allocations, s.file, s.line
                )
            })
            .collect();
        panic!(
            "{}:\n{}\nsites:\n{}",
            exe.display(),
            problems.join("\n"),
            listing.join("\n")
        );
    }
}

#[test]
fn rust_sites_are_user_functions() {
    let s = Scratch::new("sites-rust");
    let exe = s.join("sites_rs");
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    build(
        Command::new(rustc)
            .args([
                "--edition",
                "2021",
                "-O",
                "-C",
                "debuginfo=line-tables-only",
            ])
            .arg("-o")
            .arg(&exe)
            .arg(source("sites.rs")),
        "rustc",
    );
    check_sites(&s, &exe);
}

#[test]
fn cxx_sites_are_user_functions() {
    let s = Scratch::new("sites-cxx");
    let exe = s.join("sites_cpp");
    build(
        Command::new("g++")
            .args(["-O2", "-g", "-fomit-frame-pointer", "-o"])
            .arg(&exe)
            .arg(source("sites.cpp")),
        "g++",
    );
    check_sites(&s, &exe);
}
