//! Helpers for the preload integration tests: build C programs, run them under the library,
//! read profiles.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tidemark::format::{Header, Module, Reader, Record, Truncation};

/// The preload library built for this test run.
pub fn preload_lib() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target");
    let want = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let mut candidates: Vec<PathBuf> = [want, "debug", "release"]
        .iter()
        .map(|p| root.join(p).join("libtidemark_preload.so"))
        .filter(|p| p.exists())
        .collect();
    assert!(
        !candidates.is_empty(),
        "libtidemark_preload.so not found under {}: run `cargo build -p tidemark-preload`",
        root.display()
    );
    candidates.remove(0)
}

/// A scratch directory, removed on drop unless the test failed.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let d =
            std::env::temp_dir().join(format!("tidemark-preload-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Scratch(d)
    }
    pub fn path(&self, f: &str) -> PathBuf {
        self.0.join(f)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Compiles `tests/programs/<name>.c` with `-O2 -fomit-frame-pointer`.
pub fn build_c(dir: &Scratch, name: &str) -> PathBuf {
    build_c_with(dir, name, &[])
}

/// Like [`build_c`], linked with `libs` (built by [`build_shared`] into the same directory).
pub fn build_c_with(dir: &Scratch, name: &str, libs: &[&str]) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/programs/{name}.c"));
    let exe = dir.path(name);
    let mut c = Command::new("gcc");
    c.args(["-O2", "-fomit-frame-pointer", "-g", "-pthread", "-o"])
        .arg(&exe)
        .arg(&src);
    if !libs.is_empty() {
        c.arg(format!("-L{}", dir.0.display()))
            .arg(format!("-Wl,-rpath,{}", dir.0.display()));
        for l in libs {
            c.arg(format!("-l{l}"));
        }
        c.arg("-ldl");
    }
    gcc(c);
    exe
}

/// Compiles `tests/programs/<name>.c` into `lib<name>.so` in `dir`.
pub fn build_shared(dir: &Scratch, name: &str) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/programs/{name}.c"));
    let lib = dir.path(&format!("lib{name}.so"));
    let mut c = Command::new("gcc");
    c.args([
        "-O2",
        "-fomit-frame-pointer",
        "-g",
        "-shared",
        "-fPIC",
        "-o",
    ])
    .arg(&lib)
    .arg(&src);
    gcc(c);
    lib
}

fn gcc(mut c: Command) {
    let out = c.output().expect("gcc must be installed");
    assert!(
        out.status.success(),
        "gcc failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A command running `exe` under the preload library, writing to `output`.
pub fn preloaded(exe: &Path, output: &Path) -> Command {
    let mut c = Command::new(exe);
    c.env("LD_PRELOAD", preload_lib())
        .env("TIDEMARK_OUTPUT", output);
    c
}

pub fn run_ok(mut c: Command) -> Output {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "program failed: {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A profile read completely.
pub struct Profile {
    pub header: Header,
    pub records: Vec<Record>,
    pub truncation: Option<Truncation>,
    pub stacks: HashMap<u64, Vec<u64>>,
    pub modules: Vec<Module>,
}

pub fn read_profile(path: &Path) -> Profile {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut r = Reader::new(std::io::BufReader::new(f)).unwrap();
    let mut records = Vec::new();
    r.for_each_record(|rec| {
        records.push(rec);
        Ok(())
    })
    .unwrap();
    let mut stacks = HashMap::new();
    let mut modules = Vec::new();
    for rec in &records {
        match rec {
            Record::Stack { id, frames, .. } => {
                assert!(
                    stacks.insert(*id, frames.clone()).is_none(),
                    "stack {id} defined twice"
                );
            }
            Record::Modules { modules: m, .. } => modules = m.clone(),
            _ => {}
        }
    }
    if std::env::var_os("TIDEMARK_DUMP").is_some() {
        for rec in &records {
            eprintln!("{rec:x?}");
        }
    }
    Profile {
        header: r.header().clone(),
        records,
        truncation: r.truncation().cloned(),
        stacks,
        modules,
    }
}

impl Profile {
    /// The module whose segments contain `addr`.
    pub fn module_of(&self, addr: u64) -> Option<&Module> {
        self.modules.iter().find(|m| {
            m.segments
                .iter()
                .any(|s| s.start <= addr && addr < s.start + s.size)
        })
    }

    /// Allocation records (including realloc records' new blocks) as (size, stack, kind).
    pub fn allocs(&self) -> Vec<&Record> {
        self.records
            .iter()
            .filter(|r| matches!(r, Record::Alloc { .. }))
            .collect()
    }

    pub fn stack_of(&self, id: u64) -> &[u64] {
        self.stacks
            .get(&id)
            .unwrap_or_else(|| panic!("stack {id} has no definition"))
    }
}
