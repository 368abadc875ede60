//! `hist()` and `lhist()` buckets as bpftrace 0.17 computes and labels
//! them. The code generator must put a value in the bucket these functions
//! name, or the printed histogram is wrong.

use std::fmt;

/// Bucket slots a `hist()` map key can hold, as bpftrace sizes its array.
pub const HIST_SLOTS: usize = 65;

/// The steps of [`hist_bucket`]'s binary search, largest first: if the
/// value is at least `threshold`, shift it right by `shift` and add `shift`
/// to the index. Five steps, so values of 2^32 and more all land in the
/// last bucket bpftrace 0.17 can fill, `[2G, 4G)` (index 33); bpftrace 0.20
/// added a sixth step (threshold 2^32, shift 32).
pub const HIST_SEARCH_STEPS: [(u64, u32); 5] = [
    (1 << 16, 16),
    (1 << 8, 8),
    (1 << 4, 4),
    (1 << 2, 2),
    (1 << 1, 1),
];

/// The bucket index `hist(value)` counts `value` in, loop-free as the BPF
/// code must compute it:
///
/// ```text
/// if (s64)value < 0  -> 0          (the "(..., 0)" bucket)
/// if value == 0      -> 1          ("[0]")
/// index = 2; n = value
/// for (threshold, shift) in HIST_SEARCH_STEPS:   // unrolled
///     if n >= threshold { n >>= shift; index += shift }
/// -> index                          (2 is "[1]", i >= 3 is "[2^(i-2), 2^(i-1))")
/// ```
///
/// The value is the argument sign- or zero-extended to 64 bits as its type
/// says and then compared as signed, so an unsigned value with bit 63 set
/// counts as negative, as in bpftrace.
pub fn hist_bucket(value: i64) -> u64 {
    if value < 0 {
        return 0;
    }
    if value == 0 {
        return 1;
    }
    let mut n = value as u64;
    let mut index = 2;
    for (threshold, shift) in HIST_SEARCH_STEPS {
        if n >= threshold {
            n >>= shift;
            index += u64::from(shift);
        }
    }
    index
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
    /// Checks the literals in bpftrace's order and returns the first
    /// refusal.
    pub fn new(min: i64, max: i64, step: i64) -> Result<LhistParams, LhistError> {
        let range = max.saturating_sub(min);
        if step <= 0 {
            return Err(LhistError::StepTooSmall(step));
        }
        if range / step > 1000 {
            return Err(LhistError::TooManyBuckets(range / step));
        }
        if min < 0 {
            return Err(LhistError::NegativeMin(min));
        }
        if min > max {
            return Err(LhistError::MinAboveMax { min, max });
        }
        if range < step {
            return Err(LhistError::StepTooLarge { step, range });
        }
        Ok(LhistParams { min, max, step })
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
}

/// A power of two written as bpftrace's hist labels write it: `1`, `512`,
/// `1K`, `2M`, `4G`, `8T`.
pub(crate) fn power_label(power: u32) -> String {
    let (suffix, rest) = match power {
        40.. => ("T", power - 40),
        30.. => ("G", power - 30),
        20.. => ("M", power - 20),
        10.. => ("K", power - 10),
        _ => ("", power),
    };
    format!("{}{suffix}", 1u64 << rest.min(63))
}

/// An lhist bound as bpftrace 0.17 writes it: multiples of 1M as `NM`, of
/// 1K as `NK`, others plain. (bpftrace 0.21 and later use the suffixes
/// only when the step is a multiple of 1K.)
pub(crate) fn lhist_label(number: i128) -> String {
    const KILO: i128 = 1024;
    const MEGA: i128 = 1024 * 1024;
    if number != 0 && number % MEGA == 0 {
        format!("{}M", number / MEGA)
    } else if number != 0 && number % KILO == 0 {
        format!("{}K", number / KILO)
    } else {
        number.to_string()
    }
}

/// The text label of `hist()` bucket `index`.
pub fn hist_label(index: usize) -> String {
    match index {
        0 => "(..., 0)".to_string(),
        1 => "[0]".to_string(),
        2 => "[1]".to_string(),
        i => {
            let power = (i - 2) as u32;
            format!("[{}, {})", power_label(power), power_label(power + 1))
        }
    }
}

/// The text label of `lhist()` bucket `index`.
pub fn lhist_bucket_label(params: &LhistParams, index: usize) -> String {
    let index = index as u64;
    if index == 0 {
        format!("(..., {})", lhist_label(params.min.into()))
    } else if index == params.buckets() + 1 {
        format!("[{}, ...)", lhist_label(params.max.into()))
    } else {
        let low = lhist_low(params, index);
        format!(
            "[{}, {})",
            lhist_label(low),
            lhist_label(low + i128::from(params.step))
        )
    }
}

/// The inclusive value range of `hist()` bucket `index` for JSON:
/// `(None, Some(-1))` for the negative bucket.
pub fn hist_range(index: usize) -> (Option<i128>, Option<i128>) {
    match index {
        0 => (None, Some(-1)),
        1 => (Some(0), Some(0)),
        2 => (Some(1), Some(1)),
        i => {
            let low = 1i128 << (i - 2).min(64);
            (Some(low), Some(low * 2 - 1))
        }
    }
}

/// The inclusive value range of `lhist()` bucket `index` for JSON; the
/// last bucket has no upper bound.
pub fn lhist_range(params: &LhistParams, index: usize) -> (Option<i128>, Option<i128>) {
    let index = index as u64;
    if index == 0 {
        (None, Some(i128::from(params.min) - 1))
    } else if index == params.buckets() + 1 {
        (Some(i128::from(params.max)), None)
    } else {
        let low = lhist_low(params, index);
        (Some(low), Some(low + i128::from(params.step) - 1))
    }
}

/// The lowest value of in-range lhist bucket `index` (>= 1).
fn lhist_low(params: &LhistParams, index: u64) -> i128 {
    (i128::from(index) - 1) * i128::from(params.step) + i128::from(params.min)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(hist_label(12), "[1K, 2K)");
        assert_eq!(hist_bucket((1 << 32) - 1), 33);
        assert_eq!(hist_label(33), "[2G, 4G)");
        // bpftrace 0.17's five search steps stop at 2^32.
        assert_eq!(hist_bucket(1 << 32), 33);
        assert_eq!(hist_bucket(i64::MAX), 33);
    }

    #[test]
    fn hist_bucket_is_the_log2_for_every_power() {
        for power in 0..32 {
            let low = 1i64 << power;
            assert_eq!(hist_bucket(low), power as u64 + 2, "2^{power}");
            assert_eq!(
                hist_bucket(low * 2 - 1),
                power as u64 + 2,
                "2^{power}+1 - 1"
            );
        }
    }

    #[test]
    fn hist_labels_use_binary_suffixes() {
        assert_eq!(hist_label(0), "(..., 0)");
        assert_eq!(hist_label(1), "[0]");
        assert_eq!(hist_label(2), "[1]");
        assert_eq!(hist_label(3), "[2, 4)");
        assert_eq!(hist_label(11), "[512, 1K)");
        assert_eq!(hist_label(22), "[1M, 2M)");
        assert_eq!(hist_label(31), "[512M, 1G)");
        assert_eq!(hist_label(32), "[1G, 2G)");
        assert_eq!(hist_label(42), "[1T, 2T)");
        assert_eq!(hist_label(54), "[4096T, 8192T)");
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
        assert_eq!(lhist_bucket_label(&p, 0), "(..., 0)");
        assert_eq!(lhist_bucket_label(&p, 1), "[0, 10)");
        assert_eq!(lhist_bucket_label(&p, 11), "[100, ...)");
        let p = LhistParams::new(1, 10, 4).unwrap();
        assert_eq!(p.buckets(), 2);
        assert_eq!(p.bucket(0), 0);
        assert_eq!(p.bucket(9), 3);
        assert_eq!(lhist_bucket_label(&p, 2), "[5, 9)");
        assert_eq!(lhist_bucket_label(&p, 3), "[10, ...)");
    }

    #[test]
    fn lhist_labels_use_k_and_m_for_multiples() {
        let p = LhistParams::new(0, 4 * 1024 * 1024, 1024 * 1024).unwrap();
        assert_eq!(lhist_bucket_label(&p, 1), "[0, 1M)");
        assert_eq!(lhist_bucket_label(&p, 5), "[4M, ...)");
        let p = LhistParams::new(0, 10000, 1000).unwrap();
        assert_eq!(lhist_bucket_label(&p, 2), "[1000, 2000)");
        let p = LhistParams::new(0, 4096, 1024).unwrap();
        assert_eq!(lhist_bucket_label(&p, 2), "[1K, 2K)");
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
    }

    #[test]
    fn json_ranges() {
        assert_eq!(hist_range(0), (None, Some(-1)));
        assert_eq!(hist_range(3), (Some(2), Some(3)));
        assert_eq!(hist_range(12), (Some(1024), Some(2047)));
        let p = LhistParams::new(0, 100, 10).unwrap();
        assert_eq!(lhist_range(&p, 0), (None, Some(-1)));
        assert_eq!(lhist_range(&p, 1), (Some(0), Some(9)));
        assert_eq!(lhist_range(&p, 11), (Some(100), None));
    }
}
