//! What `tidemark run` checks after the program ends, so a profile that misses part of the run
//! says so: a full disk, a command that drops the preload before the real program starts, and
//! stacks that cannot be trusted.

use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::model::Profile;
use crate::render::units::bytes;

/// Below this much free space on the output's filesystem, a truncated or missing profile is put
/// down to a full disk: the recorder writes chunks of up to a few hundred KiB, so a write that
/// failed with `ENOSPC` leaves less than this behind.
pub const DISK_FULL_BELOW_BYTES: u64 = 1 << 20;

/// The warning for a profile without a single allocation call and no child profile.
pub const NO_EVENTS: &str = "the profile holds no allocation calls and no child process wrote \
     one: if the command starts the real program with a changed environment (env -i, env \
     LD_PRELOAD=..., sudo) or the program is static or setuid, that program was not recorded \
     (docs/limits.md)";

/// Free bytes for unprivileged users on the filesystem holding `dir`, when `statvfs` answers.
pub fn free_bytes(dir: &Path) -> Option<u64> {
    let c = CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: zeroed is a valid `statvfs` (plain integers); the call writes it.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is NUL-terminated and `st` is a valid out-pointer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// "disk full" with the details, when the filesystem holding `dir` has less than
/// [`DISK_FULL_BELOW_BYTES`] free.
pub fn disk_full(dir: &Path) -> Option<String> {
    let free = free_bytes(dir)?;
    (free < DISK_FULL_BELOW_BYTES).then(|| {
        format!(
            "disk full: the filesystem holding {} has {} free; the recorder stops writing when \
             a write fails (ENOSPC), so the profile ends there. Free some space or write the \
             profile elsewhere with -o",
            dir.display(),
            bytes(free)
        )
    })
}

/// "file size limit" with the details, when the file size limit (`ulimit -f`, which the
/// program inherits) is finite and the profile at `profile` ended within a chunk of it: the
/// recorder's write past it failed (EFBIG), and the profile ends there.
pub fn file_size_limit(profile: &Path) -> Option<String> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid out-pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_FSIZE, &mut lim) } != 0
        || lim.rlim_cur == libc::RLIM_INFINITY
    {
        return None;
    }
    let len = std::fs::metadata(profile).ok()?.len();
    // The recorder's writes are chunks of up to a few hundred KiB (see DISK_FULL_BELOW_BYTES).
    (len.saturating_add(DISK_FULL_BELOW_BYTES) >= lim.rlim_cur).then(|| {
        format!(
            "file size limit: `ulimit -f` allows files of at most {} and the profile stopped at \
             {}; the recorder stops writing when a write fails (EFBIG), so the profile ends \
             there (the program ran on). Raise the limit (ulimit -f unlimited) and run again",
            bytes(lim.rlim_cur),
            bytes(len)
        )
    })
}

/// Warnings for a command that drops tidemark's preload before the program it runs: `env` with an
/// `LD_PRELOAD=` assignment, `-i` (empty environment) or `-u LD_PRELOAD`. The preload cannot see
/// that from inside `env`; the program `env` starts then runs unrecorded.
pub fn preload_dropped(argv: &[OsString]) -> Vec<String> {
    let Some(first) = argv.first() else {
        return Vec::new();
    };
    let is_env = Path::new(first)
        .file_name()
        .is_some_and(|n| n.as_bytes() == b"env");
    if !is_env {
        return Vec::new();
    }
    let mut how: Option<String> = None;
    let mut program: Option<String> = None;
    let mut args = argv[1..].iter().map(|a| a.to_string_lossy().into_owned());
    while let Some(a) = args.next() {
        if a == "-i" || a == "--ignore-environment" || a == "-" {
            how.get_or_insert_with(|| format!("`env {a}` empties the environment"));
        } else if a == "-u" || a == "--unset" {
            if args.next().as_deref() == Some("LD_PRELOAD") {
                how.get_or_insert_with(|| "`env -u LD_PRELOAD` removes it".to_owned());
            }
        } else if a == "-uLD_PRELOAD" || a == "--unset=LD_PRELOAD" {
            how.get_or_insert_with(|| format!("`env {a}` removes it"));
        } else if let Some(v) = a.strip_prefix("LD_PRELOAD=") {
            if !v.contains(super::launcher::PRELOAD_LIB) {
                how = Some(format!("`env {a}` replaces it"));
            } else {
                how = None;
            }
        } else if a.starts_with('-') || a.contains('=') {
            // Another option or assignment: keep looking for the program.
        } else {
            program = Some(a);
            break;
        }
    }
    let (Some(how), Some(program)) = (how, program) else {
        return Vec::new();
    };
    vec![format!(
        "tidemark's recorder reaches the program through LD_PRELOAD, and {how}: {program} ran \
         without the recorder, so its allocations are NOT in the profile (it covers `env` \
         itself). Set LD_PRELOAD before tidemark instead (`LD_PRELOAD=... tidemark run -- \
         {program} ...`: tidemark keeps an existing LD_PRELOAD after its own)"
    )]
}

