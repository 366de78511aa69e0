//! pprof: a gzipped `profile.proto`, as `go tool pprof`, pprof's web UI, Pyroscope and Parca read
//! it (the message types come from the `pprof` crate's `protos` module).
//!
//! Sample types, in order: `alloc_objects/count`, `alloc_space/bytes`, `inuse_objects/count`,
//! `inuse_space/bytes` — the names Go's heap profiles use, so pprof's `-sample_index` and
//! `-alloc_space` / `-inuse_space` shortcuts work. "In use" is at the end of the profile or, with
//! [`At::Peak`], at the instant of the global peak. One sample per recorded stack; summed over
//! samples, each column equals the profile's own total. A location is one return address, its
//! `Line`s the inlined calls innermost first and the outlined function last (as pprof expects);
//! mappings carry module paths and build-ids. In a sampled profile the values are the unbiased
//! estimates the loader computed and the sampling rate is the `period` (`space/bytes`).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::Write;

use flate2::write::GzEncoder;
use flate2::Compression;
use pprof::protos::{self, Message};

use super::{At, ExportError, ExportOptions};
use crate::analysis::{is_plumbing_frame, UNKNOWN_FUNCTION};
use crate::model::{IpId, Profile, StackId, StackStats};
use crate::render::Metric;

/// One column of the samples: a pprof sample type and how a stack's aggregates give its value.
/// CPU time, once recorded, is one more column.
#[derive(Debug, Clone, Copy)]
struct Column {
    ty: &'static str,
    unit: &'static str,
    value: fn(&StackStats, At) -> u64,
}

const COLUMNS: [Column; 4] = [
    Column {
        ty: "alloc_objects",
        unit: "count",
        value: |s, _| s.counts.allocations,
    },
    Column {
        ty: "alloc_space",
        unit: "bytes",
        value: |s, _| s.counts.allocated_bytes,
    },
    Column {
        ty: "inuse_objects",
        unit: "count",
        value: |s, at| match at {
            At::End => s.counts.leaked_allocations + s.runtime_owned_allocations,
            At::Peak => s.peak_blocks,
        },
    },
    Column {
        ty: "inuse_space",
        unit: "bytes",
        value: |s, at| match at {
            At::End => s.counts.leaked_bytes + s.runtime_owned_bytes,
            At::Peak => s.counts.peak_bytes,
        },
    },
];

/// Resolved pprof options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PprofOptions {
    /// The in-use instant.
    pub at: At,
    /// Index in the sample types of the one viewers show first.
    pub default_column: usize,
}

impl PprofOptions {
    /// Resolves `--metric` / `--at`: `peak` means in use at the peak, `leaked` at the end; the
    /// metric picks the default sample type (default: `inuse_space`).
    pub fn resolve(opts: &ExportOptions) -> Result<PprofOptions, ExportError> {
        let (default_column, implied_at) = match opts.metric {
            None => (3, None),
            Some(Metric::Allocations) => (0, None),
            Some(Metric::Allocated) => (1, None),
            Some(Metric::Leaked) => (3, Some(At::End)),
            Some(Metric::Peak) => (3, Some(At::Peak)),
            Some(m) => {
                return Err(ExportError::Options(format!(
                    "--metric {m} has no pprof sample type; use --format folded \
                     --metric {m}, or pprof with allocated, allocations, peak or leaked"
                )))
            }
        };
        let at = match (opts.at, implied_at) {
            (Some(a), Some(b)) if a != b => {
                return Err(ExportError::Options(format!(
                    "--metric {} means in use at the {}: drop --at or make it agree",
                    opts.metric.map(Metric::name).unwrap_or_default(),
                    if b == At::Peak { "peak" } else { "end" }
                )))
            }
            (Some(a), _) => a,
            (None, Some(b)) => b,
            (None, None) => At::End,
        };
        Ok(PprofOptions { at, default_column })
    }
}

/// Builds pprof's string table (index 0 is the empty string, as the format requires).
#[derive(Debug, Default)]
pub(super) struct StringTable {
    pub(super) strings: Vec<String>,
    index: HashMap<String, i64>,
}

impl StringTable {
    pub(super) fn new() -> Self {
        let mut t = StringTable::default();
        t.id("");
        t
    }

    pub(super) fn id(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.strings.len() as i64;
        self.strings.push(s.to_owned());
        self.index.insert(s.to_owned(), i);
        i
    }
}

