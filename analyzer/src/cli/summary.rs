//! `tidemark summary`.

use std::io::Write;

use clap::ValueEnum;

use super::{load, warn_truncated, SummaryArgs, EXIT_OK};
use crate::analysis::escape::{escape, EscapeOptions};
use crate::analysis::{call_paths, sites, sort_sites, summary as summarize, SiteSort};
use crate::render::escape::{add_escape_json, escape_text};
use crate::render::units::{bytes, count};
use crate::render::{summary_text_by, write_summary_json};

/// The `--sort` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SortArg {
    /// Requested bytes over every call.
    Allocated,
    /// Bytes live at the global peak.
    Peak,
    /// Bytes still live at the end.
    Leaked,
    /// Temporary allocations.
    Temporary,
    /// Allocation calls.
    Calls,
}

impl From<SortArg> for SiteSort {
    fn from(s: SortArg) -> SiteSort {
        match s {
            SortArg::Allocated => SiteSort::Allocated,
            SortArg::Peak => SiteSort::Peak,
            SortArg::Leaked => SiteSort::Leaked,
            SortArg::Temporary => SiteSort::Temporary,
            SortArg::Calls => SiteSort::Calls,
        }
    }
}

pub(super) fn summary(a: &SummaryArgs) -> anyhow::Result<u8> {
    let p = load(&a.profile, &a.load)?;
    let mut s = summarize(&p, a.top);
    let by = SiteSort::from(a.sort);
    if by != SiteSort::Allocated {
        let mut all = sites(&p);
        sort_sites(&mut all, by);
        all.truncate(a.top);
        s.top_sites = all;
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    warn_truncated(&p, &a.profile);
    let opts = EscapeOptions {
        stack_threshold_bytes: a.stack_threshold,
    };
    let esc = escape(&p, &opts);
    if a.json {
        match &esc {
            None => write_summary_json(&s, &mut out)?,
            Some(e) => {
                let mut v = serde_json::to_value(&s)?;
                add_escape_json(&mut v, e);
                serde_json::to_writer_pretty(&mut out, &v)?;
                writeln!(out)?;
            }
        }
    } else {
        // Which process this is: a wrapper's run leaves one profile per program and process.
        let h = &p.header;
        writeln!(
            out,
            "profile      {}: {}",
            a.profile.display(),
            super::images::describe_process(&h.cmdline, &h.exe, h.pid)
        )?;
        out.write_all(summary_text_by(&s, by.title()).as_bytes())?;
        if let Some(e) = &esc {
            out.write_all(escape_text(e, &s.thread_stacks, a.top).as_bytes())?;
        }
        if a.backtrace > 0 && !s.top_sites.is_empty() {
            writeln!(
                out,
                "\ncall paths of the top sites (heaviest {} by {}; callers innermost first):",
                a.backtrace,
                by.title()
            )?;
            for site in &s.top_sites {
                writeln!(out, "\n{}", site.function)?;
                for path in call_paths(&p, site, by, a.backtrace) {
                    let t = &path.totals;
                    writeln!(
                        out,
                        "  {} allocated in {} calls, {} at peak, {} leaked",
                        bytes(t.allocated_bytes),
                        count(t.allocations),
                        bytes(t.peak_bytes),
                        bytes(t.leaked_bytes)
                    )?;
                    for c in &path.callers {
                        writeln!(out, "      ← {c}")?;
                    }
                }
            }
        }
    }
    out.flush()?;
    Ok(EXIT_OK)
}
