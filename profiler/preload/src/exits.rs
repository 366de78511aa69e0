//! Every interposable way out of the process image that skips `atexit`: the `exec` family,
//! `_exit`/`_Exit`, and `syscall(SYS_exit_group | SYS_execve | SYS_execveat, ..)`.
//! `quick_exit` is covered by an `at_quick_exit` handler registered in the constructor.
//!
//! ```text
//!  exec*(..) ─► finish_before_exec (drain, trailer) ─► next exec* ─┬─ success: image replaced
//!                                                                  └─ failure: resume recording
//!                                                                     into the same profile
//!  _exit/_Exit/exit_group ─► finish_before_exit ─► next definition
//! ```
//!
//! glibc's `execl`, `execle` and `execlp` build an argument vector and call its internal
//! `execve`, which no library can interpose; they are C variadic functions, which stable Rust
//! cannot define, so on x86_64 a naked trampoline hands their register and stack arguments to
//! [`execl_impl`], which builds the vector and goes through [`execve`] / [`execvp`].
//!
//! Not interposable, documented as limits: a raw `exit_group` system call instruction (Go
//! programs exit that way) leaves a profile without a trailer, which readers report as
//! truncated; `posix_spawn` and `system` exec in a child that shares nothing to flush.

use crate::backend::set_errno;
use std::ffi::c_char;
use std::sync::atomic::{AtomicUsize, Ordering};
use tidemark::record;

type ExecveFn =
    unsafe extern "C" fn(*const c_char, *const *const c_char, *const *const c_char) -> i32;
type ExecvFn = unsafe extern "C" fn(*const c_char, *const *const c_char) -> i32;
type FexecveFn = unsafe extern "C" fn(i32, *const *const c_char, *const *const c_char) -> i32;
type ExecveatFn = unsafe extern "C" fn(
    i32,
    *const c_char,
    *const *const c_char,
    *const *const c_char,
    i32,
) -> i32;
type ExitFn = unsafe extern "C" fn(i32) -> !;
type SyscallFn = unsafe extern "C" fn(i64, i64, i64, i64, i64, i64, i64) -> i64;

static NEXT_EXECVE: AtomicUsize = AtomicUsize::new(0);
static NEXT_EXECV: AtomicUsize = AtomicUsize::new(0);
static NEXT_EXECVP: AtomicUsize = AtomicUsize::new(0);
static NEXT_EXECVPE: AtomicUsize = AtomicUsize::new(0);
static NEXT_FEXECVE: AtomicUsize = AtomicUsize::new(0);
static NEXT_EXECVEAT: AtomicUsize = AtomicUsize::new(0);
static NEXT_EXIT: AtomicUsize = AtomicUsize::new(0);
static NEXT_EXIT_UPPER: AtomicUsize = AtomicUsize::new(0);
static NEXT_SYSCALL: AtomicUsize = AtomicUsize::new(0);

extern "C" {
    static environ: *const *const c_char;
}

/// Resolves the forwarded functions now, in the constructor (a lookup later may allocate).
pub fn resolve_next() {
    next(&NEXT_EXECVE, c"execve");
    next(&NEXT_EXECV, c"execv");
    next(&NEXT_EXECVP, c"execvp");
    next(&NEXT_EXECVPE, c"execvpe");
    next(&NEXT_FEXECVE, c"fexecve");
    next(&NEXT_EXECVEAT, c"execveat");
    next(&NEXT_EXIT, c"_exit");
    next(&NEXT_EXIT_UPPER, c"_Exit");
    next(&NEXT_SYSCALL, c"syscall");
}

fn next(slot: &AtomicUsize, name: &std::ffi::CStr) -> usize {
    let mut f = slot.load(Ordering::Acquire);
    if f == 0 {
        // SAFETY: dlsym with a NUL-terminated name.
        f = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) } as usize;
        slot.store(f, Ordering::Release);
    }
    f
}

/// Runs the exec call `f` between finishing the profile and, when it returns (it failed),
/// resuming it; `errno` is the call's.
fn around_exec(f: impl FnOnce() -> i32) -> i32 {
    record::finish_before_exec();
    let r = f();
    // SAFETY: __errno_location returns the calling thread's errno slot.
    let e = unsafe { *libc::__errno_location() };
    record::resume_after_failed_exec();
    set_errno(e);
    r
}

