//! Recording sessions of the in-process recorder.
//!
//! ```text
//!   ENV_UNCHECKED ──first allocation──► ENV_CHECKING ──► ENV_DONE
//!                                         │ TIDEMARK_OUTPUT (or its old name TIDEMARK_OUT) set:
//!                                         │ start a session that lasts until exit (flushed by
//!                                         │ the recorder's atexit handler)
//!   Session::start ──► RECORDING = true ──drop──► recorder finish, RECORDING = false
//! ```
//!
//! One recorder per process: when the preload library (`tidemark run`,
//! `LD_PRELOAD=libtidemark_preload.so`) records the process, it wins — it writes the profile the
//! user asked `tidemark run` for, and it sees every malloc call, the wrapped allocator's included
//! when that is the system one — and the in-process recorder stays off and says so once on
//! stderr ([`PRELOAD_WINS`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::OnceLock;

static RECORDING: AtomicBool = AtomicBool::new(false);
static ENV_STATE: AtomicU8 = AtomicU8::new(ENV_UNCHECKED);
static ALLOCATOR_NAME: OnceLock<&'static str> = OnceLock::new();
/// What the in-process recorder says, once, when the preload library records the process.
pub(crate) const PRELOAD_WINS: &str = "tidemark: the preload library (tidemark run) records this \
    process; the in-process recorder (tidemark::Tracking) stays off";
/// The environment variable naming the in-process recorder's output, as the preload's.
pub(crate) const OUTPUT_VAR: &str = "TIDEMARK_OUTPUT";
/// Its old name, still read (with a warning) when [`OUTPUT_VAR`] is not set.
pub(crate) const OLD_OUTPUT_VAR: &str = "TIDEMARK_OUT";
const ENV_UNCHECKED: u8 = 0;
const ENV_CHECKING: u8 = 1;
const ENV_DONE: u8 = 2;

/// Why a session could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// A session (or `TIDEMARK_OUTPUT`) is already recording in this process.
    #[error("a tidemark session is already recording in this process")]
    AlreadyRecording,
    /// The recorder could not start (for example, the output file cannot be created).
    #[error("cannot start recording to {path}: {reason}")]
    Start {
        /// The requested profile path.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// Options of [`Session::start_with`]; `Default` gives [`Session::start`]'s (then the
/// environment's `TIDEMARK_*` options still apply).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionOptions {
    /// Record frame addresses with every allocation and free, for escape analysis and stack
    /// peaks (as `tidemark run --escape`). Default: false (`TIDEMARK_ESCAPE=1` turns it on too).
    pub escape: bool,
    /// Sample the on-CPU stacks of every thread this many times per second of its CPU time (as
    /// `tidemark run --cpu-hz`); `Some(0)` turns CPU sampling off. Default: `None`
    /// (`TIDEMARK_CPU_HZ` decides).
    pub cpu_hz: Option<u64>,
}

impl SessionOptions {
    /// Sets [`SessionOptions::cpu_hz`].
    pub fn cpu_hz(mut self, hz: u64) -> Self {
        self.cpu_hz = Some(hz);
        self
    }

    /// Sets [`SessionOptions::escape`].
    pub fn escape(mut self, on: bool) -> Self {
        self.escape = on;
        self
    }
}

/// A running recording; dropping it writes the trailer and closes the profile.
///
/// Allocations are recorded only when `#[global_allocator]` is a [`crate::Tracking`].
#[derive(Debug)]
pub struct Session {
    path: PathBuf,
    /// False when the preload library records the process instead ([`PRELOAD_WINS`]).
    active: bool,
}

impl Session {
    /// Starts recording every allocation of the process into `path`, replacing any file there.
    ///
    /// Under the preload library (`tidemark run`) nothing is started: the preload's profile is
    /// the one, the session is inactive ([`Session::is_recording`] is false) and a line on
    /// stderr says so.
    pub fn start(path: impl AsRef<Path>) -> Result<Session, SessionError> {
        Session::start_with(path, SessionOptions::default())
    }

    /// Like [`Session::start`], with options:
    ///
    /// ```no_run
    /// use tidemark::{Session, SessionOptions};
    /// let _s = Session::start_with("app.tmk", SessionOptions::default().escape(true)).unwrap();
    /// ```
    pub fn start_with(
        path: impl AsRef<Path>,
        opts: SessionOptions,
    ) -> Result<Session, SessionError> {
        let path = path.as_ref().to_path_buf();
        if RECORDING.load(Ordering::Acquire) {
            return Err(SessionError::AlreadyRecording);
        }
        if preload_records() {
            say_preload_wins();
            return Ok(Session {
                path,
                active: false,
            });
        }
        start_recorder(&path, true, &opts)?;
        Ok(Session { path, active: true })
    }

    /// Path of the profile being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// False when the preload library records the process and this session records nothing.
    pub fn is_recording(&self) -> bool {
        self.active
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.active {
            RECORDING.store(false, Ordering::Release);
            crate::record::finish();
        }
    }
}

/// True when the preload library records this process: it exports
/// `tidemark_preload_recording`, which says whether its recorder started.
fn preload_records() -> bool {
    // SAFETY: dlsym with a NUL-terminated name. A failed lookup leaves an error message that
    // glibc allocates; reading it twice frees it. A found symbol is the preload library's
    // `extern "C" fn() -> c_int`, which only reads an atomic.
    unsafe {
        let f = libc::dlsym(libc::RTLD_DEFAULT, c"tidemark_preload_recording".as_ptr());
        if f.is_null() {
            libc::dlerror();
            libc::dlerror();
            return false;
        }
        let f = std::mem::transmute::<*mut libc::c_void, extern "C" fn() -> libc::c_int>(f);
        f() != 0
    }
}

