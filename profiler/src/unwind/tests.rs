use super::*;
use std::hint::black_box;

fn fn_addr(f: fn(&mut ThreadUnwinder, UnwindMode, usize) -> (Vec<u64>, u128)) -> u64 {
    f as *const () as usize as u64
}

#[inline(never)]
fn leaf(t: &mut ThreadUnwinder, mode: UnwindMode, _depth: usize) -> (Vec<u64>, u128) {
    let mut out = [0u64; MAX_FRAMES];
    let c = t.capture(mode, Skip::default(), &mut out);
    black_box((out[..c.len].to_vec(), c.hash))
}

#[inline(never)]
fn middle(t: &mut ThreadUnwinder, mode: UnwindMode, depth: usize) -> (Vec<u64>, u128) {
    let r = if depth == 0 {
        leaf(t, mode, 0)
    } else {
        middle(t, mode, depth - 1)
    };
    black_box(r)
}

#[inline(never)]
fn outer(t: &mut ThreadUnwinder, mode: UnwindMode, depth: usize) -> (Vec<u64>, u128) {
    let r = middle(t, mode, depth);
    black_box(r)
}

fn setup() -> ThreadUnwinder {
    process::rebuild();
    ThreadUnwinder::new(StackBounds::current())
}

fn within(ra: u64, f: u64) -> bool {
    // A return address lies after the function's start, within its (small) body.
    ra > f && ra < f + 4096
}

#[test]
fn dwarf_stack_names_the_callers() {
    let mut t = setup();
    // `capture` is inlined into `leaf`, whose own frame (frame 0) is never recorded: the stack
    // starts at the return address into leaf's caller.
    let (frames, _) = outer(&mut t, UnwindMode::Dwarf, 2);
    assert!(frames.len() >= 5, "{frames:x?}");
    assert!(within(frames[0], fn_addr(middle)), "{frames:x?}");
    assert!(within(frames[1], fn_addr(middle)));
    assert!(within(frames[2], fn_addr(middle)));
    assert!(within(frames[3], fn_addr(outer)));
}

#[test]
fn walk_cache_gives_the_same_stacks_as_fresh_walks() {
    let mut cached = setup();
    let mut fresh = ThreadUnwinder::new(StackBounds::current());
    fresh.set_walk_cache(false);
    for round in 0..3 {
        for depth in [0usize, 3, 1, 1, 7, 0, 2, 2, 2, 9] {
            let a = outer(&mut cached, UnwindMode::Dwarf, depth);
            let b = outer(&mut fresh, UnwindMode::Dwarf, depth);
            // The two calls come from different call sites in this function only at frames
            // above `outer`; compare the part below.
            let n = depth + 2;
            assert_eq!(a.0[..n], b.0[..n], "round {round} depth {depth}");
            let mut same_site = Vec::new();
            for _ in 0..black_box(3) {
                same_site.push(outer(&mut cached, UnwindMode::Dwarf, depth));
            }
            assert_eq!(same_site[0], same_site[1]);
            assert_eq!(same_site[1], same_site[2]);
            assert_eq!(same_site[0].0[..n], a.0[..n]);
            assert_eq!(hash::hash_frames(&a.0), a.1);
        }
    }
}

/// Two call sites with the same frame layout: the walks from `via_a` and `via_b` have the same
/// instruction and stack pointers up to the return address into them.
/// (Their bodies differ by a constant, so the linker cannot fold them into one.)
#[inline(never)]
fn via_a(t: &mut ThreadUnwinder, depth: usize) -> (Vec<u64>, u128) {
    let r = middle(t, UnwindMode::Dwarf, depth);
    black_box(0xa);
    black_box(r)
}

#[inline(never)]
fn via_b(t: &mut ThreadUnwinder, depth: usize) -> (Vec<u64>, u128) {
    let r = middle(t, UnwindMode::Dwarf, depth);
    black_box(0xb);
    black_box(r)
}

#[inline(never)]
fn via_site(t: &mut ThreadUnwinder, site: usize, depth: usize) -> (Vec<u64>, u128) {
    let r = if black_box(site) == 0 {
        via_a(t, depth)
    } else {
        via_b(t, depth)
    };
    black_box(r)
}

