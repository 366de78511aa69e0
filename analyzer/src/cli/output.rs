//! Writing outputs without destroying what is at the path.
//!
//! Every output a command writes (SVGs, reports, exports, CSV, summaries, the pages) goes through
//! one function, [`write_to`]; the profile of `tidemark run` (written by the recorder in the
//! program) is prepared and put in place with the same rules ([`prepare_dir`], [`persist`]):
//!
//! - `-` is stdout (for the commands that allow it);
//! - missing directories leading to the path are created, for every command alike (`-o
//!   out/today/app.svg` works without a `mkdir` first);
//! - a path that exists and is not a regular file (a device such as `/dev/null`, a FIFO, a
//!   socket, a directory, or a symbolic link — even one to a regular file, since replacing the
//!   link would not write where it points and following it would write somewhere the user did
//!   not name) is refused before anything runs, with a message naming it;
//! - the content goes to a temporary file beside the target (same directory, so the final
//!   `rename(2)` is atomic) created with `O_EXCL`, and is renamed onto the target only when
//!   complete; an error or an interrupted run never leaves half a file at the target, and two
//!   runs writing the same path each write their own file (the last rename wins, whole).

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};

/// What is at a path, as far as writing an output there is concerned.
fn describe_non_regular(ft: &fs::FileType) -> Option<&'static str> {
    if ft.is_file() {
        None
    } else if ft.is_symlink() {
        Some("a symbolic link")
    } else if ft.is_dir() {
        Some("a directory")
    } else if ft.is_char_device() {
        Some("a character device")
    } else if ft.is_block_device() {
        Some("a block device")
    } else if ft.is_fifo() {
        Some("a FIFO (named pipe)")
    } else if ft.is_socket() {
        Some("a socket")
    } else {
        Some("not a regular file")
    }
}

/// Fails unless `path` is absent or a regular file (not a symbolic link). `what` names the
/// output in the message ("the profile", "the flamegraph").
pub fn check_target(path: &Path, what: &str) -> anyhow::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) => {
            if let Some(kind) = describe_non_regular(&m.file_type()) {
                let hint = if m.file_type().is_dir() {
                    "give a file name inside it"
                } else if m.file_type().is_symlink() {
                    "give the path it points to, or another path"
                } else {
                    "tidemark only replaces regular files; give another path (`-` writes to \
                     stdout where the command supports it)"
                };
                bail!(
                    "will not write {what} to {}: it is {kind}, not a regular file; {hint}",
                    path.display()
                );
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot inspect {}", path.display())),
    }
}

/// [`check_target`] for an optional `-o` given on the command line (`-` is stdout), run before a
/// command loads its profiles so a refused path fails fast.
pub fn check_option(path: Option<&Path>, what: &str) -> anyhow::Result<()> {
    match path {
        Some(p) if p.as_os_str() != "-" => check_target(p, what),
        _ => Ok(()),
    }
}

/// A fresh name beside `path` for its temporary file: `.<name>.tidemark-<pid>-<nanos>-<n><ext>`
/// (`ext` such as `.tmk`, or empty). Unique per process and call.
pub fn temp_path(path: &Path, ext: &str) -> PathBuf {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "output".to_owned());
    let name = name.strip_suffix(ext).unwrap_or(&name);
    path.with_file_name(format!(
        ".{name}.tidemark-{}-{nanos:09}-{n}{ext}",
        std::process::id()
    ))
}

