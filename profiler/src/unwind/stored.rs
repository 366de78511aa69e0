//! One stored walk: its frames, outermost first, and what the rest of the walk from each frame
//! depends on (the stack words it read, whether it needs the frame's `rbp`), with the checks
//! that decide whether an outer part may be reused ([`Walk::verify`]) and the operations that
//! build a walk from a reused outer part and new inner frames. The walker and its cache policy
//! are in [`super::walk`].

use super::bounds::StackBounds;
use super::hash::{self, HashState};

/// Most frames one walk keeps: the recorded frames plus the recorder's own frames.
pub const MAX_WALK: usize = super::MAX_FRAMES + 32;
pub(super) const MAX_XREADS: usize = MAX_WALK * 4;
/// Words checked: a return address and a saved bp per frame, plus the kept reads.
pub(super) const MAX_CHECKS: usize = MAX_WALK * 2 + MAX_XREADS;

/// The step out of the frame depends on its bp.
pub(super) const USES_BP: u8 = 1;
/// The caller's bp is the frame's bp, unchanged.
pub(super) const KEEPS_BP: u8 = 2;
/// A read of the step was refused for lying below the walk's starting stack pointer.
pub(super) const BELOW_START: u8 = 4;

/// One walk, stored outermost frame first: index `j` holds frame `n - 1 - j` (frame 0 is the
/// capture point).
pub struct Walk {
    pub(super) n: usize,
    pub(super) ip: [u64; MAX_WALK],
    pub(super) sp: [u64; MAX_WALK],
    pub(super) bp: [u64; MAX_WALK],
    /// Whether the rest of the walk from this frame outwards depends on its bp.
    pub(super) needs_bp: [bool; MAX_WALK],
    /// Every `(address, value)` the walk depends on; those of the `j` outermost frames are
    /// `checks[..cend[j]]`.
    pub(super) checks: [(u64, u64); MAX_CHECKS],
    pub(super) cend: [u32; MAX_WALK + 1],
    /// `rmin[j]`: lowest address in `checks[..cend[j]]`; 0 when those frames also depend on where
    /// the walk started (a read refused for lying below the start).
    pub(super) rmin: [u64; MAX_WALK + 1],
    /// `h[j]`: hash state of the `j` outermost frames.
    pub(super) h: [HashState; MAX_WALK + 1],
    /// The walk stopped at [`MAX_WALK`] frames while the stack went on.
    pub(super) truncated: bool,
    /// True when the walk may be reused (made with the cache, complete, nothing dropped).
    pub(super) reusable: bool,
    /// The unwinder and stack the walk was made with.
    pub(super) unwinder: usize,
    pub(super) bounds: StackBounds,
}

/// New frames of the walk in progress, innermost first, with what their steps depended on.
pub(super) struct Fresh {
    pub(super) ip: [u64; MAX_WALK],
    pub(super) sp: [u64; MAX_WALK],
    pub(super) bp: [u64; MAX_WALK],
    /// `USES_BP | KEEPS_BP | BELOW_START` of the step out of each frame.
    pub(super) flags: [u8; MAX_WALK],
    /// Address the caller's return address was read from (0: not known, see `xreads`).
    pub(super) raw: [u64; MAX_WALK],
    /// Address the caller's bp was loaded from (0: kept, or not known).
    pub(super) bpload: [u64; MAX_WALK],
    /// `xstart[i]..xstart[i+1]`: every word the step out of frame i read, kept for steps whose
    /// shape is not known and for the final step.
    pub(super) xstart: [u32; MAX_WALK + 1],
    pub(super) xreads: [(u64, u64); MAX_XREADS],
}

/// Allocates a zeroed `T` on the heap, in place (these arrays are too large for small thread
/// stacks): only for `Walk`, `WalkSet` and `Fresh`, plain integers and booleans (all-zero is a
/// valid value). Its pages are mapped as walks touch them: a thread keeps 8 walks of ≈ 20 KiB
/// and a scratch walk, and one with a few call sites uses a few pages of them (300 threads that
/// allocate a little: 108 → 76 MB, docs/performance.md, speed round 8).
pub(super) fn boxed_zeroed<T>() -> Box<T> {
    // SAFETY: see above; every caller is one of those types.
    unsafe { crate::sys::mem::boxed_zeroed_lazy() }
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
    pub(super) fn verify(&self, m: usize, lo: u64) -> Result<(), usize> {
        let j = self.n - m;
        if self.rmin[j] < lo {
            return Err(m);
        }
        let checks = &self.checks[..self.cend[j] as usize];
        // SAFETY: every address was read from this thread's stack, inside `self.bounds` (equal
        // to the current bounds, checked by the caller), by the walk that recorded it, and is
        // at or above `rmin[j] >= lo`, the current stack pointer; that range is mapped.
        let same = |&(a, v): &(u64, u64)| unsafe { (a as *const u64).read_unaligned() } == v;
        match checks.iter().position(|c| !same(c)) {
            None => Ok(()),
            Some(p) => {
                // The outermost frame whose checks end after position p.
                let mut r = 0;
                while self.cend[r + 1] as usize <= p {
                    r += 1;
                }
                Err(self.n - 1 - r)
            }
        }
    }

    /// True when the last two words the walk depends on (those of its innermost steps, where
    /// walks from different call sites differ) still hold their values: a cheap test before
    /// [`Walk::verify`] compares the rest, outermost first. For a walk now starting at `lo`.
    #[inline]
    pub(super) fn inner_words_hold(&self, lo: u64) -> bool {
        if self.rmin[self.n] < lo {
            return false;
        }
        let end = self.cend[self.n] as usize;
        // SAFETY: as in `verify`: the addresses lie in this thread's stack at or above
        // `rmin[n] >= lo`, the current stack pointer.
        self.checks[end.saturating_sub(2)..end]
            .iter()
            .all(|&(a, v)| unsafe { (a as *const u64).read_unaligned() } == v)
    }

    /// Makes this walk the `keep` outermost frames of `from` (which may be reused).
    pub(super) fn copy_outer(&mut self, from: &Walk, keep: usize) {
        self.ip[..keep].copy_from_slice(&from.ip[..keep]);
        self.sp[..keep].copy_from_slice(&from.sp[..keep]);
        self.bp[..keep].copy_from_slice(&from.bp[..keep]);
        self.needs_bp[..keep].copy_from_slice(&from.needs_bp[..keep]);
        let c = from.cend[keep] as usize;
        self.checks[..c].copy_from_slice(&from.checks[..c]);
        self.cend[..=keep].copy_from_slice(&from.cend[..=keep]);
        self.rmin[..=keep].copy_from_slice(&from.rmin[..=keep]);
        self.h[..=keep].copy_from_slice(&from.h[..=keep]);
        self.n = keep;
        self.truncated = false;
        self.reusable = from.reusable;
        self.unwinder = from.unwinder;
        self.bounds = from.bounds;
    }

    /// Appends `fresh` frames `0..k` as the walk's new innermost frames (the outermost of them
    /// first), deriving what the walk depends on from what each step read.
    pub(super) fn append(&mut self, fresh: &Fresh, k: usize) {
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
    pub(super) fn cut_outer(&mut self, d: usize) {
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
    pub(super) fn clear(&mut self) {
        self.n = 0;
        self.cend[0] = 0;
        self.rmin[0] = u64::MAX;
        self.h[0] = hash::EMPTY;
        self.truncated = false;
        self.reusable = true;
    }
}