#[test]
fn kept_walks_are_reused_whole_only_while_they_hold() {
    let mut cached = setup();
    let mut fresh = ThreadUnwinder::new(StackBounds::current());
    fresh.set_walk_cache(false);
    let current = || process::current().map(|u| u as *const process::ProcessUnwinder);
    // A cycle of six stacks (fewer than the walks kept): each differs from the one before in
    // its inner frames, and a walk from one site agrees with the other site's in every
    // instruction and stack pointer up to the return address into `via_a` / `via_b`. In the
    // first round, the walk kept for (0, 2) starts like (1, 2)'s but must not be reused for it.
    let cycle = [(0, 2), (0, 5), (1, 2), (1, 5), (0, 0), (1, 0)];
    let mut counted = 0;
    let mut into = [0u64; 2];
    let mut last_uw = None;
    for round in 0..20 {
        let (uw, steps) = (current(), cached.steps());
        for &(site, depth) in &cycle {
            let mut got = Vec::new();
            for t in [&mut cached, &mut fresh] {
                got.push(via_site(t, site, depth));
            }
            // The two calls above come from different call sites in this function (the loop
            // is unrolled): compare the frames below it.
            let n = depth + 3;
            assert_eq!(
                got[0].0[..n],
                got[1].0[..n],
                "round {round}, site {site}, depth {depth}"
            );
            assert_eq!(got[0].0.len(), got[1].0.len());
            assert_eq!(hash::hash_frames(&got[0].0), got[0].1);
            into[site] = got[0].0[depth + 1];
        }
        assert_ne!(into[0], into[1], "the two sites are one function");
        // Past the first round every walk is an earlier one reused whole, unless another test
        // rebuilt the process unwinder meanwhile, which drops every kept walk: a round is
        // counted when the unwinder stayed the same from the start of the round before (whose
        // walks it reuses) to its end.
        if round > 0 && last_uw == Some(uw) && uw == current() {
            assert_eq!(cached.steps(), steps, "frames unwound in round {round}");
            counted += 1;
        }
        last_uw = Some(uw);
    }
    assert!(counted > 5, "only {counted} rounds without a rebuild");
}

#[test]
fn fp_mode_starts_at_the_same_frame() {
    let mut t = setup();
    let (frames, h) = outer(&mut t, UnwindMode::Fp, 1);
    assert!(!frames.is_empty());
    assert!(within(frames[0], fn_addr(middle)));
    assert_eq!(hash::hash_frames(&frames), h);
}

#[inline(never)]
fn via(t: &mut ThreadUnwinder, skip: Skip) -> Captured {
    let mut out = [0u64; MAX_FRAMES];
    black_box(t.capture(UnwindMode::Dwarf, skip, &mut out))
}

#[test]
fn skip_by_marker_drops_inner_frames() {
    let mut t = setup();
    let all = via(&mut t, Skip::default());
    // This function plays the allocation function: frames at or below its stack pointer go.
    let sp = stack_pointer();
    let marker = Skip {
        own_module: false,
        marker_sp: sp,
    };
    let some = via(&mut t, marker);
    assert_eq!(some.len + 1, all.len);
    assert!(some.sp > sp);
}

// Hand-written frames with known unwind information, each calling `f(ctx)` with rbp set to
// the third argument:
// - `tm_sp_frame`: no frame pointer; saves rbp (CFA = rsp + 32, rbp at CFA - 16) and then uses
//   it as an ordinary register, as gcc does in loops with many live values;
// - `tm_fp_frame`: a frame pointer (CFA = rbp + 16) — rbp is its own, the third argument unused;
// - `tm_nocfi_frame`: no unwind information at all, so framehop falls back to rbp
//   (UseFramePointer) with whatever the register holds.
std::arch::global_asm!(
    ".text",
    ".globl tm_sp_frame",
    ".hidden tm_sp_frame",
    ".globl tm_sp_frame_ret",
    ".hidden tm_sp_frame_ret",
    "tm_sp_frame:",
    ".cfi_startproc",
    "push rbp",
    ".cfi_def_cfa_offset 16",
    ".cfi_offset rbp, -16",
    "push rbx",
    ".cfi_def_cfa_offset 24",
    ".cfi_offset rbx, -24",
    "sub rsp, 8",
    ".cfi_def_cfa_offset 32",
    "mov rbp, rdx",
    "mov rax, rdi",
    "mov rdi, rsi",
    "call rax",
    "tm_sp_frame_ret:",
    "add rsp, 8",
    ".cfi_def_cfa_offset 24",
    "pop rbx",
    ".cfi_def_cfa_offset 16",
    "pop rbp",
    ".cfi_def_cfa_offset 8",
    "ret",
    ".cfi_endproc",
    ".globl tm_fp_frame",
    ".hidden tm_fp_frame",
    ".globl tm_fp_frame_ret",
    ".hidden tm_fp_frame_ret",
    "tm_fp_frame:",
    ".cfi_startproc",
    "push rbp",
    ".cfi_def_cfa_offset 16",
    ".cfi_offset rbp, -16",
    "mov rbp, rsp",
    ".cfi_def_cfa_register rbp",
    "mov rax, rdi",
    "mov rdi, rsi",
    "call rax",
    "tm_fp_frame_ret:",
    "pop rbp",
    ".cfi_def_cfa rsp, 8",
    "ret",
    ".cfi_endproc",
    ".globl tm_nocfi_frame",
    ".hidden tm_nocfi_frame",
    ".globl tm_nocfi_frame_ret",
    ".hidden tm_nocfi_frame_ret",
    "tm_nocfi_frame:",
    "push rbp",
    "push rbx",
    "sub rsp, 8",
    "mov rbp, rdx",
    "mov rax, rdi",
    "mov rdi, rsi",
    "call rax",
    "tm_nocfi_frame_ret:",
    "add rsp, 8",
    "pop rbx",
    "pop rbp",
    "ret",
);

