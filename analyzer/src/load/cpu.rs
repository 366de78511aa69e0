//! CPU samples while loading: `CPU_SAMPLE` records are kept as recorded, then resolved against
//! the stack definitions once the whole file is read (a sample may name a stack defined in the
//! same pass).

use std::collections::HashMap;

use tidemark::format::trailer_key;

use super::StackBuilder;
use crate::model::{CpuProfile, CpuSample, CpuStack, Profile, StackStats};

/// Samples as recorded: `(tid, t_ns, recorded stack id, weight_ns)`.
#[derive(Debug, Default)]
pub(crate) struct CpuBuilder {
    raw: Vec<(u32, u64, u64, u64)>,
}

impl CpuBuilder {
    pub(crate) fn push(&mut self, tid: u32, t_ns: u64, stack: u64, weight_ns: u64) {
        self.raw.push((tid, t_ns, stack, weight_ns));
    }

    /// Builds [`Profile::cpu`] (left `None` without samples), with the trailer's lost count and
    /// period, and adds each stack's CPU time to its [`Profile::stack_stats`] entry (a new entry,
    /// without allocations, for a stack only CPU samples have; `stack_raw_ids` are the recorded
    /// ids of the existing entries) and to the totals; warns about lost samples and undefined
    /// stacks.
    pub(crate) fn finish(self, p: &mut Profile, stacks: &StackBuilder, stack_raw_ids: &[u64]) {
        let trailer = |key: u64| {
            p.trailer
                .as_ref()
                .and_then(|t| t.iter().find(|(k, _)| *k == key).map(|&(_, v)| v))
        };
        let lost = trailer(trailer_key::CPU_SAMPLES_LOST).unwrap_or(0);
        let period = trailer(trailer_key::CPU_PERIOD_NS);
        if self.raw.is_empty() {
            if lost > 0 {
                p.warnings.push(format!(
                    "the recorder lost all {lost} CPU sample(s) it took: no CPU profile"
                ));
            }
            return;
        }
        let mut index: HashMap<u64, u32> = HashMap::new();
        let mut cpu = CpuProfile {
            lost_samples: lost,
            ..CpuProfile::default()
        };
        let mut undefined = 0u64;
        let mut raws: Vec<u64> = Vec::new();
        for (tid, t_ns, raw, weight_ns) in self.raw {
            let i = *index.entry(raw).or_insert_with(|| {
                raws.push(raw);
                let stack = stacks.defined(raw);
                if stack.is_none() {
                    undefined += 1;
                }
                cpu.stacks.push(CpuStack {
                    stack: stack.flatten(),
                    truncated: stacks.was_cut(raw),
                    ..CpuStack::default()
                });
                (cpu.stacks.len() - 1) as u32
            });
            let s = &mut cpu.stacks[i as usize];
            s.samples += 1;
            s.cpu_ns = s.cpu_ns.saturating_add(weight_ns);
            cpu.cpu_ns = cpu.cpu_ns.saturating_add(weight_ns);
            cpu.samples.push(CpuSample {
                tid,
                t_ns,
                stack: i,
                weight_ns,
            });
        }
        cpu.period_ns = period.unwrap_or_else(|| most_common_weight(&cpu.samples));
        let mut stats_of: HashMap<u64, usize> = stack_raw_ids
            .iter()
            .enumerate()
            .map(|(i, &raw)| (raw, i))
            .collect();
        for (s, &raw) in cpu.stacks.iter().zip(&raws) {
            let at = *stats_of.entry(raw).or_insert_with(|| {
                p.stack_stats.push(StackStats {
                    stack: s.stack,
                    truncated: s.truncated,
                    ..StackStats::default()
                });
                p.stack_stats.len() - 1
            });
            p.stack_stats[at].counts.cpu_ns = s.cpu_ns;
        }
        p.totals.counts.cpu_ns = cpu.cpu_ns;
        if lost > 0 {
            let taken = cpu.sample_count() + lost;
            p.warnings.push(format!(
                "the recorder lost {lost} of {taken} CPU sample(s) (a thread's sample ring was \
                 full): CPU times are lower bounds"
            ));
        }
        if undefined > 0 {
            p.warnings.push(format!(
                "{undefined} stack(s) of CPU samples were never defined in the profile; their \
                 samples show as [unknown]"
            ));
        }
        p.cpu = Some(cpu);
    }
}

fn most_common_weight(samples: &[CpuSample]) -> u64 {
    let mut counts: HashMap<u64, u64> = HashMap::new();
    for s in samples {
        *counts.entry(s.weight_ns).or_default() += 1;
    }
    counts
        .into_iter()
        .max_by_key(|&(w, n)| (n, std::cmp::Reverse(w)))
        .map_or(0, |(w, _)| w)
}