/// Prints [`PRELOAD_WINS`] once per process.
fn say_preload_wins() {
    static SAID: AtomicBool = AtomicBool::new(false);
    if !SAID.swap(true, Ordering::AcqRel) {
        eprintln!("{PRELOAD_WINS}");
    }
}

/// Starts the recorder into `path`; `replace` truncates an existing file (an explicit
/// `Session::start`), otherwise the recorder writes beside it (`TIDEMARK_OUTPUT`, inherited by
/// child processes).
fn start_recorder(path: &Path, replace: bool, opts: &SessionOptions) -> Result<(), SessionError> {
    let mut cfg = crate::record::Config::from_env();
    cfg.escape |= opts.escape;
    if let Some(hz) = opts.cpu_hz {
        cfg.cpu_hz = hz.min(crate::record::cpu::MAX_HZ);
    }
    cfg.output = path.to_path_buf();
    cfg.replace = replace;
    cfg.source = "in-process";
    cfg.allocator = ALLOCATOR_NAME
        .get()
        .copied()
        .unwrap_or("unknown")
        .to_owned();
    // jemalloc's own counters join the timeline when it is the wrapped allocator.
    #[cfg(feature = "jemalloc")]
    if cfg.allocator.contains("Jemalloc") {
        cfg.extra_sampler = Some(crate::record::jemalloc_sampler);
    }
    crate::record::start(cfg).map_err(|e| SessionError::Start {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    RECORDING.store(true, Ordering::Release);
    register_atexit();
    Ok(())
}

/// Finishes the profile when the process exits without dropping the session (`TIDEMARK_OUTPUT`,
/// `std::process::exit`): buffered events, a trailer. Registered once per process.
fn register_atexit() {
    static REGISTERED: AtomicBool = AtomicBool::new(false);
    extern "C" fn finish_at_exit() {
        RECORDING.store(false, Ordering::Release);
        crate::record::finish();
    }
    if !REGISTERED.swap(true, Ordering::AcqRel) {
        // SAFETY: registers a plain `extern "C"` function with no captured state; `finish` is
        // idempotent, so a session already dropped is not finished twice.
        unsafe { libc::atexit(finish_at_exit) };
    }
}

/// True while a session records.
#[inline]
pub(crate) fn recording() -> bool {
    RECORDING.load(Ordering::Relaxed)
}

/// The value of an environment variable, when set and not empty. `name` is NUL-terminated.
fn env_bytes(name: &std::ffi::CStr) -> Option<Vec<u8>> {
    // SAFETY: getenv with a NUL-terminated name; it does not allocate. The returned string is
    // copied at once, before anything could change the environment.
    let value = unsafe { libc::getenv(name.as_ptr()) };
    if value.is_null() {
        return None;
    }
    // SAFETY: getenv returned a valid NUL-terminated string.
    let bytes = unsafe { std::ffi::CStr::from_ptr(value) }.to_bytes();
    (!bytes.is_empty()).then(|| bytes.to_vec())
}

/// At the first allocation of the process, starts a session if `TIDEMARK_OUTPUT` (or its old
/// name `TIDEMARK_OUT`, with a warning) names a file, unless the preload library records the
/// process ([`PRELOAD_WINS`]).
#[inline]
pub(crate) fn maybe_start_from_env(allocator_name: &'static str) {
    if ENV_STATE.load(Ordering::Relaxed) == ENV_DONE {
        return;
    }
    if ENV_STATE
        .compare_exchange(
            ENV_UNCHECKED,
            ENV_CHECKING,
            Ordering::AcqRel,
            Ordering::Relaxed,
        )
        .is_err()
    {
        return;
    }
    // The wrapped allocator's type name, for the profile header.
    let _ = ALLOCATOR_NAME.set(allocator_name);
    let output = env_bytes(c"TIDEMARK_OUTPUT");
    let old = env_bytes(c"TIDEMARK_OUT");
    let (value, var) = match (output, old) {
        (Some(v), Some(_)) => {
            eprintln!(
                "tidemark: both {OUTPUT_VAR} and {OLD_OUTPUT_VAR} are set; using {OUTPUT_VAR} \
                 ({OLD_OUTPUT_VAR} is its old name)"
            );
            (Some(v), OUTPUT_VAR)
        }
        (Some(v), None) => (Some(v), OUTPUT_VAR),
        (None, Some(v)) => {
            eprintln!(
                "tidemark: {OLD_OUTPUT_VAR} is the old name of {OUTPUT_VAR}, which the preload \
                 library reads too; set {OUTPUT_VAR} instead"
            );
            (Some(v), OLD_OUTPUT_VAR)
        }
        (None, None) => (None, OUTPUT_VAR),
    };
    if let Some(bytes) = value {
        if preload_records() {
            say_preload_wins();
        } else {
            use std::os::unix::ffi::OsStrExt;
            let path = PathBuf::from(std::ffi::OsStr::from_bytes(&bytes));
            if let Err(e) = start_recorder(&path, false, &SessionOptions::default()) {
                eprintln!("tidemark: {var}: {e}; recording disabled");
            }
        }
    }
    ENV_STATE.store(ENV_DONE, Ordering::Release);
}
