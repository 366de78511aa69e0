//! The profile's file descriptor, kept out of the program's way.
//!
//! A daemon starts by closing every descriptor it did not open (`closefrom(3)`, `close_range`,
//! a loop up to the limit), then opens its own files, which get the lowest free numbers. The
//! profile, opened before the program's `main`, had one of those numbers: the recorder's next
//! chunk landed in the program's own file. So the descriptor is moved to a number at least
//! [`HIGH_FD`] (far above the numbers a program's `open` hands out), and before every write the
//! recorder checks that the number still names the profile (its device and inode). When it
//! does not — closed, or given to another file since — the number is left alone (it may be the
//! program's now: it is never written, nor closed), and the profile is opened again by its path
//! and written on at the offset it had reached. A path that names another file by then (the
//! profile removed or replaced) is an error: recording stops, the program's files untouched.
//!
//! What remains is a window of one system call: a thread of the program that closes the number
//! and opens a file onto that very number between the check and the write. It needs a program
//! with hundreds of open files, or one that `dup2`s onto numbers it did not open, closing them
//! while another of its threads allocates.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, IntoRawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The lowest number the profile's descriptor moves to (when the descriptor limit allows).
pub const HIGH_FD: i32 = 512;

/// The profile being written: a descriptor checked before each use, and its path to open it
/// again by.
#[derive(Debug)]
pub struct ProfileFile {
    /// The descriptor, -1 when it was lost and not opened again yet.
    fd: i32,
    /// Device and inode of the profile.
    id: (u64, u64),
    path: PathBuf,
    /// Where the next byte goes (a regular file: written with `pwrite`, whatever the
    /// descriptor's position).
    offset: u64,
    /// False for a pipe or a device (`TIDEMARK_OUTPUT` naming one): written with `write`, never
    /// opened again.
    regular: bool,
    /// How many times the profile was opened again.
    reopened: u64,
}

/// Device and inode of what `fd` names, and whether it is a regular file.
fn identity(fd: i32) -> io::Result<((u64, u64), bool)> {
    // SAFETY: fstat writes into the zeroed struct; any fd value is acceptable (EBADF otherwise).
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let regular = st.st_mode & libc::S_IFMT == libc::S_IFREG;
    Ok(((st.st_dev, st.st_ino), regular))
}

/// True when descriptor `fd` names the file `id` (device, inode).
fn names(fd: i32, id: (u64, u64)) -> bool {
    fd >= 0 && identity(fd).is_ok_and(|(i, _)| i == id)
}

/// `file` (which names `id`) moved to a number at least [`HIGH_FD`] (close-on-exec); the same
/// number when no such number is free or allowed. Another thread of the program may close the
/// low number meanwhile and open a file of its own onto it: the low number is closed only while
/// it still names `id`, and a copy that names another file (the program's, copied) is closed
/// and `None` returned.
fn move_high(file: File, id: (u64, u64)) -> Option<i32> {
    let fd = file.into_raw_fd();
    // SAFETY: fcntl on a descriptor number; a failure leaves everything as it was.
    let high = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, HIGH_FD) };
    if high < 0 {
        let kept = names(fd, id).then_some(fd);
        if let Some(fd) = kept {
            note_held(fd, id);
        }
        return kept;
    }
    if !names(high, id) {
        // SAFETY: `high` is the copy made above (of a file that is not ours).
        unsafe { libc::close(high) };
        return None;
    }
    if names(fd, id) {
        // SAFETY: `fd` still names the file this function was given, now copied to `high`.
        unsafe { libc::close(fd) };
    }
    note_held(high, id);
    Some(high)
}

/// The error of a descriptor taken over while it was moved ([`move_high`]).
fn taken_over() -> io::Error {
    io::Error::other("the program took over the profile's descriptor while it was being moved")
}

/// The descriptors the recorder holds (the profile, the timeline's files), each as
/// (number, device, inode), so that a forked child can close its parent's ([`close_inherited`]):
/// lock-free slots, a fork may come at any moment (a slot caught half written names nothing).
const HELD_SLOTS: usize = 16;
static HELD: [[std::sync::atomic::AtomicU64; 3]; HELD_SLOTS] =
    [const { [const { std::sync::atomic::AtomicU64::new(u64::MAX) }; 3] }; HELD_SLOTS];

