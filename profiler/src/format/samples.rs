//! Timeline samples as differences from the previous one (`SAMPLE_DELTA`, version 3). From one
//! sample to the next the clock and the cumulative counters grow by about as much as they grew
//! the time before, and the other values change a little: the time and the cumulative counters
//! are written as the change of their growth, the others as their change, a sample with the
//! previous one's keys does not repeat them, and its sequence number is not written at all (it
//! is the number of the next event, which readers count). A C churn profile's 40 samples:
//! 2.2 KB as `SAMPLE` records, 1.4 KB as plain differences.

use super::varint::{put_ivarint, put_uvarint, Cursor, DecodeError, Sink};
use super::{sample_key, tag, Record};

/// Keys whose values only grow: written as the change of their growth.
fn cumulative(key: u64) -> bool {
    use sample_key::*;
    matches!(
        key,
        ALLOCATED_BYTES | FREED_BYTES | ALLOC_CALLS | FREE_CALLS | MINOR_FAULTS | MAJOR_FAULTS
    )
}

/// The previous sample: what the next one is written against. The writer keeps one, and a
/// reader keeps one from the file's start (both start from zeros).
#[derive(Debug, Default, Clone)]
pub struct SampleDeltas {
    t_ns: u64,
    /// The time from the sample before to the previous one.
    dt_ns: u64,
    /// Every key seen so far: its latest value, and its latest growth.
    values: Vec<(u64, u64, u64)>,
    /// The keys of the previous sample, in its order.
    keys: Vec<u64>,
}

impl SampleDeltas {
    fn last(&mut self, key: u64) -> &mut (u64, u64, u64) {
        let i = match self.values.iter().position(|&(k, ..)| k == key) {
            Some(i) => i,
            None => {
                self.values.push((key, 0, 0));
                self.values.len() - 1
            }
        };
        &mut self.values[i]
    }

    /// Appends a `SAMPLE_DELTA` record for a sample taken at `t_ns`, standing before the next
    /// event written after it.
    pub fn put<S: Sink + ?Sized>(&mut self, s: &mut S, t_ns: u64, values: &[(u64, u64)]) {
        s.put_u8(tag::SAMPLE_DELTA);
        let dt = t_ns.wrapping_sub(self.t_ns);
        put_ivarint(s, dt.wrapping_sub(self.dt_ns) as i64);
        (self.t_ns, self.dt_ns) = (t_ns, dt);
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
            let (_, last, growth) = self.last(k);
            if !same_keys {
                put_uvarint(s, k);
            }
            let d = v.wrapping_sub(*last);
            let written = if cumulative(k) {
                d.wrapping_sub(*growth)
            } else {
                d
            };
            put_ivarint(s, written as i64);
            (*last, *growth) = (v, d);
        }
    }

    /// Decodes the fields of a `SAMPLE_DELTA` record (after its tag); `seq` is the number of
    /// the next event in the stream.
    pub(crate) fn read(&mut self, c: &mut Cursor<'_>, seq: u64) -> Result<Record, DecodeError> {
        self.dt_ns = self.dt_ns.wrapping_add(c.ivarint()? as u64);
        self.t_ns = self.t_ns.wrapping_add(self.dt_ns);
        let m = c.uvarint()?;
        if m > 1 << 17 {
            return Err(DecodeError("implausible number of values"));
        }
        let (n, same_keys) = ((m / 2) as usize, m % 2 == 1);
        if same_keys && n != self.keys.len() {
            return Err(DecodeError(
                "a sample repeats the keys of a different sample",
            ));
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
            let written = c.ivarint()? as u64;
            if self.values.len() >= 1 << 10 && !self.values.iter().any(|&(key, ..)| key == k) {
                return Err(DecodeError("implausible number of sample keys"));
            }
            let (_, last, growth) = self.last(k);
            let d = if cumulative(k) {
                written.wrapping_add(*growth)
            } else {
                written
            };
            (*last, *growth) = (last.wrapping_add(d), d);
            values.push((k, *last));
        }
        Ok(Record::Sample {
            seq,
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
        // (the next event's number, time, values)
        type Sample = (u64, u64, Vec<(u64, u64)>);
        let samples: [Sample; 4] = [
            (0, 1_000_000, vec![(3, 4096), (5, 10), (7, 1 << 30)]),
            (
                2_000_000,
                11_000_000,
                vec![(3, 9_000_000), (5, 200_000), (7, (1 << 30) - 4096)],
            ),
            // A key appears, one is missing (not measured this time), a value drops to 0.
            (
                2_000_000,
                21_000_000,
                vec![(3, 9_000_000), (13, 25), (7, 0)],
            ),
            (u64::MAX / 4, 31_000_000, vec![(5, 200_001), (13, 24)]),
        ];
        let samples: Vec<_> = samples
            .into_iter()
            .chain([(u64::MAX / 4 + 9, 41_000_000, vec![(5, 200_002), (13, 20)])])
            .collect();
        let mut w = SampleDeltas::default();
        let mut bytes = Vec::new();
        for (_, t, v) in &samples {
            w.put(&mut bytes, *t, v);
        }
        let mut r = SampleDeltas::default();
        let mut c = Cursor::new(&bytes);
        for (seq, t, v) in &samples {
            assert_eq!(c.u8().unwrap(), tag::SAMPLE_DELTA);
            assert_eq!(
                r.read(&mut c, *seq).unwrap(),
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
        w.put(&mut tail, 21_000_000, &samples[2].2);
        w.put(&mut tail, samples[3].1, &samples[3].2);
        let at = tail.len();
        w.put(&mut tail, samples[4].1, &samples[4].2);
        // 10 ms after 10 ms (0), two values with the same keys: ALLOC_CALLS grew by 1 after
        // 200,001 (-200,000, zigzag 399,999), key 13 by -4 (zigzag 7).
        assert_eq!(tail[at..], [tag::SAMPLE_DELTA, 0, 5, 0xff, 0xb4, 0x18, 7]);
        // The second sample's differences: 10 ms, +8,995,904...
        // shorter than the absolute values of the same sample would be.
        let mut absolute = Vec::new();
        crate::format::put_sample(&mut absolute, samples[1].0, samples[1].1, &samples[1].2);
        let mut w = SampleDeltas::default();
        let mut first = Vec::new();
        w.put(&mut first, samples[0].1, &samples[0].2);
        let mut delta = Vec::new();
        w.put(&mut delta, samples[1].1, &samples[1].2);
        assert!(delta.len() < absolute.len(), "{delta:?} vs {absolute:?}");
    }
}
