//! CPU sampling (`TIDEMARK_CPU_HZ`, `tidemark run --cpu`): on-CPU stacks of every recorded
//! thread, written as `CPU_SAMPLE` records beside the heap events.
//!
//! ```text
//!  thread first seen ─► timer_create(CLOCK_THREAD_CPUTIME_ID, SIGEV_THREAD_ID → this thread,
//!                      SIGPROF) every 1/hz s of the thread's own CPU time
//!                      (fallback when refused: one setitimer(ITIMER_PROF) for the process)
//!  SIGPROF handler ─► registers from the ucontext ─► DWARF walk of its own (unwind::signal)
//!                  ─► the thread's lock-free ring (full: counted as lost)
//!  writer, each pass ─► drains every ring ─► interns the stacks (STACK table)
//!                    ─► CPU_SAMPLE records in a meta chunk after the pass's definitions
//!  stop (exit, exec, finish) ─► timers disarmed ─► SIGPROF set to SIG_IGN (drops pending
//!                               signals) ─► the program's disposition restored
//! ```
//!
//! The handler is async-signal-safe: it reads atomics, a leaked thread entry found through a
//! lock-free [`TidMap`], walks the stack with a framehop cache owned by that entry, and writes
//! one ring slot; it never allocates and takes no lock. It may interrupt the recorder's own hook
//! (which holds the thread's buffer lock and unwinder): it touches neither.
//!
//! Threads are armed when the recorder first sees them: the thread that starts the session, a
//! thread at its first allocator call, and, every 100 ms, any other thread the writer finds in
//! `/proc/self/task` (a thread that never allocates: its timer is created on its CPU clock from
//! the writer, and its first sample finds its stack bounds). Nothing hooks thread creation; a
//! thread that lives less than the scan interval without allocating is not sampled.
//!
//! The program's own `SIGPROF` use wins: a handler already installed at the start turns sampling
//! off; one installed later (the preload library interposes `sigaction`, `signal` and
//! `setitimer(ITIMER_PROF)`; the writer also checks the disposition at every timeline sample)
//! stops it. Either is said in a message in the profile.

mod sigprof;

use super::session::Session;
use super::thread::gettid;
use super::tidmap::TidMap;
use crate::format;
use crate::sys::clock::mono_ns;
use crate::sys::lock;
use crate::unwind::signal::{Registers, SignalUnwinder};
use crate::unwind::{self, StackBounds, MAX_FRAMES};
use sigprof::{
    create_thread_timer, install_handler, kernel_handler, restore_disposition, set_itimer,
    set_timer, ORIGINAL, OWN_CALL,
};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Highest sampling frequency accepted.
pub const MAX_HZ: u64 = 10_000;

const MODE_NONE: u8 = 0;
/// One `CLOCK_THREAD_CPUTIME_ID` timer per thread.
const MODE_THREAD_TIMERS: u8 = 1;
/// One `ITIMER_PROF` for the process (the kernel picks the thread that gets each signal).
const MODE_ITIMER: u8 = 2;

/// Notices the writer turns into profile messages (bits of [`CpuSession::notices`]).
const NOTICE_HANDLER_AT_START: u8 = 1;
const NOTICE_TAKEN_BY_PROGRAM: u8 = 2;
const NOTICE_ITIMER: u8 = 4;
const NOTICE_NO_TIMER: u8 = 8;

static MODE: AtomicU8 = AtomicU8::new(MODE_NONE);
/// Our handler is installed and samples are taken.
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// The program took `SIGPROF`: no sampling for the rest of the process.
static YIELDED: AtomicBool = AtomicBool::new(false);
/// Sampling period, ns of CPU time.
static PERIOD_NS: AtomicU64 = AtomicU64::new(0);
/// tid → `*const CpuThread` of the thread's current entry.
static THREADS: TidMap = TidMap::new();

/// One sample as the handler leaves it.
#[repr(C)]
struct Slot {
    t_ns: u64,
    weight_ns: u64,
    generation: u64,
    len: u32,
    truncated: u32,
    frames: [u64; MAX_FRAMES],
}

