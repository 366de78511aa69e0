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
//! never needed to name a frame) compressed, and indexes that. The frames are the same as with
//! the whole file: the units kept are complete, and every unit before them is kept too.
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
}

impl PrefixDwarf {
    /// Reads what naming `probes` (file addresses) needs from the debug file at `path`; `None`
    /// when this file cannot be read that way (no compressed `.debug_info`, an address outside
    /// `.debug_aranges`, a dwz file): the caller reads it whole.
    pub(crate) fn open(path: &Path, probes: &[u64]) -> Option<PrefixDwarf> {
        let file = std::fs::File::open(path).ok()?;
        // SAFETY: the map is read-only and lives only in this function (everything kept is
        // copied out); a file truncated meanwhile fails to parse or reads as garbage that the
        // DWARF parser rejects, as it would for addr2line's own loader.
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
        let endian = RunTimeEndian::Little;
        let whole = |name: &str| -> Option<Arc<[u8]>> {
            match obj.section_by_name(name) {
                Some(s) => Some(Arc::from(s.uncompressed_data().ok()?.into_owned())),
                None => Some(Arc::from(Vec::new())),
            }
        };
        let aranges = whole(".debug_aranges")?;
        let ranges = arange_table(&aranges, endian)?;
        let mut units = BTreeSet::new();
        for &p in probes {
            units.insert(unit_of(&ranges, p)?);
        }
        // Inflate .debug_info up to the end of the last unit needed.
        let mut inflater = Inflater::new(info_data.data, info_data.uncompressed_size as usize);
        let mut end = 0usize;
        for &u in &units {
            let u = u as usize;
            let head = inflater.prefix(u + 12)?;
            let len32 = u32::from_le_bytes(head.get(u..u + 4)?.try_into().ok()?);
            let unit_end = if len32 == 0xffff_ffff {
                let len64 = u64::from_le_bytes(head.get(u + 4..u + 12)?.try_into().ok()?);
                u + 12 + len64 as usize
            } else {
                u + 4 + len32 as usize
            };
            end = end.max(unit_end);
        }
        let info_prefix: Arc<[u8]> = Arc::from(inflater.prefix(end)?.to_vec());
        let inflated = (inflater.out.len(), inflater.size);
        let sections = |id: SectionId| -> Result<Reader, ()> {
            let data: Arc<[u8]> = match id {
                SectionId::DebugInfo => Arc::clone(&info_prefix),
                SectionId::DebugAranges => Arc::clone(&aranges),
                // Never needed to name a frame.
                SectionId::DebugLoc
                | SectionId::DebugLocLists
                | SectionId::DebugMacinfo
                | SectionId::DebugMacro
                | SectionId::DebugTypes
                | SectionId::DebugNames => Arc::from(Vec::new()),
                other => whole(other.name()).ok_or(())?,
            };
            Ok(EndianArcSlice::new(data, endian))
        };
        let dwarf = gimli::Dwarf::load(sections).ok()?;
        let ctx = addr2line::Context::from_dwarf(dwarf).ok()?;
        let mut symbols: Vec<(u64, u64, String)> = obj
            .symbols()
            .filter(|s| s.kind() == object::SymbolKind::Text && s.address() != 0)
            .filter_map(|s| Some((s.address(), s.size(), s.name().ok()?.to_owned())))
            .collect();
        symbols.sort_unstable_by_key(|s| s.0);
        Some(PrefixDwarf {
            ctx,
            symbols,
            units,
            ranges,
            inflated,
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

/// A zlib stream inflated as far as asked.
struct Inflater<'a> {
    input: &'a [u8],
    state: flate2::Decompress,
    out: Vec<u8>,
    size: usize,
}

impl<'a> Inflater<'a> {
    fn new(input: &'a [u8], size: usize) -> Inflater<'a> {
        Inflater {
            input,
            state: flate2::Decompress::new(true),
            out: Vec::new(),
            size,
        }
    }

    /// The first `len` bytes of the inflated stream (fewer at its end); `None` when the stream
    /// is damaged.
    fn prefix(&mut self, len: usize) -> Option<&[u8]> {
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
                    self.input.get(consumed..)?,
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