/// Asks the kernel to start writing `path`'s dirty pages to disk now, without waiting: the
/// `fdatasync` that makes a finished profile durable (after its symbols are appended) then
/// waits for little, since the writing went on while the addresses were resolved. Best effort:
/// any error only leaves that `fdatasync` to do all of it.
pub fn start_writeback(path: &Path) {
    use std::os::fd::AsRawFd;
    if let Ok(f) = std::fs::File::open(path) {
        // SAFETY: a valid descriptor; the call only schedules writeback.
        unsafe {
            libc::sync_file_range(f.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
        }
    }
}

/// Renames the finished temporary file `tmp` onto `path`, checking again that `path` is not a
/// special file (it may have been created while the output was being written).
pub fn persist(tmp: &Path, path: &Path, what: &str) -> anyhow::Result<()> {
    check_target(path, what)?;
    fs::rename(tmp, path).with_context(|| {
        format!(
            "cannot move the finished {what} from {} to {}",
            tmp.display(),
            path.display()
        )
    })
}

/// Renames `from` to `to` unless `to` exists; returns false (and leaves both) when it does.
/// `link(2)` + `unlink(2)` is the portable no-replace rename.
pub fn rename_no_replace(from: &Path, to: &Path) -> io::Result<bool> {
    match fs::hard_link(from, to) {
        Ok(()) => {
            fs::remove_file(from)?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        // Filesystems without hard links: fall back to a checked rename.
        Err(_) if fs::symlink_metadata(to).is_err() => fs::rename(from, to).map(|()| true),
        Err(_) => Ok(false),
    }
}

/// Renames the child processes' profiles, named after the temporary `tmp`
/// (`<tmp stem>.<pid>[.<n>].tmk`), after `output` (`<output stem>.<pid>[.<n>].tmk`, the names the
/// recorder gives children of a plain `TIDEMARK_OUTPUT`). An existing file of that name is kept
/// and the child's profile gets a further number. Returns the final names.
pub fn rename_children(tmp: &Path, output: &Path, children: Vec<PathBuf>) -> Vec<PathBuf> {
    let tmp_stem = tmp
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let out_name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let out_stem = out_name
        .strip_suffix(".tmk")
        .unwrap_or(&out_name)
        .to_owned();
    children
        .into_iter()
        .map(|child| {
            let name = child
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let Some(mid) = name
                .strip_prefix(&tmp_stem)
                .and_then(|r| r.strip_prefix('.'))
                .and_then(|r| r.strip_suffix(".tmk"))
            else {
                return child;
            };
            for attempt in 0..100u32 {
                let new_name = if attempt == 0 {
                    format!("{out_stem}.{mid}.tmk")
                } else {
                    format!("{out_stem}.{mid}.{attempt}.tmk")
                };
                let target = child.with_file_name(new_name);
                match rename_no_replace(&child, &target) {
                    Ok(true) => return target,
                    Ok(false) => continue,
                    Err(e) => {
                        eprintln!(
                            "tidemark: warning: cannot rename {} to {}: {e}",
                            child.display(),
                            target.display()
                        );
                        return child;
                    }
                }
            }
            child
        })
        .collect()
}

/// An output file being written: a temporary file beside the target until [`commit`]
/// renames it into place. Dropped without a commit, the temporary file is removed.
///
/// [`commit`]: AtomicOutput::commit
pub struct AtomicOutput {
    tmp: PathBuf,
    path: PathBuf,
    what: String,
    file: Option<BufWriter<File>>,
}

impl AtomicOutput {
    /// Refuses a special file at `path`, creates the directories leading to it, and opens the
    /// temporary file.
    pub fn create(path: &Path, what: &str) -> anyhow::Result<AtomicOutput> {
        check_target(path, what)?;
        prepare_dir(path)?;
        let tmp = temp_path(path, "");
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            // As `File::create`: the umask decides.
            .mode(0o666)
            .open(&tmp)
            .with_context(|| {
                format!(
                    "cannot write {what} {}: cannot create a file in its directory; check that \
                     it is writable",
                    path.display()
                )
            })?;
        Ok(AtomicOutput {
            tmp,
            path: path.to_owned(),
            what: what.to_owned(),
            file: Some(BufWriter::new(file)),
        })
    }

    /// Flushes the content and renames it onto the target.
    pub fn commit(mut self) -> anyhow::Result<()> {
        let file = self.file.take().expect("an AtomicOutput is committed once");
        let file = file
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("cannot write {}", self.path.display()))?;
        file.sync_all()
            .with_context(|| format!("cannot write {}", self.path.display()))?;
        drop(file);
        persist(&self.tmp, &self.path, &self.what)?;
        // Renamed: nothing for drop to clean up.
        self.tmp = PathBuf::new();
        Ok(())
    }
}

impl Write for AtomicOutput {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.as_mut().expect("not committed yet").write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.file
            .as_mut()
            .expect("not committed yet")
            .write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().expect("not committed yet").flush()
    }
}

