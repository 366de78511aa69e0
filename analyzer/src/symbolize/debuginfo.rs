//! Debug information of one module: the file itself, separate debug files, and the lookups.

use std::fs::File;
use std::path::{Path, PathBuf};

use addr2line::Loader;
use object::Object;
use tidemark::format::{Module, SymbolFrame};

use super::demangle::{demangle, is_qualified};
use super::prefix::{DebugParts, PrefixDwarf};

/// Where separate debug files live (Debian's `-dbgsym` / `-dbg` packages install here).
pub const DEBUG_ROOT: &str = "/usr/lib/debug";

/// What the ELF file says about itself.
#[derive(Debug, Default)]
struct ElfFacts {
    build_id: Option<Vec<u8>>,
    debuglink: Option<String>,
    altlink: Option<(PathBuf, Vec<u8>)>,
}

fn elf_facts(path: &Path) -> std::io::Result<ElfFacts> {
    let file = File::open(path)?;
    // SAFETY: the map is read-only and lives only in this function; a file truncated by someone
    // else while mapped could fault, which is the accepted risk of every mmap-based reader
    // (addr2line's loader maps the same way).
    let map = unsafe { memmap2::Mmap::map(&file)? };
    let obj = object::File::parse(&*map)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
    let build_id = obj.build_id().ok().flatten().map(<[u8]>::to_vec);
    let debuglink = obj
        .gnu_debuglink()
        .ok()
        .flatten()
        .map(|(name, _crc)| String::from_utf8_lossy(name).into_owned());
    let altlink = obj.gnu_debugaltlink().ok().flatten().map(|(name, id)| {
        (
            PathBuf::from(String::from_utf8_lossy(name).into_owned()),
            id.to_vec(),
        )
    });
    Ok(ElfFacts {
        build_id,
        debuglink,
        altlink,
    })
}

/// True when the ELF file at `path` has neither a symbol table nor DWARF of its own (a
/// distribution's stripped binary); false when it has either, or cannot be read.
pub(crate) fn is_stripped(path: &Path) -> bool {
    let Ok(file) = File::open(path) else {
        return false;
    };
    // SAFETY: as in `elf_facts`: a read-only map that lives only in this function.
    let Ok(map) = (unsafe { memmap2::Mmap::map(&file) }) else {
        return false;
    };
    let Ok(obj) = object::File::parse(&*map) else {
        return false;
    };
    use object::ObjectSection;
    let has = |name: &str| obj.section_by_name(name).is_some_and(|s| s.size() > 0);
    !has(".symtab") && !has(".debug_info")
}

