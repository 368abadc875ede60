//! The text line of an unlink record, formatted straight from its bytes:
//! under a storm this is most of the reader's work, so it is a few fixed
//! size copies into room taken once per line. Kept per thread (comm, tid,
//! cpu, pid) and second, for each kind: the line's start,
//! `comm-tid [cpu] secs.` then room for the microseconds then the
//! message's head (and for an exit the last return value and newline), as
//! one run of bytes. Per line the start is copied whole, then only the
//! microseconds (one 8-byte store with `: `) and the path (copied eight
//! bytes at a time while its NUL is searched) are made, or the return
//! value when it changed. A record whose comm or path is not ASCII takes
//! the general path, so the bytes are those of [`LineCache::append`] (a
//! test compares the two).

use std::borrow::Cow;

use probes::event::{EventBytes, FILENAME_LEN};

use super::lines::PAIRS;
use super::{Event, EventKind, LineCache, Lines, PART, Part};

/// `0x01` in every byte of a `u64`.
const ONES: u64 = u64::from_le_bytes([1; 8]);
const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);
const ONES_128: u128 = u128::from_le_bytes([1; 16]);
const HIGHS_128: u128 = u128::from_le_bytes([0x80; 16]);

const NS_PER_SEC: u64 = 1_000_000_000;

/// Bytes of `comm-tid [cpu] secs.`: at most 41 of prefix (see [`PART`])
/// and 12 of seconds (`u64::MAX` ns is 11 digits, and the dot).
const LEAD: usize = 64;

/// `usecs: `
const STAMP: usize = 8;

/// Bytes of a kept line start: the lead, the stamp, the head and a
/// return value's text at their longest (53, 8, 42, 4) fit below it.
const START: usize = 128;

/// The room a line is written into: a start and the whole path after
/// it, and the newline.
const ROOM: usize = START + FILENAME_LEN;

/// Seconds kept with their text: `{:>5}.`, at most 20 digits and the dot.
#[derive(Debug, Clone, Copy)]
pub(super) struct Seconds {
    secs: u64,
    text: Part,
}

/// The first bytes of one kind's lines: `comm-tid [cpu] secs.`, room for
/// the stamp, the message's head (and what follows it, if the same in
/// each line).
#[derive(Debug)]
struct Start {
    bytes: [u8; START],
    /// Where the stamp goes: below [`LEAD`].
    stamp_at: usize,
    /// Where the head ends: below [`START`].
    head_end: usize,
    /// Bytes of the start: below [`START`].
    len: usize,
}

impl Start {
    const fn new() -> Start {
        Start {
            bytes: [0; START],
            stamp_at: 0,
            head_end: 0,
            len: 0,
        }
    }

    /// Lays out `lead`, the stamp's room and `head`; `false` if too long.
    fn make(&mut self, lead: &[u8], head: &Part) -> bool {
        let head = &head.bytes[..head.len.min(PART)];
        let head_end = lead.len() + STAMP + head.len();
        if lead.len() >= LEAD || head_end >= START {
            return false;
        }
        self.bytes[..lead.len()].copy_from_slice(lead);
        self.bytes[lead.len() + STAMP..head_end].copy_from_slice(head);
        self.stamp_at = lead.len();
        self.head_end = head_end;
        self.len = head_end;
        true
    }

    /// Copies the start into `room` with `stamp`; returns its length.
    #[inline(always)]
    fn write(&self, room: &mut [u8; ROOM], stamp: [u8; STAMP]) -> Option<usize> {
        // Two halves: one copy of 128 bytes is a `rep movsb` at
        // opt-level "z", a loop of 128 steps; 64 are four 16-byte moves.
        const HALF: usize = START / 2;
        *room.first_chunk_mut::<HALF>()? = *self.bytes.first_chunk::<HALF>()?;
        *room.get_mut(HALF..START)?.first_chunk_mut::<HALF>()? =
            *self.bytes.last_chunk::<HALF>()?;
        // The masks change nothing (see the fields): they spare bounds
        // checks.
        let at = self.stamp_at % LEAD;
        *room.get_mut(at..at + STAMP)?.first_chunk_mut()? = stamp;
        Some(self.len % START)
    }
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
    /// The first nanosecond of the second the starts show.
    second_ns: u64,
    entry_head: Part,
    exit_head: Part,
    entry: Start,
    exit: Start,
    /// The last exit's return value: its text and newline end `exit` when
    /// short (`exit_whole`), else it is written per line.
    exit_ret: i64,
    exit_whole: bool,
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
        let stamp = stamp(since);
        match record.filename() {
            Some(path) => {
                let start = &thread.entry;
                line.write_with::<ROOM>(|room| {
                    let at = start.write(room, stamp)?;
                    let end = at + copy_path(room.get_mut(at..at + FILENAME_LEN)?, path)?;
                    *room.get_mut(end)? = b'\n';
                    Some(end + 1)
                })
            }
            None => {
                let ret = record.ret();
                if ret != thread.exit_ret {
                    thread.set_exit_ret(ret);
                }
                let start = &thread.exit;
                line.write_with::<ROOM>(|room| start.write(room, stamp));
                if !thread.exit_whole {
                    line.signed(ret);
                    line.push(b'\n');
                }
                true
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
        entry_head: Part::new(|line| super::message_head(line, &entry))?,
        exit_head: Part::new(|line| super::message_head(line, &event))?,
        entry: Start::new(),
        exit: Start::new(),
        // Not short: the start ends at the head until a short one comes.
        exit_ret: i64::MIN,
        exit_whole: false,
    });
    thread.new_second(record.ts_ns()).then_some(thread)
}

