//! DWARF stack walk with a per-thread *walk cache*.
//!
//! framehop costs ≈15–22 ns per frame even when its rule cache hits. Consecutive allocations of
//! one thread mostly share their outer frames, so the walker keeps the previous walk and reuses
//! its outer part once it is proven identical. A loop allocating from a few call sites repeats
//! whole stacks, so the walker keeps its last 8 walks ([`KEPT`]) and first looks for one that
//! the new walk repeats whole (same frame 0, every word it depends on unchanged); only then does
//! it step, reusing the latest walk's outer part.
//!
//! A step out of frame `i` computes frame `i+1`'s `(ip, sp, bp)` from frame `i`'s `(ip, sp, bp)`
//! and the stack words it reads (and the module set, fixed per [`ProcessUnwinder`]). Which of
//! those inputs a step really uses is the step's [`Shape`]: an rsp-based step never looks at
//! `rbp`, reads its return address at `sp' - 8`, and either passes `rbp` through or loads it
//! from a known word; the other words it reads (saved `rbx`, `r12`…) influence nothing. So each
//! frame of a walk records
//!
//! - `needs_bp[i]`: whether the rest of the walk depends on `bp[i]` — true when a step from
//!   `i` on computes a stack pointer or return address from `rbp` (frame-pointer code,
//!   framehop's fallback for code without unwind information, steps it evaluates from raw DWARF,
//!   the final step unless it ends the stack unconditionally) and `rbp` reaches that step
//!   unchanged (every step in between passes it through);
//! - the words the rest of the walk depends on: each return address, each saved `rbp` that a
//!   later step needs, and every word read by a raw-DWARF or final step.
//!
//! When the new walk reaches a frame whose `(ip, sp)` equal those of frame `m` of the previous
//! walk, and `bp` too if `needs_bp[m]`, and every word the previous walk depended on from `m` on
//! still holds the same value, the rest of the new walk is exactly the rest of the previous one
//! and is reused. `rbp` used as an ordinary register (code built without frame pointers) thus
//! never defeats the cache, and a frame-pointer function's `rbp` is still compared where it
//! matters. A walk cut at [`MAX_WALK`] is marked truncated and never reused. Nothing on the stack
//! is ever written. (How a walk is stored and verified: [`super::stored`].)
//!
//! Frames whose shape is known are stepped directly by that shape (the same arithmetic and reads
//! as framehop's rule, without its per-step lookups); framehop steps the others. A walk is stored
//! outermost frame first, with everything derived from its outer part (hashes, the words to
//! check, `needs_bp`) accumulated in that order, so reusing an outer part never moves it: the
//! new inner frames are appended. With the cache off (`reuse == false`) every step is
//! framehop's, which is what the tests compare the cache against.

use super::bounds::StackBounds;
use super::process::ProcessUnwinder;
use super::shape::{Base, BpRule, Shape, Shapes};
use super::stored::{
    boxed_zeroed, Fresh, Walk, BELOW_START, KEEPS_BP, MAX_WALK, MAX_XREADS, USES_BP,
};
use framehop::x86_64::{CacheX86_64, UnwindRegsX86_64};
use framehop::{FrameAddress, MustNotAllocateDuringUnwind, Unwinder};

/// Per-thread walking state: framehop's rule cache, step shapes, the last walks, and scratch
/// space.
pub struct Walker {
    cache: Box<CacheX86_64<MustNotAllocateDuringUnwind>>,
    shapes: Shapes,
    /// The last walks (see [`WalkSet`]); `walks.0[cur]` is the latest.
    walks: Box<WalkSet>,
    cur: usize,
    keep: KeepPolicy,
    fresh: Box<Fresh>,
    /// Frames unwound (not taken from the cache), for tests and benchmarks.
    pub steps: u64,
}

/// Walks kept per thread. A loop whose body allocates from a few call sites repeats the same
/// stacks: python3 running an allocation-heavy script makes, in 94% of its allocations, a
/// walk equal to one of the last 8 (0.8% for the last 4), and the walk that came just before
/// shares only the outer part with it (4.5 frames per allocation were unwound there).
const KEPT: usize = 8;

/// The kept walks, in one zeroed allocation (pages of walks never used are never touched).
struct WalkSet([Walk; KEPT]);