/// The pprof message for `p` (ungzipped).
pub fn build(p: &Profile, opts: &PprofOptions) -> protos::Profile {
    let mut strings = StringTable::new();
    let mut out = protos::Profile {
        sample_type: COLUMNS
            .iter()
            .map(|c| protos::ValueType {
                ty: strings.id(c.ty),
                unit: strings.id(c.unit),
            })
            .collect(),
        time_nanos: p.header.start_unix_ns as i64,
        duration_nanos: p.totals.duration_ns as i64,
        ..protos::Profile::default()
    };
    out.default_sample_type = out.sample_type[opts.default_column].ty;
    if p.header.sampling_rate > 0 {
        out.period_type = Some(protos::ValueType {
            ty: strings.id("space"),
            unit: strings.id("bytes"),
        });
        out.period = p.header.sampling_rate as i64;
    }
    let mut comments = vec![format!(
        "tidemark profile of {} (pid {}); in use at the {}",
        p.header.exe,
        p.header.pid,
        match opts.at {
            At::End => "end",
            At::Peak => "peak",
        }
    )];
    if let Some(t) = &p.truncated {
        comments.push(format!(
            "WARNING: truncated profile ({}); numbers cover the recorded part only",
            t.reason
        ));
    }
    out.comment = comments.iter().map(|c| strings.id(c)).collect();
    let drop = drop_frames(p);
    if !drop.is_empty() {
        out.drop_frames = strings.id(&drop);
    }

    let mappings = Mappings::new(p, &mut strings);
    out.mapping = mappings.list.clone();
    let mut locations = Locations::default();
    let bytes_key = strings.id("bytes");
    for s in &p.stack_stats {
        let value: Vec<i64> = COLUMNS
            .iter()
            .map(|c| (c.value)(s, opts.at) as i64)
            .collect();
        if value.iter().all(|&v| v == 0) {
            continue;
        }
        let mut location_id = locations.ids(p, s.stack, &mut out, &mut strings, &mappings);
        if let Some(marker) = super::root_marker_of(p, s) {
            location_id.push(locations.marker(marker, &mut out, &mut strings));
        }
        // The block size, when every block of the stack had the same one (as in Go's heap
        // profiles, where it labels one sample per size).
        let label = if s.counts.allocations > 0 && s.min_block_bytes == s.max_block_bytes {
            vec![protos::Label {
                key: bytes_key,
                num: s.min_block_bytes as i64,
                num_unit: bytes_key,
                ..protos::Label::default()
            }]
        } else {
            Vec::new()
        };
        out.sample.push(protos::Sample {
            location_id,
            value,
            label,
        });
    }
    out.string_table = strings.strings;
    out
}

/// Locations and functions of a pprof profile, each added once.
#[derive(Debug, Default)]
pub(super) struct Locations {
    functions: HashMap<(i64, i64), u64>,
    locations: HashMap<IpId, u64>,
    unknown: Option<u64>,
    /// One location per root marker (`[truncated]`, `[unwinding stopped]`), without an address.
    markers: HashMap<&'static str, u64>,
}

/// A new function named `name` (no file) and a location of it without an address: its
/// `(function id, location id)`.
fn named_location(name: &str, out: &mut protos::Profile, strings: &mut StringTable) -> (u64, u64) {
    let name = strings.id(name);
    let function_id = out.function.len() as u64 + 1;
    out.function.push(protos::Function {
        id: function_id,
        name,
        system_name: name,
        ..protos::Function::default()
    });
    let id = out.location.len() as u64 + 1;
    out.location.push(protos::Location {
        id,
        line: vec![protos::Line {
            function_id,
            line: 0,
        }],
        ..protos::Location::default()
    });
    (function_id, id)
}

impl Locations {
    /// The location of a root marker frame, added once.
    pub(super) fn marker(
        &mut self,
        marker: &'static str,
        out: &mut protos::Profile,
        strings: &mut StringTable,
    ) -> u64 {
        *self
            .markers
            .entry(marker)
            .or_insert_with(|| named_location(marker, out, strings).1)
    }

