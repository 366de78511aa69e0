//! Resolving many addresses at once on every core: the addresses are grouped by module, and
//! each worker takes a module, opens its debug information (unless it is open already) and
//! names that module's addresses. Opening is most of the time of a finish (a separate,
//! compressed debug file is inflated and indexed), and modules are independent, so `tidemark
//! run`'s finish uses both cores of a two-core machine where it used one.
//!
//! The result is the same as resolving the addresses one by one ([`Symbolizer::resolve_at`]),
//! in the same order, with the warnings in the order the modules first appear.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use tidemark::format::Module;

use super::debuginfo::{ModuleDebug, WarmParts};
use super::modules::basename;
use super::{unnamed, unresolved, Resolved, Symbolizer};

/// One module's share of the work: one file (path, build-id), whose generations may have
/// loaded it at different addresses (a library dlclosed and dlopened again).
struct Job {
    key: (String, Vec<u8>),
    module: Module,
    /// Positions of its addresses in the caller's list, each with the load bias of the
    /// module map that has it (which may not be `module`'s).
    positions: Vec<(usize, u64)>,
}

struct Done {
    debug: ModuleDebug,
    warnings: Vec<String>,
    resolved: Vec<Resolved>,
}

impl Symbolizer {
    /// Resolves every `(address, generation)` of `addrs` (see [`Symbolizer::resolve_at`]),
    /// modules in parallel; the results are in the order of `addrs`.
    pub(crate) fn resolve_all(&mut self, addrs: &[(u64, u64)]) -> Vec<Resolved> {
        let mut out: Vec<Option<Resolved>> = vec![None; addrs.len()];
        let mut jobs: Vec<Job> = Vec::new();
        let mut job_of: HashMap<(String, Vec<u8>), usize> = HashMap::new();
        for (i, &(addr, generation)) in addrs.iter().enumerate() {
            let Some(module) = self.map.find_at(addr, generation) else {
                out[i] = Some(unresolved(None, addr));
                continue;
            };
            let key = (module.path.clone(), module.build_id.clone());
            // Named for an earlier profile of the run (only kept for several profiles).
            if let Some(r) = self
                .named
                .get(&key)
                .and_then(|n| n.get(&probe_of(module, addr)))
            {
                out[i] = Some(r.clone());
                continue;
            }
            let j = *job_of.entry(key.clone()).or_insert_with(|| {
                jobs.push(Job {
                    key,
                    module: module.clone(),
                    positions: Vec::new(),
                });
                jobs.len() - 1
            });
            jobs[j].positions.push((i, module.base));
        }
        // Open already (cached, or opened while the command ran), else opened by a worker.
        let opened: Vec<Option<ModuleDebug>> = jobs
            .iter()
            .map(|job| {
                self.cache.remove(&job.key).or_else(|| {
                    let w = self.warmed.take(&job.module.path, &job.module.build_id)?;
                    self.warnings.extend(w.warnings);
                    Some(w.debug)
                })
            })
            .collect();
        let parts = WarmParts::new(std::mem::take(&mut self.warmed.parts)).widening(self.widens);
        let done = run(&jobs, opened, &self.debug_root, addrs, &parts);
        // Parts no module of these addresses took stay for the next addresses.
        self.warmed.parts = parts.into_inner();
        for (job, d) in jobs.into_iter().zip(done) {
            self.warnings.extend(d.warnings);
            if self.widens {
                let named = self.named.entry(job.key.clone()).or_default();
                for (&(i, base), r) in job.positions.iter().zip(&d.resolved) {
                    named.insert(probe_at(base, addrs[i].0), r.clone());
                }
            }
            for (&(i, _), r) in job.positions.iter().zip(d.resolved) {
                out[i] = Some(r);
            }
            self.cache.insert(job.key, d.debug);
        }
        out.into_iter()
            .map(|r| r.expect("every address was resolved"))
            .collect()
    }
}

/// Works through `jobs` (with their modules already `opened`, where they are) on up to as many
/// threads as the machine has cores; returns each job's result in job order.
fn run(
    jobs: &[Job],
    opened: Vec<Option<ModuleDebug>>,
    debug_root: &Path,
    addrs: &[(u64, u64)],
    parts: &WarmParts,
) -> Vec<Done> {
    // A module's debug information moves into the worker that takes its job (it can be sent
    // to another thread, not shared).
    let opened: Vec<Mutex<Option<ModuleDebug>>> = opened.into_iter().map(Mutex::new).collect();
    let slots: Vec<Mutex<Option<Done>>> = jobs.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let work = || loop {
        let j = next.fetch_add(1, Ordering::Relaxed);
        let Some(job) = jobs.get(j) else {
            return;
        };
        let mut warnings = Vec::new();
        let probes: Vec<u64> = job
            .positions
            .iter()
            .map(|&(i, base)| probe_at(base, addrs[i].0))
            .collect();
        // A module opened for other addresses (a partly read debug file) may not name these:
        // its read goes on to their units (or, when it cannot, the module is opened again).
        let debug = lock(&opened[j])
            .take()
            .and_then(|d| {
                if d.covers(&probes) {
                    Some(d)
                } else {
                    d.widen(&probes)
                }
            })
            .unwrap_or_else(|| {
                ModuleDebug::open_warm(&job.module, debug_root, &mut warnings, Some(&probes), parts)
            });
        let resolved = job
            .positions
            .iter()
            .map(|&(i, base)| resolve_based(&debug, &job.module, base, addrs[i].0))
            .collect();
        *lock(&slots[j]) = Some(Done {
            debug,
            warnings,
            resolved,
        });
    };
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(jobs.len());
    if workers <= 1 {
        work();
    } else {
        std::thread::scope(|s| {
            for _ in 1..workers {
                s.spawn(work);
            }
            work();
        });
    }
    slots
        .into_iter()
        .map(|m| {
            m.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .expect("every job ran")
        })
        .collect()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The file address looked up for return address `addr` of `module`: return addresses point
/// after the call, and the call itself is at the previous byte.
fn probe_of(module: &Module, addr: u64) -> u64 {
    probe_at(module.base, addr)
}

/// [`probe_of`] for a module loaded with load bias `base`.
fn probe_at(base: u64, addr: u64) -> u64 {
    addr.wrapping_sub(base).saturating_sub(1)
}

/// Names one address of `module`, whose debug information is `debug`.
pub(super) fn resolve_in(debug: &ModuleDebug, module: &Module, addr: u64) -> Resolved {
    resolve_based(debug, module, module.base, addr)
}

/// [`resolve_in`] for the file of `module` loaded with load bias `base`: a generation of the
/// module map that loaded it elsewhere than `module` says.
fn resolve_based(debug: &ModuleDebug, module: &Module, base: u64, addr: u64) -> Resolved {
    let frames = debug.frames(probe_at(base, addr));
    if frames.is_empty() {
        unnamed(format!(
            "{}+{:#x}",
            basename(&module.path),
            addr.wrapping_sub(base)
        ))
    } else {
        Resolved {
            frames,
            symbolized: true,
        }
    }
}