/// When a walk that is not a whole reuse goes to another slot (keeping the latest walk, at
/// the cost of copying its reused outer part) instead of replacing the latest walk in place.
/// Keeping pays only when earlier walks are reused whole: it is on while at least one walk in
/// [`KeepPolicy::MIN_HITS_OF`] was such a reuse of a walk other than the latest, and for one
/// window in [`KeepPolicy::PROBE_EVERY`] to find out whether that became so.
struct KeepPolicy {
    walks: u32,
    hits: u32,
    windows: u32,
    on: bool,
    /// Next slot to replace (round robin, skipping the latest).
    next: usize,
}

impl KeepPolicy {
    const WINDOW: u32 = 256;
    const MIN_HITS_OF: u32 = 16;
    const PROBE_EVERY: u32 = 16;

    /// Counts a walk; `hit`: it reused a walk other than the latest whole.
    #[inline]
    fn note(&mut self, hit: bool) {
        self.walks += 1;
        self.hits += u32::from(hit);
        if self.walks == Self::WINDOW {
            self.windows = self.windows.wrapping_add(1);
            self.on = self.hits * Self::MIN_HITS_OF >= Self::WINDOW
                || self.windows.is_multiple_of(Self::PROBE_EVERY);
            self.walks = 0;
            self.hits = 0;
        }
    }
}

impl Walker {
    /// Allocates the caches (≈ 290 KiB, most of it touched only as walks need it).
    pub fn new() -> Walker {
        // All zero: every kept walk empty (`n` 0) and not reusable, which is all a slot needs
        // until a walk is stored in it (`Walk::clear` or a copy first). Clearing them here wrote
        // three pages of each (its hash, check and bound arrays): 24 page faults for every new
        // thread, a fifth of a burst of 300 threads' faults.
        let walks: Box<WalkSet> = boxed_zeroed();
        Walker {
            cache: Box::new(CacheX86_64::new_in()),
            shapes: Shapes::new(),
            walks,
            cur: 0,
            keep: KeepPolicy {
                walks: 0,
                hits: 0,
                windows: 0,
                on: true,
                next: 0,
            },
            fresh: boxed_zeroed(),
            steps: 0,
        }
    }

    /// A kept walk that the walk from `start` would repeat whole (its frame 0 is `start`'s
    /// frame and every word it depends on is unchanged), the latest tried first. `Err` holds
    /// the latest walk's frames known not to match (see [`Walk::verify`]).
    fn whole_reuse(
        &self,
        uw_id: usize,
        bounds: StackBounds,
        start: (u64, u64, u64),
    ) -> Result<usize, usize> {
        let mut hopeless = 0;
        for d in 0..KEPT {
            let i = (self.cur + d) % KEPT;
            let w = &self.walks.0[i];
            if !w.reusable || w.n == 0 || w.unwinder != uw_id || w.bounds != bounds {
                continue;
            }
            let r = w.n - 1;
            if w.ip[r] != start.0 || w.sp[r] != start.1 || (w.needs_bp[r] && w.bp[r] != start.2) {
                continue;
            }
            if d > 0 && !w.inner_words_hold(start.1) {
                continue;
            }
            match w.verify(0, start.1) {
                Ok(()) => return Ok(i),
                Err(f) if d == 0 => hopeless = f + 1,
                Err(_) => {}
            }
        }
        Err(hopeless)
    }

