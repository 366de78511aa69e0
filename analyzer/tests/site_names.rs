//! Unambiguous site names: an inlined Rust function is named by its full path where the debug
//! information has it, and unnamed frames (`sort+0x6e8d`) come with one hint per module naming
//! the debug package that would name them.

mod support;

use std::process::Command;

use support::{load, preload_lib, run_bounded, tidemark_cli, Scratch};

/// `inl::outer::inner::make_buffer`, inlined into `work`, allocates 7 blocks of 1000..=1006
/// bytes.
const INLINED: &str = r#"
mod outer {
    pub mod inner {
        #[inline(always)]
        pub fn make_buffer(n: usize) -> Vec<u8> {
            let mut v = Vec::with_capacity(n);
            v.push(1);
            v
        }
    }
}
#[inline(never)]
fn work(n: usize) -> usize {
    let mut t = 0;
    for i in 0..n {
        let b = outer::inner::make_buffer(1000 + i);
        t += std::hint::black_box(b).len();
    }
    t
}
fn main() {
    std::process::exit(if work(7) == 7 { 0 } else { 1 });
}
"#;

fn record(s: &Scratch, exe: &std::path::Path, args: &[&str], out: &str) {
    preload_lib();
    let mut cmd = Command::new(support::tidemark());
    cmd.args(["run", "-o", out, "--"])
        .arg(exe)
        .args(args)
        .current_dir(s.path());
    run_bounded(cmd, s, support::RUN_TIMEOUT).assert_success("tidemark run");
}

#[test]
fn inlined_rust_functions_are_named_by_their_full_path() {
    let s = Scratch::new("names-inlined");
    std::fs::write(s.join("inl.rs"), INLINED).unwrap();
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let out = Command::new(rustc)
        .args(["-O", "-C", "debuginfo=2", "inl.rs", "-o", "inl"])
        .current_dir(s.path())
        .output()
        .expect("rustc runs (the toolchain that builds tidemark)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    record(&s, &s.join("inl"), &[], "inl.tmk");
    let p = load(&s.join("inl.tmk"));
    let sites = tidemark_analyzer::analysis::sites(&p);
    let site = sites
        .iter()
        .find(|x| x.function.ends_with("make_buffer"))
        .unwrap_or_else(|| panic!("no make_buffer site: {sites:?}"));
    assert_eq!(site.function, "inl::outer::inner::make_buffer");
    assert_eq!(site.counts.allocations, 7);
    assert_eq!(site.counts.allocated_bytes, (1000..1007).sum::<u64>());
    assert!(site.file.ends_with("inl.rs") && site.line == 6, "{site:?}");
}

#[test]
fn unnamed_frames_name_the_debug_package_once_per_module() {
    let sort = "/usr/bin/sort";
    let owner = Command::new("dpkg")
        .args(["-S", sort])
        .output()
        .expect("dpkg (a Debian system)");
    let owner = String::from_utf8_lossy(&owner.stdout);
    let pkg = owner.split(':').next().unwrap().trim().to_owned();
    assert_eq!(pkg, "coreutils", "{owner}");
    let s = Scratch::new("names-dbgsym");
    std::fs::write(s.join("in.txt"), "b\na\nc\n").unwrap();
    record(&s, std::path::Path::new(sort), &["in.txt"], "sort.tmk");
    let p = load(&s.join("sort.tmk"));
    let unnamed_sort_frames = p
        .frames
        .iter()
        .filter(|f| p.str(f.function).starts_with("sort+0x"))
        .count();
    let hints: Vec<&String> = p
        .warnings
        .iter()
        .filter(|w| w.starts_with("hint: ") && w.contains(sort))
        .collect();
    if unnamed_sort_frames == 0 {
        // coreutils-dbgsym is installed here: nothing to hint.
        assert!(hints.is_empty(), "{hints:?}");
        return;
    }
    assert_eq!(hints.len(), 1, "one hint for the module: {:?}", p.warnings);
    assert!(
        hints[0].contains("install coreutils-dbgsym") && hints[0].contains("sort+0x…"),
        "{}",
        hints[0]
    );
    // The summary shows it once, as a line of its own; the frames keep their plain names.
    let text = tidemark_cli(["summary", "sort.tmk"], &s);
    text.assert_success("tidemark summary");
    assert_eq!(
        text.stdout.matches("coreutils-dbgsym").count(),
        1,
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("sort+0x"), "{}", text.stdout);
}
