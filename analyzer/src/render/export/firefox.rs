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
//! - The crate keeps every allocation sample of a process on its first thread (the Firefox
//!   Profiler needs allocations and deallocations on one thread to match them), so that thread is
//!   the process's main thread; every other thread appears as a named track.
//! - Memory counters on the timeline: the live heap (replayed, exact at each timeline sample)
//!   and RSS when the recorder sampled it.
//! - Frames are labels (function names, inlined calls as frames of their own): the file is
//!   symbolicated already.
//!
//! Event times are interpolated inside timeline intervals ([`crate::analysis::lifetimes`]).

use std::io::Write;
use std::time::Duration;

use fxprof_processed_profile::{
    CategoryColor, CategoryPairHandle, Frame, FrameFlags, FrameInfo, Profile as FxProfile,
    ReferenceTimestamp, SamplingInterval, StackHandle, Timestamp,
};
use tidemark::format::sample_key;

use super::{ExportError, ExportFormat};
use crate::analysis::lifetimes::SeqClock;
use crate::analysis::UNKNOWN_FUNCTION;
use crate::model::Profile;

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
    let interval_ms = p.header.interval_ms.max(1);
    let mut fx = FxProfile::new(
        product,
        ReferenceTimestamp::from_duration_since_unix_epoch(Duration::from_nanos(
            p.header.start_unix_ns,
        )),
        SamplingInterval::from_millis(interval_ms),
    );
    fx.set_os_name("Linux");
    fx.set_symbolicated(true);
    let ts = |ns: f64| Timestamp::from_nanos_since_reference(ns.max(0.0) as u64);
    let process = fx.add_process(product, p.header.pid, ts(0.0));
    fx.set_process_end_time(process, ts(clock.end_ns()));

    // The main thread first: the crate files every allocation sample under the first thread.
    let mut order: Vec<&crate::model::ThreadInfo> = p.threads.iter().collect();
    order.sort_by_key(|t| t.tid != p.header.pid);
    let main_tid = order.first().map_or(p.header.pid, |t| t.tid);
    let main = fx.add_thread(process, main_tid, ts(0.0), true);
    fx.set_thread_name(
        main,
        &thread_name(order.first().map_or("", |t| &t.name), main_tid),
    );
    for t in order.iter().skip(1) {
        let h = fx.add_thread(process, t.tid, ts(0.0), false);
        fx.set_thread_name(h, &thread_name(&t.name, t.tid));
    }
    fx.add_initial_selected_thread(main);

    let category: CategoryPairHandle = fx.add_category("Heap", CategoryColor::Orange).into();
    let mut stacks: Vec<Option<Option<StackHandle>>> = vec![None; p.stack_stats.len()];
    // (time ns, stack, address, bytes): sorted by time before they are added.
    let mut events: Vec<(f64, u32, u64, i64)> = Vec::with_capacity(groups.groups.len() * 2);
    for (i, g) in groups.groups.iter().enumerate() {
        let address = (i as u64 + 1) * 16;
        let bytes = i64::try_from(g.bytes).unwrap_or(i64::MAX);
        events.push((clock.alloc_ns(g), g.stack, address, bytes));
        if let Some(t) = clock.free_ns(g) {
            events.push((t, g.stack, address, -bytes));
        }
    }
    events.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.3.cmp(&b.3).reverse()));
    for (t, stack, address, bytes) in events {
        let handle = *stacks[stack as usize].get_or_insert_with(|| {
            let leaf = p.stack_stats[stack as usize].stack;
            let mut names: Vec<&str> = p.stack_frames(leaf).map(|f| p.str(f.function)).collect();
            if names.is_empty() {
                names.push(UNKNOWN_FUNCTION);
            }
            names.extend(super::root_marker_of(p, &p.stack_stats[stack as usize]));
            let frames: Vec<FrameInfo> = names
                .iter()
                .rev()
                .map(|n| FrameInfo {
                    frame: Frame::Label(fx.intern_string(n)),
                    category_pair: category,
                    flags: FrameFlags::empty(),
                })
                .collect();
            fx.intern_stack_frames(main, frames.into_iter())
        });
        fx.add_allocation_sample(main, ts(t), handle, address, bytes);
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
