//! Recorder configuration and the one table of environment options.

use crate::unwind::UnwindMode;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Default output template.
pub const DEFAULT_OUTPUT: &str = "tidemark.%e.%p.tmk";
/// Default timeline interval.
pub const DEFAULT_INTERVAL_MS: u64 = 10;
/// How often buffers are written to the file. Chunks reach the file at least this often.
pub const DEFAULT_FLUSH_MS: u64 = 100;
/// One allocator call in this many is timed for the latency keys (see `record::latency`).
pub const DEFAULT_LATENCY_EVERY: u32 = 8;
/// Allocators the preload library can forward to.
pub const ALLOCATORS: [&str; 2] = ["glibc", "jemalloc"];

/// A function the writer thread calls at every timeline sample to append `(sample_key, value)`
/// pairs, e.g. `tidemark::record::jemalloc_sampler` (feature `jemalloc`). It runs on the writer
/// thread, whose own allocations are never recorded.
pub type ExtraSampler = fn(&mut Vec<(u64, u64)>);

/// One environment option.
#[derive(Debug, Clone, Copy)]
pub struct EnvOption {
    /// Variable name.
    pub name: &'static str,
    /// Default, as text.
    pub default: &'static str,
    /// What it does.
    pub help: &'static str,
}

/// Every environment variable the recorder reads, read once at start.
pub const ENV_OPTIONS: &[EnvOption] = &[
    EnvOption {
        name: "TIDEMARK_OUTPUT",
        default: DEFAULT_OUTPUT,
        help: "profile path; %p is replaced by the pid, %e by the executable's file name. \
               An existing file is never overwritten: <stem>.<pid>.tmk is written beside it",
    },
    EnvOption {
        name: "TIDEMARK_INTERVAL_MS",
        default: "10",
        help: "timeline sampling interval in milliseconds (1..=60000)",
    },
    EnvOption {
        name: "TIDEMARK_UNWIND",
        default: "dwarf",
        help: "stack unwinding: dwarf (correct without frame pointers) or fp (frame pointers)",
    },
    EnvOption {
        name: "TIDEMARK_WALK_CACHE",
        default: "1",
        help: "0 turns off the per-thread stack-walk cache (every stack unwound in full); the \
               stacks are the same either way: for measurements and tests",
    },
    EnvOption {
        name: "TIDEMARK_LIMIT_BYTES",
        default: "0",
        help: "memory limit stored in the profile for pressure and time-to-limit; 0 = none",
    },
    EnvOption {
        name: "TIDEMARK_SAMPLE_RATE",
        default: "0",
        help: "mean bytes between sampled allocations; 0 records every allocation",
    },
    EnvOption {
        name: "TIDEMARK_ALLOCATOR",
        default: "system",
        help: "allocator the preload library forwards to: system (the program's own; glibc is \
               an older name for it) or jemalloc (bundled); ignored by the in-process recorder",
    },
    EnvOption {
        name: "TIDEMARK_MALLOC_CONF",
        default: "",
        help: "options for the bundled jemalloc, in MALLOC_CONF syntax \
               (dirty_decay_ms:0,narenas:2); preload library only",
    },
    EnvOption {
        name: "TIDEMARK_TRACE",
        default: "0",
        help: "1 prints one line per second on stderr: heap, growth, RSS, limit, allocation \
               rate, p99 allocator latency",
    },
    EnvOption {
        name: "TIDEMARK_LATENCY_EVERY",
        default: "8",
        help: "time one allocator call in this many (a power of two up to 1024) for the \
               latency percentiles; 1 times every call, 0 none",
    },
    EnvOption {
        name: "TIDEMARK_CPU_HZ",
        default: "0",
        help: "CPU sampling: on-CPU stacks of every thread this many times per second of its \
               CPU time (99 is usual, up to 10000); 0 = off",
    },
    EnvOption {
        name: "TIDEMARK_ESCAPE",
        default: "0",
        help: "1 records frame addresses with every allocation and free (stack pointer and \
               the CFAs of the first frames) for escape analysis and per-thread stack peaks",
    },
];

