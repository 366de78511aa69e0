//! DWARF stack walk with a per-thread *walk cache*.
//!
//! framehop costs ≈15–22 ns per frame even when its rule cache hits. Consecutive allocations of
//! one thread mostly share their outer frames, so the walker keeps the previous walk and reuses
//! its outer part once it is proven identical.
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
//! is ever written.
//!
//! Frames whose shape is known are stepped directly by that shape (the same arithmetic and reads
//! as framehop's rule, without its per-step lookups); framehop steps the others. A walk is stored
//! outermost frame first, with everything derived from its outer part (hashes, the words to
//! check, `needs_bp`) accumulated in that order, so reusing an outer part never moves it: the
//! new inner frames are appended. With the cache off (`reuse == false`) every step is
//! framehop's, which is what the tests compare the cache against.

use super::bounds::StackBounds;
use super::hash::{self, HashState};
use super::process::ProcessUnwinder;
use super::shape::{Base, BpRule, Shape, Shapes};
use framehop::x86_64::{CacheX86_64, UnwindRegsX86_64};
use framehop::{FrameAddress, MustNotAllocateDuringUnwind, Unwinder};

/// Most frames one walk keeps: the recorded frames plus the recorder's own frames.
pub const MAX_WALK: usize = super::MAX_FRAMES + 32;
const MAX_XREADS: usize = MAX_WALK * 4;
/// Words checked: a return address and a saved bp per frame, plus the kept reads.
const MAX_CHECKS: usize = MAX_WALK * 2 + MAX_XREADS;

/// The step out of the frame depends on its bp.
const USES_BP: u8 = 1;
/// The caller's bp is the frame's bp, unchanged.
const KEEPS_BP: u8 = 2;
/// A read of the step was refused for lying below the walk's starting stack pointer.
const BELOW_START: u8 = 4;

/// One walk, stored outermost frame first: index `j` holds frame `n - 1 - j` (frame 0 is the
/// capture point).
pub struct Walk {
    n: usize,
    ip: [u64; MAX_WALK],
    sp: [u64; MAX_WALK],
    bp: [u64; MAX_WALK],
    /// Whether the rest of the walk from this frame outwards depends on its bp.
    needs_bp: [bool; MAX_WALK],
    /// Every `(address, value)` the walk depends on; those of the `j` outermost frames are
    /// `checks[..cend[j]]`.
    checks: [(u64, u64); MAX_CHECKS],
    cend: [u32; MAX_WALK + 1],
    /// `rmin[j]`: lowest address in `checks[..cend[j]]`; 0 when those frames also depend on where
    /// the walk started (a read refused for lying below the start).
    rmin: [u64; MAX_WALK + 1],
    /// `h[j]`: hash state of the `j` outermost frames.
    h: [HashState; MAX_WALK + 1],
    /// The walk stopped at [`MAX_WALK`] frames while the stack went on.
    truncated: bool,
    /// True when the walk may be reused (made with the cache, complete, nothing dropped).
    reusable: bool,
    /// The unwinder and stack the walk was made with.
    unwinder: usize,
    bounds: StackBounds,
}

/// New frames of the walk in progress, innermost first, with what their steps depended on.
struct Fresh {
    ip: [u64; MAX_WALK],
    sp: [u64; MAX_WALK],
    bp: [u64; MAX_WALK],
    /// `USES_BP | KEEPS_BP | BELOW_START` of the step out of each frame.
    flags: [u8; MAX_WALK],
    /// Address the caller's return address was read from (0: not known, see `xreads`).
    raw: [u64; MAX_WALK],
    /// Address the caller's bp was loaded from (0: kept, or not known).
    bpload: [u64; MAX_WALK],
    /// `xstart[i]..xstart[i+1]`: every word the step out of frame i read, kept for steps whose
    /// shape is not known and for the final step.
    xstart: [u32; MAX_WALK + 1],
    xreads: [(u64, u64); MAX_XREADS],
}

