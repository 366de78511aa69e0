//! 128-bit stack hashing, computed from the outermost frame inwards so the hash of a cached
//! outer part of a stack can be reused when only the innermost frames change.

const SEED: (u64, u64) = (0x243f_6a88_85a3_08d3, 0x1319_8a2e_0370_7344);
const K1: u64 = 0x9e37_79b9_7f4a_7c15;
const K2: u64 = 0xc2b2_ae3d_27d4_eb4f;
const K3: u64 = 0x1656_67b1_9e37_79f9;
const K4: u64 = 0xd6e8_feb8_6659_fd93;

/// Running hash state over a suffix of a stack.
pub type HashState = (u64, u64);

/// State for the empty suffix.
pub const EMPTY: HashState = SEED;

#[inline(always)]
fn fold(x: u64, k: u64) -> u64 {
    let m = u128::from(x) * u128::from(k);
    (m as u64) ^ ((m >> 64) as u64)
}

/// Prepends frame `ip` to the suffix hashed in `h`.
#[inline(always)]
pub fn push(h: HashState, ip: u64) -> HashState {
    (fold(h.0 ^ ip, K1), fold(h.1 ^ ip.rotate_left(29) ^ K3, K2))
}

/// Final 128-bit hash of a stack of `len` frames whose state is `h`.
#[inline(always)]
pub fn finish(h: HashState, len: usize) -> u128 {
    let a = fold(h.0 ^ len as u64, K4);
    let b = fold(h.1 ^ a, K1 ^ K2);
    (u128::from(a) << 64) | u128::from(b ^ h.0)
}

/// Hash of a frame list (innermost first).
pub fn hash_frames(frames: &[u64]) -> u128 {
    let h = frames.iter().rev().fold(EMPTY, |h, &f| push(h, f));
    finish(h, frames.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn distinct_stacks_hash_apart() {
        let mut seen = HashSet::new();
        for a in 0..64u64 {
            for b in 0..64u64 {
                assert!(seen.insert(hash_frames(&[0x5555_0000 + a, 0x5555_1000 + b])));
                assert!(seen.insert(hash_frames(&[0x5555_0000 + a, 0x5555_1000 + b, 1])));
            }
        }
        assert!(seen.insert(hash_frames(&[])));
        assert!(seen.insert(hash_frames(&[0])));
        assert!(seen.insert(hash_frames(&[0, 0])));
        assert_ne!(hash_frames(&[1, 2]), hash_frames(&[2, 1]));
    }
}
