//! Offline symbolization: return addresses → functions, files and lines (inlined frames
//! included), from the profile's module map and the binaries on disk.
//!
//! For each address: the module is the latest module map snapshot whose segments contain it; the
//! file address is `address − load bias`; the lookup uses `file address − 1`, because recorded
//! frames are return addresses and the call instruction precedes them. DWARF comes from the file
//! itself, from `/usr/lib/debug/.build-id/xx/yyyy.debug` or from `.gnu_debuglink`; without DWARF
//! the ELF symbol table names the function; without the file a frame reads `module+0xoffset`.
//! A build-id on disk that differs from the recorded one gives a warning.
//!
//! This is a pass over a loaded profile ([`symbolize`]): [`crate::load`] reads raw addresses and
//! the symbols a profile embeds, this module names every address (embedded symbols first, then
//! the binaries), and [`crate::embed`] can write what it resolved back into the file so the
//! profile travels. It reads binaries, never profiles, and writes nothing.

pub mod debug_hint;
mod debuginfo;
mod demangle;
mod modules;
mod parallel;
mod prefix;
mod prewarm;

pub use debuginfo::{build_id_debug_path, file_build_id, DEBUG_ROOT};
pub use demangle::{demangle, is_qualified};
pub use prewarm::{ExeWarmup, Prewarm, Recorded, Warmed};

use std::collections::HashMap;
use std::path::PathBuf;

use tidemark::format::{Module, SymbolFrame};

use crate::model::{Frame, FrameId, IpId, Profile};
use crate::progress::ProgressSink;
use debuginfo::ModuleDebug;
use modules::{basename, ModuleMap};

/// A resolved address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Frames, innermost inlined call first. Never empty.
    pub frames: Vec<SymbolFrame>,
    /// False when nothing better than `module+0xoffset` (or the bare address) was found.
    pub symbolized: bool,
}

/// The debug information of the modules opened so far, keyed by (path, recorded build-id): kept
/// across the profiles of one run (a wrapper's images and children share their binaries), so each
/// binary is read once.
#[derive(Default)]
pub struct DebugCache {
    modules: HashMap<(String, Vec<u8>), ModuleDebug>,
    /// Modules a [`Prewarm`] opened while the command ran: one is used when a profile recorded
    /// the same (resolved) path and build-id.
    warmed: Warmed,
    /// Debug files read in part stay open to be read further for the next profile's addresses,
    /// and the addresses named are remembered (see [`DebugCache::for_several`]).
    widens: bool,
    /// With `widens`: what each module's addresses (file addresses looked up) were named.
    named: Named,
}

/// What addresses were named, by module (path, recorded build-id) and file address looked up.
pub(crate) type Named = HashMap<(String, Vec<u8>), HashMap<u64, Resolved>>;

impl DebugCache {
    /// A cache starting from the modules a [`Prewarm`] opened.
    pub fn with_warmed(mut warmed: Warmed) -> Self {
        DebugCache {
            modules: std::mem::take(&mut warmed.opened),
            named: std::mem::take(&mut warmed.named),
            warmed,
            widens: false,
        }
    }

    /// The modules of this cache and the addresses it named, handed on to the finish as what a
    /// [`Prewarm`] did while the command ran, with the `warnings` their opening gave.
    pub(crate) fn into_warmed(self, warnings: Vec<String>) -> Warmed {
        let mut w = self.warmed;
        w.opened = self.modules;
        w.named = self.named;
        w.warnings = warnings;
        w
    }

    /// This cache, for the profiles of one run: a debug file read in part (libc's) keeps what it
    /// inflated, and a profile whose addresses lie in other units has it read further from
    /// there instead of from its start (memory: the inflated part, kept until the cache goes);
    /// and an address named for one profile is not looked up (nor its C++ name demangled) again
    /// for the next (a build's twenty `cc1` processes share most of their return addresses).
    pub fn for_several(mut self) -> Self {
        self.widens = true;
        self
    }
}

/// Resolves addresses against a profile's module map, caching each module's debug information.
pub struct Symbolizer {
    map: ModuleMap,
    /// Keyed by (path, recorded build-id).
    cache: HashMap<(String, Vec<u8>), ModuleDebug>,
    /// Modules opened ahead (while the command ran), taken into `cache` when first needed.
    warmed: Warmed,
    /// See [`DebugCache::for_several`].
    widens: bool,
    /// See [`DebugCache::named`].
    named: Named,
    debug_root: PathBuf,
    warnings: Vec<String>,
}

impl Symbolizer {
    /// A symbolizer for the module map snapshots of a profile.
    pub fn new(snapshots: &[crate::model::ModuleSnapshot]) -> Self {
        Self::with_cache(snapshots, DebugCache::default())
    }

    /// A symbolizer that starts from the modules `cache` has opened already.
    pub fn with_cache(snapshots: &[crate::model::ModuleSnapshot], mut cache: DebugCache) -> Self {
        // The warnings of the modules a warm-up opened for the addresses it named.
        let warnings = std::mem::take(&mut cache.warmed.warnings);
        Symbolizer {
            map: ModuleMap::new(snapshots),
            cache: cache.modules,
            warmed: cache.warmed,
            widens: cache.widens,
            named: cache.named,
            debug_root: PathBuf::from(DEBUG_ROOT),
            warnings,
        }
    }

