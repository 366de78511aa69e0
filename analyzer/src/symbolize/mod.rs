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
//! Profiles travel: [`embed_symbols`] appends the resolved frames of every address to the profile
//! itself ([`tidemark::format::Record::Symbols`]), and loading prefers them over the files.

pub mod debug_hint;
mod debuginfo;
mod demangle;
mod modules;

pub use debuginfo::{build_id_debug_path, file_build_id, DEBUG_ROOT};
pub use demangle::{demangle, is_qualified};

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use tidemark::format::{self, Module, Reader, Record, SymbolFrame};

use crate::load::{LoadError, ProgressSink};
use crate::model::{Frame, FrameId, Profile};
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

/// Resolves addresses against a profile's module map, caching each module's debug information.
pub struct Symbolizer {
    map: ModuleMap,
    /// Keyed by (path, recorded build-id).
    cache: HashMap<(String, Vec<u8>), ModuleDebug>,
    debug_root: PathBuf,
    warnings: Vec<String>,
}

impl Symbolizer {
    /// A symbolizer for the module map snapshots of a profile.
    pub fn new(snapshots: &[crate::model::ModuleSnapshot]) -> Self {
        Symbolizer {
            map: ModuleMap::new(snapshots),
            cache: HashMap::new(),
            debug_root: PathBuf::from(DEBUG_ROOT),
            warnings: Vec::new(),
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
            let md = ModuleDebug::open(module, &self.debug_root, &mut self.warnings);
            self.cache.insert(key.clone(), md);
        }
        let file_addr = addr.wrapping_sub(module.base);
        // Return addresses point after the call; the call itself is at the previous byte.
        let probe = file_addr.saturating_sub(1);
        let frames = self.cache[&key].frames(probe);
        if frames.is_empty() {
            let module = self.map.find_at(addr, generation);
            unresolved(module, addr)
        } else {
            Resolved {
                frames,
                symbolized: true,
            }
        }
    }
}

fn fallback_name(module: Option<&Module>, addr: u64) -> String {
    match module {
        Some(m) => format!("{}+{:#x}", basename(&m.path), addr.wrapping_sub(m.base)),
        None => format!("{addr:#x}"),
    }
}

fn unresolved(module: Option<&Module>, addr: u64) -> Resolved {
    Resolved {
        frames: vec![SymbolFrame {
            function: fallback_name(module, addr),
            file: String::new(),
            line: 0,
        }],
        symbolized: false,
    }
}

/// Fills every [`crate::model::Ip`]'s frames: embedded symbols first, then (when `use_files`) the
/// binaries on disk, else `module+0xoffset`.
pub(crate) fn symbolize_profile(
    p: &mut Profile,
    embedded: &HashMap<(u64, u64), Vec<SymbolFrame>>,
    use_files: bool,
    mut progress: Option<&mut dyn ProgressSink>,
) {
    let mut sym = Symbolizer::new(&p.modules);
    if use_files && embedded.is_empty() && sym.map.is_empty() && !p.ips.is_empty() {
        p.warnings
            .push("the profile has no module map, so frames show as raw addresses".to_owned());
    }
    let mut index: HashMap<Frame, FrameId> = p
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
    for i in 0..p.ips.len() {
        let (addr, generation) = (p.ips[i].address, p.ips[i].generation);
        let frames = match embedded.get(&(addr, generation)) {
            Some(f) if !f.is_empty() => f.clone(),
            _ if use_files => {
                let r = sym.resolve_at(addr, generation);
                if !r.symbolized {
                    if let Some(m) = sym.map.find_at(addr, generation) {
                        if m.path.starts_with('/') {
                            *unnamed
                                .entry((m.path.clone(), m.build_id.clone()))
                                .or_default() += 1;
                        }
                    }
                }
                r.frames
            }
            _ => unresolved(sym.map.find_at(addr, generation), addr).frames,
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
    for ((path, build_id), n) in unnamed {
        p.warnings.push(debug_hint::hint(&path, &build_id, n));
    }
}

/// Function names go into folded lines: no separators, no line breaks, never empty.
fn sanitize(name: &str) -> String {
    if name.is_empty() {
        return "[unknown]".to_owned();
    }
    name.chars()
        .map(|c| match c {
            ';' => ':',
            '\n' | '\r' | '\t' => ' ',
            c => c,
        })
        .collect()
}

/// What [`embed_symbols`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmbedReport {
    /// Distinct return addresses in the profile.
    pub addresses: usize,
    /// Of those, addresses resolved to a function (the others were not embedded).
    pub resolved: usize,
    /// Bytes appended to the file.
    pub bytes_written: u64,
    /// The profile already carried symbols; nothing was written.
    pub already_embedded: bool,
    /// Warnings from symbolization (missing files, build-id mismatches).
    pub warnings: Vec<String>,
}

/// Why symbols could not be embedded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmbedError {
    /// The profile could not be read.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The profile could not be written.
    #[error("cannot append symbols to {path}: {error}; check that the file is writable")]
    Write {
        /// The profile.
        path: PathBuf,
        /// The I/O error.
        error: io::Error,
    },
}

/// Largest Symbols record body written in one chunk (well under the format's chunk limit).
const EMBED_CHUNK_BYTES: usize = 8 << 20;

/// Resolves every return address of the profile at `path` from the binaries on this machine and
/// appends the result as Symbols chunks, so the profile can be analyzed elsewhere. A truncated
/// profile first loses its unreadable tail (it could never be read anyway). A profile that already
/// carries symbols is left alone.
pub fn embed_symbols(path: &Path) -> Result<EmbedReport, EmbedError> {
    embed_inner(path, None)
}

