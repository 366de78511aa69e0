//! The writer thread: timeline samples, module maps, and draining buffers into chunks.
//!
//! Each drain pass: read the sequence counter `W`; swap out every thread's buffer under its
//! lock; take the full-buffer queue; take the stack definitions. Write the definitions chunk
//! first, then every event numbered below `W` and the pass's timeline samples in global order
//! ([`super::order`]) as zstd-compressed event chunks; events numbered `W` or above wait for the
//! next pass (the last pass writes everything).

use super::buffer::Buffer;
use super::encoder::Sink;
use super::latency::{self, Collector, Interval};
use super::order::{Orderer, PendingSample};
use super::outfile::ProfileFile;
use super::sampler::Sources;
use super::seq;
use super::session::{self, Session};
use super::thread::{self, EXITED, REGISTERING};
use super::trace::Trace;
use crate::format::{self, sample_key, trailer_key, ChunkKind, ChunkWriter};
use crate::sys::clock::mono_ns;
use crate::sys::lock;
use crate::sys::owner_lock::OwnerLock;
use std::io;
use std::ptr::NonNull;
use std::sync::atomic::Ordering;

struct Start {
    session: &'static Session,
    file: ProfileFile,
    sources: Sources,
}

/// Spawns the writer with every signal blocked. Returns its `pthread_t`. The profile and the
/// files read at every sample are opened by the caller, before the program goes on: their
/// descriptors move out of its way there, not on the writer's thread while the program runs
/// (a descriptor closed there could be the program's by then).
pub fn spawn(session: &'static Session, file: ProfileFile, sources: Sources) -> io::Result<u64> {
    let arg = Box::into_raw(Box::new(Start {
        session,
        file,
        sources,
    }));
    match super::encoder::spawn_blocked(writer_main, arg.cast()) {
        Ok(t) => Ok(t),
        Err(e) => {
            // SAFETY: the thread was not made, so `arg` is still ours.
            drop(unsafe { Box::from_raw(arg) });
            Err(e)
        }
    }
}

extern "C" fn writer_main(arg: *mut libc::c_void) -> *mut libc::c_void {
    // Become permanently busy before anything here allocates.
    let tid = thread::gettid();
    REGISTERING.insert(tid);
    // SAFETY: `arg` is the `Start` leaked by `spawn`.
    let start = unsafe { Box::from_raw(arg as *mut Start) };
    let s = start.session;
    thread::register(s, tid, true);
    REGISTERING.remove(tid);
    let Start { file, sources, .. } = *start;
    let result = Writer::new(s, file, sources).and_then(|mut w| w.run());
    if let Err(e) = result {
        super::report(&format!(
            "cannot write {}: {}; recording stopped",
            s.path.display(),
            super::describe_io(&e)
        ));
        s.disable();
    }
    session::writer_finished(s);
    std::ptr::null_mut()
}

struct Writer {
    s: &'static Session,
    /// Encodes the chunks and writes them to the profile (see [`super::encoder`]).
    sink: Sink,
    /// Reopenings of the profile already written as a message.
    reopened_noted: u64,
    /// Events and samples in global order.
    orderer: Orderer,
    /// When the next timeline sample is due (CLOCK_MONOTONIC ns).
    next_sample: u64,
    /// When the oldest record in `events` was gathered (CLOCK_MONOTONIC ns).
    events_since: u64,
    bufs: Vec<NonNull<Buffer>>,
    /// Records of the event chunk being assembled from several buffers.
    events: Vec<u8>,
    sources: Sources,
    values: Vec<(u64, u64)>,
    /// Allocator latency collected from the threads, and the last interval's.
    latency: Collector,
    interval: Interval,
    /// TSC ticks per ns (1 where the hooks read CLOCK_MONOTONIC).
    ticks_per_ns: f64,
    /// (ns, ticks) when the writer started; `None` when calls are not timed.
    clock_origin: Option<(u64, u64)>,
    trace: Option<Trace>,
    /// CPU sample records of the pass.
    cpu: Vec<u8>,
    /// `/proc/self/task`, held for the CPU sampler's scans of threads (`--cpu`).
    task_dir: Option<super::outfile::ReadFile>,
    /// The definitions taken last pass (emptied and given back at the next).
    pending: super::stacks::Pending,
    /// Cores the process may run on.
    cores: usize,
    /// When the threads filling buffers are next counted (CLOCK_MONOTONIC ns).
    next_review: u64,
}

/// How often the writer counts the threads filling buffers (the backpressure's crowding).
const REVIEW_NS: u64 = 10_000_000;