    /// The modules opened, for the next profile's symbolizer.
    pub fn into_cache(self) -> DebugCache {
        DebugCache {
            modules: self.cache,
            warmed: self.warmed,
            widens: self.widens,
            named: self.named,
        }
    }

    /// Warnings collected so far (missing files, build-id mismatches), each once.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// The name used when an address cannot be symbolized: `module+0xoffset` or `0xaddress`.
    pub fn fallback_name(&self, addr: u64) -> String {
        fallback_name(self.map.find(addr), addr)
    }

    /// Resolves one return address against the latest module map that has it.
    pub fn resolve(&mut self, addr: u64) -> Resolved {
        self.resolve_at(addr, 0)
    }

    /// Resolves one return address of a stack of module generation `generation` (0: any).
    pub fn resolve_at(&mut self, addr: u64, generation: u64) -> Resolved {
        let Some(module) = self.map.find_at(addr, generation) else {
            return unresolved(None, addr);
        };
        let key = (module.path.clone(), module.build_id.clone());
        if !self.cache.contains_key(&key) {
            let md = match self.warmed.take(&module.path, &module.build_id) {
                Some(w) => {
                    self.warnings.extend(w.warnings);
                    w.debug
                }
                None => ModuleDebug::open(module, &self.debug_root, &mut self.warnings),
            };
            self.cache.insert(key.clone(), md);
        }
        parallel::resolve_in(&self.cache[&key], module, addr)
    }
}

fn fallback_name(module: Option<&Module>, addr: u64) -> String {
    match module {
        Some(m) => format!("{}+{:#x}", basename(&m.path), addr.wrapping_sub(m.base)),
        None => format!("{addr:#x}"),
    }
}

fn unresolved(module: Option<&Module>, addr: u64) -> Resolved {
    unnamed(fallback_name(module, addr))
}

/// An address left as `name` (`module+0xoffset` or the bare address).
fn unnamed(name: String) -> Resolved {
    Resolved {
        frames: vec![SymbolFrame {
            function: name,
            file: String::new(),
            line: 0,
        }],
        symbolized: false,
    }
}

/// Default of [`SymbolizeOptions::use_files`].
pub const DEFAULT_USE_FILES: bool = true;

/// How [`symbolize`] names addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolizeOptions {
    /// Read the binaries (and their debug files) on this machine for addresses the profile has
    /// no embedded symbols for; without it they read `module+0xoffset`. Default:
    /// [`DEFAULT_USE_FILES`] (`true`).
    pub use_files: bool,
}

impl Default for SymbolizeOptions {
    fn default() -> Self {
        SymbolizeOptions {
            use_files: DEFAULT_USE_FILES,
        }
    }
}

/// What [`symbolize`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SymbolizeReport {
    /// The return addresses named from the binaries on disk (not from embedded symbols, not a
    /// `module+0xoffset` fallback): what [`crate::embed`] appends to the file.
    pub from_files: Vec<IpId>,
}

/// The symbolization pass: fills every [`crate::model::Ip`]'s frames of a profile read by
/// [`crate::load::read_path`]: embedded symbols first, then (with
/// [`SymbolizeOptions::use_files`]) the binaries on disk, else `module+0xoffset`. Warnings
/// (missing files, build-id mismatches) go to [`Profile::warnings`]. Progress: one unit per
/// address.
pub fn symbolize(
    p: &mut Profile,
    opts: &SymbolizeOptions,
    progress: Option<&mut dyn ProgressSink>,
) -> SymbolizeReport {
    symbolize_cached(p, opts, progress, &mut DebugCache::default())
}

