//! Round-trip times for `send --reply --stats`, in memory that stays flat however many round
//! trips there are: count, min, max, mean and deviation kept exactly (Welford's running
//! mean), and the percentiles read from a log-linear histogram of fixed size.
//!
//! The histogram is HdrHistogram's layout with 2^7 sub-buckets per power of two: values
//! below 128 ns have a bucket each, and each range [2^k, 2^(k+1)) is cut into 128 buckets
//! of equal width, so a bucket is at most 1/128 (0.78 %) of the values in it wide and its
//! midpoint is within 0.4 % of each of them. 7,424 counters cover every `u64` of
//! nanoseconds (58 KiB, allocated with the first round trip).

use std::time::Duration;

/// log2 of the sub-buckets per power of two.
const SUB_BITS: u32 = 7;
const SUB: usize = 1 << SUB_BITS;
/// 128 single-value buckets, then 128 for each power of two from 2^7 to 2^63.
const BUCKETS: usize = SUB + (64 - SUB_BITS as usize) * SUB;

/// Counts of values in log-linear buckets; see the module comment.
#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64]>,
    total: u64,
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Histogram({} values)", self.total)
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            total: 0,
        }
    }
}

/// The bucket of `v`.
fn index(v: u64) -> usize {
    if v < SUB as u64 {
        return v as usize;
    }
    // v is in [2^k, 2^(k+1)) with k >= SUB_BITS; its top SUB_BITS + 1 bits pick the bucket.
    let k = 63 - v.leading_zeros();
    let shift = k - SUB_BITS;
    let sub = (v >> shift) as usize - SUB;
    SUB + shift as usize * SUB + sub
}

/// The smallest value of bucket `i` and the bucket's width.
fn bucket(i: usize) -> (u64, u64) {
    if i < SUB {
        return (i as u64, 1);
    }
    let shift = ((i - SUB) / SUB) as u32;
    let sub = ((i - SUB) % SUB + SUB) as u64;
    (sub << shift, 1 << shift)
}

impl Histogram {
    pub fn record(&mut self, v: u64) {
        self.counts[index(v)] += 1;
        self.total += 1;
    }

    /// How many values were recorded.
    pub fn len(&self) -> u64 {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The value at `permille` / 1000 by nearest rank (the smallest value with at least
    /// that share of all values at or below it), as the midpoint of its bucket. `None`
    /// when nothing was recorded.
    pub fn quantile(&self, permille: u32) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let p = u128::from(permille.min(1000));
        let rank = (u128::from(self.total) * p).div_ceil(1000).max(1);
        let mut seen: u128 = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += u128::from(c);
            if seen >= rank {
                let (low, width) = bucket(i);
                return Some(low.saturating_add(width / 2));
            }
        }
        None
    }
}

/// Round trips measured so far.
#[derive(Debug, Clone, Default)]
pub struct RoundTrips {
    min: u64,
    max: u64,
    /// Running mean and sum of squared differences from it, in nanoseconds (Welford).
    mean: f64,
    m2: f64,
    /// Every round trip (allocated with the first), which also counts them.
    histogram: Option<Histogram>,
}

/// What `--stats` prints of the round trips, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub min: f64,
    pub avg: f64,
    pub max: f64,
    /// Population standard deviation, as ping's `mdev`.
    pub mdev: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
}

impl RoundTrips {
    pub fn record(&mut self, rtt: Duration) {
        let ns = u64::try_from(rtt.as_nanos()).unwrap_or(u64::MAX);
        let h = self.histogram.get_or_insert_with(Histogram::default);
        if h.is_empty() {
            self.min = ns;
            self.max = ns;
        } else {
            self.min = self.min.min(ns);
            self.max = self.max.max(ns);
        }
        h.record(ns);
        let x = ns as f64;
        let delta = x - self.mean;
        self.mean += delta / h.len() as f64;
        self.m2 += delta * (x - self.mean);
    }

    /// How many round trips were measured.
    pub fn count(&self) -> u64 {
        self.histogram.as_ref().map_or(0, Histogram::len)
    }