/// A sampled thread: its timer, its signal-time unwinder and its ring of samples.
pub struct CpuThread {
    session: *const Session,
    tid: u32,
    /// The `timer_t` (a pointer-sized id); meaningful when `has_timer`.
    timer: AtomicUsize,
    has_timer: AtomicBool,
    /// Stack bounds `[lo, hi)`; both 0 until known (a thread armed by the writer's scan gets
    /// them from its own first sample).
    stack_lo: AtomicU64,
    stack_hi: AtomicU64,
    /// Used only by this thread's handler (`SIGPROF` does not interrupt its own handler).
    unwinder: UnsafeCell<SignalUnwinder>,
    /// Written by the handler at `head`, read by the writer from `tail` (one producer, one
    /// consumer; indices only grow).
    slots: Box<[UnsafeCell<Slot>]>,
    head: AtomicU64,
    tail: AtomicU64,
    /// Samples that found the ring full.
    lost: AtomicU64,
    /// The thread's exit was seen: its timer is deleted.
    exiting: AtomicBool,
}

// SAFETY: `unwinder` is used by the owning thread's handler only; each slot is written by the
// handler before `head` publishes it and read by the writer before `tail` releases it; the rest
// is atomic or immutable.
unsafe impl Sync for CpuThread {}
// SAFETY: as above.
unsafe impl Send for CpuThread {}

/// A session's sampling state.
#[derive(Default)]
pub struct CpuSession {
    threads: Mutex<Vec<&'static CpuThread>>,
    /// Samples written.
    written: AtomicU64,
    /// Samples lost by threads already reaped, or taken on a thread without an entry.
    lost: AtomicU64,
    notices: AtomicU8,
    noticed: AtomicU8,
    /// When the writer last looked for threads to arm.
    last_scan_ns: AtomicU64,
}

impl CpuSession {
    fn notice(&self, bit: u8) {
        self.notices.fetch_or(bit, Ordering::Relaxed);
    }
}

/// Ring slots for `hz`: room for four flush intervals of one thread's samples.
fn ring_slots(hz: u64, flush_ms: u64) -> usize {
    ((hz * flush_ms.max(1) * 4 / 1000) as usize)
        .next_power_of_two()
        .clamp(16, 1024)
}

/// Starts sampling for a new session when `cfg.cpu_hz` asks for it, arming the calling thread.
/// Called before the session is published (its allocations are not events).
pub fn start(s: &'static Session) {
    let hz = s.cfg.cpu_hz;
    if hz == 0 || YIELDED.load(Ordering::Acquire) {
        return;
    }
    PERIOD_NS.store(1_000_000_000 / hz.min(MAX_HZ), Ordering::Relaxed);
    let cur = kernel_handler();
    if cur != handler_address() {
        if cur != libc::SIG_DFL && cur != libc::SIG_IGN {
            s.cpu.notice(NOTICE_HANDLER_AT_START);
            super::report("the program has its own SIGPROF handler: CPU sampling is off");
            return;
        }
        // SAFETY: an all-zero sigaction is a valid value; the query writes into it.
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: a query with a valid out-pointer.
        unsafe { libc::sigaction(libc::SIGPROF, std::ptr::null(), &mut old) };
        // SAFETY: sampling is inactive (see `Original`).
        unsafe { *ORIGINAL.0.get() = Some(old) };
    }
    ACTIVE.store(true, Ordering::Release);
    install_handler(handler_address());
    if MODE.load(Ordering::Acquire) == MODE_ITIMER {
        // Interval timers are not inherited by a forked child.
        set_itimer(PERIOD_NS.load(Ordering::Relaxed));
    }
    thread_start(s, gettid(), StackBounds::current());
}

/// Arms the calling thread `tid` (stack `bounds`) when sampling is on and it is not armed for
/// `s` yet. Allocates: the caller is the recorder (registering, or starting the session).
pub fn thread_start(s: &'static Session, tid: u32, bounds: StackBounds) {
    if !ACTIVE.load(Ordering::Acquire) || s.cfg.cpu_hz == 0 {
        return;
    }
    // SAFETY: entries are leaked threads freed only once unlisted (see `reap`).
    let cur = unsafe { (THREADS.get(tid) as *const CpuThread).as_ref() };
    if cur.is_some_and(|c| std::ptr::eq(c.session, s) && !c.exiting.load(Ordering::Acquire)) {
        return;
    }
    arm(s, tid, bounds);
}