/// [`symbolize`], reusing (and adding to) the modules `cache` has opened.
pub fn symbolize_cached(
    p: &mut Profile,
    opts: &SymbolizeOptions,
    mut progress: Option<&mut dyn ProgressSink>,
    cache: &mut DebugCache,
) -> SymbolizeReport {
    let use_files = opts.use_files;
    let embedded = std::mem::take(&mut p.embedded_symbols);
    let mut report = SymbolizeReport::default();
    let mut sym = Symbolizer::with_cache(&p.modules, std::mem::take(cache));
    if use_files && embedded.is_empty() && sym.map.is_empty() && !p.ips.is_empty() {
        p.warnings
            .push("the profile has no module map, so frames show as raw addresses".to_owned());
    }
    let mut index: rustc_hash::FxHashMap<Frame, FrameId> = p
        .frames
        .iter()
        .enumerate()
        .map(|(i, f)| (*f, FrameId(i as u32)))
        .collect();
    if let Some(pr) = progress.as_deref_mut() {
        pr.begin("symbolizing", Some(p.ips.len() as u64));
    }
    // Modules (path, build-id) whose addresses stayed unnamed, with how many: one hint each.
    let mut unnamed: HashMap<(String, Vec<u8>), usize> = HashMap::new();
    // A profile with embedded symbols had each of its addresses looked up in the binaries when
    // they were embedded: one without symbols there was named by none. Its module's files
    // would name it now only with a separate debug file installed since (what the hint asks
    // for); without one they are not read again (a stripped program's would be, on every load).
    let mut looked_up = LookedUp {
        embedded: !embedded.is_empty(),
        debug_root: sym.debug_root.clone(),
        modules: Vec::new(),
    };
    // The addresses the binaries name, resolved first, modules in parallel.
    let from_binaries: Vec<(u64, u64)> = if use_files {
        p.ips
            .iter()
            .map(|ip| (ip.address, ip.generation))
            .filter(|k| embedded.get(k).is_none_or(|f| f.is_empty()))
            .filter(|&(addr, generation)| {
                !looked_up.settled_unnamed(sym.map.find_at(addr, generation))
            })
            .collect()
    } else {
        Vec::new()
    };
    let mut resolved = sym.resolve_all(&from_binaries).into_iter();
    let mut named: Vec<SymbolFrame>;
    for i in 0..p.ips.len() {
        let (addr, generation) = (p.ips[i].address, p.ips[i].generation);
        let frames: &[SymbolFrame] = match embedded.get(&(addr, generation)) {
            Some(f) if !f.is_empty() => f,
            _ => {
                let module = sym.map.find_at(addr, generation);
                let from_files = use_files && module.is_none_or(|m| looked_up.get(m) != Some(true));
                let r = if from_files {
                    resolved
                        .next()
                        .expect("one resolved address per address without symbols")
                } else {
                    unresolved(module, addr)
                };
                if r.symbolized {
                    report.from_files.push(IpId(i as u32));
                } else if let Some(m) = module.filter(|m| use_files && m.path.starts_with('/')) {
                    *unnamed
                        .entry((m.path.clone(), m.build_id.clone()))
                        .or_default() += 1;
                }
                named = r.frames;
                &named
            }
        };
        let mut ids = Vec::with_capacity(frames.len());
        for f in frames {
            let frame = Frame {
                function: p.strings.intern(&sanitize(&f.function)),
                file: p.strings.intern(&f.file),
                line: f.line,
            };
            ids.push(p.intern_frame(&mut index, frame));
        }
        p.ips[i].frames = ids;
        if i.is_multiple_of(1024) {
            if let Some(pr) = progress.as_deref_mut() {
                pr.update(i as u64);
            }
        }
    }
    if let Some(pr) = progress {
        pr.finish();
    }
    p.warnings.extend(sym.take_warnings());
    let mut unnamed: Vec<((String, Vec<u8>), usize)> = unnamed.into_iter().collect();
    unnamed.sort();
    // One pass over the package lists for every module the hints name.
    let paths: Vec<&str> = unnamed.iter().map(|((path, _), _)| path.as_str()).collect();
    debug_hint::owning_packages(&paths);
    for ((path, build_id), n) in unnamed {
        p.warnings.push(debug_hint::hint(&path, &build_id, n));
    }
    *cache = sym.into_cache();
    p.embedded_symbols = embedded;
    report
}

/// Which modules' addresses without embedded symbols stay unnamed without their files being
/// read again (see [`symbolize_cached`]).
struct LookedUp {
    /// The profile embeds symbols: every address was looked up when they were embedded.
    embedded: bool,
    debug_root: PathBuf,
    /// Per module (path, recorded build-id): its addresses stay unnamed (a few modules: a
    /// list, looked through without copying the keys).
    modules: Vec<(String, Vec<u8>, bool)>,
}

impl LookedUp {
    /// True when an address of `module` that has no embedded symbols stays unnamed: the
    /// profile embeds symbols, and no separate debug file of the module is installed (its file
    /// named what it could when the symbols were embedded).
    fn settled_unnamed(&mut self, module: Option<&Module>) -> bool {
        let Some(m) = module.filter(|_| self.embedded) else {
            return false;
        };
        if let Some(settled) = self.get(m) {
            return settled;
        }
        let settled =
            debuginfo::debug_file_state(m, &self.debug_root).is_some_and(|state| !state.present);
        self.modules
            .push((m.path.clone(), m.build_id.clone(), settled));
        settled
    }

    /// What [`LookedUp::settled_unnamed`] found for `m`, if it was asked.
    fn get(&self, m: &Module) -> Option<bool> {
        self.modules
            .iter()
            .find(|(path, build_id, _)| *path == m.path && *build_id == m.build_id)
            .map(|&(_, _, settled)| settled)
    }
}

/// Function names go into folded lines: no separators, no line breaks, never empty.
fn sanitize(name: &str) -> std::borrow::Cow<'_, str> {
    if name.is_empty() {
        return "[unknown]".into();
    }
    if !name
        .bytes()
        .any(|b| matches!(b, b';' | b'\n' | b'\r' | b'\t'))
    {
        return name.into();
    }
    name.chars()
        .map(|c| match c {
            ';' => ':',
            '\n' | '\r' | '\t' => ' ',
            c => c,
        })
        .collect::<String>()
        .into()
}

#[cfg(test)]
pub(crate) mod tests;
