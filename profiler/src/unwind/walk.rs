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

use super::bounds::StackBounds;
use super::hash::{self, HashState};
use super::process::ProcessUnwinder;
use super::shape::{Shape, Shapes};
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

/// One walk: frames, what they depend on, and suffix hashes.
pub struct Walk {
    /// Number of frames in the walk.
    pub n: usize,
    /// Instruction pointer of each frame: the capture point for frame 0, return addresses after.
    pub ip: [u64; MAX_WALK],
    sp: [u64; MAX_WALK],
    bp: [u64; MAX_WALK],
    /// `USES_BP | KEEPS_BP | BELOW_START` of the step out of each frame.
    flags: [u8; MAX_WALK],
    /// Address the step out of frame i loaded frame i+1's bp from; 0 when it did not.
    bpload: [u64; MAX_WALK],
    /// Address of frame i+1's return address (0 when not known: raw-DWARF and final steps).
    raw: [u64; MAX_WALK],
    /// `bpload[i]` when frame i+1's bp matters to the rest of the walk, else 0.
    bpw: [u64; MAX_WALK],
    /// Whether the rest of the walk from frame i depends on `bp[i]`.
    needs_bp: [bool; MAX_WALK],
    /// `xstart[i]..xstart[i+1]`: every word read by the step out of frame i, kept for
    /// raw-DWARF and final steps only.
    xstart: [u32; MAX_WALK + 1],
    xreads: [(u64, u64); MAX_XREADS],
    /// Lowest address of a word the walk depends on from frame i on; 0 when it also depends on
    /// where the walk started (a read refused for lying below the start).
    rmin: [u64; MAX_WALK + 1],
    /// Every `(address, value)` the walk depends on, outermost frame first, so that the words
    /// of frames `i..n` are `checks[..cend[i]]` whatever the inner frames are.
    checks: [(u64, u64); MAX_CHECKS],
    cend: [u32; MAX_WALK + 1],
    /// `h[i]`: hash state of frames `i..n`.
    pub h: [HashState; MAX_WALK + 1],
    /// The walk stopped at [`MAX_WALK`] frames while the stack went on.
    pub truncated: bool,
    /// True when the walk may be reused (complete, nothing dropped from its records).
    reusable: bool,
    /// The unwinder and stack the walk was made with.
    unwinder: usize,
    bounds: StackBounds,
}

impl Walk {
    fn new_boxed() -> Box<Walk> {
        // Built in place: the arrays are too large for small thread stacks.
        let layout = std::alloc::Layout::new::<Walk>();
        // SAFETY: `Walk` is plain integers and booleans (all-zero is a valid value), the layout
        // is non-zero sized, and a null result is handled.
        unsafe {
            let p = std::alloc::alloc_zeroed(layout) as *mut Walk;
            if p.is_null() {
                std::alloc::handle_alloc_error(layout);
            }
            Box::from_raw(p)
        }
    }

    /// Stack pointer of frame `i`.
    pub fn sp_at(&self, i: usize) -> u64 {
        self.sp[i]
    }

    /// Computes `needs_bp`, `bpw`, `rmin`, `checks`, `cend` and `h` of frames `0..upto` from
    /// those of frame `upto` (or from the end when `upto == n`).
    fn finish_below(&mut self, upto: usize) {
        let n = self.n;
        if upto >= n {
            self.h[n] = hash::EMPTY;
            self.rmin[n] = u64::MAX;
            self.cend[n] = 0;
        }
        let mut pos = self.cend[upto.min(n)] as usize;
        for t in (0..upto.min(n)).rev() {
            let last = t + 1 == n;
            let f = self.flags[t];
            let next_needs = !last && self.needs_bp[t + 1];
            self.needs_bp[t] = f & USES_BP != 0 || (f & KEEPS_BP != 0 && next_needs);
            self.bpw[t] = if next_needs { self.bpload[t] } else { 0 };
            let mut lo = self.rmin[t + 1];
            if last {
                // A truncated walk's last step succeeded, but its caller is not recorded.
                self.raw[t] = 0;
            }
            if self.raw[t] != 0 {
                self.checks[pos] = (self.raw[t], self.ip[t + 1]);
                pos += 1;
            }
            if self.bpw[t] != 0 {
                self.checks[pos] = (self.bpw[t], self.bp[t + 1]);
                pos += 1;
            }
            let x = self.xstart[t] as usize..self.xstart[t + 1] as usize;
            let added = x.len();
            self.checks[pos..pos + added].copy_from_slice(&self.xreads[x]);
            pos += added;
            for &(a, _) in &self.checks[self.cend[t + 1] as usize..pos] {
                lo = lo.min(a);
            }
            if f & BELOW_START != 0 {
                lo = 0;
            }
            self.rmin[t] = lo;
            self.cend[t] = pos as u32;
            self.h[t] = hash::push(self.h[t + 1], self.ip[t]);
        }
    }