/// `/usr/lib/debug/.build-id/xx/yyyy.debug` for a build-id.
pub fn build_id_debug_path(root: &Path, build_id: &[u8]) -> Option<PathBuf> {
    if build_id.len() < 2 {
        return None;
    }
    let hex: String = build_id.iter().map(|b| format!("{b:02x}")).collect();
    Some(
        root.join(".build-id")
            .join(&hex[..2])
            .join(format!("{}.debug", &hex[2..])),
    )
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

/// Separate debug files opened ahead ([`DebugParts`]), for the finish to continue from; and
/// whether a debug file read in part is kept open to be read further
/// ([`super::DebugCache::for_several`]).
#[derive(Default)]
pub(crate) struct WarmParts(std::sync::Mutex<Vec<DebugParts>>, bool);

impl WarmParts {
    pub(crate) fn new(parts: Vec<DebugParts>) -> WarmParts {
        WarmParts(std::sync::Mutex::new(parts), false)
    }

    /// These parts, debug files read in part being kept open to be read further.
    pub(crate) fn widening(mut self, yes: bool) -> WarmParts {
        self.1 = yes;
        self
    }

    /// The parts no module took.
    pub(crate) fn into_inner(self) -> Vec<DebugParts> {
        self.0.into_inner().unwrap_or_else(|e| e.into_inner())
    }

    /// How many are left.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Takes the one opened from `path`.
    fn take(&self, path: &Path) -> Option<DebugParts> {
        let mut v = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let i = v.iter().position(|p| p.path() == path)?;
        Some(v.swap_remove(i))
    }
}

/// Debug information for one module, opened once.
pub(crate) struct ModuleDebug {
    /// The module's own file.
    file: Option<Loader>,
    /// A separate debug file, when one was found.
    debug: Option<Loader>,
    /// Or the part of one that the addresses of [`ModuleDebug::open_for`] need.
    prefix: Option<PrefixDwarf>,
    /// The file names a separate debug file (`.gnu_debuglink`): a distribution's stripped
    /// binary, whose debug package would name its frames.
    links_debug: bool,
}

/// True for module paths that are not files (the vDSO, anonymous mappings).
fn is_pseudo(path: &str) -> bool {
    path.is_empty()
        || path.starts_with('[')
        || path.starts_with("linux-vdso")
        || path.starts_with("linux-gate")
        || !path.starts_with('/')
}

impl ModuleDebug {
    /// Opens the module's file and its separate debug information (under `debug_root`, normally
    /// [`DEBUG_ROOT`]); problems go to `warnings`.
    pub(crate) fn open(
        module: &Module,
        debug_root: &Path,
        warnings: &mut Vec<String>,
    ) -> ModuleDebug {
        Self::open_for(module, debug_root, warnings, None)
    }

    /// [`ModuleDebug::open`], for naming the file addresses `probes` only: a compressed separate
    /// debug file is then read only as far as they need ([`super::prefix`]); the result
    /// [`covers`](ModuleDebug::covers) them.
    pub(crate) fn open_for(
        module: &Module,
        debug_root: &Path,
        warnings: &mut Vec<String>,
        probes: Option<&[u64]>,
    ) -> ModuleDebug {
        Self::open_warm(module, debug_root, warnings, probes, &WarmParts::default())
    }

    /// [`ModuleDebug::open_for`], continuing from a debug file among `warm` when the module's
    /// is there (opened and partly inflated while the command ran).
    pub(crate) fn open_warm(
        module: &Module,
        debug_root: &Path,
        warnings: &mut Vec<String>,
        probes: Option<&[u64]>,
        warm: &WarmParts,
    ) -> ModuleDebug {
        let mut md = ModuleDebug {
            file: None,
            debug: None,
            prefix: None,
            links_debug: false,
        };
        if is_pseudo(&module.path) {
            return md;
        }
        let path = Path::new(&module.path);
        let facts = match elf_facts(path) {
            Ok(f) => f,
            Err(e) => {
                warnings.push(format!(
                    "cannot read {}: {e}; its frames show as {}+0xOFFSET (copy the file here, \
                     or record with `tidemark run`, which embeds symbols in the profile)",
                    module.path,
                    super::modules::basename(&module.path)
                ));
                return md;
            }
        };
        // A file whose build-id differs from the recorded one is other code: its symbols would be
        // wrong, and wrong names are worse than none. Only debug information matched by the
        // recorded build-id is used then.
        let changed = changed_since(module, &facts);
        md.links_debug = facts.debuglink.is_some();
        if changed {
            warnings.push(format!(
                "{} on disk has build-id {} but the profile recorded {}: the file changed since \
                 the recording, so its frames show as {}+0xOFFSET (symbolize on the machine that \
                 recorded, or embed symbols with `tidemark run`)",
                module.path,
                hex(facts.build_id.as_deref().unwrap_or_default()),
                hex(&module.build_id),
                super::modules::basename(&module.path)
            ));
        } else {
            md.file = Loader::new(path).ok();
        }
        for c in debug_candidates(module, &facts, changed, debug_root) {
            if c.is_file() {
                let part = probes.and_then(|p| {
                    let parts = warm.take(&c).or_else(|| DebugParts::open(&c))?;
                    PrefixDwarf::from_parts(parts, p, warm.1)
                });
                if let Some(p) = part {
                    md.prefix = Some(p);
                    break;
                }
                if let Some(l) = open_debug_file(&c, debug_root) {
                    md.debug = Some(l);
                    break;
                }
            }
        }
        md
    }

    /// This opening, made to name `probes` as well when it is a partly read debug file that
    /// does not name them yet (see [`PrefixDwarf::widen`]); `None` when it cannot be widened
    /// (the caller opens the module again, reading its debug file whole).
    pub(crate) fn widen(mut self, probes: &[u64]) -> Option<ModuleDebug> {
        let prefix = self.prefix.take()?;
        self.prefix = Some(prefix.widen(probes)?);
        Some(self)
    }

    /// True when the module is a stripped binary whose separate debug file is not installed:
    /// its frames will likely be unnamed, and the summary hints at the debug package.
    pub(crate) fn misses_debug_file(&self) -> bool {
        self.links_debug && self.debug.is_none() && self.prefix.is_none()
    }

    /// True when this opening names every one of `probes` as a whole reading would (only a
    /// partly read debug file may not).
    pub(crate) fn covers(&self, probes: &[u64]) -> bool {
        self.prefix.as_ref().is_none_or(|p| p.covers(probes))
    }

    /// How much of a partly read debug file's `.debug_info` was inflated, of how much.
    #[cfg(test)]
    pub(crate) fn partly_read(&self) -> Option<(usize, usize)> {
        self.prefix.as_ref().map(PrefixDwarf::inflated)
    }

    /// Frames for a file address (already adjusted for return addresses), innermost first.
    /// Empty when nothing is known.
    pub(crate) fn frames(&self, probe: u64) -> Vec<SymbolFrame> {
        let loaders = [self.debug.as_ref(), self.file.as_ref()];
        let mut symbol: Option<String> = self
            .prefix
            .as_ref()
            .and_then(|p| p.find_symbol(probe))
            .map(|s| demangle(s).into_owned());
        for l in loaders.iter().flatten() {
            if symbol.is_none() {
                symbol = l.find_symbol(probe).map(|s| demangle(s).into_owned());
            }
        }
        let from_prefix = self
            .prefix
            .as_ref()
            .map(|p| raw_frames(p.find_frames(probe)));
        let from_loaders = loaders.iter().flatten().map(|l| dwarf_frames(l, probe));
        for frames in from_prefix.into_iter().chain(from_loaders) {
            if frames
                .iter()
                .any(|f| f.function.is_some() || f.file.is_some())
            {
                let n = frames.len();
                return frames
                    .into_iter()
                    .enumerate()
                    .map(|(i, f)| SymbolFrame {
                        function: if i + 1 == n {
                            outer_name(f.function, symbol.as_deref())
                        } else {
                            f.function.unwrap_or_else(|| "[inlined]".to_owned())
                        },
                        file: f.file.unwrap_or_default(),
                        line: f.line,
                    })
                    .filter(|f| !f.function.is_empty())
                    .collect();
            }
        }
        match symbol {
            Some(function) => vec![SymbolFrame {
                function,
                file: String::new(),
                line: 0,
            }],
            None => Vec::new(),
        }
    }
}

/// The name of the outermost (real, not inlined) function at an address. DWARF written with
/// `debug = "line-tables-only"` names functions without their path (`churn_keep`, `grow_one`),
/// while the symbol table's linkage name has it (`tm_churn::churn_keep`): prefer the qualified
/// name when DWARF's has none.
fn outer_name(dwarf: Option<String>, symbol: Option<&str>) -> String {
    match (dwarf, symbol) {
        (Some(d), Some(s)) if !is_qualified(&d) && is_qualified(s) => s.to_owned(),
        (Some(d), _) => d,
        (None, s) => s.unwrap_or_default().to_owned(),
    }
}

struct RawFrame {
    function: Option<String>,
    file: Option<String>,
    line: u32,
}

fn dwarf_frames(l: &Loader, probe: u64) -> Vec<RawFrame> {
    raw_frames(l.find_frames(probe))
}

fn raw_frames<R: gimli::Reader, E>(found: Result<addr2line::FrameIter<'_, R>, E>) -> Vec<RawFrame> {
    let mut out = Vec::new();
    let Ok(mut it) = found else {
        return out;
    };
    while let Ok(Some(f)) = it.next() {
        let function = f
            .function
            .as_ref()
            .and_then(|n| n.raw_name().ok())
            .map(|n| demangle(&n).into_owned());
        let (file, line) = match &f.location {
            Some(loc) => (loc.file.map(str::to_owned), loc.line.unwrap_or(0)),
            None => (None, 0),
        };
        out.push(RawFrame {
            function,
            file,
            line,
        });
        if out.len() > 256 {
            break;
        }
    }
    out
}

/// True when the file on disk has another build-id than the one the profile recorded for it.
fn changed_since(module: &Module, facts: &ElfFacts) -> bool {
    matches!(&facts.build_id, Some(disk) if !module.build_id.is_empty() && *disk != module.build_id)
}

/// Where a module's separate debug information may be, in the order it is looked for: by the
/// recorded build-id (the one that matches the code that ran), then by the file's own, then by
/// its `.gnu_debuglink` (those two only when the file on disk is the one that ran: not
/// `changed`).
fn debug_candidates(
    module: &Module,
    facts: &ElfFacts,
    changed: bool,
    debug_root: &Path,
) -> Vec<PathBuf> {
    let path = Path::new(&module.path);
    let mut candidates: Vec<PathBuf> = Vec::new();
    let ids = [
        Some(module.build_id.clone()),
        facts.build_id.clone().filter(|_| !changed),
    ];
    for id in ids.iter().flatten() {
        if let Some(p) = build_id_debug_path(debug_root, id) {
            candidates.push(p);
        }
    }
    if let Some(link) = facts.debuglink.as_ref().filter(|_| !changed) {
        let dir = path.parent().unwrap_or(Path::new("/"));
        let rel = dir.strip_prefix("/").unwrap_or(dir);
        candidates.push(debug_root.join(rel).join(link));
        candidates.push(dir.join(".debug").join(link));
        if Path::new(link) != path.file_name().map(Path::new).unwrap_or(Path::new("")) {
            candidates.push(dir.join(link));
        }
    }
    candidates
}

/// What a module's files say now without reading their symbols: whether a separate debug file
/// is there for it ([`ModuleDebug::open`] would read it), and whether the module names one it
/// lacks (`.gnu_debuglink`: the summary then hints at its debug package). `None` for a pseudo
/// module or a file that cannot be read.
pub(crate) fn debug_file_state(module: &Module, debug_root: &Path) -> Option<DebugFileState> {
    if is_pseudo(&module.path) {
        return None;
    }
    let facts = elf_facts(Path::new(&module.path)).ok()?;
    let changed = changed_since(module, &facts);
    let present = debug_candidates(module, &facts, changed, debug_root)
        .iter()
        .any(|c| c.is_file());
    Some(DebugFileState {
        present,
        links_debug: facts.debuglink.is_some(),
    })
}

/// See [`debug_file_state`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DebugFileState {
    /// A separate debug file for the module is installed.
    pub present: bool,
    /// The module names a separate debug file (`.gnu_debuglink`).
    pub links_debug: bool,
}

