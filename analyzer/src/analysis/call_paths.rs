//! Ordering allocation sites by any metric, and the merged call paths that lead to a site (what
//! `tidemark summary --sort … --backtrace N` prints, as heaptrack does under each top site).

use std::collections::HashMap;

use super::{Metric, SiteFinder, SiteSummary};
use crate::model::Counts;
use crate::model::{FrameId, Profile};

/// What sites are ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SiteSort {
    /// Requested bytes over every call (the default).
    #[default]
    Allocated,
    /// Live bytes at the global peak.
    Peak,
    /// Bytes still live at the end.
    Leaked,
    /// Temporary allocations.
    Temporary,
    /// Allocation calls.
    Calls,
}

impl SiteSort {
    /// Words for a heading: `allocated bytes`, `bytes live at the peak`, …
    pub fn title(self) -> &'static str {
        match self {
            SiteSort::Allocated => "allocated bytes",
            SiteSort::Peak => "bytes live at the peak",
            SiteSort::Leaked => "leaked bytes",
            SiteSort::Temporary => "temporary allocations",
            SiteSort::Calls => "allocation calls",
        }
    }

    /// The metric of the table this order reads.
    pub fn metric(self) -> Metric {
        match self {
            SiteSort::Allocated => Metric::Allocated,
            SiteSort::Peak => Metric::Peak,
            SiteSort::Leaked => Metric::Leaked,
            SiteSort::Temporary => Metric::Temporary,
            SiteSort::Calls => Metric::Allocations,
        }
    }

    fn of_site(self, s: &SiteSummary) -> u64 {
        self.of(&s.counts)
    }

    /// The value of this metric in `t`.
    pub fn of(self, t: &Counts) -> u64 {
        self.metric().of(t)
    }
}

/// Orders `sites` by `by`, largest first (ties: allocated bytes, then calls, then name).
pub fn sort_sites(sites: &mut [SiteSummary], by: SiteSort) {
    sites.sort_by(|a, b| {
        by.of_site(b)
            .cmp(&by.of_site(a))
            .then(b.counts.allocated_bytes.cmp(&a.counts.allocated_bytes))
            .then(b.counts.allocations.cmp(&a.counts.allocations))
            .then_with(|| a.function.cmp(&b.function))
            .then_with(|| a.file.cmp(&b.file))
            .then(a.line.cmp(&b.line))
    });
}

/// The name of the frame that stands for a Rust program's start-up frames (`_start`, libc's
/// start, `main`, `std::rt::lang_start…`, `catch_unwind…`, `__rust_begin_short_backtrace`) or a
/// Rust thread's (`start_thread`, `thread_start`, the spawn closure).
pub const RUNTIME_FRAME: &str = "[Rust runtime]";

/// True for a frame of the Rust runtime's start-up path.
fn is_runtime_name(f: &str) -> bool {
    const EXACT: [&str; 8] = [
        "_start",
        "__libc_start_main_impl",
        "__libc_start_main",
        "__libc_start_call_main",
        "main",
        "start_thread",
        "clone3",
        "clone",
    ];
    const PREFIX: [&str; 8] = [
        "std::rt::",
        "std::panic::catch_unwind",
        "std::panicking::",
        "__rust_begin_short_backtrace",
        "std::sys::pal::unix::thread::Thread::new::thread_start",
        "std::thread::Builder::spawn_unchecked",
        "core::ops::function::FnOnce::call_once",
        "call_once<",
    ];
    EXACT.contains(&f)
        || PREFIX.iter().any(|p| f.starts_with(p))
        || (f.starts_with('<') && f.contains("as core::ops::function::FnOnce<"))
}

/// How many root-side frames of a stack (given root first) are the Rust runtime's start-up
/// path: up to the last `__rust_begin_short_backtrace` and the call shims right after it, or,
/// before `main` runs (no such frame), the leading runtime frames of a stack that went through
/// `std::rt::lang_start`. 0 for a stack of another language.
pub fn runtime_prefix(names: &[&str]) -> usize {
    if let Some(i) = names.iter().rposition(|n| {
        n.starts_with("__rust_begin_short_backtrace")
            || n.contains("::__rust_begin_short_backtrace")
    }) {
        let mut end = i + 1;
        while end < names.len() && is_runtime_name(names[end]) && names[end] != "main" {
            end += 1;
        }
        return end;
    }
    if !names.iter().any(|n| n.starts_with("std::rt::lang_start")) {
        return 0;
    }
    names.iter().take_while(|n| is_runtime_name(n)).count()
}

