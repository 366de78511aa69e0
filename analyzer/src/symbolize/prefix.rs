//! A separate debug file with compressed sections, read only as far as the addresses at hand
//! need.
//!
//! Debian's `libc6-dbg` ships libc's DWARF zlib-compressed (≈ 3.7 MB compressed, ≈ 9.8 MB
//! inflated). Naming the frames below `main` (`__libc_start_call_main`, `__libc_start_main`)
//! used to inflate and index all of it: ≈ 45 ms of CPU in every `tidemark run`, most of a short
//! program's finish. Their compilation units are at the very start of `.debug_info`, and a zlib
//! stream can be inflated up to any point: this reads `.debug_aranges` (small) to find the units
//! of the addresses, inflates `.debug_info` only up to the end of the last of them, inflates the
//! other small sections whole, leaves the location lists (`.debug_loc`, `.debug_loclists`:
//! never needed to name a frame) compressed, and indexes only the units of the addresses (the
//! others are masked: [`mask_other_units`]). The frames are the same as with the whole file:
//! the units kept are complete (tests compare across libc). [`DebugParts`] holds what does not
//! depend on the addresses, so `tidemark run` prepares it while the command runs.
//!
//! Used only when every address is covered by `.debug_aranges` and the file has no
//! supplementary (dwz) file; otherwise the caller reads the whole file as before.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use gimli::{EndianArcSlice, RunTimeEndian, SectionId};
use object::{CompressionFormat, Object, ObjectSection, ObjectSymbol};

type Reader = EndianArcSlice<RunTimeEndian>;

/// The inflated part of a debug file, indexed, and its symbol table.
pub(crate) struct PrefixDwarf {
    ctx: addr2line::Context<Reader>,
    /// `(address, name)`, sorted by address (function symbols of `.symtab`).
    symbols: Vec<(u64, u64, String)>,
    /// The compilation units (offsets into `.debug_info`) kept: an address whose unit is not
    /// among them needs the file read again.
    units: BTreeSet<u64>,
    /// `(start, end, unit offset)` from `.debug_aranges`, sorted.
    ranges: Vec<(u64, u64, u64)>,
    /// Bytes of `.debug_info` inflated, of how many (the tests check the part is small).
    #[cfg_attr(not(test), allow(dead_code))]
    inflated: (usize, usize),
    /// The opened file, inflated as far as this read went, when it is kept
    /// ([`super::DebugCache::for_several`]): [`PrefixDwarf::widen`] goes on from there.
    parts: Option<DebugParts>,
}

/// A compressed separate debug file opened for reading in part: what does not depend on the
/// addresses (the small sections inflated, the symbol table, `.debug_aranges`), and
/// `.debug_info` inflated as far as asked so far. `tidemark run` makes one for libc while the
/// command runs ([`super::prewarm`]) and inflates ahead; the finish then inflates only what is
/// left of what its addresses need.
pub(crate) struct DebugParts {
    /// The path it was opened from.
    path: std::path::PathBuf,
    map: memmap2::Mmap,
    /// Where `.debug_info`'s zlib stream is in `map`, and its inflated size.
    info_at: std::ops::Range<usize>,
    info: Inflater,
    aranges: Arc<[u8]>,
    /// `(start, end, unit offset)` from `.debug_aranges`, sorted.
    ranges: Vec<(u64, u64, u64)>,
    /// The sections read whole besides `.debug_info` (see [`OTHER_SECTIONS`]) and the function
    /// symbols; `None` until read.
    rest: Option<Rest>,
}

/// [`OTHER_SECTIONS`] inflated, and the function symbols `(address, size, name)` by address.
type Rest = (Vec<(SectionId, Arc<[u8]>)>, Vec<(u64, u64, String)>);

