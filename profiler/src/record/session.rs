//! A recording session: one profile file, its writer thread and shared tables.
//!
//! ```text
//!            start()                       finish() / atexit
//!  (none) ───────────► RUNNING ─────────────────────────────► STOPPING ──writer done──► STOPPED
//!                        │  fork(): the child drops the parent's session (never touching its
//!                        │  locks or file) and starts its own, named with the child's pid
//!                        └─ write error: STOPPED, one line on stderr, hooks pass through
//! ```

use super::buffer::{FullQueue, Pool};
use super::config::{self, Config};
use super::outfile::ProfileFile;
use super::sampler::Sources;
use super::sampling::SampledSet;
use super::stacks::StackTable;
use super::thread::{self, ThreadState};
use super::{writer, RecordError};
use crate::format::{self, Header};
pub use crate::sys::clock::mono_ns;
use crate::sys::clock::realtime_ns;
pub use crate::sys::lock;
use crate::unwind::{modules, process};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Mutex, Once};

static SESSION: AtomicPtr<Session> = AtomicPtr::new(std::ptr::null_mut());

const RUNNING: u8 = 1;
const STOPPING: u8 = 2;
const STOPPED: u8 = 3;

/// The current session, if any.
#[inline(always)]
pub fn current() -> Option<&'static Session> {
    // SAFETY: sessions are leaked and never freed.
    unsafe { SESSION.load(Ordering::Acquire).as_ref() }
}

/// A futex-backed wake-up flag for the writer.
pub struct Wakeup {
    word: AtomicU32,
}

impl Wakeup {
    const fn new() -> Wakeup {
        Wakeup {
            word: AtomicU32::new(0),
        }
    }

    /// Wakes the writer (cheap when already signalled).
    pub fn wake(&self) {
        if self.word.swap(1, Ordering::Release) == 0 {
            // SAFETY: FUTEX_WAKE on a valid aligned u32.
            unsafe {
                libc::syscall(
                    libc::SYS_futex,
                    self.word.as_ptr(),
                    libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
                    1,
                );
            }
        }
    }

    /// Sleeps up to `ns` unless signalled; returns (and clears) whether it was signalled.
    pub fn wait(&self, ns: u64) -> bool {
        if self.word.swap(0, Ordering::Acquire) == 1 {
            return true;
        }
        let ts = libc::timespec {
            tv_sec: (ns / 1_000_000_000) as libc::time_t,
            tv_nsec: (ns % 1_000_000_000) as libc::c_long,
        };
        // SAFETY: FUTEX_WAIT on a valid aligned u32 with a valid relative timeout.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                self.word.as_ptr(),
                libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
                0,
                &ts as *const libc::timespec,
            );
        }
        self.word.swap(0, Ordering::Acquire) == 1
    }
}

/// Threads known to a session.
pub struct ThreadPtr(pub &'static ThreadState);

/// Counts of threads already reaped.
#[derive(Default)]
pub struct Retired {
    /// Allocation records.
    pub alloc_calls: AtomicU64,
    /// Allocated bytes.
    pub alloc_bytes: AtomicU64,
    /// Free records.
    pub free_calls: AtomicU64,
    /// Realloc records.
    pub realloc_calls: AtomicU64,
}

/// Everything one profile needs.
pub struct Session {
    /// The configuration it was started with.
    pub cfg: Config,
    /// Process id at start.
    pub pid: u32,
    /// Where the profile goes.
    pub path: PathBuf,
    state: AtomicU8,
    /// CLOCK_MONOTONIC at start, ns.
    pub start_mono_ns: u64,
    /// Registered threads.
    pub registry: Mutex<Vec<ThreadPtr>>,
    /// Interned stacks and pending definitions.
    pub stacks: Mutex<StackTable>,
    /// The writer's encoder of the definitions it takes from `stacks` (kept here for a writer
    /// started after a failed exec, which continues the stream).
    pub definitions: Mutex<super::stacks::Definitions>,
    /// Full buffers for the writer.
    pub full: FullQueue,
    /// The event stream's state while no writer runs (between a writer stopped for an `exec`
    /// and the one that continues the profile when the `exec` failed): block numbers go on.
    pub orderer: Mutex<Option<super::order::Orderer>>,
    /// Empty buffers.
    pub pool: Pool,
    /// Writer wake-up.
    pub wake: Wakeup,
    /// Set by `finish`: the writer's last pass.
    pub stop: AtomicBool,
    /// Events lost to memory exhaustion.
    pub dropped: AtomicU64,
    /// Totals of reaped threads.
    pub retired: Retired,
    /// Live sampled blocks, in sampling mode.
    pub sampled: Option<SampledSet>,
    /// True when a thread re-entering the hooks while busy is the program's own event, which is
    /// then counted as dropped: in the preload library the recorder's own allocations never
    /// reach the exported hooks, so only a signal handler interrupting an event re-enters. In
    /// process (`Tracking`) the recorder's allocations do come back through the hooks.
    pub count_reentry: bool,
    /// Set while the session is stopped for an `exec` that may still fail.
    pub paused: AtomicBool,
    /// CPU sampling state (see [`super::cpu`]).
    pub cpu: super::cpu::CpuSession,
    /// Thread buffer locks are asymmetric: the process registered for `membarrier`
    /// (`sys::owner_lock`); fixed for the session's life.
    pub asym: bool,
    writer: AtomicU64,
}

// SAFETY: all fields are synchronised (atomics, mutexes, lock-free queues).
unsafe impl Sync for Session {}
// SAFETY: as above.
unsafe impl Send for Session {}

impl Session {
    /// True while events are recorded.
    #[inline(always)]
    pub fn is_running(&self) -> bool {
        self.state.load(Ordering::Relaxed) == RUNNING
    }

    /// Mean bytes between samples; 0 when every allocation is recorded.
    #[inline(always)]
    pub fn sampling_rate(&self) -> u64 {
        self.cfg.sampling_rate
    }

    /// Counts an event that could not be recorded.
    pub fn note_dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Lists a new thread.
    pub fn add_thread(&self, t: &'static ThreadState) {
        lock(&self.registry).push(ThreadPtr(t));
    }

    /// Stops recording for good (write failure).
    pub fn disable(&self) {
        self.state.store(STOPPED, Ordering::Release);
    }
}

fn exe_name(exe: &str) -> String {
    std::path::Path::new(exe)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "unknown".to_owned())
}

