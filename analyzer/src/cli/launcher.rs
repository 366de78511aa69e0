//! Launching a program under the recorder: resolving the command like the shell, refusing
//! programs the dynamic loader will not preload into, the recorder's environment, signal
//! forwarding while the program runs, and finding the profiles its child processes and exec'd
//! programs wrote. What to do with the profiles afterwards is [`super::run`]'s business.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command as Process, ExitStatus};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::SystemTime;

use anyhow::{anyhow, bail, Context as _};

use super::{AllocatorArg, RunArgs, EXIT_ERROR};
use crate::load::LoadOptions;
use crate::symbolize::{Prewarm, Recorded, Warmed};

/// File name of the recorder library looked up next to the `tidemark` executable.
pub const PRELOAD_LIB: &str = "libtidemark_preload.so";

/// Finds `name` next to the running `tidemark` executable, or one directory up (tests run from
/// `target/<profile>/deps`).
pub fn find_beside_exe(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    let found = [Some(dir), dir.parent()]
        .into_iter()
        .flatten()
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    found
}

pub(crate) fn preload_library() -> anyhow::Result<PathBuf> {
    find_beside_exe(PRELOAD_LIB).ok_or_else(|| {
        let dir = std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(Path::to_path_buf))
            .unwrap_or_default();
        anyhow!(
            "cannot find {PRELOAD_LIB} next to tidemark (looked in {} and its parent); build it \
             with `cargo build --release` in the tidemark workspace and run target/release/tidemark",
            dir.display()
        )
    })
}

