//! The summary as terminal text and as JSON.

use std::io::Write;

use super::units::{bytes, count, duration_ms, percent};
use super::RenderError;
use crate::analysis::Summary;

/// Appends one formatted line to a String.
macro_rules! push_line {
    ($o:expr, $($arg:tt)*) => {{
        $o.push_str(&format!($($arg)*));
        $o.push('\n');
    }};
}

/// How the summary text is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextOptions {
    /// What the sites are ordered by, for their heading. Default: `"allocated bytes"`.
    pub sites_by: String,
}

impl Default for TextOptions {
    fn default() -> Self {
        TextOptions {
            sites_by: "allocated bytes".to_owned(),
        }
    }
}

/// How the summary JSON is written (nothing to choose: pretty, newline-terminated).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JsonOptions {}

/// Writes the summary as terminal text ([`summary_text_by`]).
pub fn write<W: Write>(s: &Summary, o: &TextOptions, mut out: W) -> Result<(), RenderError> {
    out.write_all(summary_text_by(s, &o.sites_by).as_bytes())?;
    Ok(())
}

/// Writes the summary as pretty JSON, newline-terminated ([`write_summary_json`]).
pub fn write_json<W: Write>(s: &Summary, _o: &JsonOptions, out: W) -> Result<(), RenderError> {
    write_summary_json(s, out)
}

/// The summary as terminal text. The truncation warning is part of the text too; the CLI also
/// prints it on stderr.
pub fn summary_text(s: &Summary) -> String {
    summary_text_by(s, "allocated bytes")
}

