//! The writer's output: chunks encoded (event records into streams, then zstd) and written to
//! the profile, in the order the writer hands them over.
//!
//! At first on the writer's own thread. Once the program makes events fast enough to fill an
//! event chunk ([`BUSY_RECORDS`]) while the writer is pressed (the program's threads crowd the
//! cores, or buffers wait) and the process may use more than one core, on a thread of its own,
//! so that encoding a chunk overlaps ordering the next: a writer with
//! hundreds of threads' buffers to merge was the recording's bottleneck, a third of its time in
//! the streams' transform and zstd, while the program's threads, waiting for it, left a core
//! idle. The jobs keep their order and at most [`MAX_QUEUED`] event chunks wait; the first
//! failed write is handed back to the writer at its next call, which stops the recording.

use super::outfile::ProfileFile;
use super::session::Session;
use super::thread::{self, REGISTERING};
use crate::format::{ChunkKind, ChunkWriter};
use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

/// Records handed over at once from which the encoding moves to a thread of its own (when the
/// writer is pressed; a writer that keeps up, one program thread's churn, only paid for the
/// hand-over: 1.02×).
const BUSY_RECORDS: usize = 512 << 10;
/// Event chunks waiting for the encoding thread at most (the writer waits for room).
const MAX_QUEUED: usize = 4;
/// Gathered output written to the file once it holds this many bytes (and at every
/// [`Sink::write`]).
const WRITE_AT: usize = 8 << 20;

/// One piece of work, in the order the writer gave it.
enum Job {
    /// Whole event records ([`ChunkWriter::put_events`]).
    Events(Vec<u8>),
    /// A chunk of other records ([`ChunkWriter::put`]).
    Chunk(ChunkKind, Vec<u8>),
    /// The event records gathered so far, out as a chunk ([`ChunkWriter::finish_events`]).
    FinishEvents,
    /// Bytes already framed as chunks.
    Raw(Vec<u8>),
    /// Everything gathered, out to the file.
    Write,
}

/// The encoding state: chunk writer, profile file, output not yet written.
struct Encoder {
    chunks: ChunkWriter,
    file: ProfileFile,
    out: Vec<u8>,
}

impl Encoder {
    fn events(&mut self, records: &[u8]) -> io::Result<()> {
        self.chunks.put_events(&mut self.out, records)?;
        if self.out.len() > WRITE_AT {
            self.write()?;
        }
        Ok(())
    }

    fn chunk(&mut self, kind: ChunkKind, records: &[u8]) -> io::Result<()> {
        self.chunks.put(&mut self.out, kind, records)
    }

    fn finish_events(&mut self) -> io::Result<()> {
        self.chunks.finish_events(&mut self.out)
    }

    fn raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.extend_from_slice(bytes);
        Ok(())
    }

    fn write(&mut self) -> io::Result<()> {
        let r = self.file.write_all(&self.out);
        self.out.clear();
        r
    }

    fn run(&mut self, job: &Job) -> io::Result<()> {
        match job {
            Job::Events(records) => self.events(records),
            Job::Chunk(kind, records) => self.chunk(*kind, records),
            Job::FinishEvents => self.finish_events(),
            Job::Raw(bytes) => self.raw(bytes),
            Job::Write => self.write(),
        }
    }
}

/// What the writer and the encoding thread share.
struct Shared {
    queue: Mutex<Queue>,
    /// Signalled when a job is queued (or the end asked for).
    work: Condvar,
    /// Signalled when a job is done.
    done: Condvar,
    /// The file's reopenings ([`ProfileFile::reopened`]).
    reopened: AtomicU64,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// Event jobs queued.
    events: usize,
    /// A job is taken and not finished.
    running: bool,
    /// The first failed job's error, for the writer.
    error: Option<io::Error>,
    /// Emptied record vectors, for the writer's next event chunks.
    spare: Vec<Vec<u8>>,
    /// The writer is done: finish the queue and end.
    end: bool,
}

/// Where the encoding runs.
enum Mode {
    /// On the writer's thread.
    Inline(Box<Encoder>),
    /// On a thread of its own, which hands the encoder back when it ends.
    Thread(Arc<Shared>, libc::pthread_t),
}

/// The writer's handle on its output (see the module documentation).
pub struct Sink {
    s: &'static Session,
    cores: usize,
    mode: Mode,
    /// A job failed: every later call says so (the first error itself was returned once).
    failed: bool,
    /// Event records were handed over since the last [`Sink::finish_events`] (what the
    /// encoding thread will hold once it has done its jobs).
    handed: bool,
}