fn cmdline() -> Vec<String> {
    let raw = std::fs::read("/proc/self/cmdline").unwrap_or_default();
    let mut args: Vec<String> = raw
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    if args.last().is_some_and(String::is_empty) {
        args.pop();
    }
    args
}

static ATFORK: Once = Once::new();

/// Starts recording (see [`super::start`]).
pub fn start(cfg: Config) -> Result<(), RecordError> {
    if current().is_some_and(|s| s.state.load(Ordering::Acquire) != STOPPED) {
        return Err(RecordError::AlreadyStarted);
    }
    if !thread::ensure_key() {
        return Err(RecordError::Key(std::io::Error::last_os_error()));
    }
    ATFORK.call_once(|| {
        // SAFETY: the handlers are plain functions valid for the life of the process.
        unsafe { libc::pthread_atfork(Some(fork_prepare), Some(fork_parent), Some(fork_child)) };
    });
    // Messages go where the user started the program, whatever it does with descriptor 2.
    super::outfile::hold_stderr();
    // The module map the profile starts with, and the unwinder of the same generation.
    let modules_now = modules::enumerate();
    let generation = process::install(&modules_now).generation;
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() } as u32;
    let exe = modules::exe_path();
    let wanted = config::expand_template(&cfg.output, pid, &exe_name(&exe));
    let (file, path) =
        config::create_output(&wanted, pid, cfg.replace).map_err(|source| RecordError::Output {
            path: wanted.clone(),
            source,
        })?;
    let start_mono_ns = mono_ns();
    // 2^17 buckets x 8 slots (8 MiB): room for ~1M live sampled blocks.
    let sampled = (cfg.sampling_rate != 0).then(|| SampledSet::new(1 << 17));
    let header = Header {
        version: format::VERSION,
        pid,
        exe,
        cmdline: cmdline(),
        start_unix_ns: realtime_ns(),
        start_mono_ns,
        // SAFETY: sysconf has no preconditions.
        page_size: unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64,
        sampling_rate: cfg.sampling_rate,
        interval_ms: cfg.interval_ms,
        source: cfg.source.to_owned(),
        limit_bytes: cfg.limit_bytes,
        allocator: cfg.allocator.clone(),
        unwind: cfg.unwind.name().to_owned(),
        allocator_requested: cfg.allocator_requested.clone(),
        escape: cfg.escape,
    };
    let count_reentry = cfg.source == "preload";
    // `TIDEMARK_OWNER_LOCK=spin` keeps every thread's buffer lock a spin lock (for comparison,
    // or where `membarrier` misbehaves).
    let asym = std::env::var_os("TIDEMARK_OWNER_LOCK").is_none_or(|v| v != "spin")
        && crate::sys::owner_lock::register_membarrier();
    let session: &'static Session = Box::leak(Box::new(Session {
        cfg,
        pid,
        path: path.clone(),
        state: AtomicU8::new(RUNNING),
        start_mono_ns,
        registry: Mutex::new(Vec::with_capacity(64)),
        stacks: Mutex::new(StackTable::new()),
        definitions: Mutex::new(super::stacks::Definitions::default()),
        full: FullQueue::new(),
        orderer: Mutex::new(None),
        pool: Pool::new(),
        wake: Wakeup::new(),
        stop: AtomicBool::new(false),
        dropped: AtomicU64::new(0),
        retired: Retired::default(),
        sampled,
        count_reentry,
        paused: AtomicBool::new(false),
        cpu: super::cpu::CpuSession::default(),
        asym,
        writer: AtomicU64::new(0),
    }));
    session.pool.prefill(8);
    // Header and module map go out now: a process that execs or is killed right away still
    // leaves a readable profile.
    let mut first = header.encode();
    let mut maps = Vec::new();
    format::put_modules(&mut maps, generation, &modules_now.format_modules());
    format::put_chunk_small(&mut first, format::ChunkKind::Definitions, &maps);
    // On the program's thread: past a file size limit (`ulimit -f`) the write fails instead of
    // killing the program with SIGXFSZ.
    super::outfile::write_all_quiet(std::os::fd::AsRawFd::as_raw_fd(&file), &first).map_err(
        |source| {
            session.disable();
            RecordError::Output {
                path: path.clone(),
                source,
            }
        },
    )?;
    // Out of the program's way before it runs (`outfile`): the profile's descriptor and the
    // files read at every sample.
    let file = ProfileFile::new(file, &path).map_err(|source| {
        session.disable();
        RecordError::Output {
            path: path.clone(),
            source,
        }
    })?;
    let tid = writer::spawn(session, file, Sources::discover()).map_err(|e| {
        session.disable();
        RecordError::Writer(e)
    })?;
    session.writer.store(tid, Ordering::Release);
    super::cpu::start(session);
    SESSION.store(session as *const Session as *mut Session, Ordering::Release);
    Ok(())
}