    /// Checks that every word the walk depends on from frame `m` on still holds its value, for a
    /// walk now starting at stack pointer `lo`. On a mismatch, returns the frame whose step read
    /// the changed word: no frame at or below it can be reused either.
    #[inline]
    fn verify(&self, m: usize, lo: u64) -> Result<(), usize> {
        if self.rmin[m] < lo {
            return Err(m);
        }
        let checks = &self.checks[..self.cend[m] as usize];
        // SAFETY: every address was read from this thread's stack, inside `self.bounds` (equal
        // to the current bounds, checked by the caller), by the walk that recorded it, and is
        // at or above `rmin[m] >= lo`, the current stack pointer; that range is mapped.
        let same = |&(a, v): &(u64, u64)| unsafe { (a as *const u64).read_unaligned() } == v;
        match checks.iter().position(|c| !same(c)) {
            None => Ok(()),
            Some(p) => {
                // The frame whose words hold position p: cend decreases outwards.
                let mut t = self.n - 1;
                while self.cend[t] as usize <= p {
                    t -= 1;
                }
                Err(t)
            }
        }
    }
}

/// Per-thread walking state: framehop's rule cache, step shapes, the previous walk, and
/// scratch space.
pub struct Walker {
    cache: Box<CacheX86_64<MustNotAllocateDuringUnwind>>,
    shapes: Shapes,
    prev: Box<Walk>,
    next: Box<Walk>,
    /// Steps made with framehop (frames not taken from the cache), for tests and benchmarks.
    pub steps: u64,
}