/// The stack-quality warnings of a finished profile (see [`crate::analysis::stack_quality`]).
pub fn stack_warnings(p: &Profile) -> Vec<String> {
    crate::analysis::stack_quality(p).warnings()
}

/// The line `tidemark run` prints about a finished profile, whichever way its numbers came.
pub struct RunLine {
    pub allocations: u64,
    pub allocated_bytes: u64,
    pub peak_bytes: u64,
    pub leaked_bytes: u64,
    pub leaked_blocks: u64,
    pub temporary: u64,
    pub duration_ms: u64,
    /// The leaked numbers are the recorder's count of live blocks, runtime-owned ones included
    /// (the trailer's totals: no stack was read, so no suppression rule applied).
    pub runtime_owned_included: bool,
}

impl RunLine {
    /// The line of a loaded profile's summary.
    pub fn of(s: &crate::analysis::Summary) -> RunLine {
        RunLine {
            allocations: s.counts.allocations,
            allocated_bytes: s.counts.allocated_bytes,
            peak_bytes: s.counts.peak_bytes,
            leaked_bytes: s.counts.leaked_bytes,
            leaked_blocks: s.counts.leaked_allocations,
            temporary: s.counts.temporary_allocations,
            duration_ms: s.duration_ms,
            runtime_owned_included: false,
        }
    }

    /// Prints it on stderr.
    pub fn print(&self) {
        use crate::render::units::{count, duration_ms};
        eprintln!(
            "tidemark: {} allocation calls, {} allocated, peak {}, leaked {} in {} blocks{}, {} \
             temporary, {}",
            count(self.allocations),
            bytes(self.allocated_bytes),
            bytes(self.peak_bytes),
            bytes(self.leaked_bytes),
            count(self.leaked_blocks),
            if self.runtime_owned_included {
                " (runtime-owned included)"
            } else {
                ""
            },
            count(self.temporary),
            duration_ms(self.duration_ms)
        );
    }
}

/// The summary line of `tidemark run`, from what the recorder counted (the trailer's totals, in
/// exact mode): the events are not read back. `None` when the profile has no such totals
/// (sampled, truncated, an older format) or needs a look at its stacks to warn about them
/// (`--unwind fp`, whose broken walks only the loaded profile shows; stacks cut at the frame
/// limit, whose share of allocations it gives): the caller then loads it.
pub struct QuickSummary {
    pub line: RunLine,
    dropped: u64,
    messages: Vec<crate::model::Message>,
    /// The cut-stack warning, from the recorder's counts.
    stack_warnings: Vec<String>,
    /// What the recorder says of its CPU samples (`--cpu`).
    cpu: Option<String>,
}

/// The line `tidemark run` prints about the CPU samples of a profile recorded with `--cpu`,
/// from its trailer: how many, how many were lost, at what rate.
pub fn cpu_line(trailer: &[(u64, u64)]) -> Option<String> {
    use tidemark::format::trailer_key as k;
    let get = |key| trailer.iter().find(|(kk, _)| *kk == key).map(|&(_, v)| v);
    let samples = get(k::CPU_SAMPLES)?;
    let lost = get(k::CPU_SAMPLES_LOST).unwrap_or(0);
    let hz = get(k::CPU_PERIOD_NS)
        .filter(|&p| p > 0)
        .map(|p| format!(" at {} Hz of CPU time", (1e9 / p as f64).round()))
        .unwrap_or_default();
    let lost = if lost > 0 {
        format!(
            " ({} more lost: CPU times are lower bounds)",
            crate::render::units::count(lost)
        )
    } else {
        String::new()
    };
    Some(format!(
        "tidemark: {} CPU samples{hz}{lost}; see them with: tidemark flamegraph --metric cpu",
        crate::render::units::count(samples)
    ))
}

impl QuickSummary {
    /// Reads the header, the definitions, the messages and the trailer of the profile at
    /// `path`, passing over its events.
    pub fn read(path: &Path) -> Option<QuickSummary> {
        use tidemark::format::{Reader, Record};
        let f = std::fs::File::open(path).ok()?;
        let mut r = Reader::new(std::io::BufReader::with_capacity(1 << 20, f)).ok()?;
        if !Self::applies(r.header()) {
            return None;
        }
        r.skip_events(true);
        let mut trailer = None;
        let mut messages = Vec::new();
        let mut cut_stacks = false;
        while let Some(records) = r.next_chunk().ok()? {
            for rec in records {
                match rec.ok()? {
                    Record::Trailer { values } => trailer = Some(values),
                    Record::Message { level, text } => {
                        messages.push(crate::model::Message { level, text })
                    }
                    Record::Stack {
                        truncated: true, ..
                    } => cut_stacks = true,
                    _ => {}
                }
            }
        }
        if r.truncation().is_some() {
            return None;
        }
        Self::from_parts(&trailer?, messages, Some(cut_stacks))
    }

