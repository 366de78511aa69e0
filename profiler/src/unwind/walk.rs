//! DWARF stack walk with a per-thread *walk cache*.
//!
//! framehop costs ≈15–22 ns per frame even when its rule cache hits. Consecutive allocations of
//! one thread mostly share their outer frames, so the walker keeps the previous walk: for each
//! frame the register state `(ip, sp, bp)` it was reached with and every stack word read while
//! stepping out of it. Stepping is a pure function of that state and those words (and the
//! module set), so when the new walk reaches a state the previous walk also had, and every word
//! the previous walk read from there on still holds the same value, the rest of the walk is
//! exactly the previous one and is reused. Checking costs one load per word instead of a rule
//! lookup per frame. Nothing on the stack is ever written.

use super::bounds::StackBounds;
use super::hash::{self, HashState};
use super::process::ProcessUnwinder;
use framehop::x86_64::{CacheX86_64, UnwindRegsX86_64};
use framehop::{FrameAddress, MustNotAllocateDuringUnwind, Unwinder};

/// Most states one walk keeps: the recorded frames plus the recorder's own frames.
pub const MAX_WALK: usize = super::MAX_FRAMES + 32;
const MAX_READS: usize = MAX_WALK * 4;

/// One walk: states, reads and suffix hashes.
pub struct Walk {
    /// Number of frames (states) in the walk.
    pub n: usize,
    /// Instruction pointer of each frame: the capture point for frame 0, return addresses after.
    pub ip: [u64; MAX_WALK],
    sp: [u64; MAX_WALK],
    bp: [u64; MAX_WALK],
    /// `rstart[i]..rstart[i+1]`: reads made while stepping out of frame i.
    rstart: [u32; MAX_WALK + 1],
    reads: [(u64, u64); MAX_READS],
    /// `h[i]`: hash state of frames `i..n`.
    pub h: [HashState; MAX_WALK + 1],
    /// True when the walk may be reused (no read was dropped from the log).
    valid: bool,
    /// The unwinder the walk was made with.
    unwinder: usize,
}

impl Walk {
    fn new_boxed() -> Box<Walk> {
        // Built in place: the arrays are too large for small thread stacks.
        let layout = std::alloc::Layout::new::<Walk>();
        // SAFETY: `Walk` is plain integers (all-zero is a valid value), the layout is non-zero
        // sized, and a null result is handled.
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

    fn state(&self, i: usize) -> (u64, u64, u64) {
        (self.ip[i], self.sp[i], self.bp[i])
    }

    /// Recomputes `h[from..]` downwards from `h[n]`.
    fn rehash_below(&mut self, upto: usize) {
        self.h[self.n] = hash::EMPTY;
        let mut h = if upto >= self.n {
            hash::EMPTY
        } else {
            self.h[upto]
        };
        for i in (0..upto.min(self.n)).rev() {
            h = hash::push(h, self.ip[i]);
            self.h[i] = h;
        }
    }
}

/// Per-thread walking state: framehop's rule cache, the previous walk, and scratch space.
pub struct Walker {
    cache: Box<CacheX86_64<MustNotAllocateDuringUnwind>>,
    prev: Box<Walk>,
    next: Box<Walk>,
}

impl Walker {
    /// Allocates the caches (≈ 100 KiB).
    pub fn new() -> Walker {
        Walker {
            cache: Box::new(CacheX86_64::new_in()),
            prev: Walk::new_boxed(),
            next: Walk::new_boxed(),
        }
    }

