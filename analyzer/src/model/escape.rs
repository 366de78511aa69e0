//! Escape data of a profile recorded with `tidemark run --escape`: per recorded stack, how far
//! out of the allocating frames its blocks lived. The loader fills it (`load/escape.rs`,
//! which documents how the frames are paired); the escape analysis
//! ([`crate::analysis::escape`]) classes the blocks once frames are symbolized.

use std::collections::BTreeMap;

/// What became of one recorded stack's blocks, from the frames of the events that ended them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StackEscape {
    /// Blocks freed by their own thread: `(live index, size) → blocks`. The live index is the
    /// innermost frame of the allocation's stack still running at the free (0: the caller of
    /// the allocation function); the number of recorded CFAs when none was.
    pub same_thread: BTreeMap<(u8, u64), u64>,
    /// Blocks and bytes freed by another thread.
    pub other_thread: (u64, u64),
    /// Blocks and bytes live at the end of the profile.
    pub never_freed: (u64, u64),
    /// Blocks and bytes whose allocation or free carried no frame addresses (allocated before
    /// recording started, recorded with `--unwind fp`, a sampled realloc).
    pub unknown: (u64, u64),
}

/// What the loader found in a profile recorded with `--escape`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EscapeData {
    /// Per recorded stack, parallel to `Profile::stack_stats`.
    pub stacks: Vec<StackEscape>,
    /// Per timeline sample, `(t_ns, bytes)`: the deepest stack use of any thread at a recorded
    /// event since the previous sample (its stack top minus the event's stack pointer); 0 when
    /// no event was recorded in between.
    pub stack_depth: Vec<(u64, u64)>,
}