/// Notes that the recorder holds `fd`, which names `id`.
fn note_held(fd: i32, id: (u64, u64)) {
    use std::sync::atomic::Ordering::{AcqRel, Relaxed, Release};
    for slot in &HELD {
        if slot[0]
            .compare_exchange(u64::MAX, u64::MAX - 1, AcqRel, Relaxed)
            .is_ok()
        {
            slot[1].store(id.0, Relaxed);
            slot[2].store(id.1, Relaxed);
            slot[0].store(fd as u64, Release);
            return;
        }
    }
}

/// Notes that the recorder no longer holds `fd`.
fn note_released(fd: i32) {
    use std::sync::atomic::Ordering::{AcqRel, Relaxed};
    if fd < 0 {
        return;
    }
    for slot in &HELD {
        if slot[0]
            .compare_exchange(fd as u64, u64::MAX, AcqRel, Relaxed)
            .is_ok()
        {
            return;
        }
    }
}

/// In a child just forked: closes the descriptors its parent's recorder held (the child records
/// into files of its own; the parent's stay the parent's business), each only while it still
/// names what the parent's recorder opened.
pub fn close_inherited() {
    use std::sync::atomic::Ordering::{Acquire, Relaxed};
    for slot in &HELD {
        let fd = slot[0].load(Acquire);
        if fd < u64::MAX - 1 {
            let fd = fd as i32;
            let id = (slot[1].load(Relaxed), slot[2].load(Relaxed));
            if names(fd, id) {
                // SAFETY: the descriptor names the file the parent's recorder opened.
                unsafe { libc::close(fd) };
            }
        }
        slot[0].store(u64::MAX, Relaxed);
    }
}

impl ProfileFile {
    /// Takes over `file`, the profile at `path`, positioned where the next byte goes.
    pub fn new(mut file: File, path: &Path) -> io::Result<ProfileFile> {
        let (id, regular) = identity(file.as_raw_fd())?;
        let offset = if regular {
            io::Seek::stream_position(&mut file)?
        } else {
            0
        };
        Ok(ProfileFile {
            fd: move_high(file, id).ok_or_else(taken_over)?,
            id,
            // Absolute: the program may change its working directory before a reopening.
            path: std::path::absolute(path).unwrap_or_else(|_| path.to_owned()),
            offset,
            regular,
            reopened: 0,
        })
    }

    /// The descriptor's number (for tests).
    #[cfg(test)]
    pub fn raw_fd(&self) -> i32 {
        self.fd
    }

    /// How many times the profile had to be opened again because its descriptor no longer
    /// named it.
    pub fn reopened(&self) -> u64 {
        self.reopened
    }

    /// True when the descriptor still names the profile.
    fn still_ours(&self) -> bool {
        names(self.fd, self.id)
    }

    /// Makes sure the descriptor names the profile, opening it again when it does not.
    fn ensure(&mut self) -> io::Result<()> {
        if self.still_ours() {
            return Ok(());
        }
        // The number is not ours any more: forgotten, never closed.
        note_released(self.fd);
        self.fd = -1;
        if !self.regular {
            return Err(io::Error::other(
                "the program closed the descriptor of the profile, which is not a regular file",
            ));
        }
        let file = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(&self.path)?;
        let (id, _) = identity(file.as_raw_fd())?;
        if id != self.id {
            return Err(io::Error::other(
                "the program closed the profile's descriptor, and its path now names another file",
            ));
        }
        self.fd = move_high(file, id).ok_or_else(taken_over)?;
        self.reopened += 1;
        Ok(())
    }

    /// Writes all of `buf` at the profile's end.
    pub fn write_all(&mut self, mut buf: &[u8]) -> io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        self.ensure()?;
        while !buf.is_empty() {
            // SAFETY: `buf` is valid for `buf.len()` bytes; `fd` is ours (checked above).
            let n = unsafe {
                if self.regular {
                    libc::pwrite(
                        self.fd,
                        buf.as_ptr().cast(),
                        buf.len(),
                        self.offset as libc::off_t,
                    )
                } else {
                    libc::write(self.fd, buf.as_ptr().cast(), buf.len())
                }
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            buf = &buf[n as usize..];
            self.offset += n as u64;
        }
        Ok(())
    }
}

