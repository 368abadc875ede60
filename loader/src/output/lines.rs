//! The buffer lines are gathered in, written in place. A line is a dozen
//! small pieces; through `Vec::extend_from_slice` (not inlined at
//! opt-level "z") each piece was a call to the C library's `memcpy`, and
//! musl's starts and ends byte by byte with microcoded string moves: 11%
//! of the reader's instructions, and the JSON lines took four times
//! glibc's time. Here pieces of a known size are copied as such (a few
//! moves), longer ones sixteen bytes at a time, into bytes already there.

/// Lines waiting to be written: `as_bytes` of them.
#[derive(Debug, Clone, Default)]
pub struct Lines {
    /// Kept at its full length (zeroed as it grows), so a piece is copied
    /// into place with no capacity check per byte; `len` bytes are lines.
    buf: Vec<u8>,
    len: usize,
}

impl Lines {
    pub fn with_capacity(bytes: usize) -> Lines {
        Lines {
            buf: vec![0; bytes],
            len: 0,
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// The `N` bytes after the lines, grown into if need be. Always
    /// inlined, as the helpers below: at opt-level "z" they were calls,
    /// and with `N` a constant each is a few instructions.
    #[inline(always)]
    fn room<const N: usize>(&mut self) -> &mut [u8; N] {
        if self.buf.len() < self.len + N {
            self.grow(N);
        }
        match self
            .buf
            .get_mut(self.len..)
            .and_then(|after| after.first_chunk_mut())
        {
            Some(room) => room,
            None => unreachable!("grow makes the room"),
        }
    }

    #[cold]
    #[inline(never)]
    fn grow(&mut self, bytes: usize) {
        let len = (self.len + bytes).max(2 * self.buf.len());
        self.buf.resize(len, 0);
    }

    /// Lets `write` fill the `N` bytes after the lines (one room check
    /// for a whole line) and appends as many of them as it returns;
    /// `None`, nothing appended.
    #[inline(always)]
    pub(super) fn write_with<const N: usize>(
        &mut self,
        write: impl FnOnce(&mut [u8; N]) -> Option<usize>,
    ) -> bool {
        let Some(len) = write(self.room::<N>()) else {
            return false;
        };
        self.len += len.min(N);
        true
    }

    /// Appends `chunk[..len]`: the whole chunk is copied (a copy of a
    /// known size) and the end moved back.
    #[inline(always)]
    pub fn put<const N: usize>(&mut self, chunk: &[u8; N], len: usize) {
        *self.room::<N>() = *chunk;
        self.len += len.min(N);
    }

    /// Appends a constant.
    #[inline(always)]
    pub fn literal<const N: usize>(&mut self, text: &[u8; N]) {
        self.put(text, N);
    }

    #[inline(always)]
    pub fn push(&mut self, byte: u8) {
        self.room::<1>()[0] = byte;
        self.len += 1;
    }

    /// Appends `bytes`, sixteen at a time; the last sixteen overlap what
    /// came before when the length is not a multiple.
    pub fn extend(&mut self, bytes: &[u8]) {
        let len = bytes.len();
        let Some(last) = len.checked_sub(16).and_then(|at| chunk::<16>(bytes, at)) else {
            return self.extend_short(bytes);
        };
        let (chunks, _) = bytes.as_chunks::<16>();
        let start = self.len;
        for chunk in chunks {
            self.put(chunk, 16);
        }
        self.len = start + len - 16;
        self.put(last, 16);
    }

    /// Fewer than 16 bytes: two overlapping words of 8 or 4, else bytes.
    fn extend_short(&mut self, bytes: &[u8]) {
        let len = bytes.len();
        let end = self.len + len;
        if let (Some(first), Some(last)) =
            (chunk::<8>(bytes, 0), chunk::<8>(bytes, len.wrapping_sub(8)))
        {
            self.put(first, 8);
            self.len = end - 8;
            self.put(last, 8);
        } else if let (Some(first), Some(last)) =
            (chunk::<4>(bytes, 0), chunk::<4>(bytes, len.wrapping_sub(4)))
        {
            self.put(first, 4);
            self.len = end - 4;
            self.put(last, 4);
        } else {
            for &byte in bytes {
                self.push(byte);
            }
        }
    }

    /// `n` copies of `byte`, as `{:>width}` and `{:<width}` pad.
    #[inline(always)]
    pub fn pad(&mut self, byte: u8, n: usize) {
        let fill = [byte; 16];
        if n > 16 {
            return self.pad_long(byte, n);
        }
        self.put(&fill, n);
    }

    fn pad_long(&mut self, byte: u8, n: usize) {
        for _ in 0..n {
            self.push(byte);
        }
    }

    /// `n` in decimal; returns how many digits that is.
    pub fn decimal(&mut self, n: u64) -> usize {
        let count = digits(n);
        self.digits(n, count);
        count
    }

    /// `n` right-aligned in `width` characters, the rest `fill`
    /// (`{:>width}` with spaces, `{:0width}` with zeros).
    pub fn padded(&mut self, n: u64, fill: u8, width: usize) {
        let count = digits(n);
        if fill == b'0' && width <= MAX_DIGITS {
            return self.digits(n, count.max(width));
        }
        self.pad(fill, width.saturating_sub(count));
        self.digits(n, count);
    }

    pub fn signed(&mut self, n: i64) {
        if n < 0 {
            self.push(b'-');
        }
        self.decimal(n.unsigned_abs());
    }

    /// The last `count` decimal digits of `n` (leading zeros past its
    /// own), two at a time from a table, as itoa does.
    fn digits(&mut self, n: u64, count: usize) {
        let room = self.room::<MAX_DIGITS>();
        let mut rest = n;
        let mut end = count.min(MAX_DIGITS);
        while end >= 2 {
            let pair = (rest % 100) as usize * 2;
            room[end - 2] = PAIRS[pair];
            room[end - 1] = PAIRS[pair + 1];
            rest /= 100;
            end -= 2;
        }
        if end == 1 {
            room[0] = b'0' + (rest % 10) as u8;
        }
        self.len += count.min(MAX_DIGITS);
    }
}

/// `bytes[at..at + N]` as an array, if there.
#[inline(always)]
fn chunk<const N: usize>(bytes: &[u8], at: usize) -> Option<&[u8; N]> {
    bytes.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// Digits of `u64::MAX`, and the widest zero padding here.
const MAX_DIGITS: usize = 20;

/// "00" to "99".
pub(super) const PAIRS: [u8; 200] = {
    let mut pairs = [0; 200];
    let mut n = 0;
    while n < 100 {
        pairs[2 * n] = b'0' + (n / 10) as u8;
        pairs[2 * n + 1] = b'0' + (n % 10) as u8;
        n += 1;
    }
    pairs
};

/// How many decimal digits `n` has: from its bit length, as the bit
/// twiddling hacks do (`ilog10` took 32 instructions).
fn digits(n: u64) -> usize {
    /// 10^i, but 0 for 10^0: then 0 has one digit.
    const POWERS: [u64; 20] = {
        let mut powers = [0; 20];
        let mut i = 1;
        let mut power = 1u64;
        while i < 20 {
            power *= 10;
            powers[i] = power;
            i += 1;
        }
        powers
    };
    let bits = 64 - (n | 1).leading_zeros() as usize;
    let guess = (bits * 1233) >> 12;
    guess + usize::from(n >= POWERS[guess])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digit_counts_at_each_power_of_ten() {
        assert_eq!((digits(0), digits(u64::MAX)), (1, 20));
        let mut power = 1u64;
        for count in 1..20 {
            assert_eq!(digits(power), count, "{power}");
            assert_eq!(digits(power * 10 - 1), count, "{}", power * 10 - 1);
            power *= 10;
        }
    }

    proptest::proptest! {
        #[test]
        fn pieces_append_as_a_vec_would(
            pieces in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..70), 0..20),
            n in proptest::prop_oneof![proptest::num::u64::ANY, 0u64..100_000], width in 0usize..40, signed: i64, pad in 0usize..40,
        ) {
            let mut lines = Lines::with_capacity(3);
            let mut want = Vec::new();
            for piece in &pieces {
                lines.extend(piece);
                want.extend_from_slice(piece);
            }
            lines.padded(n, b'0', width);
            want.extend_from_slice(format!("{n:0width$}").as_bytes());
            lines.padded(n, b' ', width);
            want.extend_from_slice(format!("{n:>width$}").as_bytes());
            let digits = lines.decimal(n);
            want.extend_from_slice(n.to_string().as_bytes());
            proptest::prop_assert_eq!(digits, n.to_string().len());
            lines.signed(signed);
            want.extend_from_slice(signed.to_string().as_bytes());
            lines.pad(b' ', pad);
            want.resize(want.len() + pad, b' ');
            lines.put(b"abcdef", 3);
            want.extend_from_slice(b"abc");
            proptest::prop_assert_eq!(lines.as_bytes(), &want[..]);
            lines.clear();
            proptest::prop_assert!(lines.is_empty());
        }
    }
}
