//! tidemark's own JSON export: the summary (as `tidemark summary --json` prints it, with every
//! allocation site) plus the per-stack aggregates with their frames. The schema is documented in
//! docs/usage.md ("Export"); `schema` names its version.

use std::io::Write;

use serde::Serialize;

use super::ExportError;
use crate::analysis::{summary, Summary};
use crate::model::Profile;

/// Version of this JSON's schema.
pub const SCHEMA: &str = "tidemark-export-1";

/// One source-level frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FrameJson {
    /// Function name.
    pub function: String,
    /// Source file, empty when unknown.
    pub file: String,
    /// Source line, 0 when unknown.
    pub line: u32,
    /// The return address this frame was found at (inlined frames share it).
    pub address: u64,
    /// True for a call inlined into the next (outer) frame.
    pub inlined: bool,
}

/// One recorded allocation stack with its aggregates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StackJson {
    /// Frames, innermost first (empty for an unknown stack).
    pub frames: Vec<FrameJson>,
    /// `"[truncated]"` for a stack cut at the recorder's frame limit, `"[unwinding stopped]"`
    /// for one whose outermost frame is named but is no thread or process entry, else `null`
    /// (docs/usage.md, "Root markers").
    pub root: Option<&'static str>,
    /// Allocation calls.
    pub allocations: u64,
    /// Requested bytes.
    pub allocated_bytes: u64,
    /// Frees of blocks from this stack.
    pub frees: u64,
    /// Blocks live at the end.
    pub leaked_allocations: u64,
    /// Bytes live at the end.
    pub leaked_bytes: u64,
    /// Blocks live at the end that a suppression rule names runtime-owned (not leaked).
    pub runtime_owned_allocations: u64,
    /// Bytes of those blocks.
    pub runtime_owned_bytes: u64,
    /// Temporary allocations.
    pub temporary_allocations: u64,
    /// Live bytes at the global peak.
    pub peak_bytes: u64,
    /// Live blocks at the global peak.
    pub peak_blocks: u64,
    /// This stack's own largest live bytes.
    pub max_live_bytes: u64,
    /// Its live blocks at that moment.
    pub max_live_blocks: u64,
}

/// The whole export.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExportJson {
    /// [`SCHEMA`].
    pub schema: &'static str,
    /// The summary, with every site in `top_sites`.
    pub summary: Summary,
    /// Every stack with a non-zero aggregate, largest allocated bytes first.
    pub stacks: Vec<StackJson>,
}

/// The export of `p`.
pub fn build(p: &Profile) -> ExportJson {
    let mut stacks: Vec<StackJson> = p
        .stack_stats
        .iter()
        .filter(|s| s.counts.allocations > 0 || s.frees > 0 || s.counts.allocated_bytes > 0)
        .map(|s| StackJson {
            frames: p
                .stack_ips(s.stack)
                .flat_map(|ip| {
                    let ip = p.ip(ip);
                    let last = ip.frames.len().saturating_sub(1);
                    ip.frames.iter().enumerate().map(move |(i, &f)| {
                        let f = p.frame(f);
                        FrameJson {
                            function: p.str(f.function).to_owned(),
                            file: p.str(f.file).to_owned(),
                            line: f.line,
                            address: ip.address,
                            inlined: i < last,
                        }
                    })
                })
                .collect(),
            root: super::root_marker_of(p, s),
            allocations: s.counts.allocations,
            allocated_bytes: s.counts.allocated_bytes,
            frees: s.frees,
            leaked_allocations: s.counts.leaked_allocations,
            leaked_bytes: s.counts.leaked_bytes,
            runtime_owned_allocations: s.runtime_owned_allocations,
            runtime_owned_bytes: s.runtime_owned_bytes,
            temporary_allocations: s.counts.temporary_allocations,
            peak_bytes: s.counts.peak_bytes,
            peak_blocks: s.peak_blocks,
            max_live_bytes: s.max_live_bytes,
            max_live_blocks: s.max_live_blocks,
        })
        .collect();
    stacks.sort_by(|a, b| {
        b.allocated_bytes
            .cmp(&a.allocated_bytes)
            .then(b.allocations.cmp(&a.allocations))
            .then_with(|| {
                a.frames
                    .iter()
                    .map(|f| &f.function)
                    .cmp(b.frames.iter().map(|f| &f.function))
            })
    });
    ExportJson {
        schema: SCHEMA,
        summary: summary(p, usize::MAX),
        stacks,
    }
}

/// Writes the JSON export (pretty-printed).
pub fn write<W: Write>(p: &Profile, mut out: W) -> Result<(), ExportError> {
    serde_json::to_writer_pretty(&mut out, &build(p)).map_err(std::io::Error::from)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}