    /// The location ids of the stack ending at `leaf`, innermost first, adding the locations and
    /// functions `out` does not have yet; `[unknown]` for an empty stack.
    pub(super) fn ids(
        &mut self,
        p: &Profile,
        leaf: Option<StackId>,
        out: &mut protos::Profile,
        strings: &mut StringTable,
        mappings: &Mappings,
    ) -> Vec<u64> {
        let mut location_id = Vec::new();
        for ip in p.stack_ips(leaf) {
            let id = *self.locations.entry(ip).or_insert_with(|| {
                let ip_data = p.ip(ip);
                let line = ip_data
                    .frames
                    .iter()
                    .map(|&f| {
                        let frame = p.frame(f);
                        let key = (
                            strings.id(p.str(frame.function)),
                            strings.id(p.str(frame.file)),
                        );
                        let next = out.function.len() as u64 + 1;
                        let function_id = *self.functions.entry(key).or_insert_with(|| {
                            out.function.push(protos::Function {
                                id: next,
                                name: key.0,
                                system_name: key.0,
                                filename: key.1,
                                start_line: 0,
                            });
                            next
                        });
                        protos::Line {
                            function_id,
                            line: i64::from(frame.line),
                        }
                    })
                    .collect();
                let id = out.location.len() as u64 + 1;
                out.location.push(protos::Location {
                    id,
                    mapping_id: mappings.find(ip_data.address),
                    address: ip_data.address,
                    line,
                    is_folded: false,
                });
                id
            });
            location_id.push(id);
        }
        if location_id.is_empty() {
            let functions = &mut self.functions;
            let id = *self.unknown.get_or_insert_with(|| {
                let (function_id, id) = named_location(UNKNOWN_FUNCTION, out, strings);
                functions.insert((strings.id(UNKNOWN_FUNCTION), 0), function_id);
                id
            });
            location_id.push(id);
        }
        location_id
    }
}

/// pprof's `drop_frames`: the allocator plumbing between each stack's allocation site and the
/// allocator (docs/metrics.md, "Site"), as an alternation of exact names. pprof cuts a sample's
/// stack at the outermost frame matching it, so its flat column shows the sites, as it does for
/// the allocator frames of C++ heap profiles. Only names that never appear at or above a site are
/// listed (a cut there would lose user frames), in every form pprof compares ([`pprof_names`]).
fn drop_frames(p: &Profile) -> String {
    // Which functions appear where, by id first (a deep program's stacks share most of their
    // frames: each frame's kind and each name's pprof forms are worked out once).
    let mut plumbing: Vec<Option<bool>> = vec![None; p.frames.len()];
    let mut tail_ids: BTreeSet<crate::model::StringId> = BTreeSet::new();
    let mut body_ids: BTreeSet<crate::model::StringId> = BTreeSet::new();
    let mut frames: Vec<crate::model::FrameId> = Vec::new();
    for s in &p.stack_stats {
        frames.clear();
        frames.extend(
            p.stack_ips(s.stack)
                .flat_map(|ip| p.ip(ip).frames.iter().copied()),
        );
        // A stack of plumbing only (cut by the frame limit) adds nothing to `body`: pprof never
        // cuts a stack above its first non-matching frame from the root.
        let site = frames
            .iter()
            .position(|&id| {
                !*plumbing[id.0 as usize].get_or_insert_with(|| {
                    let f = p.frame(id);
                    is_plumbing_frame(p.str(f.function), p.str(f.file))
                })
            })
            .unwrap_or(frames.len());
        tail_ids.extend(frames[..site].iter().map(|&id| p.frame(id).function));
        body_ids.extend(frames[site..].iter().map(|&id| p.frame(id).function));
    }
    let tail: BTreeSet<String> = tail_ids
        .into_iter()
        .flat_map(|id| pprof_names(p.str(id)))
        .collect();
    let mut body: HashSet<String> = HashSet::new();
    for id in body_ids {
        let name = p.str(id);
        body.insert(name.to_owned());
        body.extend(pprof_names(name));
    }
    tail.into_iter()
        .filter(|n| !n.is_empty() && !body.contains(n))
        .map(|n| {
            // RE2 takes any escaped ASCII punctuation literally.
            n.chars().fold(String::new(), |mut out, c| {
                if c.is_ascii_punctuation() {
                    out.push('\\');
                }
                out.push(c);
                out
            })
        })
        .collect::<Vec<_>>()
        .join("|")
}

/// The forms of a function name that pprof's `drop_frames` may be matched against: the name as
/// written up to its argument list (`operator new(unsigned long)` → `operator new`), and — since
/// pprof simplifies names that look like demangled C++ (`::`, `<>`) before it prunes, unless told
/// `-symbolize=demangle=full` — the name without argument and template lists
/// (`std::__new_allocator<int>::allocate(unsigned long)` → `std::__new_allocator::allocate`).
/// Names with a bracket pprof keeps (`(anonymous namespace)`, `operator()`) are left out rather
/// than guessed.
fn pprof_names(name: &str) -> Vec<String> {
    let as_written = |n: &str| -> Option<String> {
        match n.find('(') {
            None => Some(n.to_owned()),
            Some(i)
                if n[i..].starts_with("(anonymous namespace)") || n[..i].ends_with("operator") =>
            {
                None
            }
            Some(i) => Some(n[..i].to_owned()),
        }
    };
    let mut out: Vec<String> = as_written(name).into_iter().collect();
    let looks_cpp = !name.contains(".<")
        && !name.contains("]).")
        && (name.contains(['<', '>', '[', ']']) || name.contains("::"));
    if looks_cpp {
        let simple = remove_matching(&remove_matching(name, '(', ')'), '<', '>');
        out.extend(as_written(&simple));
    }
    out.dedup();
    out
}