    /// `None` before the first round trip. Percentiles are kept within [min, max], so a
    /// bucket's midpoint never shows a time outside what was measured.
    pub fn summary(&self) -> Option<Summary> {
        let h = self.histogram.as_ref().filter(|h| !h.is_empty())?;
        let (min, max) = (self.min as f64, self.max as f64);
        let q = |permille| {
            h.quantile(permille)
                .map_or(min, |v| (v as f64).clamp(min, max))
        };
        Some(Summary {
            min,
            avg: self.mean,
            max,
            mdev: (self.m2 / h.len() as f64).max(0.0).sqrt(),
            p50: q(500),
            p90: q(900),
            p99: q(990),
        })
    }
}

/// `lost` of `sent` as a percentage: whole numbers as they are (`50%`), others to two
/// decimals (`33.33%`), and never a figure that hides a loss (`<0.01%`) or a reply
/// (`>99.99%`).
pub fn loss_percent(lost: u64, sent: u64) -> String {
    if sent == 0 || lost == 0 {
        return "0%".into();
    }
    let (lost128, sent128) = (u128::from(lost), u128::from(sent));
    if (lost128 * 100) % sent128 == 0 {
        return format!("{}%", lost128 * 100 / sent128);
    }
    let hundredths = lost128 * 10_000 / sent128;
    match hundredths {
        0 => "<0.01%".into(),
        h if h >= 9_999 && lost < sent => ">99.99%".into(),
        _ => {
            let p = format!("{:.2}", lost as f64 * 100.0 / sent as f64);
            format!("{}%", p.trim_end_matches('0').trim_end_matches('.'))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (SplitMix64), so the tests need no crate.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
    }

    /// The exact nearest-rank quantile of `values`.
    fn exact(sorted: &[u64], permille: u32) -> u64 {
        let n = sorted.len() as u64;
        let rank = (n * u64::from(permille)).div_ceil(1000).max(1);
        sorted[(rank - 1) as usize]
    }

    fn check_accuracy(name: &str, values: &[u64]) {
        let mut h = Histogram::default();
        for &v in values {
            h.record(v);
        }
        let mut sorted = values.to_vec();
        sorted.sort_unstable();
        for permille in [1, 10, 100, 250, 500, 750, 900, 990, 999, 1000] {
            let want = exact(&sorted, permille) as f64;
            let got = h.quantile(permille).unwrap() as f64;
            let error = (got - want).abs() / want.max(1.0);
            // Half a bucket of 1/128 of the value: 0.39 %, plus rounding.
            assert!(
                error <= 0.004,
                "{name}: p{permille}‰ is {got}, exactly {want} ({:.3} % off)",
                error * 100.0
            );
        }
    }

    #[test]
    fn buckets_tile_every_u64() {
        // Each bucket starts where the one before it ended, and index() is its inverse.
        let mut next = 0u64;
        for i in 0..BUCKETS {
            let (low, width) = bucket(i);
            assert_eq!(low, next, "bucket {i}");
            assert_eq!(index(low), i);
            assert_eq!(index(low + (width - 1)), i);
            assert!(width == 1 || width * 128 <= low, "bucket {i} too wide");
            next = low.wrapping_add(width);
        }
        assert_eq!(next, 0, "the last bucket ends at 2^64");
        assert_eq!(index(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn quantiles_are_within_half_a_percent() {
        let mut rng = Rng(1);
        // Uniform between 10 µs and 100 ms.
        let uniform: Vec<u64> = (0..100_000)
            .map(|_| 10_000 + rng.next() % 99_990_000)
            .collect();
        check_accuracy("uniform", &uniform);
        // Spread over ten orders of magnitude: 100 ns to 1000 s, log-uniform.
        let spread: Vec<u64> = (0..100_000)
            .map(|_| {
                let exp = 2 + rng.next() % 10;
                let base = 10u64.pow(exp as u32);
                base + rng.next() % (base * 9)
            })
            .collect();
        check_accuracy("log-uniform", &spread);
        // Mostly fast with a slow tail, as a network is.
        let tail: Vec<u64> = (0..100_000)
            .map(|i| {
                if i % 100 == 0 {
                    200_000_000 + rng.next() % 50_000_000
                } else {
                    40_000 + rng.next() % 2_000
                }
            })
            .collect();
        check_accuracy("tail", &tail);
        // Small values are exact.
        let small: Vec<u64> = (0..1000).map(|_| rng.next() % 128).collect();
        let mut h = Histogram::default();
        small.iter().for_each(|&v| h.record(v));
        let mut sorted = small.clone();
        sorted.sort_unstable();
        assert_eq!(h.quantile(500), Some(exact(&sorted, 500)));
    }

    #[test]
    fn nearest_rank() {
        let mut h = Histogram::default();
        assert_eq!(h.quantile(500), None);
        h.record(10);
        h.record(20);
        assert_eq!(h.quantile(500), Some(10));
        assert_eq!(h.quantile(501), Some(20));
        assert_eq!(h.quantile(1000), Some(20));
        assert_eq!(h.quantile(0), Some(10));
    }

    #[test]
    fn memory_stays_flat() {
        // A million round trips of every size land in the same counters.
        let mut rtt = RoundTrips::default();
        let mut rng = Rng(7);
        rtt.record(Duration::from_micros(50));
        let counters = rtt.histogram.as_ref().unwrap().counts.as_ptr();
        for _ in 0..1_000_000 {
            rtt.record(Duration::from_nanos(rng.next() >> (rng.next() % 64)));
        }
        let h = rtt.histogram.as_ref().unwrap();
        assert_eq!(h.counts.len(), BUCKETS);
        assert_eq!(h.counts.as_ptr(), counters, "the counters were reallocated");
        assert_eq!(h.len(), 1_000_001);
        assert_eq!(rtt.count(), 1_000_001);
    }

    #[test]
    fn summary_min_avg_max_mdev_exact() {
        let mut rtt = RoundTrips::default();
        assert_eq!(rtt.summary(), None);
        for ms in [10, 20, 30, 40] {
            rtt.record(Duration::from_millis(ms));
        }
        let s = rtt.summary().unwrap();
        assert_eq!(s.min, 10e6);
        assert_eq!(s.max, 40e6);
        assert!((s.avg - 25e6).abs() < 1.0, "{s:?}");
        // Population standard deviation of 10, 20, 30, 40: sqrt(125) ms.
        assert!((s.mdev - 125f64.sqrt() * 1e6).abs() < 1.0, "{s:?}");
        // p50 by nearest rank is the second value; p90 and p99 the fourth; each within
        // half a bucket.
        assert!((s.p50 - 20e6).abs() / 20e6 < 0.004, "{s:?}");
        assert!((s.p90 - 40e6).abs() / 40e6 < 0.004, "{s:?}");
        assert!(s.p99 <= s.max, "{s:?}");
        // One value: every figure is that value, mdev 0.
        let mut one = RoundTrips::default();
        one.record(Duration::from_micros(1234));
        let s = one.summary().unwrap();
        assert_eq!(
            (s.min, s.avg, s.max, s.mdev),
            (1_234_000.0, 1_234_000.0, 1_234_000.0, 0.0)
        );
        assert_eq!(
            (s.p50, s.p90, s.p99),
            (1_234_000.0, 1_234_000.0, 1_234_000.0)
        );
    }

    #[test]
    fn loss_percentages() {
        assert_eq!(loss_percent(0, 0), "0%");
        assert_eq!(loss_percent(0, 7), "0%");
        assert_eq!(loss_percent(2, 4), "50%");
        assert_eq!(loss_percent(5, 5), "100%");
        assert_eq!(loss_percent(1, 3), "33.33%");
        assert_eq!(loss_percent(2, 3), "66.67%");
        assert_eq!(loss_percent(1, 8), "12.5%");
        assert_eq!(loss_percent(1, 1_000_000), "<0.01%");
        assert_eq!(loss_percent(999_999, 1_000_000), ">99.99%");
    }
}