type Callback = extern "C" fn(*mut std::ffi::c_void);

extern "C" {
    fn tm_sp_frame(f: Callback, ctx: *mut std::ffi::c_void, rbp: u64);
    fn tm_fp_frame(f: Callback, ctx: *mut std::ffi::c_void, rbp: u64);
    fn tm_nocfi_frame(f: Callback, ctx: *mut std::ffi::c_void, rbp: u64);
    static tm_sp_frame_ret: u8;
    static tm_fp_frame_ret: u8;
    static tm_nocfi_frame_ret: u8;
}

/// Two unwinders of one thread, cached and not, and the stacks they captured last.
struct Ctx {
    cached: ThreadUnwinder,
    fresh: ThreadUnwinder,
    got: Option<(Vec<u64>, Vec<u64>)>,
}

extern "C" fn capture_both(ctx: *mut std::ffi::c_void) {
    // SAFETY: `ctx` is the live `Ctx` passed through the assembly frame by `through`.
    let ctx = unsafe { &mut *(ctx as *mut Ctx) };
    let mut out = [0u64; MAX_FRAMES];
    let a = ctx
        .cached
        .capture(UnwindMode::Dwarf, Skip::default(), &mut out);
    let a = out[..a.len].to_vec();
    let b = ctx
        .fresh
        .capture(UnwindMode::Dwarf, Skip::default(), &mut out);
    let b = out[..b.len].to_vec();
    ctx.got = Some((a, b));
}

/// Calls `capture_both` through `frame` with rbp = `rbp`; returns (cached, fresh) stacks.
#[inline(never)]
fn through(
    frame: unsafe extern "C" fn(Callback, *mut std::ffi::c_void, u64),
    ctx: &mut Ctx,
    rbp: u64,
) -> (Vec<u64>, Vec<u64>) {
    // SAFETY: the assembly frames follow the C calling convention and restore every
    // callee-saved register they change.
    unsafe { frame(capture_both, (ctx as *mut Ctx).cast(), rbp) };
    black_box(ctx.got.take().unwrap())
}

fn ctx() -> Ctx {
    let cached = setup();
    let mut fresh = ThreadUnwinder::new(StackBounds::current());
    fresh.set_walk_cache(false);
    Ctx {
        cached,
        fresh,
        got: None,
    }
}

fn ret_addr(label: &u8) -> framehop::FrameAddress {
    framehop::FrameAddress::from_return_address(label as *const u8 as u64).unwrap()
}

#[test]
fn step_shapes_of_known_frames() {
    use shape::{Base, BpRule, Shape, Shapes};
    let uw = process::rebuild();
    let mut cache = framehop::x86_64::CacheX86_64::new_in();
    let mut shapes = Shapes::new();
    // SAFETY: only the labels' addresses are taken.
    let (sp_ret, fp_ret, nocfi_ret) =
        unsafe { (&tm_sp_frame_ret, &tm_fp_frame_ret, &tm_nocfi_frame_ret) };
    let sp_shape = shapes.get(uw, &mut cache, ret_addr(sp_ret));
    assert_eq!(
        sp_shape,
        Shape::Step {
            cfa: Base::Sp,
            off: 32,
            bp: BpRule::Load {
                base: Base::Sp,
                off: 16
            }
        }
    );
    assert!(!sp_shape.uses_bp() && !sp_shape.keeps_bp());
    let fp = Shape::Step {
        cfa: Base::Bp,
        off: 16,
        bp: BpRule::Load {
            base: Base::Bp,
            off: 0,
        },
    };
    assert_eq!(shapes.get(uw, &mut cache, ret_addr(fp_ret)), fp);
    assert!(fp.uses_bp());
    // No unwind information: framehop's fallback follows rbp.
    assert_eq!(shapes.get(uw, &mut cache, ret_addr(nocfi_ret)), fp);
    // Rust code compiled here without frame pointers: rsp-based.
    let here = framehop::FrameAddress::from_return_address(fn_addr(middle) + 1).unwrap();
    assert!(matches!(
        shapes.get(uw, &mut cache, here),
        Shape::Step { cfa: Base::Sp, .. }
    ));
}