/// [`summary_text`] with the sites' heading saying what they are ordered by.
pub fn summary_text_by(s: &Summary, sites_by: &str) -> String {
    let mut o = String::new();
    let w = &mut o;
    if s.truncated {
        push_line!(
            w,
            "WARNING: truncated profile: {}\n         numbers cover the recorded part only\n",
            s.truncation_reason.as_deref().unwrap_or("")
        );
    }
    let p = &s.process;
    let cmd = if p.cmdline.is_empty() {
        p.exe.clone()
    } else {
        p.cmdline.join(" ")
    };
    push_line!(w, "process      {cmd} (pid {})", p.pid);
    if !p.allocator.is_empty() {
        let asked = match p.allocator_requested.as_str() {
            "" => String::new(),
            "system" => " (asked: system, the program's own allocator)".to_owned(),
            "jemalloc" if p.allocator == "jemalloc" => {
                " (asked: jemalloc, the one bundled with tidemark)".to_owned()
            }
            other => format!(" (asked: {other})"),
        };
        push_line!(w, "allocator    {}{asked}", p.allocator);
    }
    push_line!(
        w,
        "duration     {}, {} thread(s)",
        duration_ms(s.duration_ms),
        s.threads
    );
    push_line!(
        w,
        "allocations  {} calls ({} realloc), {} allocated",
        count(s.counts.allocations),
        count(s.reallocs),
        bytes(s.counts.allocated_bytes)
    );
    push_line!(w, "frees        {} calls", count(s.frees));
    push_line!(
        w,
        "peak         {} live in {} blocks",
        bytes(s.counts.peak_bytes),
        count(s.peak_blocks)
    );
    push_line!(
        w,
        "leaked       {} in {} blocks (live at the end)",
        bytes(s.counts.leaked_bytes),
        count(s.counts.leaked_allocations)
    );
    if s.runtime_owned_blocks > 0 || s.runtime_owned_bytes > 0 {
        let rules: Vec<String> = s
            .runtime_owned
            .iter()
            .map(|r| format!("{} {}", r.rule, bytes(r.bytes)))
            .collect();
        push_line!(
            w,
            "runtime      {} in {} blocks runtime-owned, not leaks ({})",
            bytes(s.runtime_owned_bytes),
            count(s.runtime_owned_blocks),
            rules.join(", ")
        );
    }
    push_line!(
        w,
        "temporary    {} allocations ({} of calls)",
        count(s.counts.temporary_allocations),
        percent(s.counts.temporary_allocations, s.counts.allocations)
    );
    if let (Some(a), Some(pk), Some(l)) = (
        s.allocated_bytes_ci95,
        s.peak_bytes_ci95,
        s.leaked_bytes_ci95,
    ) {
        push_line!(
            w,
            "sampled      95% intervals: allocated {} – {}, peak {} – {}{}, leaked {} – {}",
            bytes(a[0]),
            bytes(a[1]),
            bytes(pk[0]),
            bytes(pk[1]),
            if s.peak_below_sampling_resolution == Some(true) {
                " (below sampling resolution: a peak under 16 sampling periods reads high)"
            } else {
                ""
            },
            bytes(l[0]),
            bytes(l[1])
        );
    }
    pressure_lines(w, s);
    if s.unmatched_frees > 0 {
        push_line!(
            w,
            "unmatched    {} frees of blocks allocated before recording began",
            count(s.unmatched_frees)
        );
    }
    if p.sampling_rate_bytes > 0 {
        push_line!(
            w,
            "sampling     one sample per {} on average",
            bytes(p.sampling_rate_bytes)
        );
    }
    if !s.top_sites.is_empty() {
        push_line!(w, "\ntop allocation sites by {sites_by}:");
        push_line!(
            w,
            "{:>10} {:>10} {:>10} {:>10} {:>8}  site",
            "allocated",
            "calls",
            "peak",
            "leaked",
            "temp"
        );
        for site in &s.top_sites {
            let loc = if site.file.is_empty() {
                String::new()
            } else {
                format!(" ({}:{})", short_path(&site.file), site.line)
            };
            push_line!(
                w,
                "{:>10} {:>10} {:>10} {:>10} {:>8}  {}{loc}",
                bytes(site.counts.allocated_bytes),
                count(site.counts.allocations),
                bytes(site.counts.peak_bytes),
                bytes(site.counts.leaked_bytes),
                count(site.counts.temporary_allocations),
                site.function
            );
        }
    }
    if let Some(c) = &s.cpu {
        cpu_section(w, c);
    }
    if !s.messages.is_empty() {
        push_line!(w, "\nrecorder messages:");
        for m in &s.messages {
            push_line!(w, "  {}: {}", m.level, m.text);
        }
    }
    if !s.warnings.is_empty() {
        push_line!(w, "\nwarnings:");
        for m in &s.warnings {
            push_line!(w, "  {m}");
        }
    }
    o
}

/// CPU time, its threads and top functions.
fn cpu_section(w: &mut String, c: &crate::analysis::cpu::CpuSummary) {
    let ms = |ns: u64| duration_ms(ns / 1_000_000);
    let hz = 1_000_000_000u64
        .checked_div(c.period_ns)
        .map(|hz| format!(", {hz} Hz"))
        .unwrap_or_default();
    push_line!(
        w,
        "\ncpu          {} of CPU time in {} samples{hz}",
        ms(c.cpu_ns),
        count(c.samples)
    );
    if c.lost_samples > 0 {
        push_line!(
            w,
            "             {} samples lost (ring full): times are lower bounds",
            count(c.lost_samples)
        );
    }
    if c.threads.len() > 1 {
        for t in &c.threads {
            push_line!(
                w,
                "  thread {} {:<16} {:>10} {:>7}",
                t.tid,
                t.name,
                ms(t.cpu_ns),
                percent(t.cpu_ns, c.cpu_ns)
            );
        }
    }
    if !c.top_functions.is_empty() {
        push_line!(w, "\ntop functions by CPU time:");
        push_line!(
            w,
            "{:>10} {:>7} {:>10} {:>7}  function",
            "total",
            "",
            "self",
            ""
        );
        for f in &c.top_functions {
            push_line!(
                w,
                "{:>10} {:>7} {:>10} {:>7}  {}",
                ms(f.total_ns),
                percent(f.total_ns, c.cpu_ns),
                ms(f.self_ns),
                percent(f.self_ns, c.cpu_ns),
                f.function
            );
        }
    }
}