    /// Walks from `(ip, sp, bp)` (a point inside the caller's frame, which is frame 0) and returns
    /// the walk. Stack reads are limited to `[sp, bounds.hi)`. With `reuse`, the previous walk's
    /// matching outer part is reused after verification.
    pub fn walk(
        &mut self,
        uw: &ProcessUnwinder,
        bounds: StackBounds,
        start: (u64, u64, u64),
        reuse: bool,
    ) -> &Walk {
        let lo = start.1;
        let uw_id = uw as *const ProcessUnwinder as usize;
        // prev frames below this are known not to match
        let mut hopeless = 0usize;
        if reuse {
            match self.whole_reuse(uw_id, bounds, start) {
                Ok(i) => {
                    self.keep.note(i != self.cur);
                    self.cur = i;
                    return &self.walks.0[i];
                }
                Err(h) => hopeless = h,
            }
            self.keep.note(false);
        }
        let prev = &self.walks.0[self.cur];
        let fresh = &mut *self.fresh;
        let prev_usable =
            reuse && prev.reusable && prev.unwinder == uw_id && prev.bounds == bounds && prev.n > 0;
        let pn = prev.n;
        let mut addr = FrameAddress::from_instruction_pointer(start.0);
        let mut nx = 0usize;
        let mut overflow = false;
        let mut j = 1usize; // cursor into prev for frames >= 1 (innermost-first numbering)
        let mut k = 0usize;
        let mut state = start;
        let mut matched = None;
        let mut truncated = false;
        loop {
            // Frame 0 was tried against every kept walk above.
            if prev_usable && k > 0 {
                let cand = {
                    while j < pn && prev.sp_at(j) < state.1 {
                        j += 1;
                    }
                    let mut t = j;
                    while t < pn && prev.sp_at(t) == state.1 && prev.ip_at(t) != state.0 {
                        t += 1;
                    }
                    (t < pn && prev.sp_at(t) == state.1).then_some(t)
                };
                if let Some(m) = cand {
                    let r = pn - 1 - m;
                    if m >= hopeless && (!prev.needs_bp[r] || prev.bp[r] == state.2) {
                        match prev.verify(m, lo) {
                            Ok(()) => {
                                matched = Some(m);
                                break;
                            }
                            Err(f) => hopeless = f + 1,
                        }
                    }
                }
            }
            if k == MAX_WALK {
                truncated = true;
                break;
            }
            fresh.ip[k] = state.0;
            fresh.sp[k] = state.1;
            fresh.bp[k] = state.2;
            fresh.xstart[k] = nx as u32;
            let mark = nx;
            let mut below = false;
            let mut read = |a: u64| -> Result<u64, ()> {
                if !bounds.contains_word(a) {
                    return Err(());
                }
                if a < lo {
                    below = true;
                    return Err(());
                }
                // SAFETY: `a` lies in this thread's mapped stack, at or above the stack pointer.
                let v = unsafe { (a as *const u64).read_unaligned() };
                if nx < MAX_XREADS {
                    fresh.xreads[nx] = (a, v);
                    nx += 1;
                } else {
                    overflow = true;
                }
                Ok(v)
            };
            let shape = if reuse {
                self.shapes.get(uw, &mut self.cache, addr)
            } else {
                Shape::Opaque
            };
            let caller = match shape {
                Shape::End => None,
                Shape::Step { .. } => step_by_shape(shape, state, &mut read),
                Shape::Opaque => {
                    let mut regs = UnwindRegsX86_64::new(state.0, state.1, state.2);
                    match uw
                        .framehop
                        .unwind_frame(addr, &mut regs, &mut self.cache, &mut read)
                    {
                        Ok(Some(_)) => Some((regs.ip(), regs.sp(), regs.bp())),
                        Ok(None) | Err(_) => None,
                    }
                }
            };
            self.steps += 1;
            // Frame 0 is only ever matched by a walk starting at the same stack pointer.
            let below = if k > 0 && below { BELOW_START } else { 0 };
            let t = k;
            k += 1;
            let caller =
                caller.and_then(|c| FrameAddress::from_return_address(c.0).map(|a| (c, a)));
            let Some((next, next_addr)) = caller else {
                // The final step: everything it read, and bp unless it ends every walk.
                fresh.flags[t] = below | if shape == Shape::End { 0 } else { USES_BP };
                fresh.raw[t] = 0;
                fresh.bpload[t] = 0;
                break;
            };
            if let Shape::Step { .. } = shape {
                // Only the return address and the loaded bp matter; the step's other reads
                // (saved registers) influence nothing.
                nx = mark;
                fresh.flags[t] = below
                    | if shape.uses_bp() { USES_BP } else { 0 }
                    | if shape.keeps_bp() { KEEPS_BP } else { 0 };
                fresh.raw[t] = next.1 - 8;
                fresh.bpload[t] = shape.bp_load(state.1, state.2).unwrap_or(0);
            } else {
                fresh.flags[t] = below | USES_BP;
                fresh.raw[t] = 0;
                fresh.bpload[t] = 0;
            }
            addr = next_addr;
            state = next;
        }
        fresh.xstart[k] = nx as u32;
        // Where the new walk goes: over the latest walk, or (keeping it) over another one.
        let from = self.cur;
        let to = if reuse && self.keep.on {
            let mut t = self.keep.next % KEPT;
            if t == from {
                t = (t + 1) % KEPT;
            }
            self.keep.next = t + 1;
            t
        } else {
            from
        };
        let (prev, w) = if to == from {
            (None, &mut self.walks.0[to])
        } else {
            let (lo_half, hi_half) = self.walks.0.split_at_mut(from.max(to));
            if from < to {
                (Some(&lo_half[from]), &mut hi_half[0])
            } else {
                (Some(&hi_half[0]), &mut lo_half[to])
            }
        };
        match matched {
            Some(m) => match prev {
                // Keep frames m.. of the previous walk (its `pn - m` outermost), add the new ones.
                None => w.n = pn - m,
                Some(p) => w.copy_outer(p, pn - m),
            },
            None => {
                w.clear();
                w.unwinder = uw_id;
                w.bounds = bounds;
                w.reusable = reuse;
            }
        }
        w.append(fresh, k);
        if overflow || truncated {
            w.reusable = false;
        }
        w.truncated |= truncated;
        self.cur = to;
        &self.walks.0[to]
    }
}