impl DebugParts {
    /// Opens the debug file at `path`: `None` when it cannot be read in part (no
    /// zlib-compressed `.debug_info`, a supplementary dwz file, big-endian).
    pub(crate) fn open(path: &Path) -> Option<DebugParts> {
        let file = std::fs::File::open(path).ok()?;
        // SAFETY: the map is read-only; a file truncated meanwhile fails to parse or reads as
        // garbage that the DWARF parser rejects, as it would for addr2line's own loader.
        let map = unsafe { memmap2::Mmap::map(&file) }.ok()?;
        let obj = object::File::parse(&*map).ok()?;
        if obj.section_by_name(".gnu_debugaltlink").is_some() {
            return None;
        }
        let info = obj.section_by_name(".debug_info")?;
        let info_data = info.compressed_data().ok()?;
        if info_data.format != CompressionFormat::Zlib {
            return None;
        }
        // Unit lengths are read below as little-endian.
        if !obj.is_little_endian() {
            return None;
        }
        let start = (info_data.data.as_ptr() as usize).checked_sub(map.as_ptr() as usize)?;
        let info_at = start..start + info_data.data.len();
        let size = usize::try_from(info_data.uncompressed_size).ok()?;
        let aranges = whole_section(&obj, ".debug_aranges")?;
        let ranges = arange_table(&aranges, RunTimeEndian::Little)?;
        drop(obj);
        Some(DebugParts {
            path: path.to_owned(),
            map,
            info_at,
            info: Inflater::new(size),
            aranges,
            ranges,
            rest: None,
        })
    }

    /// The path this was opened from.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the sections other than `.debug_info` and the symbol table, if not done yet.
    pub(crate) fn read_rest(&mut self) -> Option<()> {
        if self.rest.is_none() {
            self.rest = Some(read_rest(&self.map)?);
        }
        Some(())
    }

    /// Inflates about `step` more bytes of `.debug_info`; false when it is all inflated (or
    /// damaged).
    pub(crate) fn inflate_more(&mut self, step: usize) -> bool {
        let want = self.info.out.len() + step;
        let input = &self.map[self.info_at.clone()];
        match self.info.prefix(input, want) {
            Some(b) => b.len() < self.info.size,
            None => false,
        }
    }
}

fn whole_section(obj: &object::File<'_>, name: &str) -> Option<Arc<[u8]>> {
    match obj.section_by_name(name) {
        Some(s) => Some(Arc::from(s.uncompressed_data().ok()?.into_owned())),
        None => Some(Arc::from(Vec::new())),
    }
}

fn read_rest(map: &[u8]) -> Option<Rest> {
    let obj = object::File::parse(map).ok()?;
    let mut others: Vec<(SectionId, Arc<[u8]>)> = Vec::new();
    for id in OTHER_SECTIONS {
        others.push((id, whole_section(&obj, id.name())?));
    }
    let mut symbols: Vec<(u64, u64, String)> = obj
        .symbols()
        .filter(|s| s.kind() == object::SymbolKind::Text && s.address() != 0)
        .filter_map(|s| Some((s.address(), s.size(), s.name().ok()?.to_owned())))
        .collect();
    symbols.sort_unstable_by_key(|s| s.0);
    Some((others, symbols))
}

impl PrefixDwarf {
    /// Reads what naming `probes` (file addresses) needs from a debug file opened (and perhaps
    /// partly inflated) already; `None` when this file cannot be read that way (an address
    /// outside `.debug_aranges`): the caller reads it whole.
    /// With `keep`, the opened file stays open to be read further ([`PrefixDwarf::widen`]);
    /// otherwise what was inflated is freed once indexed.
    pub(crate) fn from_parts(parts: DebugParts, probes: &[u64], keep: bool) -> Option<PrefixDwarf> {
        let mut units = BTreeSet::new();
        for &p in probes {
            units.insert(unit_of(&parts.ranges, p)?);
        }
        Self::with_units(parts, units, keep)
    }

    /// This read and the units of `probes` as well: `.debug_info` inflated on from where this
    /// read stopped (not again from its start) and indexed anew. For the profiles of one run
    /// (a shell script's children each have libc frames in other units): reading each of
    /// them from the start of the file was ≈ 10–20 ms a profile. `None` when an address lies
    /// outside `.debug_aranges` (the caller reads the whole file).
    pub(crate) fn widen(self, probes: &[u64]) -> Option<PrefixDwarf> {
        let parts = self.parts?;
        let mut units = self.units;
        for &p in probes {
            units.insert(unit_of(&parts.ranges, p)?);
        }
        Self::with_units(parts, units, true)
    }

