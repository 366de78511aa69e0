//! Finishing the profile when the program crashes (SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL).
//!
//! ```text
//!  start ─► for each fatal signal whose disposition is still the default:
//!             install on_fatal (SA_RESETHAND: the disposition is the default again on entry)
//!  crash ─► on_fatal ─► writer drains every buffer (the crashing thread's included) and writes
//!                       the trailer, waited for at most MAX_WAIT
//!                    ─► raise(sig): delivered with the default action once the handler returns
//!                       (same signal, same exit status and core dump as without tidemark)
//! ```
//!
//! Only signals the program has not claimed are taken: a signal that already has a handler
//! (or is ignored) when recording starts is left alone, and a handler the program installs
//! later replaces this one — the program then owns the signal, and a crash through it leaves a
//! profile without a trailer, which readers report as truncated. Programs that use SIGSEGV for
//! their own purposes (garbage collectors, guard pages) install their handler themselves, so
//! their handled faults never reach this one. A stack overflow cannot run any handler without
//! an alternate signal stack; then the profile ends at the last periodic flush (truncated).

use std::time::Duration;

/// The signals that end a process with a crash.
const SIGNALS: [libc::c_int; 5] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGABRT,
    libc::SIGFPE,
    libc::SIGILL,
];

/// Longest the handler waits for the writer: a thread that crashed inside the recorder may
/// hold a lock the writer needs, and the process must die regardless.
const MAX_WAIT: Duration = Duration::from_secs(3);

/// Installs [`on_fatal`] for every signal of [`SIGNALS`] whose disposition is the default.
pub fn install() {
    for sig in SIGNALS {
        // SAFETY: sigaction with valid pointers; `old` is only read after the call filled it.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut old) != 0
                || old.sa_sigaction != libc::SIG_DFL
            {
                continue;
            }
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_fatal as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESETHAND | libc::SA_ONSTACK;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

extern "C" fn on_fatal(sig: libc::c_int, _info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: errno is saved and restored around the handler's calls.
    let saved_errno = unsafe { *libc::__errno_location() };
    super::session::finish_from_fatal_signal(MAX_WAIT);
    // SA_RESETHAND restored the default action on entry. The signal is blocked while this
    // handler runs, so it is delivered, with that action, as soon as the handler returns (a
    // fault would also recur when the instruction is retried).
    // SAFETY: raise has no preconditions.
    unsafe {
        libc::raise(sig);
        *libc::__errno_location() = saved_errno;
    }
}
