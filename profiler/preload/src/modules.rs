//! `dlclose`: once a module is unloaded, its addresses may be handed to another one, so the
//! recorder starts a new module generation as the call returns (events from then on resolve
//! against the new map). `dlopen` is not interposed: glibc resolves a relative name against the
//! *caller's* RUNPATH and `$ORIGIN`, which a forwarding `dlopen` in this library would change.
//! A stack that runs through a module the recorder does not know yet (a fresh `dlopen`, even
//! inside its constructors) makes the recorder rebuild its map before interning the stack.

use std::ffi::c_void;
use std::sync::atomic::{AtomicUsize, Ordering};
use tidemark::record;

static NEXT_DLCLOSE: AtomicUsize = AtomicUsize::new(0);

type DlcloseFn = unsafe extern "C" fn(*mut c_void) -> i32;

/// `dlclose`.
///
/// # Safety
/// As `dlclose(3)`.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn dlclose(handle: *mut c_void) -> i32 {
    let mut f = NEXT_DLCLOSE.load(Ordering::Acquire);
    if f == 0 {
        // SAFETY: dlsym with a NUL-terminated name.
        f = unsafe { libc::dlsym(libc::RTLD_NEXT, c"dlclose".as_ptr()) } as usize;
        if f == 0 {
            return -1;
        }
        NEXT_DLCLOSE.store(f, Ordering::Release);
    }
    // SAFETY: `f` is the next definition of dlclose, called with the caller's argument.
    let rc = unsafe { std::mem::transmute::<usize, DlcloseFn>(f)(handle) };
    if rc == 0 {
        record::modules_changed();
    }
    rc
}