    /// Walks from `(ip, sp, bp)` (a point inside the caller's frame, which is frame 0) and returns
    /// the walk. Stack reads are limited to `[sp, bounds.hi)`. With `reuse`, the previous walk's
    /// matching tail is reused after verification.
    pub fn walk(
        &mut self,
        uw: &ProcessUnwinder,
        bounds: StackBounds,
        start: (u64, u64, u64),
        reuse: bool,
    ) -> &Walk {
        let lo = start.1;
        let readable = |addr: u64| addr >= lo && bounds.contains_word(addr);
        let uw_id = uw as *const ProcessUnwinder as usize;
        let prev = &mut *self.prev;
        let next = &mut *self.next;
        let prev_usable = reuse && prev.valid && prev.unwinder == uw_id && prev.n > 0;
        let mut regs = UnwindRegsX86_64::new(start.0, start.1, start.2);
        let mut addr = FrameAddress::from_instruction_pointer(start.0);
        let mut nreads = 0usize;
        let mut overflow = false;
        let mut j = 1usize; // cursor into prev for frames >= 1
        let mut k = 0usize;
        let mut state = start;
        loop {
            // Does the previous walk continue from this exact state?
            if prev_usable {
                let cand = if k == 0 {
                    (prev.state(0) == state).then_some(0)
                } else {
                    while j < prev.n && prev.sp[j] < state.1 {
                        j += 1;
                    }
                    let mut c = None;
                    let mut t = j;
                    while t < prev.n && prev.sp[t] == state.1 {
                        if prev.state(t) == state {
                            c = Some(t);
                            break;
                        }
                        t += 1;
                    }
                    c
                };
                if let Some(m) = cand {
                    let tail = &prev.reads[prev.rstart[m] as usize..prev.rstart[prev.n] as usize];
                    let same = tail.iter().all(|&(a, v)| {
                        // SAFETY: `a` is checked to lie in this thread's stack at or above the
                        // current stack pointer, which is mapped.
                        readable(a) && unsafe { (a as *const u64).read_unaligned() } == v
                    });
                    if same {
                        if k == m && prev.rstart[m] as usize == nreads {
                            // Same shape as before (the common case: same call depth): only
                            // the new frames change, in place.
                            replace_prefix(prev, next, k);
                        } else {
                            splice(prev, next, k, m, nreads);
                            std::mem::swap(&mut self.prev, &mut self.next);
                        }
                        return &self.prev;
                    }
                }
            }
            if k == MAX_WALK {
                break;
            }
            next.ip[k] = state.0;
            next.sp[k] = state.1;
            next.bp[k] = state.2;
            next.rstart[k] = nreads as u32;
            k += 1;
            let mut read = |a: u64| -> Result<u64, ()> {
                if !readable(a) {
                    return Err(());
                }
                // SAFETY: `a` lies in this thread's mapped stack (checked above).
                let v = unsafe { (a as *const u64).read_unaligned() };
                if nreads < MAX_READS {
                    next.reads[nreads] = (a, v);
                    nreads += 1;
                } else {
                    overflow = true;
                }
                Ok(v)
            };
            match uw
                .framehop
                .unwind_frame(addr, &mut regs, &mut self.cache, &mut read)
            {
                Ok(Some(ra)) => match FrameAddress::from_return_address(ra) {
                    Some(a) => {
                        addr = a;
                        state = (regs.ip(), regs.sp(), regs.bp());
                    }
                    None => break,
                },
                Ok(None) | Err(_) => break,
            }
        }
        next.n = k;
        next.rstart[k] = nreads as u32;
        next.valid = !overflow;
        next.unwinder = uw_id;
        next.rehash_below(k);
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

/// Overwrites `prev`'s first `k` frames (and their reads, of equal count) with `next`'s.
fn replace_prefix(prev: &mut Walk, next: &Walk, k: usize) {
    if k == 0 {
        return;
    }
    prev.ip[..k].copy_from_slice(&next.ip[..k]);
    prev.sp[..k].copy_from_slice(&next.sp[..k]);
    prev.bp[..k].copy_from_slice(&next.bp[..k]);
    prev.rstart[..k].copy_from_slice(&next.rstart[..k]);
    let r = prev.rstart[k] as usize;
    prev.reads[..r].copy_from_slice(&next.reads[..r]);
    prev.rehash_below(k);
}

/// Builds in `next` the walk made of `next`'s first `k` frames (with `nreads` reads) followed
/// by `prev`'s frames from `m` on.
fn splice(prev: &Walk, next: &mut Walk, k: usize, m: usize, nreads: usize) {
    let tail = prev.n - m;
    let n = (k + tail).min(MAX_WALK);
    let take = n - k;
    next.ip[k..n].copy_from_slice(&prev.ip[m..m + take]);
    next.sp[k..n].copy_from_slice(&prev.sp[m..m + take]);
    next.bp[k..n].copy_from_slice(&prev.bp[m..m + take]);
    let r0 = prev.rstart[m] as usize;
    let r1 = prev.rstart[m + take] as usize;
    let fits = nreads + (r1 - r0) <= MAX_READS;
    let copied = if fits { r1 - r0 } else { 0 };
    next.reads[nreads..nreads + copied].copy_from_slice(&prev.reads[r0..r0 + copied]);
    for i in 0..=take {
        let off = prev.rstart[m + i] as usize - r0;
        next.rstart[k + i] = (nreads + off.min(copied)) as u32;
    }
    next.n = n;
    next.valid = fits && prev.valid;
    next.unwinder = prev.unwinder;
    if take == tail {
        next.h[k..=n].copy_from_slice(&prev.h[m..=prev.n]);
        next.rehash_below(k);
    } else {
        next.rehash_below(n);
    }
}
