//! Escape tracking during the load: pairs each block's allocation frames with the frames of
//! the event that ends it (`EVENT_FRAMES`, recorded with `tidemark run --escape`), and counts,
//! per recorded stack, how far out of the allocating frames each block lived.
//!
//! A block's allocation recorded the canonical frame addresses (CFAs) `c[0..n]` of the first
//! frames of its stack (`c[i]`: the stack pointer once frame `i`'s function has returned); its
//! stack gives each frame's return address. A frame is identified by the pair (CFA, return
//! address). At the free — on the same thread — whose own frames were recorded the same way
//! (`EVENT_FRAMES` and `EVENT_RETURNS`, the hooked call itself being a frame whose CFA is the
//! stack pointer), allocation frame `i` is still running when one of the free's frames is the
//! same pair, or when it lies above the free's recorded frames; it has returned otherwise. A
//! free tail-called by the allocating function takes that function's place (same CFA, same
//! return address) and so counts as made inside it. The innermost frame still running is the
//! block's *live index*; which frame is the allocating function (after the allocator's own
//! frames) is only known after symbolization, so the index is kept and classes are drawn from
//! it later ([`crate::analysis::escape`]).
//!
//! The blind spot: a frame that returned and was entered again at the same stack address from
//! the same call site (a loop calling the same function, the free inside a later call) is the
//! same pair, and looks like the same frame.

use std::collections::HashMap;

use crate::model::{EscapeData, StackEscape};

/// Frame addresses the recorder writes per event (`tidemark::record` escape mode).
const RECORDED_FRAMES: usize = 16;

/// A live block's allocation.
#[derive(Debug, Clone)]
struct Block {
    tid: u32,
    size: u64,
    stack: u64,
    cfas: Option<Box<[u64]>>,
}

/// The frames of an event that ends a block.
#[derive(Debug, Default)]
struct EndFrames {
    sp: u64,
    cfas: Vec<u64>,
    /// Return addresses: `ips[0]` of the hooked call, `ips[i + 1]` of frame `i`.
    ips: Option<Vec<u64>>,
}

/// The event the next `EVENT_FRAMES`/`EVENT_RETURNS` records belong to.
#[derive(Debug, Default)]
enum Pending {
    #[default]
    None,
    Alloc(u64),
    /// A free or a realloc's free half (thread, block, the realloc's new block), with the
    /// frames gathered so far.
    End(u32, Option<Block>, Option<u64>, Option<EndFrames>),
}

/// Return addresses kept per stack: enough for every recorded CFA.
const STACK_PREFIX: usize = RECORDED_FRAMES + 1;

/// The tracker; fed by the loader in stream order (version 2 writes each `EVENT_FRAMES` right
/// after its event).
#[derive(Debug, Default)]
pub(crate) struct EscapeTracker {
    seen_frames: bool,
    live: HashMap<u64, Block>,
    pending: Pending,
    stacks: HashMap<u64, StackEscape>,
    /// First return addresses of each defined stack.
    frames: HashMap<u64, Box<[u64]>>,
    /// Stack top of each thread.
    tops: HashMap<u32, u64>,
    /// Deepest stack use since the last sample.
    interval_depth: u64,
    stack_depth: Vec<(u64, u64)>,
}

impl EscapeTracker {
    pub(crate) fn alloc(&mut self, tid: u32, addr: u64, size: u64, stack: u64) {
        self.settle();
        self.live.insert(
            addr,
            Block {
                tid,
                size,
                stack,
                cfas: None,
            },
        );
        self.pending = Pending::Alloc(addr);
    }

    pub(crate) fn free(&mut self, tid: u32, addr: u64) {
        self.settle();
        if let Some(b) = self.live.remove(&addr) {
            self.pending = Pending::End(tid, Some(b), None, None);
        }
    }

    pub(crate) fn realloc(&mut self, tid: u32, old: u64, new: u64, size: u64, stack: u64) {
        self.settle();
        let freed = self.live.remove(&old);
        self.live.insert(
            new,
            Block {
                tid,
                size,
                stack,
                cfas: None,
            },
        );
        self.pending = Pending::End(tid, freed, Some(new), None);
    }

