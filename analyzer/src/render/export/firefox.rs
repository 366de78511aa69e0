//! The Firefox Profiler's processed format (JSON), written through `fxprof-processed-profile`:
//! load the file at profiler.firefox.com ("Load a profile from file").
//!
//! - Native allocations: one allocation sample per block group (the blocks of one stack,
//!   allocating thread and timeline interval that ended in the same interval, or are still live)
//!   at its mean allocation time, with the group's bytes; a deallocation sample with the same
//!   memory address and the negated bytes at its mean free time. The call tree's "Native
//!   Allocations" and "Retained memory" summaries (the latter matches deallocations to
//!   allocations by address) work from these. A deallocation carries the stack that allocated
//!   the block: frees are not unwound.
//! - Each thread's track holds its own allocations, and the frees of those blocks wherever they
//!   happened (the Firefox Profiler matches deallocations to allocations by address within one
//!   thread), under the thread's name. The crate files allocation samples under the first thread
//!   of a builder process, so each thread has a builder process of its own, all with the same
//!   pid: the Firefox Profiler shows them as one process.
//! - CPU samples (`--cpu`) are the threads' samples, each with the CPU time it stands for: the
//!   call tree, flame graph and activity graph of each thread show where its CPU time went.
//! - Memory counters on the timeline: the live heap (replayed, exact at each timeline sample)
//!   and RSS when the recorder sampled it.
//! - Frames are labels (function names, inlined calls as frames of their own): the file is
//!   symbolicated already.
//!
//! Event times are interpolated inside timeline intervals ([`crate::analysis::lifetimes`]).

use std::io::Write;
use std::time::Duration;

use std::collections::HashMap;

use fxprof_processed_profile::{
    CategoryColor, CategoryPairHandle, CpuDelta, Frame, FrameFlags, FrameInfo,
    Profile as FxProfile, ReferenceTimestamp, SamplingInterval, StackHandle, ThreadHandle,
    Timestamp,
};
use tidemark::format::sample_key;

use super::{ExportError, ExportFormat};
use crate::analysis::lifetimes::SeqClock;
use crate::analysis::UNKNOWN_FUNCTION;
use crate::model::{Profile, StackId};

/// The `preprocessedProfileVersion` of the files the crate writes (checked by the tests).
pub const PROCESSED_PROFILE_VERSION: u64 = 55;

