//! Symbolization tests against this test binary itself.

use super::*;
use crate::load::synthetic::{Builder, Ev};
use crate::model::ModuleSnapshot;
use debuginfo::WarmParts;
use prefix::DebugParts;
use prewarm::Recorded;
use std::path::{Path, PathBuf};
use tidemark::format::{put_modules, Segment};

#[inline(never)]
fn marker_function_for_symbolization(x: u64) -> u64 {
    std::hint::black_box(x).wrapping_mul(3)
}

/// The main program's module (load bias and PT_LOAD segments), as the recorder would write it.
fn self_module() -> Module {
    unsafe extern "C" fn cb(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: the loader passes a valid info for the duration of the call; `data` is the
        // `Option<Module>` passed below.
        unsafe {
            let out = &mut *(data as *mut Option<Module>);
            let info = &*info;
            let mut segments = Vec::new();
            for i in 0..info.dlpi_phnum as usize {
                let ph = &*info.dlpi_phdr.add(i);
                if ph.p_type == libc::PT_LOAD {
                    segments.push(Segment {
                        start: info.dlpi_addr + ph.p_vaddr,
                        size: ph.p_memsz,
                        flags: ph.p_flags,
                    });
                }
            }
            let exe = std::env::current_exe().unwrap();
            *out = Some(Module {
                path: exe.display().to_string(),
                build_id: file_build_id(&exe).unwrap().unwrap_or_default(),
                base: info.dlpi_addr,
                segments,
            });
        }
        1 // the first entry is the main program; stop there
    }
    let mut out: Option<Module> = None;
    // SAFETY: the callback only writes `out`, which outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(cb), &mut out as *mut _ as *mut libc::c_void) };
    out.expect("main program")
}

fn marker_ip() -> u64 {
    // A return address inside the function: its first byte + 1, so the lookup (ip - 1) lands on
    // the function's first instruction.
    marker_function_for_symbolization as *const () as u64 + 1
}

#[test]
fn resolves_a_function_of_this_binary() {
    assert_eq!(marker_function_for_symbolization(2), 6);
    let m = self_module();
    let mut s = Symbolizer::new(&[ModuleSnapshot {
        generation: 1,
        modules: vec![m],
    }]);
    let r = s.resolve(marker_ip());
    assert!(r.symbolized, "{r:?}");
    let outer = r.frames.last().unwrap();
    assert!(
        outer
            .function
            .ends_with("symbolize::tests::marker_function_for_symbolization"),
        "{r:?}"
    );
    assert!(outer.file.ends_with("tests.rs"), "{r:?}");
    assert!(outer.line > 0);
    assert!(s.take_warnings().is_empty());
    // An address outside every module.
    let r = s.resolve(8);
    assert!(!r.symbolized);
    assert_eq!(r.frames[0].function, "0x8");
}

/// `m` as if loaded `by` bytes higher: what a library dlclosed and dlopened again at another
/// address looks like in the next generation's module map.
fn moved(m: &Module, by: u64) -> Module {
    let mut m = m.clone();
    m.base += by;
    for s in &mut m.segments {
        s.start += by;
    }
    m
}

#[test]
fn a_file_loaded_at_two_addresses_is_named_at_both() {
    let m = self_module();
    let by = 0x10_0000_0000;
    let snapshots = [
        ModuleSnapshot {
            generation: 1,
            modules: vec![m.clone()],
        },
        ModuleSnapshot {
            generation: 2,
            modules: vec![moved(&m, by)],
        },
        ModuleSnapshot {
            generation: 3,
            modules: vec![m.clone()],
        },
    ];
    // Resolved together (one file, so one group of addresses), each generation's load bias
    // for its own addresses; an address of the file with no name reads its own offset.
    let unnamed_offset = m.segments[0].start - m.base;
    let addrs = [
        (marker_ip(), 1),
        (marker_ip() + by, 2),
        (marker_ip(), 3),
        (m.segments[0].start + 1, 1),
        (m.segments[0].start + by + 1, 2),
    ];
    let mut s = Symbolizer::new(&snapshots);
    let all = s.resolve_all(&addrs);
    for (r, a) in all.iter().zip(&addrs).take(3) {
        assert!(r.symbolized, "{a:x?}: {r:?}");
        assert!(
            r.frames
                .last()
                .unwrap()
                .function
                .ends_with("marker_function_for_symbolization"),
            "{a:x?}: {r:?}"
        );
    }
    for (r, a) in all.iter().zip(&addrs).skip(3) {
        if !r.symbolized {
            assert!(
                r.frames[0]
                    .function
                    .ends_with(&format!("+{:#x}", unnamed_offset + 1)),
                "{a:x?}: {r:?}"
            );
        }
    }
    assert_eq!(all[3], all[4]);
    // One by one, the same.
    let mut one = Symbolizer::new(&snapshots);
    for (r, &(addr, generation)) in all.iter().zip(&addrs) {
        assert_eq!(&one.resolve_at(addr, generation), r);
    }
}

