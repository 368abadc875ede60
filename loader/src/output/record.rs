//! The text line of an unlink record, formatted straight from its bytes:
//! under a storm this is most of the reader's work. The comm and path are
//! searched for their NUL a word at a time and copied as they lie when
//! ASCII (no `CStr`, no UTF-8 validation, no `Event`); the thread's parts
//! and the time's seconds are kept from the line before, the microseconds
//! written as three digit pairs. Any other record (a non-ASCII comm or
//! path) takes the general path, so the bytes are those of
//! [`LineCache::append`] (a test compares the two).

use std::borrow::Cow;

use probes::event::{EventKind as RecordKind, EventRef};

use super::{Event, EventKind, LineCache, Lines, Part};

/// `0x01` in every byte of a `u128` / `u64`.
const ONES_128: u128 = u128::from_le_bytes([1; 16]);
const HIGHS_128: u128 = u128::from_le_bytes([0x80; 16]);
const ONES_64: u64 = u64::from_le_bytes([1; 8]);
const HIGHS_64: u64 = u64::from_le_bytes([0x80; 8]);

/// Seconds kept with their text: `{:>5}.`, at most 20 digits and the dot.
#[derive(Debug, Clone, Copy)]
pub(super) struct Seconds {
    secs: u64,
    text: Part,
}

impl LineCache {
    /// Appends the text line of `record` (read on `cpu`), newline included,
    /// as [`LineCache::append`] would for its event; `false`, nothing
    /// appended, for a record whose comm or path is not ASCII.
    pub fn append_record(&mut self, line: &mut Lines, record: &EventRef<'_>, cpu: u32) -> bool {
        let Some(&comm) = record.comm.first_chunk::<16>() else {
            return false;
        };
        let comm = u128::from_le_bytes(comm);
        let filename = match record.kind {
            RecordKind::Entry => match ascii_c_str(record.filename) {
                Some(path) => Some(path),
                None => return false,
            },
            RecordKind::Exit => None,
        };
        let same = self.thread.as_ref().is_some_and(|t| {
            t.comm_word == Some(comm) && (t.tid, t.cpu, t.pid) == (record.tid, cpu, record.pid)
        });
        if !same && !self.remember_record(record, comm, cpu) {
            return false;
        }
        let Some([prefix, entry_head, exit_head]) = self.thread.as_ref().and_then(|t| t.parts)
        else {
            return false;
        };
        line.put(&prefix.bytes, prefix.len);
        self.time(line, record.ts_ns);
        match filename {
            Some(path) => {
                line.put(&entry_head.bytes, entry_head.len);
                line.extend(path);
            }
            None => {
                line.put(&exit_head.bytes, exit_head.len);
                line.signed(record.ret);
            }
        }
        line.push(b'\n');
        true
    }

    /// Makes the thread's parts from the record; `false` for a comm that
    /// is not ASCII.
    fn remember_record(&mut self, record: &EventRef<'_>, comm_word: u128, cpu: u32) -> bool {
        let Some(len) = ascii_len_128(comm_word) else {
            return false;
        };
        let Ok(comm) = std::str::from_utf8(&record.comm[..len]) else {
            return false;
        };
        self.remember(&Event {
            ts_ns: record.ts_ns,
            cpu,
            pid: record.pid,
            tid: record.tid,
            comm: Cow::Borrowed(comm),
            kind: EventKind::Exit { ret: 0 },
        });
        if let Some(thread) = self.thread.as_mut() {
            thread.comm_word = Some(comm_word);
        }
        true
    }

    /// `secs.usecs: `, the seconds' text kept from the line before.
    pub(super) fn time(&mut self, line: &mut Lines, ts_ns: u64) {
        let secs = ts_ns / 1_000_000_000;
        if self.seconds.is_none_or(|kept| kept.secs != secs) {
            let Some(text) = Part::new(|part| {
                part.padded(secs, b' ', 5);
                part.push(b'.');
            }) else {
                return super::time(line, ts_ns);
            };
            self.seconds = Some(Seconds { secs, text });
        }
        if let Some(kept) = &self.seconds {
            line.put(&kept.text.bytes, kept.text.len);
        }
        let usecs = (ts_ns - secs * 1_000_000_000) / 1000;
        let [a, b] = pair(usecs / 10_000);
        let [c, d] = pair(usecs / 100 % 100);
        let [e, f] = pair(usecs % 100);
        line.literal(&[a, b, c, d, e, f, b':', b' ']);
    }
}

/// `n` (below 100) as two digits.
#[inline(always)]
fn pair(n: u64) -> [u8; 2] {
    let at = n as usize % 100 * 2;
    [super::lines::PAIRS[at], super::lines::PAIRS[at + 1]]
}

/// The bytes before the first NUL of `bytes` (all of them without one),
/// if they are ASCII: as `probes::event::c_str` reads them, a word at a
/// time.
fn ascii_c_str(bytes: &[u8]) -> Option<&[u8]> {
    let (words, rest) = bytes.as_chunks::<8>();
    for (i, word) in words.iter().enumerate() {
        let word = u64::from_le_bytes(*word);
        let zeros = word.wrapping_sub(ONES_64) & !word & HIGHS_64;
        // The lowest flag marks the first NUL (a borrow only flags bytes
        // above a zero byte); the bytes below it must be ASCII.
        let below = if zeros == 0 {
            u64::MAX
        } else {
            (zeros & zeros.wrapping_neg()) - 1
        };
        if word & HIGHS_64 & below != 0 {
            return None;
        }
        if zeros != 0 {
            return Some(&bytes[..i * 8 + zeros.trailing_zeros() as usize / 8]);
        }
    }
    let start = bytes.len() - rest.len();
    let end = rest
        .iter()
        .position(|&b| b == 0)
        .map_or(bytes.len(), |n| start + n);
    bytes[start..end].is_ascii().then_some(&bytes[..end])
}

