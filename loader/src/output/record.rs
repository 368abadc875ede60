//! The text line of an unlink record, formatted straight from its bytes:
//! under a storm this is most of the reader's work, so it is a few fixed
//! size copies into room taken once per line. Kept per thread (comm, tid,
//! cpu, pid) and second: `comm-tid [cpu] secs.` as one run of bytes and
//! each kind's message head; per line only the microseconds (one 8-byte
//! store with `: `), the path (copied sixteen bytes at a time while its
//! NUL is searched) or the return value are made. A record whose comm or
//! path is not ASCII takes the general path, so the bytes are those of
//! [`LineCache::append`] (a test compares the two).

use std::borrow::Cow;

use probes::event::{EventBytes, FILENAME_LEN};

use super::lines::PAIRS;
use super::{Event, EventKind, LineCache, Lines, PART, Part};

/// `0x01` in every byte of a `u128`.
const ONES_128: u128 = u128::from_le_bytes([1; 16]);
const HIGHS_128: u128 = u128::from_le_bytes([0x80; 16]);

const NS_PER_SEC: u64 = 1_000_000_000;

/// Bytes of the kept `comm-tid [cpu] secs.`: at most 41 of prefix (see
/// [`PART`]) and 12 of seconds (`u64::MAX` ns is 11 digits, and the dot).
const LEAD: usize = 64;

/// `usecs: `
const STAMP: usize = 8;

/// The room a line is written into: the lead, stamp, head and whole path
/// at their longest, and the newline.
const ROOM: usize = LEAD + STAMP + PART + FILENAME_LEN + 8;

/// Seconds kept with their text: `{:>5}.`, at most 20 digits and the dot.
#[derive(Debug, Clone, Copy)]
pub(super) struct Seconds {
    secs: u64,
    text: Part,
}

/// The parts of the lines made straight from one thread's records.
#[derive(Debug)]
pub(super) struct RecordThread {
    /// The comm's 16 bytes as the record holds them.
    comm: u128,
    /// The record's pid and tid as one word ([`EventBytes::ids`]).
    ids: u64,
    cpu: u32,
    /// `comm-tid [cpu] `
    prefix: Part,
    /// The first nanosecond of the second `lead` shows.
    second_ns: u64,
    /// `comm-tid [cpu] secs.`, `lead_len` bytes of it.
    lead: [u8; LEAD],
    lead_len: usize,
    entry_head: Part,
    exit_head: Part,
}

impl LineCache {
    /// Appends the text line of `record` (read on `cpu`), newline included,
    /// as [`LineCache::append`] would for its event; `false`, nothing
    /// appended, for a record whose comm or path is not ASCII.
    pub fn append_record(&mut self, line: &mut Lines, record: EventBytes<'_>, cpu: u32) -> bool {
        let comm = u128::from_ne_bytes(record.comm());
        let ids = record.ids();
        let same = self
            .record
            .as_ref()
            .is_some_and(|t| t.comm == comm && t.ids == ids && t.cpu == cpu);
        if !same {
            self.record = remember_record(record, comm, cpu);
        }
        let Some(thread) = self.record.as_deref_mut() else {
            return false;
        };
        let ts_ns = record.ts_ns();
        let mut since = ts_ns.wrapping_sub(thread.second_ns);
        if since >= NS_PER_SEC {
            if !thread.new_second(ts_ns) {
                return false;
            }
            since = ts_ns - thread.second_ns;
        }
        let stamp = stamp(since / 1000);
        let thread = &*thread;
        match record.filename() {
            Some(path) => line.write_with::<ROOM>(|room| {
                let at = thread.start(room, stamp, &thread.entry_head)?;
                let end = at + copy_path(room.get_mut(at..at + FILENAME_LEN)?, path)?;
                *room.get_mut(end)? = b'\n';
                Some(end + 1)
            }),
            None => {
                let ret = small(record.ret());
                let written = line.write_with::<ROOM>(|room| {
                    let at = thread.start(room, stamp, &thread.exit_head)?;
                    if let Some((text, len)) = ret {
                        *room.get_mut(at..at + 4)?.first_chunk_mut()? = text;
                        return Some(at + len);
                    }
                    Some(at)
                });
                if written && ret.is_none() {
                    line.signed(record.ret());
                    line.push(b'\n');
                }
                written
            }
        }
    }
}