impl RecordThread {
    /// Makes the starts for the second of `ts_ns`; `false` if too long.
    #[cold]
    #[inline(never)]
    fn new_second(&mut self, ts_ns: u64) -> bool {
        let secs = ts_ns / NS_PER_SEC;
        let mut lead = Lines::with_capacity(LEAD);
        lead.put(&self.prefix.bytes, self.prefix.len);
        lead.padded(secs, b' ', 5);
        lead.push(b'.');
        if !self.entry.make(lead.as_bytes(), &self.entry_head)
            || !self.exit.make(lead.as_bytes(), &self.exit_head)
        {
            return false;
        }
        self.second_ns = secs * NS_PER_SEC;
        if self.exit_whole {
            self.set_exit_ret(self.exit_ret);
        }
        true
    }

    /// Ends the exit's start with `ret` and the newline, when short (what
    /// unlink returns); else with its head, `ret` written per line.
    #[cold]
    #[inline(never)]
    fn set_exit_ret(&mut self, ret: i64) {
        let exit = &mut self.exit;
        self.exit_ret = ret;
        self.exit_whole = false;
        exit.len = exit.head_end;
        let Some((text, len)) = small(ret) else {
            return;
        };
        let Some(room) = exit.bytes.get_mut(exit.head_end..exit.head_end + 4) else {
            return;
        };
        room.copy_from_slice(&text);
        exit.len = exit.head_end + len;
        self.exit_whole = true;
    }
}

/// `000` to `999`, each in 4 bytes.
static TRIPLES: [[u8; 4]; 1000] = {
    let mut triples = [[0; 4]; 1000];
    let mut n = 0;
    while n < 1000 {
        triples[n] = [
            b'0' + (n / 100) as u8,
            b'0' + (n / 10 % 10) as u8,
            b'0' + (n % 10) as u8,
            0,
        ];
        n += 1;
    }
    triples
};

/// The microseconds of `ns` (below a second) as six digits, then `: `:
/// its milliseconds and the microseconds past them (two divisions, each
/// also giving the remainder the next one divides) as two triples from a
/// table.
#[inline(always)]
fn stamp(ns: u64) -> [u8; STAMP] {
    // `min` costs less than a bounds check; both are below 1000.
    let (ms, ns) = (ns / 1_000_000, ns % 1_000_000);
    let high = TRIPLES[ms.min(999) as usize];
    let low = TRIPLES[(ns / 1000).min(999) as usize];
    let word = u64::from(u32::from_le_bytes(high))
        | u64::from(u32::from_le_bytes(low)) << 24
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
/// one) to `to`, eight at a time; their length, if they are ASCII: as
/// `probes::event::c_str` reads them.
#[inline(always)]
fn copy_path(to: &mut [u8], path: &[u8; FILENAME_LEN]) -> Option<usize> {
    let (to, _) = to.as_chunks_mut::<8>();
    let mut seen = 0u64;
    for (i, (chunk, to)) in path.as_chunks::<8>().0.iter().zip(to).enumerate() {
        *to = *chunk;
        let word = u64::from_le_bytes(*chunk);
        let zeros = word.wrapping_sub(ONES) & !word & HIGHS;
        if zeros != 0 {
            // The lowest flag marks the first NUL (a borrow only flags
            // bytes above a zero byte); the bytes below it must be ASCII.
            let below = (zeros & zeros.wrapping_neg()) - 1;
            return ((seen | word & below) & HIGHS == 0)
                .then_some(i * 8 + zeros.trailing_zeros() as usize / 8);
        }
        seen |= word;
    }
    (seen & HIGHS == 0).then_some(FILENAME_LEN)
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
        line.literal(&stamp(ts_ns - secs * NS_PER_SEC));
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
        assert_eq!(&stamp(987_654_321), b"987654: ");
        assert_eq!(&stamp(1_002_999), b"001002: ");
        assert_eq!(&stamp(NS_PER_SEC - 1), b"999999: ");
        for usecs in 0..1_000_000 {
            let want = format!("{usecs:06}: ");
            // Nanoseconds past the microsecond are dropped.
            let ns = usecs * 1000 + usecs % 1000;
            assert_eq!(stamp(ns), want.as_bytes(), "{usecs}");
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

    use proptest::prelude::{Just, any, prop_oneof};

    proptest::proptest! {
        /// Records straight to text equal the general path's lines, in
        /// a row (the thread's parts, the seconds and the last return
        /// value kept or not: mostly one thread, seconds apart, short
        /// return values).
        #[test]
        fn record_lines_equal_event_lines(
            events in proptest::collection::vec(
                (
                    prop_oneof![0u64..4_000_000_000_000, 7_000_000_000u64..9_000_000_000],
                    prop_oneof![3 => Just(0u32), 1 => 0u32..3],
                    prop_oneof![3 => Just(1u32), 1 => 0u32..3],
                    prop_oneof![3 => Just(1u32), 1 => 0u32..3],
                    any::<bool>(),
                    prop_oneof![3 => -3i64..1, 1 => -101i64..101, 1 => any::<i64>()],
                    prop_oneof![3 => Just(1usize), 1 => 0usize..6],
                    0usize..5,
                ),
                1..24,
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
