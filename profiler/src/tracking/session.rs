//! Recording sessions of the in-process recorder.
//!
//! ```text
//!   ENV_UNCHECKED ──first allocation──► ENV_CHECKING ──► ENV_DONE
//!                                         │ TIDEMARK_OUT set: start a session that lasts until
//!                                         │ exit (flushed by the recorder's atexit handler)
//!   Session::start ──► RECORDING = true ──drop──► recorder finish, RECORDING = false
//! ```

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::OnceLock;

static RECORDING: AtomicBool = AtomicBool::new(false);
static ENV_STATE: AtomicU8 = AtomicU8::new(ENV_UNCHECKED);
static ALLOCATOR_NAME: OnceLock<&'static str> = OnceLock::new();
const ENV_UNCHECKED: u8 = 0;
const ENV_CHECKING: u8 = 1;
const ENV_DONE: u8 = 2;

/// Why a session could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// A session (or `TIDEMARK_OUT`) is already recording in this process.
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
}

impl SessionOptions {
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
}

impl Session {
    /// Starts recording every allocation of the process into `path`, replacing any file there.
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
        start_recorder(&path, true, &opts)?;
        Ok(Session { path })
    }

    /// Path of the profile being written.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        RECORDING.store(false, Ordering::Release);
        crate::record::finish();
    }
}

/// Starts the recorder into `path`; `replace` truncates an existing file (an explicit
/// `Session::start`), otherwise the recorder writes beside it (`TIDEMARK_OUT`, inherited by
/// child processes).
fn start_recorder(path: &Path, replace: bool, opts: &SessionOptions) -> Result<(), SessionError> {
    let mut cfg = crate::record::Config::from_env();
    cfg.escape |= opts.escape;
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

/// Finishes the profile when the process exits without dropping the session (`TIDEMARK_OUT`,
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

/// At the first allocation of the process, starts a session if `TIDEMARK_OUT` names a file.
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
    // SAFETY: getenv with a NUL-terminated literal; it does not allocate. The returned pointer
    // is read at once, before anything could change the environment.
    let value = unsafe { libc::getenv(c"TIDEMARK_OUT".as_ptr()) };
    if !value.is_null() {
        // SAFETY: getenv returned a valid NUL-terminated string.
        let bytes = unsafe { std::ffi::CStr::from_ptr(value) }.to_bytes();
        if !bytes.is_empty() {
            use std::os::unix::ffi::OsStrExt;
            let path = PathBuf::from(std::ffi::OsStr::from_bytes(bytes));
            if let Err(e) = start_recorder(&path, false, &SessionOptions::default()) {
                eprintln!("tidemark: TIDEMARK_OUT: {e}; recording disabled");
            }
        }
    }
    ENV_STATE.store(ENV_DONE, Ordering::Release);
}