/// Writer, at most every [`SCAN_NS`]: arms the threads of the process the recorder has not seen
/// (threads that never called the allocator), from `/proc/self/task`. Their stack bounds are
/// found by their first sample.
///
/// `dir` holds `/proc/self/task` from one scan to the next (opened at the first), a descriptor
/// the program cannot make the recorder close: one opened and closed at each scan could, in a
/// program that closes descriptors it did not open and opens its own meanwhile, close the
/// program's file that took its number.
pub fn scan_threads(s: &'static Session, dir: &mut Option<super::outfile::ReadFile>) {
    if !ACTIVE.load(Ordering::Acquire) || s.cfg.cpu_hz == 0 {
        return;
    }
    let now = mono_ns();
    if now < s.cpu.last_scan_ns.load(Ordering::Relaxed) + SCAN_NS {
        return;
    }
    s.cpu.last_scan_ns.store(now, Ordering::Relaxed);
    if dir.is_none() {
        *dir = super::outfile::ReadFile::open("/proc/self/task");
    }
    let Some(dir) = dir.as_mut() else {
        return;
    };
    let me = gettid();
    let mut tids: Vec<u32> = Vec::new();
    dir.list(|name| {
        if let Some(tid) = std::str::from_utf8(name).ok().and_then(|n| n.parse().ok()) {
            tids.push(tid);
        }
    });
    for tid in tids {
        // SAFETY: entries are leaked threads freed only once unlisted (see `reap`).
        let cur = unsafe { (THREADS.get(tid) as *const CpuThread).as_ref() };
        if tid == me || cur.is_some_and(|c| std::ptr::eq(c.session, s)) {
            continue;
        }
        arm(s, tid, StackBounds::default());
    }
}

/// How often the writer looks for threads the recorder has not seen.
const SCAN_NS: u64 = 100_000_000;

/// Creates `tid`'s entry and timer (on `tid`'s own CPU clock).
fn arm(s: &'static Session, tid: u32, bounds: StackBounds) {
    let n = ring_slots(s.cfg.cpu_hz, s.cfg.flush_ms);
    let slots = (0..n)
        .map(|_| {
            UnsafeCell::new(Slot {
                t_ns: 0,
                weight_ns: 0,
                generation: 0,
                len: 0,
                truncated: 0,
                frames: [0; MAX_FRAMES],
            })
        })
        .collect();
    let entry = Box::new(CpuThread {
        session: s,
        tid,
        timer: AtomicUsize::new(0),
        has_timer: AtomicBool::new(false),
        stack_lo: AtomicU64::new(bounds.lo),
        stack_hi: AtomicU64::new(bounds.hi),
        unwinder: UnsafeCell::new(SignalUnwinder::new()),
        slots,
        head: AtomicU64::new(0),
        tail: AtomicU64::new(0),
        lost: AtomicU64::new(0),
        exiting: AtomicBool::new(false),
    });
    let mut threads = lock(&s.cpu.threads);
    // The thread itself (registering) and the writer's scan can both find it unarmed: the one
    // that comes second leaves it alone (two timers on one thread counted its CPU twice).
    // SAFETY: entries are leaked threads freed only once unlisted (see `reap`), which takes
    // this lock.
    let cur = unsafe { (THREADS.get(tid) as *const CpuThread).as_ref() };
    if cur.is_some_and(|c| std::ptr::eq(c.session, s) && !c.exiting.load(Ordering::Acquire)) {
        return;
    }
    let ct: &'static CpuThread = Box::leak(entry);
    if !THREADS.set(tid, ct as *const CpuThread as usize) {
        s.cpu.notice(NOTICE_NO_TIMER);
    }
    threads.push(ct);
    if MODE.load(Ordering::Acquire) == MODE_ITIMER {
        return;
    }
    match create_thread_timer(tid) {
        Some(timer) => {
            ct.timer.store(timer, Ordering::Relaxed);
            ct.has_timer.store(true, Ordering::Release);
            MODE.store(MODE_THREAD_TIMERS, Ordering::Release);
            set_timer(timer, PERIOD_NS.load(Ordering::Relaxed));
        }
        None if MODE.load(Ordering::Acquire) == MODE_NONE => {
            // Per-thread CPU timers refused (old kernel, seccomp): one process-wide timer.
            MODE.store(MODE_ITIMER, Ordering::Release);
            s.cpu.notice(NOTICE_ITIMER);
            set_itimer(PERIOD_NS.load(Ordering::Relaxed));
        }
        // The thread ended between the scan and now, or the system refused: not sampled.
        None => {}
    }
}

