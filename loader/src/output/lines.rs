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
        let Some(last) = bytes.last_chunk::<16>() else {
            return self.extend_short(bytes);
        };
        let (chunks, _) = bytes.as_chunks::<16>();
        let start = self.len;
        for chunk in chunks {
            self.put(chunk, 16);
        }
        self.len = start + bytes.len() - 16;
        self.put(last, 16);
    }

    /// Fewer than 16 bytes: two overlapping words of 8 or 4, else bytes.
    fn extend_short(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        if let (Some(first), Some(last)) = (bytes.first_chunk::<8>(), bytes.last_chunk::<8>()) {
            self.put(first, 8);
            self.len = end - 8;
            self.put(last, 8);
        } else if let (Some(first), Some(last)) =
            (bytes.first_chunk::<4>(), bytes.last_chunk::<4>())
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
    pub fn pad(&mut self, byte: u8, n: usize) {
        let fill = [byte; 16];
        let mut left = n;
        while left > 16 {
            self.put(&fill, 16);
            left -= 16;
        }
        self.put(&fill, left);
    }

    /// `n` in decimal; returns how many digits that is.
    pub fn decimal(&mut self, n: u64) -> usize {
        let mut digits = itoa::Buffer::new();
        let digits = digits.format(n).as_bytes();
        self.extend(digits);
        digits.len()
    }

    /// `n` right-aligned in `width` characters, the rest `fill`
    /// (`{:>width}` with spaces, `{:0width}` with zeros).
    pub fn padded(&mut self, n: u64, fill: u8, width: usize) {
        let mut digits = itoa::Buffer::new();
        let digits = digits.format(n).as_bytes();
        self.pad(fill, width.saturating_sub(digits.len()));
        self.extend(digits);
    }

    pub fn signed(&mut self, n: i64) {
        self.extend(itoa::Buffer::new().format(n).as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn pieces_append_as_a_vec_would(
            pieces in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..70), 0..20),
            n: u64, width in 0usize..40, signed: i64, pad in 0usize..40,
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