/// One step out of a frame at `(ip, sp, bp)` by its shape: the same arithmetic, checks and
/// reads as the framehop rule of that shape (`UseFramePointer` and the first-frame variant
/// included), so the result is framehop's. `None` ends the walk.
#[inline]
fn step_by_shape(
    shape: Shape,
    (ip, sp, bp): (u64, u64, u64),
    read: &mut impl FnMut(u64) -> Result<u64, ()>,
) -> Option<(u64, u64, u64)> {
    let Shape::Step { cfa, off, bp: rule } = shape else {
        return None;
    };
    let off = i64::from(off);
    let new_sp = match cfa {
        Base::Sp => sp.checked_add_signed(off)?,
        Base::Bp => {
            if bp == 0 {
                return None;
            }
            let s = bp.checked_add_signed(off)?;
            if s <= sp {
                return None;
            }
            s
        }
    };
    let new_bp = match rule {
        BpRule::Keep => bp,
        BpRule::Load { base, off } => {
            let b = match base {
                Base::Sp => sp,
                Base::Bp => bp,
            };
            read(b.checked_add_signed(i64::from(off))?).ok()?
        }
    };
    let ra = read(new_sp.checked_sub(8)?).ok()?;
    if ra == 0 || (new_sp == sp && ra == ip) {
        return None;
    }
    Some((ra, new_sp, new_bp))
}

impl Walker {
    /// Steps from `start` until `stop(ip, sp)` holds for a frame (or the walk ends), without
    /// the walk cache. Returns that frame's `(ip, sp, bp)`.
    pub fn walk_until(
        &mut self,
        uw: &ProcessUnwinder,
        bounds: StackBounds,
        start: (u64, u64, u64),
        max_frames: usize,
        mut stop: impl FnMut(usize, u64, u64) -> bool,
    ) -> Option<(u64, u64, u64)> {
        let lo = start.1;
        let mut read = |a: u64| -> Result<u64, ()> {
            if a < lo || !bounds.contains_word(a) {
                return Err(());
            }
            // SAFETY: `a` lies in this thread's mapped stack, at or above the stack pointer.
            Ok(unsafe { (a as *const u64).read_unaligned() })
        };
        let mut regs = UnwindRegsX86_64::new(start.0, start.1, start.2);
        let mut addr = FrameAddress::from_instruction_pointer(start.0);
        for i in 0..max_frames {
            if stop(i, regs.ip(), regs.sp()) {
                return Some((regs.ip(), regs.sp(), regs.bp()));
            }
            match uw
                .framehop
                .unwind_frame(addr, &mut regs, &mut self.cache, &mut read)
            {
                Ok(Some(ra)) => addr = FrameAddress::from_return_address(ra)?,
                Ok(None) | Err(_) => return None,
            }
        }
        None
    }
}

impl Walker {
    /// The last walk made by [`Walker::walk`].
    #[inline]
    pub fn last(&self) -> &Walk {
        &self.walks.0[self.cur]
    }
}

impl Default for Walker {
    fn default() -> Self {
        Self::new()
    }
}