/// What the recorder does. Defaults are those of [`ENV_OPTIONS`].
#[derive(Debug, Clone)]
pub struct Config {
    /// Output path template (`%p` → pid, `%e` → executable name, `%%` → `%`). Default:
    /// [`DEFAULT_OUTPUT`].
    pub output: PathBuf,
    /// Timeline interval. Default: 10 ms.
    pub interval_ms: u64,
    /// How often buffers are written out. Default: 100 ms.
    pub flush_ms: u64,
    /// Stack capture. Default: DWARF.
    pub unwind: UnwindMode,
    /// Reuse the outer part of each thread's previous stack walk when it is proven unchanged
    /// (`TIDEMARK_WALK_CACHE`). Off only to measure it or to test it. Default: true.
    pub walk_cache: bool,
    /// Mean bytes between samples; 0 records everything. Default: 0.
    pub sampling_rate: u64,
    /// Memory limit stored in the header; 0 = none. Default: 0.
    pub limit_bytes: u64,
    /// `"preload"` or `"in-process"`. Default: `"preload"`.
    pub source: &'static str,
    /// Allocator serving the program, stored in the header (`TIDEMARK_ALLOCATOR` for the
    /// preload library). Default: `"glibc"`.
    pub allocator: String,
    /// The allocator asked for, stored in the header beside [`Config::allocator`]: `"system"`
    /// (the program's own) or `"jemalloc"` (the bundled one), as the preload library read
    /// `TIDEMARK_ALLOCATOR`; empty for the in-process recorder. Default: empty.
    pub allocator_requested: String,
    /// Print a live trace line on stderr once a second (`TIDEMARK_TRACE=1`). Default: false.
    pub trace: bool,
    /// Time one allocator call in this many, chosen at random, for the latency keys of the
    /// timeline; a power of two, 1 = every call, 0 = none. Default: [`DEFAULT_LATENCY_EVERY`].
    pub latency_every: u32,
    /// Called by the writer at every timeline sample to add readings, e.g.
    /// `tidemark::record::jemalloc_sampler` when jemalloc serves the program. Default: `None`.
    pub extra_sampler: Option<ExtraSampler>,
    /// Replace an existing file at `output` instead of writing beside it. Off for the preload
    /// (children and exec'd programs inherit its environment and must not truncate the parent's
    /// profile); on for an explicit `tidemark::Session::start(path)`. Default: false.
    pub replace: bool,
    /// CPU samples per second of each thread's CPU time (`TIDEMARK_CPU_HZ`); 0 = no CPU
    /// sampling. Default: 0.
    pub cpu_hz: u64,
    /// Record frame addresses (`EVENT_FRAMES`) after every allocation and free, for escape
    /// analysis (`TIDEMARK_ESCAPE=1`, `tidemark run --escape`). Default: false.
    pub escape: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            output: PathBuf::from(DEFAULT_OUTPUT),
            interval_ms: DEFAULT_INTERVAL_MS,
            flush_ms: DEFAULT_FLUSH_MS,
            unwind: UnwindMode::Dwarf,
            walk_cache: true,
            sampling_rate: 0,
            limit_bytes: 0,
            source: "preload",
            allocator: "glibc".to_owned(),
            allocator_requested: String::new(),
            trace: false,
            latency_every: DEFAULT_LATENCY_EVERY,
            extra_sampler: None,
            replace: false,
            cpu_hz: 0,
            escape: false,
        }
    }
}