/// The length before the first NUL of the 16 bytes in `word` (16 without
/// one), if those bytes are ASCII.
fn ascii_len_128(word: u128) -> Option<usize> {
    let zeros = word.wrapping_sub(ONES_128) & !word & HIGHS_128;
    let (len, below) = if zeros == 0 {
        (16, u128::MAX)
    } else {
        (
            zeros.trailing_zeros() as usize / 8,
            (zeros & zeros.wrapping_neg()) - 1,
        )
    };
    (word & HIGHS_128 & below == 0).then_some(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::Format;
    use probes::event::{self, HAS_REFCNT, SIZE, VERSION};

    /// An unlink record's bytes, as the probes write them.
    fn record(
        kind: RecordKind,
        ts_ns: u64,
        ids: (u32, u32),
        ret: i64,
        comm: &[u8],
        path: &[u8],
    ) -> Vec<u8> {
        let mut bytes = vec![0u8; SIZE];
        bytes[0..4].copy_from_slice(&VERSION.to_ne_bytes());
        bytes[4..8].copy_from_slice(&(kind as u32).to_ne_bytes());
        bytes[8..16].copy_from_slice(&ts_ns.to_ne_bytes());
        bytes[16..20].copy_from_slice(&ids.0.to_ne_bytes());
        bytes[20..24].copy_from_slice(&ids.1.to_ne_bytes());
        bytes[28..32].copy_from_slice(&HAS_REFCNT.to_ne_bytes());
        bytes[32..40].copy_from_slice(&ret.to_ne_bytes());
        bytes[40..40 + comm.len().min(16)].copy_from_slice(&comm[..comm.len().min(16)]);
        let path = &path[..path.len().min(event::FILENAME_LEN)];
        bytes[64..64 + path.len()].copy_from_slice(path);
        if kind == RecordKind::Exit {
            bytes.truncate(event::EXIT_SIZE);
        }
        bytes
    }

    #[test]
    fn c_strings_stop_at_the_first_nul_and_refuse_non_ascii() {
        assert_eq!(ascii_c_str(b"/tmp/a\0junk\xff"), Some(&b"/tmp/a"[..]));
        assert_eq!(
            ascii_c_str(b"0123456789abcdef\0"),
            Some(&b"0123456789abcdef"[..])
        );
        assert_eq!(ascii_c_str(b"\x01\0"), Some(&b"\x01"[..]));
        assert_eq!(ascii_c_str(b"no nul at all"), Some(&b"no nul at all"[..]));
        assert_eq!(ascii_c_str(b"caf\xc3\xa9\0"), None);
        assert_eq!(ascii_c_str(b""), Some(&b""[..]));
        let word = |b: &[u8]| {
            let mut w = [0u8; 16];
            w[..b.len()].copy_from_slice(b);
            u128::from_le_bytes(w)
        };
        assert_eq!(ascii_len_128(word(b"rm")), Some(2));
        assert_eq!(ascii_len_128(word(b"0123456789abcdef")), Some(16));
        assert_eq!(ascii_len_128(word(b"r\xff")), None);
        assert_eq!(ascii_len_128(word(b"rm\0\xff")), Some(2));
        assert_eq!(ascii_len_128(word(b"\x01\x01\0")), Some(2));
    }

    proptest::proptest! {
        /// Records straight to text equal the general path's lines, in
        /// a row (the thread's parts and the seconds kept or not).
        #[test]
        fn record_lines_equal_event_lines(
            events in proptest::collection::vec(
                (0u64..4_000_000_000_000, 0u32..3, 0u32..3, 0u32..3, proptest::prelude::any::<bool>(), proptest::prelude::any::<i64>(), 0usize..6, 0usize..5),
                1..16,
            ),
        ) {
            let comms: [&[u8]; 6] = [b"rm", b"benchctl", b"rm\0\xffx", b"caf\xc3\xa9", b"0123456789abcdef", b"r\xff"];
            let paths: [&[u8]; 5] = [b"/tmp/a.txt", b"", b"/tmp/\xe2\x82\xac", b"/a\0\xffjunk", &[b'x'; 300]];
            let mut cache = LineCache::default();
            let mut fresh_cache = LineCache::default();
            for (ts_ns, cpu, pid, tid, entry, ret, comm, path) in events {
                let kind = if entry { RecordKind::Entry } else { RecordKind::Exit };
                let bytes = record(kind, ts_ns, (pid, tid), ret, comms[comm], paths[path]);
                let raw = event::parse_ref(&bytes).unwrap();
                let mut want = Lines::default();
                fresh_cache.append(&mut want, Format::Text, &crate::run::event(cpu, &raw));
                let mut got = Lines::default();
                if !cache.append_record(&mut got, &raw, cpu) {
                    proptest::prop_assert!(got.is_empty());
                    cache.append(&mut got, Format::Text, &crate::run::event(cpu, &raw));
                }
                proptest::prop_assert_eq!(String::from_utf8_lossy(got.as_bytes()), String::from_utf8_lossy(want.as_bytes()));
            }
        }
    }
}