#[test]
fn cache_ignores_rbp_used_as_a_register() {
    let mut c = ctx();
    // Other tests running in parallel rebuild the process unwinder, which invalidates the
    // walk cache: a call is counted only when the unwinder stayed the same from before the
    // previous call (whose walk this one reuses) to after this one.
    let current = || process::current().map(|u| u as *const process::ProcessUnwinder);
    for frame in [tm_sp_frame, tm_fp_frame] {
        let mut counted = 0;
        let mut last_uw = None;
        for i in 0..100u64 {
            let (uw, steps) = (current(), c.cached.steps());
            let (a, b) = through(frame, &mut c, i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            assert_eq!(a, b, "rbp {i}");
            // The first calls may come from a different call site (a peeled loop iteration).
            if i >= 2 && last_uw == Some(uw) && current() == uw {
                // Every walk comes from the cache, whatever rbp holds (the rbp-keyed cache
                // missed each time in `tm_sp_frame`); `tm_fp_frame`'s rbp is its own frame
                // pointer, which the changing argument never reaches.
                assert_eq!(c.cached.steps(), steps, "frames unwound in call {i}");
                counted += 1;
            }
            last_uw = Some(uw);
        }
        assert!(counted > 50, "only {counted} calls without a rebuild");
    }
}

#[test]
fn cache_compares_rbp_where_a_step_follows_it() {
    let mut c = ctx();
    // Without unwind information the step out of `tm_nocfi_frame` follows rbp: a frame record
    // (saved rbp, return address) in this frame makes the walk go on through `outer`'s body;
    // rbp = 0 ends it. Same instruction pointers and stack pointers, different stacks.
    let record = [0u64, fn_addr(outer) + 1];
    let good = black_box(&record) as *const [u64; 2] as u64;
    let mut seen = Vec::new();
    for i in 0..12 {
        let rbp = [good, 0, 0x1234_5678][i % 3];
        let (a, b) = through(tm_nocfi_frame, &mut c, rbp);
        assert_eq!(a, b, "round {i}, rbp {rbp:#x}");
        seen.push(a);
    }
    assert_ne!(seen[0].len(), seen[1].len(), "{seen:x?}");
    assert!(seen[0].contains(&(fn_addr(outer) + 1)));
}

#[test]
fn fp_walks_stop_at_data_and_count_as_broken() {
    let uw = process::rebuild();
    let bounds = StackBounds::current();
    static DATA: [u64; 2] = [7, 8];
    let text = fn_addr(outer) + 1;
    let data = DATA.as_ptr() as u64;
    let mut out = [0u64; MAX_FRAMES];
    // Two frame records in one array (the outer one at the higher address), the outer one the
    // outermost frame (saved frame pointer 0).
    let mut recs = [0u64, text, 0, text + 1];
    let base = black_box(&mut recs) as *mut [u64; 4] as u64;
    recs[0] = base + 16;
    let sp = stack_pointer();
    let mut walk = |recs: &[u64; 4], bp: u64| {
        let w = fp_walk(uw, bounds, sp, text, black_box(bp), &mut out);
        black_box(recs);
        (out[..w.len].to_vec(), w.broken, w.truncated)
    };
    assert_eq!(
        walk(&recs, base),
        (vec![text, text, text + 1], false, false)
    );
    // rbp = 0: the caller is the outermost frame.
    assert_eq!(walk(&recs, 0), (vec![text], false, false));
    // A "frame pointer" that points nowhere on the stack: the caller keeps none.
    assert_eq!(walk(&recs, 0x1234_5670), (vec![text], true, false));
    // A return address into data: the walk stops before it.
    recs[3] = data;
    assert_eq!(walk(&recs, base), (vec![text, text], true, false));
    // Counted per thread, added to the process-wide counts in batches.
    let mut t = setup();
    let before = fp_walk_stats();
    let (frames, _) = outer(&mut t, UnwindMode::Fp, 2);
    assert!(!frames.is_empty());
    t.flush_counts();
    assert!(fp_walk_stats().walks > before.walks);
}