/// Field by field; extra samplers compare by address.
impl PartialEq for Config {
    fn eq(&self, o: &Config) -> bool {
        let Config {
            output,
            interval_ms,
            flush_ms,
            unwind,
            walk_cache,
            sampling_rate,
            limit_bytes,
            source,
            allocator,
            allocator_requested,
            trace,
            latency_every,
            extra_sampler,
            replace,
            cpu_hz,
            escape,
        } = self;
        let same_sampler = match (extra_sampler, o.extra_sampler) {
            (None, None) => true,
            (Some(a), Some(b)) => std::ptr::fn_addr_eq(*a, b),
            _ => false,
        };
        *output == o.output
            && *interval_ms == o.interval_ms
            && *flush_ms == o.flush_ms
            && *unwind == o.unwind
            && *walk_cache == o.walk_cache
            && *sampling_rate == o.sampling_rate
            && *limit_bytes == o.limit_bytes
            && *source == o.source
            && *allocator == o.allocator
            && *allocator_requested == o.allocator_requested
            && *trace == o.trace
            && *latency_every == o.latency_every
            && same_sampler
            && *replace == o.replace
            && *cpu_hz == o.cpu_hz
            && *escape == o.escape
    }
}

impl Eq for Config {}

impl Config {
    /// Reads [`ENV_OPTIONS`] from the environment. An invalid value keeps its default and is
    /// reported with one line on stderr (`tidemark: TIDEMARK_UNWIND="x" is neither ...`).
    pub fn from_env() -> Config {
        let (cfg, warnings) = Config::from_lookup(|name| std::env::var(name).ok());
        for w in warnings {
            super::report(&w);
        }
        cfg
    }

    /// Like [`Config::from_env`] with an arbitrary lookup, returning the warnings instead of
    /// printing them.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> (Config, Vec<String>) {
        let mut cfg = Config::default();
        let mut warnings = Vec::new();
        let mut num = |name: &str, min: u64, max: u64, slot: &mut u64| {
            if let Some(v) = get(name) {
                match v.trim().parse::<u64>() {
                    Ok(n) if (min..=max).contains(&n) => *slot = n,
                    _ => warnings.push(format!(
                        "{name}={v:?} is not a number in {min}..={max}; using {}",
                        *slot
                    )),
                }
            }
        };
        num("TIDEMARK_INTERVAL_MS", 1, 60_000, &mut cfg.interval_ms);
        num("TIDEMARK_LIMIT_BYTES", 0, u64::MAX, &mut cfg.limit_bytes);
        num("TIDEMARK_SAMPLE_RATE", 0, u64::MAX, &mut cfg.sampling_rate);
        num("TIDEMARK_CPU_HZ", 0, super::cpu::MAX_HZ, &mut cfg.cpu_hz);
        if let Some(v) = get("TIDEMARK_OUTPUT") {
            if v.is_empty() {
                warnings.push(format!("TIDEMARK_OUTPUT is empty; using {DEFAULT_OUTPUT}"));
            } else {
                cfg.output = PathBuf::from(v);
            }
        }
        if let Some(v) = get("TIDEMARK_LATENCY_EVERY") {
            match v.trim().parse::<u32>() {
                Ok(n) if n == 0 || (n.is_power_of_two() && n <= 1024) => cfg.latency_every = n,
                _ => warnings.push(format!(
                    "TIDEMARK_LATENCY_EVERY={v:?} is not 0 or a power of two up to 1024; using {}",
                    DEFAULT_LATENCY_EVERY
                )),
            }
        }
        if let Some(v) = get("TIDEMARK_TRACE") {
            match v.trim() {
                "1" | "true" | "yes" | "on" => cfg.trace = true,
                "0" | "false" | "no" | "off" | "" => cfg.trace = false,
                _ => warnings.push(format!("TIDEMARK_TRACE={v:?} is neither 1 nor 0; using 0")),
            }
        }
        if let Some(v) = get("TIDEMARK_ESCAPE") {
            match v.trim() {
                "1" | "true" | "yes" | "on" => cfg.escape = true,
                "0" | "false" | "no" | "off" | "" => cfg.escape = false,
                _ => warnings.push(format!("TIDEMARK_ESCAPE={v:?} is neither 1 nor 0; using 0")),
            }
        }
        if let Some(v) = get("TIDEMARK_WALK_CACHE") {
            match v.trim() {
                "1" | "true" | "yes" | "on" | "" => cfg.walk_cache = true,
                "0" | "false" | "no" | "off" => cfg.walk_cache = false,
                _ => warnings.push(format!(
                    "TIDEMARK_WALK_CACHE={v:?} is neither 1 nor 0; using 1"
                )),
            }
        }
        if let Some(v) = get("TIDEMARK_ALLOCATOR") {
            let mut name = v.trim().to_ascii_lowercase();
            // `system` (tidemark run's word) and `glibc` both mean the program's own allocator.
            if name == "system" {
                name = "glibc".to_owned();
            }
            match ALLOCATORS.iter().find(|a| **a == name) {
                Some(a) => cfg.allocator = (*a).to_owned(),
                None => warnings.push(format!(
                    "TIDEMARK_ALLOCATOR={v:?} is none of \"system\", \"glibc\", \"jemalloc\"; using the program's own allocator"
                )),
            }
        }
        if let Some(v) = get("TIDEMARK_UNWIND") {
            match v.trim().to_ascii_lowercase().as_str() {
                "dwarf" => cfg.unwind = UnwindMode::Dwarf,
                "fp" => cfg.unwind = UnwindMode::Fp,
                _ => warnings.push(format!(
                    "TIDEMARK_UNWIND={v:?} is neither \"dwarf\" nor \"fp\"; using dwarf"
                )),
            }
        }
        (cfg, warnings)
    }
}