/// Builds the Firefox Profiler profile of `p`.
pub fn build(p: &Profile) -> Result<FxProfile, ExportError> {
    let groups = p
        .block_groups
        .as_ref()
        .ok_or(ExportError::MissingBlockGroups {
            format: ExportFormat::Firefox,
        })?;
    let clock = SeqClock::new(p, groups.end_seq);
    let exe = p.header.exe.rsplit('/').next().unwrap_or("").to_owned();
    let product = if exe.is_empty() { "profile" } else { &exe };
    // The interval of the threads' samples: the CPU sampling period when there are CPU samples.
    let interval = match p.cpu.as_ref().map(|c| c.period_ns).filter(|&n| n > 0) {
        Some(ns) => SamplingInterval::from_nanos(ns),
        None => SamplingInterval::from_millis(p.header.interval_ms.max(1)),
    };
    let mut fx = FxProfile::new(
        product,
        ReferenceTimestamp::from_duration_since_unix_epoch(Duration::from_nanos(
            p.header.start_unix_ns,
        )),
        interval,
    );
    fx.set_os_name("Linux");
    fx.set_symbolicated(true);
    let ts = |ns: f64| Timestamp::from_nanos_since_reference(ns.max(0.0) as u64);
    let process = fx.add_process(product, p.header.pid, ts(0.0));
    fx.set_process_end_time(process, ts(clock.end_ns()));

    // The crate files every allocation sample of a (builder) process under that process's first
    // thread. To keep each thread's allocations on its own track, every thread gets a builder
    // process of its own, all with the profiled pid: the Firefox Profiler groups threads by
    // pid, so they still show as one process, the main thread as its track.
    let mut tids: Vec<(u32, &str)> = p.threads.iter().map(|t| (t.tid, t.name.as_str())).collect();
    if let Some(cpu) = &p.cpu {
        for s in &cpu.samples {
            if !tids.iter().any(|&(t, _)| t == s.tid) {
                tids.push((s.tid, ""));
            }
        }
    }
    tids.sort_by_key(|&(t, _)| t != p.header.pid);
    if tids.is_empty() {
        tids.push((p.header.pid, ""));
    }
    let mut threads: HashMap<u32, ThreadHandle> = HashMap::new();
    for (i, &(tid, name)) in tids.iter().enumerate() {
        let proc = if i == 0 {
            process
        } else {
            let h = fx.add_process(product, p.header.pid, ts(0.0));
            fx.set_process_end_time(h, ts(clock.end_ns()));
            h
        };
        let h = fx.add_thread(proc, tid, ts(0.0), i == 0);
        fx.set_thread_name(h, &thread_name(name, tid));
        threads.insert(tid, h);
    }
    let main = threads[&tids[0].0];
    fx.add_initial_selected_thread(main);

    let heap: CategoryPairHandle = fx.add_category("Heap", CategoryColor::Orange).into();
    let mut stacks: HashMap<(ThreadHandle, Option<StackId>, bool), Option<StackHandle>> =
        HashMap::new();
    let mut intern =
        |fx: &mut FxProfile, thread: ThreadHandle, leaf: Option<StackId>, cut: bool, cat| {
            *stacks.entry((thread, leaf, cut)).or_insert_with(|| {
                let mut names: Vec<&str> =
                    p.stack_frames(leaf).map(|f| p.str(f.function)).collect();
                if names.is_empty() {
                    names.push(UNKNOWN_FUNCTION);
                } else {
                    let root_first: Vec<&str> = names.iter().rev().copied().collect();
                    names.extend(crate::analysis::stack_roots::root_marker(&root_first, cut));
                }
                let frames: Vec<FrameInfo> = names
                    .iter()
                    .rev()
                    .map(|n| FrameInfo {
                        frame: Frame::Label(fx.intern_string(n)),
                        category_pair: cat,
                        flags: FrameFlags::empty(),
                    })
                    .collect();
                fx.intern_stack_frames(thread, frames.into_iter())
            })
        };
    // (time ns, allocating thread, stack, address, bytes): sorted by time before they are
    // added. A free goes on the allocating thread's track, where Retained memory matches it.
    let mut events: Vec<(f64, u32, u32, u64, i64)> = Vec::with_capacity(groups.groups.len() * 2);
    for (i, g) in groups.groups.iter().enumerate() {
        let address = (i as u64 + 1) * 16;
        let bytes = i64::try_from(g.bytes).unwrap_or(i64::MAX);
        events.push((clock.alloc_ns(g), g.alloc_tid, g.stack, address, bytes));
        if let Some(t) = clock.free_ns(g) {
            events.push((t, g.alloc_tid, g.stack, address, -bytes));
        }
    }
    events.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.4.cmp(&b.4).reverse()));
    for (t, tid, stack, address, bytes) in events {
        let thread = threads.get(&tid).copied().unwrap_or(main);
        let st = &p.stack_stats[stack as usize];
        let handle = intern(&mut fx, thread, st.stack, st.truncated, heap);
        fx.add_allocation_sample(thread, ts(t), handle, address, bytes);
    }
    // CPU samples (`--cpu`) as the threads' samples, each with its CPU time.
    if let Some(cpu) = &p.cpu {
        let category: CategoryPairHandle = fx.add_category("CPU", CategoryColor::Blue).into();
        for s in &cpu.samples {
            let thread = threads[&s.tid];
            let st = &cpu.stacks[s.stack as usize];
            let handle = intern(&mut fx, thread, st.stack, st.truncated, category);
            fx.add_sample(
                thread,
                ts(s.t_ns as f64),
                handle,
                CpuDelta::from_nanos(s.weight_ns),
                1,
            );
        }
    }

    // Live at the end: the leaks and the runtime-owned blocks.
    let end = (
        clock.end_ns(),
        p.totals.counts.leaked_bytes + p.totals.runtime_owned_bytes,
    );
    add_counter(
        &mut fx,
        process,
        p,
        ("Live heap", "Heap bytes live (requested sizes)"),
        |s| Some(s.live_bytes),
        Some(end),
    );
    if p.samples
        .iter()
        .any(|s| s.value(sample_key::RSS_BYTES).is_some())
    {
        add_counter(
            &mut fx,
            process,
            p,
            ("RSS", "Resident set size"),
            |s| s.value(sample_key::RSS_BYTES),
            None,
        );
    }
    Ok(fx)
}

fn thread_name(name: &str, tid: u32) -> String {
    if name.is_empty() {
        format!("thread {tid}")
    } else {
        name.to_owned()
    }
}

/// A memory counter (category "Memory", which the Firefox Profiler draws as a memory track) from
/// one value of the timeline samples, and `end = (ns, value)` when the value at the end is
/// known; counters take deltas.
fn add_counter(
    fx: &mut FxProfile,
    process: fxprof_processed_profile::ProcessHandle,
    p: &Profile,
    (name, description): (&str, &str),
    value: impl Fn(&crate::model::Sample) -> Option<u64>,
    end: Option<(f64, u64)>,
) {
    let counter = fx.add_counter(process, name, "Memory", description);
    let mut last = 0.0f64;
    let mut last_calls = 0u64;
    for s in &p.samples {
        let Some(v) = value(s) else { continue };
        let calls = s.value(sample_key::ALLOC_CALLS).unwrap_or(last_calls);
        let ops = u32::try_from(calls.saturating_sub(last_calls)).unwrap_or(u32::MAX);
        fx.add_counter_sample(
            counter,
            Timestamp::from_nanos_since_reference(s.t_ns),
            v as f64 - last,
            ops,
        );
        last = v as f64;
        last_calls = calls;
    }
    if let Some((t, v)) = end {
        let t_ns = t as u64;
        if p.samples.last().is_none_or(|s| s.t_ns < t_ns) {
            let ops = u32::try_from(p.totals.counts.allocations.saturating_sub(last_calls))
                .unwrap_or(u32::MAX);
            fx.add_counter_sample(
                counter,
                Timestamp::from_nanos_since_reference(t_ns),
                v as f64 - last,
                ops,
            );
        }
    }
}

/// Writes the Firefox Profiler JSON of `p`.
pub fn write<W: Write>(p: &Profile, mut out: W) -> Result<(), ExportError> {
    let fx = build(p)?;
    serde_json::to_writer(&mut out, &fx).map_err(std::io::Error::from)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}