    /// [`QuickSummary::read`] from a profile already read without its events (the symbol
    /// embedding's read: no third pass over the file). `None` also when the trailer does not
    /// count cut stacks (an older recorder): only [`QuickSummary::read`] looks at them.
    pub fn from_profile(p: &crate::model::Profile) -> Option<QuickSummary> {
        if !Self::applies(&p.header) || p.truncated.is_some() {
            return None;
        }
        Self::from_parts(p.trailer.as_ref()?, p.messages.clone(), None)
    }

    /// Whether the trailer's totals can stand for the profile: exact mode, DWARF walks, a
    /// format with totals.
    fn applies(h: &tidemark::format::Header) -> bool {
        h.version >= 2 && h.sampling_rate == 0 && h.unwind != "fp"
    }

    /// The summary of a complete profile's trailer and messages; `cut_stacks` says whether a
    /// stack was cut at the frame limit (`None`: not looked at).
    fn from_parts(
        t: &[(u64, u64)],
        messages: Vec<crate::model::Message>,
        cut_stacks: Option<bool>,
    ) -> Option<QuickSummary> {
        use tidemark::format::trailer_key as k;
        let get = |key| t.iter().find(|(kk, _)| *kk == key).map(|&(_, v)| v);
        // Cut stacks warn with their share of allocations: the recorder counted it (older
        // profiles did not: they are read back).
        let stack_warnings = match (get(k::STACKED_ALLOCATIONS), get(k::TRUNCATED_ALLOCATIONS)) {
            (Some(allocations), Some(truncated_allocations)) => crate::analysis::StackQuality {
                allocations,
                truncated_allocations,
                ..Default::default()
            }
            .warnings(),
            _ if cut_stacks != Some(false) => return None,
            _ => Vec::new(),
        };
        Some(QuickSummary {
            line: RunLine {
                allocations: get(k::ALLOCATIONS)?,
                allocated_bytes: get(k::ALLOCATED_BYTES)?,
                peak_bytes: get(k::PEAK_BYTES)?,
                leaked_bytes: get(k::LEAKED_BYTES)?,
                leaked_blocks: get(k::LEAKED_BLOCKS)?,
                temporary: get(k::TEMPORARY_ALLOCATIONS)?,
                duration_ms: get(k::END_NS).unwrap_or(0) / 1_000_000,
                runtime_owned_included: true,
            },
            dropped: get(k::DROPPED_EVENTS).unwrap_or(0),
            messages,
            stack_warnings,
            cpu: cpu_line(t),
        })
    }

    /// Prints what `tidemark run` says about a finished profile.
    pub fn print(&self) {
        self.line.print();
        if let Some(c) = &self.cpu {
            eprintln!("{c}");
        }
        for m in &self.messages {
            eprintln!("tidemark: recorder {}: {}", m.level_name(), m.text);
        }
        for w in &self.stack_warnings {
            eprintln!("tidemark: warning: {w}");
        }
        if self.dropped > 0 {
            eprintln!(
                "tidemark: warning: the recorder dropped {} event(s): counts are lower bounds",
                crate::render::units::count(self.dropped)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn env_dropping_the_preload_is_named() {
        let w = preload_dropped(&argv(&["env", "LD_PRELOAD=x.so", "./prog", "a"]));
        assert_eq!(w.len(), 1);
        assert!(
            w[0].contains("./prog") && w[0].contains("LD_PRELOAD=x.so"),
            "{w:?}"
        );
        assert_eq!(
            preload_dropped(&argv(&["/usr/bin/env", "-i", "prog"])).len(),
            1
        );
        assert_eq!(
            preload_dropped(&argv(&["env", "-u", "LD_PRELOAD", "prog"])).len(),
            1
        );
        // Harmless uses of env stay quiet.
        assert!(preload_dropped(&argv(&["env", "FOO=1", "prog"])).is_empty());
        assert!(preload_dropped(&argv(&["env", "-u", "HOME", "prog"])).is_empty());
        assert!(preload_dropped(&argv(&["env", "LD_PRELOAD=x.so"])).is_empty());
        assert!(preload_dropped(&argv(&["prog", "LD_PRELOAD=x"])).is_empty());
        assert!(preload_dropped(&argv(&[
            "env",
            "LD_PRELOAD=/t/libtidemark_preload.so:x.so",
            "prog"
        ]))
        .is_empty());
    }

    #[test]
    fn free_space_is_read() {
        assert!(free_bytes(Path::new("/")).is_some());
        assert!(free_bytes(Path::new("/nonexistent/dir")).is_none());
    }
}
