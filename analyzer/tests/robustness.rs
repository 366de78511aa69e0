//! Bad inputs give clear errors, never panics: a run killed with SIGKILL, corrupted, cut and
//! empty profiles, a missing command, a statically linked target.

mod support;

use std::fs;
use std::io::{BufRead, BufReader};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::*;
use tidemark_analyzer::load::{load_path, LoadOptions};
use tidemark_fixtures::prng::SplitMix64;

/// How long the killed run may take to reach the point where the test kills it.
const PROGRESS_TIMEOUT: Duration = Duration::from_secs(30);

#[test]
fn sigkill_mid_run_leaves_a_truncated_profile() {
    let scratch = Scratch::new("sigkill");
    let out = scratch.join("profile.tmk");
    let mut cmd = Command::new(tidemark());
    own_process_group(&mut cmd);
    let mut child = cmd
        .arg("run")
        .arg("-o")
        .arg(&out)
        .arg("--")
        .arg(fixture_bin("tm-alloc-without-free", &scratch))
        .args(["--duration-ms", "10000", "--progress"])
        .current_dir(scratch.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(fs::File::create(scratch.join("run.stderr")).unwrap())
        .spawn()
        .expect("start tidemark run");

    // The fixture prints `pid N`, then `allocations N` every 100 ms; read them on a thread so the
    // wait is bounded.
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + PROGRESS_TIMEOUT;
    let mut pid: Option<i32> = None;
    let mut progress_lines = 0;
    let mut allocations_before_kill = 0u64;
    // Five progress lines: half a second of allocation, several recorder flushes.
    while progress_lines < 5 {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match rx.recv_timeout(left) {
            Ok(line) => line,
            Err(e) => {
                // SAFETY: kill(2) on the process group our unreaped child leads.
                unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
                let _ = child.wait();
                panic!(
                    "no progress from the fixture ({e}); stderr:\n{}",
                    fs::read_to_string(scratch.join("run.stderr")).unwrap_or_default()
                );
            }
        };
        if let Some(p) = line.strip_prefix("pid ") {
            pid = Some(p.trim().parse().expect("pid line"));
        } else if let Some(n) = line.strip_prefix("allocations ") {
            allocations_before_kill = n.trim().parse().expect("progress line");
            progress_lines += 1;
        }
    }
    let pid = pid.expect("the fixture prints its pid first");
    // SAFETY: kill(2) with a pid the fixture reported for itself; it is still running (it
    // allocates for 10 s) and is our grandchild, so the pid cannot have been reused.
    let rc = unsafe { libc::kill(pid, libc::SIGKILL) };
    assert_eq!(rc, 0, "kill({pid}, SIGKILL) failed");
    let status = wait_bounded(
        &mut child,
        Duration::from_secs(60),
        "tidemark run (killed target)",
    );
    // The shell's convention, as docs/usage.md documents: 128 + the signal.
    assert_eq!(
        status.code(),
        Some(128 + libc::SIGKILL),
        "tidemark run should exit with the killed command's status, got {status}"
    );
    assert!(allocations_before_kill > 0);

    let profile_path = find_profile(scratch.path(), "profile");
    let profile = load(&profile_path);
    assert!(
        profile.truncated.is_some(),
        "a profile whose process was killed must load as truncated"
    );
    let totals = function_totals(&profile);
    let site_allocations: u64 = totals
        .iter()
        .filter(|(f, _)| f.contains("site_"))
        .map(|(_, t)| t.allocations)
        .sum();
    assert!(
        site_allocations > 0,
        "the truncated profile should keep the flushed events; functions: {:?}",
        totals.keys().collect::<Vec<_>>()
    );

    let summary = tidemark_cli(["summary", "--json", path_str(&profile_path)], &scratch);
    summary.assert_success("tidemark summary --json on a truncated profile");
    let json: serde_json::Value = serde_json::from_str(&summary.stdout)
        .unwrap_or_else(|e| panic!("summary --json is not JSON ({e}): {}", summary.describe()));
    assert_eq!(
        json.get("truncated"),
        Some(&serde_json::Value::Bool(true)),
        "summary --json must say \"truncated\": true: {json:#}"
    );
}

/// Loads `path` through the library and the CLI; returns the library's verdict. Fails the test
/// on a panic in either.
fn load_both_ways(path: &Path, scratch: &Scratch) -> Result<bool, String> {
    let lib = catch_unwind(AssertUnwindSafe(|| {
        load_path(path, &LoadOptions::default()).map(|p| p.truncated.is_some())
    }))
    .unwrap_or_else(|_| panic!("the library panicked loading {}", path.display()));
    let cli = tidemark_cli(["summary", path_str(path)], scratch);
    assert!(
        !cli.stderr.contains("panicked"),
        "tidemark summary panicked on {}: {}",
        path.display(),
        cli.describe()
    );
    match &lib {
        Ok(_) => assert!(
            cli.status.success(),
            "library loaded {} but the CLI failed: {}",
            path.display(),
            cli.describe()
        ),
        Err(e) => {
            assert_eq!(
                cli.status.code(),
                Some(2),
                "an unreadable profile is an error (exit 2): {}",
                cli.describe()
            );
            let name = path.file_name().unwrap().to_str().unwrap();
            assert!(
                cli.stderr.contains(name),
                "the CLI error should name the file {name}: {}",
                cli.describe()
            );
            assert!(!e.to_string().is_empty());
        }
    }
    lib.map_err(|e| format!("{e:#}"))
}

#[test]
fn empty_and_garbage_files_are_clear_errors() {
    let scratch = Scratch::new("bad-files");
    let empty = scratch.join("empty.tmk");
    fs::write(&empty, b"").unwrap();
    let err = load_both_ways(&empty, &scratch).expect_err("an empty file must not load");
    assert!(
        err.contains("empty"),
        "the error should say the file is empty: {err}"
    );

    let garbage = scratch.join("garbage.tmk");
    let mut rng = SplitMix64::new(42);
    let noise: Vec<u8> = (0..4096).map(|_| rng.next_u64() as u8).collect();
    fs::write(&garbage, noise).unwrap();
    load_both_ways(&garbage, &scratch).expect_err("random bytes must not load");

    let text = scratch.join("notes.tmk");
    fs::write(&text, "this is not a profile\n").unwrap();
    load_both_ways(&text, &scratch).expect_err("a text file must not load");
}

#[test]
fn damaged_and_cut_profiles_never_panic_and_say_so() {
    let scratch = Scratch::new("damaged");
    let rec = record(
        &scratch,
        &fixture_bin("tm-churn", &scratch),
        &["--threads", "2", "--iterations", "3000"],
    );
    let good = fs::read(&rec.profile).unwrap();
    let layout = chunk_layout(&good);
    let intact = summary_json(&load(&rec.profile), 10);

    // The header body starts after magic, version, reserved and length (16 bytes): a flipped
    // byte there fails the header checksum.
    let mut bad_header = good.clone();
    bad_header[18] ^= 0x5a;
    let p = scratch.join("bad-header.tmk");
    fs::write(&p, &bad_header).unwrap();
    load_both_ways(&p, &scratch).expect_err("a damaged header must not load");

    // Damage or a cut anywhere up to the trailer loses events: either an error or a profile
    // flagged as truncated, never a silent success.
    let events_end = layout.trailer_end;
    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    for frac in [0.1, 0.5, 0.9, 0.999] {
        let at = layout.header_len + ((events_end - layout.header_len) as f64 * frac) as usize;
        let mut flipped = good.clone();
        flipped[at] ^= 0xff;
        cases.push((format!("flip-{frac}"), flipped));
        cases.push((format!("cut-{frac}"), good[..at].to_vec()));
    }
    cases.push(("header-only".into(), good[..layout.header_len].to_vec()));
    cases.push(("header-cut".into(), good[..layout.header_len / 2].to_vec()));
    for (name, bytes) in cases {
        let p = scratch.join(&format!("{name}.tmk"));
        fs::write(&p, &bytes).unwrap();
        match load_both_ways(&p, &scratch) {
            Ok(truncated) => assert!(
                truncated,
                "{name}: a damaged profile loaded without the truncated flag"
            ),
            Err(e) if name.starts_with("cut-") => {
                panic!("{name}: a profile cut after its header must load as truncated, got: {e}")
            }
            Err(_) => {}
        }
    }

    // Chunks after the trailer (symbols embedded by `tidemark run`) carry no events: damaging
    // them must not change any number.
    if good.len() > events_end {
        let mut flipped = good.clone();
        flipped[events_end + (good.len() - events_end) / 2] ^= 0xff;
        let p = scratch.join("flip-after-trailer.tmk");
        fs::write(&p, &flipped).unwrap();
        load_both_ways(&p, &scratch).expect("damage after the trailer keeps the events");
        let s = summary_json(&load(&p), 10);
        for field in [
            "allocations",
            "frees",
            "allocated_bytes",
            "leaked_bytes",
            "peak_bytes",
        ] {
            assert_eq!(field_u64(&s, field), field_u64(&intact, field), "{field}");
        }
    }
}

/// Where the parts of a profile are: the header, and the end of the chunk holding the trailer.
struct Layout {
    header_len: usize,
    trailer_end: usize,
}

/// Walks the chunk framing (header, then `"TMCK" len:u32le crc:u32le payload` chunks).
fn chunk_layout(profile: &[u8]) -> Layout {
    use tidemark::format::{tag, ChunkKind, CHUNK_HEADER_LEN, CHUNK_MAGIC, MAGIC};
    assert_eq!(profile[..8], MAGIC, "not a profile");
    let version = u16::from_le_bytes([profile[8], profile[9]]);
    let body_len = u32::from_le_bytes(profile[12..16].try_into().unwrap()) as usize;
    let header_len = 16 + body_len + 4;
    let mut offset = header_len;
    let mut trailer_end = None;
    while offset + CHUNK_HEADER_LEN <= profile.len() {
        assert_eq!(
            profile[offset..offset + 4],
            CHUNK_MAGIC,
            "chunk at {offset}"
        );
        let len = u32::from_le_bytes(profile[offset + 4..offset + 8].try_into().unwrap()) as usize;
        let payload = &profile[offset + CHUNK_HEADER_LEN..offset + CHUNK_HEADER_LEN + len];
        offset += CHUNK_HEADER_LEN + len;
        // The trailer is the last record of its chunk, which the recorder writes on its own
        // (a chunk of kind Trailer from version 2 on).
        let first = if version >= 2 {
            ChunkKind::Trailer as u8
        } else {
            tag::TRAILER
        };
        if payload.first() == Some(&first) && trailer_end.is_none() {
            trailer_end = Some(offset);
        }
    }
    assert_eq!(offset, profile.len(), "the profile ends inside a chunk");
    Layout {
        header_len,
        trailer_end: trailer_end.expect("a clean run ends with a trailer chunk"),
    }
}

#[test]
fn run_with_a_missing_command_is_a_clear_error() {
    let scratch = Scratch::new("missing-cmd");
    for cmd in ["tm-no-such-program-here", "./tm-no-such-program-here"] {
        let out = scratch.join("profile.tmk");
        let r = tidemark_cli(["run", "-o", path_str(&out), "--", cmd], &scratch);
        assert_eq!(r.status.code(), Some(2), "{cmd}: {}", r.describe());
        assert!(
            r.stderr.contains("tm-no-such-program-here"),
            "the error should name the command: {}",
            r.describe()
        );
        assert!(!r.stderr.contains("panicked"), "{}", r.describe());
    }
}

#[test]
fn run_on_a_static_binary_is_a_clear_error() {
    let scratch = Scratch::new("static");
    let src = scratch.join("hello.c");
    fs::write(
        &src,
        "#include <stdlib.h>\nint main(void) { free(malloc(10)); return 0; }\n",
    )
    .unwrap();
    let exe = scratch.join("hello-static");
    let built = Command::new("gcc")
        .args(["-O2", "-static", "-o"])
        .arg(&exe)
        .arg(&src)
        .output();
    match built {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            eprintln!(
                "skipping: gcc -static failed (static libc from libc6-dev missing?): {}",
                String::from_utf8_lossy(&o.stderr)
            );
            return;
        }
        Err(e) => {
            eprintln!("skipping: cannot run gcc: {e}");
            return;
        }
    }
    let out = scratch.join("profile.tmk");
    let r = tidemark_cli(
        ["run", "-o", path_str(&out), "--", path_str(&exe)],
        &scratch,
    );
    assert_eq!(r.status.code(), Some(2), "{}", r.describe());
    assert!(
        r.stderr.to_lowercase().contains("static"),
        "the error should say the binary is statically linked: {}",
        r.describe()
    );
    assert!(!r.stderr.contains("panicked"), "{}", r.describe());
}
