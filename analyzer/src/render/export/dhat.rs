//! DHAT JSON (`dhatFileVersion` 2): what `dh_view.html` (valgrind's DHAT viewer) reads and the
//! `dhat` crate writes.
//!
//! One program point per recorded stack: total bytes and blocks (`tb`/`tbk`), total lifetimes
//! (`tl`, µs; blocks live at the end count until the end, as DHAT counts them), the stack's own
//! maximum (`mb`/`mbk`), its share of the global peak (`gb`/`gbk`), what is live at the end
//! (`eb`/`ebk`), and its frames (`fs`, innermost first, indices into `ftbl`, whose entry 0 is
//! `[root]`). Summed over program points, `tb`, `tbk`, `gb`, `gbk`, `eb` and `ebk` equal the
//! profile's totals. Times come from the timeline ([`crate::analysis::lifetimes`]): they are as
//! fine as its interval. Memory access counts (`bkacc`) are not recorded.

use std::collections::HashMap;
use std::io::Write;

use serde::Serialize;

use super::{ExportError, ExportFormat};
use crate::analysis::lifetimes::{peak_time_ns, stack_lifetimes_ns};
use crate::analysis::UNKNOWN_FUNCTION;
use crate::model::Profile;

/// DHAT's "short-lived" threshold, in `tu` (µs), as the `dhat` crate sets it.
pub const SHORT_LIVED_US: u64 = 10;

/// A program point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProgramPoint {
    /// Total bytes.
    pub tb: u64,
    /// Total blocks.
    pub tbk: u64,
    /// Total lifetimes of the blocks, µs.
    pub tl: u64,
    /// Bytes at this point's own maximum.
    pub mb: u64,
    /// Blocks at that moment.
    pub mbk: u64,
    /// Bytes at the global peak (t-gmax).
    pub gb: u64,
    /// Blocks at the global peak.
    pub gbk: u64,
    /// Bytes live at the end.
    pub eb: u64,
    /// Blocks live at the end.
    pub ebk: u64,
    /// Frames, innermost first: indices into `ftbl`.
    pub fs: Vec<usize>,
}

/// The DHAT file.
#[allow(non_snake_case)]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DhatJson {
    /// Always 2.
    pub dhatFileVersion: u32,
    /// `"rust-heap"` for in-process (Rust `Tracking`) profiles, `"heap"` otherwise.
    pub mode: &'static str,
    /// `"Allocated"`.
    pub verb: &'static str,
    /// Block lifetimes present: true.
    pub bklt: bool,
    /// Block access counts present: false.
    pub bkacc: bool,
    /// Time unit: µs.
    pub tu: &'static str,
    /// Time unit of large values: s.
    pub Mtu: &'static str,
    /// Short-lived threshold, µs.
    pub tuth: u64,
    /// Command line.
    pub cmd: String,
    /// Process id.
    pub pid: u32,
    /// Time of the global peak, µs.
    pub tg: u64,
    /// End of the recording, µs.
    pub te: u64,
    /// Program points.
    pub pps: Vec<ProgramPoint>,
    /// Frame table; entry 0 is `[root]`.
    pub ftbl: Vec<String>,
}

/// The DHAT document of `p` (needs block groups for lifetimes and the peak time).
pub fn build(p: &Profile) -> Result<DhatJson, ExportError> {
    let missing = || ExportError::MissingBlockGroups {
        format: ExportFormat::Dhat,
    };
    let lifetimes = stack_lifetimes_ns(p).ok_or_else(missing)?;
    let tg_ns = peak_time_ns(p).ok_or_else(missing)?;
    let mut ftbl = vec!["[root]".to_owned()];
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut intern = |s: String| -> usize {
        *index.entry(s).or_insert_with_key(|s| {
            ftbl.push(s.clone());
            ftbl.len() - 1
        })
    };
    let mut pps = Vec::new();
    for (i, s) in p.stack_stats.iter().enumerate() {
        if s.counts.allocations == 0 && s.counts.allocated_bytes == 0 {
            continue;
        }
        let mut fs = Vec::new();
        for ip in p.stack_ips(s.stack) {
            let ip = p.ip(ip);
            for &f in &ip.frames {
                let f = p.frame(f);
                let name = p.str(f.function);
                let file = p.str(f.file);
                let text = if file.is_empty() {
                    format!("{:#x}: {name}", ip.address)
                } else {
                    format!("{:#x}: {name} ({file}:{})", ip.address, f.line)
                };
                fs.push(intern(text));
            }
        }
        if fs.is_empty() {
            fs.push(intern(UNKNOWN_FUNCTION.to_owned()));
        }
        if let Some(marker) = super::root_marker_of(p, s) {
            fs.push(intern(marker.to_owned()));
        }
        pps.push(ProgramPoint {
            tb: s.counts.allocated_bytes,
            tbk: s.counts.allocations,
            tl: (lifetimes.get(i).copied().unwrap_or(0.0) / 1000.0).round() as u64,
            mb: s.max_live_bytes,
            mbk: s.max_live_blocks,
            gb: s.counts.peak_bytes,
            gbk: s.peak_blocks,
            // DHAT's "at t-end" is everything live then, runtime-owned blocks included.
            eb: s.counts.leaked_bytes + s.runtime_owned_bytes,
            ebk: s.counts.leaked_allocations + s.runtime_owned_allocations,
            fs,
        });
    }
    Ok(DhatJson {
        dhatFileVersion: 2,
        mode: if p.header.source == "in-process" {
            "rust-heap"
        } else {
            "heap"
        },
        verb: "Allocated",
        bklt: true,
        bkacc: false,
        tu: "µs",
        Mtu: "s",
        tuth: SHORT_LIVED_US,
        cmd: if p.header.cmdline.is_empty() {
            p.header.exe.clone()
        } else {
            p.header.cmdline.join(" ")
        },
        pid: p.header.pid,
        tg: (tg_ns / 1000.0).round() as u64,
        te: p.totals.duration_ns / 1000,
        pps,
        ftbl,
    })
}

/// Writes the DHAT JSON of `p`.
pub fn write<W: Write>(p: &Profile, mut out: W) -> Result<(), ExportError> {
    serde_json::to_writer(&mut out, &build(p)?).map_err(std::io::Error::from)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}
