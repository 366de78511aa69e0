//! What the replay keeps of a live block beyond the 8 bytes of it in the live table, and the variances of
//! sampled estimates.

use super::Born;

/// What a block carries beyond the live table's `Block` in a sampled profile, or when block groups or time
/// buckets are asked for.
#[derive(Debug, Clone, Copy)]
pub(super) struct Extra {
    /// Allocations this block stands for: 1, or its sampling weight in a sampled profile.
    pub count: u64,
    /// Sequence number of the allocation (for the block groups).
    pub seq: u64,
    /// Timeline interval of the allocation (samples replayed before it).
    pub interval: u32,
    /// When it was allocated (kept for the time buckets).
    pub born: Born,
    /// Sampled profiles: the variance this block adds to the estimates of live bytes and blocks
    /// (0 in exact mode).
    pub var: Variance,
}

impl Extra {
    /// A block of a profile of every allocation, with neither groups nor buckets asked for.
    pub const EXACT: Extra = Extra {
        count: 1,
        seq: 0,
        interval: 0,
        born: Born {
            interval: 0,
            t_ns: 0,
        },
        var: Variance {
            bytes: 0.0,
            count: 0.0,
        },
    };
}

impl super::super::live::Slot for Extra {
    /// No allocation takes the largest sequence number.
    const VACANT: Extra = Extra {
        seq: u64::MAX,
        ..Extra::EXACT
    };
    #[inline(always)]
    fn is_vacant(&self) -> bool {
        self.seq == u64::MAX
    }
}

/// Variances of a sampled estimate (bytes, count), Horvitz–Thompson: a block of `s` bytes
/// sampled with probability `p` (weight `w = 1/p`) adds `(1−p)/p² = w² − w` times `s²` and `1`.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Variance {
    pub bytes: f64,
    pub count: f64,
}

impl Variance {
    pub fn add(&mut self, o: Variance) {
        self.bytes += o.bytes;
        self.count += o.count;
    }
    pub fn sub(&mut self, o: Variance) {
        self.bytes = (self.bytes - o.bytes).max(0.0);
        self.count = (self.count - o.count).max(0.0);
    }
}