/// Ends the current session (see [`super::finish`]).
pub fn finish() {
    if let Some(s) = current() {
        stop(s, None);
    }
}

/// Stops `s`: the writer drains every buffer, writes the trailer and ends. Waits for it at most
/// `max_wait` (`None`: as long as it takes). True when the writer finished in time.
fn stop(s: &Session, max_wait: Option<std::time::Duration>) -> bool {
    if s.state
        .compare_exchange(RUNNING, STOPPING, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return false;
    }
    super::cpu::disarm(s);
    s.stop.store(true, Ordering::Release);
    s.wake.wake();
    let t = s.writer.load(Ordering::Acquire);
    let joined = t == 0 || join(t as libc::pthread_t, max_wait);
    s.state.store(STOPPED, Ordering::Release);
    joined
}

/// Joins the writer, waiting at most `max_wait`.
fn join(t: libc::pthread_t, max_wait: Option<std::time::Duration>) -> bool {
    // SAFETY: `t` is the joinable writer thread of this session, joined only here (the state
    // transition in `stop` lets exactly one caller through); `ts` is a valid timespec.
    unsafe {
        match max_wait {
            None => libc::pthread_join(t, std::ptr::null_mut()) == 0,
            Some(d) => {
                let mut ts = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                };
                libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts);
                let ns = ts.tv_nsec as u64 + d.subsec_nanos() as u64;
                ts.tv_sec += d.as_secs() as libc::time_t + (ns / 1_000_000_000) as libc::time_t;
                ts.tv_nsec = (ns % 1_000_000_000) as libc::c_long;
                libc::pthread_timedjoin_np(t, std::ptr::null_mut(), &ts) == 0
            }
        }
    }
}

/// The current session when it belongs to this process (not to the parent of a `vfork` child,
/// which shares the parent's memory and must not stop the parent's session).
fn own_session() -> Option<&'static Session> {
    let s = current()?;
    // SAFETY: getpid has no preconditions (and is not cached by glibc).
    (unsafe { libc::getpid() } as u32 == s.pid).then_some(s)
}

/// Ends the session before the process image goes away without `atexit` (`_exit`, `_Exit`,
/// `syscall(SYS_exit_group)`). Does nothing in a `vfork` child.
pub fn finish_before_exit() {
    if let Some(s) = own_session() {
        stop(s, None);
    }
}

/// Ends the session from a fatal-signal handler, waiting for the writer at most `max_wait`: a
/// thread that crashed inside the recorder may hold a lock the writer needs, and the process
/// must still die. True when the profile was finished.
pub fn finish_from_fatal_signal(max_wait: std::time::Duration) -> bool {
    own_session().is_some_and(|s| stop(s, Some(max_wait)))
}