/// The calling thread `tid` is exiting (its recorder state's key destructor): deletes its
/// timer. Samples already taken are still written.
pub fn thread_exit(s: &'static Session, tid: u32) {
    // SAFETY: entries are leaked threads freed only once unlisted (see `reap`).
    let Some(ct) = (unsafe { (THREADS.get(tid) as *const CpuThread).as_ref() }) else {
        return;
    };
    if !std::ptr::eq(ct.session, s) {
        return;
    }
    let _threads = lock(&s.cpu.threads);
    if ct.has_timer.swap(false, Ordering::AcqRel) {
        // SAFETY: the timer was created for this thread and is deleted once.
        unsafe { libc::timer_delete(ct.timer.load(Ordering::Relaxed) as libc::timer_t) };
    }
    ct.exiting.store(true, Ordering::Release);
}

/// Stops sampling for the session's end (exit, exec, `finish`): disarms every timer, drops the
/// signals still pending and puts back the program's `SIGPROF` disposition. May run in a
/// fatal-signal handler: when the thread list stays locked (a crash inside the recorder), the
/// timers are left and only the disposition is restored.
pub fn disarm(s: &Session) {
    if !ACTIVE.swap(false, Ordering::AcqRel) {
        return;
    }
    stop_timers(s);
    restore_disposition();
}

fn stop_timers(s: &Session) {
    if MODE.load(Ordering::Acquire) == MODE_ITIMER {
        set_itimer(0);
    }
    for _ in 0..1000 {
        if let Ok(threads) = s.cpu.threads.try_lock() {
            for ct in threads.iter() {
                if ct.has_timer.load(Ordering::Acquire) {
                    set_timer(ct.timer.load(Ordering::Relaxed), 0);
                }
            }
            return;
        }
        std::thread::yield_now();
    }
}

/// Restarts sampling stopped by [`disarm`] (after an `exec` that failed).
pub fn rearm(s: &'static Session) {
    if s.cfg.cpu_hz == 0
        || YIELDED.load(Ordering::Acquire)
        || ACTIVE.load(Ordering::Acquire)
        || MODE.load(Ordering::Acquire) == MODE_NONE
    {
        return;
    }
    ACTIVE.store(true, Ordering::Release);
    install_handler(handler_address());
    let period = PERIOD_NS.load(Ordering::Relaxed);
    if MODE.load(Ordering::Acquire) == MODE_ITIMER {
        set_itimer(period);
    }
    for ct in lock(&s.cpu.threads).iter() {
        if ct.has_timer.load(Ordering::Acquire) {
            set_timer(ct.timer.load(Ordering::Relaxed), period);
        }
    }
}

/// True while the recorder owns `SIGPROF` (the preload's `sigaction` then answers queries with
/// [`program_disposition`] and treats a change as the program taking the signal back).
pub fn owns_sigprof() -> bool {
    ACTIVE.load(Ordering::Acquire) && !OWN_CALL.load(Ordering::Acquire)
}

/// The program's own `SIGPROF` disposition, as it would see it without the recorder.
pub fn program_disposition() -> libc::sigaction {
    sigprof::program_disposition()
}

/// The program takes `SIGPROF` (installs a handler or an `ITIMER_PROF` timer): sampling stops
/// for the rest of the process, the program's disposition is put back, and the profile says so.
pub fn yield_to_program() {
    if YIELDED.swap(true, Ordering::AcqRel) {
        return;
    }
    if let Some(s) = super::session::current() {
        s.cpu.notice(NOTICE_TAKEN_BY_PROGRAM);
        disarm(s);
    }
    super::report("the program uses SIGPROF itself: CPU sampling stopped");
}

/// Writer, at every timeline sample: when the program replaced the handler without the
/// interposed calls (raw system call, or the in-process recorder, which interposes nothing),
/// stops sampling without touching the program's handler.
pub fn check_disposition(s: &Session) {
    if !ACTIVE.load(Ordering::Acquire) || OWN_CALL.load(Ordering::Acquire) {
        return;
    }
    if kernel_handler() != handler_address() && !YIELDED.swap(true, Ordering::AcqRel) {
        ACTIVE.store(false, Ordering::Release);
        stop_timers(s);
        s.cpu.notice(NOTICE_TAKEN_BY_PROGRAM);
        super::report("the program installed its own SIGPROF handler: CPU sampling stopped");
    }
}