/// One way to reach a site: its callers, innermost first (the Rust runtime's start-up frames
/// folded into one [`RUNTIME_FRAME`]), and what went through them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallPath {
    /// Callers of the site, innermost first: `function (file:line)` or `function`.
    pub callers: Vec<String>,
    /// Totals of the allocations made through this path.
    pub totals: Counts,
}

fn describe(p: &Profile, f: FrameId) -> String {
    let fr = p.frame(f);
    let file = p.str(fr.file);
    if file.is_empty() {
        return p.str(fr.function).to_owned();
    }
    // The last three components name a file well enough (`…/src/parser/parser.rs`).
    let parts: Vec<&str> = file.rsplitn(4, '/').collect();
    let short = if parts.len() == 4 {
        format!("…/{}/{}/{}", parts[2], parts[1], parts[0])
    } else {
        file.to_owned()
    };
    format!("{} ({short}:{})", p.str(fr.function), fr.line)
}

/// The `n` heaviest call paths (by `by`) that lead to `site`, each with its totals; stacks with
/// the same callers above the site merge into one path.
pub fn call_paths(p: &Profile, site: &SiteSummary, by: SiteSort, n: usize) -> Vec<CallPath> {
    let mut merged: HashMap<Vec<FrameId>, Counts> = HashMap::new();
    let mut finder = SiteFinder::new(p);
    for s in p.stack_stats.iter().filter(|s| s.has_allocations()) {
        let Some(f) = finder.frame(s.stack) else {
            continue;
        };
        let fr = p.frame(f);
        if p.str(fr.function) != site.function
            || p.str(fr.file) != site.file
            || fr.line != site.line
        {
            continue;
        }
        let frames: Vec<FrameId> = p
            .stack_ips(s.stack)
            .flat_map(|ip| p.ip(ip).frames.iter().copied())
            .collect();
        let at = frames.iter().position(|&x| x == f).unwrap_or(0);
        merged
            .entry(frames[at + 1..].to_vec())
            .or_default()
            .add(&s.counts);
    }
    let mut paths: Vec<(Vec<FrameId>, Counts)> = merged.into_iter().collect();
    paths.sort_by(|a, b| {
        by.of(&b.1)
            .cmp(&by.of(&a.1))
            .then(b.1.allocated_bytes.cmp(&a.1.allocated_bytes))
            .then_with(|| a.0.cmp(&b.0))
    });
    paths
        .into_iter()
        .take(n)
        .map(|(frames, totals)| {
            let root_first: Vec<&str> = frames
                .iter()
                .rev()
                .map(|&f| p.str(p.frame(f).function))
                .collect();
            let fold = runtime_prefix(&root_first);
            let mut callers: Vec<String> = frames[..frames.len() - fold]
                .iter()
                .map(|&f| describe(p, f))
                .collect();
            if fold > 0 {
                callers.push(RUNTIME_FRAME.to_owned());
            }
            CallPath { callers, totals }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_start_up_frames_fold_and_other_languages_keep_main() {
        let rust_main = [
            "_start",
            "__libc_start_main_impl",
            "__libc_start_call_main",
            "main",
            "std::rt::lang_start_internal",
            "std::panic::catch_unwind::<…>",
            "std::rt::lang_start::{{closure}}",
            "std::sys::backtrace::__rust_begin_short_backtrace::<fn()>",
            "call_once<fn() -> std::process::ExitCode, ()>",
            "app::main",
            "app::work",
        ];
        assert_eq!(runtime_prefix(&rust_main), 9);
        let before_main = [
            "_start",
            "__libc_start_main_impl",
            "__libc_start_call_main",
            "main",
            "std::rt::lang_start_internal",
            "std::rt::init",
            "std::sys::pal::unix::stack_overflow::init",
        ];
        assert_eq!(runtime_prefix(&before_main), 6);
        let c = [
            "_start",
            "__libc_start_main_impl",
            "main",
            "parse",
            "malloc",
        ];
        assert_eq!(runtime_prefix(&c), 0, "a C program's main is its own");
        let thread = [
            "clone3",
            "start_thread",
            "std::sys::pal::unix::thread::Thread::new::thread_start",
            "<F as core::ops::function::FnOnce<()>>::call_once",
            "std::thread::Builder::spawn_unchecked_::{{closure}}",
            "std::sys::backtrace::__rust_begin_short_backtrace::<…>",
            "app::worker",
        ];
        assert_eq!(runtime_prefix(&thread), 6);
    }
}