/// The last three components of a path: enough to find the file, short enough for a terminal.
pub(crate) fn short_path(path: &str) -> String {
    let parts: Vec<&str> = path.rsplit('/').take(3).collect();
    let short: Vec<&str> = parts.into_iter().rev().collect();
    let s = short.join("/");
    if s.len() < path.len() {
        format!("…/{s}")
    } else {
        s
    }
}

/// The summary as pretty JSON, newline-terminated.
pub fn write_summary_json<W: Write>(s: &Summary, mut out: W) -> Result<(), RenderError> {
    serde_json::to_writer_pretty(&mut out, s).map_err(std::io::Error::from)?;
    writeln!(out)?;
    Ok(())
}

/// Growth, limit, RSS, rates and latency lines (omitted when the timeline cannot tell).
fn pressure_lines(w: &mut String, s: &Summary) {
    use crate::units::{human_bytes, human_count, human_nanos};
    let p = &s.pressure;
    if let (Some(slope), Some(r2)) = (p.growth_bytes_per_sec, p.growth_r2) {
        let sign = if slope < 0.0 { "-" } else { "+" };
        push_line!(
            w,
            "growth       {sign}{}/s (R² {r2:.2}) — {}: {}",
            human_bytes(slope.abs()),
            if p.leak_verdict { "LEAK" } else { "no leak" },
            p.leak_verdict_reason
        );
    }
    if let Some(limit) = p.limit_bytes {
        let used = p
            .pressure_ratio
            .map(|r| format!(", {:.0}% used at the end", r * 100.0))
            .unwrap_or_default();
        let when = match p.time_to_limit_sec {
            Some(t) if t <= 0.0 => ", already reached".to_owned(),
            Some(t) => format!(", reached in {t:.1} s at this rate"),
            None => ", not approached (no growth)".to_owned(),
        };
        let source = match p.limit_source {
            Some(crate::analysis::pressure::LimitSource::Cgroup) => " (cgroup memory.max)",
            Some(crate::analysis::pressure::LimitSource::Recorder) => " (--limit)",
            _ => "",
        };
        push_line!(
            w,
            "limit        {}{source}{used}{when}",
            human_bytes(limit as f64)
        );
    }
    if let Some(rss) = p.peak_rss_bytes {
        let frag = p
            .fragmentation_ratio
            .map(|f| format!(", RSS/live {f:.2} at the end"))
            .unwrap_or_default();
        push_line!(w, "rss          peak {}{frag}", human_bytes(rss as f64));
    }
    if let (Some(calls), Some(b)) = (p.alloc_rate_calls_per_sec, p.alloc_rate_bytes_per_sec) {
        push_line!(
            w,
            "alloc rate   {} calls/s, {}/s",
            human_count(calls),
            human_bytes(b)
        );
    }
    if let Some(p99) = p.alloc_latency_p99_ns {
        let max = p
            .alloc_latency_max_ns
            .map(|m| format!(", max {}", human_nanos(m as f64)))
            .unwrap_or_default();
        push_line!(w, "latency      allocator p99 {}{max}", human_nanos(p99));
    }
    if let Some(first) = p.latency_spikes.first() {
        push_line!(
            w,
            "spikes       {} interval(s) with slow allocator calls; first at {:.2} s: {} (heap {})",
            p.latency_spikes.len(),
            first.at_sec,
            human_nanos(first.max_ns),
            human_bytes(first.live_bytes)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_paths() {
        assert_eq!(short_path("src/main.rs"), "src/main.rs");
        assert_eq!(short_path("/home/u/p/src/a/b.rs"), "…/src/a/b.rs");
    }
}