macro_rules! resolved {
    ($slot:ident, $name:literal) => {{
        let f = next(&$slot, $name);
        if f == 0 {
            set_errno(libc::ENOSYS);
            return -1;
        }
        f
    }};
}

/// `execve`.
///
/// # Safety
/// C semantics.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn execve(
    path: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> i32 {
    let f = resolved!(NEXT_EXECVE, c"execve");
    // SAFETY: `f` is the next definition of execve.
    around_exec(|| unsafe { std::mem::transmute::<usize, ExecveFn>(f)(path, argv, envp) })
}

/// `execv`.
///
/// # Safety
/// C semantics.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn execv(path: *const c_char, argv: *const *const c_char) -> i32 {
    let f = resolved!(NEXT_EXECV, c"execv");
    // SAFETY: `f` is the next definition of execv.
    around_exec(|| unsafe { std::mem::transmute::<usize, ExecvFn>(f)(path, argv) })
}

/// `execvp` (glibc's path search calls its internal execve, which is not interposable, so
/// the profile is finished here).
///
/// # Safety
/// C semantics.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn execvp(file: *const c_char, argv: *const *const c_char) -> i32 {
    let f = resolved!(NEXT_EXECVP, c"execvp");
    // SAFETY: `f` is the next definition of execvp.
    around_exec(|| unsafe { std::mem::transmute::<usize, ExecvFn>(f)(file, argv) })
}

/// `execvpe`.
///
/// # Safety
/// C semantics.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn execvpe(
    file: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> i32 {
    let f = resolved!(NEXT_EXECVPE, c"execvpe");
    // SAFETY: `f` is the next definition of execvpe.
    around_exec(|| unsafe { std::mem::transmute::<usize, ExecveFn>(f)(file, argv, envp) })
}

/// `fexecve`.
///
/// # Safety
/// C semantics.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn fexecve(
    fd: i32,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> i32 {
    let f = resolved!(NEXT_FEXECVE, c"fexecve");
    // SAFETY: `f` is the next definition of fexecve.
    around_exec(|| unsafe { std::mem::transmute::<usize, FexecveFn>(f)(fd, argv, envp) })
}

/// `execveat`.
///
/// # Safety
/// C semantics.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn execveat(
    dirfd: i32,
    path: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
    flags: i32,
) -> i32 {
    let f = resolved!(NEXT_EXECVEAT, c"execveat");
    // SAFETY: `f` is the next definition of execveat.
    around_exec(|| unsafe {
        std::mem::transmute::<usize, ExecveatFn>(f)(dirfd, path, argv, envp, flags)
    })
}

/// Which list-style exec [`execl_impl`] performs.
const EXECL: u32 = 0;
const EXECLE: u32 = 1;
const EXECLP: u32 = 2;

/// Arguments kept on the stack; longer lists go to the heap (glibc's own allocator, unrecorded).
const STACK_ARGS: usize = 64;

/// The list-style exec calls: `regs` holds the six integer argument registers as the caller
/// left them (rdi: the path, then the first five list items), `stack` the caller's stack
/// arguments (the rest of the list, then, for `execle`, `envp` after the terminating NULL).
///
/// # Safety
/// Called only by the trampolines below with the caller's genuine arguments.
unsafe extern "C" fn execl_impl(regs: *const usize, stack: *const usize, kind: u32) -> i32 {
    // SAFETY: the caller passed a NULL-terminated list, laid out per the x86_64 SysV ABI for
    // variadic calls: registers first, then the stack.
    let arg = |i: usize| unsafe {
        if i < 6 {
            *regs.add(i)
        } else {
            *stack.add(i - 6)
        }
    };
    let path = arg(0) as *const c_char;
    let mut small = [std::ptr::null::<c_char>(); STACK_ARGS];
    let mut big = Vec::new();
    let mut n = 0;
    loop {
        let a = arg(1 + n) as *const c_char;
        if n < STACK_ARGS {
            small[n] = a;
        } else {
            if big.is_empty() {
                big.extend_from_slice(&small);
            }
            big.push(a);
        }
        n += 1;
        if a.is_null() {
            break;
        }
    }
    let argv = if big.is_empty() {
        small.as_ptr()
    } else {
        big.as_ptr()
    };
    // SAFETY: forwarded C semantics; `environ` is the process environment.
    unsafe {
        match kind {
            EXECLE => execve(path, argv, arg(1 + n) as *const *const c_char),
            EXECLP => execvp(path, argv),
            _ => execve(path, argv, environ),
        }
    }
}

