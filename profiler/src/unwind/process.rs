//! The process-wide DWARF unwinder: framehop over the modules' in-memory `.eh_frame`.
//!
//! It is immutable once built and published through an `AtomicPtr`; a rebuild (after dlopen or
//! dlclose) publishes a new one and leaks the old one, because another thread may still be
//! walking with it.

use super::modules::{self, ModuleList};
use framehop::x86_64::UnwinderX86_64;
use framehop::{ExplicitModuleSectionInfo, MustNotAllocateDuringUnwind};
use std::ops::Deref;
use std::sync::atomic::{AtomicPtr, Ordering};

/// A byte range of the process's own memory (an unwind section of a loaded module).
#[derive(Clone, Copy)]
pub struct MappedBytes {
    ptr: *const u8,
    len: usize,
}

// SAFETY: the bytes are read-only sections of loaded modules; sharing the pointer is harmless.
unsafe impl Send for MappedBytes {}
// SAFETY: as above, only shared reads happen.
unsafe impl Sync for MappedBytes {}

impl Default for MappedBytes {
    fn default() -> Self {
        MappedBytes {
            ptr: std::ptr::NonNull::<u8>::dangling().as_ptr(),
            len: 0,
        }
    }
}

impl Deref for MappedBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr..ptr+len` lies inside a mapped, read-only segment of a module that was
        // loaded when the unwinder was built (see `section_bytes`). A module unloaded later is
        // only consulted for addresses inside it, which no live stack holds once it is gone.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// The framehop unwinder type used in-process.
pub type Framehop = UnwinderX86_64<MappedBytes, MustNotAllocateDuringUnwind>;

/// Unwind information for the whole process at one moment.
pub struct ProcessUnwinder {
    /// framehop's unwinder over every module with unwind information.
    pub framehop: Framehop,
    /// Text range of the module holding the recorder itself when that module is a shared
    /// library (the preload library); empty when the recorder is linked into the executable.
    pub own_text: (u64, u64),
    /// Sorted text ranges of all modules, to tell "unknown address" from "no unwind info".
    pub texts: Vec<(u64, u64)>,
    /// Loader counters at build time.
    pub adds: u64,
    /// Loader counters at build time.
    pub subs: u64,
    /// Module generation: 1 for the first unwinder of the process, one more each time a module
    /// was unloaded since the previous one (loads alone keep the generation: every address
    /// valid before still names the same code). Stacks are interned per generation.
    pub generation: u64,
}

impl ProcessUnwinder {
    /// Builds the unwinder from an enumeration.
    pub fn build(list: &ModuleList) -> ProcessUnwinder {
        use framehop::Unwinder;
        let own = own_address();
        let mut framehop = Framehop::new();
        let mut own_text = (0, 0);
        let mut texts = Vec::new();
        for (i, m) in list.modules.iter().enumerate() {
            let (lo, hi) = m.text;
            if lo >= hi {
                continue;
            }
            texts.push((lo, hi));
            // The executable comes first; skipping it would drop the program's own frames.
            if i > 0 && lo <= own && own < hi {
                own_text = (lo, hi);
            }
            let bias = m.module.base;
            let mut info = ExplicitModuleSectionInfo::<MappedBytes> {
                base_svma: 0,
                text_svma: Some(lo.wrapping_sub(bias)..hi.wrapping_sub(bias)),
                ..Default::default()
            };
            if let Some((hdr, hdr_len)) = m.eh_frame_hdr {
                if let Some((eh, eh_len)) = locate_eh_frame(m, hdr, hdr_len) {
                    info.eh_frame_hdr_svma =
                        Some(hdr.wrapping_sub(bias)..(hdr + hdr_len).wrapping_sub(bias));
                    info.eh_frame_hdr = Some(MappedBytes {
                        ptr: hdr as *const u8,
                        len: hdr_len as usize,
                    });
                    info.eh_frame_svma =
                        Some(eh.wrapping_sub(bias)..(eh + eh_len).wrapping_sub(bias));
                    info.eh_frame = Some(MappedBytes {
                        ptr: eh as *const u8,
                        len: eh_len as usize,
                    });
                }
            }
            framehop.add_module(framehop::Module::new(
                m.module.path.clone(),
                lo..hi,
                bias,
                info,
            ));
        }
        texts.sort_unstable();
        ProcessUnwinder {
            framehop,
            own_text,
            texts,
            adds: list.adds,
            subs: list.subs,
            generation: 0,
        }
    }

    /// True when `ip` lies in the text of some known module.
    pub fn knows(&self, ip: u64) -> bool {
        let i = self.texts.partition_point(|&(lo, _)| lo <= ip);
        i > 0 && ip < self.texts[i - 1].1
    }

    /// True when `ip` lies in the recorder's own module.
    #[inline]
    pub fn is_own(&self, ip: u64) -> bool {
        self.own_text.0 <= ip && ip < self.own_text.1
    }
}

/// An address inside the recorder's module.
fn own_address() -> u64 {
    own_address as *const () as usize as u64
}

/// Finds `.eh_frame` from the `eh_frame_ptr` field of `.eh_frame_hdr`. The section's size is
/// not recorded anywhere at run time, so the slice runs to the end of the segment holding it
/// (framehop reaches every entry through the header's table, so trailing bytes are never read
/// as entries). Reads no memory: the header's first bytes were copied during the enumeration
/// (a module dlclosed since is unmapped; building from it must not touch it).
fn locate_eh_frame(m: &modules::LoadedModule, hdr: u64, hdr_len: u64) -> Option<(u64, u64)> {
    let head = &m.eh_frame_hdr_head;
    if hdr_len < 8 || head.len() < 8 {
        return None;
    }
    if head[0] != 1 {
        return None;
    }
    let enc = head[1];
    let field = hdr + 4;
    let raw = match enc & 0x0f {
        0x03 => u64::from(u32::from_ne_bytes(head[4..8].try_into().ok()?)),
        0x0b => i64::from(i32::from_ne_bytes(head[4..8].try_into().ok()?)) as u64,
        0x00 | 0x04 | 0x0c => u64::from_ne_bytes(head.get(4..12)?.try_into().ok()?),
        _ => return None,
    };
    let eh = match enc & 0x70 {
        0x10 => field.wrapping_add(raw), // pcrel
        0x30 => hdr.wrapping_add(raw),   // datarel: relative to the start of .eh_frame_hdr
        0x00 if enc == 0x00 => raw.wrapping_add(m.module.base),
        _ => return None,
    };
    let seg = m.module.segment_at(eh)?;
    Some((eh, seg.start + seg.size - eh))
}

static CURRENT: AtomicPtr<ProcessUnwinder> = AtomicPtr::new(std::ptr::null_mut());
static REBUILD: crate::sys::spin::SpinLock = crate::sys::spin::SpinLock::new();

/// The current unwinder, if one was built.
#[inline]
pub fn current() -> Option<&'static ProcessUnwinder> {
    let p = CURRENT.load(Ordering::Acquire);
    // SAFETY: published unwinders are leaked boxes, never freed.
    unsafe { p.as_ref() }
}

/// Builds and publishes an unwinder for the modules loaded now. Allocates; call it with the
/// thread's recorder guard held.
pub fn rebuild() -> &'static ProcessUnwinder {
    install(&modules::enumerate())
}

/// Builds and publishes an unwinder for an enumeration the caller already made.
pub fn install(list: &ModuleList) -> &'static ProcessUnwinder {
    let _serial = REBUILD.lock();
    publish(ProcessUnwinder::build(list))
}

/// `pthread_atfork` prepare: no rebuild may be half-done when the process forks.
pub fn fork_prepare() {
    REBUILD.raw_lock();
}

/// `pthread_atfork` parent and child: releases [`fork_prepare`]'s lock.
pub fn fork_release() {
    REBUILD.raw_unlock();
}

/// Rebuilds when the loader's counters moved since the current unwinder was built (dlopen,
/// dlclose). Returns the new module list and its generation when it did.
pub fn refresh() -> Option<(ModuleList, u64)> {
    let (adds, subs) = modules::load_counts();
    match current() {
        Some(u) if u.adds == adds && u.subs == subs => None,
        _ => {
            let list = modules::enumerate();
            let u = install(&list);
            Some((list, u.generation))
        }
    }
}

/// Publishes `u`, with the next generation when a module was unloaded since the current one.
/// The caller holds `REBUILD`.
fn publish(mut u: ProcessUnwinder) -> &'static ProcessUnwinder {
    u.generation = match current() {
        Some(c) if c.subs == u.subs => c.generation,
        Some(c) => c.generation + 1,
        None => 1,
    };
    let leaked: &'static mut ProcessUnwinder = Box::leak(Box::new(u));
    CURRENT.store(leaked, Ordering::Release);
    leaked
}