#[test]
fn warns_on_build_id_mismatch() {
    let mut m = self_module();
    m.build_id = vec![0xde, 0xad, 0xbe, 0xef];
    let mut s = Symbolizer::new(&[ModuleSnapshot {
        generation: 1,
        modules: vec![m],
    }]);
    let _ = s.resolve(marker_ip());
    let w = s.take_warnings();
    assert!(
        w.iter()
            .any(|w| w.contains("build-id") && w.contains("deadbeef")),
        "{w:?}"
    );
}

#[test]
fn debug_file_path_from_build_id() {
    let p = build_id_debug_path(Path::new("/usr/lib/debug"), &[0xab, 0xcd, 0xef]).unwrap();
    assert_eq!(p, Path::new("/usr/lib/debug/.build-id/ab/cdef.debug"));
    assert!(build_id_debug_path(Path::new("/x"), &[1]).is_none());
}

pub(crate) fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tidemark-sym-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A profile of one allocation whose stack is a function of this test binary and an address in
/// no module.
pub(crate) fn profile_with_self_module(trailer: bool) -> Vec<u8> {
    let m = self_module();
    let ip = marker_ip();
    let mut b = Builder::new();
    b.chunk(|p| put_modules(p, 1, std::slice::from_ref(&m)))
        .stacks(&[(1, &[ip, 0x10])])
        .batch(1, &[Ev::Alloc(0, 0xa, 8, 1)]);
    if trailer {
        b.trailer(&[]);
    }
    b.bytes()
}

#[test]
fn modules_opened_ahead_give_the_same_frames_and_are_used() {
    let m = self_module();
    let snapshots = [ModuleSnapshot {
        generation: 1,
        modules: vec![m.clone()],
    }];
    let plain = Symbolizer::new(&snapshots).resolve(marker_ip());
    assert!(plain.symbolized, "{plain:?}");

    let mut warmed = Warmed::default();
    prewarm::open_one(&m.path, &mut warmed);
    assert_eq!(warmed.len(), 1);
    let mut s = Symbolizer::with_cache(&snapshots, DebugCache::with_warmed(warmed));
    assert_eq!(s.resolve(marker_ip()), plain);
    assert!(s.warmed.is_empty(), "the module opened ahead was taken");
    assert!(s.take_warnings().is_empty());
}

