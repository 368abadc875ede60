//! `hist()` and `lhist()` buckets as bpftrace 0.23 computes and labels
//! them. The code generator must put a value in the bucket these functions
//! name, or the printed histogram is wrong.

use std::fmt;

/// Bucket slots a `hist(value)` (bits 0) map key can hold: indexes 0..=64.
pub const HIST_SLOTS: usize = 65;

/// The steps of the binary search for the highest set bit, largest first:
/// if the value is at least `threshold`, shift it right by `shift` and add
/// `shift` to the bit position. Six steps cover 64-bit values (bpftrace
/// 0.17 had five and stopped at 2^32).
pub const HIST_SEARCH_STEPS: [(u64, u32); 6] = [
    (1 << 32, 32),
    (1 << 16, 16),
    (1 << 8, 8),
    (1 << 4, 4),
    (1 << 2, 2),
    (1 << 1, 1),
];

/// The largest `bits` argument `hist(value, bits)` takes.
pub const HIST_MAX_BITS: u32 = 5;

/// A `hist(value, bits)`'s constant argument: each power of two is split
/// into `2^bits` buckets. `hist(value)` is bits 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HistParams {
    bits: u32,
}

/// A `hist()` argument bpftrace refuses, in its words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistError {
    #[error("hist: bits {0} must be 0..5")]
    BitsOutOfRange(i64),
}

impl HistParams {
    /// Checks the `bits` literal as bpftrace does.
    pub fn new(bits: i64) -> Result<HistParams, HistError> {
        match u32::try_from(bits) {
            Ok(bits) if bits <= HIST_MAX_BITS => Ok(HistParams { bits }),
            _ => Err(HistError::BitsOutOfRange(bits)),
        }
    }

    pub fn bits(&self) -> u32 {
        self.bits
    }

    /// Bucket slots a key can hold: `bucket()` returns less than this.
    /// 65 for bits 0, `(64 - bits) * 2^bits + 1` in general.
    pub fn slots(&self) -> usize {
        ((64 - self.bits as usize) << self.bits) + 1
    }

    /// The bucket index `hist(value, bits)` counts `value` in, loop-free
    /// as the BPF code must compute it (k is `bits`):
    ///
    /// ```text
    /// if (s64)value < 0      -> 0                  "(..., 0)"
    /// mask = 2^k - 1
    /// if value <= mask       -> value + 1          "[value]"
    /// l = 0; n = value
    /// for (threshold, shift) in HIST_SEARCH_STEPS:    // unrolled, signed >=
    ///     if n >= threshold { n >>= shift; l += shift }
    /// l -= k                                       // l was the top set bit
    /// x = (value >> l) & mask                      // the k bits below it
    /// -> ((l + 1) << k) + x + 1
    /// ```
    ///
    /// For k = 0 that is 1 for 0 and `2 + floor(log2(value))` otherwise.
    /// The value is the argument sign- or zero-extended to 64 bits as its
    /// type says and then compared as signed, so an unsigned value with
    /// bit 63 set counts as negative, as in bpftrace.
    pub fn bucket(&self, value: i64) -> u64 {
        if value < 0 {
            return 0;
        }
        let value = value as u64;
        let k = self.bits;
        let mask = (1u64 << k) - 1;
        if value <= mask {
            return value + 1;
        }
        let mut n = value;
        let mut top_bit = 0;
        for (threshold, shift) in HIST_SEARCH_STEPS {
            if n >= threshold {
                n >>= shift;
                top_bit += shift;
            }
        }
        let l = top_bit - k;
        let x = (value >> l) & mask;
        ((u64::from(l) + 1) << k) + x + 1
    }

