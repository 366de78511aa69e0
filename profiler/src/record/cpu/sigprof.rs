//! The `SIGPROF` plumbing of CPU sampling: the signal's disposition (the recorder's handler, the
//! program's own one it puts back) and the timers that send the signal.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, Ordering};

/// `SIGEV_THREAD_ID` (Linux, `include/uapi/asm-generic/siginfo.h`; not in the `libc` crate).
const SIGEV_THREAD_ID: libc::c_int = 4;
/// Set while the recorder itself changes the disposition (the preload's `sigaction` forwards).
pub(super) static OWN_CALL: AtomicBool = AtomicBool::new(false);
/// The program's `SIGPROF` disposition from before the recorder installed its handler.
pub(super) struct Original(pub(super) UnsafeCell<Option<libc::sigaction>>);
// SAFETY: written only while sampling is inactive (before `ACTIVE` is set, in `start`, which
// runs once per session on one thread), read only while it is active.
unsafe impl Sync for Original {}
pub(super) static ORIGINAL: Original = Original(UnsafeCell::new(None));

/// The handler address the kernel has for `SIGPROF`, asked with the raw system call (the
/// preload library's `sigaction` answers the program's view while sampling).
pub(super) fn kernel_handler() -> usize {
    let mut k = [0u64; 4];
    // SAFETY: rt_sigaction query into a buffer the size of the kernel's `struct sigaction`
    // (handler, flags, restorer, 64-bit mask).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            libc::SIGPROF,
            std::ptr::null::<u8>(),
            k.as_mut_ptr(),
            8usize,
        )
    };
    if rc == 0 {
        k[0] as usize
    } else {
        libc::SIG_DFL
    }
}

pub(super) fn with_own_call(f: impl FnOnce()) {
    OWN_CALL.store(true, Ordering::Release);
    f();
    OWN_CALL.store(false, Ordering::Release);
}

pub(super) fn install_handler(handler: usize) {
    with_own_call(|| {
        // SAFETY: an all-zero sigaction is valid; the handler has the SA_SIGINFO signature;
        // SA_RESTART keeps the program's interrupted system calls going.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = handler;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(libc::SIGPROF, &sa, std::ptr::null_mut());
        }
    });
}

/// Drops pending `SIGPROF`s (setting `SIG_IGN` discards them in every thread) and puts back the
/// program's disposition.
pub(super) fn restore_disposition() {
    with_own_call(|| {
        // SAFETY: valid sigaction values; `ORIGINAL` was written before sampling started.
        unsafe {
            let mut ign: libc::sigaction = std::mem::zeroed();
            ign.sa_sigaction = libc::SIG_IGN;
            libc::sigaction(libc::SIGPROF, &ign, std::ptr::null_mut());
            let mut back: libc::sigaction = std::mem::zeroed();
            back.sa_sigaction = libc::SIG_DFL;
            let back = (*ORIGINAL.0.get()).unwrap_or(back);
            libc::sigaction(libc::SIGPROF, &back, std::ptr::null_mut());
        }
    });
}

pub(super) fn set_itimer(period_ns: u64) {
    let tv = libc::timeval {
        tv_sec: (period_ns / 1_000_000_000) as libc::time_t,
        tv_usec: ((period_ns % 1_000_000_000) / 1000) as libc::suseconds_t,
    };
    let it = libc::itimerval {
        it_interval: tv,
        it_value: tv,
    };
    with_own_call(|| {
        // SAFETY: a valid itimerval; the old value is not wanted.
        unsafe { libc::setitimer(libc::ITIMER_PROF, &it, std::ptr::null_mut()) };
    });
}

pub(super) fn set_timer(timer: usize, period_ns: u64) -> bool {
    let ts = libc::timespec {
        tv_sec: (period_ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (period_ns % 1_000_000_000) as libc::c_long,
    };
    let its = libc::itimerspec {
        it_interval: ts,
        it_value: ts,
    };
    // SAFETY: `timer` is a live timer id of this process; `its` is valid.
    unsafe { libc::timer_settime(timer as libc::timer_t, 0, &its, std::ptr::null_mut()) == 0 }
}

/// A timer on thread `tid`'s CPU clock that sends `SIGPROF` to that thread.
pub(super) fn create_thread_timer(tid: u32) -> Option<usize> {
    // The kernel's clock id of a thread's CPU time (`MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED)`
    // in include/linux/posix-timers.h; what glibc's pthread_getcpuclockid computes).
    let clock = ((!(tid as libc::clockid_t)) << 3) | 6;
    // SAFETY: an all-zero sigevent is valid; the fields set are those SIGEV_THREAD_ID reads;
    // `timer` is a valid out-pointer.
    unsafe {
        let mut sev: libc::sigevent = std::mem::zeroed();
        sev.sigev_notify = SIGEV_THREAD_ID;
        sev.sigev_signo = libc::SIGPROF;
        sev.sigev_notify_thread_id = tid as libc::c_int;
        let mut timer: libc::timer_t = std::ptr::null_mut();
        (libc::timer_create(clock, &mut sev, &mut timer) == 0).then_some(timer as usize)
    }
}

/// The program's own `SIGPROF` disposition, as it would see it without the recorder.
pub(super) fn program_disposition() -> libc::sigaction {
    // SAFETY: read while sampling is active (see `Original`); all-zero is SIG_DFL.
    unsafe { (*ORIGINAL.0.get()).unwrap_or_else(|| std::mem::zeroed()) }
}