impl Drop for ProfileFile {
    fn drop(&mut self) {
        note_released(self.fd);
        // Closed only while it still names the profile: the number may be the program's.
        if self.still_ours() {
            // SAFETY: the descriptor is ours.
            unsafe { libc::close(self.fd) };
        }
    }
}

/// A file the writer reads at every timeline sample (`/proc/self/status`, a cgroup's
/// `memory.current`…): opened once, before the program's `main`, onto a number out of its way
/// ([`HIGH_FD`]), and read with `pread` from its start each time, where opening and closing it
/// at every sample left a moment in which a number the program had just closed and reopened
/// could be the one closed. A number that no longer names the file is left alone and the file
/// opened again.
#[derive(Debug)]
pub struct ReadFile {
    fd: i32,
    id: (u64, u64),
    path: String,
}

impl ReadFile {
    /// Opens `path` for reading; `None` when it cannot be.
    pub fn open(path: &str) -> Option<ReadFile> {
        let file = File::open(path).ok()?;
        let (id, _) = identity(file.as_raw_fd()).ok()?;
        Some(ReadFile {
            fd: move_high(file, id)?,
            id,
            path: path.to_owned(),
        })
    }

    fn still_ours(&self) -> bool {
        names(self.fd, self.id)
    }

    /// Opens the file again when its number no longer names it (the program closed it); the
    /// number is left alone: it may be the program's now. False when it cannot be opened.
    fn ensure_ours(&mut self) -> bool {
        if self.still_ours() {
            return true;
        }
        note_released(self.fd);
        self.fd = -1;
        let Some(again) = ReadFile::open(&self.path) else {
            return false;
        };
        (self.fd, self.id) = (again.fd, again.id);
        std::mem::forget(again);
        true
    }

    /// A directory opened with [`ReadFile::open`]: calls `f` with the name of each entry (`.`
    /// and `..` included), read again from its start. False when it cannot be read.
    pub fn list(&mut self, mut f: impl FnMut(&[u8])) -> bool {
        if !self.ensure_ours() {
            return false;
        }
        // SAFETY: the descriptor is ours.
        if unsafe { libc::lseek(self.fd, 0, libc::SEEK_SET) } != 0 {
            return false;
        }
        let mut buf = vec![0u8; 16 << 10];
        loop {
            // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`.
            let n = unsafe {
                libc::syscall(libc::SYS_getdents64, self.fd, buf.as_mut_ptr(), buf.len())
            };
            if n < 0 {
                if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return false;
            }
            if n == 0 {
                return true;
            }
            // Each entry (`linux_dirent64`): inode (8 bytes), offset (8), its length (2), type
            // (1), then the name, NUL-terminated.
            let mut at = 0usize;
            while at + 19 < n as usize {
                let len = usize::from(u16::from_ne_bytes([buf[at + 16], buf[at + 17]]));
                if len < 20 || at + len > n as usize {
                    return false;
                }
                let name = &buf[at + 19..at + len];
                let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
                f(&name[..end]);
                at += len;
            }
        }
    }

    /// The file's contents (as much as fits in `buf`); `None` when it cannot be read.
    pub fn read<'a>(&mut self, buf: &'a mut [u8]) -> Option<&'a [u8]> {
        if !self.ensure_ours() {
            return None;
        }
        let mut n = 0usize;
        while n < buf.len() {
            // SAFETY: reads into the unused tail of `buf`; the descriptor is ours.
            let k = unsafe {
                libc::pread(
                    self.fd,
                    buf[n..].as_mut_ptr().cast(),
                    buf.len() - n,
                    n as libc::off_t,
                )
            };
            if k < 0 {
                if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return None;
            }
            if k == 0 {
                break;
            }
            n += k as usize;
        }
        Some(&buf[..n])
    }
}

impl Drop for ReadFile {
    fn drop(&mut self) {
        note_released(self.fd);
        if self.still_ours() {
            // SAFETY: the descriptor is ours.
            unsafe { libc::close(self.fd) };
        }
    }
}

