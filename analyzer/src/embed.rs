//! Profiles that travel: the frames the symbolization pass resolved from this machine's binaries
//! are appended to the profile file as Symbols chunks ([`tidemark::format::put_symbols_chunk`]),
//! and [`crate::symbolize::symbolize`] prefers them to the binaries wherever the profile is read
//! later.
//!
//! The file is only ever appended to: [`append_symbols`] finds where the last readable chunk
//! ends and writes the chunks there. [`embed_symbols`] is the whole step for a file on disk:
//! [`crate::load::read_path`] (stacks and module maps only) → [`crate::symbolize::symbolize`] →
//! [`append_symbols`].

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use tidemark::format::{self, Reader, Record, SymbolFrame};

use crate::load::{read_path, LoadError, LoadOptions};
use crate::model::{IpId, Profile};
use crate::progress::ProgressSink;
use crate::symbolize::{symbolize_cached, DebugCache, SymbolizeOptions};

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
    /// Warnings from symbolization (missing files, build-id mismatches) and from appending.
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
    #[error("cannot append symbols to {path}: {error}; {}", write_hint(error))]
    Write {
        /// The profile.
        path: PathBuf,
        /// The I/O error.
        error: io::Error,
    },
}

/// What to check when appending failed with `e`.
fn write_hint(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::EFBIG) => "the file size limit (ulimit -f) stops the profile where it is",
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => "the disk (or the quota) is full",
        _ => "check that the file is writable",
    }
}

/// One resolved address: `(module generation, address, frames innermost first)`.
pub type SymbolEntry = (u64, u64, Vec<SymbolFrame>);

/// Largest Symbols record body written in one chunk (well under the format's chunk limit).
const EMBED_CHUNK_BYTES: usize = 8 << 20;

/// Resolves every return address of the profile at `path` from the binaries on this machine and
/// appends the result as Symbols chunks, so the profile can be analyzed elsewhere. A truncated
/// profile first loses its unreadable tail (it could never be read anyway). A profile that already
/// carries symbols is left alone.
pub fn embed_symbols(path: &Path) -> Result<EmbedReport, EmbedError> {
    Embedder::default().embed(path, None)
}

/// [`embed_symbols`], reporting the symbolization's progress (one unit per address).
pub fn embed_symbols_with_progress(
    path: &Path,
    progress: &mut dyn ProgressSink,
) -> Result<EmbedReport, EmbedError> {
    Embedder::default().embed(path, Some(progress))
}

/// Embeds symbols into several profiles, reading each binary once for all of them (the profiles
/// of one run share their binaries).
#[derive(Default)]
pub struct Embedder {
    cache: DebugCache,
}

impl Embedder {
    /// An embedder starting from the modules a [`crate::symbolize::Prewarm`] opened while the
    /// command ran.
    pub fn with_warmed(warmed: crate::symbolize::Warmed) -> Self {
        Embedder {
            cache: DebugCache::with_warmed(warmed),
        }
    }

    /// This embedder, for several profiles: a debug file read in part for one profile's
    /// addresses is read on for the next's ([`DebugCache::for_several`]; its memory is kept
    /// until the embedder goes).
    pub fn for_several(self) -> Self {
        Embedder {
            cache: self.cache.for_several(),
        }
    }

    /// [`embed_symbols`] for one more profile.
    pub fn embed(
        &mut self,
        path: &Path,
        progress: Option<&mut dyn ProgressSink>,
    ) -> Result<EmbedReport, EmbedError> {
        self.embed_read(path, progress).map(|(report, _)| report)
    }

    /// [`Embedder::embed`], also giving the profile as it was read for it: header, module
    /// maps, return addresses (symbolized), messages and trailer, no events (what
    /// `tidemark run` prints at the end comes from it, without reading the file again).
    pub fn embed_read(
        &mut self,
        path: &Path,
        progress: Option<&mut dyn ProgressSink>,
    ) -> Result<(EmbedReport, Profile), EmbedError> {
        embed_inner(path, progress, &mut self.cache, false)
            .map(|r| r.expect("a profile is embedded, complete or not"))
    }

    /// [`Embedder::embed_read`] for a profile that may still be being written (another
    /// process's, which may still run): `None`, and nothing written, when it does not end with
    /// its trailer.
    pub fn embed_complete(
        &mut self,
        path: &Path,
        progress: Option<&mut dyn ProgressSink>,
    ) -> Result<Option<(EmbedReport, Profile)>, EmbedError> {
        embed_inner(path, progress, &mut self.cache, true)
    }
}

/// Embeds the symbols of the profile at `path`; with `only_complete`, `None` (nothing written)
/// when the profile does not end with its trailer.
fn embed_inner(
    path: &Path,
    progress: Option<&mut dyn ProgressSink>,
    cache: &mut DebugCache,
    only_complete: bool,
) -> Result<Option<(EmbedReport, Profile)>, EmbedError> {
    let opts = LoadOptions {
        events: false,
        stacks: false,
        progress: false,
        ..LoadOptions::default()
    };
    let mut p = read_path(path, &opts)?;
    if only_complete && p.truncated.is_some() {
        return Ok(None);
    }
    let mut report = EmbedReport {
        addresses: p.ips.len(),
        ..EmbedReport::default()
    };
    if !p.embedded_symbols.is_empty() {
        report.already_embedded = true;
        return Ok(Some((report, p)));
    }
    let warnings_before = p.warnings.len();
    let opts = SymbolizeOptions { use_files: true };
    let resolved = symbolize_cached(&mut p, &opts, progress, cache);
    report.warnings = p.warnings.split_off(warnings_before);
    let entries = symbol_entries(&p, &resolved.from_files);
    report.resolved = entries.len();
    let appended = if p.truncated.is_none() {
        // The read above went through every chunk: no malformed record, no Symbols record,
        // and it knows where the readable part ends; no need to read the file again.
        append_at(path, p.header.version, p.readable_end, &entries)?
    } else {
        append_symbols(path, &entries)?
    };
    report.bytes_written = appended.bytes_written;
    report.already_embedded = appended.already_embedded;
    report.warnings.extend(appended.warning);
    Ok(Some((report, p)))
}

