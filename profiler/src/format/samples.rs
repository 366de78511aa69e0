//! Timeline samples as differences from the previous one (`SAMPLE_DELTA`, version 3): a
//! sample's sequence number, time and values mostly grow a little from one sample to the next
//! (cumulative counters, RSS, the clock), so the differences are short and repeat where the
//! absolute values do not, and a sample with the previous one's keys does not repeat them (a C
//! churn profile's 31 samples: 1.5 KB as `SAMPLE` records).

use super::varint::{put_ivarint, put_uvarint, Cursor, DecodeError, Sink};
use super::{tag, Record};

/// The previous sample: what the next one is written against. The writer keeps one, and a
/// reader keeps one from the file's start (both start from zeros).
#[derive(Debug, Default, Clone)]
pub struct SampleDeltas {
    seq: u64,
    t_ns: u64,
    /// The latest value of every key seen so far.
    values: Vec<(u64, u64)>,
    /// The keys of the previous sample, in its order.
    keys: Vec<u64>,
}

impl SampleDeltas {
    fn last(&mut self, key: u64) -> &mut u64 {
        let i = match self.values.iter().position(|&(k, _)| k == key) {
            Some(i) => i,
            None => {
                self.values.push((key, 0));
                self.values.len() - 1
            }
        };
        &mut self.values[i].1
    }

    /// Appends a `SAMPLE_DELTA` record for a sample taken before event `seq`, at `t_ns`.
    pub fn put<S: Sink + ?Sized>(&mut self, s: &mut S, seq: u64, t_ns: u64, values: &[(u64, u64)]) {
        s.put_u8(tag::SAMPLE_DELTA);
        put_ivarint(s, seq.wrapping_sub(self.seq) as i64);
        put_ivarint(s, t_ns.wrapping_sub(self.t_ns) as i64);
        (self.seq, self.t_ns) = (seq, t_ns);
        let same_keys = !values.is_empty()
            && values.len() == self.keys.len()
            && values.iter().zip(&self.keys).all(|(&(k, _), &p)| k == p);
        // `2n + 1`: the previous sample's keys, values only; `2n`: `n` keys with their values.
        put_uvarint(s, values.len() as u64 * 2 + u64::from(same_keys));
        if !same_keys {
            self.keys.clear();
            self.keys.extend(values.iter().map(|&(k, _)| k));
        }
        for &(k, v) in values {
            let last = self.last(k);
            if !same_keys {
                put_uvarint(s, k);
            }
            put_ivarint(s, v.wrapping_sub(*last) as i64);
            *last = v;
        }
    }

    /// Decodes the fields of a `SAMPLE_DELTA` record (after its tag).
    pub(crate) fn read(&mut self, c: &mut Cursor<'_>) -> Result<Record, DecodeError> {
        self.seq = self.seq.wrapping_add(c.ivarint()? as u64);
        self.t_ns = self.t_ns.wrapping_add(c.ivarint()? as u64);
        let m = c.uvarint()?;
        if m > 1 << 17 {
            return Err(DecodeError("implausible number of values"));
        }
        let (n, same_keys) = ((m / 2) as usize, m % 2 == 1);
        if same_keys && n != self.keys.len() {
            return Err(DecodeError("a sample repeats the keys of a different sample"));
        }
        if !same_keys {
            self.keys.clear();
        }
        let mut values = Vec::with_capacity(n);
        for i in 0..n {
            let k = if same_keys {
                self.keys[i]
            } else {
                let k = c.uvarint()?;
                self.keys.push(k);
                k
            };
            let d = c.ivarint()? as u64;
            if self.values.len() >= 1 << 10 && !self.values.iter().any(|&(key, _)| key == k) {
                return Err(DecodeError("implausible number of sample keys"));
            }
            let last = self.last(k);
            *last = last.wrapping_add(d);
            values.push((k, *last));
        }
        Ok(Record::Sample {
            seq: self.seq,
            t_ns: self.t_ns,
            values,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_come_back_from_their_differences() {
        let samples: [(u64, u64, Vec<(u64, u64)>); 4] = [
            (0, 1_000_000, vec![(3, 4096), (5, 10), (7, 1 << 30)]),
            (2_000_000, 11_000_000, vec![(3, 9_000_000), (5, 200_000), (7, (1 << 30) - 4096)]),
            // A key appears, one is missing (not measured this time), a value drops to 0.
            (2_000_000, 21_000_000, vec![(3, 9_000_000), (13, 25), (7, 0)]),
            (u64::MAX / 4, 31_000_000, vec![(5, 200_001), (13, 24)]),
        ];
        let samples: Vec<_> = samples
            .into_iter()
            .chain([(u64::MAX / 4 + 9, 41_000_000, vec![(5, 200_002), (13, 20)])])
            .collect();
        let mut w = SampleDeltas::default();
        let mut bytes = Vec::new();
        for (seq, t, v) in &samples {
            w.put(&mut bytes, *seq, *t, v);
        }
        let mut r = SampleDeltas::default();
        let mut c = Cursor::new(&bytes);
        for (seq, t, v) in &samples {
            assert_eq!(c.u8().unwrap(), tag::SAMPLE_DELTA);
            assert_eq!(
                r.read(&mut c).unwrap(),
                Record::Sample {
                    seq: *seq,
                    t_ns: *t,
                    values: v.clone()
                }
            );
        }
        assert!(c.is_empty());
        // The last sample has the keys of the one before: written without them.
        let mut w = SampleDeltas::default();
        let mut tail = Vec::new();
        w.put(&mut tail, samples[3].0, samples[3].1, &samples[3].2);
        let at = tail.len();
        w.put(&mut tail, samples[4].0, samples[4].1, &samples[4].2);
        // seq +9, 10 ms (zigzag: 20,000,000), two values with the same keys, +1, -4.
        assert_eq!(tail[at..], [tag::SAMPLE_DELTA, 18, 0x80, 0xda, 0xc4, 0x09, 5, 2, 7]);
        // The second sample's differences: seq +2,000,000 (4 bytes), 10 ms, +8,995,904...
        // shorter than the absolute values of the same sample would be.
        let mut absolute = Vec::new();
        crate::format::put_sample(&mut absolute, samples[1].0, samples[1].1, &samples[1].2);
        let mut w = SampleDeltas::default();
        let mut first = Vec::new();
        w.put(&mut first, samples[0].0, samples[0].1, &samples[0].2);
        let mut delta = Vec::new();
        w.put(&mut delta, samples[1].0, samples[1].1, &samples[1].2);
        assert!(delta.len() < absolute.len(), "{delta:?} vs {absolute:?}");
    }
}
