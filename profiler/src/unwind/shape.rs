//! What one unwinding step at a code address depends on, learned by running framehop's own
//! step on synthetic stacks.
//!
//! The walk cache ([`super::walk`]) reuses the outer part of an earlier walk. That is only sound
//! when everything the remaining steps depend on is unchanged: their addresses and stack pointers
//! (compared directly), the stack words they read, and — for some steps — the incoming `rbp`.
//! Code built without frame pointers uses `rbp` as an ordinary register (a loop counter), so
//! comparing it everywhere defeats the cache; ignoring it everywhere is wrong for functions that
//! keep a frame pointer (`push rbp; mov rbp, rsp`, CFA = rbp + 16), whose caller's stack pointer
//! is computed from `rbp`. A [`Shape`] says which case a step is.
//!
//! framehop does not expose the rule it uses for an address, so the shape is inferred from its
//! behaviour: the step is run twice on synthetic register values and a synthetic stack whose
//! every word holds its own address xor a tag, and the results are matched against the forms
//! its cacheable rules (`UnwindRuleX86_64`) can take, every one of which is affine:
//!
//! | rule                               | caller's sp     | return address  | caller's bp       |
//! |------------------------------------|-----------------|-----------------|-------------------|
//! | `JustReturn`, `OffsetSp`           | sp + c          | [sp' - 8]       | bp                |
//! | `OffsetSpAndRestoreBp`             | sp + c          | [sp' - 8]       | [sp + d]          |
//! | `OffsetSpAndPopRegisters`          | sp + c          | [sp' - 8]       | bp or [sp + d]    |
//! | `UseFramePointer` (and the fallback for code without unwind information) | bp + 16 | [sp' - 8] | [bp] |
//! | `EndOfStack`                       | —               | —               | —                 |
//!
//! Whether the step used a cacheable rule at all is read from framehop's rule-cache statistics:
//! the second probe of an address hits its rule cache exactly when the first one stored a rule.
//! Steps framehop evaluates from raw DWARF instead (CFA expressions, unusual offsets) are
//! [`Shape::Opaque`]: the cache then treats every word they read and the incoming `rbp` as
//! inputs. So no shape ever claims an independence the real step does not have.

use super::process::ProcessUnwinder;
use framehop::x86_64::{CacheX86_64, UnwindRegsX86_64};
use framehop::{FrameAddress, MustNotAllocateDuringUnwind, Unwinder};

/// Register a value is computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base {
    /// The frame's stack pointer.
    Sp,
    /// The frame's `rbp`.
    Bp,
}

/// How the caller's `rbp` is recovered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BpRule {
    /// Unchanged: the frame does not save it.
    Keep,
    /// Loaded from the stack word at `base + off`.
    Load {
        /// Register the address is relative to.
        base: Base,
        /// Offset in bytes.
        off: i32,
    },
}

/// What one step out of a frame computes, and from what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// The walk ends here whatever the registers and the stack hold.
    End,
    /// Caller's sp = `cfa + off` with `cfa` the frame's sp or bp; return address = [sp' - 8];
    /// caller's bp per `bp`.
    Step {
        /// Register the caller's stack pointer is computed from.
        cfa: Base,
        /// Offset in bytes.
        off: i32,
        /// How the caller's bp is recovered.
        bp: BpRule,
    },
    /// Anything else: depends on the incoming bp and on every word it reads.
    Opaque,
}

/// Slots of the memo. Python's interpreter alone steps through a few thousand distinct return
/// addresses; 1024 slots made 0.35 probes per allocation there, 4096 a tenth of that.
const SLOTS: usize = 4096;
const TAG: u64 = 0x5a5a_0000_0000_0000;
const WINDOW: u64 = 1 << 24;
/// Probe states: (sp, bp). Far apart, different alignments modulo 16 and different distances,
/// so no affine form fits both by accident.
const PROBES: [(u64, u64); 2] = [
    (0x0000_1000_0000_0000, 0x0000_1001_0000_0000),
    (0x0000_2000_0010_0008, 0x0000_2002_0010_0018),
];

/// Per-thread memo of shapes by code address, valid for one process unwinder. An entry is the
/// key and the packed shape side by side (16 bytes, one cache line): a lookup that misses the
/// cache costs one miss, where separate key and value arrays cost two (the lookup was ≈ a
/// fifth of the walk's time on python3, whose interpreter steps through thousands of return
/// addresses).
pub struct Shapes {
    entries: Box<[(u64, u64)]>,
    unwinder: usize,
}

impl Shapes {
    /// An empty memo (64 KiB, built on the heap: thread stacks may be small).
    pub fn new() -> Shapes {
        Shapes {
            entries: crate::sys::mem::zeroed_vec(SLOTS, (0, 0)).into_boxed_slice(),
            unwinder: 0,
        }
    }