/// Expands `%p` (pid), `%e` (executable file name) and `%%` in an output template.
pub fn expand_template(template: &Path, pid: u32, exe_name: &str) -> PathBuf {
    let template = template.to_string_lossy();
    let mut out = String::with_capacity(template.len() + 16);
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('p') => out.push_str(&pid.to_string()),
            Some('e') => out.push_str(exe_name),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    PathBuf::from(out)
}

/// The alternative name for an output that already exists: `<stem>.<pid>.tmk`, then
/// `<stem>.<pid>.<n>.tmk`.
pub fn alternative_path(path: &Path, pid: u32, attempt: u32) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.strip_suffix(".tmk").unwrap_or(&name);
    let alt = if attempt == 0 {
        format!("{stem}.{pid}.tmk")
    } else {
        format!("{stem}.{pid}.{attempt}.tmk")
    };
    path.with_file_name(alt)
}

/// Creates the output file. With `replace`, an existing file is truncated. Without it, never
/// overwrites: `O_CREAT|O_EXCL`, and when the name exists (a child or exec'd process inheriting
/// the environment), an alternative beside it.
pub fn create_output(path: &Path, pid: u32, replace: bool) -> io::Result<(File, PathBuf)> {
    if replace {
        let f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)?;
        return Ok((f, path.to_owned()));
    }
    let open = |p: &Path| {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_CLOEXEC)
            .open(p)
    };
    match open(path) {
        Ok(f) => return Ok((f, path.to_owned())),
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
        Err(_) => {}
    }
    let mut last = io::Error::from(io::ErrorKind::AlreadyExists);
    for attempt in 0..100 {
        let alt = alternative_path(path, pid, attempt);
        match open(&alt) {
            Ok(f) => return Ok((f, alt)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(vars: &[(&str, &str)]) -> (Config, Vec<String>) {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_without_environment() {
        let (cfg, w) = parse(&[]);
        assert_eq!(cfg, Config::default());
        assert!(w.is_empty());
        assert_eq!(cfg.interval_ms, 10);
        assert_eq!(cfg.unwind, UnwindMode::Dwarf);
    }

    #[test]
    fn every_option_is_read() {
        let (cfg, w) = parse(&[
            ("TIDEMARK_OUTPUT", "/tmp/x.%p.tmk"),
            ("TIDEMARK_INTERVAL_MS", "25"),
            ("TIDEMARK_UNWIND", "FP"),
            ("TIDEMARK_LIMIT_BYTES", "1073741824"),
            ("TIDEMARK_SAMPLE_RATE", "524288"),
            ("TIDEMARK_ALLOCATOR", "JeMalloc"),
            ("TIDEMARK_TRACE", "1"),
            ("TIDEMARK_LATENCY_EVERY", "1"),
            ("TIDEMARK_MALLOC_CONF", "dirty_decay_ms:0"),
            ("TIDEMARK_WALK_CACHE", "off"),
            ("TIDEMARK_CPU_HZ", "99"),
            ("TIDEMARK_ESCAPE", "1"),
        ]);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(cfg.cpu_hz, 99);
        assert!(cfg.escape);
        assert_eq!(cfg.allocator, "jemalloc");
        assert!(cfg.trace);
        assert_eq!(cfg.latency_every, 1);
        assert!(cfg.extra_sampler.is_none());
        assert_eq!(cfg.output, PathBuf::from("/tmp/x.%p.tmk"));
        assert_eq!(cfg.interval_ms, 25);
        assert_eq!(cfg.unwind, UnwindMode::Fp);
        assert_eq!(cfg.limit_bytes, 1 << 30);
        assert_eq!(cfg.sampling_rate, 524288);
        assert!(!cfg.walk_cache);
        assert_eq!(ENV_OPTIONS.len(), 12);
    }

    #[test]
    fn system_is_the_program_s_own_allocator() {
        for v in ["system", "System", "glibc"] {
            let (cfg, w) = parse(&[("TIDEMARK_ALLOCATOR", v)]);
            assert!(w.is_empty(), "{w:?}");
            assert_eq!(cfg.allocator, "glibc", "{v}");
        }
    }

    #[test]
    fn bad_values_warn_and_keep_defaults() {
        let (cfg, w) = parse(&[
            ("TIDEMARK_INTERVAL_MS", "0"),
            ("TIDEMARK_UNWIND", "libunwind"),
            ("TIDEMARK_LIMIT_BYTES", "1G"),
            ("TIDEMARK_ALLOCATOR", "tcmalloc"),
            ("TIDEMARK_TRACE", "maybe"),
            ("TIDEMARK_LATENCY_EVERY", "3"),
            ("TIDEMARK_WALK_CACHE", "2"),
            ("TIDEMARK_CPU_HZ", "100000"),
            ("TIDEMARK_ESCAPE", "sometimes"),
        ]);
        assert_eq!(cfg, Config::default());
        assert_eq!(w.len(), 9, "{w:?}");
        assert!(w[0].contains("TIDEMARK_INTERVAL_MS"));
    }

    #[test]
    fn templates_and_alternatives() {
        assert_eq!(
            expand_template(Path::new("out/%e.%p.tmk"), 42, "app"),
            PathBuf::from("out/app.42.tmk")
        );
        assert_eq!(
            expand_template(Path::new("a%%b%q%"), 1, "x"),
            PathBuf::from("a%b%q%")
        );
        assert_eq!(
            alternative_path(Path::new("/t/run.tmk"), 7, 0),
            PathBuf::from("/t/run.7.tmk")
        );
        assert_eq!(
            alternative_path(Path::new("/t/run"), 7, 2),
            PathBuf::from("/t/run.7.2.tmk")
        );
    }

    #[test]
    fn existing_output_is_never_overwritten() {
        let dir = std::env::temp_dir().join(format!("tidemark-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("p.tmk");
        let _ = std::fs::remove_file(&p);
        let (_, first) = create_output(&p, 9, false).unwrap();
        assert_eq!(first, p);
        let (_, second) = create_output(&p, 9, false).unwrap();
        assert_eq!(second, dir.join("p.9.tmk"));
        let (_, third) = create_output(&p, 9, false).unwrap();
        assert_eq!(third, dir.join("p.9.1.tmk"));
        let err = create_output(Path::new("/proc/tidemark/x.tmk"), 1, false).unwrap_err();
        assert_ne!(err.kind(), io::ErrorKind::AlreadyExists);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn replace_truncates_the_named_file() {
        let dir = std::env::temp_dir().join(format!("tidemark-replace-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("s.tmk");
        std::fs::write(&p, b"old contents").unwrap();
        let (_, path) = create_output(&p, 9, true).unwrap();
        assert_eq!(path, p);
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