/// Writes all of `buf` to `fd` with `SIGXFSZ` and `SIGPIPE` held back on the calling thread: a
/// write past the process's file size limit (`ulimit -f`), or to a pipe nobody reads any more
/// (a message to a stderr piped into `head`), then fails with `EFBIG` or `EPIPE` instead of
/// killing the program, as the signal would. For the writes the recorder makes on the program's
/// own threads (the profile's header, messages): the writer thread blocks every signal. A signal
/// this write raised is taken back; one that was pending before is left as it was.
pub fn write_all_quiet(fd: i32, mut buf: &[u8]) -> io::Result<()> {
    // SAFETY: signal-set functions on local, initialised sets; pthread_sigmask and sigpending
    // on the calling thread; sigtimedwait with a zero timeout only takes a pending SIGXFSZ.
    unsafe {
        let mut old: libc::sigset_t = std::mem::zeroed();
        let mut held: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut held);
        libc::sigaddset(&mut held, libc::SIGXFSZ);
        libc::sigaddset(&mut held, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &held, &mut old);
        let pending = |sig: i32| {
            let mut p: libc::sigset_t = std::mem::zeroed();
            libc::sigpending(&mut p) == 0 && libc::sigismember(&p, sig) == 1
        };
        let before = [libc::SIGXFSZ, libc::SIGPIPE].map(pending);
        let mut result = Ok(());
        while !buf.is_empty() {
            let n = libc::write(fd, buf.as_ptr().cast(), buf.len());
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                result = Err(e);
                break;
            }
            if n == 0 {
                result = Err(io::ErrorKind::WriteZero.into());
                break;
            }
            buf = &buf[n as usize..];
        }
        for (sig, was) in [libc::SIGXFSZ, libc::SIGPIPE].into_iter().zip(before) {
            if !was && pending(sig) {
                let mut one: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut one);
                libc::sigaddset(&mut one, sig);
                let zero = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                };
                libc::sigtimedwait(&one, std::ptr::null_mut(), &zero);
            }
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        result
    }
}

/// The recorder's stderr: descriptor 2 as it was when recording started, duplicated out of the
/// program's way (a daemon points its own descriptor 2 at a log file of its own: the recorder's
/// messages and `--trace` lines go where the user started it, not into that log).
static STDERR: std::sync::OnceLock<(i32, (u64, u64))> = std::sync::OnceLock::new();

/// Keeps a copy of descriptor 2 (once per process image; a forked child inherits it).
pub fn hold_stderr() {
    STDERR.get_or_init(|| {
        let Ok((id, _)) = identity(2) else {
            return (-1, (0, 0));
        };
        // SAFETY: fcntl on descriptor 2, which exists (fstat succeeded).
        let fd = unsafe { libc::fcntl(2, libc::F_DUPFD_CLOEXEC, HIGH_FD) };
        (fd, id)
    });
}