    /// The shape of the step out of the frame at `addr`. Never allocates.
    #[inline]
    pub fn get(
        &mut self,
        uw: &ProcessUnwinder,
        cache: &mut CacheX86_64<MustNotAllocateDuringUnwind>,
        addr: FrameAddress,
    ) -> Shape {
        let uw_id = uw as *const ProcessUnwinder as usize;
        if self.unwinder != uw_id {
            self.entries.fill((0, 0));
            self.unwinder = uw_id;
        }
        // Key: the address with the "return address" bit in bit 0 (code addresses used for
        // lookup are never 0, and a return address minus one and an instruction pointer can
        // coincide, so the kind must be part of the key).
        let key = (addr.address_for_lookup() << 1) | u64::from(addr.is_return_address());
        let slot = (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 52) as usize % SLOTS;
        let (k, packed) = self.entries[slot];
        if k == key {
            return Shape::unpack(packed);
        }
        let s = probe(uw, cache, addr);
        self.entries[slot] = (key, s.pack());
        s
    }
}

impl Default for Shapes {
    fn default() -> Self {
        Self::new()
    }
}

/// One probe's result: framehop's answer and the registers after it.
struct Outcome {
    ok: Option<Option<u64>>,
    sp: u64,
    bp: u64,
    reads: usize,
}

fn run(
    uw: &ProcessUnwinder,
    cache: &mut CacheX86_64<MustNotAllocateDuringUnwind>,
    addr: FrameAddress,
    (sp, bp): (u64, u64),
) -> Outcome {
    // The first frame's reads below its stack pointer fail in real walks (nothing below the
    // capturing frame is read), so they fail here too; framehop then keeps bp for
    // `OffsetSpAndRestoreBp` with a negative offset, and the probe must see the same.
    let below = if addr.is_return_address() { 1 << 16 } else { 0 };
    let mut reads = 0usize;
    let mut read = |a: u64| -> Result<u64, ()> {
        let near = |base: u64| a >= base - below && a < base + WINDOW;
        if near(sp) || near(bp) {
            reads += 1;
            Ok(a ^ TAG)
        } else {
            Err(())
        }
    };
    let mut regs = UnwindRegsX86_64::new(addr.address(), sp, bp);
    let ok = uw
        .framehop
        .unwind_frame(addr, &mut regs, cache, &mut read)
        .ok();
    Outcome {
        ok,
        sp: regs.sp(),
        bp: regs.bp(),
        reads,
    }
}

/// Runs framehop's step at `addr` on the two synthetic states and classifies it.
fn probe(
    uw: &ProcessUnwinder,
    cache: &mut CacheX86_64<MustNotAllocateDuringUnwind>,
    addr: FrameAddress,
) -> Shape {
    let a = run(uw, cache, addr, PROBES[0]);
    let hits = cache.stats().hit_count;
    let b = run(uw, cache, addr, PROBES[1]);
    if cache.stats().hit_count == hits {
        // No rule was cached for this address: framehop evaluated raw DWARF.
        return Shape::Opaque;
    }
    classify(&a, &b)
}

/// Matches two probe outcomes against the affine forms of the table above.
fn classify(a: &Outcome, b: &Outcome) -> Shape {
    match (a.ok, b.ok) {
        (Some(None), Some(None)) if a.reads == 0 && b.reads == 0 => return Shape::End,
        (Some(Some(ra)), Some(Some(rb))) => {
            if ra != (a.sp.wrapping_sub(8) ^ TAG) || rb != (b.sp.wrapping_sub(8) ^ TAG) {
                return Shape::Opaque;
            }
        }
        _ => return Shape::Opaque,
    }
    // An offset from `base` the two probes agree on.
    let rel = |va: u64, vb: u64, base: Base| -> Option<i32> {
        let (ba, bb) = match base {
            Base::Sp => (PROBES[0].0, PROBES[1].0),
            Base::Bp => (PROBES[0].1, PROBES[1].1),
        };
        let da = va.wrapping_sub(ba) as i64;
        let db = vb.wrapping_sub(bb) as i64;
        (da == db && da.unsigned_abs() < WINDOW).then_some(da as i32)
    };
    let (cfa, off) = match (rel(a.sp, b.sp, Base::Sp), rel(a.sp, b.sp, Base::Bp)) {
        (Some(o), _) if o > 0 => (Base::Sp, o),
        (_, Some(o)) => (Base::Bp, o),
        _ => return Shape::Opaque,
    };
    let bp = if a.bp == PROBES[0].1 && b.bp == PROBES[1].1 {
        BpRule::Keep
    } else {
        let (la, lb) = (a.bp ^ TAG, b.bp ^ TAG);
        match (rel(la, lb, Base::Sp), rel(la, lb, Base::Bp)) {
            (Some(off), _) => BpRule::Load {
                base: Base::Sp,
                off,
            },
            (_, Some(off)) => BpRule::Load {
                base: Base::Bp,
                off,
            },
            _ => return Shape::Opaque,
        }
    };
    Shape::Step { cfa, off, bp }
}