/// The frames of `ips` of a symbolized profile, ready for [`append_symbols`].
pub fn symbol_entries(p: &Profile, ips: &[IpId]) -> Vec<SymbolEntry> {
    ips.iter()
        .map(|&id| {
            let ip = p.ip(id);
            let frames = ip
                .frames
                .iter()
                .map(|&f| {
                    let f = p.frame(f);
                    SymbolFrame {
                        function: p.str(f.function).to_owned(),
                        file: p.str(f.file).to_owned(),
                        line: f.line,
                    }
                })
                .collect();
            (ip.generation, ip.address, frames)
        })
        .collect()
}

/// What [`append_symbols`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Appended {
    /// Bytes appended.
    pub bytes_written: u64,
    /// The file already had Symbols records; nothing was written.
    pub already_embedded: bool,
    /// Why nothing was written although there was something to write.
    pub warning: Option<String>,
}

/// Appends `entries` to the profile at `path` as Symbols chunks (one record per module
/// generation, split to stay under the chunk size limit), after its last readable chunk: a
/// truncated tail, or bytes after the trailer that no reader would reach, are cut first. Nothing
/// is written when the file already carries symbols, or when a chunk holds malformed records
/// (appending after a chunk no reader gets past would hide the symbols; cutting the file there
/// would lose data).
pub fn append_symbols(path: &Path, entries: &[SymbolEntry]) -> Result<Appended, EmbedError> {
    let io_err = |error| LoadError::Io {
        path: path.to_owned(),
        error,
    };
    let fmt_err = |error| -> EmbedError {
        match error {
            format::FormatError::Io(error) => io_err(error).into(),
            error => LoadError::Format {
                path: path.to_owned(),
                error,
            }
            .into(),
        }
    };
    let file = File::open(path).map_err(io_err)?;
    let mut reader = Reader::new(BufReader::with_capacity(1 << 20, file)).map_err(fmt_err)?;
    let version = reader.header().version;
    reader.skip_events(true);
    let mut out = Appended::default();
    'chunks: while let Some(records) = reader.next_chunk().map_err(fmt_err)? {
        for rec in records {
            match rec {
                Ok(Record::Symbols { .. }) => out.already_embedded = true,
                Ok(_) => {}
                Err(_) => {
                    out.warning = Some(format!(
                        "{}: a chunk holds malformed records, so no symbols were embedded",
                        path.display()
                    ));
                    break 'chunks;
                }
            }
        }
    }
    let good_end = reader.offset();
    drop(reader);
    if out.already_embedded || out.warning.is_some() {
        return Ok(out);
    }
    append_at(path, version, good_end, entries)
}

/// Writes `entries` as Symbols chunks at `good_end` of the profile at `path` (a file of format
/// `version` whose readable chunks end there, holding no Symbols record): bytes after it are
/// cut first. What it writes is made durable (`fdatasync`); a file it has nothing to write to
/// (no symbols, nothing to cut: a shell's child between `fork` and `exec`, all of whose frames
/// are in stripped binaries) is left as the recorder wrote it, unopened.
fn append_at(
    path: &Path,
    version: u16,
    good_end: u64,
    entries: &[SymbolEntry],
) -> Result<Appended, EmbedError> {
    let mut out = Appended::default();
    let bytes = symbols_chunks(version, entries);
    let write_err = |error| EmbedError::Write {
        path: path.to_owned(),
        error,
    };
    if bytes.is_empty() && std::fs::metadata(path).map_err(write_err)?.len() == good_end {
        return Ok(out);
    }
    let mut f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(write_err)?;
    if f.metadata().map_err(write_err)?.len() != good_end {
        // A truncated tail, or bytes after the trailer that no reader would reach: put the
        // symbols where a reader will.
        f.set_len(good_end).map_err(write_err)?;
    }
    f.seek(SeekFrom::Start(good_end)).map_err(write_err)?;
    f.write_all(&bytes).map_err(write_err)?;
    f.sync_data().map_err(write_err)?;
    out.bytes_written = bytes.len() as u64;
    Ok(out)
}

/// Encodes `entries` as Symbols chunks: one record per module generation (almost always just
/// one), split at [`EMBED_CHUNK_BYTES`].
fn symbols_chunks(version: u16, entries: &[SymbolEntry]) -> Vec<u8> {
    let mut sorted: Vec<&SymbolEntry> = entries.iter().collect();
    sorted.sort_by_key(|e| e.0);
    let mut out = Vec::new();
    let mut batch: Vec<(u64, Vec<SymbolFrame>)> = Vec::new();
    let mut batch_bytes = 0usize;
    let mut batch_generation = sorted.first().map_or(0, |e| e.0);
    for (generation, addr, frames) in sorted {
        let size = 16
            + frames
                .iter()
                .map(|f| f.function.len() + f.file.len() + 8)
                .sum::<usize>();
        if !batch.is_empty()
            && (batch_bytes + size > EMBED_CHUNK_BYTES || *generation != batch_generation)
        {
            format::put_symbols_chunk(&mut out, version, batch_generation, &batch);
            batch.clear();
            batch_bytes = 0;
        }
        batch_generation = *generation;
        batch_bytes += size;
        batch.push((*addr, frames.clone()));
    }
    if !batch.is_empty() {
        format::put_symbols_chunk(&mut out, version, batch_generation, &batch);
    }
    out
}

#[cfg(test)]
mod tests;
