//! Opening the debug information of a running program's modules while it runs.
//!
//! `tidemark run` waits for the profiled command; the finish then resolves every return address
//! of the profile. [`Prewarm`] opens the program's file and debug information on the otherwise
//! idle launcher while the command runs: it reads the child's `/proc/PID/maps` once the dynamic
//! loader has mapped it, opens the program (the same [`ModuleDebug`] the finish would open), and
//! hands it to the finish (`crate::embed::Embedder::with_warmed`), which then only looks
//! addresses up. libc's compressed separate debug file is opened too, its small sections and
//! symbol table read and its `.debug_info` inflated for as long as the command runs
//! ([`DebugParts`]): which of its units the finish needs depends on the addresses
//! (`super::prefix`), and the finish continues from there. A stripped program's debug package is
//! looked up here too, for the finish's hint. Then, until the command ends, the return addresses
//! the recorder has written so far are named ([`name_ahead`]: the launcher hands in a reader of
//! the profile being written), so that the finish names only those of the command's last
//! moments. The thread runs under `SCHED_IDLE`: only on a core that the command and the
//! recorder's writer leave idle.
//!
//! Nothing depends on it for correctness: a module the warm-up missed (loaded later, or still
//! being opened when the command ended) is opened by the finish as before, and a warmed module is
//! used only when its path and build-id are the ones the profile recorded.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tidemark::format::Module;

use super::debuginfo::{build_id_debug_path, file_build_id, ModuleDebug, DEBUG_ROOT};
use super::prefix::DebugParts;

/// How often the child's module list is read while the loader maps it.
const POLL_INTERVAL: Duration = Duration::from_millis(2);
/// After this long the module list is taken as it is, settled or not.
const SETTLE_LIMIT: Duration = Duration::from_millis(500);
/// The recorder's own library: its frames never appear in recorded stacks.
const PRELOAD_NAME: &str = "libtidemark_preload";

/// A module opened ahead of the finish, with the warnings its opening gave.
pub(crate) struct WarmModule {
    pub(crate) debug: ModuleDebug,
    pub(crate) warnings: Vec<String>,
}

/// Modules opened while the command ran, keyed like the symbolizer's cache: (path, build-id of
/// the file when it was opened).
#[derive(Default)]
pub struct Warmed {
    pub(crate) modules: HashMap<(String, Vec<u8>), WarmModule>,
    /// libc's compressed debug file, opened and inflated as far as the command's run allowed.
    pub(crate) parts: Vec<DebugParts>,
    /// Modules opened to name the addresses recorded while the command ran, keyed like the
    /// symbolizer's cache (the path and build-id the profile recorded).
    pub(crate) opened: HashMap<(String, Vec<u8>), ModuleDebug>,
    /// What those addresses were named ([`super::DebugCache::for_several`]'s record).
    pub(crate) named: super::Named,
    /// The warnings opening those modules gave, for the finish to report.
    pub(crate) warnings: Vec<String>,
}

/// What the recorder has written so far: the profile's module map snapshots and its return
/// addresses, each as (address, module map generation); `None` while the profile cannot be
/// read, or when the flag (the command ended) was raised during the read, which then stops.
/// The launcher reads the profile being written ([`crate::symbolize`] reads binaries, never
/// profiles).
pub type Recorded = Box<
    dyn FnMut(&AtomicBool) -> Option<(Vec<crate::model::ModuleSnapshot>, Vec<(u64, u64)>)> + Send,
>;

impl Warmed {
    /// Takes the module opened for `path` with build-id `build_id`. The recorder names modules
    /// as the dynamic loader opened them (`/lib/x86_64-linux-gnu/libc.so.6`) while the kernel's
    /// map gives the resolved path (`/usr/lib/...` on a merged-/usr system): both are tried.
    pub(crate) fn take(&mut self, path: &str, build_id: &[u8]) -> Option<WarmModule> {
        if self.modules.is_empty() {
            return None;
        }
        if let Some(w) = self.modules.remove(&(path.to_owned(), build_id.to_vec())) {
            return Some(w);
        }
        let real = std::fs::canonicalize(path).ok()?;
        self.modules
            .remove(&(real.to_str()?.to_owned(), build_id.to_vec()))
    }

    /// How many modules were opened ahead.
    pub fn len(&self) -> usize {
        self.modules.len()
    }

