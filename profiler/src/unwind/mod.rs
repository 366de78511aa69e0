//! Stack capture for the recorder.
//!
//! ```text
//!  capture() ── registers (asm) ──► DWARF walk (framehop + walk cache)   default
//!                                └► DWARF out of the recorder, then frame pointers   `fp`
//!  result: return addresses, innermost first, starting at the return address into the caller
//!          of the allocation function; a 128-bit hash of exactly those frames; whether the
//!          stack went on beyond the frame limit
//! ```
//!
//! The DWARF unwinder is process-wide and immutable ([`process`]); per-thread state (framehop's
//! rule cache and the walk cache) lives in a [`ThreadUnwinder`] owned by the thread's recorder
//! state. Stack reads are confined to the thread's stack, between the capturing frame's stack
//! pointer and the top, so a wrong unwind rule can never fault. Return addresses on the stack
//! are never modified.

pub mod bounds;
pub mod hash;
pub mod modules;
pub mod process;
mod shape;
pub mod signal;
mod stored;
mod walk;

pub use bounds::StackBounds;
use std::sync::atomic::{AtomicU64, Ordering};

/// Deepest stack recorded, in frames.
pub const MAX_FRAMES: usize = 128;

/// How stacks are captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnwindMode {
    /// DWARF call-frame information (`.eh_frame`): correct without frame pointers. Default.
    #[default]
    Dwarf,
    /// Frame-pointer chain (after leaving the recorder's own frames by DWARF): faster, but
    /// stacks through code built without frame pointers are cut short or skip callers. A chain
    /// that reaches a return address outside every module's code is cut there, and the walk is
    /// counted as broken ([`fp_walk_stats`]).
    Fp,
}

impl UnwindMode {
    /// The name written into profile headers: `"dwarf"` or `"fp"`.
    pub fn name(self) -> &'static str {
        match self {
            UnwindMode::Dwarf => "dwarf",
            UnwindMode::Fp => "fp",
        }
    }
}

/// Which leading frames belong to the recorder and are left out.
#[derive(Debug, Clone, Copy, Default)]
pub struct Skip {
    /// Leave out frames whose address lies in the module holding the recorder, when that is a
    /// shared library (the preload library); no effect when the recorder is linked into the
    /// executable.
    pub own_module: bool,
    /// Leave out frames whose stack pointer is at or below this value: pass the stack pointer of
    /// the allocation function's own frame (see [`stack_pointer`]). 0 disables.
    pub marker_sp: u64,
}

/// A captured stack, in the `out` array passed to [`ThreadUnwinder::capture`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Captured {
    /// Frames written.
    pub len: usize,
    /// Hash of those frames.
    pub hash: u128,
    /// Stack pointer of the innermost recorded frame (0 when none): stack depth at the call.
    pub sp: u64,
    /// Module generation of the unwinder the walk used: once a module is unloaded, the same
    /// addresses may name other code, so stacks are interned per generation.
    pub generation: u64,
    /// The stack went on beyond [`MAX_FRAMES`] recorded frames (or beyond the walk's own limit):
    /// its outermost frames are missing.
    pub truncated: bool,
}

/// Frame-pointer walks made, process-wide (counted per thread in batches, see
/// [`fp_walk_stats`]).
static FP_WALKS: AtomicU64 = AtomicU64::new(0);
/// Frame-pointer walks that looked broken.
static FP_BROKEN: AtomicU64 = AtomicU64::new(0);
/// A thread adds its counts to the process-wide ones every this many walks.
const FP_BATCH: u32 = 1024;

/// How many frame-pointer walks (`UnwindMode::Fp`) were made and how many looked broken.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FpWalkStats {
    /// Walks made.
    pub walks: u64,
    /// Walks that looked broken: a return address outside every module's executable segments
    /// (the chain ran into data: the walk stops before it), or a chain that stopped at its first
    /// step on a frame pointer that is not one (the caller keeps no frame pointer). Either means
    /// code on the stack was built without frame pointers and its stacks are cut short or
    /// skip callers: `--unwind dwarf` gives them whole.
    pub broken: u64,
}

/// Frame-pointer walk counts of the process so far. Each thread adds its counts every 1024
/// walks and when its unwinder is dropped (thread exit) or [`ThreadUnwinder::flush_counts`]
/// runs, so up to 1023 walks per live thread may not be included yet.
pub fn fp_walk_stats() -> FpWalkStats {
    FpWalkStats {
        walks: FP_WALKS.load(Ordering::Relaxed),
        broken: FP_BROKEN.load(Ordering::Relaxed),
    }
}

/// Reads the current stack pointer.
#[inline(always)]
pub fn stack_pointer() -> u64 {
    let sp: u64;
    // SAFETY: reads a register; no memory access.
    unsafe {
        core::arch::asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack, preserves_flags));
    }
    sp
}