/// Resolves a command name like the shell: a path when it contains `/`, else the first
/// executable match on `PATH`.
pub(crate) fn resolve_command(name: &OsStr) -> anyhow::Result<PathBuf> {
    if name.as_bytes().contains(&b'/') {
        let p = PathBuf::from(name);
        if !p.exists() {
            bail!("{}: no such file", p.display());
        }
        if p.is_dir() {
            bail!("{} is a directory, not a program", p.display());
        }
        return Ok(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| OsString::from("/usr/bin:/bin"));
    for dir in std::env::split_paths(&path) {
        let cand = dir.join(name);
        if let Ok(m) = fs::metadata(&cand) {
            if m.is_file() && m.mode() & 0o111 != 0 {
                return Ok(cand);
            }
        }
    }
    bail!(
        "command not found: {} (searched PATH); give a path such as ./{}",
        name.to_string_lossy(),
        name.to_string_lossy()
    )
}

/// Refuses programs that ignore `LD_PRELOAD`: statically linked executables (no program
/// interpreter) and setuid/setgid ones.
pub(crate) fn check_preloadable(exe: &Path) -> anyhow::Result<()> {
    let meta = fs::metadata(exe).with_context(|| format!("cannot inspect {}", exe.display()))?;
    // SAFETY: geteuid/getegid have no preconditions and cannot fail.
    let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let setuid = meta.mode() & 0o4000 != 0 && meta.uid() != euid;
    let setgid = meta.mode() & 0o2000 != 0 && meta.gid() != egid;
    if setuid || setgid {
        bail!(
            "{} is set{}id: the dynamic loader ignores LD_PRELOAD for it, so tidemark cannot \
             record it. Profile a copy without the set{}id bit, or build the program with the \
             in-process recorder (#[global_allocator] static A: tidemark::Tracking<System> = ...; \
             see docs/usage.md)",
            exe.display(),
            if setuid { "u" } else { "g" },
            if setuid { "u" } else { "g" },
        );
    }
    let file = File::open(exe).with_context(|| format!("cannot open {}", exe.display()))?;
    // SAFETY: read-only map used only within this function; see symbolize::debuginfo.
    let map = unsafe { memmap2::Mmap::map(&file) }
        .with_context(|| format!("cannot read {}", exe.display()))?;
    if map.len() < 4 || &map[..4] != b"\x7fELF" {
        // Scripts and other formats: their interpreter is what runs; let the loader decide.
        return Ok(());
    }
    if !has_interpreter(&map) {
        bail!(
            "{} is statically linked (it has no program interpreter), so LD_PRELOAD cannot see \
             its allocations. Link the in-process recorder instead: #[global_allocator] static \
             A: tidemark::Tracking<System> = ...; (see docs/usage.md)",
            exe.display()
        );
    }
    Ok(())
}

/// True when an ELF image has a `PT_INTERP` program header (it is dynamically linked).
/// Unparseable files count as dynamic: the loader will say what is wrong with them.
pub(crate) fn has_interpreter(data: &[u8]) -> bool {
    use object::elf::PT_INTERP;
    use object::read::elf::{ElfFile32, ElfFile64, ProgramHeader};
    use object::Endianness;
    if let Ok(f) = ElfFile64::<Endianness>::parse(data) {
        let e = f.endian();
        return f
            .elf_program_headers()
            .iter()
            .any(|ph| ph.p_type(e) == PT_INTERP);
    }
    if let Ok(f) = ElfFile32::<Endianness>::parse(data) {
        let e = f.endian();
        return f
            .elf_program_headers()
            .iter()
            .any(|ph| ph.p_type(e) == PT_INTERP);
    }
    true
}

/// The environment of a recorded child.
pub(crate) fn recorder_env(
    preload: &Path,
    output: &Path,
    interval_ms: u64,
    unwind: &str,
    existing_preload: Option<&OsStr>,
) -> Vec<(&'static str, OsString)> {
    let mut ld = preload.as_os_str().to_owned();
    if let Some(old) = existing_preload.filter(|o| !o.is_empty()) {
        ld.push(":");
        ld.push(old);
    }
    // The recorder expands `%p`/`%e` in TIDEMARK_OUTPUT; `-o` is a plain path, so `%` is escaped.
    let mut out = OsString::new();
    for part in output
        .as_os_str()
        .as_bytes()
        .split(|&b| b == b'%')
        .enumerate()
    {
        if part.0 > 0 {
            out.push("%%");
        }
        out.push(OsStr::from_bytes(part.1));
    }
    vec![
        ("LD_PRELOAD", ld),
        ("TIDEMARK_OUTPUT", out),
        ("TIDEMARK_INTERVAL_MS", interval_ms.to_string().into()),
        ("TIDEMARK_UNWIND", unwind.into()),
    ]
}

/// The child being waited for, for [`forward_signal`].
static CHILD_PID: AtomicI32 = AtomicI32::new(0);

/// Passes SIGTERM/SIGHUP on to the child, so `kill <tidemark>` or `timeout` stop the program and
/// tidemark still finishes its profile.
extern "C" fn forward_signal(sig: libc::c_int) {
    let pid = CHILD_PID.load(Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe; the pid is our own child, which we have not reaped.
        unsafe { libc::kill(pid, sig) };
    }
}

/// While the child runs: SIGINT and SIGQUIT are ignored (the terminal sends them to the child
/// too), SIGTERM and SIGHUP are forwarded to the child; the old dispositions come back on drop.
struct ChildSignals {
    old: Vec<(libc::c_int, libc::sighandler_t)>,
}

impl ChildSignals {
    fn new(child_pid: u32) -> Self {
        CHILD_PID.store(child_pid as i32, Ordering::Relaxed);
        let forward = forward_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        let plan = [
            (libc::SIGINT, libc::SIG_IGN),
            (libc::SIGQUIT, libc::SIG_IGN),
            (libc::SIGTERM, forward),
            (libc::SIGHUP, forward),
        ];
        let old = plan
            .iter()
            // SAFETY: the handlers are SIG_IGN or `forward_signal`, which only does
            // async-signal-safe work; the previous handlers are restored in drop.
            .map(|&(sig, handler)| (sig, unsafe { libc::signal(sig, handler) }))
            .collect();
        ChildSignals { old }
    }
}

impl Drop for ChildSignals {
    fn drop(&mut self) {
        for &(sig, handler) in &self.old {
            // SAFETY: restores the disposition saved in `new`.
            unsafe { libc::signal(sig, handler) };
        }
        CHILD_PID.store(0, Ordering::Relaxed);
    }
}

/// The module maps and return addresses of the profile at `path` as far as the recorder has
/// written it (what [`Prewarm`] names while the command runs): the events are skipped, not
/// decompressed, and an unfinished last chunk reads as the end. A read still going when the
/// command ends stops at its next block of the file: the finish does not wait for it.
fn recorded_so_far(path: &Path) -> Recorded {
    let path = path.to_owned();
    Box::new(move |ended| {
        let opts = LoadOptions {
            events: false,
            stacks: false,
            progress: false,
            ..LoadOptions::default()
        };
        let file = File::open(&path).ok()?;
        let until = Until {
            inner: std::io::BufReader::with_capacity(64 << 10, file),
            ended,
        };
        let p = crate::load::read_reader(until, &opts).ok()?;
        if ended.load(Ordering::Relaxed) {
            return None;
        }
        let addresses = p.ips.iter().map(|ip| (ip.address, ip.generation)).collect();
        Some((p.modules, addresses))
    })
}

/// A reader that fails once `ended` is raised.
struct Until<'a, R> {
    inner: R,
    ended: &'a std::sync::atomic::AtomicBool,
}

impl<R: std::io::Read> std::io::Read for Until<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.ended.load(Ordering::Relaxed) {
            return Err(std::io::Error::other("the command ended"));
        }
        self.inner.read(buf)
    }
}

/// SIGXFSZ was ignored when tidemark started (inherited from its parent).
static XFSZ_WAS_IGNORED: AtomicBool = AtomicBool::new(false);

/// Makes a write of tidemark's past the file size limit (`ulimit -f`: the finish appending
/// symbols to a profile the recorder cut at the limit, an output file) fail with EFBIG, which is
/// reported, instead of killing tidemark with SIGXFSZ. The programs it launches get the
/// disposition tidemark started with ([`launch`]).
pub(crate) fn ignore_file_size_signal() {
    // SAFETY: setting a signal's disposition to SIG_IGN has no preconditions.
    let old = unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    XFSZ_WAS_IGNORED.store(old == libc::SIG_IGN, Ordering::Relaxed);
}