/// Allocates a zeroed `T` on the heap, in place (these arrays are too large for small thread
/// stacks).
fn boxed_zeroed<T>() -> Box<T> {
    let layout = std::alloc::Layout::new::<T>();
    // SAFETY: only used for `Walk` and `Fresh`, which are plain integers and booleans (all-zero
    // is a valid value); the layout is non-zero sized, and a null result is handled.
    unsafe {
        let p = std::alloc::alloc_zeroed(layout) as *mut T;
        if p.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        Box::from_raw(p)
    }
}

impl Walk {
    /// Number of frames.
    #[inline]
    pub fn len(&self) -> usize {
        self.n
    }

    /// Instruction pointer of frame `i` (innermost first): the capture point for frame 0,
    /// return addresses after.
    #[inline]
    pub fn ip_at(&self, i: usize) -> u64 {
        self.ip[self.n - 1 - i]
    }

    /// Stack pointer of frame `i`.
    #[inline]
    pub fn sp_at(&self, i: usize) -> u64 {
        self.sp[self.n - 1 - i]
    }

    /// Hash state of frames `i..n`.
    #[inline]
    pub fn hash_from(&self, i: usize) -> HashState {
        self.h[self.n - i]
    }

    /// True when the stack went on beyond the walk's frame limit.
    #[inline]
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// Copies frames `s..s + out.len()` (innermost first) into `out`.
    #[inline]
    pub fn copy_frames(&self, s: usize, out: &mut [u64]) {
        let top = self.n - 1 - s;
        for (k, o) in out.iter_mut().enumerate() {
            *o = self.ip[top - k];
        }
    }

    /// Checks that every word frames `m..n` depend on still holds its value, for a walk now
    /// starting at stack pointer `lo`. On a mismatch, returns the frame whose step read the
    /// changed word: no frame at or below it can be reused either.
    #[inline]
    fn verify(&self, m: usize, lo: u64) -> Result<(), usize> {
        let j = self.n - m;
        if self.rmin[j] < lo {
            return Err(m);
        }
        let checks = &self.checks[..self.cend[j] as usize];
        // SAFETY: every address was read from this thread's stack, inside `self.bounds` (equal
        // to the current bounds, checked by the caller), by the walk that recorded it, and is
        // at or above `rmin[j] >= lo`, the current stack pointer; that range is mapped.
        let word = |a: u64| unsafe { (a as *const u64).read_unaligned() };
        // Almost every verification succeeds: compare in blocks without a branch per word
        // (the loads of a block overlap), and look for the first change only in a block
        // that has one.
        const BLOCK: usize = 8;
        let mut at = 0;
        for block in checks.chunks(BLOCK) {
            let diff = block.iter().fold(0, |d, &(a, v)| d | (word(a) ^ v));
            if diff != 0 {
                let p = at + block.iter().position(|&(a, v)| word(a) != v).unwrap_or(0);
                // The outermost frame whose checks end after position p.
                let mut r = 0;
                while self.cend[r + 1] as usize <= p {
                    r += 1;
                }
                return Err(self.n - 1 - r);
            }
            at += BLOCK;
        }
        Ok(())
    }

    /// Appends `fresh` frames `0..k` as the walk's new innermost frames (the outermost of them
    /// first), deriving what the walk depends on from what each step read.
    fn append(&mut self, fresh: &Fresh, k: usize) {
        for i in (0..k).rev() {
            let j = self.n;
            if j == MAX_WALK {
                // Only after a reused outer part: the stack is deeper than the limit.
                self.cut_outer(1);
            }
            let j = self.n;
            let f = fresh.flags[i];
            let outer = j.checked_sub(1);
            let outer_needs = outer.is_some_and(|o| self.needs_bp[o]);
            self.needs_bp[j] = f & USES_BP != 0 || (f & KEEPS_BP != 0 && outer_needs);
            let mut pos = self.cend[j] as usize;
            let mut lo = self.rmin[j];
            let mut push = |w: &mut Walk, c: (u64, u64)| {
                if pos < MAX_CHECKS {
                    w.checks[pos] = c;
                    pos += 1;
                    lo = lo.min(c.0);
                } else {
                    w.reusable = false;
                }
            };
            if let Some(o) = outer {
                if fresh.raw[i] != 0 {
                    push(self, (fresh.raw[i], self.ip[o]));
                }
                if outer_needs && fresh.bpload[i] != 0 {
                    push(self, (fresh.bpload[i], self.bp[o]));
                }
            }
            for &x in &fresh.xreads[fresh.xstart[i] as usize..fresh.xstart[i + 1] as usize] {
                push(self, x);
            }
            if f & BELOW_START != 0 {
                lo = 0;
            }
            self.ip[j] = fresh.ip[i];
            self.sp[j] = fresh.sp[i];
            self.bp[j] = fresh.bp[i];
            self.cend[j + 1] = pos as u32;
            self.rmin[j + 1] = lo;
            self.h[j + 1] = hash::push(self.h[j], fresh.ip[i]);
            self.n = j + 1;
        }
    }