/// Per-thread unwinding state.
pub struct ThreadUnwinder {
    bounds: StackBounds,
    walker: walk::Walker,
    reuse: bool,
    /// Frame-pointer walks and broken ones not yet added to [`FP_WALKS`] / [`FP_BROKEN`].
    fp_walks: u32,
    fp_broken: u32,
    /// Frames of the last frame-pointer walk.
    fp_frames: [u64; MAX_FRAMES],
    /// Where the last capture's frames are: the frame-pointer buffer, or frames
    /// `last_skip..last_skip + len` of the walker's walk.
    last_fp: bool,
    last_skip: usize,
    last_len: usize,
    /// Stack pointer of the last capture's innermost recorded frame (0: none).
    last_sp: u64,
}

impl ThreadUnwinder {
    /// State for a thread whose stack is `bounds`. Allocates ≈ 290 KiB (the kept walks, most
    /// of whose pages are touched only as deep walks need them).
    pub fn new(bounds: StackBounds) -> ThreadUnwinder {
        ThreadUnwinder {
            bounds,
            walker: walk::Walker::new(),
            reuse: true,
            fp_walks: 0,
            fp_broken: 0,
            fp_frames: [0; MAX_FRAMES],
            last_fp: false,
            last_skip: 0,
            last_len: 0,
            last_sp: 0,
        }
    }

    /// Turns the walk cache off (`false`) or on (default). For measurements and tests: the
    /// stacks are the same either way.
    #[inline]
    pub fn set_walk_cache(&mut self, on: bool) {
        self.reuse = on;
    }

    /// DWARF unwinding steps made so far (frames the walk cache did not supply). For tests and
    /// benchmarks.
    pub fn steps(&self) -> u64 {
        self.walker.steps
    }

    /// Adds this thread's frame-pointer walk counts to [`fp_walk_stats`].
    pub fn flush_counts(&mut self) {
        if self.fp_walks != 0 {
            FP_WALKS.fetch_add(u64::from(self.fp_walks), Ordering::Relaxed);
            FP_BROKEN.fetch_add(u64::from(self.fp_broken), Ordering::Relaxed);
            self.fp_walks = 0;
            self.fp_broken = 0;
        }
    }

    /// The thread's stack bounds.
    pub fn bounds(&self) -> StackBounds {
        self.bounds
    }

    /// Captures the calling thread's stack into `out`. Never allocates; never faults.
    ///
    /// Inlined into its caller, whose frame becomes frame 0 (one unwinding step less). Frame 0
    /// is never recorded: the stack starts at the return address into the caller's caller, or
    /// further out as `skip` says.
    #[inline(always)]
    pub fn capture(
        &mut self,
        mode: UnwindMode,
        skip: Skip,
        out: &mut [u64; MAX_FRAMES],
    ) -> Captured {
        let c = self.capture_hash(mode, skip);
        self.last_frames(&mut out[..c.len]);
        c
    }

    /// Like [`ThreadUnwinder::capture`], without copying the frames out: a caller that interns
    /// stacks by hash needs them only for a stack it has not seen, and takes them then with
    /// [`ThreadUnwinder::last_frames`].
    #[inline(always)]
    pub fn capture_hash(&mut self, mode: UnwindMode, skip: Skip) -> Captured {
        let (ip, sp, bp): (u64, u64, u64);
        // SAFETY: reads three registers; `lea` computes an address without accessing memory.
        unsafe {
            core::arch::asm!(
                "lea {ip}, [rip]",
                "mov {sp}, rsp",
                "mov {bp}, rbp",
                ip = out(reg) ip,
                sp = out(reg) sp,
                bp = out(reg) bp,
                options(nomem, nostack, preserves_flags)
            );
        }
        self.last_len = 0;
        self.last_sp = 0;
        let Some(uw) = process::current() else {
            return Captured::default();
        };
        let bounds = self.bounds;
        let skipped = |i: usize, ip: u64, sp: u64| {
            i == 0
                || (skip.own_module && uw.is_own(ip))
                || (skip.marker_sp != 0 && sp <= skip.marker_sp)
        };
        if mode == UnwindMode::Fp {
            // DWARF only out of the recorder's own frames (built without frame pointers),
            // then the frame-pointer chain.
            let Some((ip0, sp0, bp0)) =
                self.walker
                    .walk_until(uw, bounds, (ip, sp, bp), 32, |i, ip, sp| {
                        !skipped(i, ip, sp)
                    })
            else {
                return Captured::default();
            };
            let fp = fp_walk(uw, bounds, sp0, ip0, bp0, &mut self.fp_frames);
            self.fp_walks += 1;
            self.fp_broken += u32::from(fp.broken);
            if self.fp_walks == FP_BATCH {
                self.flush_counts();
            }
            self.last_fp = true;
            self.last_len = fp.len;
            self.last_sp = sp0;
            return Captured {
                len: fp.len,
                hash: hash::hash_frames(&self.fp_frames[..fp.len]),
                sp: sp0,
                generation: uw.generation,
                truncated: fp.truncated,
            };
        }
        let walk = self.walker.walk(uw, bounds, (ip, sp, bp), self.reuse);
        let n = walk.len();
        let mut s = 0;
        while s < n && skipped(s, walk.ip_at(s), walk.sp_at(s)) {
            s += 1;
        }
        if s >= n {
            return Captured::default();
        }
        let len = (n - s).min(MAX_FRAMES);
        let hash = if len == n - s {
            hash::finish(walk.hash_from(s), len)
        } else {
            let mut frames = [0u64; MAX_FRAMES];
            walk.copy_frames(s, &mut frames[..len]);
            hash::hash_frames(&frames[..len])
        };
        let c = Captured {
            len,
            hash,
            sp: walk.sp_at(s),
            generation: uw.generation,
            truncated: walk.truncated() || len < n - s,
        };
        self.last_fp = false;
        self.last_skip = s;
        self.last_len = len;
        self.last_sp = c.sp;
        c
    }