impl Drop for AtomicOutput {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            // Best effort: the temporary file of a failed write; the error that caused the drop
            // is what the user needs to see.
            drop(self.file.take());
            if let Err(e) = fs::remove_file(&self.tmp) {
                if e.kind() != io::ErrorKind::NotFound {
                    eprintln!(
                        "tidemark: warning: cannot remove the temporary file {}: {e}",
                        self.tmp.display()
                    );
                }
            }
        }
    }
}

/// Creates the missing directories leading to `path` (the one rule for every output).
pub fn prepare_dir(path: &Path) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the directory {}", dir.display()))?;
    }
    Ok(())
}

/// THE way a command writes an output: `write` produces the content into `path` (`-` is
/// stdout), under the rules of the module docs. `what` names the output in messages ("the
/// flamegraph"). On a file, the content appears at `path` only when `write` succeeded.
pub fn write_to(
    path: &Path,
    what: &str,
    write: impl FnOnce(&mut dyn Write) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    if path.as_os_str() == "-" {
        let mut out = BufWriter::new(io::stdout().lock());
        write(&mut out)?;
        out.flush()?;
        return Ok(());
    }
    let mut out = AtomicOutput::create(path, what)?;
    write(&mut out).with_context(|| format!("cannot write {}", path.display()))?;
    out.commit()
}

/// [`write_to`] with content already in memory.
pub fn write_atomically(path: &Path, bytes: &[u8], what: &str) -> anyhow::Result<()> {
    write_to(path, what, |w| Ok(w.write_all(bytes)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("tidemark-output-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn refuses_special_files_and_links() {
        let d = scratch("refuse");
        let e = check_target(Path::new("/dev/null"), "the profile").unwrap_err();
        assert!(format!("{e}").contains("character device"), "{e}");
        assert!(check_target(&d, "x")
            .unwrap_err()
            .to_string()
            .contains("directory"));
        let target = d.join("real");
        fs::write(&target, b"keep").unwrap();
        let link = d.join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = write_atomically(&link, b"new", "the report").unwrap_err();
        assert!(format!("{e}").contains("symbolic link"), "{e}");
        assert_eq!(fs::read(&target).unwrap(), b"keep");
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn replaces_a_regular_file_whole_and_leaves_no_temporary() {
        let d = scratch("replace");
        let p = d.join("out.svg");
        fs::write(&p, b"old").unwrap();
        write_atomically(&p, b"new content", "the flamegraph").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"new content");
        assert_eq!(fs::read_dir(&d).unwrap().count(), 1);
        // A failed write (dropped before commit) leaves the old file and no temporary.
        let mut o = AtomicOutput::create(&p, "x").unwrap();
        o.write_all(b"partial").unwrap();
        drop(o);
        assert_eq!(fs::read(&p).unwrap(), b"new content");
        assert_eq!(fs::read_dir(&d).unwrap().count(), 1);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn no_replace_rename_keeps_the_existing_file() {
        let d = scratch("noreplace");
        let (a, b) = (d.join("a"), d.join("b"));
        fs::write(&a, b"a").unwrap();
        fs::write(&b, b"b").unwrap();
        assert!(!rename_no_replace(&a, &b).unwrap());
        assert_eq!(fs::read(&b).unwrap(), b"b");
        let c = d.join("c");
        assert!(rename_no_replace(&a, &c).unwrap());
        assert!(!a.exists());
        assert_eq!(fs::read(&c).unwrap(), b"a");
        fs::remove_dir_all(&d).unwrap();
    }
}