/// Bits of a packed offset: every offset a shape holds is below [`WINDOW`] in magnitude.
const OFF_BITS: u32 = 26;
const OFF_MASK: u64 = (1 << OFF_BITS) - 1;

impl Shape {
    /// The shape as one word: bits 0–1 the kind (0 `Opaque`, 1 `End`, 2 `Step`), bit 2 the
    /// CFA base (1: bp), bits 3–4 the bp rule (0 keep, 1 load from sp, 2 load from bp), then
    /// the CFA offset and the bp load offset, 26 bits each, two's complement.
    #[inline]
    pub fn pack(self) -> u64 {
        let off = |o: i32| (o as i64 as u64) & OFF_MASK;
        match self {
            Shape::Opaque => 0,
            Shape::End => 1,
            Shape::Step { cfa, off: o, bp } => {
                let (rule, bp_off) = match bp {
                    BpRule::Keep => (0, 0),
                    BpRule::Load {
                        base: Base::Sp,
                        off,
                    } => (1, off),
                    BpRule::Load {
                        base: Base::Bp,
                        off,
                    } => (2, off),
                };
                2 | (u64::from(cfa == Base::Bp) << 2)
                    | (rule << 3)
                    | (off(o) << 5)
                    | (off(bp_off) << (5 + OFF_BITS))
            }
        }
    }

    /// The shape [`Shape::pack`] made `v` from.
    #[inline]
    pub fn unpack(v: u64) -> Shape {
        // Sign-extends a 26-bit field.
        let off = |x: u64| (((x & OFF_MASK) << (64 - OFF_BITS)) as i64 >> (64 - OFF_BITS)) as i32;
        match v & 3 {
            1 => Shape::End,
            2 => Shape::Step {
                cfa: if v & 4 != 0 { Base::Bp } else { Base::Sp },
                off: off(v >> 5),
                bp: match (v >> 3) & 3 {
                    0 => BpRule::Keep,
                    1 => BpRule::Load {
                        base: Base::Sp,
                        off: off(v >> (5 + OFF_BITS)),
                    },
                    _ => BpRule::Load {
                        base: Base::Bp,
                        off: off(v >> (5 + OFF_BITS)),
                    },
                },
            },
            _ => Shape::Opaque,
        }
    }

    /// Address of the word the caller's bp is loaded from, for a frame at `(sp, bp)`.
    #[inline]
    pub fn bp_load(self, sp: u64, bp: u64) -> Option<u64> {
        match self {
            Shape::Step {
                bp: BpRule::Load { base, off },
                ..
            } => Some(
                match base {
                    Base::Sp => sp,
                    Base::Bp => bp,
                }
                .wrapping_add(off as i64 as u64),
            ),
            _ => None,
        }
    }

    /// True when the caller's sp or return address depends on this frame's bp (or may).
    #[inline]
    pub fn uses_bp(self) -> bool {
        matches!(self, Shape::Opaque | Shape::Step { cfa: Base::Bp, .. })
    }

    /// True when the caller's bp is this frame's bp, unchanged.
    #[inline]
    pub fn keeps_bp(self) -> bool {
        matches!(
            self,
            Shape::Step {
                bp: BpRule::Keep,
                ..
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_shapes_unpack_to_themselves() {
        let big = (WINDOW - 1) as i32;
        let mut shapes = vec![Shape::Opaque, Shape::End];
        for cfa in [Base::Sp, Base::Bp] {
            for off in [8, 16, -16, big, -big, 0] {
                for bp in [
                    BpRule::Keep,
                    BpRule::Load {
                        base: Base::Sp,
                        off: -big,
                    },
                    BpRule::Load {
                        base: Base::Bp,
                        off: 0,
                    },
                    BpRule::Load {
                        base: Base::Sp,
                        off: big,
                    },
                ] {
                    shapes.push(Shape::Step { cfa, off, bp });
                }
            }
        }
        for s in shapes {
            assert_eq!(Shape::unpack(s.pack()), s, "{s:?}");
        }
        // An empty memo slot (key 0) never matches a key, whatever its packed value says.
        assert_eq!(Shape::unpack(0), Shape::Opaque);
    }
}