/// The thread's parts, made from `record`; `None` for a comm that is not
/// ASCII (or parts too long to keep).
#[cold]
#[inline(never)]
fn remember_record(record: EventBytes<'_>, comm_word: u128, cpu: u32) -> Option<Box<RecordThread>> {
    let len = ascii_len_128(comm_word)?;
    let comm = record.comm();
    let comm = std::str::from_utf8(comm.get(..len)?).ok()?;
    let event = Event {
        ts_ns: record.ts_ns(),
        cpu,
        pid: record.pid(),
        tid: record.tid(),
        comm: Cow::Borrowed(comm),
        kind: EventKind::Exit { ret: 0 },
    };
    let entry = Event {
        kind: EventKind::Entry {
            filename: Cow::Borrowed(""),
            refcnt: None,
        },
        ..event.clone()
    };
    let mut thread = Box::new(RecordThread {
        comm: comm_word,
        ids: record.ids(),
        cpu,
        prefix: Part::new(|line| super::thread_prefix(line, &event))?,
        second_ns: 0,
        lead: [0; LEAD],
        lead_len: 0,
        entry_head: Part::new(|line| super::message_head(line, &entry))?,
        exit_head: Part::new(|line| super::message_head(line, &event))?,
    });
    thread.new_second(record.ts_ns()).then_some(thread)
}

impl RecordThread {
    /// Makes the lead for the second of `ts_ns`; `false` if too long.
    #[cold]
    #[inline(never)]
    fn new_second(&mut self, ts_ns: u64) -> bool {
        let secs = ts_ns / NS_PER_SEC;
        let mut lead = Lines::with_capacity(LEAD);
        lead.put(&self.prefix.bytes, self.prefix.len);
        lead.padded(secs, b' ', 5);
        lead.push(b'.');
        let Some(bytes) = self.lead.get_mut(..lead.len()) else {
            return false;
        };
        bytes.copy_from_slice(lead.as_bytes());
        self.lead_len = lead.len();
        self.second_ns = secs * NS_PER_SEC;
        true
    }

    /// Writes the lead, the stamp and `head` at the start of `room`;
    /// returns where the message's last value goes.
    #[inline(always)]
    fn start(&self, room: &mut [u8; ROOM], stamp: [u8; STAMP], head: &Part) -> Option<usize> {
        *room.first_chunk_mut::<LEAD>()? = self.lead;
        let at = self.lead_len.min(LEAD);
        *room.get_mut(at..at + STAMP)?.first_chunk_mut()? = stamp;
        let at = at + STAMP;
        *room.get_mut(at..at + PART)?.first_chunk_mut()? = head.bytes;
        Some(at + head.len.min(PART))
    }
}

/// `usecs` (below a million) as six digits, then `: `: `usecs / 10^4`
/// in 32.32 fixed point, whose integer part is the first digit pair and
/// whose fraction times 100 gives each next pair (one multiplication a
/// pair, where divisions took four instructions each; exact for every
/// `usecs`, a test tries them all), the pairs' text from a table.
#[inline(always)]
fn stamp(usecs: u64) -> [u8; STAMP] {
    /// 2^32 / 10^4, rounded up: the error stays below one in the last pair.
    const SCALE: u64 = (1 << 32) / 10_000 + 1;
    const FRACTION: u64 = u32::MAX as u64;
    // Each `n` is below 100 already; `min` costs less than a bounds check.
    let pair = |n: u64| {
        let at = n.min(99) as usize * 2;
        u64::from(u16::from_le_bytes([PAIRS[at], PAIRS[at + 1]]))
    };
    let first = usecs * SCALE;
    let second = (first & FRACTION) * 100;
    let third = (second & FRACTION) * 100;
    let word = pair(first >> 32)
        | pair(second >> 32) << 16
        | pair(third >> 32) << 32
        | u64::from_le_bytes(*b"\0\0\0\0\0\0: ");
    word.to_le_bytes()
}

/// `ret` and the newline as text, with its length, when between -99 and
/// 99 (what unlink returns: 0 or a negative errno).
#[inline(always)]
fn small(ret: i64) -> Option<([u8; 4], usize)> {
    let n = ret.unsigned_abs();
    if n >= 100 {
        return None;
    }
    let (digits, mut len) = if n < 10 {
        (u32::from(b'0') + n as u32, 1)
    } else {
        let at = n as usize * 2;
        (u32::from(u16::from_le_bytes([PAIRS[at], PAIRS[at + 1]])), 2)
    };
    let mut text = digits | u32::from(b'\n') << (8 * len);
    if ret < 0 {
        text = text << 8 | u32::from(b'-');
        len += 1;
    }
    Some((text.to_le_bytes(), len + 1))
}

