//! What the decoding thread hands the applying thread: allocation events as compact operations
//! whose stack is already a dense slot (the index of its aggregates in the replay), everything
//! else as decoded.
//!
//! An event is 40 bytes here against 72 as a [`Record`], and the applying thread looks nothing
//! up by recorded stack id: the decoding thread maps ids to slots (a hash lookup, skipped when an
//! event has the stack of the one before) and announces each new slot with
//! [`Op::NewStack`] before its first use, so both threads number the slots alike, in the order
//! stacks first appear in allocation events.

use rustc_hash::FxHashMap as HashMap;
use tidemark::format::Record;

/// One step of the replay.
#[derive(Debug)]
pub(crate) enum Op {
    /// The next stack slot stands for this recorded stack id.
    NewStack(u64),
    /// An allocation, or a realloc's allocation half (`realloc`).
    Alloc {
        tid: u32,
        /// Stack slot.
        stack: u32,
        seq: u64,
        addr: u64,
        size: u64,
        realloc: bool,
    },
    /// A free, or a realloc's free half (`realloc`; its allocation half follows).
    Free {
        tid: u32,
        seq: u64,
        addr: u64,
        realloc: bool,
    },
    /// Frame addresses of the event before (`--escape` profiles).
    Frames { tid: u32, sp: u64, cfas: Vec<u64> },
    /// Return addresses of the free before (`--escape` profiles).
    Returns(Vec<u64>),
    /// Any other record (definitions, samples, watermarks, messages, …).
    Other(Box<Record>),
}

// Events cross between the threads by the million: keep them small.
const _: () = assert!(std::mem::size_of::<Op>() <= 40);

/// The decoding thread's side: recorded stack id → slot.
#[derive(Debug, Default)]
pub(crate) struct ToOps {
    slots: HashMap<u64, u32>,
    /// The last id looked up and its slot.
    last: Option<(u64, u32)>,
}

impl ToOps {
    fn slot(&mut self, raw: u64, out: &mut Vec<Op>) -> u32 {
        if let Some((r, s)) = self.last {
            if r == raw {
                return s;
            }
        }
        let next = self.slots.len() as u32;
        let s = *self.slots.entry(raw).or_insert_with(|| {
            out.push(Op::NewStack(raw));
            next
        });
        self.last = Some((raw, s));
        s
    }

    /// Appends the operations of `rec` to `out`.
    #[inline]
    pub(crate) fn push(&mut self, rec: Record, out: &mut Vec<Op>) {
        match rec {
            Record::Alloc {
                tid,
                seq,
                addr,
                size,
                stack,
                ..
            } => {
                let stack = self.slot(stack, out);
                out.push(Op::Alloc {
                    tid,
                    stack,
                    seq,
                    addr,
                    size,
                    realloc: false,
                });
            }
            Record::Free { tid, seq, addr } => out.push(Op::Free {
                tid,
                seq,
                addr,
                realloc: false,
            }),
            Record::Realloc {
                tid,
                free_seq,
                seq,
                old_addr,
                new_addr,
                size,
                stack,
                ..
            } => {
                let stack = self.slot(stack, out);
                out.push(Op::Free {
                    tid,
                    seq: free_seq,
                    addr: old_addr,
                    realloc: true,
                });
                out.push(Op::Alloc {
                    tid,
                    stack,
                    seq,
                    addr: new_addr,
                    size,
                    realloc: true,
                });
            }
            Record::EventFrames { tid, sp, cfas } => out.push(Op::Frames { tid, sp, cfas }),
            Record::EventReturns { ips, .. } => out.push(Op::Returns(ips)),
            rec => out.push(Op::Other(Box::new(rec))),
        }
    }
}
