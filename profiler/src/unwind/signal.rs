//! Stack capture from a signal handler: a DWARF walk that starts from the interrupted code's
//! registers (the `ucontext` the kernel passes to the handler), with framehop rule cache of its
//! own.
//!
//! The CPU sampler's `SIGPROF` handler may interrupt anything, the recorder's own allocation hook
//! included, which is then in the middle of using the thread's [`super::ThreadUnwinder`]: this
//! walker shares nothing with it. It never allocates, takes no lock, and reads the stack only
//! between the interrupted stack pointer and the top of the thread's stack, so a wrong unwind
//! rule can never fault. framehop's process-wide unwinder is immutable once published and never
//! freed ([`super::process`]), so reading it from a handler is safe.

use super::bounds::StackBounds;
use super::process;
use super::MAX_FRAMES;
use framehop::x86_64::{CacheX86_64, UnwindRegsX86_64};
use framehop::{FrameAddress, MustNotAllocateDuringUnwind, Unwinder};

/// Registers of the interrupted code.
#[derive(Debug, Clone, Copy, Default)]
pub struct Registers {
    /// Instruction pointer.
    pub ip: u64,
    /// Stack pointer.
    pub sp: u64,
    /// Frame pointer (`rbp`; an ordinary register in code without frame pointers).
    pub bp: u64,
}

impl Registers {
    /// The registers saved in the `ucontext_t` a `SA_SIGINFO` handler receives.
    ///
    /// # Safety
    /// `uc` points to the `ucontext_t` the kernel passed to the running handler.
    pub unsafe fn from_ucontext(uc: *const libc::c_void) -> Registers {
        // SAFETY: per the contract; only plain integer fields are read.
        let g = unsafe { &(*(uc as *const libc::ucontext_t)).uc_mcontext.gregs };
        Registers {
            ip: g[libc::REG_RIP as usize] as u64,
            sp: g[libc::REG_RSP as usize] as u64,
            bp: g[libc::REG_RBP as usize] as u64,
        }
    }
}

/// What [`SignalUnwinder::walk`] wrote.
#[derive(Debug, Clone, Copy, Default)]
pub struct SignalWalk {
    /// Frames written.
    pub len: usize,
    /// The stack went on beyond [`MAX_FRAMES`].
    pub truncated: bool,
    /// Module generation of the unwinder used (see [`super::Captured::generation`]).
    pub generation: u64,
}

/// Per-thread state of the signal-time walk: framehop's rule cache.
pub struct SignalUnwinder {
    cache: Box<CacheX86_64<MustNotAllocateDuringUnwind>>,
}

impl Default for SignalUnwinder {
    fn default() -> Self {
        Self::new()
    }
}

impl SignalUnwinder {
    /// Allocates the cache (call it outside the handler).
    pub fn new() -> SignalUnwinder {
        SignalUnwinder {
            cache: Box::new(CacheX86_64::new_in()),
        }
    }

    /// Walks the interrupted stack into `out`: `out[0]` is the interrupted instruction's
    /// address **plus one**, so that it symbolizes like the return addresses after it (readers
    /// look up `address − 1` for every frame); the rest are return addresses, innermost first.
    /// When the stack pointer lies outside `bounds` (code running on an alternate signal stack),
    /// only the first frame is written. Async-signal-safe: no allocation, no lock.
    pub fn walk(
        &mut self,
        regs: Registers,
        bounds: StackBounds,
        out: &mut [u64; MAX_FRAMES],
    ) -> SignalWalk {
        let mut w = SignalWalk::default();
        if regs.ip == 0 {
            return w;
        }
        out[0] = regs.ip.wrapping_add(1);
        w.len = 1;
        let Some(uw) = process::current() else {
            return w;
        };
        w.generation = uw.generation;
        let lo = regs.sp;
        if !bounds.contains_word(lo) {
            return w;
        }
        let mut read = |a: u64| -> Result<u64, ()> {
            if a < lo || !bounds.contains_word(a) {
                return Err(());
            }
            // SAFETY: `a` lies in this thread's mapped stack, at or above the interrupted
            // stack pointer.
            Ok(unsafe { (a as *const u64).read_unaligned() })
        };
        let mut r = UnwindRegsX86_64::new(regs.ip, regs.sp, regs.bp);
        let mut addr = FrameAddress::from_instruction_pointer(regs.ip);
        loop {
            let ra = match uw
                .framehop
                .unwind_frame(addr, &mut r, &mut self.cache, &mut read)
            {
                Ok(Some(ra)) if ra != 0 => ra,
                _ => break,
            };
            if w.len == MAX_FRAMES {
                w.truncated = true;
                break;
            }
            out[w.len] = ra;
            w.len += 1;
            match FrameAddress::from_return_address(ra) {
                Some(a) => addr = a,
                None => break,
            }
        }
        w
    }
}