    /// Stack pointer of the last capture's innermost recorded frame: the stack pointer the
    /// caller of the hooked function has when that call returns (0 when nothing was captured).
    pub fn last_sp(&self) -> u64 {
        self.last_sp
    }

    /// Canonical frame addresses of the last capture's first recorded frames, innermost first,
    /// into `out`; returns how many were written. The CFA of recorded frame `i` is the stack
    /// pointer its caller has once it returns (the `sp` of frame `i + 1`), so the function of
    /// frame `i` is still running exactly while the stack pointer stays below it. None for a
    /// frame-pointer capture (its walk keeps no stack pointers), nor for the outermost frame.
    pub fn last_cfas(&self, out: &mut [u64]) -> usize {
        if self.last_fp || self.last_len == 0 {
            return 0;
        }
        let w = self.walker.last();
        let first = self.last_skip + 1;
        let n = w
            .len()
            .saturating_sub(first)
            .min(out.len())
            .min(self.last_len);
        for (i, o) in out[..n].iter_mut().enumerate() {
            *o = w.sp_at(first + i);
        }
        n
    }

    /// Copies the first frames (return addresses) of the last capture into `out`, innermost
    /// first; returns how many were written (at most the capture's length).
    pub fn last_ips(&self, out: &mut [u64]) -> usize {
        let n = out.len().min(self.last_len);
        if self.last_fp {
            out[..n].copy_from_slice(&self.fp_frames[..n]);
        } else {
            self.walker
                .last()
                .copy_frames(self.last_skip, &mut out[..n]);
        }
        n
    }

    /// Copies the frames of the last capture (its `len` of them, innermost first) into `out`,
    /// which must hold exactly that many.
    #[inline]
    pub fn last_frames(&self, out: &mut [u64]) {
        debug_assert_eq!(out.len(), self.last_len);
        let len = out.len().min(self.last_len);
        if self.last_fp {
            out[..len].copy_from_slice(&self.fp_frames[..len]);
        } else {
            self.walker
                .last()
                .copy_frames(self.last_skip, &mut out[..len]);
        }
    }
}

impl Drop for ThreadUnwinder {
    fn drop(&mut self) {
        self.flush_counts();
    }
}

/// Result of [`fp_walk`].
struct FpWalk {
    len: usize,
    truncated: bool,
    broken: bool,
}

/// Frame-pointer walk from a frame at `ip` whose frame pointer is `bp`. Every return address
/// must lie in some module's executable segments: the first one that does not ends the walk
/// (frames pointing into data are never recorded) and marks it broken.
fn fp_walk(
    uw: &process::ProcessUnwinder,
    bounds: StackBounds,
    sp: u64,
    ip: u64,
    mut bp: u64,
    out: &mut [u64; MAX_FRAMES],
) -> FpWalk {
    out[0] = ip;
    let mut w = FpWalk {
        len: 1,
        truncated: false,
        broken: false,
    };
    let mut floor = sp;
    // bp == 0 is the outermost frame (`_start` and glibc's thread start clear it).
    while bp != 0 {
        if bp < floor || bp & 7 != 0 || !bounds.contains_word(bp) || !bounds.contains_word(bp + 8) {
            // Not a frame pointer. Past the first frame this is usually a library without
            // frame pointers near the outermost frames (glibc's start code); at the first one,
            // the caller keeps none.
            w.broken = w.len == 1;
            break;
        }
        // SAFETY: both words lie inside this thread's stack, above the current stack pointer.
        let (next_bp, ra) = unsafe { (*(bp as *const u64), *((bp + 8) as *const u64)) };
        if ra == 0 {
            break;
        }
        if !uw.knows(ra) {
            w.broken = true;
            break;
        }
        if w.len == MAX_FRAMES {
            w.truncated = true;
            break;
        }
        out[w.len] = ra;
        w.len += 1;
        if next_bp != 0 && next_bp <= bp {
            break;
        }
        floor = bp + 16;
        bp = next_bp;
    }
    w
}

#[cfg(test)]
mod tests;