extern "C" fn on_sigprof(_sig: libc::c_int, info: *mut libc::siginfo_t, uc: *mut libc::c_void) {
    // SAFETY: __errno_location returns this thread's errno slot; the handler must leave it as
    // the interrupted code had it.
    let errno = unsafe { *libc::__errno_location() };
    // SAFETY: the kernel passed `info` and `uc` to this SA_SIGINFO handler.
    unsafe { take_sample(info, uc) };
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
}

/// Offset of `si_overrun` in a timer's `siginfo_t` (after `si_signo, si_errno, si_code`, the
/// union's padding to 16 bytes, and `si_tid`).
const SI_OVERRUN_OFFSET: usize = 20;

/// # Safety
/// Called from the `SIGPROF` handler with the kernel's arguments.
unsafe fn take_sample(info: *const libc::siginfo_t, uc: *const libc::c_void) {
    let Some(s) = super::session::current() else {
        return;
    };
    if !ACTIVE.load(Ordering::Acquire) || s.cfg.cpu_hz == 0 {
        return;
    }
    let tid = gettid();
    // SAFETY: entries are leaked threads freed only once unlisted, after their thread is gone.
    let ct = match unsafe { (THREADS.get(tid) as *const CpuThread).as_ref() } {
        Some(c) if std::ptr::eq(c.session, s) => c,
        _ => {
            // A thread the recorder has not seen (the process-wide timer picked it).
            s.cpu.lost.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    // SAFETY: `info` is the kernel's siginfo; for SI_TIMER the overrun count is at its offset.
    let overrun = unsafe {
        if !info.is_null() && (*info).si_code == libc::SI_TIMER {
            u64::from(
                ((info as *const u8).add(SI_OVERRUN_OFFSET) as *const i32)
                    .read_unaligned()
                    .max(0) as u32,
            )
        } else {
            0
        }
    };
    let h = ct.head.load(Ordering::Relaxed);
    let t = ct.tail.load(Ordering::Acquire);
    if h - t >= ct.slots.len() as u64 {
        ct.lost.fetch_add(1, Ordering::Relaxed);
        return;
    }
    // SAFETY: slot `h` is not visible to the writer until `head` moves past it, and only this
    // thread's handler writes slots (SIGPROF is blocked while its handler runs).
    let slot = unsafe { &mut *ct.slots[(h as usize) & (ct.slots.len() - 1)].get() };
    // SAFETY: `uc` is the handler's ucontext.
    let regs = unsafe { Registers::from_ucontext(uc) };
    let mut bounds = StackBounds {
        lo: ct.stack_lo.load(Ordering::Relaxed),
        hi: ct.stack_hi.load(Ordering::Relaxed),
    };
    if bounds.hi == 0 {
        // Armed by the writer's scan: find this thread's stack now (raw open/read of
        // /proc/self/maps, no allocation, no lock), once.
        bounds = StackBounds::current();
        ct.stack_lo.store(bounds.lo, Ordering::Relaxed);
        ct.stack_hi.store(bounds.hi.max(1), Ordering::Relaxed);
    }
    // SAFETY: only this thread's handler uses its unwinder.
    let w = unsafe { &mut *ct.unwinder.get() }.walk(regs, bounds, &mut slot.frames);
    slot.len = w.len as u32;
    slot.truncated = u32::from(w.truncated);
    slot.generation = w.generation;
    slot.t_ns = mono_ns().saturating_sub(s.start_mono_ns);
    slot.weight_ns = PERIOD_NS.load(Ordering::Relaxed) * (1 + overrun);
    ct.head.store(h + 1, Ordering::Release);
}

/// Writer: moves every ring's samples into `out` as `CPU_SAMPLE` records (their stacks interned,
/// so the pass's definitions, taken after this, define them), with messages for new notices.
pub fn drain(s: &Session, out: &mut Vec<u8>) {
    let new = s.cpu.notices.load(Ordering::Relaxed) & !s.cpu.noticed.load(Ordering::Relaxed);
    if new != 0 {
        s.cpu.noticed.fetch_or(new, Ordering::Relaxed);
        for (bit, text) in [
            (
                NOTICE_HANDLER_AT_START,
                "program has its own SIGPROF handler: no CPU samples",
            ),
            (
                NOTICE_TAKEN_BY_PROGRAM,
                "program took SIGPROF: CPU sampling stopped",
            ),
            (
                NOTICE_ITIMER,
                "per-thread CPU timers refused: sampling with ITIMER_PROF",
            ),
            (
                NOTICE_NO_TIMER,
                "some threads could not be armed for CPU sampling",
            ),
        ] {
            if new & bit != 0 {
                format::put_message(out, 1, text);
            }
        }
    }
    let threads = lock(&s.cpu.threads);
    let mut written = 0;
    for ct in threads.iter() {
        let t = ct.tail.load(Ordering::Relaxed);
        let h = ct.head.load(Ordering::Acquire);
        for i in t..h {
            // SAFETY: slots below `head` are complete and the handler does not touch them
            // until `tail` moves past them.
            let slot = unsafe { &*ct.slots[(i as usize) & (ct.slots.len() - 1)].get() };
            let frames = &slot.frames[..(slot.len as usize).min(MAX_FRAMES)];
            if frames.is_empty() {
                ct.lost.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let generation = slot.generation.max(1);
            let key = unwind::hash::hash_frames(frames)
                ^ u128::from(generation).wrapping_mul(super::GENERATION_MIX);
            let id = lock(&s.stacks).intern(key, frames, generation, slot.truncated != 0);
            format::put_cpu_sample(out, ct.tid, slot.t_ns, id, slot.weight_ns);
            written += 1;
        }
        ct.tail.store(h, Ordering::Release);
    }
    s.cpu.written.fetch_add(written, Ordering::Relaxed);
}

/// Writer: frees the entries of threads that exited and are gone, once their rings are empty.
pub fn reap(s: &Session) {
    let mut threads = lock(&s.cpu.threads);
    let mut i = 0;
    while i < threads.len() {
        let ct = threads[i];
        let empty = ct.head.load(Ordering::Acquire) == ct.tail.load(Ordering::Relaxed);
        if !(empty && gone(s.pid, ct.tid)) {
            i += 1;
            continue;
        }
        threads.swap_remove(i);
        if ct.has_timer.swap(false, Ordering::AcqRel) {
            // SAFETY: the timer of a thread that ended without its exit being seen.
            unsafe { libc::timer_delete(ct.timer.load(Ordering::Relaxed) as libc::timer_t) };
        }
        THREADS.clear_if(ct.tid, ct as *const CpuThread as usize);
        s.cpu
            .lost
            .fetch_add(ct.lost.load(Ordering::Relaxed), Ordering::Relaxed);
        // SAFETY: the thread is gone (no handler can run for it), the entry is unlisted, and
        // it came from `Box::leak` in `thread_start`.
        drop(unsafe { Box::from_raw(ct as *const CpuThread as *mut CpuThread) });
    }
}

fn gone(pid: u32, tid: u32) -> bool {
    // SAFETY: tgkill with signal 0 only checks that the thread exists.
    let rc = unsafe { libc::syscall(libc::SYS_tgkill, pid as libc::pid_t, tid as libc::pid_t, 0) };
    rc == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

/// Trailer values: samples written and samples lost (none when sampling was not asked for).
pub fn trailer_values(s: &Session) -> Vec<(u64, u64)> {
    if s.cfg.cpu_hz == 0 {
        return Vec::new();
    }
    let lost = s.cpu.lost.load(Ordering::Relaxed)
        + lock(&s.cpu.threads)
            .iter()
            .map(|c| c.lost.load(Ordering::Relaxed))
            .sum::<u64>();
    vec![
        (
            format::trailer_key::CPU_SAMPLES,
            s.cpu.written.load(Ordering::Relaxed),
        ),
        (format::trailer_key::CPU_SAMPLES_LOST, lost),
        (
            format::trailer_key::CPU_PERIOD_NS,
            PERIOD_NS.load(Ordering::Relaxed),
        ),
    ]
}

/// The address of [`on_sigprof`], as sigaction stores it.
fn handler_address() -> usize {
    on_sigprof as *const () as usize
}