    /// The text label of bucket `index`, as bpftrace 0.23 writes it:
    /// `(..., 0)`, `[v]` for the single-value buckets, then
    /// `[low, high)` with binary suffixes chosen by the power of two
    /// (`[1K, 2K)`, and with bits 2, `[1024, 1280)`: 1024 is 256 * 4).
    pub fn label(&self, index: usize) -> String {
        if index == 0 {
            "(..., 0)".to_string()
        } else if index <= 2 << self.bits {
            format!("[{}]", index - 1)
        } else {
            format!(
                "[{}, {})",
                self.bound_label(index - 1),
                self.bound_label(index)
            )
        }
    }

    /// The lowest value of the power-of-two bucket starting at `index`
    /// (>= 2^bits): `2^power * (2^bits + interval)`, as a power of two
    /// and a multiplier.
    fn bound(&self, index: usize) -> (u32, u64) {
        let n = 1usize << self.bits;
        let interval = index & (n - 1);
        let power = ((index >> self.bits) - 1) as u32;
        (power, (n + interval) as u64)
    }

    /// A bucket bound as a label: the power of two's multiple of 1024
    /// picks the suffix, the rest is written out.
    fn bound_label(&self, index: usize) -> String {
        const SUFFIXES: [&str; 7] = ["", "K", "M", "G", "T", "P", "E"];
        let (power, multiplier) = self.bound(index);
        let decade = (power / 10).min(6);
        let rest = power - 10 * decade;
        format!(
            "{}{}",
            (1u64 << rest.min(63)).wrapping_mul(multiplier),
            SUFFIXES[decade as usize]
        )
    }

    /// The inclusive value range of bucket `index` for JSON: `(None,
    /// Some(-1))` for the negative bucket. Computed in 64 bits as bpftrace
    /// does (the bounds of reachable buckets fit).
    pub fn range(&self, index: usize) -> (Option<i128>, Option<i128>) {
        if index == 0 {
            return (None, Some(-1));
        }
        if index <= 2 << self.bits {
            let value = index as i128 - 1;
            return (Some(value), Some(value));
        }
        let value = |index: usize| {
            let (power, multiplier) = self.bound(index);
            1u64.checked_shl(power)
                .unwrap_or(0)
                .wrapping_mul(multiplier)
        };
        let low = value(index - 1) as i64;
        let high = value(index).wrapping_sub(1) as i64;
        (Some(low.into()), Some(high.into()))
    }
}

/// The bucket index `hist(value)` (bits 0) counts `value` in; see
/// [`HistParams::bucket`].
pub fn hist_bucket(value: i64) -> u64 {
    HistParams::default().bucket(value)
}

/// An `lhist(value, min, max, step)`'s constant arguments, checked as
/// bpftrace's checker checks them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LhistParams {
    min: i64,
    max: i64,
    step: i64,
}

/// An `lhist()` argument bpftrace refuses, in its words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LhistError {
    #[error("lhist() step must be >= 1 ({0} provided)")]
    StepTooSmall(i64),
    #[error("lhist() too many buckets, must be <= 1000 (would need {0})")]
    TooManyBuckets(i64),
    #[error("lhist() min must be non-negative (provided min {0})")]
    NegativeMin(i64),
    #[error("lhist() min must be less than max (provided min {min} and max {max})")]
    MinAboveMax { min: i64, max: i64 },
    #[error(
        "lhist() step is too large for the given range (provided step {step} for range {range})"
    )]
    StepTooLarge { step: i64, range: i64 },
}

impl fmt::Display for LhistParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "lhist(min {}, max {}, step {})",
            self.min, self.max, self.step
        )
    }
}

impl LhistParams {
    /// Checks the literals; the first of [`LhistParams::errors`] is the
    /// refusal.
    pub fn new(min: i64, max: i64, step: i64) -> Result<LhistParams, LhistError> {
        match Self::errors(min, max, step).into_iter().next() {
            Some(error) => Err(error),
            None => Ok(LhistParams { min, max, step }),
        }
    }