    /// A stack definition: its first return addresses are kept.
    pub(crate) fn stack(&mut self, id: u64, frames: &[u64]) {
        let n = frames.len().min(STACK_PREFIX);
        self.frames.insert(id, frames[..n].into());
    }

    /// A thread's stack top.
    pub(crate) fn thread_top(&mut self, tid: u32, hi: u64) {
        self.tops.insert(tid, hi);
    }

    /// A timeline sample at `t_ns` closes an interval of the stack-depth series.
    pub(crate) fn sample(&mut self, t_ns: u64) {
        self.stack_depth.push((t_ns, self.interval_depth));
        self.interval_depth = 0;
    }

    /// The frames of the event just before (on thread `tid`).
    pub(crate) fn frames(&mut self, tid: u32, sp: u64, cfas: Vec<u64>) {
        self.seen_frames = true;
        if let Some(&hi) = self.tops.get(&tid).filter(|_| sp != 0) {
            if hi > sp {
                self.interval_depth = self.interval_depth.max(hi - sp);
            }
        }
        match &mut self.pending {
            Pending::None => {}
            Pending::Alloc(addr) => {
                if let Some(b) = self.live.get_mut(addr).filter(|b| b.tid == tid) {
                    b.cfas = Some(cfas.into_boxed_slice());
                }
                self.pending = Pending::None;
            }
            Pending::End(_, _, new, end) => {
                let mut ips = None;
                if let Some(b) = new.and_then(|n| self.live.get_mut(&n)) {
                    // A realloc: its stack gives the return addresses.
                    ips = self.frames.get(&b.stack).map(|f| f.to_vec());
                    b.cfas = Some(cfas.clone().into_boxed_slice());
                }
                *end = Some(EndFrames { sp, cfas, ips });
            }
        }
    }

    /// The return addresses of the free just before.
    pub(crate) fn returns(&mut self, ips: Vec<u64>) {
        if let Pending::End(_, _, None, Some(end)) = &mut self.pending {
            end.ips = Some(ips);
        }
    }

    /// Classifies a pending free with the frames it got.
    fn settle(&mut self) {
        if let Pending::End(tid, Some(b), _, end) = std::mem::take(&mut self.pending) {
            self.ended(&b, tid, end.as_ref());
        }
    }

    /// Block `b` ended by thread `tid`, whose event had `end` frames.
    fn ended(&mut self, b: &Block, tid: u32, end: Option<&EndFrames>) {
        let prefix = self.frames.get(&b.stack);
        let s = self.stacks.entry(b.stack).or_default();
        if tid != b.tid {
            s.other_thread.0 += 1;
            s.other_thread.1 += b.size;
            return;
        }
        let (Some(cfas), Some(end)) = (b.cfas.as_deref(), end) else {
            s.unknown.0 += 1;
            s.unknown.1 += b.size;
            return;
        };
        if cfas.is_empty() || end.sp == 0 {
            s.unknown.0 += 1;
            s.unknown.1 += b.size;
            return;
        }
        let index = (0..cfas.len())
            .position(|i| {
                let ra = prefix.and_then(|f| f.get(i + 1)).copied();
                running_at(cfas[i], ra, end)
            })
            .unwrap_or(cfas.len());
        *s.same_thread
            .entry((index.min(u8::MAX as usize) as u8, b.size))
            .or_default() += 1;
    }

    /// What the profile says, with the stacks in the order of `raw_ids` (the replay's); `None`
    /// when the profile holds no frame addresses (recorded without `--escape`).
    pub(crate) fn finish(mut self, raw_ids: &[u64]) -> Option<EscapeData> {
        self.settle();
        if !self.seen_frames {
            return None;
        }
        for b in self.live.values() {
            let s = self.stacks.entry(b.stack).or_default();
            s.never_freed.0 += 1;
            s.never_freed.1 += b.size;
        }
        Some(EscapeData {
            stacks: raw_ids
                .iter()
                .map(|raw| self.stacks.remove(raw).unwrap_or_default())
                .collect(),
            stack_depth: self.stack_depth,
        })
    }
}