    /// The read of `units`; with `keep`, `parts` stays in it to be read further (the rest of
    /// the file copied for that), otherwise it is freed here.
    fn with_units(mut parts: DebugParts, units: BTreeSet<u64>, keep: bool) -> Option<PrefixDwarf> {
        // What is not read yet of the other sections and the symbol table, on a second thread
        // while .debug_info is inflated up to the end of the last unit needed (the finish waits
        // for this module: libc's frames are in nearly every profile).
        let DebugParts {
            map,
            info_at,
            info,
            aranges,
            ranges,
            rest,
            ..
        } = &mut parts;
        let (info_prefix, rest) = std::thread::scope(|scope| {
            let pending = rest.is_none().then(|| scope.spawn(|| read_rest(map)));
            let info_prefix = info_prefix_of(info, &map[info_at.clone()], &units);
            let rest = match pending {
                Some(h) => h.join().ok()??,
                None => rest.take()?,
            };
            Some((info_prefix?, rest))
        })?;
        let inflated = (info.out.len(), info.size);
        let aranges = Arc::clone(aranges);
        let (ranges, parts) = if keep {
            let ranges = ranges.clone();
            // Kept for a wider read later (the symbols are copied: ≈ 3,000 names for libc).
            parts.rest = Some(rest.clone());
            (ranges, Some(parts))
        } else {
            (std::mem::take(ranges), None)
        };
        let (others, symbols) = rest;
        let endian = RunTimeEndian::Little;
        let sections = |id: SectionId| -> Result<Reader, ()> {
            let data: Arc<[u8]> = match id {
                SectionId::DebugInfo => Arc::clone(&info_prefix),
                SectionId::DebugAranges => Arc::clone(&aranges),
                other => others
                    .iter()
                    .find(|(s, _)| *s == other)
                    .map_or_else(|| Arc::from(Vec::new()), |(_, d)| Arc::clone(d)),
            };
            Ok(EndianArcSlice::new(data, endian))
        };
        let dwarf = gimli::Dwarf::load(sections).ok()?;
        let ctx = addr2line::Context::from_dwarf(dwarf).ok()?;
        Some(PrefixDwarf {
            ctx,
            symbols,
            units,
            ranges,
            inflated,
            parts,
        })
    }

    /// Bytes of `.debug_info` inflated, and its whole inflated size.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn inflated(&self) -> (usize, usize) {
        self.inflated
    }

    /// True when every one of `probes` lies in a unit this read kept.
    pub(crate) fn covers(&self, probes: &[u64]) -> bool {
        probes
            .iter()
            .all(|&p| unit_of(&self.ranges, p).is_some_and(|u| self.units.contains(&u)))
    }

    /// The function symbol containing `probe` (the nearest one below it when sizes are 0).
    pub(crate) fn find_symbol(&self, probe: u64) -> Option<&str> {
        let i = self.symbols.partition_point(|s| s.0 <= probe);
        let (addr, size, name) = self.symbols.get(i.checked_sub(1)?)?;
        (*size == 0 || probe < addr + size).then_some(name.as_str())
    }

    /// The DWARF frames at `probe`, innermost first (see `debuginfo::dwarf_frames`).
    pub(crate) fn find_frames(
        &self,
        probe: u64,
    ) -> Result<addr2line::FrameIter<'_, Reader>, addr2line::gimli::Error> {
        self.ctx.find_frames(probe).skip_all_loads()
    }
}

/// The sections read whole besides `.debug_info` and `.debug_aranges`; the others are never
/// needed to name a frame (location lists, macros, type units, name indexes) and read as
/// empty.
const OTHER_SECTIONS: [SectionId; 8] = [
    SectionId::DebugAbbrev,
    SectionId::DebugAddr,
    SectionId::DebugLine,
    SectionId::DebugLineStr,
    SectionId::DebugStr,
    SectionId::DebugStrOffsets,
    SectionId::DebugRanges,
    SectionId::DebugRngLists,
];

/// `.debug_info` (zlib stream `data`, inflated by `inflater` so far) inflated up to the end of
/// the last of `units`, the other units masked (see [`mask_other_units`]).
fn info_prefix_of(
    inflater: &mut Inflater,
    data: &[u8],
    units: &BTreeSet<u64>,
) -> Option<Arc<[u8]>> {
    let mut end = 0usize;
    for &u in units {
        let u = u as usize;
        let head = inflater.prefix(data, u + 12)?;
        let len32 = u32::from_le_bytes(head.get(u..u + 4)?.try_into().ok()?);
        let unit_end = if len32 == 0xffff_ffff {
            let len64 = u64::from_le_bytes(head.get(u + 4..u + 12)?.try_into().ok()?);
            u + 12 + len64 as usize
        } else {
            u + 4 + len32 as usize
        };
        end = end.max(unit_end);
    }
    // One copy (libc's whole `.debug_info` is ≈ 6 MB once inflated): into the shared buffer the
    // reader gets, masked there while it has no other owner.
    let mut prefix: Arc<[u8]> = Arc::from(inflater.prefix(data, end)?);
    mask_other_units(Arc::get_mut(&mut prefix)?, units);
    Some(prefix)
}