    /// Every refusal bpftrace reports for these literals, in its order (it
    /// prints them all, one error each).
    pub fn errors(min: i64, max: i64, step: i64) -> Vec<LhistError> {
        let range = max.wrapping_sub(min);
        let mut errors = Vec::new();
        if step <= 0 {
            errors.push(LhistError::StepTooSmall(step));
        } else {
            // bpftrace keeps the bucket count in a 32-bit int.
            let buckets = i64::from((range / step) as i32);
            if buckets > 1000 {
                errors.push(LhistError::TooManyBuckets(buckets));
            }
        }
        if min < 0 {
            errors.push(LhistError::NegativeMin(min));
        }
        if min > max {
            errors.push(LhistError::MinAboveMax { min, max });
        }
        if range < step {
            errors.push(LhistError::StepTooLarge { step, range });
        }
        errors
    }

    pub fn min(&self) -> i64 {
        self.min
    }

    pub fn max(&self) -> i64 {
        self.max
    }

    pub fn step(&self) -> i64 {
        self.step
    }

    /// In-range buckets, without the below-min and at/above-max ones.
    pub fn buckets(&self) -> u64 {
        ((self.max - self.min) / self.step) as u64
    }

    /// Bucket slots a key can hold: `buckets() + 2` (at most 1002).
    pub fn slots(&self) -> usize {
        self.buckets() as usize + 2
    }

    /// The bucket index `lhist(value, min, max, step)` counts `value` in:
    ///
    /// ```text
    /// if (s64)value < min  -> 0
    /// if (s64)value > max  -> 1 + (max - min) / step      (unsigned divide)
    /// else                 -> 1 + (value - min) / step    (unsigned divide)
    /// ```
    ///
    /// `value == max` thus lands in the last bucket, `[max, ...)`, when the
    /// range is a multiple of step. Index 0 prints as `(..., min)` and
    /// `buckets() + 1` as `[max, ...)`.
    pub fn bucket(&self, value: i64) -> u64 {
        if value < self.min {
            return 0;
        }
        let offset = if value > self.max {
            self.max - self.min
        } else {
            value - self.min
        };
        1 + offset as u64 / self.step as u64
    }

    /// The text label of bucket `index`.
    pub fn label(&self, index: usize) -> String {
        let index = index as u64;
        if index == 0 {
            format!("(..., {})", self.bound_label(self.min.into()))
        } else if index == self.buckets() + 1 {
            format!("[{}, ...)", self.bound_label(self.max.into()))
        } else {
            let low = self.low(index);
            format!(
                "[{}, {})",
                self.bound_label(low),
                self.bound_label(low + i128::from(self.step))
            )
        }
    }

    /// A bound as bpftrace 0.23 writes it: when the step is a multiple of
    /// 1K, multiples of 1M as `NM` and of 1K as `NK`; otherwise plain.
    fn bound_label(&self, number: i128) -> String {
        const KILO: i128 = 1024;
        const MEGA: i128 = 1024 * 1024;
        if i128::from(self.step) % KILO != 0 || number == 0 {
            number.to_string()
        } else if number % MEGA == 0 {
            format!("{}M", number / MEGA)
        } else if number % KILO == 0 {
            format!("{}K", number / KILO)
        } else {
            number.to_string()
        }
    }

    /// The inclusive value range of bucket `index` for JSON; the last
    /// bucket has no upper bound.
    pub fn range(&self, index: usize) -> (Option<i128>, Option<i128>) {
        let index = index as u64;
        if index == 0 {
            (None, Some(i128::from(self.min) - 1))
        } else if index == self.buckets() + 1 {
            (Some(i128::from(self.max)), None)
        } else {
            let low = self.low(index);
            (Some(low), Some(low + i128::from(self.step) - 1))
        }
    }

