//! Which profile of a `tidemark run` is which process.
//!
//! A command is often a wrapper: a shell script, `env`, pyenv's shims, that `exec`s the real
//! program, sometimes through several images, and may start child processes on the way. Each
//! image and each child writes its own profile (the recorder never overwrites: an image that
//! finds the name taken writes `<stem>.<pid>[.<n>].tmk` beside it). The profile `-o` names must be
//! the program the user meant: the launched process's **final image**, the last program it
//! `exec`d. The earlier images and the children are kept beside it, named so that they say
//! which they are. Every profile's header records its pid, executable and command line; this
//! module reads only headers.

use std::fs::{self, File};
use std::io::BufReader;
use std::path::{Path, PathBuf};

use tidemark::format::Reader;

use super::output;

/// A profile written during a run, and the process that wrote it (from its header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProfileFile {
    /// Where it is.
    pub path: PathBuf,
    /// The writing process's id.
    pub pid: u32,
    /// Its executable.
    pub exe: String,
    /// Its command line.
    pub cmdline: Vec<String>,
    /// When its recorder started (CLOCK_MONOTONIC, ns): orders the images of one process.
    pub start_mono_ns: u64,
}

impl ProfileFile {
    /// Reads the header of the profile at `path`; `None` when it has none readable.
    pub fn read(path: &Path) -> Option<ProfileFile> {
        let f = File::open(path).ok()?;
        let r = Reader::new(BufReader::new(f)).ok()?;
        let h = r.header();
        Some(ProfileFile {
            path: path.to_owned(),
            pid: h.pid,
            exe: h.exe.clone(),
            cmdline: h.cmdline.clone(),
            start_mono_ns: h.start_mono_ns,
        })
    }

    /// The program's name: the executable's file name (`python3.11`), else argv[0].
    pub fn program(&self) -> String {
        let exe = Path::new(&self.exe)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !exe.is_empty() {
            return exe;
        }
        self.cmdline.first().cloned().unwrap_or_default()
    }

    /// `python3 -c … (pid 123, /usr/bin/python3.11)`: who wrote it, for messages.
    pub fn describe(&self) -> String {
        describe_process(&self.cmdline, &self.exe, self.pid)
    }
}

/// `PROGRAM ARGS (pid PID, EXE)`: how tidemark names the process a profile is of (`tidemark
/// run`'s messages, `tidemark summary`'s first line). argv[0] is shortened to its file name (the
/// executable's path follows), a long command line is cut.
pub fn describe_process(cmdline: &[String], exe: &str, pid: u32) -> String {
    const MAX_CHARS: usize = 100;
    let mut cmd = match cmdline.split_first() {
        None => exe.to_owned(),
        Some((a0, args)) => {
            let name = Path::new(a0)
                .file_name()
                .map_or_else(|| a0.clone(), |n| n.to_string_lossy().into_owned());
            std::iter::once(name)
                .chain(args.iter().cloned())
                .collect::<Vec<_>>()
                .join(" ")
        }
    };
    if cmd.chars().count() > MAX_CHARS {
        cmd = cmd.chars().take(MAX_CHARS - 1).collect::<String>() + "…";
    }
    if exe.is_empty() {
        format!("{cmd} (pid {pid})")
    } else {
        format!("{cmd} (pid {pid}, {exe})")
    }
}

/// The profiles of one run, sorted out.
#[derive(Debug, Default)]
pub(crate) struct RunProfiles {
    /// The launched process's final image: what `-o` names (when the launched process wrote no
    /// profile, the one at its name, from the first process that found the name free).
    pub main: Option<ProfileFile>,
    /// The launched process's images before its last `exec`, in order.
    pub earlier: Vec<ProfileFile>,
    /// Profiles of other processes (children, grandchildren and their images), by path.
    pub children: Vec<ProfileFile>,
    /// Files that have no readable header: counted among the children by path only.
    pub unreadable: Vec<PathBuf>,
}

/// Sorts the profiles found after a run (`tmp`, the name the launched process was given, and
/// `found`, the profiles named after it) by the process that wrote them. `launched_pid` is the
/// process tidemark started.
pub(crate) fn sort_out(tmp: &Path, found: &[PathBuf], launched_pid: u32) -> RunProfiles {
    let mut out = RunProfiles::default();
    let mut images = Vec::new();
    let paths = std::iter::once(tmp.to_path_buf())
        .filter(|p| p.exists())
        .chain(found.iter().cloned());
    for path in paths {
        match ProfileFile::read(&path) {
            Some(f) if f.pid == launched_pid => images.push(f),
            Some(f) => out.children.push(f),
            None => out.unreadable.push(path),
        }
    }
    images.sort_by(|a, b| {
        a.start_mono_ns
            .cmp(&b.start_mono_ns)
            .then_with(|| a.path.cmp(&b.path))
    });
    out.main = images.pop();
    out.earlier = images;
    if out.main.is_none() {
        // The launched process wrote nothing (a static wrapper, say): the profile at its name,
        // written by the first process that found the name free, is the profile.
        if let Some(i) = out.children.iter().position(|c| c.path == tmp) {
            out.main = Some(out.children.remove(i));
        }
    }
    out
}