/// Points the abbreviation offset of every unit of `info` that is not in `keep` past the end of
/// any `.debug_abbrev`, so that indexing skips it: addr2line's index parses each unit's
/// abbreviations and line-program header (≈ 11 ms for the ≈ 400 units ahead of a unit 3 MB
/// into libc's `.debug_info`) and passes over a unit whose abbreviations cannot be read. The
/// units kept and every offset stay as they were; a skipped unit holds none of the addresses
/// looked up (`.debug_aranges` says which unit holds each), and libc's units do not refer to
/// one another (the test in `super::tests` compares with the whole file's frames).
fn mask_other_units(info: &mut [u8], keep: &BTreeSet<u64>) {
    let mut at = 0usize;
    while at + 4 <= info.len() {
        let len32 = u32::from_le_bytes(info[at..at + 4].try_into().expect("4 bytes"));
        // (length field size, offset size, unit end)
        let (head, offset_size, end) = if len32 == 0xffff_ffff {
            let Some(len) = info.get(at + 4..at + 12) else {
                return;
            };
            let len = u64::from_le_bytes(len.try_into().expect("8 bytes")) as usize;
            (12, 8, (at + 12).saturating_add(len))
        } else if len32 >= 0xffff_fff0 {
            return;
        } else {
            (4, 4, at + 4 + len32 as usize)
        };
        let version_at = at + head;
        let Some(version) = info.get(version_at..version_at + 2) else {
            return;
        };
        let version = u16::from_le_bytes(version.try_into().expect("2 bytes"));
        // DWARF 2-4: version, abbrev offset, address size; 5: version, unit type, address
        // size, abbrev offset.
        let abbrev_at = match version {
            2..=4 => version_at + 2,
            5 => version_at + 4,
            _ => return,
        };
        if !keep.contains(&(at as u64)) {
            if let Some(field) = info.get_mut(abbrev_at..abbrev_at + offset_size) {
                field.fill(0xff);
            }
        }
        at = end;
    }
}

/// `(start, end, unit offset)` of every range of `.debug_aranges`, sorted by start.
fn arange_table(data: &Arc<[u8]>, endian: RunTimeEndian) -> Option<Vec<(u64, u64, u64)>> {
    let aranges = gimli::DebugAranges::new(data, endian);
    let mut out = Vec::new();
    let mut headers = aranges.headers();
    while let Some(h) = headers.next().ok()? {
        let unit = h.debug_info_offset().0 as u64;
        let mut entries = h.entries();
        while let Some(e) = entries.next().ok()? {
            let r = e.range();
            if r.end > r.begin {
                out.push((r.begin, r.end, unit));
            }
        }
    }
    out.sort_unstable();
    Some(out)
}

/// The unit whose `.debug_aranges` range contains `probe`.
fn unit_of(ranges: &[(u64, u64, u64)], probe: u64) -> Option<u64> {
    let i = ranges.partition_point(|r| r.0 <= probe);
    ranges[..i]
        .iter()
        .rev()
        .take(8)
        .find(|r| probe < r.1)
        .map(|r| r.2)
}

/// A zlib stream inflated as far as asked (the stream itself is passed to every call).
struct Inflater {
    state: flate2::Decompress,
    out: Vec<u8>,
    size: usize,
}

impl Inflater {
    fn new(size: usize) -> Inflater {
        Inflater {
            state: flate2::Decompress::new(true),
            out: Vec::new(),
            size,
        }
    }

    /// The first `len` bytes of the inflated stream `input` (fewer at its end); `None` when
    /// the stream is damaged.
    fn prefix(&mut self, input: &[u8], len: usize) -> Option<&[u8]> {
        let want = len.min(self.size);
        while self.out.len() < want {
            // Inflate in steps of at least 64 KiB, so a few small requests cost one call.
            let target = want.max(self.out.len() + (64 << 10)).min(self.size);
            self.out.reserve(target - self.out.len());
            let consumed = self.state.total_in() as usize;
            let before = self.out.len();
            let status = self
                .state
                .decompress_vec(
                    input.get(consumed..)?,
                    &mut self.out,
                    flate2::FlushDecompress::None,
                )
                .ok()?;
            if self.out.len() == before && status != flate2::Status::Ok {
                break;
            }
            if status == flate2::Status::StreamEnd {
                break;
            }
        }
        Some(&self.out[..want.min(self.out.len())])
    }
}
