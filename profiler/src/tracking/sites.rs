//! Naming the top allocation sites of a [`crate::measure`] scope while a session records.
//!
//! Each allocation in the scope is unwound with the recorder's DWARF unwinder (its walk cache
//! makes repeated stacks cheap); at the end of the scope the stacks are named from the ELF symbol
//! tables of the loaded modules, and the innermost frame that is not allocator plumbing is the
//! site. Names come from symbol tables only (no line numbers): a function inlined into its caller
//! is named after the caller.

use crate::unwind::{modules, StackBounds, ThreadUnwinder, UnwindMode, MAX_FRAMES};
use std::collections::HashMap;

/// An allocation site of a measurement.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MeasuredSite {
    /// Demangled function name (`module+0xOFFSET` when no symbol covers the address).
    pub function: String,
    /// Allocation calls made there inside the closure.
    pub allocations: u64,
    /// Bytes requested by those calls.
    pub allocated_bytes: u64,
}

/// How many sites a measurement names. Default: 3.
pub const TOP_SITES: usize = 3;

struct StackCount {
    frames: Vec<u64>,
    allocations: u64,
    bytes: u64,
}

/// Stacks of one measurement scope.
pub(crate) struct SiteCapture {
    unwinder: Box<ThreadUnwinder>,
    stacks: HashMap<u128, StackCount>,
}

impl SiteCapture {
    /// State for the calling thread; allocates (call it as bookkeeping).
    pub(crate) fn new() -> SiteCapture {
        SiteCapture {
            unwinder: Box::new(ThreadUnwinder::new(StackBounds::current())),
            stacks: HashMap::new(),
        }
    }

    /// Counts one allocation of `size` at the current stack.
    #[inline(never)]
    pub(crate) fn record(&mut self, size: usize) {
        let mut out = [0u64; MAX_FRAMES];
        let c = self
            .unwinder
            .capture(UnwindMode::Dwarf, Default::default(), &mut out);
        if c.len == 0 {
            return;
        }
        let e = self.stacks.entry(c.hash).or_insert_with(|| StackCount {
            frames: out[..c.len].to_vec(),
            allocations: 0,
            bytes: 0,
        });
        e.allocations += 1;
        e.bytes += size as u64;
    }

    /// The `n` sites with the most bytes.
    pub(crate) fn top(&self, n: usize) -> Vec<MeasuredSite> {
        if self.stacks.is_empty() {
            return Vec::new();
        }
        let mut syms = Symbols::load();
        let mut by_site: HashMap<String, MeasuredSite> = HashMap::new();
        for s in self.stacks.values() {
            let names: Vec<String> = s.frames.iter().map(|&ip| syms.name(ip)).collect();
            let site = names
                .iter()
                .find(|n| !is_plumbing(n))
                .or(names.first())
                .cloned()
                .unwrap_or_default();
            let e = by_site.entry(site.clone()).or_insert_with(|| MeasuredSite {
                function: site,
                ..MeasuredSite::default()
            });
            e.allocations += s.allocations;
            e.allocated_bytes += s.bytes;
        }
        let mut v: Vec<MeasuredSite> = by_site.into_values().collect();
        v.sort_by(|a, b| {
            b.allocated_bytes
                .cmp(&a.allocated_bytes)
                .then(b.allocations.cmp(&a.allocations))
                .then_with(|| a.function.cmp(&b.function))
        });
        v.truncate(n);
        v
    }
}

/// Allocator plumbing and tidemark's own frames: never a site.
fn is_plumbing(name: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "alloc::",
        "<alloc::",
        "core::",
        "<core::",
        "std::alloc::",
        "<std::alloc::",
        "__rust",
        "__rdl_",
        "__rg_",
        "tidemark::",
        "<tidemark::",
        "malloc",
        "calloc",
        "realloc",
        "<hashbrown::",
        "hashbrown::",
    ];
    PREFIXES.iter().any(|p| name.starts_with(p))
}

struct ModuleSymbols {
    start: u64,
    end: u64,
    base: u64,
    label: String,
    /// `(file address, size, demangled name)`, sorted by address.
    symbols: Vec<(u64, u64, String)>,
}

/// Symbol tables of the loaded modules, read from their files.
struct Symbols {
    modules: Vec<ModuleSymbols>,
}

impl Symbols {
    fn load() -> Symbols {
        let list = modules::enumerate();
        let modules = list
            .modules
            .iter()
            .filter_map(|m| {
                let seg_start = m.module.segments.iter().map(|s| s.start).min()?;
                let seg_end = m.module.segments.iter().map(|s| s.start + s.size).max()?;
                let label = m.module.path.rsplit('/').next().unwrap_or("").to_owned();
                Some(ModuleSymbols {
                    start: seg_start,
                    end: seg_end,
                    base: m.module.base,
                    label,
                    symbols: read_symbols(&m.module.path),
                })
            })
            .collect();
        Symbols { modules }
    }

    /// The function holding the return address `ip` (looked up at `ip - 1`).
    fn name(&mut self, ip: u64) -> String {
        let probe = ip.saturating_sub(1);
        let Some(m) = self
            .modules
            .iter()
            .find(|m| probe >= m.start && probe < m.end)
        else {
            return format!("{ip:#x}");
        };
        let addr = probe - m.base;
        let i = m.symbols.partition_point(|s| s.0 <= addr);
        if i > 0 {
            let (start, size, name) = &m.symbols[i - 1];
            if *size == 0 || addr < start + size {
                return name.clone();
            }
        }
        format!("{}+{addr:#x}", m.label)
    }
}

fn read_symbols(path: &str) -> Vec<(u64, u64, String)> {
    use object::{Object, ObjectSymbol, SymbolKind};
    let Ok(data) = std::fs::read(path) else {
        return Vec::new();
    };
    let Ok(file) = object::File::parse(&*data) else {
        return Vec::new();
    };
    let mut v: Vec<(u64, u64, String)> = file
        .symbols()
        .chain(file.dynamic_symbols())
        .filter(|s| s.kind() == SymbolKind::Text && s.address() != 0)
        .filter_map(|s| {
            let name = s.name().ok()?;
            Some((
                s.address(),
                s.size(),
                format!("{:#}", rustc_demangle::demangle(name)),
            ))
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    v.dedup_by_key(|s| s.0);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plumbing_is_never_a_site() {
        assert!(is_plumbing("alloc::raw_vec::RawVec<T>::grow"));
        assert!(is_plumbing(
            "<tidemark::Tracking<A> as core::alloc::global::GlobalAlloc>::alloc"
        ));
        assert!(is_plumbing("__rust_alloc"));
        assert!(!is_plumbing("my_crate::parse"));
    }

    #[test]
    fn names_a_function_of_this_binary() {
        let mut s = Symbols::load();
        let ip = names_a_function_of_this_binary as fn() as usize as u64 + 1;
        assert!(
            s.name(ip).contains("names_a_function_of_this_binary"),
            "{}",
            s.name(ip)
        );
    }
}