/// Runs `exe` with `argv` (argv[0] included) under the recorder, which writes `profile`;
/// returns its exit status, its process id and the debug information of its program and libc,
/// opened meanwhile on another thread for the finish, with the return addresses recorded so
/// far named ([`Prewarm`]).
pub(crate) fn launch(
    exe: &Path,
    argv: &[OsString],
    env: &[(&'static str, OsString)],
    profile: &Path,
) -> anyhow::Result<(ExitStatus, u32, Warmed)> {
    let mut cmd = Process::new(exe);
    if let Some(a0) = argv.first() {
        cmd.arg0(a0);
    }
    cmd.args(argv.iter().skip(1));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let xfsz_ignored = XFSZ_WAS_IGNORED.load(Ordering::Relaxed);
    // SAFETY: the closure runs in the forked child before exec and only makes system calls that
    // are async-signal-safe (prctl, sigaction), without allocating.
    unsafe {
        cmd.pre_exec(move || {
            // If tidemark dies (SIGKILL from a test harness or the OOM killer), the command gets
            // SIGTERM instead of running on unobserved.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            // The program's SIGXFSZ as tidemark got it (see `ignore_file_size_signal`).
            if !xfsz_ignored {
                libc::signal(libc::SIGXFSZ, libc::SIG_DFL);
            }
            Ok(())
        });
    }
    // ETXTBSY: the program was just written (a build, a copy) and a process forked meanwhile
    // still holds the writing descriptor until it execs; that lasts milliseconds.
    let mut attempt = 0u64;
    let mut child = loop {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && attempt < 8 => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(10 * attempt));
            }
            r => break r.with_context(|| format!("cannot start {}", exe.display()))?,
        }
    };
    let pid = child.id();
    let _signals = ChildSignals::new(pid);
    let prewarm = Prewarm::start(pid, Some(recorded_so_far(profile)));
    let status = child
        .wait()
        .with_context(|| format!("lost track of {}", exe.display()))?;
    Ok((status, pid, prewarm.finish()))
}

/// The shell's convention: the exit code, or 128 + the signal that killed the process.
pub(crate) fn exit_code(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(c), _) => (c & 0xff) as u8,
        (None, Some(sig)) => (128 + sig).min(255) as u8,
        (None, None) => EXIT_ERROR,
    }
}

pub(crate) fn describe_status(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        _ => "ended".to_owned(),
    }
}

/// Profiles written by child processes (and programs the command `exec`s, which find the first
/// name taken): `<stem>.<pid>.tmk` or `<stem>.<pid>.<n>.tmk` beside `profile`, modified since
/// `since`.
pub(crate) fn child_profiles(profile: &Path, since: SystemTime) -> Vec<PathBuf> {
    let Some(stem) = profile
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
    else {
        return Vec::new();
    };
    let dir = match profile.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let Ok(entries) = fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(mid) = name
                .strip_prefix(&stem)
                .and_then(|r| r.strip_prefix('.'))
                .and_then(|r| r.strip_suffix(".tmk"))
            else {
                return false;
            };
            let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
            let numbered = match mid.split_once('.') {
                Some((pid, n)) => digits(pid) && digits(n),
                None => digits(mid),
            };
            numbered
                && e.metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t >= since)
        })
        .map(|e| {
            if profile.parent().is_some_and(|d| !d.as_os_str().is_empty()) {
                e.path()
            } else {
                PathBuf::from(e.file_name())
            }
        })
        .collect();
    out.sort();
    out
}

/// `--cpu` without `--cpu-hz`: 99 samples per CPU second (not 100, so sampling does not run in
/// lockstep with timers of the program that tick at round rates).
pub(crate) const DEFAULT_CPU_HZ: u64 = 99;

/// Recorder settings beyond output, interval and unwinding: limit, trace, allocator, CPU
/// sampling.
pub(crate) fn extra_env(a: &RunArgs) -> anyhow::Result<Vec<(&'static str, OsString)>> {
    let mut env = Vec::new();
    if let Some(limit) = a.limit {
        env.push(("TIDEMARK_LIMIT_BYTES", limit.to_string().into()));
    }
    if a.trace {
        env.push(("TIDEMARK_TRACE", "1".into()));
    }
    if a.cpu || a.cpu_hz.is_some() {
        let hz = a.cpu_hz.unwrap_or(DEFAULT_CPU_HZ);
        env.push(("TIDEMARK_CPU_HZ", hz.to_string().into()));
    }
    if a.escape {
        env.push(("TIDEMARK_ESCAPE", "1".into()));
    }
    match a.allocator {
        AllocatorArg::System => {
            if a.malloc_conf.is_some() {
                bail!("--malloc-conf sets jemalloc options: add --allocator jemalloc");
            }
            env.push(("TIDEMARK_ALLOCATOR", "glibc".into()));
        }
        AllocatorArg::Jemalloc => {
            env.push(("TIDEMARK_ALLOCATOR", "jemalloc".into()));
            if let Some(conf) = &a.malloc_conf {
                env.push(("TIDEMARK_MALLOC_CONF", conf.into()));
            }
        }
    }
    Ok(env)
}