    /// The lowest value of in-range bucket `index` (>= 1).
    fn low(&self, index: u64) -> i128 {
        (i128::from(index) - 1) * i128::from(self.step) + i128::from(self.min)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(bits: i64) -> HistParams {
        HistParams::new(bits).unwrap()
    }

    #[test]
    fn hist_bucket_matches_the_power_of_two_labels() {
        assert_eq!(hist_bucket(-1), 0);
        assert_eq!(hist_bucket(i64::MIN), 0);
        assert_eq!(hist_bucket(0), 1);
        assert_eq!(hist_bucket(1), 2);
        assert_eq!(hist_bucket(2), 3);
        assert_eq!(hist_bucket(3), 3);
        assert_eq!(hist_bucket(4), 4);
        assert_eq!(hist_bucket(1023), 11);
        assert_eq!(hist_bucket(1024), 12);
        assert_eq!(k(0).label(12), "[1K, 2K)");
        assert_eq!(hist_bucket((1 << 32) - 1), 33);
        assert_eq!(k(0).label(33), "[2G, 4G)");
        // Six search steps: 64-bit values get their own buckets.
        assert_eq!(hist_bucket(1 << 32), 34);
        assert_eq!(hist_bucket(1 << 33), 35);
        assert_eq!(k(0).label(35), "[8G, 16G)");
        assert_eq!(hist_bucket(i64::MAX), 64);
        assert_eq!(k(0).label(64), "[4E, 8E)");
        assert_eq!(k(0).slots(), HIST_SLOTS);
    }

    #[test]
    fn hist_bucket_is_the_log2_for_every_power() {
        for power in 0..63 {
            let low = 1i64 << power;
            let high = ((1i128 << (power + 1)) - 1) as i64;
            assert_eq!(hist_bucket(low), power as u64 + 2, "2^{power}");
            assert_eq!(hist_bucket(high), power as u64 + 2, "2^{power}+1 - 1");
        }
    }

    #[test]
    fn hist_bits_split_each_power() {
        // bpftrace's own example: 225 with bits 2 is index 28.
        assert_eq!(k(2).bucket(225), 28);
        assert_eq!(k(2).label(28), "[224, 256)");
        assert_eq!(k(2).bucket(0), 1);
        assert_eq!(k(2).bucket(3), 4);
        assert_eq!(k(2).bucket(7), 8);
        assert_eq!(k(2).label(8), "[7]");
        assert_eq!(k(2).bucket(8), 9);
        assert_eq!(k(2).label(9), "[8, 10)");
        assert_eq!(k(2).label(36), "[896, 1024)");
        assert_eq!(k(3).bucket(1 << 40), 305);
        assert_eq!(k(3).label(305), "[1024G, 1152G)");
        assert_eq!(k(5).bucket(i64::MAX), 1888);
        assert_eq!(k(5).label(1888), "[8064P, 8192P)");
        for bits in 0..=5 {
            let p = k(bits);
            assert_eq!(p.bucket(i64::MAX) as usize, p.slots() - 1, "bits {bits}");
            assert_eq!(p.range(p.slots() - 1).1, Some(i64::MAX.into()));
        }
        assert_eq!(
            HistParams::new(6).unwrap_err().to_string(),
            "hist: bits 6 must be 0..5"
        );
        assert_eq!(
            HistParams::new(-1).unwrap_err().to_string(),
            "hist: bits -1 must be 0..5"
        );
    }

    #[test]
    fn hist_labels_use_binary_suffixes() {
        let p = k(0);
        assert_eq!(p.label(0), "(..., 0)");
        assert_eq!(p.label(1), "[0]");
        assert_eq!(p.label(2), "[1]");
        assert_eq!(p.label(3), "[2, 4)");
        assert_eq!(p.label(11), "[512, 1K)");
        assert_eq!(p.label(22), "[1M, 2M)");
        assert_eq!(p.label(31), "[512M, 1G)");
        assert_eq!(p.label(32), "[1G, 2G)");
        assert_eq!(p.label(42), "[1T, 2T)");
        assert_eq!(p.label(54), "[4P, 8P)");
    }

    #[test]
    fn lhist_bucket_follows_bpftrace() {
        let p = LhistParams::new(0, 100, 10).unwrap();
        assert_eq!(p.buckets(), 10);
        assert_eq!(p.slots(), 12);
        assert_eq!(p.bucket(-1), 0);
        assert_eq!(p.bucket(0), 1);
        assert_eq!(p.bucket(9), 1);
        assert_eq!(p.bucket(10), 2);
        assert_eq!(p.bucket(99), 10);
        assert_eq!(p.bucket(100), 11);
        assert_eq!(p.bucket(1000), 11);
        assert_eq!(p.label(0), "(..., 0)");
        assert_eq!(p.label(1), "[0, 10)");
        assert_eq!(p.label(11), "[100, ...)");
        let p = LhistParams::new(1, 10, 4).unwrap();
        assert_eq!(p.buckets(), 2);
        assert_eq!(p.bucket(0), 0);
        assert_eq!(p.bucket(9), 3);
        assert_eq!(p.label(2), "[5, 9)");
        assert_eq!(p.label(3), "[10, ...)");
    }

    #[test]
    fn lhist_labels_use_k_and_m_only_for_steps_of_whole_kilos() {
        let p = LhistParams::new(0, 4 * 1024 * 1024, 1024 * 1024).unwrap();
        assert_eq!(p.label(1), "[0, 1M)");
        assert_eq!(p.label(5), "[4M, ...)");
        let p = LhistParams::new(0, 10000, 1000).unwrap();
        assert_eq!(p.label(2), "[1000, 2000)");
        let p = LhistParams::new(0, 4096, 1024).unwrap();
        assert_eq!(p.label(2), "[1K, 2K)");
        // 0.17 wrote these as 2K and 3K.
        let p = LhistParams::new(1024, 8192, 512).unwrap();
        assert_eq!(p.label(3), "[2048, 2560)");
        assert_eq!(p.label(0), "(..., 1024)");
    }

    #[test]
    fn lhist_params_refused_in_bpftrace_words() {
        let err = |min, max, step| LhistParams::new(min, max, step).unwrap_err().to_string();
        assert_eq!(err(0, 10, 0), "lhist() step must be >= 1 (0 provided)");
        assert_eq!(
            err(0, 10000, 1),
            "lhist() too many buckets, must be <= 1000 (would need 10000)"
        );
        assert_eq!(
            err(-1, 10, 1),
            "lhist() min must be non-negative (provided min -1)"
        );
        assert_eq!(
            err(10, 5, 1),
            "lhist() min must be less than max (provided min 10 and max 5)"
        );
        assert_eq!(
            err(0, 10, 20),
            "lhist() step is too large for the given range (provided step 20 for range 10)"
        );
        // bpftrace 0.23 prints every refusal, as here for lhist(5, 10, 5, 20)
        // and lhist(5, -1, 10000, 1).
        let all = |min, max, step| -> Vec<String> {
            LhistParams::errors(min, max, step)
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        assert_eq!(
            all(10, 5, 20),
            [
                "lhist() min must be less than max (provided min 10 and max 5)",
                "lhist() step is too large for the given range (provided step 20 for range -5)"
            ]
        );
        assert_eq!(
            all(-1, 10000, 1),
            [
                "lhist() too many buckets, must be <= 1000 (would need 10001)",
                "lhist() min must be non-negative (provided min -1)"
            ]
        );
    }

    #[test]
    fn json_ranges() {
        let p = k(0);
        assert_eq!(p.range(0), (None, Some(-1)));
        assert_eq!(p.range(1), (Some(0), Some(0)));
        assert_eq!(p.range(3), (Some(2), Some(3)));
        assert_eq!(p.range(12), (Some(1024), Some(2047)));
        assert_eq!(p.range(64), (Some(1 << 62), Some(i64::MAX.into())));
        assert_eq!(k(2).range(9), (Some(8), Some(9)));
        assert_eq!(k(2).range(36), (Some(896), Some(1023)));
        let p = LhistParams::new(0, 100, 10).unwrap();
        assert_eq!(p.range(0), (None, Some(-1)));
        assert_eq!(p.range(1), (Some(0), Some(9)));
        assert_eq!(p.range(11), (Some(100), None));
    }
}
