//! Stack capture cost per call at ~24 and ~50 frames: DWARF with and without the walk cache, repeated and
//! varying stacks, a frame below which rbp changes at every call (what a loop in code without
//! frame pointers does), and frame pointers (which stop where a frame without them is met: this
//! binary, like every Rust release build, has none). Also the frames unwound per capture, i.e.
//! not taken from the walk cache. A measurement, not an assertion:
//! `cargo bench -p tidemark --bench capture`.

use std::hint::black_box;
use tidemark::unwind::{process, Skip, StackBounds, ThreadUnwinder, UnwindMode, MAX_FRAMES};

// `bench_rbp_frame(f, ctx, rbp)`: calls `f(ctx)` with rbp = `rbp`, saving and restoring it as
// gcc does when a loop keeps a value in rbp (no frame pointer: CFA = rsp + 16).
std::arch::global_asm!(
    ".text",
    "bench_rbp_frame:",
    ".cfi_startproc",
    "push rbp",
    ".cfi_def_cfa_offset 16",
    ".cfi_offset rbp, -16",
    "mov rbp, rdx",
    "mov rax, rdi",
    "mov rdi, rsi",
    "call rax",
    "pop rbp",
    ".cfi_def_cfa_offset 8",
    "ret",
    ".cfi_endproc",
);

extern "C" {
    fn bench_rbp_frame(
        f: extern "C" fn(*mut std::ffi::c_void),
        ctx: *mut std::ffi::c_void,
        rbp: u64,
    );
}

struct Ctx<'a> {
    t: &'a mut ThreadUnwinder,
    mode: UnwindMode,
    frames: usize,
}

extern "C" fn leaf_through_asm(ctx: *mut std::ffi::c_void) {
    // SAFETY: `ctx` is the `Ctx` that `middle` passed through `bench_rbp_frame`.
    let ctx = unsafe { &mut *(ctx as *mut Ctx) };
    ctx.frames = leaf(ctx.t, ctx.mode);
}

#[inline(never)]
fn leaf(t: &mut ThreadUnwinder, mode: UnwindMode) -> usize {
    let mut out = [0u64; MAX_FRAMES];
    black_box(t.capture(mode, Skip::default(), &mut out).len)
}

#[inline(never)]
fn middle(t: &mut ThreadUnwinder, mode: UnwindMode, depth: usize, rbp: Option<u64>) -> usize {
    let r = if depth > 0 {
        middle(t, mode, depth - 1, rbp)
    } else if let Some(rbp) = rbp {
        let mut ctx = Ctx { t, mode, frames: 0 };
        // SAFETY: `bench_rbp_frame` follows the C calling convention and restores rbp.
        unsafe {
            bench_rbp_frame(
                leaf_through_asm,
                (&mut ctx as *mut Ctx).cast(),
                black_box(rbp),
            )
        };
        ctx.frames
    } else {
        leaf(t, mode)
    };
    black_box(r)
}

/// Mean time per capture, frames per capture, frames unwound per capture.
#[inline(never)]
fn timed(
    t: &mut ThreadUnwinder,
    mode: UnwindMode,
    depth: usize,
    vary: bool,
    rbp: bool,
) -> (f64, usize, f64) {
    let n = 200_000;
    let steps0 = t.steps();
    let t0 = std::time::Instant::now();
    let mut frames = 0;
    for i in 0..n {
        let d = if vary { depth + (i & 7) } else { depth };
        let r = rbp.then_some((i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        frames = middle(t, mode, d, r);
    }
    let ns = t0.elapsed().as_nanos() as f64 / n as f64;
    (ns, frames, (t.steps() - steps0) as f64 / n as f64)
}

fn main() {
    process::rebuild();
    let mut t = ThreadUnwinder::new(StackBounds::current());
    for (mode, cache, vary, rbp, depth) in [
        (UnwindMode::Dwarf, true, false, false, 14),
        (UnwindMode::Dwarf, true, false, true, 14),
        (UnwindMode::Dwarf, true, true, false, 14),
        (UnwindMode::Dwarf, true, false, true, 40),
        (UnwindMode::Dwarf, true, true, false, 40),
        (UnwindMode::Dwarf, false, false, false, 14),
        (UnwindMode::Fp, true, false, false, 14),
    ] {
        t.set_walk_cache(cache);
        let (ns, frames, steps) = timed(&mut t, mode, depth, vary, rbp);
        println!(
            "{mode:?} walk_cache={cache} vary={vary} rbp_changes={rbp}: {ns:.1} ns per capture \
             of {frames} frames, {steps:.1} frames unwound"
        );
    }
}