/// Renames the earlier images of process `pid` after `output`: `<stem>.<pid>.exec<k>.tmk`, `k`
/// the image's place (0: the command as started). An existing file of that name is kept and the
/// image gets a further number. Returns the final names.
pub(crate) fn rename_earlier(output: &Path, earlier: &[ProfileFile]) -> Vec<PathBuf> {
    let out_name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = out_name
        .strip_suffix(".tmk")
        .unwrap_or(&out_name)
        .to_owned();
    let dir = output.parent().unwrap_or(Path::new(""));
    earlier
        .iter()
        .enumerate()
        .map(|(k, image)| {
            for attempt in 0..100u32 {
                let name = if attempt == 0 {
                    format!("{stem}.{}.exec{k}.tmk", image.pid)
                } else {
                    format!("{stem}.{}.exec{k}.{attempt}.tmk", image.pid)
                };
                let target = dir.join(name);
                match output::rename_no_replace(&image.path, &target) {
                    Ok(true) => return target,
                    Ok(false) => continue,
                    Err(e) => {
                        eprintln!(
                            "tidemark: warning: cannot rename {} to {}: {e}",
                            image.path.display(),
                            target.display()
                        );
                        return image.path.clone();
                    }
                }
            }
            image.path.clone()
        })
        .collect()
}

/// File size in bytes (0 when it cannot be read): the cheap measure of which profile is largest.
pub(crate) fn size_bytes(path: &Path) -> u64 {
    fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidemark::format::{Header, VERSION};

    /// A profile file that is only a header: all [`sort_out`] reads.
    fn header_file(path: &Path, pid: u32, exe: &str, start_mono_ns: u64) {
        let h = Header {
            version: VERSION,
            pid,
            exe: exe.to_owned(),
            cmdline: vec![exe.to_owned()],
            start_mono_ns,
            ..Header::default()
        };
        fs::write(path, h.encode()).unwrap();
    }

    #[test]
    fn the_final_image_of_the_launched_process_is_the_profile() {
        let d = std::env::temp_dir().join(format!("tidemark-images-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        let tmp = d.join(".app.tmp.tmk");
        let (exec1, exec2, child) = (
            d.join(".app.tmp.10.tmk"),
            d.join(".app.tmp.10.1.tmk"),
            d.join(".app.tmp.11.tmk"),
        );
        header_file(&tmp, 10, "/bin/sh", 100);
        header_file(&exec2, 10, "/usr/bin/python3", 300);
        header_file(&exec1, 10, "/usr/bin/env", 200);
        header_file(&child, 11, "/usr/bin/uname", 250);
        let found = vec![exec1.clone(), exec2.clone(), child.clone()];
        let run = sort_out(&tmp, &found, 10);
        assert_eq!(run.main.as_ref().unwrap().path, exec2);
        let earlier: Vec<&Path> = run.earlier.iter().map(|f| f.path.as_path()).collect();
        assert_eq!(earlier, [tmp.as_path(), exec1.as_path()], "in exec order");
        assert_eq!(run.children.len(), 1);
        assert_eq!(run.children[0].path, child);
        assert_eq!(run.main.as_ref().unwrap().program(), "python3");
        // A launched process that wrote nothing: the profile at its name is the profile.
        let run = sort_out(&tmp, &found, 99);
        assert_eq!(run.main.unwrap().path, tmp);
        assert!(run.earlier.is_empty());
        assert_eq!(run.children.len(), 3);
        // Renaming the earlier images after the output.
        let out = d.join("app.tmk");
        let run = sort_out(&tmp, &found, 10);
        let renamed = rename_earlier(&out, &run.earlier);
        assert_eq!(
            renamed,
            [d.join("app.10.exec0.tmk"), d.join("app.10.exec1.tmk")]
        );
        assert!(!tmp.exists() && renamed.iter().all(|p| p.exists()));
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn processes_are_named_by_command_line_pid_and_executable() {
        let cmd = vec!["python3".to_owned(), "-c".to_owned(), "pass".to_owned()];
        assert_eq!(
            describe_process(&cmd, "/usr/bin/python3.11", 42),
            "python3 -c pass (pid 42, /usr/bin/python3.11)"
        );
        let path = vec!["/bin/true".to_owned(), "x".to_owned()];
        assert_eq!(
            describe_process(&path, "/usr/bin/true", 7),
            "true x (pid 7, /usr/bin/true)"
        );
        assert_eq!(describe_process(&[], "/bin/x", 7), "/bin/x (pid 7, /bin/x)");
        let long = vec!["x".repeat(200)];
        let d = describe_process(&long, "", 1);
        assert!(
            d.starts_with(&"x".repeat(99)) && d.ends_with("… (pid 1)"),
            "{d}"
        );
    }
}