/// Whether the frame whose CFA is `cfa` and return address `ra` is still running at event `e`
/// of the same thread.
fn running_at(cfa: u64, ra: Option<u64>, e: &EndFrames) -> bool {
    if let (Some(ra), Some(ips)) = (ra, e.ips.as_deref()) {
        // Frames by identity: the hooked call (CFA: the stack pointer), then the event's frames.
        let pairs = std::iter::once(e.sp).chain(e.cfas.iter().copied()).zip(ips);
        if pairs.clone().any(|(c, &r)| c == cfa && r == ra) {
            return true;
        }
        if cfa <= e.sp {
            return false;
        }
        return match e.cfas.last() {
            Some(&outermost) => cfa > outermost && e.cfas.len() >= RECORDED_FRAMES,
            None => true,
        };
    }
    running_by_cfa(cfa, e.sp, &e.cfas)
}

/// [`running_at`] without return addresses: by the frame's CFA alone.
fn running_by_cfa(cfa: u64, sp: u64, event_cfas: &[u64]) -> bool {
    if cfa <= sp {
        // The stack pointer is back at (or above) where that frame's caller resumed.
        return false;
    }
    let Some(&outermost) = event_cfas.last() else {
        // Only the stack pointer: below the frame, it runs (or a frame entered since).
        return true;
    };
    if event_cfas.contains(&cfa) {
        return true;
    }
    // Above the event's recorded frames: running, unless the event's walk reached the end of
    // the stack (fewer frames than recorded).
    cfa > outermost && event_cfas.len() >= RECORDED_FRAMES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_between_the_event_and_its_outermost_are_running_only_when_listed() {
        let ev = [0x1010, 0x1040, 0x1100];
        assert!(running_by_cfa(0x1040, 0x1000, &ev));
        assert!(
            !running_by_cfa(0x1030, 0x1000, &ev),
            "returned and replaced"
        );
        assert!(
            !running_by_cfa(0x1000, 0x1000, &ev),
            "at the stack pointer: returned"
        );
        assert!(
            !running_by_cfa(0x2000, 0x1000, &ev),
            "beyond a complete walk"
        );
        let full: Vec<u64> = (1..=RECORDED_FRAMES as u64)
            .map(|i| 0x1000 + i * 16)
            .collect();
        assert!(
            running_by_cfa(0x9000, 0x1000, &full),
            "beyond the recorded frames"
        );
        assert!(running_by_cfa(0x1008, 0x1000, &[]), "stack pointer only");
        // With return addresses: the same CFA entered from another call site is another frame;
        // a tail call from the frame (same CFA and return address as the hooked call) is it.
        let e = EndFrames {
            sp: 0x1000,
            cfas: ev.to_vec(),
            ips: Some(vec![0xa0, 0xa1, 0xa2, 0xa3]),
        };
        assert!(running_at(0x1040, Some(0xa2), &e));
        assert!(
            !running_at(0x1040, Some(0xb2), &e),
            "another call at the same depth"
        );
        assert!(running_at(0x1000, Some(0xa0), &e), "a tail call of free");
    }

    #[test]
    fn blocks_are_classed_by_the_innermost_running_frame() {
        let mut t = EscapeTracker::default();
        // Allocated with frames at 0x100 (allocating function) and 0x200 (its caller).
        t.alloc(1, 7, 24, 5);
        t.frames(1, 0x80, vec![0x100, 0x200, 0x300]);
        // Freed by the caller: 0x100 returned, 0x200 still running.
        t.free(1, 7);
        t.frames(1, 0x100, vec![0x200, 0x300]);
        t.alloc(1, 8, 24, 5);
        t.frames(1, 0x80, vec![0x100, 0x200, 0x300]);
        t.free(2, 8);
        t.frames(2, 0x5000, vec![0x5100]);
        t.alloc(1, 9, 32, 5);
        t.frames(1, 0x80, vec![0x100, 0x200, 0x300]);
        let m = t.finish(&[5]).unwrap();
        let s = &m.stacks[0];
        assert_eq!(s.same_thread.get(&(1, 24)), Some(&1));
        assert_eq!(s.other_thread, (1, 24));
        assert_eq!(s.never_freed, (1, 32));
    }
}
