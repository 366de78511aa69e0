//! The walk cache gives exactly the stacks of full walks: the same program run under the preload
//! library with the cache on and off (`TIDEMARK_WALK_CACHE=0`) yields, allocation by allocation,
//! the same frames (as module + offset, so address-space randomisation does not matter).

mod support;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use support::*;
use tidemark::format::Record;

/// A frame as (module path, offset from its load bias); unknown addresses keep their value.
type Frame = (String, u64);

/// Allocation stacks of one run, and the modules loaded when it started.
struct Stacks {
    stacks: Vec<Vec<Frame>>,
    initial_modules: HashSet<String>,
}

/// The stacks of every allocation (`Alloc` and `Realloc`) in sequence order, normalised.
fn alloc_stacks(p: &Profile) -> Stacks {
    let mut allocs: Vec<(u64, u64)> = p
        .records
        .iter()
        .filter_map(|r| match *r {
            Record::Alloc { seq, stack, .. } | Record::Realloc { seq, stack, .. } => {
                Some((seq, stack))
            }
            _ => None,
        })
        .collect();
    allocs.sort_unstable();
    let initial_modules = p
        .records
        .iter()
        .find_map(|r| match r {
            Record::Modules { modules, .. } => {
                Some(modules.iter().map(|m| m.path.clone()).collect())
            }
            _ => None,
        })
        .unwrap_or_default();
    let mut memo: HashMap<u64, Vec<Frame>> = HashMap::new();
    let stacks = allocs
        .iter()
        .map(|&(_, id)| {
            memo.entry(id)
                .or_insert_with(|| {
                    p.stack_of(id)
                        .iter()
                        .map(|&a| match p.module_of(a) {
                            Some(m) => (m.path.clone(), a - m.base),
                            None => (String::new(), a),
                        })
                        .collect()
                })
                .clone()
        })
        .collect();
    Stacks {
        stacks,
        initial_modules,
    }
}

/// `e_entry` of an ELF executable: the address of `_start` (relative to the load bias).
fn entry_point(exe: &Path) -> u64 {
    let bytes = std::fs::read(exe).unwrap_or_else(|e| panic!("{}: {e}", exe.display()));
    assert_eq!(
        &bytes[..4],
        b"\x7fELF",
        "{} is not an ELF file",
        exe.display()
    );
    u64::from_le_bytes(bytes[24..32].try_into().unwrap())
}

/// Share of stacks whose outermost frame is the return address into `_start` of `exe`.
fn reaching_start(stacks: &[Vec<Frame>], exe: &Path) -> f64 {
    // Profiles name the executable by its resolved path (`/proc/self/exe`).
    let exe = std::fs::canonicalize(exe).unwrap();
    let path = exe.to_string_lossy();
    let entry = entry_point(&exe);
    let n = stacks
        .iter()
        .filter(|s| {
            s.last()
                .is_some_and(|(m, off)| *m == path && *off > entry && *off < entry + 64)
        })
        .count();
    n as f64 / stacks.len().max(1) as f64
}

/// Runs `cmd` (a program and its arguments) under the library with the walk cache on and off
/// and returns both profiles' allocation stacks.
fn cached_and_full(
    dir: &Scratch,
    exe: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Stacks, Stacks) {
    let run = |cache: &str| {
        let out_path = dir.path(&format!("cache{cache}.tmk"));
        let mut c = preloaded(exe, &out_path);
        c.args(args).env("TIDEMARK_WALK_CACHE", cache);
        for (k, v) in env {
            c.env(k, v);
        }
        let out = run_ok(c);
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let p = read_profile(&out_path);
        assert!(p.truncation.is_none(), "{:?}", p.truncation);
        alloc_stacks(&p)
    };
    (run("1"), run("0"))
}

/// Asserts the two runs' stacks are the same, allocation by allocation.
///
/// One difference is not the cache's: a module loaded by `dlopen` is unwound through only once
/// the recorder has noticed it, and when that happens is a matter of timing that differs from
/// run to run. So where one stack is a prefix of the other and ends in a module absent from the
/// initial module map, the pair is counted, not compared, and must stay rare.
fn assert_same(cached: &Stacks, full: &Stacks) -> f64 {
    let (c, f) = (&cached.stacks, &full.stacks);
    assert_eq!(c.len(), f.len(), "allocation counts differ");
    let late = |s: &[Frame]| {
        s.last()
            .is_some_and(|(m, _)| !cached.initial_modules.contains(m))
    };
    let mut racing = 0;
    let mut differing = Vec::new();
    for i in 0..c.len() {
        if c[i] == f[i] {
            continue;
        }
        let (short, long) = if c[i].len() < f[i].len() {
            (&c[i], &f[i])
        } else {
            (&f[i], &c[i])
        };
        if long.starts_with(short) && late(short) {
            racing += 1;
        } else {
            differing.push(i);
        }
    }
    assert!(
        differing.is_empty(),
        "{} of {} stacks differ; first, allocation {}:\ncached {:x?}\nfull   {:x?}",
        differing.len(),
        c.len(),
        differing[0],
        c[differing[0]],
        f[differing[0]]
    );
    assert!(
        racing * 1000 <= c.len(),
        "{racing} stacks cut at a new module"
    );
    racing as f64 / c.len().max(1) as f64
}