/// Cores the calling thread may run on (at least 1).
fn usable_cores() -> usize {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; the call fills it for this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0 {
            return (libc::CPU_COUNT(&set) as usize).max(1);
        }
    }
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The shortest span the TSC is calibrated over against CLOCK_MONOTONIC (see
/// [`Writer::calibrate`]): each end of the span is read within tens of ns (`clock_pair`), so over
/// 50 µs the ratio is off by well under 0.5%, against the 12.5% of the latency buckets.
const CALIBRATION_MIN_NS: u64 = 50_000;
/// Records gathered into one event chunk before it is compressed: large enough for zstd to find
/// the repetition across buffers, small enough to stay in cache.
const EVENT_CHUNK_BYTES: usize = 1 << 20;
/// Thread buffers taken per slice of a pass (1 MiB of 64 KiB buffers): see `Writer::drain`.
const PASS_SLICE_BUFFERS: usize = 16;
/// zstd level of the chunks. Level 1 compresses a typical event stream at several hundred MB/s
/// on one core, far more than the hooks produce, and keeps most of level 3's ratio on it.
const ZSTD_LEVEL: i32 = 1;

impl Writer {
    fn new(s: &'static Session, file: ProfileFile, sources: Sources) -> io::Result<Writer> {
        let cores = usable_cores();
        // The threads filling buffers tell the backpressure they crowd the cores themselves.
        s.full.review_producers(cores);
        let sink = Sink::new(s, ChunkWriter::new(ZSTD_LEVEL)?, file, cores);
        Ok(Writer {
            s,
            sink,
            reopened_noted: 0,
            orderer: lock(&s.orderer).take().unwrap_or_default(),
            next_sample: 0,
            events_since: mono_ns(),
            bufs: Vec::with_capacity(256),
            events: Vec::with_capacity(EVENT_CHUNK_BYTES + super::buffer::BUFFER_BYTES),
            sources,
            values: Vec::with_capacity(32),
            latency: Collector::default(),
            interval: Interval::default(),
            ticks_per_ns: 1.0,
            clock_origin: (s.cfg.latency_every != 0).then(latency::clock_pair),
            trace: s.cfg.trace.then(|| Trace::new(s.cfg.limit_bytes)),
            cpu: Vec::new(),
            task_dir: None,
            pending: super::stacks::Pending::default(),
            cores,
            next_review: 0,
        })
    }

    fn run(&mut self) -> io::Result<()> {
        let flush = self.s.cfg.flush_ms.max(1) * 1_000_000;
        self.next_sample = mono_ns();
        let mut next_flush = self.next_sample + flush;
        loop {
            let stopping = self.s.stop.load(Ordering::Acquire);
            let now = mono_ns();
            if self.sample_if_due(stopping) {
                self.check_modules();
                self.reap();
                super::cpu::check_disposition(self.s);
                super::cpu::scan_threads(self.s, &mut self.task_dir);
                super::cpu::reap(self.s);
            }
            if stopping {
                self.drain(true)?;
                self.trailer()?;
                // A writer started after a failed exec continues this stream.
                *lock(&self.s.orderer) = Some(std::mem::take(&mut self.orderer));
                return Ok(());
            }
            if now >= next_flush {
                self.drain(false)?;
                self.s.pool.prefill(8);
                next_flush = now + flush;
            }
            let until = self.next_sample.min(next_flush).saturating_sub(mono_ns());
            if self.s.wake.wait(until.max(1)) && !self.s.stop.load(Ordering::Acquire) {
                // A buffer filled or a thread exited: write now.
                self.drain(false)?;
                self.s.pool.prefill(8);
                next_flush = mono_ns() + flush;
            }
        }
    }

    /// Takes a timeline sample when one is due (or `now_anyway`). Also called between the
    /// buffers of a long drain, so a busy writer keeps the timeline's pace: a sample taken there
    /// is numbered above the pass's watermark and is written with the next pass.
    fn sample_if_due(&mut self, now_anyway: bool) -> bool {
        let now = mono_ns();
        if now < self.next_sample && !now_anyway {
            return false;
        }
        let interval = self.s.cfg.interval_ms.max(1) * 1_000_000;
        self.sample(now);
        self.next_sample = (self.next_sample + interval).max(now + interval / 2);
        true
    }

    fn totals(&self) -> [u64; 4] {
        let r = &self.s.retired;
        let mut t = [
            r.alloc_calls.load(Ordering::Relaxed),
            r.alloc_bytes.load(Ordering::Relaxed),
            r.free_calls.load(Ordering::Relaxed),
            r.realloc_calls.load(Ordering::Relaxed),
        ];
        for tp in lock(&self.s.registry).iter() {
            let c = &tp.0.counters;
            t[0] += c.alloc_calls.load(Ordering::Relaxed);
            t[1] += c.alloc_bytes.load(Ordering::Relaxed);
            t[2] += c.free_calls.load(Ordering::Relaxed);
            t[3] += c.realloc_calls.load(Ordering::Relaxed);
        }
        t
    }

    fn sample(&mut self, now: u64) {
        // A sample takes a number of its own, as an event does: the frees that read the counter
        // before it (which do not advance it) sort before it, the events after it after it. A
        // sample that only read the counter sorted before every free since the last allocation —
        // a program freeing half its heap, then sleeping, showed the whole heap live all along.
        let seq = seq::next();
        let [allocs, bytes, frees, reallocs] = self.totals();
        self.values.clear();
        self.values.extend_from_slice(&[
            (sample_key::ALLOCATED_BYTES, bytes),
            (sample_key::ALLOC_CALLS, allocs + reallocs),
            (sample_key::FREE_CALLS, frees + reallocs),
        ]);
        self.sources.read(&mut self.values);
        self.collect_latency();
        self.calibrate();
        if let Some([p50, p99, max]) = self.interval.summary_ns(self.ticks_per_ns) {
            self.values.extend_from_slice(&[
                (sample_key::ALLOC_LATENCY_P50_NS, p50),
                (sample_key::ALLOC_LATENCY_P99_NS, p99),
                (sample_key::ALLOC_LATENCY_MAX_NS, max),
            ]);
        }
        if let Some(extra) = self.s.cfg.extra_sampler {
            extra(&mut self.values);
        }
        let t_ns = now.saturating_sub(self.s.start_mono_ns);
        self.orderer.take_sample(PendingSample {
            seq,
            t_ns,
            values: self.values.clone(),
        });
        if let Some(trace) = &mut self.trace {
            trace.on_sample(t_ns, &self.values, &self.interval, self.ticks_per_ns);
        }
    }

    /// Measures the TSC's ticks per ns from the writer's start to now. The writer used to sleep
    /// 5 ms for this before its first sample, and a program that ended sooner waited for it at
    /// exit; then 1 ms, which every process's first sample (taken as the writer starts) slept
    /// for, and a process done sooner (a shell's `/bin/true`, a fork's child before its `exec`)
    /// waited for at exit. Now a sample within [`CALIBRATION_MIN_NS`] of the start waits for the
    /// rest of those 50 µs.
    fn calibrate(&mut self) {
        let Some(origin) = self.clock_origin else {
            return;
        };
        let mut now = latency::clock_pair();
        let elapsed = now.0.saturating_sub(origin.0);
        if elapsed < CALIBRATION_MIN_NS {
            std::thread::sleep(std::time::Duration::from_nanos(
                CALIBRATION_MIN_NS - elapsed,
            ));
            now = latency::clock_pair();
        }
        self.ticks_per_ns = latency::ticks_per_ns(origin, now);
    }

    /// Moves the calls every thread timed since the last sample into `self.interval`.
    fn collect_latency(&mut self) {
        for tp in lock(&self.s.registry).iter() {
            // SAFETY: this is the writer thread.
            unsafe { self.latency.collect(&tp.0.latency) };
        }
        self.latency.take(&mut self.interval);
    }

    fn check_modules(&mut self) {
        super::note_module_change(self.s);
    }

    /// Frees the states of threads that exited and are gone.
    fn reap(&mut self) {
        let mut reg = lock(&self.s.registry);
        let pid = self.s.pid as libc::pid_t;
        let mut i = 0;
        while i < reg.len() {
            let t = reg[i].0;
            // SAFETY: tgkill with signal 0 only checks that the thread exists.
            let gone = t.exiting.load(Ordering::Acquire)
                && unsafe { libc::syscall(libc::SYS_tgkill, pid, t.tid as libc::pid_t, 0) } == -1
                && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
            if !gone {
                i += 1;
                continue;
            }
            reg.swap_remove(i);
            EXITED.remove(t);
            // Its last timed calls count in the next sample.
            // SAFETY: this is the writer thread.
            unsafe { self.latency.collect(&t.latency) };
            if let Some(b) = t.take_buffer(self.s) {
                // SAFETY: the buffer was owned by the state and now by the writer.
                if unsafe { b.as_ref() }.dirty {
                    self.s.full.push(b);
                } else {
                    self.s.pool.give(b);
                }
            }
            let r = &self.s.retired;
            let c = &t.counters;
            r.alloc_calls
                .fetch_add(c.alloc_calls.load(Ordering::Relaxed), Ordering::Relaxed);
            r.alloc_bytes
                .fetch_add(c.alloc_bytes.load(Ordering::Relaxed), Ordering::Relaxed);
            r.free_calls
                .fetch_add(c.free_calls.load(Ordering::Relaxed), Ordering::Relaxed);
            r.realloc_calls
                .fetch_add(c.realloc_calls.load(Ordering::Relaxed), Ordering::Relaxed);
            // SAFETY: the thread is gone, and the state is no longer listed anywhere.
            unsafe { thread::free_state(t) };
        }
    }

    /// The final pass: a `THREAD_EXIT` with the stack peak so far for every thread still
    /// running (the main thread among them), which has written none; a thread that exits later
    /// (the profile resumes after a failed `exec`) writes its own, which replaces it.
    fn note_running_threads(&mut self) {
        let reg = lock(&self.s.registry);
        for tp in reg.iter() {
            let t = tp.0;
            if !t.exiting.load(Ordering::Acquire) {
                format::put_thread_exit(&mut self.events, t.tid, t.stack_peak_bytes());
            }
        }
    }

    /// Writes the events numbered below `w` (in order) into event chunks.
    fn write_ordered(&mut self, w: u64) -> io::Result<()> {
        let Writer {
            orderer,
            events,
            sink,
            ..
        } = self;
        let full = &self.s.full;
        orderer.write_below(w, events, EVENT_CHUNK_BYTES, |ev| {
            // A thread waiting for the writer waits on while it gets on.
            full.note_progress();
            sink.events(ev)
        })
    }

    /// Writes what the threads recorded. `last`: the final pass, which writes every event.
    fn drain(&mut self, last: bool) -> io::Result<()> {
        let now = mono_ns();
        if now >= self.next_review {
            self.s.full.review_producers(self.cores);
            self.next_review = now + REVIEW_NS;
        }
        let w = if last {
            u64::MAX / 2
        } else {
            seq::peek(Ordering::SeqCst)
        };
        {
            let reg = lock(&self.s.registry);
            // Every thread's lock at once: one `membarrier` for the pass (`sys::owner_lock`).
            let locks: Vec<&OwnerLock> = reg.iter().map(|tp| &tp.0.lock).collect();
            let held = OwnerLock::others_all(&locks, self.s.asym);
            for (tp, g) in reg.iter().zip(held) {
                let Some(fresh) = self.s.pool.take() else {
                    break;
                };
                let (old, unused) = tp.0.swap_buffer(&g, fresh);
                drop(g);
                if let Some(b) = old {
                    self.bufs.push(b);
                }
                if let Some(f) = unused {
                    self.s.pool.give(f);
                }
            }
        }
        self.s.full.take_all(&mut self.bufs);
        // CPU samples intern their stacks: before the definitions are taken.
        let mut cpu = std::mem::take(&mut self.cpu);
        super::cpu::drain(self.s, &mut cpu);
        let pending = lock(&self.s.stacks).take_pending(std::mem::take(&mut self.pending));
        let (mut defs, mut truncated) = (Vec::new(), Vec::new());
        lock(&self.s.definitions).encode(&pending, &mut defs, &mut truncated);
        self.pending = pending;
        self.orderer.note_truncated(&truncated);
        for d in &defs {
            self.sink.chunk(ChunkKind::Definitions, d)?;
        }
        if !cpu.is_empty() {
            self.sink.chunk(ChunkKind::Meta, &cpu)?;
            cpu.clear();
        }
        self.cpu = cpu;
        // Buffers in order of their first number, written in groups: after each group, every
        // event numbered below the next buffer's first number (and below `w`) is complete, so a
        // writer that fell behind (many queued buffers) works through its backlog in slices of
        // constant size instead of one pass whose sort and tables grow with the backlog (and
        // cost more per event, so that it never caught up again).
        // SAFETY: swapped-out and queued buffers are owned by the writer.
        self.bufs.sort_by_key(|b| {
            let (tid, first) = super::order::buffer_start(unsafe { b.as_ref() }.bytes());
            (first, tid)
        });
        let mut bufs = std::mem::take(&mut self.bufs);
        let n = bufs.len();
        // SAFETY: as above.
        let starts: Vec<u64> = bufs
            .iter()
            .map(|b| super::order::buffer_start(unsafe { b.as_ref() }.bytes()).1)
            .collect();
        for (i, b) in bufs.drain(..).enumerate() {
            // SAFETY: swapped-out and queued buffers are owned by the writer.
            self.orderer
                .take_buffer(unsafe { b.as_ref() }.bytes(), &mut self.events);
            self.s.full.written(b);
            self.s.pool.give(b);
            if !last {
                self.sample_if_due(false);
            }
            if (i + 1) % PASS_SLICE_BUFFERS == 0 && i + 1 < n {
                // The buffers after this one start at or above their first numbers; events
                // below the smallest of those (and below `w`) have all been taken.
                let next = starts[i + 1];
                self.write_ordered(w.min(next))?;
            }
        }
        self.bufs = bufs;
        if last {
            self.note_running_threads();
        }
        self.write_ordered(w)?;
        self.note_reopened();
        if !self.orderer.messages.is_empty() {
            self.sink.chunk(ChunkKind::Meta, &self.orderer.messages)?;
            self.orderer.messages.clear();
        }
        // Events gather into large chunks (zstd finds far more repetition in 1 MiB than in the
        // few kilobytes a pass woken by one full buffer has), but none waits in memory longer
        // than the flush interval.
        let flush_ns = self.s.cfg.flush_ms.max(1) * 1_000_000;
        let now = mono_ns();
        let due = last || now >= self.events_since + flush_ns;
        if due && !self.events.is_empty() {
            self.sink.events(&mut self.events)?;
            self.orderer.new_chunk();
        }
        if due {
            // The chunk writer gathers several pieces into one chunk: out with them now.
            self.sink.finish_events()?;
        }
        if self.events.is_empty() && !self.sink.events_pending() {
            self.events_since = now;
        }
        self.sink.write()
    }

    /// Says in the profile (once per reopening) that the program closed the profile's
    /// descriptor and the recorder opened the file again ([`ProfileFile`]).
    fn note_reopened(&mut self) {
        let n = self.sink.reopened();
        if n > self.reopened_noted {
            self.reopened_noted = n;
            format::put_message(
                &mut self.orderer.messages,
                0,
                &format!("the program closed the profile's descriptor; reopened ({n}x)"),
            );
        }
    }

    fn trailer(&mut self) -> io::Result<()> {
        let [allocs, bytes, frees, reallocs] = self.totals();
        let mut values = vec![
            (trailer_key::ALLOC_CALLS, allocs),
            (trailer_key::FREE_CALLS, frees),
            (trailer_key::ALLOCATED_BYTES, bytes),
            (trailer_key::REALLOC_CALLS, reallocs),
            (
                trailer_key::END_NS,
                mono_ns().saturating_sub(self.s.start_mono_ns),
            ),
            (trailer_key::END_SEQ, self.orderer.end_seq()),
            (
                trailer_key::DROPPED_EVENTS,
                self.s.dropped.load(Ordering::Relaxed),
            ),
        ];
        if self.s.sampling_rate() == 0 {
            let t = self.orderer.tally();
            values.extend_from_slice(&[
                (trailer_key::ALLOCATIONS, t.allocations),
                (trailer_key::FREES, t.frees),
                (trailer_key::UNMATCHED_FREES, t.unmatched_frees),
                (trailer_key::PEAK_BYTES, t.peak_bytes),
                (trailer_key::PEAK_BLOCKS, t.peak_blocks),
                (trailer_key::LEAKED_BYTES, t.live_bytes),
                (trailer_key::LEAKED_BLOCKS, t.live_blocks),
                (trailer_key::TEMPORARY_ALLOCATIONS, t.temporary),
                (trailer_key::STACKED_ALLOCATIONS, t.stacked_allocations),
                (trailer_key::TRUNCATED_ALLOCATIONS, t.truncated_allocations),
            ]);
        }
        values.extend(super::cpu::trailer_values(self.s));
        let mut t = Vec::new();
        format::put_trailer(&mut t, &values);
        // A reopening during the last pass's writes (all of them done first).
        self.sink.sync()?;
        self.note_reopened();
        if !self.orderer.messages.is_empty() {
            self.sink.chunk(ChunkKind::Meta, &self.orderer.messages)?;
            self.orderer.messages.clear();
        }
        let mut chunk = Vec::new();
        format::put_chunk(&mut chunk, ChunkKind::Trailer, &t);
        self.sink.raw(&chunk)?;
        self.sink.write()?;
        self.sink.close()
    }
}