impl Sink {
    pub fn new(s: &'static Session, chunks: ChunkWriter, file: ProfileFile, cores: usize) -> Sink {
        Sink {
            s,
            cores,
            mode: Mode::Inline(Box::new(Encoder {
                chunks,
                file,
                out: Vec::with_capacity(1 << 20),
            })),
            failed: false,
            handed: false,
        }
    }

    /// Hands over whole event records; `records` is left empty (its bytes encoded, or taken
    /// by the encoding thread for a spare vector).
    pub fn events(&mut self, records: &mut Vec<u8>) -> io::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        if matches!(self.mode, Mode::Inline(_))
            && records.len() >= BUSY_RECORDS
            && self.cores > 1
            && self.s.full.writer_pressed()
        {
            self.start_thread();
        }
        self.handed = true;
        let r = self.submit(
            &mut *records,
            |e, records| e.events(records),
            |shared, records| {
                let spare = lock(&shared.queue).spare.pop();
                let spare = spare.unwrap_or_else(|| Vec::with_capacity(records.capacity()));
                Job::Events(std::mem::replace(records, spare))
            },
        );
        records.clear();
        r
    }

    /// Hands over a chunk of other records.
    pub fn chunk(&mut self, kind: ChunkKind, records: &[u8]) -> io::Result<()> {
        self.submit(
            records,
            |e, r| e.chunk(kind, r),
            |_, r| Job::Chunk(kind, r.to_vec()),
        )
    }

    /// The event records handed over so far, out as a chunk.
    pub fn finish_events(&mut self) -> io::Result<()> {
        self.handed = false;
        self.submit((), |e, _| e.finish_events(), |_, _| Job::FinishEvents)
    }

    /// Bytes already framed as chunks (the trailer).
    pub fn raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.submit(bytes, |e, b| e.raw(b), |_, b| Job::Raw(b.to_vec()))
    }

    /// Everything handed over, out to the file.
    pub fn write(&mut self) -> io::Result<()> {
        self.submit((), |e, _| e.write(), |_, _| Job::Write)
    }

    /// True when event records handed over are not out as a chunk yet. With the encoding
    /// thread: records were handed over since the last [`Sink::finish_events`] (a chunk the
    /// chunk writer finished on its own for its size is not seen: the next is finished a flush
    /// interval after the records before it were handed over, not after it started).
    pub fn events_pending(&self) -> bool {
        match &self.mode {
            Mode::Inline(e) => e.chunks.events_pending(),
            Mode::Thread(..) => self.handed,
        }
    }

    /// How many times the profile was opened again (see [`ProfileFile`]).
    pub fn reopened(&self) -> u64 {
        match &self.mode {
            Mode::Inline(e) => e.file.reopened(),
            Mode::Thread(shared, _) => shared.reopened.load(Ordering::Acquire),
        }
    }

    /// Waits until every job handed over is done; the first error of any job, if one failed.
    pub fn sync(&mut self) -> io::Result<()> {
        if let Mode::Thread(shared, _) = &self.mode {
            let mut q = lock(&shared.queue);
            while (!q.jobs.is_empty() || q.running) && q.error.is_none() {
                q = shared.done.wait(q).unwrap_or_else(|e| e.into_inner());
            }
        }
        self.check()
    }

    /// Waits until every job handed over is done (the file written as far as it was asked),
    /// ends the encoding thread and takes its encoder back; the first error of any job, if one
    /// failed.
    pub fn close(&mut self) -> io::Result<()> {
        if let Mode::Thread(shared, t) = &self.mode {
            lock(&shared.queue).end = true;
            shared.work.notify_one();
            let mut enc: *mut libc::c_void = std::ptr::null_mut();
            // SAFETY: `t` is the joinable encoding thread, joined only here (the mode is
            // inline again below).
            unsafe { libc::pthread_join(*t, &mut enc) };
            // SAFETY: the thread returns the encoder it was given, leaked (`encoder_main`).
            let enc = unsafe { Box::from_raw(enc.cast::<Encoder>()) };
            let err = lock(&shared.queue).error.take();
            self.mode = Mode::Inline(enc);
            if let Some(e) = err {
                self.failed = true;
                return Err(e);
            }
        }
        self.check()
    }

    /// The error of a failed job, once; then that one failed.
    fn check(&mut self) -> io::Result<()> {
        if let Mode::Thread(shared, _) = &self.mode {
            if let Some(e) = lock(&shared.queue).error.take() {
                self.failed = true;
                return Err(e);
            }
        }
        if self.failed {
            return Err(io::Error::other("an earlier write failed"));
        }
        Ok(())
    }

    /// Runs a job on the writer's thread (`inline`, on the borrowed `input`), or queues it for
    /// the encoding thread (`queued` makes it of `input`).
    fn submit<I>(
        &mut self,
        input: I,
        inline: impl FnOnce(&mut Encoder, I) -> io::Result<()>,
        queued: impl FnOnce(&Shared, I) -> Job,
    ) -> io::Result<()> {
        self.check()?;
        let shared = match &mut self.mode {
            Mode::Inline(e) => return inline(e, input).inspect_err(|_| self.failed = true),
            Mode::Thread(shared, _) => shared,
        };
        let job = queued(shared, input);
        let mut q = lock(&shared.queue);
        if matches!(job, Job::Events(_)) {
            while q.events >= MAX_QUEUED && q.error.is_none() {
                q = shared.done.wait(q).unwrap_or_else(|e| e.into_inner());
            }
            q.events += 1;
        }
        q.jobs.push_back(job);
        shared.work.notify_one();
        Ok(())
    }

    /// Moves the encoding to a thread of its own; stays inline when none can be started.
    fn start_thread(&mut self) {
        let Mode::Inline(enc) = &self.mode else {
            return;
        };
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            work: Condvar::new(),
            done: Condvar::new(),
            reopened: AtomicU64::new(enc.file.reopened()),
        });
        // The encoder goes with the thread; `mode` names the thread once it runs.
        let Mode::Inline(enc) = std::mem::replace(&mut self.mode, Mode::Thread(shared.clone(), 0))
        else {
            return;
        };
        let start = Box::into_raw(Box::new(Start {
            s: self.s,
            shared: shared.clone(),
            enc,
        }));
        self.mode = match spawn_blocked(encoder_main, start.cast()) {
            Ok(t) => Mode::Thread(shared, t),
            Err(_) => {
                // SAFETY: the thread was not made, so `start` is still ours.
                Mode::Inline(unsafe { Box::from_raw(start) }.enc)
            }
        };
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        // A writer leaving on an error still ends its encoding thread (the file closes with
        // the encoder, as it did with the writer).
        let _ = self.close();
    }
}