/// The instructions of `func` in `objdump -d` of `exe`.
fn disassembly(exe: &Path, func: &str) -> Vec<String> {
    let out = Command::new("objdump")
        .args(["-d", "--no-show-raw-insn"])
        .arg(exe)
        .output()
        .expect("objdump must be installed (binutils)");
    let text = String::from_utf8_lossy(&out.stdout);
    let head = format!("<{func}>:");
    text.lines()
        .skip_while(|l| !l.ends_with(&head))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .map(|l| l.split('\t').skip(1).collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn workload_keeps_changing_values_in_rbp_without_frame_pointers() {
    // What makes the test meaningful: the loops keep a value that changes every iteration in
    // rbp, and no function sets up a frame pointer.
    let dir = Scratch::new("walkload-asm");
    let exe = build_c(&dir, "walkload");
    for func in ["hot_loop", "descend"] {
        let insns = disassembly(&exe, func);
        assert!(!insns.is_empty(), "{func} not found");
        assert!(
            !insns.iter().any(|i| i.contains("%rsp,%rbp")),
            "{func} sets up a frame pointer: {insns:#?}"
        );
        let writes_rbp = insns.iter().any(|i| {
            let i = i.trim();
            !i.starts_with("push") && !i.starts_with("pop") && i.ends_with(",%rbp")
        });
        assert!(writes_rbp, "{func} does not compute in rbp: {insns:#?}");
    }
}

#[test]
fn deep_recursion_cached_stacks_equal_full_walks() {
    let dir = Scratch::new("walkload-recurse");
    let exe = build_c(&dir, "walkload");
    let (cached, full) = cached_and_full(&dir, &exe, &["recurse", "3"], &[]);
    let racing = assert_same(&cached, &full);
    let (cached, full) = (cached.stacks, full.stacks);
    // 3 rounds of 5,430 allocations at depths 1..60 (see walkload.c).
    let deep: Vec<&Vec<Frame>> = cached
        .iter()
        .filter(|s| s.len() > 20 && s.len() < 100)
        .collect();
    assert!(deep.len() > 5_000, "{} deep stacks", deep.len());
    let start = reaching_start(&cached, &exe);
    assert!(start + racing >= reaching_start(&full, &exe));
    assert!(start > 0.99, "{:.4} of the stacks reach _start", start);
}

/// The real executable behind `python3` (often a shim script), if there is one.
fn python() -> Option<PathBuf> {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
        .filter(|p| p.is_file())
}

#[test]
fn python_cached_stacks_equal_full_walks() {
    let Some(py) = python() else {
        eprintln!("python3 is not installed: nothing to compare");
        return;
    };
    let dir = Scratch::new("walkload-python");
    // Allocation-heavy and deterministic: recursion (deep interpreter stacks, some beyond the
    // frame limit), lists, strings, dicts with string keys.
    let code = "
def rec(n, acc):
    if n == 0:
        return [str(i) * 3 for i in range(40)] + acc
    d = {'k%d' % i: [i] * (n % 7) for i in range(8)}
    if n % 3 == 0:
        return list(map(lambda a: rec(n - 1, a), [acc + [len(d)]]))[0]
    return rec(n - 1, acc + [len(d)])
total = 0
for r in range(100):
    total += len(rec(r % 90, []))
    if r % 25 == 0:
        exec('total += len(rec(r % 60, []))')
print(total)
";
    let env = [("PYTHONMALLOC", "malloc"), ("PYTHONHASHSEED", "0")];
    let (cached, full) = cached_and_full(&dir, &py, &["-c", code], &env);
    let racing = assert_same(&cached, &full);
    let (cached, full) = (cached.stacks, full.stacks);
    assert!(cached.len() > 50_000, "{} allocations", cached.len());
    // Interpreter stacks through C calls (map, exec) go beyond the frame limit.
    let capped = cached
        .iter()
        .filter(|s| s.len() == tidemark::unwind::MAX_FRAMES)
        .count();
    assert!(capped > 1000, "{capped} stacks at the frame limit");
    let start = reaching_start(&cached, &py);
    let full_start = reaching_start(&full, &py);
    assert!(start + racing >= full_start, "{start} < {full_start}");
    assert!(start > 0.5, "{:.4} of the stacks reach _start", start);
}

#[test]
fn frame_pointer_walks_never_record_data_addresses() {
    // `--unwind fp` on code without frame pointers: the chain follows whatever rbp holds, here a
    // pointer to a stack record whose "return address" is data. Stacks come out short, but no
    // frame may point outside the modules' executable code.
    let dir = Scratch::new("walkload-fp");
    let exe = build_c(&dir, "walkload");
    let out_path = dir.path("fp.tmk");
    let mut c = preloaded(&exe, &out_path);
    c.args(["fpdata", "1000"]).env("TIDEMARK_UNWIND", "fp");
    run_ok(c);
    let p = read_profile(&out_path);
    assert_eq!(p.header.unwind, "fp");
    const PF_X: u32 = 1;
    let executable = |a: u64| {
        p.modules.iter().any(|m| {
            m.segments
                .iter()
                .any(|s| s.flags & PF_X != 0 && s.start <= a && a < s.start + s.size)
        })
    };
    let mut frames = 0;
    for (id, stack) in &p.stacks {
        for &a in stack {
            assert!(
                executable(a),
                "stack {id}: frame {a:#x} is not code: {stack:x?}"
            );
            frames += 1;
        }
    }
    assert!(frames > 0);
    let pairs = p.allocs().len();
    assert!(pairs >= 1000, "{pairs} allocations");
}