/// [`embed_symbols`], reporting the symbolization's progress (one unit per address).
pub fn embed_symbols_with_progress(
    path: &Path,
    progress: &mut dyn ProgressSink,
) -> Result<EmbedReport, EmbedError> {
    embed_inner(path, Some(progress))
}

fn embed_inner(
    path: &Path,
    mut progress: Option<&mut dyn ProgressSink>,
) -> Result<EmbedReport, EmbedError> {
    let load_err = |error| LoadError::Io {
        path: path.to_owned(),
        error,
    };
    let file = File::open(path).map_err(load_err)?;
    let fmt_err = |error| -> EmbedError {
        match error {
            format::FormatError::Io(error) => LoadError::Io {
                path: path.to_owned(),
                error,
            }
            .into(),
            error => LoadError::Format {
                path: path.to_owned(),
                error,
            }
            .into(),
        }
    };
    let mut reader = Reader::new(BufReader::with_capacity(1 << 20, file)).map_err(fmt_err)?;
    let version = reader.header().version;
    reader.skip_events(true);
    // (address, module generation) of every frame.
    let mut addrs: Vec<(u64, u64)> = Vec::new();
    let mut seen: HashSet<(u64, u64)> = HashSet::new();
    let mut snapshots = Vec::new();
    let mut already = false;
    let mut malformed = false;
    'chunks: while let Some(records) = reader.next_chunk().map_err(fmt_err)? {
        for rec in records {
            match rec {
                Ok(Record::Stack {
                    frames, generation, ..
                }) => {
                    for f in frames {
                        if seen.insert((f, generation)) {
                            addrs.push((f, generation));
                        }
                    }
                }
                Ok(Record::Modules {
                    generation,
                    modules,
                }) => snapshots.push(crate::model::ModuleSnapshot {
                    generation,
                    modules,
                }),
                Ok(Record::Symbols { .. }) => already = true,
                Ok(_) => {}
                Err(_) => {
                    malformed = true;
                    break 'chunks;
                }
            }
        }
    }
    let good_end = reader.offset();
    let truncated = reader.truncation().is_some();
    drop(reader);
    let mut report = EmbedReport {
        addresses: addrs.len(),
        ..EmbedReport::default()
    };
    if already {
        report.already_embedded = true;
        return Ok(report);
    }
    if malformed {
        // Appending after a chunk no reader gets past would hide the symbols; cutting the file
        // there would lose data. Leave it as it is.
        report.warnings.push(format!(
            "{}: a chunk holds malformed records, so no symbols were embedded",
            path.display()
        ));
        return Ok(report);
    }
    let mut sym = Symbolizer::new(&snapshots);
    let mut entries: Vec<(u64, u64, Vec<SymbolFrame>)> = Vec::new();
    if let Some(pr) = progress.as_deref_mut() {
        pr.begin("symbolizing", Some(addrs.len() as u64));
    }
    for (i, (a, generation)) in addrs.into_iter().enumerate() {
        let r = sym.resolve_at(a, generation);
        if r.symbolized {
            entries.push((generation, a, r.frames));
        }
        if i.is_multiple_of(1024) {
            if let Some(pr) = progress.as_deref_mut() {
                pr.update(i as u64);
            }
        }
    }
    if let Some(pr) = progress {
        pr.finish();
    }
    report.resolved = entries.len();
    report.warnings = sym.take_warnings();
    // One Symbols record per module generation (almost always just one).
    entries.sort_by_key(|e| e.0);
    let mut out = Vec::new();
    let mut batch: Vec<(u64, Vec<SymbolFrame>)> = Vec::new();
    let mut batch_bytes = 0usize;
    let mut batch_generation = entries.first().map_or(0, |e| e.0);
    for (generation, addr, frames) in entries {
        let size = 16
            + frames
                .iter()
                .map(|f| f.function.len() + f.file.len() + 8)
                .sum::<usize>();
        if !batch.is_empty()
            && (batch_bytes + size > EMBED_CHUNK_BYTES || generation != batch_generation)
        {
            flush_symbols(&mut out, version, batch_generation, &mut batch);
            batch_bytes = 0;
        }
        batch_generation = generation;
        batch_bytes += size;
        batch.push((addr, frames));
    }
    flush_symbols(&mut out, version, batch_generation, &mut batch);
    let write_err = |error| EmbedError::Write {
        path: path.to_owned(),
        error,
    };
    let mut f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(write_err)?;
    if truncated {
        f.set_len(good_end).map_err(write_err)?;
    }
    let end = f.metadata().map_err(write_err)?.len();
    if end != good_end {
        // Bytes after the trailer that no reader would reach: put the symbols where it will.
        f.set_len(good_end).map_err(write_err)?;
    }
    f.seek(SeekFrom::Start(good_end)).map_err(write_err)?;
    f.write_all(&out).map_err(write_err)?;
    f.sync_data().map_err(write_err)?;
    report.bytes_written = out.len() as u64;
    Ok(report)
}

fn flush_symbols(
    out: &mut Vec<u8>,
    version: u16,
    generation: u64,
    batch: &mut Vec<(u64, Vec<SymbolFrame>)>,
) {
    if batch.is_empty() {
        return;
    }
    format::put_symbols_chunk(out, version, generation, batch);
    batch.clear();
}

#[cfg(test)]
mod tests;