struct Start {
    s: &'static Session,
    shared: Arc<Shared>,
    enc: Box<Encoder>,
}

extern "C" fn encoder_main(arg: *mut libc::c_void) -> *mut libc::c_void {
    // Permanently busy (its allocations are the recorder's) before anything here allocates.
    let tid = thread::gettid();
    REGISTERING.insert(tid);
    // SAFETY: `arg` is the `Start` leaked by `Sink::start_thread`.
    let start = unsafe { Box::from_raw(arg as *mut Start) };
    thread::register(start.s, tid, true);
    REGISTERING.remove(tid);
    let Start {
        shared, mut enc, ..
    } = *start;
    let mut q = lock(&shared.queue);
    loop {
        let Some(job) = q.jobs.pop_front() else {
            if q.end {
                break;
            }
            q = shared.work.wait(q).unwrap_or_else(|e| e.into_inner());
            continue;
        };
        q.running = true;
        let failed = q.error.is_some();
        drop(q);
        let r = if failed { Ok(()) } else { enc.run(&job) };
        shared
            .reopened
            .store(enc.file.reopened(), Ordering::Release);
        q = lock(&shared.queue);
        q.running = false;
        if let Err(e) = r {
            q.error.get_or_insert(e);
        }
        if let Job::Events(mut v) = job {
            q.events -= 1;
            v.clear();
            if q.spare.len() < MAX_QUEUED + 1 {
                q.spare.push(v);
            }
        }
        shared.done.notify_all();
    }
    drop(q);
    // Back to the writer ([`Sink::close`]).
    Box::into_raw(enc).cast()
}

/// Starts `f(arg)` on a new thread with every signal blocked (the program's signals are not
/// the recorder's to take); its `pthread_t`.
pub fn spawn_blocked(
    f: extern "C" fn(*mut libc::c_void) -> *mut libc::c_void,
    arg: *mut libc::c_void,
) -> io::Result<libc::pthread_t> {
    // SAFETY: the signal sets are valid locals; the thread function has the required
    // signature; `arg` is the caller's to hand over.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let mut t: libc::pthread_t = 0;
        let rc = libc::pthread_create(&mut t, std::ptr::null(), f, arg);
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        Ok(t)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
