//! Applies decoded records to what the loader builds: events to the replay (and the escape
//! tracker when the profile has frame addresses), definitions, samples and the rest to the
//! profile.
//!
//! Recorded stack ids become dense slots here (the index of the stack's aggregates in the
//! replay), in the order stacks first appear in allocation events: a hash lookup, skipped when an
//! event has the stack of the one before (most do).

use std::collections::HashMap;

use rustc_hash::FxHashMap;
use tidemark::format::{Record, SymbolFrame};

use super::cpu::CpuBuilder;
use super::escape::EscapeTracker;
use super::replay::Replay;
use super::StackBuilder;
use crate::model::{Message, ModuleSnapshot, Profile};

/// Stack ids below this find their slot in a vector (4 bytes an id at most, 4 MiB in all);
/// larger ones, in a hash map.
const DENSE_IDS: u64 = 1 << 20;

/// Everything records are applied to, borrowed for the length of the load.
pub(super) struct Apply<'a> {
    pub p: &'a mut Profile,
    pub replay: &'a mut Replay,
    pub stacks: &'a mut StackBuilder,
    pub embedded: &'a mut HashMap<(u64, u64), Vec<SymbolFrame>>,
    pub last_sample_ns: &'a mut u64,
    pub cpu: &'a mut CpuBuilder,
    pub escape: &'a mut EscapeTracker,
    /// Feed the escape tracker: only for profiles whose header says frame addresses follow
    /// every event (`--escape`, header key ESCAPE); it keeps a block table of its own.
    pub track: bool,
    /// Recorded stack id → slot, for ids below [`DENSE_IDS`] (the recorder numbers its stacks
    /// from 1 up); `u32::MAX` where none yet.
    pub dense: Vec<u32>,
    /// Recorded stack id → slot, for larger ids.
    pub slots: FxHashMap<u64, u32>,
    /// The last stack id looked up and its slot.
    pub last_slot: Option<(u64, u32)>,
}

impl Apply<'_> {
    /// The slot of recorded stack id `raw`, made on first sight.
    #[inline(always)]
    fn slot(&mut self, raw: u64) -> u32 {
        match self.last_slot {
            Some((r, s)) if r == raw => s,
            _ => self.slot_slow(raw),
        }
    }

    /// [`Apply::slot`] for a stack other than the last one's.
    #[inline(never)]
    fn slot_slow(&mut self, raw: u64) -> u32 {
        let replay = &mut *self.replay;
        let s = if raw < DENSE_IDS {
            let i = raw as usize;
            if i >= self.dense.len() {
                self.dense.resize((i + 1).next_power_of_two(), u32::MAX);
            }
            match self.dense[i] {
                u32::MAX => {
                    let s = replay.new_stack(raw);
                    self.dense[i] = s;
                    s
                }
                s => s,
            }
        } else {
            *self
                .slots
                .entry(raw)
                .or_insert_with(|| replay.new_stack(raw))
        };
        self.last_slot = Some((raw, s));
        s
    }

    /// Applies one record.
    #[inline]
    pub(super) fn record(&mut self, rec: Record) {
        // An event owns nothing: `forget` spares it the call to `Record`'s drop glue, which the
        // compiler keeps for the value matched by copy (≈ 5% of a churn profile's replay).
        match rec {
            Record::Alloc {
                tid,
                seq,
                addr,
                size,
                stack,
                ..
            } => {
                std::mem::forget(rec);
                let slot = self.slot(stack);
                if self.track {
                    self.escape.alloc(tid, addr, size, stack);
                }
                self.replay.alloc(tid, seq, addr, size, slot, false);
            }
            Record::Free { tid, seq, addr } => {
                std::mem::forget(rec);
                if self.track {
                    self.escape.free(tid, addr);
                }
                self.replay.free(tid, seq, addr, false);
            }
            Record::Realloc {
                tid,
                free_seq,
                seq,
                old_addr,
                new_addr,
                size,
                stack,
                ..
            } => {
                std::mem::forget(rec);
                let slot = self.slot(stack);
                if self.track {
                    self.escape.realloc(tid, old_addr, new_addr, size, stack);
                }
                self.replay.free(tid, free_seq, old_addr, true);
                self.replay.alloc(tid, seq, new_addr, size, slot, true);
            }
            // Frame records only feed the escape tracker: moved, not copied.
            Record::EventFrames { tid, sp, cfas } => self.escape.frames(tid, sp, cfas),
            Record::EventReturns { ips, .. } => self.escape.returns(ips),
            rec => self.other(rec),
        }
    }

    /// Applies a record other than an event.
    #[inline(never)]
    fn other(&mut self, rec: Record) {
        if self.track {
            track_escape(&rec, self.escape);
        }
        let p = &mut *self.p;
        match rec {
            Record::Stack {
                id,
                generation,
                frames,
                base,
                keep,
                outer_omitted,
                ..
            } => {
                let outer = (keep > 0).then_some((base, keep));
                self.stacks
                    .define(p, id, generation, &frames, outer, outer_omitted)
            }
            Record::Thread {
                tid,
                name,
                stack_lo,
                stack_hi,
            } => {
                let t = self.replay.thread(tid);
                t.name = name;
                t.stack_lo = stack_lo;
                t.stack_hi = stack_hi;
            }
            Record::ThreadExit {
                tid,
                stack_high_water_bytes,
            } => self.replay.thread(tid).stack_high_water_bytes = Some(stack_high_water_bytes),
            Record::Modules {
                generation,
                modules,
            } => p.modules.push(ModuleSnapshot {
                generation,
                modules,
            }),
            Record::Sample { seq, t_ns, values } => {
                *self.last_sample_ns = (*self.last_sample_ns).max(t_ns);
                self.replay.sample(seq, t_ns, values);
            }
            Record::Watermark { seq } => self.replay.watermark(seq),
            Record::Trailer { values } => p.trailer = Some(values),
            Record::Message { level, text } => p.messages.push(Message { level, text }),
            Record::Symbols {
                generation,
                entries,
            } => self
                .embedded
                .extend(entries.into_iter().map(|(ip, f)| ((ip, generation), f))),
            Record::CpuSample {
                tid,
                t_ns,
                stack,
                weight_ns,
            } => self.cpu.push(tid, t_ns, stack, weight_ns),
            // Events are applied by `record`.
            Record::Alloc { .. }
            | Record::Free { .. }
            | Record::Realloc { .. }
            | Record::EventFrames { .. }
            | Record::EventReturns { .. } => {}
        }
    }
}

/// Feeds the escape tracker the records other than events (frames arrive after their event).
fn track_escape(rec: &Record, e: &mut EscapeTracker) {
    match rec {
        Record::Stack { id, frames, .. } => e.stack(*id, frames),
        &Record::Thread { tid, stack_hi, .. } => e.thread_top(tid, stack_hi),
        &Record::Sample { t_ns, .. } => e.sample(t_ns),
        _ => {}
    }
}