/// Copies the bytes of `path` before its first NUL (all of them without
/// one) to `to`, sixteen at a time; their length, if they are ASCII: as
/// `probes::event::c_str` reads them.
#[inline(always)]
fn copy_path(to: &mut [u8], path: &[u8; FILENAME_LEN]) -> Option<usize> {
    let (to, _) = to.as_chunks_mut::<16>();
    let mut seen = 0u128;
    for (i, (chunk, to)) in path.as_chunks::<16>().0.iter().zip(to).enumerate() {
        *to = *chunk;
        let word = u128::from_le_bytes(*chunk);
        let zeros = word.wrapping_sub(ONES_128) & !word & HIGHS_128;
        if zeros != 0 {
            // The lowest flag marks the first NUL (a borrow only flags
            // bytes above a zero byte); the bytes below it must be ASCII.
            let below = (zeros & zeros.wrapping_neg()) - 1;
            return ((seen | word & below) & HIGHS_128 == 0)
                .then_some(i * 16 + zeros.trailing_zeros() as usize / 8);
        }
        seen |= word;
    }
    (seen & HIGHS_128 == 0).then_some(FILENAME_LEN)
}

impl LineCache {
    /// `secs.usecs: `, the seconds' text kept from the line before.
    pub(super) fn time(&mut self, line: &mut Lines, ts_ns: u64) {
        let secs = ts_ns / NS_PER_SEC;
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
        line.literal(&stamp((ts_ns - secs * NS_PER_SEC) / 1000));
    }
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
    use probes::event::{self, EventKind as RecordKind, HAS_REFCNT, SIZE, VERSION};

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

    /// What `copy_path` copies and measures of `bytes` (NUL-padded).
    fn path_len(bytes: &[u8]) -> Option<usize> {
        let mut path = [0u8; FILENAME_LEN];
        path[..bytes.len()].copy_from_slice(bytes);
        let mut to = [0u8; FILENAME_LEN];
        let len = copy_path(&mut to, &path)?;
        assert_eq!(to[..len], path[..len]);
        Some(len)
    }

    #[test]
    fn paths_stop_at_the_first_nul_and_refuse_non_ascii() {
        assert_eq!(path_len(b"/tmp/a\0junk\xff"), Some(6));
        assert_eq!(path_len(b"0123456789abcdef\0"), Some(16));
        assert_eq!(path_len(b"0123456789abcdef0\0\xff"), Some(17));
        assert_eq!(path_len(b"\x01\0"), Some(1));
        assert_eq!(path_len(&[b'x'; FILENAME_LEN]), Some(FILENAME_LEN));
        assert_eq!(path_len(b"caf\xc3\xa9\0"), None);
        assert_eq!(path_len(b"0123456789abcdef\xff\0"), None);
        assert_eq!(path_len(b"\xff0123456789abcdef\0"), None);
        assert_eq!(path_len(b""), Some(0));
    }

    #[test]
    fn small_return_values_and_stamps() {
        let text = |ret| small(ret).map(|(t, len)| t[..len].to_vec());
        assert_eq!(text(0).as_deref(), Some(&b"0\n"[..]));
        assert_eq!(text(-2).as_deref(), Some(&b"-2\n"[..]));
        assert_eq!(text(-99).as_deref(), Some(&b"-99\n"[..]));
        assert_eq!(text(42).as_deref(), Some(&b"42\n"[..]));
        assert_eq!(text(100), None);
        assert_eq!(text(i64::MIN), None);
        assert_eq!(&stamp(0), b"000000: ");
        assert_eq!(&stamp(987_654), b"987654: ");
        assert_eq!(&stamp(1_002), b"001002: ");
        for usecs in 0..1_000_000 {
            let want = format!("{usecs:06}: ");
            assert_eq!(stamp(usecs), want.as_bytes(), "{usecs}");
        }
    }

    #[test]
    fn comm_words_stop_at_the_first_nul_and_refuse_non_ascii() {
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
                let record = event::EventBytes::new(&bytes).unwrap();
                let mut want = Lines::default();
                fresh_cache.append(&mut want, Format::Text, &crate::run::event(cpu, &raw));
                let mut got = Lines::default();
                if !cache.append_record(&mut got, record, cpu) {
                    proptest::prop_assert!(got.is_empty());
                    cache.append(&mut got, Format::Text, &crate::run::event(cpu, &raw));
                }
                proptest::prop_assert_eq!(String::from_utf8_lossy(got.as_bytes()), String::from_utf8_lossy(want.as_bytes()));
            }
        }
    }
}
