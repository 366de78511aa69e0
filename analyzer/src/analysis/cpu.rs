//! CPU time by stack and by function, from a profile's CPU samples (`--cpu`).
//!
//! Each sample stands for `weight_ns` of its thread's CPU time (the sampling period, more when
//! timer expirations were merged). A function's **self** time is that of the samples whose
//! innermost frame it is; its **total** time that of the samples with it anywhere on the stack
//! (counted once per sample under recursion). docs/metrics.md (`cpu`) has the definitions.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use crate::model::{CpuStack, Profile, TRUNCATED_FRAME};

/// CPU time of one function.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CpuFunction {
    /// Demangled function name.
    pub function: String,
    /// CPU time of the samples in the function itself, ns.
    pub self_ns: u64,
    /// CPU time of the samples with the function on the stack, ns.
    pub total_ns: u64,
    /// Samples in the function itself.
    pub self_samples: u64,
    /// Samples with the function on the stack.
    pub total_samples: u64,
}

/// CPU time of one thread.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CpuThread {
    /// Kernel thread id.
    pub tid: u32,
    /// Thread name, empty when unknown.
    pub name: String,
    /// Samples taken on it.
    pub samples: u64,
    /// CPU time they stand for, ns.
    pub cpu_ns: u64,
}

/// The CPU part of a summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CpuSummary {
    /// Samples written.
    pub samples: u64,
    /// CPU time they stand for, ns.
    pub cpu_ns: u64,
    /// Samples the recorder took but could not store.
    pub lost_samples: u64,
    /// Sampling period, ns of CPU time.
    pub period_ns: u64,
    /// Per thread, most CPU first.
    pub threads: Vec<CpuThread>,
    /// Functions with the most total time, most first (then by name).
    pub top_functions: Vec<CpuFunction>,
}

/// The frame names of a CPU stack, root first; `[truncated]` first for a cut stack.
fn names<'a>(p: &'a Profile, s: &CpuStack) -> Vec<&'a str> {
    let mut names: Vec<&str> = p.stack_frames(s.stack).map(|f| p.str(f.function)).collect();
    if names.is_empty() {
        names.push(super::UNKNOWN_FUNCTION);
    } else if s.truncated {
        names.push(TRUNCATED_FRAME);
    }
    names.reverse();
    names
}

/// Per-function CPU time, most total time first (ties by name).
pub fn cpu_functions(p: &Profile) -> Vec<CpuFunction> {
    let Some(cpu) = &p.cpu else {
        return Vec::new();
    };
    let mut by_name: HashMap<&str, CpuFunction> = HashMap::new();
    for s in &cpu.stacks {
        let names = names(p, s);
        let mut seen = HashSet::new();
        for (i, &name) in names.iter().enumerate() {
            let f = by_name.entry(name).or_insert_with(|| CpuFunction {
                function: name.to_owned(),
                ..CpuFunction::default()
            });
            if i + 1 == names.len() {
                f.self_ns = f.self_ns.saturating_add(s.cpu_ns);
                f.self_samples += s.samples;
            }
            if seen.insert(name) {
                f.total_ns = f.total_ns.saturating_add(s.cpu_ns);
                f.total_samples += s.samples;
            }
        }
    }
    let mut v: Vec<CpuFunction> = by_name
        .into_values()
        .filter(|f| f.function != TRUNCATED_FRAME)
        .collect();
    v.sort_by(|a, b| {
        b.total_ns
            .cmp(&a.total_ns)
            .then(b.self_ns.cmp(&a.self_ns))
            .then_with(|| a.function.cmp(&b.function))
    });
    v
}

/// The CPU summary with the `top_n` functions of most total time; `None` without CPU samples.
pub fn cpu_summary(p: &Profile, top_n: usize) -> Option<CpuSummary> {
    let cpu = p.cpu.as_ref()?;
    let mut threads: BTreeMap<u32, CpuThread> = BTreeMap::new();
    for s in &cpu.samples {
        let t = threads.entry(s.tid).or_insert_with(|| CpuThread {
            tid: s.tid,
            name: p
                .threads
                .iter()
                .find(|t| t.tid == s.tid)
                .map(|t| t.name.clone())
                .unwrap_or_default(),
            ..CpuThread::default()
        });
        t.samples += 1;
        t.cpu_ns = t.cpu_ns.saturating_add(s.weight_ns);
    }
    let mut threads: Vec<CpuThread> = threads.into_values().collect();
    threads.sort_by(|a, b| b.cpu_ns.cmp(&a.cpu_ns).then(a.tid.cmp(&b.tid)));
    let mut top_functions = cpu_functions(p);
    top_functions.truncate(top_n);
    Some(CpuSummary {
        samples: cpu.sample_count(),
        cpu_ns: cpu.cpu_ns,
        lost_samples: cpu.lost_samples,
        period_ns: cpu.period_ns,
        threads,
        top_functions,
    })
}
