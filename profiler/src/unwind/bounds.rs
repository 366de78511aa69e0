//! Stack bounds of the current thread.

/// The address range of a thread's stack: `[lo, hi)`. `hi` is the top (stacks grow down).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StackBounds {
    /// Lowest address of the stack mapping.
    pub lo: u64,
    /// One past the highest address.
    pub hi: u64,
}

impl StackBounds {
    /// Bounds of the calling thread: the `/proc/self/maps` mapping that holds its stack pointer.
    ///
    /// Never allocates and takes no lock. `pthread_getattr_np` is not usable here: glibc holds
    /// the thread descriptor's lock while it reads `/proc/self/maps` through `fopen` — which
    /// calls malloc — so a malloc hook that called it again would wait on that lock forever
    /// (Rust's runtime does exactly this on the main thread and on every spawned thread).
    ///
    /// The main thread's `[stack]` mapping grows: its `lo` is taken as `hi` minus the stack
    /// rlimit. Readers only ever read between the stack pointer and `hi`. Returns empty bounds
    /// when the mapping cannot be found; stacks captured then stay empty.
    pub fn current() -> StackBounds {
        let marker = 0u8;
        let sp = std::hint::black_box(&marker) as *const u8 as u64;
        let Some((lo, hi, is_main)) = find_mapping(sp) else {
            return StackBounds::default();
        };
        let lo = if is_main {
            let mut rl = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: getrlimit writes into a valid local.
            let ok = unsafe { libc::getrlimit(libc::RLIMIT_STACK, &mut rl) } == 0;
            if ok && rl.rlim_cur != libc::RLIM_INFINITY {
                hi.saturating_sub(rl.rlim_cur).min(lo)
            } else {
                hi.saturating_sub(1 << 30).min(lo)
            }
        } else {
            lo
        };
        StackBounds { lo, hi }
    }

    /// True when the 8 bytes at `addr` lie inside `[lo, hi)`.
    #[inline]
    pub fn contains_word(&self, addr: u64) -> bool {
        addr >= self.lo && addr <= self.hi.wrapping_sub(8) && self.hi >= 8
    }
}

/// Finds the mapping of `/proc/self/maps` that contains `addr`: `(start, end, is [stack])`.
/// Reads with raw `open`/`read` into a stack buffer: no allocation, no stdio lock.
fn find_mapping(addr: u64) -> Option<(u64, u64, bool)> {
    // SAFETY: a NUL-terminated literal path; the descriptor is closed below.
    let fd = unsafe {
        libc::open(
            c"/proc/self/maps".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return None;
    }
    let mut buf = [0u8; 8192];
    let mut len = 0usize;
    let mut found = None;
    loop {
        // SAFETY: reads into the unused tail of `buf`, which is valid for that many bytes.
        let n = unsafe { libc::read(fd, buf[len..].as_mut_ptr().cast(), buf.len() - len) };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            break;
        }
        let eof = n == 0;
        len += n as usize;
        let mut consumed = 0;
        while let Some(nl) = buf[consumed..len].iter().position(|&b| b == b'\n') {
            if let Some(hit) = parse_line(&buf[consumed..consumed + nl], addr) {
                found = Some(hit);
            }
            consumed += nl + 1;
        }
        if found.is_some() {
            break;
        }
        if eof {
            if consumed < len {
                found = parse_line(&buf[consumed..len], addr);
            }
            break;
        }
        if consumed == 0 && len == buf.len() {
            // A line longer than the buffer (a very long path): its address range is at the
            // start, so parse what we have and skip the rest of the line.
            found = parse_line(&buf[..len], addr);
            len = 0;
            if found.is_some() {
                break;
            }
            continue;
        }
        buf.copy_within(consumed..len, 0);
        len -= consumed;
    }
    // SAFETY: `fd` was opened above.
    unsafe { libc::close(fd) };
    found
}

/// Parses `start-end perms …` and returns the range if it contains `addr`.
fn parse_line(line: &[u8], addr: u64) -> Option<(u64, u64, bool)> {
    let dash = line.iter().position(|&b| b == b'-')?;
    let space = line.iter().position(|&b| b == b' ')?;
    let hex = |s: &[u8]| {
        s.iter().try_fold(0u64, |acc, &b| {
            let d = (b as char).to_digit(16)?;
            acc.checked_mul(16)?.checked_add(u64::from(d))
        })
    };
    let start = hex(&line[..dash])?;
    let end = hex(line.get(dash + 1..space)?)?;
    (start <= addr && addr < end).then(|| (start, end, line.ends_with(b"[stack]")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_thread_stack_contains_a_local() {
        let local = 5u64;
        let b = StackBounds::current();
        let a = &local as *const u64 as u64;
        assert!(b.contains_word(a), "{b:x?} does not contain {a:#x}");
        assert!(!b.contains_word(b.hi - 4));
    }

    #[test]
    fn spawned_thread_bounds_and_line_parsing() {
        std::thread::spawn(|| {
            let local = 7u64;
            let b = StackBounds::current();
            assert!(b.contains_word(&local as *const u64 as u64), "{b:x?}");
            assert!(b.hi - b.lo >= 64 * 1024);
        })
        .join()
        .unwrap();
        let l = b"7ffd1000-7ffd3000 rw-p 00000000 00:00 0                          [stack]";
        assert_eq!(
            parse_line(l, 0x7ffd2000),
            Some((0x7ffd1000, 0x7ffd3000, true))
        );
        assert_eq!(parse_line(l, 0x7ffd3000), None);
        assert_eq!(parse_line(b"garbage", 1), None);
    }
}
