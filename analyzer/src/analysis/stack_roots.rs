//! How the root end of a stack is shown, one rule for every output (folded stacks, flamegraphs,
//! the exports' call trees, the interactive page):
//!
//! - a stack cut at the recorder's frame limit starts with [`TRUNCATED_FRAME`];
//! - a stack whose outermost frame is named but is no thread or process entry (`_start`, libc's
//!   start, `clone`/`clone3`/`start_thread`, the Rust thread start) stopped unwinding early (code
//!   without unwind information, a frame-pointer walk through code without frame pointers): it
//!   starts with [`UNWINDING_STOPPED_FRAME`], so its partial paths gather under one marked root
//!   instead of passing for separate roots. An unnamed outermost frame (`sort+0x6581`, a binary
//!   without symbols) cannot be judged and is left as it is;
//! - unless asked to keep them, the Rust runtime's start-up frames fold into one
//!   [`RUNTIME_FRAME`] ([`runtime_prefix`]).

pub use super::call_paths::runtime_prefix;
pub use super::call_paths::RUNTIME_FRAME;
pub use crate::model::TRUNCATED_FRAME;
use crate::model::{Profile, StackStats};

/// The root frame under which stacks that stopped unwinding before a thread or process entry
/// are shown.
pub const UNWINDING_STOPPED_FRAME: &str = "[unwinding stopped]";

/// True for a function where every complete stack of a thread or process begins.
pub fn is_entry_frame(name: &str) -> bool {
    const EXACT: [&str; 13] = [
        "_start",
        "__libc_start_main",
        "__libc_start_main_impl",
        "__libc_start_call_main",
        "_dl_start",
        "_dl_start_user",
        "clone",
        "clone3",
        "__clone",
        "__clone3",
        "__GI___clone",
        "__GI___clone3",
        "start_thread",
    ];
    EXACT.contains(&name) || name == "thread_start" || name.ends_with("::thread_start")
}

/// True for a name that is a placeholder, not a function: `module+0xoffset`, a bare address
/// (`0x7f…`, in no known module), `[unknown]`.
fn is_unnamed(name: &str) -> bool {
    let hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
    name.starts_with('[')
        || name.strip_prefix("0x").is_some_and(hex)
        || name
            .rsplit_once("+0x")
            .is_some_and(|(module, off)| !module.is_empty() && hex(off))
}

/// The marker frame shown above a stack's outermost frame, if any: [`TRUNCATED_FRAME`] for a
/// stack cut at the frame limit, else [`UNWINDING_STOPPED_FRAME`] when the outermost frame
/// (`root_first[0]`) is named and is no entry ([`is_entry_frame`]).
pub fn root_marker(root_first: &[&str], truncated: bool) -> Option<&'static str> {
    if truncated {
        return Some(TRUNCATED_FRAME);
    }
    let root = root_first.first()?;
    (!is_unnamed(root) && !is_entry_frame(root)).then_some(UNWINDING_STOPPED_FRAME)
}

/// False when no string of `p` names a Rust start-up frame ([`runtime_prefix`] looks for
/// `std::rt::lang_start…` and `…__rust_begin_short_backtrace`): then no stack has frames to fold
/// and [`display_names`] may keep them without looking for them in every name.
pub fn may_have_runtime_frames(p: &Profile) -> bool {
    p.strings.iter().any(|s| {
        s.starts_with("std::rt::lang_start")
            || s.starts_with("__rust_begin_short_backtrace")
            || s.contains("::__rust_begin_short_backtrace")
    })
}

/// The names of a recorded stack as outputs show them, root first: its marker frame
/// ([`root_marker`]), then, unless `keep_runtime_frames`, one [`RUNTIME_FRAME`] for the Rust
/// runtime's start-up frames, then the remaining frames (inlined ones expanded). Empty for an
/// empty or unknown stack.
pub fn display_names<'p>(
    p: &'p Profile,
    s: &StackStats,
    keep_runtime_frames: bool,
) -> Vec<&'p str> {
    let mut names: Vec<&'p str> = p.stack_frames(s.stack).map(|f| p.str(f.function)).collect();
    names.reverse();
    let marker = root_marker(&names, s.truncated);
    let fold = if keep_runtime_frames {
        0
    } else {
        runtime_prefix(&names)
    };
    let mut out: Vec<&'p str> = Vec::with_capacity(names.len() + 2);
    out.extend(marker);
    if fold > 0 {
        out.push(RUNTIME_FRAME);
    }
    out.extend_from_slice(&names[fold..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stacks_that_stop_before_an_entry_get_a_marked_root() {
        let m = |names: &[&str]| root_marker(names, false);
        assert_eq!(m(&["_start", "__libc_start_main_impl", "main", "f"]), None);
        assert_eq!(m(&["clone3", "start_thread", "worker"]), None);
        assert_eq!(
            m(&[
                "std::sys::pal::unix::thread::Thread::new::thread_start",
                "f"
            ]),
            None
        );
        assert_eq!(
            m(&["through_no_cfi", "alloc_block"]),
            Some(UNWINDING_STOPPED_FRAME)
        );
        assert_eq!(
            m(&["sort+0x6581", "main"]),
            None,
            "an unnamed root cannot be judged"
        );
        assert_eq!(m(&["[unknown]"]), None);
        assert_eq!(m(&["0x9999", "libx.so+0x123"]), None);
        assert_eq!(m(&[]), None);
        assert_eq!(root_marker(&["f"], true), Some(TRUNCATED_FRAME));
        assert_eq!(root_marker(&["_start"], true), Some(TRUNCATED_FRAME));
    }
}