/// Ends the session before an `exec` replaces the image (the profile is complete if it
/// succeeds); [`resume_after_failed_exec`] continues it if the call returns. Does nothing in a
/// `vfork` child.
pub fn finish_before_exec() {
    if let Some(s) = own_session() {
        // Set first: other threads' events from now on are counted as dropped.
        s.paused.store(true, Ordering::Release);
        if !stop(s, None) {
            s.paused.store(false, Ordering::Release);
        }
    }
}

/// After a failed `exec`: removes the trailer written by [`finish_before_exec`] and records on
/// into the same profile with a new writer. Events other threads made while the session was
/// stopped are counted as dropped. Says so on stderr (and stays stopped) when the profile
/// cannot be reopened.
pub fn resume_after_failed_exec() {
    let Some(s) = own_session() else { return };
    if !s.paused.load(Ordering::Acquire) {
        return;
    }
    // Reopening the profile and starting a writer allocate: the recorder's own work, not the
    // program's events.
    RESUMING.store(thread::gettid(), Ordering::Release);
    resume(s);
    RESUMING.store(0, Ordering::Release);
}

/// The thread resuming a session after a failed exec (0: none).
static RESUMING: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

fn resume(s: &'static Session) {
    let file = match reopen_without_trailer(&s.path).and_then(|f| ProfileFile::new(f, &s.path)) {
        Ok(f) => f,
        Err(e) => {
            s.paused.store(false, Ordering::Release);
            super::report(&format!(
                "cannot continue {} after a failed exec: {}; recording stopped",
                s.path.display(),
                super::describe_io(&e)
            ));
            return;
        }
    };
    s.stop.store(false, Ordering::Release);
    s.state.store(RUNNING, Ordering::Release);
    s.paused.store(false, Ordering::Release);
    match writer::spawn(s, file, Sources::discover()) {
        Ok(tid) => {
            s.writer.store(tid, Ordering::Release);
            super::cpu::rearm(s);
        }
        Err(e) => {
            s.disable();
            super::report(&format!(
                "cannot restart the writer after a failed exec: {}; recording stopped",
                super::describe_io(&e)
            ));
        }
    }
}

/// Opens the finished profile at `path` for appending, cut before its last chunk when that
/// chunk holds the trailer (a process that dies later must not leave a profile claiming to be
/// complete).
fn reopen_without_trailer(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)?;
    let mut reader = format::Reader::new(std::io::BufReader::new(&file))
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut cut = None;
    loop {
        let start = reader.offset();
        let Some(chunk) = reader
            .next_chunk()
            .map_err(|e| std::io::Error::other(e.to_string()))?
        else {
            break;
        };
        let mut trailer = false;
        for r in chunk {
            trailer = matches!(r, Ok(format::Record::Trailer { .. }));
        }
        cut = trailer.then_some(start);
    }
    drop(reader);
    if let Some(at) = cut {
        file.set_len(at)?;
    }
    let mut file = file;
    std::io::Seek::seek(&mut file, std::io::SeekFrom::End(0))?;
    Ok(file)
}

/// Counts an event that arrived while the session was stopped for an `exec` that then failed.
#[cold]
pub fn note_if_paused() {
    if let Some(s) = current() {
        // The writer's own allocations (its last pass runs while paused) and those of the thread
        // resuming the session are not events.
        if s.paused.load(Ordering::Relaxed)
            && !thread::is_busy(s)
            && RESUMING.load(Ordering::Acquire) != thread::gettid()
        {
            s.note_dropped();
        }
    }
}

/// Marks the session stopped once the writer is done.
pub fn writer_finished(s: &Session) {
    let _ = s
        .state
        .compare_exchange(RUNNING, STOPPED, Ordering::AcqRel, Ordering::Acquire);
}

extern "C" fn fork_prepare() {
    process::fork_prepare();
}

extern "C" fn fork_parent() {
    process::fork_release();
}

extern "C" fn fork_child() {
    process::fork_release();
    let Some(s) = current() else { return };
    if !s.is_running() {
        return;
    }
    // The parent's session belongs to the parent: its writer does not exist here, and its
    // locks may be held by threads that do not exist here either. Start over, without the
    // parent's descriptors (its profile, its timeline's files).
    SESSION.store(std::ptr::null_mut(), Ordering::Release);
    super::outfile::close_inherited();
    let cfg = s.cfg.clone();
    if let Err(e) = start(cfg) {
        super::report(&format!("{e}; recording disabled in child process"));
    }
}