    /// Drops the `d` outermost frames (the stack is deeper than the walk may be): the walk is
    /// truncated and will not be reused.
    fn cut_outer(&mut self, d: usize) {
        let n = self.n;
        self.ip.copy_within(d..n, 0);
        self.sp.copy_within(d..n, 0);
        self.bp.copy_within(d..n, 0);
        self.needs_bp.copy_within(d..n, 0);
        self.n = n - d;
        for j in 0..self.n {
            self.h[j + 1] = hash::push(self.h[j], self.ip[j]);
        }
        self.truncated = true;
        self.reusable = false;
    }

    /// Empties the walk.
    fn clear(&mut self) {
        self.n = 0;
        self.cend[0] = 0;
        self.rmin[0] = u64::MAX;
        self.h[0] = hash::EMPTY;
        self.truncated = false;
        self.reusable = true;
    }
}

/// Per-thread walking state: framehop's rule cache, step shapes, the previous walk, and
/// scratch space.
pub struct Walker {
    cache: Box<CacheX86_64<MustNotAllocateDuringUnwind>>,
    shapes: Shapes,
    walk: Box<Walk>,
    fresh: Box<Fresh>,
    /// Frames unwound (not taken from the cache), for tests and benchmarks.
    pub steps: u64,
}

impl Walker {
    /// Allocates the caches (≈ 150 KiB).
    pub fn new() -> Walker {
        let mut walk: Box<Walk> = boxed_zeroed();
        walk.clear();
        walk.reusable = false;
        Walker {
            cache: Box::new(CacheX86_64::new_in()),
            shapes: Shapes::new(),
            walk,
            fresh: boxed_zeroed(),
            steps: 0,
        }
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
        let prev = &mut *self.walk;
        let fresh = &mut *self.fresh;
        let prev_usable =
            reuse && prev.reusable && prev.unwinder == uw_id && prev.bounds == bounds && prev.n > 0;
        let pn = prev.n;
        let mut addr = FrameAddress::from_instruction_pointer(start.0);
        let mut nx = 0usize;
        let mut overflow = false;
        let mut j = 1usize; // cursor into prev for frames >= 1 (innermost-first numbering)
        let mut hopeless = 0usize; // prev frames below this are known not to match
        let mut k = 0usize;
        let mut state = start;
        let mut matched = None;
        let mut truncated = false;
        loop {
            if prev_usable {
                let cand = if k == 0 {
                    (prev.ip_at(0) == state.0 && prev.sp_at(0) == state.1).then_some(0)
                } else {
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
        match matched {
            Some(m) => {
                // Keep frames m.. of the previous walk (its `pn - m` outermost), add the new ones.
                prev.n = pn - m;
            }
            None => {
                prev.clear();
                prev.unwinder = uw_id;
                prev.bounds = bounds;
                prev.reusable = reuse;
            }
        }
        prev.append(fresh, k);
        if overflow || truncated {
            prev.reusable = false;
        }
        prev.truncated |= truncated;
        prev
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
        &self.walk
    }
}

impl Default for Walker {
    fn default() -> Self {
        Self::new()
    }
}