/// Removes every balanced `open … close` group from `name` (pprof's `removeMatching`); a name
/// whose brackets do not balance is returned unchanged.
fn remove_matching(name: &str, open: char, close: char) -> String {
    let mut out = String::with_capacity(name.len());
    let mut depth = 0usize;
    for c in name.chars() {
        if c == open {
            depth += 1;
        } else if c == close {
            if depth == 0 {
                return name.to_owned();
            }
            depth -= 1;
        } else if depth == 0 {
            out.push(c);
        }
    }
    out
}

/// Writes `p` as a gzipped pprof profile.
pub fn write<W: Write>(p: &Profile, opts: &PprofOptions, out: W) -> Result<(), ExportError> {
    let bytes = build(p, opts).encode_to_vec();
    let mut gz = GzEncoder::new(out, Compression::default());
    gz.write_all(&bytes)?;
    gz.finish()?.flush()?;
    Ok(())
}

/// The profile's modules as pprof mappings (one per path and load bias over every snapshot).
pub(super) struct Mappings {
    pub(super) list: Vec<protos::Mapping>,
    /// `(start, end, mapping id)`, sorted.
    ranges: Vec<(u64, u64, u64)>,
}

impl Mappings {
    pub(super) fn new(p: &Profile, strings: &mut StringTable) -> Mappings {
        let mut list: Vec<protos::Mapping> = Vec::new();
        let mut seen: HashMap<(&str, u64), usize> = HashMap::new();
        let mut ranges = Vec::new();
        for snapshot in &p.modules {
            for m in &snapshot.modules {
                let start = m.segments.iter().map(|s| s.start).min().unwrap_or(m.base);
                let end = m
                    .segments
                    .iter()
                    .map(|s| s.start.saturating_add(s.size))
                    .max()
                    .unwrap_or(m.base);
                let i = *seen.entry((m.path.as_str(), m.base)).or_insert_with(|| {
                    let build_id: String = m.build_id.iter().map(|b| format!("{b:02x}")).collect();
                    list.push(protos::Mapping {
                        id: list.len() as u64 + 1,
                        memory_start: start,
                        memory_limit: end,
                        file_offset: start.saturating_sub(m.base),
                        filename: strings.id(&m.path),
                        build_id: strings.id(&build_id),
                        has_functions: true,
                        has_filenames: true,
                        has_line_numbers: true,
                        has_inline_frames: true,
                    });
                    list.len() - 1
                });
                for s in m.segments.iter().filter(|s| s.size > 0) {
                    ranges.push((s.start, s.start.saturating_add(s.size), list[i].id));
                }
            }
        }
        // Snapshots repeat the modules still loaded: one range each.
        ranges.sort_unstable();
        ranges.dedup();
        Mappings { list, ranges }
    }

    /// The mapping id of an address, 0 when no module holds it.
    pub(super) fn find(&self, addr: u64) -> u64 {
        let i = self.ranges.partition_point(|r| r.0 <= addr);
        // The range starting last at or below `addr`; a module loaded at the same address after
        // another was unloaded (dlclose, dlopen) starts the same way, so look a few back.
        self.ranges[..i]
            .iter()
            .rev()
            .take(4)
            .find(|r| addr < r.1)
            .map_or(0, |r| r.2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pprof_compares_names_as_written_and_simplified() {
        assert_eq!(
            pprof_names("operator new(unsigned long)"),
            ["operator new".to_owned()]
        );
        assert_eq!(
            pprof_names("std::__new_allocator<int>::allocate(unsigned long, void const*)"),
            [
                "std::__new_allocator<int>::allocate".to_owned(),
                "std::__new_allocator::allocate".to_owned()
            ]
        );
        assert_eq!(pprof_names("malloc"), ["malloc".to_owned()]);
        // As written, pprof keeps `(anonymous namespace)`: left out; simplified, it is gone.
        assert_eq!(
            pprof_names("(anonymous namespace)::f()"),
            ["::f".to_owned()]
        );
        assert_eq!(remove_matching("a<b<c>>::d", '<', '>'), "a::d");
        assert_eq!(remove_matching("a>b", '<', '>'), "a>b");
    }
}