/// A trampoline for a variadic exec: saves the argument registers, passes them and the stack
/// arguments to [`execl_impl`], returns its result.
#[cfg(target_arch = "x86_64")]
macro_rules! list_exec {
    ($name:ident, $kind:expr) => {
        /// A list-style exec (see [`execl_impl`]).
        ///
        /// # Safety
        /// C semantics (a variadic C function; the Rust signature is only a symbol).
        #[cfg_attr(not(test), no_mangle)]
        #[unsafe(naked)]
        pub unsafe extern "C" fn $name() {
            // On entry rsp points at the return address and the stack arguments follow it.
            // Six pushes, then 8 bytes of padding, keep the call 16-byte aligned.
            core::arch::naked_asm!(
                "push r9",
                "push r8",
                "push rcx",
                "push rdx",
                "push rsi",
                "push rdi",
                "mov rdi, rsp",
                "lea rsi, [rsp + 56]",
                "mov edx, {kind}",
                "sub rsp, 8",
                "call {imp}",
                "add rsp, 56",
                "ret",
                kind = const $kind,
                imp = sym execl_impl,
            )
        }
    };
}

#[cfg(target_arch = "x86_64")]
list_exec!(execl, EXECL);
#[cfg(target_arch = "x86_64")]
list_exec!(execle, EXECLE);
#[cfg(target_arch = "x86_64")]
list_exec!(execlp, EXECLP);

/// Ends the process through `slot`'s function, or the system call when it is missing.
fn exit_through(slot: &AtomicUsize, name: &std::ffi::CStr, status: i32) -> ! {
    let f = next(slot, name);
    if f != 0 {
        // SAFETY: `f` is the next definition of an exit function.
        unsafe { std::mem::transmute::<usize, ExitFn>(f)(status) }
    }
    // SAFETY: the exit_group system call ends the process.
    unsafe {
        libc::syscall(libc::SYS_exit_group, status);
    }
    loop {
        std::hint::spin_loop();
    }
}

/// `_exit`: finishes the profile (no `atexit` handler runs), then exits.
///
/// # Safety
/// C semantics.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn _exit(status: i32) -> ! {
    record::finish_before_exit();
    exit_through(&NEXT_EXIT, c"_exit", status)
}

/// `_Exit`: as `_exit` (the same function in glibc, but a symbol of its own).
///
/// # Safety
/// C semantics.
#[cfg_attr(not(test), export_name = "_Exit")]
pub unsafe extern "C" fn exit_upper(status: i32) -> ! {
    record::finish_before_exit();
    exit_through(&NEXT_EXIT_UPPER, c"_Exit", status)
}

/// `syscall`: `SYS_exit_group` finishes the profile first, `SYS_execve`/`SYS_execveat` are
/// handled like `execve`; everything else is forwarded untouched. A C variadic function whose
/// arguments are all integer registers plus one stack slot, which this signature reads the same
/// way (a caller passing fewer arguments leaves unused values the kernel ignores).
///
/// # Safety
/// C semantics.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn syscall(n: i64, a: i64, b: i64, c: i64, d: i64, e: i64, f: i64) -> i64 {
    let real = next(&NEXT_SYSCALL, c"syscall");
    if real == 0 {
        set_errno(libc::ENOSYS);
        return -1;
    }
    // SAFETY: `real` is glibc's syscall, which reads its arguments exactly as passed here.
    let call = || unsafe { std::mem::transmute::<usize, SyscallFn>(real)(n, a, b, c, d, e, f) };
    match n {
        libc::SYS_exit_group => {
            record::finish_before_exit();
            call()
        }
        libc::SYS_execve | libc::SYS_execveat => {
            let mut r = 0;
            around_exec(|| {
                r = call();
                0
            });
            r
        }
        _ => call(),
    }
}