/// Opens a separate debug file, with its dwz supplementary file when it names one.
fn open_debug_file(path: &Path, debug_root: &Path) -> Option<Loader> {
    let facts = elf_facts(path).ok()?;
    if let Some((alt, id)) = facts.altlink {
        let mut sup = None;
        let alt = if alt.is_absolute() {
            alt
        } else {
            path.parent().unwrap_or(Path::new("/")).join(alt)
        };
        if alt.is_file() {
            sup = Some(alt);
        } else if let Some(p) = build_id_debug_path(debug_root, &id) {
            if p.is_file() {
                sup = Some(p);
            }
        }
        if let Some(sup) = sup {
            if let Ok(l) = Loader::new_with_sup(path, Some(&sup)) {
                return Some(l);
            }
        }
    }
    Loader::new(path).ok()
}

/// Reads the build-id of an ELF file (for checks outside symbolization).
pub fn file_build_id(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    Ok(elf_facts(path)?.build_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outer_names_prefer_qualified_symbols() {
        let q = |d: Option<&str>, s: Option<&str>| outer_name(d.map(str::to_owned), s);
        assert_eq!(
            q(Some("churn_keep"), Some("tm_churn::churn_keep")),
            "tm_churn::churn_keep"
        );
        assert_eq!(q(Some("a::b"), Some("a::b::c")), "a::b");
        assert_eq!(
            q(
                Some("finish_grow<alloc::alloc::Global>"),
                Some("alloc::raw_vec::RawVecInner<A>::finish_grow")
            ),
            "alloc::raw_vec::RawVecInner<A>::finish_grow"
        );
        assert_eq!(q(Some("ep_malloc"), Some("ep_malloc")), "ep_malloc");
        assert_eq!(q(None, Some("x::y")), "x::y");
        assert_eq!(q(None, None), "");
    }
}
