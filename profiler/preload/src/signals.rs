//! The program's own `SIGPROF` comes first: while the recorder samples CPU stacks
//! (`TIDEMARK_CPU_HZ`) it owns `SIGPROF`, and these wrappers hand the signal back as soon as the
//! program wants it.
//!
//! ```text
//!  sigaction(SIGPROF, act, old) ─ act set ─► stop sampling, restore the program's disposition
//!                               │            ─► next sigaction (old: the program's own)
//!                               └ query ───► the program's disposition (not the recorder's)
//!  signal(SIGPROF, h)          ─► stop sampling ─► next signal
//!  setitimer(ITIMER_PROF, ..)  ─► stop sampling ─► next setitimer
//! ```
//!
//! Every other call is forwarded unchanged. The recorder's own changes reach the next
//! definitions too (`cpu::owns_sigprof` is false while it makes them).

use crate::backend::set_errno;
use std::sync::atomic::{AtomicUsize, Ordering};
use tidemark::record::cpu;

type SigactionFn =
    unsafe extern "C" fn(libc::c_int, *const libc::sigaction, *mut libc::sigaction) -> libc::c_int;
type SignalFn = unsafe extern "C" fn(libc::c_int, libc::sighandler_t) -> libc::sighandler_t;
type SetitimerFn =
    unsafe extern "C" fn(libc::c_int, *const libc::itimerval, *mut libc::itimerval) -> libc::c_int;

static NEXT_SIGACTION: AtomicUsize = AtomicUsize::new(0);
static NEXT_SIGNAL: AtomicUsize = AtomicUsize::new(0);
static NEXT_SETITIMER: AtomicUsize = AtomicUsize::new(0);

/// Resolves the forwarded functions now, in the constructor (a lookup later may allocate).
pub fn resolve_next() {
    next(&NEXT_SIGACTION, c"sigaction");
    next(&NEXT_SIGNAL, c"signal");
    next(&NEXT_SETITIMER, c"setitimer");
}

fn next(slot: &AtomicUsize, name: &std::ffi::CStr) -> usize {
    let mut f = slot.load(Ordering::Acquire);
    if f == 0 {
        // SAFETY: dlsym with a NUL-terminated name.
        f = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) } as usize;
        slot.store(f, Ordering::Release);
    }
    f
}

/// `sigaction`.
///
/// # Safety
/// C semantics.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn sigaction(
    sig: libc::c_int,
    act: *const libc::sigaction,
    old: *mut libc::sigaction,
) -> libc::c_int {
    let f = next(&NEXT_SIGACTION, c"sigaction");
    if f == 0 {
        set_errno(libc::ENOSYS);
        return -1;
    }
    if sig == libc::SIGPROF && cpu::owns_sigprof() {
        if act.is_null() {
            if !old.is_null() {
                // SAFETY: `old` is the caller's out-pointer.
                unsafe { *old = cpu::program_disposition() };
            }
            return 0;
        }
        // Restores the program's disposition first, so `old` receives that one.
        cpu::yield_to_program();
    }
    // SAFETY: `f` is the next definition of sigaction; arguments forwarded.
    unsafe { std::mem::transmute::<usize, SigactionFn>(f)(sig, act, old) }
}

/// `signal`.
///
/// # Safety
/// C semantics.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn signal(
    sig: libc::c_int,
    handler: libc::sighandler_t,
) -> libc::sighandler_t {
    let f = next(&NEXT_SIGNAL, c"signal");
    if f == 0 {
        set_errno(libc::ENOSYS);
        return libc::SIG_ERR;
    }
    if sig == libc::SIGPROF && cpu::owns_sigprof() {
        cpu::yield_to_program();
    }
    // SAFETY: `f` is the next definition of signal; arguments forwarded.
    unsafe { std::mem::transmute::<usize, SignalFn>(f)(sig, handler) }
}

/// `setitimer`.
///
/// # Safety
/// C semantics.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn setitimer(
    which: libc::c_int,
    new: *const libc::itimerval,
    old: *mut libc::itimerval,
) -> libc::c_int {
    let f = next(&NEXT_SETITIMER, c"setitimer");
    if f == 0 {
        set_errno(libc::ENOSYS);
        return -1;
    }
    // SAFETY: `new` is null or the caller's timer value.
    let arming = !new.is_null()
        && unsafe {
            let v = &(*new).it_value;
            v.tv_sec != 0 || v.tv_usec != 0
        };
    if which == libc::ITIMER_PROF && arming && cpu::owns_sigprof() {
        cpu::yield_to_program();
    }
    // SAFETY: `f` is the next definition of setitimer; arguments forwarded.
    unsafe { std::mem::transmute::<usize, SetitimerFn>(f)(which, new, old) }
}
