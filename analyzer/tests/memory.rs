//! The analyzer's memory follows the live blocks and the unique stacks, not the length of the
//! recording (issue 8: a 60M-event profile must not need more than a 4M-event one).

mod support;

use std::path::Path;
use std::process::{Command, Stdio};

use support::*;

/// Peak resident memory (KiB) of `tidemark summary <profile>`, from the kernel's accounting of
/// that child alone (`wait4`).
// The child is reaped by `wait4`, which `Child::wait` cannot stand in for (it gives no usage).
#[allow(clippy::zombie_processes)]
fn summary_peak_kib(profile: &Path) -> i64 {
    let child = Command::new(tidemark())
        .arg("summary")
        .arg(profile)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start tidemark summary");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 reaps the child spawned above (its `Child` is
    // dropped without a wait of its own).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(reaped, pid, "wait4: {}", std::io::Error::last_os_error());
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "tidemark summary {} failed: status {status:#x}",
        profile.display()
    );
    usage.ru_maxrss
}

/// A loop recorded for 10 times as many pairs (6.6 M events against 660,000: chunks of a million
/// events, mostly copies) is read within 4 MiB of the short one's memory (measured: 1.3 MB
/// more). When a chunk's decoding was held whole until its end, the long one took 21 MB more
/// (36.8 against 15.9 MB).
#[test]
fn a_longer_recording_needs_no_more_memory_to_read() {
    let (short, long) = (Scratch::new("memory-short"), Scratch::new("memory-long"));
    let exe = compile_c("loop", &short, &[]);
    let s = summary_peak_kib(&record(&short, &exe, &["300000"]).profile);
    let l = summary_peak_kib(&record(&long, &exe, &["3000000"]).profile);
    assert!(
        l <= s + 4096,
        "summary of 6.6 M events peaked at {l} KiB, of 660,000 at {s} KiB"
    );
}