impl Walker {
    /// Allocates the caches (≈ 150 KiB).
    pub fn new() -> Walker {
        Walker {
            cache: Box::new(CacheX86_64::new_in()),
            shapes: Shapes::new(),
            prev: Walk::new_boxed(),
            next: Walk::new_boxed(),
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
        let prev = &mut *self.prev;
        let next = &mut *self.next;
        let prev_usable =
            reuse && prev.reusable && prev.unwinder == uw_id && prev.bounds == bounds && prev.n > 0;
        let mut regs = UnwindRegsX86_64::new(start.0, start.1, start.2);
        let mut addr = FrameAddress::from_instruction_pointer(start.0);
        let mut nx = 0usize;
        let mut overflow = false;
        let mut j = 1usize; // cursor into prev for frames >= 1
        let mut hopeless = 0usize; // prev frames below this are known not to match
        let mut k = 0usize;
        let mut state = start;
        let mut truncated = false;
        loop {
            if prev_usable {
                let cand = if k == 0 {
                    (prev.ip[0] == state.0 && prev.sp[0] == state.1).then_some(0)
                } else {
                    while j < prev.n && prev.sp[j] < state.1 {
                        j += 1;
                    }
                    let mut t = j;
                    while t < prev.n && prev.sp[t] == state.1 && prev.ip[t] != state.0 {
                        t += 1;
                    }
                    (t < prev.n && prev.sp[t] == state.1).then_some(t)
                };
                if let Some(m) = cand {
                    if m >= hopeless && (!prev.needs_bp[m] || prev.bp[m] == state.2) {
                        match prev.verify(m, lo) {
                            Ok(()) => {
                                if k == m && prev.xstart[m] as usize == nx && !overflow {
                                    // Same depth (the common case): only the new frames
                                    // change, in place.
                                    replace_prefix(prev, next, k);
                                } else {
                                    splice(prev, next, k, m, nx, overflow);
                                    std::mem::swap(&mut self.prev, &mut self.next);
                                }
                                return &self.prev;
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
            next.ip[k] = state.0;
            next.sp[k] = state.1;
            next.bp[k] = state.2;
            next.xstart[k] = nx as u32;
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
                    next.xreads[nx] = (a, v);
                    nx += 1;
                } else {
                    overflow = true;
                }
                Ok(v)
            };
            let r = uw
                .framehop
                .unwind_frame(addr, &mut regs, &mut self.cache, &mut read);
            self.steps += 1;
            let shape = self.shapes.get(uw, &mut self.cache, addr);
            // Frame 0 is only ever matched by a walk starting at the same stack pointer.
            let below = if k > 0 && below { BELOW_START } else { 0 };
            let t = k;
            k += 1;
            let caller = match r {
                Ok(Some(ra)) => FrameAddress::from_return_address(ra),
                _ => None,
            };
            let Some(caller) = caller else {
                // The final step: everything it read, and bp unless it ends every walk.
                next.flags[t] = below | if shape == Shape::End { 0 } else { USES_BP };
                next.raw[t] = 0;
                next.bpload[t] = 0;
                break;
            };
            let (sp, bp) = (regs.sp(), regs.bp());
            if let Shape::Step { .. } = shape {
                // Only the return address and the loaded bp matter; the step's other reads
                // (saved registers) influence nothing.
                nx = mark;
                next.flags[t] = below
                    | if shape.uses_bp() { USES_BP } else { 0 }
                    | if shape.keeps_bp() { KEEPS_BP } else { 0 };
                next.raw[t] = sp - 8;
                next.bpload[t] = shape.bp_load(state.1, state.2).unwrap_or(0);
            } else {
                next.flags[t] = below | USES_BP;
                next.raw[t] = 0;
                next.bpload[t] = 0;
            }
            addr = caller;
            state = (regs.ip(), sp, bp);
        }
        next.n = k;
        next.xstart[k] = nx as u32;
        next.truncated = truncated;
        next.reusable = !overflow && !truncated;
        next.unwinder = uw_id;
        next.bounds = bounds;
        next.finish_below(k);
        std::mem::swap(&mut self.prev, &mut self.next);
        &self.prev
    }
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

impl Default for Walker {
    fn default() -> Self {
        Self::new()
    }
}

/// Overwrites `prev`'s first `k` frames (whose reads take as many slots as `next`'s) with
/// `next`'s.
fn replace_prefix(prev: &mut Walk, next: &Walk, k: usize) {
    if k == 0 {
        return;
    }
    prev.ip[..k].copy_from_slice(&next.ip[..k]);
    prev.sp[..k].copy_from_slice(&next.sp[..k]);
    prev.bp[..k].copy_from_slice(&next.bp[..k]);
    prev.flags[..k].copy_from_slice(&next.flags[..k]);
    prev.bpload[..k].copy_from_slice(&next.bpload[..k]);
    prev.raw[..k].copy_from_slice(&next.raw[..k]);
    prev.xstart[..k].copy_from_slice(&next.xstart[..k]);
    let r = prev.xstart[k] as usize;
    prev.xreads[..r].copy_from_slice(&next.xreads[..r]);
    prev.finish_below(k);
}

/// Builds in `next` the walk made of `next`'s first `k` frames (with `nx` reads kept) followed
/// by `prev`'s frames from `m` on.
fn splice(prev: &Walk, next: &mut Walk, k: usize, m: usize, nx: usize, overflow: bool) {
    let tail = prev.n - m;
    let n = (k + tail).min(MAX_WALK);
    let take = n - k;
    next.ip[k..n].copy_from_slice(&prev.ip[m..m + take]);
    next.sp[k..n].copy_from_slice(&prev.sp[m..m + take]);
    next.bp[k..n].copy_from_slice(&prev.bp[m..m + take]);
    next.flags[k..n].copy_from_slice(&prev.flags[m..m + take]);
    next.bpload[k..n].copy_from_slice(&prev.bpload[m..m + take]);
    next.raw[k..n].copy_from_slice(&prev.raw[m..m + take]);
    next.bpw[k..n].copy_from_slice(&prev.bpw[m..m + take]);
    next.needs_bp[k..n].copy_from_slice(&prev.needs_bp[m..m + take]);
    next.rmin[k..=n].copy_from_slice(&prev.rmin[m..=m + take]);
    next.cend[k..=n].copy_from_slice(&prev.cend[m..=m + take]);
    let c = prev.cend[m] as usize;
    next.checks[..c].copy_from_slice(&prev.checks[..c]);
    let r0 = prev.xstart[m] as usize;
    let r1 = prev.xstart[m + take] as usize;
    let fits = !overflow && nx + (r1 - r0) <= MAX_XREADS;
    let copied = if fits { r1 - r0 } else { 0 };
    next.xreads[nx..nx + copied].copy_from_slice(&prev.xreads[r0..r0 + copied]);
    for i in 0..=take {
        let off = prev.xstart[m + i] as usize - r0;
        next.xstart[k + i] = (nx + off.min(copied)) as u32;
    }
    next.n = n;
    // Deeper than the limit: cut like an uncached walk would be, and never reused.
    next.truncated = take < tail;
    next.reusable = fits && !next.truncated;
    next.unwinder = prev.unwinder;
    next.bounds = prev.bounds;
    if take == tail {
        next.h[k..=n].copy_from_slice(&prev.h[m..=prev.n]);
        next.finish_below(k);
    } else {
        next.finish_below(n);
    }
}