#[test]
fn modules_opened_ahead_match_by_resolved_path_and_build_id_only() {
    let m = self_module();
    // The loader's name for a module may go through a symbolic link (/lib → usr/lib); the
    // kernel's map gives the resolved path.
    let dir = std::env::temp_dir().join(format!("tidemark-warm-link-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join("linked-binary");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&m.path, &link).unwrap();
    let mut via_link = m.clone();
    via_link.path = link.display().to_string();
    let real = std::fs::canonicalize(&m.path)
        .unwrap()
        .display()
        .to_string();
    let mut warmed = Warmed::default();
    prewarm::open_one(&real, &mut warmed);
    let mut s = Symbolizer::with_cache(
        &[ModuleSnapshot {
            generation: 1,
            modules: vec![via_link],
        }],
        DebugCache::with_warmed(warmed),
    );
    assert!(s.resolve(marker_ip()).symbolized);
    assert!(s.warmed.is_empty());

    // Recorded with another build-id: the file opened ahead is other code and stays unused.
    let mut changed = m.clone();
    changed.build_id = vec![0xde, 0xad, 0xbe, 0xef];
    let mut warmed = Warmed::default();
    prewarm::open_one(&real, &mut warmed);
    let mut s = Symbolizer::with_cache(
        &[ModuleSnapshot {
            generation: 1,
            modules: vec![changed],
        }],
        DebugCache::with_warmed(warmed),
    );
    assert!(!s.resolve(marker_ip()).symbolized);
    assert_eq!(s.warmed.len(), 1);
    assert!(s.take_warnings().iter().any(|w| w.contains("deadbeef")));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// libc and its separate, compressed debug file (libc6-dbg, installed by scripts/setup.sh).
fn libc_with_debug_file() -> (Module, PathBuf) {
    let path = "/lib/x86_64-linux-gnu/libc.so.6";
    let build_id = file_build_id(Path::new(path))
        .expect("libc is readable")
        .expect("libc has a build-id");
    let debug = build_id_debug_path(Path::new(DEBUG_ROOT), &build_id).expect("a build-id path");
    assert!(
        debug.is_file(),
        "{} missing: scripts/setup.sh installs libc6-dbg",
        debug.display()
    );
    let module = Module {
        path: path.to_owned(),
        build_id,
        base: 0,
        segments: Vec::new(),
    };
    (module, debug)
}

/// File addresses inside functions of libc's symbol table (`.symtab` of its debug file).
fn libc_probes(debug: &Path, names: &[&str]) -> Vec<u64> {
    use object::{Object, ObjectSymbol};
    let data = std::fs::read(debug).unwrap();
    let obj = object::File::parse(&*data).unwrap();
    names
        .iter()
        .map(|name| {
            let s = obj
                .symbols()
                .find(|s| s.name() == Ok(name) && s.size() > 8)
                .unwrap_or_else(|| panic!("{name} in libc's symbol table"));
            s.address() + s.size() / 2
        })
        .collect()
}

#[test]
fn a_partly_read_debug_file_names_frames_as_the_whole_file_does() {
    let (module, debug) = libc_with_debug_file();
    let root = Path::new(DEBUG_ROOT);
    let whole = ModuleDebug::open(&module, root, &mut Vec::new());
    assert_eq!(whole.partly_read(), None);

    // The frames below main: their units open .debug_info, so little of it is inflated.
    let early = libc_probes(
        &debug,
        &["__libc_start_call_main", "__libc_start_main_impl"],
    );
    let part = ModuleDebug::open_for(&module, root, &mut Vec::new(), Some(&early));
    let (inflated, size) = part
        .partly_read()
        .expect("libc's debug file is read in part");
    assert!(inflated * 10 < size, "{inflated} of {size} bytes inflated");
    for &p in &early {
        let f = part.frames(p);
        assert!(!f.is_empty() && !f[0].file.is_empty(), "{f:?}");
        assert_eq!(f, whole.frames(p), "at {p:#x}");
    }
    assert!(part.covers(&early));

    // Functions all over libc, inlined frames among them: the same frames either way.
    let spread = libc_probes(
        &debug,
        &[
            "__libc_start_call_main",
            "__libc_malloc",
            "__strdup",
            "_IO_new_fopen",
            "qsort_r",
            "__getdelim",
            "__libc_dlopen_mode",
        ],
    );
    assert!(!part.covers(&spread));
    // Not kept open (a single profile's read): it cannot be widened.
    assert!(part.widen(&spread).is_none());
    // Kept open: widened to them (the read goes on from where it stopped), the first
    // addresses are still named, the new ones as the whole file names them.
    let keep = WarmParts::default().widening(true);
    let part = ModuleDebug::open_warm(&module, root, &mut Vec::new(), Some(&early), &keep);
    let widened = part.widen(&spread).expect("libc's read widens");
    assert!(widened.covers(&early) && widened.covers(&spread));
    let (inflated_wider, _) = widened.partly_read().expect("still a partial read");
    assert!(inflated_wider > inflated, "{inflated_wider} vs {inflated}");
    for &p in early.iter().chain(&spread) {
        assert_eq!(widened.frames(p), whole.frames(p), "at {p:#x}");
    }
    let part = ModuleDebug::open_for(&module, root, &mut Vec::new(), Some(&spread));
    assert!(part.partly_read().is_some());
    for &p in &spread {
        assert_eq!(part.frames(p), whole.frames(p), "at {p:#x}");
    }

    // Every 40th function of libc that has DWARF (a function outside `.debug_aranges` makes
    // the whole file be read), at several points inside each (inlined code among them): the
    // units in between are skipped when indexing, the frames stay the same.
    let sampled = libc_dwarf_probes(&debug, &whole, 40);
    assert!(sampled.len() > 300, "{} probes", sampled.len());
    let part = ModuleDebug::open_for(&module, root, &mut Vec::new(), Some(&sampled));
    assert!(part.partly_read().is_some());
    let mut named = 0;
    for &p in &sampled {
        let f = part.frames(p);
        named += usize::from(!f.is_empty() && !f[0].file.is_empty());
        assert_eq!(f, whole.frames(p), "at {p:#x}");
    }
    assert!(
        named * 10 > sampled.len() * 9,
        "{named} of {}",
        sampled.len()
    );
}

#[test]
fn a_debug_file_inflated_ahead_names_frames_as_the_whole_file_does() {
    let (module, debug) = libc_with_debug_file();
    let root = Path::new(DEBUG_ROOT);
    let whole = ModuleDebug::open(&module, root, &mut Vec::new());
    let probes = libc_dwarf_probes(&debug, &whole, 97);
    // As `tidemark run`'s warm-up leaves it when the command ends: part of .debug_info
    // inflated (here 512 KiB), the rest inflated by the finish as far as the addresses need.
    let mut parts = DebugParts::open(&debug).expect("libc's debug file opens in part");
    assert!(parts.read_rest().is_some());
    assert!(parts.inflate_more(256 << 10));
    assert!(parts.inflate_more(256 << 10));
    let warm = WarmParts::new(vec![parts]);
    let part = ModuleDebug::open_warm(&module, root, &mut Vec::new(), Some(&probes), &warm);
    assert_eq!(warm.len(), 0, "the finish continued from the warm-up");
    assert!(part.partly_read().is_some());
    for &p in &probes {
        assert_eq!(part.frames(p), whole.frames(p), "at {p:#x}");
    }
    // Inflated to the end ahead: nothing is left for the finish to inflate.
    let mut parts = DebugParts::open(&debug).unwrap();
    while parts.inflate_more(1 << 20) {}
    let warm = WarmParts::new(vec![parts]);
    let part = ModuleDebug::open_warm(&module, root, &mut Vec::new(), Some(&probes), &warm);
    assert_eq!(warm.len(), 0);
    for &p in &probes {
        assert_eq!(part.frames(p), whole.frames(p), "at {p:#x}");
    }
}

/// [`libc_sampled_probes`] in functions the debug file's DWARF covers (whole-file frames with a
/// file): one outside `.debug_aranges` makes the whole file be read.
fn libc_dwarf_probes(debug: &Path, whole: &ModuleDebug, every: usize) -> Vec<u64> {
    libc_sampled_probes(debug, every)
        .into_iter()
        .filter(|&p| whole.frames(p).first().is_some_and(|f| !f.file.is_empty()))
        .collect()
}

/// Addresses at the start, a third, two thirds and the end of every `every`-th function of
/// libc's symbol table.
fn libc_sampled_probes(debug: &Path, every: usize) -> Vec<u64> {
    use object::{Object, ObjectSymbol};
    let data = std::fs::read(debug).unwrap();
    let obj = object::File::parse(&*data).unwrap();
    let mut funcs: Vec<(u64, u64)> = obj
        .symbols()
        .filter(|s| s.kind() == object::SymbolKind::Text && s.size() > 16)
        .map(|s| (s.address(), s.size()))
        .collect();
    funcs.sort_unstable();
    funcs.dedup();
    funcs
        .iter()
        .step_by(every)
        .flat_map(|&(a, n)| [a + 1, a + n / 3, a + 2 * n / 3, a + n - 1])
        .collect()
}

#[test]
fn addresses_named_while_the_command_runs_are_named_as_the_finish_names_them() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let me = self_module();
    let (mut libc, debug) = libc_with_debug_file();
    libc.base = 0x7f00_0000_0000;
    libc.segments = vec![Segment {
        start: libc.base,
        size: 0x40_0000,
        flags: 5,
    }];
    let snapshots = vec![ModuleSnapshot {
        generation: 1,
        modules: vec![me.clone(), libc.clone()],
    }];
    let in_libc: Vec<(u64, u64)> = libc_probes(&debug, &["__libc_start_call_main", "__strdup"])
        .into_iter()
        .map(|p| (libc.base + p + 1, 1))
        .collect();
    let all: Vec<(u64, u64)> = std::iter::once((marker_ip(), 1))
        .chain(in_libc.iter().copied())
        .collect();

    // The recorder's file as it grows: the program's address first, libc's in a later chunk;
    // then the command ends.
    let stop = Arc::new(AtomicBool::new(false));
    let (flag, grown, snaps) = (Arc::clone(&stop), all.clone(), snapshots.clone());
    let mut reads = 0;
    let recorded: Recorded = Box::new(move |_| {
        reads += 1;
        match reads {
            1 => Some((snaps.clone(), grown[..1].to_vec())),
            2 => Some((snaps.clone(), grown.clone())),
            _ => {
                flag.store(true, Ordering::Relaxed);
                None
            }
        }
    });
    // libc's debug file inflated whole ahead: the first read's addresses do not use it, the
    // second's do (it is not dropped in between).
    let mut warmed = Warmed::default();
    let mut parts = DebugParts::open(&debug).expect("libc's debug file opens in part");
    assert!(parts.read_rest().is_some());
    while parts.inflate_more(1 << 20) {}
    warmed.parts.push(parts);
    let warmed = prewarm::name_ahead(recorded, warmed, &stop);

    let key = (libc.path.clone(), libc.build_id.clone());
    let (inflated, size) = warmed.opened[&key]
        .partly_read()
        .expect("libc's debug file from the parts inflated ahead");
    assert_eq!(inflated, size, "the parts inflated ahead were used");
    let named: usize = warmed.named.values().map(|m| m.len()).sum();
    assert_eq!(named, all.len(), "every recorded address was named ahead");

    let plain = Symbolizer::new(&snapshots).resolve_all(&all);
    assert!(plain.iter().all(|r| r.symbolized), "{plain:?}");
    let mut finish = Symbolizer::with_cache(&snapshots, DebugCache::with_warmed(warmed));
    assert_eq!(finish.resolve_all(&all), plain);
    assert!(finish.take_warnings().is_empty());
}