/// Writes `bytes` to the recorder's stderr ([`hold_stderr`]): its copy while it still names
/// the stderr recording started with, else descriptor 2 while that does; nothing when neither
/// does (the message would land in a file of the program's).
pub fn to_stderr(bytes: &[u8]) {
    let fd = match STDERR.get() {
        None => 2,
        Some(&(held, id)) => {
            if names(held, id) {
                held
            } else if names(2, id) {
                2
            } else {
                return;
            }
        }
    };
    let _ = write_all_quiet(fd, bytes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tidemark-outfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        let _ = std::fs::remove_file(&p);
        p
    }

    #[test]
    fn a_closed_and_reused_number_is_left_to_its_new_file() {
        let path = temp("profile");
        let mut f = File::create(&path).unwrap();
        f.write_all(b"head").unwrap();
        let mut pf = ProfileFile::new(f, &path).unwrap();
        assert!(pf.raw_fd() >= HIGH_FD, "{}", pf.raw_fd());
        pf.write_all(b"-one").unwrap();
        // The program closes the number and opens a file of its own onto it.
        let fd = pf.raw_fd();
        let theirs_path = temp("theirs");
        let theirs = File::create(&theirs_path).unwrap();
        // SAFETY: test descriptors.
        unsafe {
            assert_eq!(libc::dup2(theirs.as_raw_fd(), fd), fd);
        }
        pf.write_all(b"-two").unwrap();
        assert_eq!(pf.reopened(), 1);
        drop(pf);
        // The program's file: untouched, and its descriptor still open.
        assert_eq!(std::fs::read(&theirs_path).unwrap(), b"");
        // SAFETY: test descriptor.
        unsafe {
            assert_eq!(libc::write(fd, b"mine".as_ptr().cast(), 4), 4);
            libc::close(fd);
        }
        assert_eq!(std::fs::read(&theirs_path).unwrap(), b"mine");
        assert_eq!(std::fs::read(&path).unwrap(), b"head-one-two");
    }

    #[test]
    fn a_closed_number_is_opened_again_at_the_same_offset() {
        let path = temp("closed");
        let f = File::create(&path).unwrap();
        let mut pf = ProfileFile::new(f, &path).unwrap();
        pf.write_all(b"abc").unwrap();
        // SAFETY: test descriptor.
        unsafe { libc::close(pf.raw_fd()) };
        pf.write_all(b"def").unwrap();
        pf.write_all(b"ghi").unwrap();
        assert_eq!(pf.reopened(), 1);
        drop(pf);
        assert_eq!(std::fs::read(&path).unwrap(), b"abcdefghi");
    }

    #[test]
    fn a_path_naming_another_file_stops_the_writes() {
        let path = temp("replaced");
        let f = File::create(&path).unwrap();
        let mut pf = ProfileFile::new(f, &path).unwrap();
        pf.write_all(b"abc").unwrap();
        // SAFETY: test descriptor.
        unsafe { libc::close(pf.raw_fd()) };
        // Moved away (so its inode cannot be reused) and another file made at its path.
        std::fs::rename(&path, path.with_extension("moved")).unwrap();
        std::fs::write(&path, b"someone else's").unwrap();
        assert!(pf.write_all(b"def").is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"someone else's");
    }

    #[test]
    fn a_read_file_is_read_again_from_its_start_and_reopened_when_lost() {
        let path = temp("readme");
        std::fs::write(&path, b"first").unwrap();
        let mut r = ReadFile::open(path.to_str().unwrap()).unwrap();
        assert!(r.fd >= HIGH_FD);
        let mut buf = [0u8; 64];
        assert_eq!(r.read(&mut buf).unwrap(), b"first");
        assert_eq!(r.read(&mut buf).unwrap(), b"first");
        // The program takes the number over.
        let theirs_path = temp("theirs-read");
        std::fs::write(&theirs_path, b"theirs").unwrap();
        let theirs = File::open(&theirs_path).unwrap();
        let fd = r.fd;
        // SAFETY: test descriptors.
        unsafe { assert_eq!(libc::dup2(theirs.as_raw_fd(), fd), fd) };
        assert_eq!(r.read(&mut buf).unwrap(), b"first");
        drop(r);
        // Their descriptor is still open.
        // SAFETY: test descriptor.
        unsafe {
            assert_eq!(libc::pread(fd, buf.as_mut_ptr().cast(), 6, 0), 6);
            libc::close(fd);
        }
        assert_eq!(&buf[..6], b"theirs");
        let mut status = ReadFile::open("/proc/self/status").unwrap();
        let t = status.read(&mut [0u8; 4096]).map(|t| t.len()).unwrap();
        assert!(t > 100);
    }

    /// A held directory lists its entries at every call, from its start, and is opened again
    /// (the number left to the program) when the program took the number over.
    #[test]
    fn a_held_directory_is_listed_again_and_reopened_when_lost() {
        let dir = temp("listed");
        std::fs::create_dir_all(&dir).unwrap();
        for n in ["a", "bb", "a-much-longer-name-than-the-others"] {
            std::fs::write(dir.join(n), b"").unwrap();
        }
        let mut d = ReadFile::open(dir.to_str().unwrap()).unwrap();
        assert!(d.fd >= HIGH_FD);
        let names = |d: &mut ReadFile| {
            let mut v: Vec<String> = Vec::new();
            assert!(d.list(|n| v.push(String::from_utf8_lossy(n).into_owned())));
            v.sort();
            v
        };
        let want = [".", "..", "a", "a-much-longer-name-than-the-others", "bb"];
        assert_eq!(names(&mut d), want);
        assert_eq!(names(&mut d), want);
        std::fs::write(dir.join("c"), b"").unwrap();
        assert_eq!(names(&mut d).len(), 6);
        // The program takes the number over: its file is neither listed nor closed.
        let theirs_path = temp("theirs-dir");
        std::fs::write(&theirs_path, b"theirs").unwrap();
        let theirs = File::open(&theirs_path).unwrap();
        let fd = d.fd;
        // SAFETY: test descriptors.
        unsafe { assert_eq!(libc::dup2(theirs.as_raw_fd(), fd), fd) };
        assert_eq!(names(&mut d).len(), 6);
        assert_ne!(d.fd, fd);
        drop(d);
        let mut buf = [0u8; 6];
        // SAFETY: test descriptor.
        unsafe {
            assert_eq!(libc::pread(fd, buf.as_mut_ptr().cast(), 6, 0), 6);
            libc::close(fd);
        }
        assert_eq!(&buf, b"theirs");
        // This process's threads, as the CPU sampler lists them.
        let mut task = ReadFile::open("/proc/self/task").unwrap();
        let me = unsafe { libc::gettid() }.to_string();
        let mut found = false;
        assert!(task.list(|n| found |= n == me.as_bytes()));
        assert!(found);
    }

    /// Runs `f` in a child process (the limits and signals it tries must not touch the test
    /// runner; it makes only system calls) and returns its exit code, 0 meaning success.
    fn in_child(f: impl FnOnce() -> i32) -> i32 {
        // SAFETY: fork; the child runs `f` and leaves with `_exit`.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let code = f();
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waits for the child forked above.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status), "status {status:#x}");
        libc::WEXITSTATUS(status)
    }

    /// True when `sig` is pending for the calling thread or process.
    fn pending(sig: i32) -> bool {
        // SAFETY: sigpending into a zeroed local set.
        unsafe {
            let mut p: libc::sigset_t = std::mem::zeroed();
            libc::sigpending(&mut p) == 0 && libc::sigismember(&p, sig) == 1
        }
    }

    #[test]
    fn a_write_past_the_file_size_limit_fails_without_killing() {
        let path = temp("limited");
        let f = File::create(&path).unwrap();
        let code = in_child(|| {
            let lim = libc::rlimit {
                rlim_cur: 4,
                rlim_max: libc::RLIM_INFINITY,
            };
            // SAFETY: setrlimit with a valid struct, in the child.
            unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &lim) };
            match write_all_quiet(f.as_raw_fd(), b"more than four bytes") {
                // The signal the write raised was taken back: nothing pending.
                Err(e) if e.raw_os_error() == Some(libc::EFBIG) => {
                    4 * i32::from(pending(libc::SIGXFSZ))
                }
                Ok(()) => 2,
                Err(_) => 3,
            }
        });
        assert_eq!(code, 0);
        assert_eq!(std::fs::read(&path).unwrap(), b"more");
    }

    #[test]
    fn a_write_to_a_pipe_nobody_reads_fails_without_killing() {
        let mut fds = [0i32; 2];
        // SAFETY: pipe into a local array; its read end is closed before the fork, so the
        // child's write has no reader.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        unsafe { libc::close(fds[0]) };
        let code = in_child(|| {
            // SIGPIPE at its default action, as in most programs.
            // SAFETY: signal with a valid disposition, in the child.
            unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
            match write_all_quiet(fds[1], b"nobody reads this") {
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => {
                    4 * i32::from(pending(libc::SIGPIPE))
                }
                _ => 2,
            }
        });
        // SAFETY: closes this process's write end.
        unsafe { libc::close(fds[1]) };
        assert_eq!(code, 0);
    }

    #[test]
    fn a_forked_child_closes_the_descriptors_its_parent_held() {
        let path = temp("held");
        std::fs::write(&path, b"x").unwrap();
        let r = ReadFile::open(path.to_str().unwrap()).unwrap();
        let fd = r.fd;
        let code = in_child(|| {
            close_inherited();
            // SAFETY: fcntl on a number; EBADF when it is closed.
            i32::from(unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0)
        });
        assert_eq!(code, 0, "the child still held the parent's descriptor");
        // The parent's is still open.
        assert!(unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0);
        drop(r);
    }
}