    /// True when nothing was opened ahead.
    pub fn is_empty(&self) -> bool {
        self.modules.is_empty()
    }
}

/// The warm-up of one running process, on its own thread; [`Prewarm::finish`] collects it.
pub struct Prewarm {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Warmed>>,
}

impl Prewarm {
    /// Starts opening the modules of process `pid` (just spawned) on a new thread, then naming
    /// the return addresses `recorded` gives as the profile grows. When the thread cannot be
    /// started, nothing is warmed.
    pub fn start(pid: u32, recorded: Option<Recorded>) -> Prewarm {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name("tidemark-prewarm".to_owned())
            .spawn(move || warm(pid, recorded, &flag))
            .ok();
        Prewarm { stop, handle }
    }

    /// Stops the warm-up (after the module it is opening) and returns what it opened. Call it
    /// once the command has ended.
    pub fn finish(mut self) -> Warmed {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = &self.handle {
            h.thread().unpark();
        }
        self.handle
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Prewarm {
    fn drop(&mut self) {
        // Not collected (an error path): let the thread end on its own, soon.
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The program of a profile being loaded, opened on a thread of its own meanwhile when it is
/// stripped: the symbolization pass after the load then only looks its addresses up. A
/// stripped program's (python3's) addresses have no embedded symbols, so they are looked for
/// (and hinted at) in its files every time a profile is loaded; a program with symbols had its
/// addresses named when its run embedded them, and is not opened.
pub struct ExeWarmup {
    done: std::sync::mpsc::Receiver<Warmed>,
}

impl ExeWarmup {
    /// Starts opening `exe` (as the profile's header names it); `None` when it is no file here
    /// or no thread can be started.
    pub fn start(exe: &str) -> Option<ExeWarmup> {
        if exe.is_empty() || !Path::new(exe).is_file() {
            return None;
        }
        let exe = exe.to_owned();
        let (tx, done) = std::sync::mpsc::channel();
        // Not joined: a warm-up still running when the load is done is not waited for (the pass
        // opens the file itself if it needs it), and ends with the process.
        std::thread::Builder::new()
            .name("tidemark-warm-exe".to_owned())
            .spawn(move || {
                let mut warmed = Warmed::default();
                // A program with symbols of its own had its addresses named when its run
                // embedded them; a stripped one's are hinted at again, and looked for again
                // once its debug file is installed.
                if super::debuginfo::is_stripped(Path::new(&exe)) {
                    warm_stripped(&exe, &mut warmed);
                }
                let _ = tx.send(warmed);
            })
            .ok()?;
        Some(ExeWarmup { done })
    }

    /// What the warm-up opened, if it is done; never waits.
    pub fn ready(&self) -> Warmed {
        self.done.try_recv().unwrap_or_default()
    }
}

fn warm(pid: u32, recorded: Option<Recorded>, stop: &AtomicBool) -> Warmed {
    // Only on a core nothing else wants: the command and the recorder's writer come first.
    // When the command ends, the finish waits for this thread and its core is free.
    idle_priority();
    let maps = PathBuf::from(format!("/proc/{pid}/maps"));
    let mut warmed = Warmed::default();
    let modules = settled_modules(&maps, stop);
    for path in prioritized(&modules) {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        open_one(&path, &mut warmed);
    }
    if !stop.load(Ordering::Relaxed) {
        warmed.parts.extend(libc_parts(&modules, stop));
    }
    match recorded {
        Some(recorded) if !stop.load(Ordering::Relaxed) => name_ahead(recorded, warmed, stop),
        _ => warmed,
    }
}

/// Least wait between two reads of the profile being written.
const NAME_INTERVAL: Duration = Duration::from_millis(20);
/// How many times as long as a read of the profile took the next read waits: the reads take at
/// most a fifth of the idle core, and a finish waiting for one in progress waits little.
const READ_SPACING: u32 = 4;

/// Names, while the command runs, the return addresses the recorder has written so far (what
/// heaptrack's interpreter does as the events come): every [`NAME_INTERVAL`] or so the profile
/// is read again (module maps and return addresses; an unfinished last chunk is left for the
/// next read) and the addresses not seen before are resolved, into the cache the finish starts
/// from. The finish then names only what the command's last moments recorded: it looks the
/// others up ([`super::DebugCache`]'s record of named addresses), with the same result.
pub(crate) fn name_ahead(mut recorded: Recorded, warmed: Warmed, stop: &AtomicBool) -> Warmed {
    let mut cache = super::DebugCache::with_warmed(warmed).for_several();
    let mut seen: std::collections::HashSet<(u64, u64)> = std::collections::HashSet::new();
    let mut warnings = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        if let Some((modules, addresses)) = recorded(stop) {
            let new: Vec<(u64, u64)> = addresses.into_iter().filter(|k| seen.insert(*k)).collect();
            if !new.is_empty() && !stop.load(Ordering::Relaxed) {
                let mut sym = super::Symbolizer::with_cache(&modules, cache);
                sym.resolve_all(&new);
                warnings.extend(sym.take_warnings());
                cache = sym.into_cache();
            }
        }
        let wait = (started.elapsed() * READ_SPACING).max(NAME_INTERVAL);
        // Woken early when the command ends (`Prewarm::finish` unparks this thread).
        let until = Instant::now() + wait;
        while !stop.load(Ordering::Relaxed) {
            let Some(left) = until.checked_duration_since(Instant::now()) else {
                break;
            };
            std::thread::park_timeout(left);
        }
    }
    cache.into_warmed(warnings)
}

/// Runs the calling thread under `SCHED_IDLE`; nothing changes if that is refused.
fn idle_priority() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: a plain system call on the calling thread (0) with a valid parameter.
    unsafe {
        libc::sched_setscheduler(0, libc::SCHED_IDLE, &param);
    }
}

/// How much of libc's `.debug_info` is inflated between two looks at the stop flag.
const INFLATE_STEP: usize = 256 << 10;

/// libc's separate debug file, when it is a compressed one: opened, its small sections and
/// symbol table read, and `.debug_info` inflated until the command ends. Which of its units the
/// finish needs depends on the addresses, known only then (`super::prefix`); what is inflated
/// here is what the finish does not wait for.
fn libc_parts(modules: &[String], stop: &AtomicBool) -> Option<DebugParts> {
    let libc = modules.iter().find(|p| {
        p.rsplit('/')
            .next()
            .is_some_and(|b| b.starts_with("libc.so") || b.starts_with("libc-"))
    })?;
    let id = file_build_id(Path::new(libc)).ok()??;
    let path = build_id_debug_path(Path::new(DEBUG_ROOT), &id)?;
    let mut parts = DebugParts::open(&path)?;
    if !stop.load(Ordering::Relaxed) {
        parts.read_rest();
    }
    while !stop.load(Ordering::Relaxed) && parts.inflate_more(INFLATE_STEP) {}
    Some(parts)
}

/// The module list once the dynamic loader has mapped the program, its preloads and its
/// libraries: two reads in a row that agree, with the recorder's library among them.
fn settled_modules(maps: &Path, stop: &AtomicBool) -> Vec<String> {
    let started = Instant::now();
    let mut last: Option<Vec<String>> = None;
    loop {
        let Some(now) = executable_modules(maps) else {
            return last.unwrap_or_default();
        };
        let loaded = now.iter().any(|p| basename_has(p, PRELOAD_NAME));
        if (loaded && last.as_ref() == Some(&now))
            || started.elapsed() > SETTLE_LIMIT
            || stop.load(Ordering::Relaxed)
        {
            return now;
        }
        last = Some(now);
        // Woken early when the command ends (`Prewarm::finish` unparks this thread).
        std::thread::park_timeout(POLL_INTERVAL);
    }
}

fn basename_has(path: &str, name: &str) -> bool {
    path.rsplit('/').next().is_some_and(|b| b.contains(name))
}

/// The modules worth opening whole ahead: the program (mapped first). libc's frames are in
/// nearly every stack too (`main` and what calls it), but its separate debug file is compressed
/// and the finish reads only the part its addresses need: [`libc_parts`] prepares that instead.
/// Other libraries are opened by the finish only when a stack has a frame in them.
fn prioritized(modules: &[String]) -> Vec<String> {
    modules
        .iter()
        .find(|p| !basename_has(p, PRELOAD_NAME))
        .cloned()
        .into_iter()
        .collect()
}

/// Paths of the file-backed executable mappings of a process, in address order, each once;
/// `None` when the process is gone.
fn executable_modules(maps: &Path) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(maps).ok()?;
    Some(parse_maps(&text))
}

/// Executable, file-backed module paths of a `/proc/PID/maps` text, each once, in order.
fn parse_maps(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let (Some(_range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        // offset, device, inode, then the path (which may contain spaces).
        let path = line
            .splitn(6, |c: char| c.is_ascii_whitespace())
            .nth(5)
            .map(str::trim_start)
            .unwrap_or("");
        if !perms.contains('x') || !path.starts_with('/') || path.ends_with(" (deleted)") {
            continue;
        }
        if !out.iter().any(|p| p == path) {
            out.push(path.to_owned());
        }
    }
    out
}

/// For a stripped program: opens it when its separate debug file is installed (what would name
/// its addresses); otherwise looks up only the package the summary's hint names. Its own file
/// then named what it could when the profile's symbols were embedded, and the symbolization
/// pass does not read it again ([`super::symbolize_cached`]); for a profile without embedded
/// symbols the pass opens it itself.
fn warm_stripped(path: &str, warmed: &mut Warmed) {
    let Some(module) = file_module(path) else {
        return;
    };
    match super::debuginfo::debug_file_state(&module, Path::new(DEBUG_ROOT)) {
        Some(state) if !state.present => {
            if state.links_debug {
                let _ = super::debug_hint::owning_package(path);
            }
        }
        _ => open_module(module, warmed),
    }
}

/// The module of the file at `path`, as a profile would record it (its own build-id); `None`
/// when it cannot be read.
fn file_module(path: &str) -> Option<Module> {
    let build_id = file_build_id(Path::new(path)).ok()?;
    Some(Module {
        path: path.to_owned(),
        build_id: build_id.unwrap_or_default(),
        base: 0,
        segments: Vec::new(),
    })
}

/// Opens one module the way the finish would, keyed by the file's own build-id.
pub(crate) fn open_one(path: &str, warmed: &mut Warmed) {
    if let Some(module) = file_module(path) {
        open_module(module, warmed);
    }
}

/// [`open_one`] for the module of a file already read ([`file_module`]).
fn open_module(module: Module, warmed: &mut Warmed) {
    let mut warnings = Vec::new();
    let debug = ModuleDebug::open(&module, Path::new(DEBUG_ROOT), &mut warnings);
    if debug.misses_debug_file() {
        // The finish will hint at its debug package: find the package now, while the
        // command runs (a pass over dpkg's file lists).
        let _ = super::debug_hint::owning_package(&module.path);
    }
    warmed.modules.insert(
        (module.path, module.build_id),
        WarmModule { debug, warnings },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_give_executable_files_once_in_order() {
        let text = "\
55d0c0a00000-55d0c0a01000 r--p 00000000 fd:01 123 /tmp/my prog
55d0c0a01000-55d0c0a02000 r-xp 00001000 fd:01 123 /tmp/my prog
7f0000000000-7f0000001000 r-xp 00000000 00:00 0 
7f0000001000-7f0000002000 r-xp 00001000 fd:01 77 /usr/lib/x86_64-linux-gnu/libc.so.6
7f0000002000-7f0000003000 r-xp 00002000 fd:01 77 /usr/lib/x86_64-linux-gnu/libc.so.6
7f0000003000-7f0000004000 r-xp 00000000 fd:01 78 /old/lib.so (deleted)
7ffd00000000-7ffd00001000 r-xp 00000000 00:00 0                          [vdso]
";
        assert_eq!(
            parse_maps(text),
            vec![
                "/tmp/my prog".to_owned(),
                "/usr/lib/x86_64-linux-gnu/libc.so.6".to_owned()
            ]
        );
    }

    #[test]
    fn the_program_and_never_the_recorder() {
        let order = prioritized(&[
            "/bin/prog".into(),
            "/opt/libtidemark_preload.so".into(),
            "/lib/libm.so.6".into(),
            "/lib/libc.so.6".into(),
        ]);
        assert_eq!(order, vec!["/bin/prog"]);
        let preload_first =
            prioritized(&["/opt/libtidemark_preload.so".into(), "/bin/prog".into()]);
        assert_eq!(preload_first, vec!["/bin/prog"]);
    }
}
