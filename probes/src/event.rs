//! The record the unlink probes write into the perf ring, defined once: the
//! program builder takes field offsets from this struct and the loader parses
//! samples with [`parse`].

use core::mem::{offset_of, size_of};
use std::borrow::Cow;

use kernel_headers::sched::TASK_COMM_LEN;
use thiserror::Error;

/// Layout version, the first field of every record; bumped on any change.
pub const VERSION: u32 = 2;

/// Bytes of path kept, NUL included.
pub const FILENAME_LEN: usize = 256;

/// `flags`: `refcnt` holds a value read from `struct filename`.
pub const HAS_REFCNT: u32 = 1;

/// One unlink event, as laid out on the BPF stack and in the perf sample.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnlinkEvent {
    /// [`VERSION`].
    pub version: u32,
    /// [`EventKind`] as a number.
    pub kind: u32,
    /// `bpf_ktime_get_ns()`: monotonic nanoseconds since boot.
    pub ts_ns: u64,
    /// Thread group id (what userspace calls the pid).
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// `struct filename`'s refcnt at entry; meaningful with [`HAS_REFCNT`].
    pub refcnt: i32,
    pub flags: u32,
    /// `do_unlinkat`'s return value (exit events).
    pub ret: i64,
    pub comm: [u8; TASK_COMM_LEN],
    /// The CPU the probe ran on, written only into the ring buffer (shared
    /// by all CPUs); a perf ring is the CPU's own and says it.
    pub cpu: u32,
    pub reserved: u32,
    /// The path, NUL-terminated (entry events; an exit record stops
    /// before it).
    pub filename: [u8; FILENAME_LEN],
}

/// Size of [`UnlinkEvent`] in bytes.
pub const SIZE: usize = size_of::<UnlinkEvent>();

/// Bytes of an exit record: everything before the path, which an exit
/// does not have (a fifth of the entry's stack, copy and reading).
pub const EXIT_SIZE: usize = offset_of!(UnlinkEvent, filename);

// The program writes these fields at these offsets; pin them so a layout
// change is a deliberate version bump.
const _: () = {
    assert!(offset_of!(UnlinkEvent, version) == 0);
    assert!(offset_of!(UnlinkEvent, kind) == 4);
    assert!(offset_of!(UnlinkEvent, ts_ns) == 8);
    assert!(offset_of!(UnlinkEvent, pid) == 16);
    assert!(offset_of!(UnlinkEvent, tid) == 20);
    assert!(offset_of!(UnlinkEvent, refcnt) == 24);
    assert!(offset_of!(UnlinkEvent, flags) == 28);
    assert!(offset_of!(UnlinkEvent, ret) == 32);
    assert!(offset_of!(UnlinkEvent, comm) == 40);
    assert!(offset_of!(UnlinkEvent, cpu) == 56);
    assert!(offset_of!(UnlinkEvent, filename) == 64);
    assert!(EXIT_SIZE == 64);
    assert!(SIZE == 320);
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum EventKind {
    Entry = 1,
    Exit = 2,
}

impl EventKind {
    pub fn from_u32(n: u32) -> Option<EventKind> {
        [EventKind::Entry, EventKind::Exit]
            .into_iter()
            .find(|&k| k as u32 == n)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum EventError {
    #[error("event is {len} bytes, shorter than the {need} of an unlink {kind} event")]
    TooShort {
        len: usize,
        need: usize,
        kind: &'static str,
    },
    #[error(
        "event version {found}, this nobtf reads version {VERSION}: load probes and reader from the same build"
    )]
    Version { found: u32 },
    #[error("event kind {found} is neither entry (1) nor exit (2)")]
    Kind { found: u32 },
}

/// One record as the reader uses it: the numbers decoded, the strings
/// borrowed from the ring's bytes (no copy of the 272 bytes of text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventRef<'a> {
    pub kind: EventKind,
    pub ts_ns: u64,
    pub pid: u32,
    pub tid: u32,
    pub refcnt: i32,
    pub flags: u32,
    pub ret: i64,
    pub comm: &'a [u8],
    pub filename: &'a [u8],
    /// Meaningful in ring-buffer records only.
    pub cpu: u32,
}

/// Parse one record, borrowing its strings: an entry of [`SIZE`] bytes or
/// an exit of [`EXIT_SIZE`] (its `filename` then empty). Perf pads raw
/// samples to 8 bytes, so trailing bytes are ignored.
pub fn parse_ref(bytes: &[u8]) -> Result<EventRef<'_>, EventError> {
    let Some(record) = bytes.first_chunk::<EXIT_SIZE>() else {
        let (need, kind) = (EXIT_SIZE, "exit");
        return Err(EventError::TooShort {
            len: bytes.len(),
            need,
            kind,
        });
    };
    let version = u32::from_ne_bytes(field::<{ offset_of!(UnlinkEvent, version) }, 4>(record));
    if version != VERSION {
        return Err(EventError::Version { found: version });
    }
    let kind = u32::from_ne_bytes(field::<{ offset_of!(UnlinkEvent, kind) }, 4>(record));
    let Some(kind) = EventKind::from_u32(kind) else {
        return Err(EventError::Kind { found: kind });
    };
    let filename = match kind {
        EventKind::Entry => match bytes.get(EXIT_SIZE..SIZE) {
            Some(path) => path,
            None => {
                let (need, kind) = (SIZE, "entry");
                return Err(EventError::TooShort {
                    len: bytes.len(),
                    need,
                    kind,
                });
            }
        },
        EventKind::Exit => &[],
    };
    Ok(EventRef {
        kind,
        ts_ns: u64::from_ne_bytes(field::<{ offset_of!(UnlinkEvent, ts_ns) }, 8>(record)),
        pid: u32::from_ne_bytes(field::<{ offset_of!(UnlinkEvent, pid) }, 4>(record)),
        tid: u32::from_ne_bytes(field::<{ offset_of!(UnlinkEvent, tid) }, 4>(record)),
        refcnt: i32::from_ne_bytes(field::<{ offset_of!(UnlinkEvent, refcnt) }, 4>(record)),
        flags: u32::from_ne_bytes(field::<{ offset_of!(UnlinkEvent, flags) }, 4>(record)),
        ret: i64::from_ne_bytes(field::<{ offset_of!(UnlinkEvent, ret) }, 8>(record)),
        comm: &record[offset_of!(UnlinkEvent, comm)..][..TASK_COMM_LEN],
        filename,
        cpu: u32::from_ne_bytes(field::<{ offset_of!(UnlinkEvent, cpu) }, 4>(record)),
    })
}

/// An unlink record read where it lies, for the reader's hot path: one
/// length check and one comparison of version and kind when made, then
/// each field a load at its fixed offset (building an [`EventRef`] wrote
/// 72 bytes through memory for every record). Made exactly when
/// [`parse_ref`] succeeds (a test compares them); [`parse_ref`] says why
/// a record is refused.
#[derive(Debug, Clone, Copy)]
pub struct EventBytes<'a> {
    head: &'a [u8; EXIT_SIZE],
    /// The path's bytes: `Some` for an entry, `None` for an exit.
    filename: Option<&'a [u8; FILENAME_LEN]>,
}

/// The record's first 8 bytes, version and kind, as a `u64` for `kind`.
const fn version_kind(kind: EventKind) -> u64 {
    let version = VERSION.to_ne_bytes();
    let kind = (kind as u32).to_ne_bytes();
    u64::from_ne_bytes([
        version[0], version[1], version[2], version[3], kind[0], kind[1], kind[2], kind[3],
    ])
}

const ENTRY_WORD: u64 = version_kind(EventKind::Entry);
const EXIT_WORD: u64 = version_kind(EventKind::Exit);

impl<'a> EventBytes<'a> {
    /// The record in `bytes`, if [`parse_ref`] would take it.
    #[inline(always)]
    pub fn new(bytes: &'a [u8]) -> Option<EventBytes<'a>> {
        let (head, rest) = bytes.split_first_chunk::<EXIT_SIZE>()?;
        let word = u64::from_ne_bytes(field::<{ offset_of!(UnlinkEvent, version) }, 8>(head));
        let filename = if word == ENTRY_WORD {
            Some(rest.first_chunk::<FILENAME_LEN>()?)
        } else if word == EXIT_WORD {
            None
        } else {
            return None;
        };
        Some(EventBytes { head, filename })
    }

    #[inline(always)]
    pub fn kind(&self) -> EventKind {
        match self.filename {
            Some(_) => EventKind::Entry,
            None => EventKind::Exit,
        }
    }

    /// The path's bytes (entries), NUL-padded as the probe copied them.
    #[inline(always)]
    pub fn filename(&self) -> Option<&'a [u8; FILENAME_LEN]> {
        self.filename
    }

    #[inline(always)]
    pub fn ts_ns(&self) -> u64 {
        u64::from_ne_bytes(field::<{ offset_of!(UnlinkEvent, ts_ns) }, 8>(self.head))
    }

    #[inline(always)]
    pub fn pid(&self) -> u32 {
        u32::from_ne_bytes(field::<{ offset_of!(UnlinkEvent, pid) }, 4>(self.head))
    }

    #[inline(always)]
    pub fn tid(&self) -> u32 {
        u32::from_ne_bytes(field::<{ offset_of!(UnlinkEvent, tid) }, 4>(self.head))
    }

    /// `pid` and `tid` as one word, to compare both at once.
    #[inline(always)]
    pub fn ids(&self) -> u64 {
        const { assert!(offset_of!(UnlinkEvent, tid) == offset_of!(UnlinkEvent, pid) + 4) };
        u64::from_ne_bytes(field::<{ offset_of!(UnlinkEvent, pid) }, 8>(self.head))
    }

    #[inline(always)]
    pub fn ret(&self) -> i64 {
        i64::from_ne_bytes(field::<{ offset_of!(UnlinkEvent, ret) }, 8>(self.head))
    }

    /// The comm's bytes as the record holds them.
    #[inline(always)]
    pub fn comm(&self) -> [u8; TASK_COMM_LEN] {
        field::<{ offset_of!(UnlinkEvent, comm) }, TASK_COMM_LEN>(self.head)
    }

    #[inline(always)]
    pub fn cpu(&self) -> u32 {
        u32::from_ne_bytes(field::<{ offset_of!(UnlinkEvent, cpu) }, 4>(self.head))
    }
}

/// The `N` bytes at `AT` of a record: both constants, so the bounds are
/// checked when compiled (the assertion) and this is one load (the
/// closures it replaced were calls with bounds checks, a tenth of the
/// reader's instructions).
#[inline(always)]
fn field<const AT: usize, const N: usize>(record: &[u8; EXIT_SIZE]) -> [u8; N] {
    const { assert!(AT + N <= EXIT_SIZE) };
    let mut value = [0; N];
    value.copy_from_slice(&record[AT..AT + N]);
    value
}

/// Parse one record into an owned [`UnlinkEvent`].
pub fn parse(bytes: &[u8]) -> Result<UnlinkEvent, EventError> {
    let event = parse_ref(bytes)?;
    let mut comm = [0; TASK_COMM_LEN];
    comm.copy_from_slice(event.comm);
    let mut filename = [0; FILENAME_LEN];
    filename[..event.filename.len()].copy_from_slice(event.filename);
    Ok(UnlinkEvent {
        version: VERSION,
        kind: event.kind as u32,
        ts_ns: event.ts_ns,
        pid: event.pid,
        tid: event.tid,
        refcnt: event.refcnt,
        flags: event.flags,
        ret: event.ret,
        comm,
        filename,
        cpu: event.cpu,
        reserved: 0,
    })
}

/// Bytes up to the first NUL, as text (invalid UTF-8 replaced). Valid
/// text, the usual case, is checked by `from_utf8` alone: the lossy
/// decoder's chunking took about a tenth of the reader's instructions.
pub fn c_str(bytes: &[u8]) -> Cow<'_, str> {
    let bytes = std::ffi::CStr::from_bytes_until_nul(bytes).map_or(bytes, |s| s.to_bytes());
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

impl EventRef<'_> {
    pub fn comm_str(&self) -> Cow<'_, str> {
        c_str(self.comm)
    }

    pub fn filename_str(&self) -> Cow<'_, str> {
        c_str(self.filename)
    }

    /// The refcnt, if the probe read one.
    pub fn refcnt(&self) -> Option<i32> {
        (self.flags & HAS_REFCNT != 0).then_some(self.refcnt)
    }
}

impl UnlinkEvent {
    /// The kind; `None` only for a record that did not come from [`parse`].
    pub fn kind(&self) -> Option<EventKind> {
        EventKind::from_u32(self.kind)
    }

    pub fn comm_str(&self) -> Cow<'_, str> {
        c_str(&self.comm)
    }

    pub fn filename_str(&self) -> Cow<'_, str> {
        c_str(&self.filename)
    }

    /// The refcnt, if the probe read one.
    pub fn refcnt(&self) -> Option<i32> {
        (self.flags & HAS_REFCNT != 0).then_some(self.refcnt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut bytes = vec![0u8; SIZE + 4];
        bytes[0..4].copy_from_slice(&VERSION.to_ne_bytes());
        bytes[4..8].copy_from_slice(&1u32.to_ne_bytes());
        bytes[8..16].copy_from_slice(&123_456u64.to_ne_bytes());
        bytes[16..20].copy_from_slice(&4242u32.to_ne_bytes());
        bytes[20..24].copy_from_slice(&4243u32.to_ne_bytes());
        bytes[24..28].copy_from_slice(&1i32.to_ne_bytes());
        bytes[28..32].copy_from_slice(&HAS_REFCNT.to_ne_bytes());
        bytes[32..40].copy_from_slice(&(-2i64).to_ne_bytes());
        bytes[40..42].copy_from_slice(b"rm");
        bytes[64..69].copy_from_slice(b"a.txt");
        bytes
    }

    #[test]
    fn parses_every_field() {
        let event = parse(&sample()).unwrap();
        assert_eq!(event.kind(), Some(EventKind::Entry));
        assert_eq!(event.ts_ns, 123_456);
        assert_eq!((event.pid, event.tid), (4242, 4243));
        assert_eq!(event.refcnt(), Some(1));
        assert_eq!(event.ret, -2);
        assert_eq!(event.comm_str(), "rm");
        assert_eq!(event.filename_str(), "a.txt");
    }

    #[test]
    fn the_borrowed_parse_equals_the_owned_one() {
        let bytes = sample();
        let (owned, borrowed) = (parse(&bytes).unwrap(), parse_ref(&bytes).unwrap());
        assert_eq!(borrowed.kind, EventKind::Entry);
        assert_eq!(
            (borrowed.ts_ns, borrowed.pid, borrowed.tid),
            (owned.ts_ns, owned.pid, owned.tid)
        );
        assert_eq!(
            (borrowed.refcnt(), borrowed.ret),
            (owned.refcnt(), owned.ret)
        );
        assert_eq!(borrowed.comm_str(), owned.comm_str());
        assert_eq!(borrowed.filename_str(), "a.txt");
    }

    #[test]
    fn record_bytes_are_read_exactly_when_parse_ref_reads_them() {
        let mut exit = sample();
        exit[4..8].copy_from_slice(&(EventKind::Exit as u32).to_ne_bytes());
        exit[56..60].copy_from_slice(&3u32.to_ne_bytes());
        let with = |at: usize, byte: u8| {
            let mut bytes = sample();
            bytes[at] = byte;
            bytes
        };
        let cases = [
            sample(),
            sample()[..SIZE].to_vec(),
            sample()[..SIZE - 1].to_vec(),
            exit.clone(),
            exit[..EXIT_SIZE].to_vec(),
            exit[..EXIT_SIZE - 1].to_vec(),
            with(0, 9),
            with(3, 1),
            with(4, 3),
            with(7, 1),
            vec![0; 10],
            Vec::new(),
        ];
        for bytes in cases {
            let (view, parsed) = (EventBytes::new(&bytes), parse_ref(&bytes));
            assert_eq!(view.is_some(), parsed.is_ok(), "{parsed:?}");
            let (Some(view), Ok(parsed)) = (view, parsed) else {
                continue;
            };
            assert_eq!(view.kind(), parsed.kind);
            assert_eq!(
                (view.ts_ns(), view.pid(), view.tid(), view.ret(), view.cpu()),
                (parsed.ts_ns, parsed.pid, parsed.tid, parsed.ret, parsed.cpu)
            );
            let mut ids = [0; 8];
            ids[..4].copy_from_slice(&parsed.pid.to_ne_bytes());
            ids[4..].copy_from_slice(&parsed.tid.to_ne_bytes());
            assert_eq!(view.ids(), u64::from_ne_bytes(ids));
            assert_eq!(&view.comm()[..], parsed.comm);
            assert_eq!(view.filename().map_or(&[][..], |f| &f[..]), parsed.filename);
        }
    }

    #[test]
    fn refcnt_is_absent_without_the_flag() {
        let mut bytes = sample();
        bytes[28..32].copy_from_slice(&0u32.to_ne_bytes());
        assert_eq!(parse(&bytes).unwrap().refcnt(), None);
    }

    #[test]
    fn bad_records_are_errors() {
        let short = |len, need, kind| Err(EventError::TooShort { len, need, kind });
        assert_eq!(parse(&[0; 10]), short(10, EXIT_SIZE, "exit"));
        // An exit is whole without the path; an entry is not.
        let mut exit = sample();
        exit[4..8].copy_from_slice(&(EventKind::Exit as u32).to_ne_bytes());
        let parsed = parse(&exit[..EXIT_SIZE]).unwrap();
        assert_eq!((parsed.ret, parsed.filename_str().as_ref()), (-2, ""));
        assert_eq!(parse(&sample()[..SIZE - 1]), short(SIZE - 1, SIZE, "entry"));
        let mut bytes = sample();
        bytes[0] = 9;
        assert_eq!(parse(&bytes), Err(EventError::Version { found: 9 }));
        let mut bytes = sample();
        bytes[4] = 3;
        assert_eq!(parse(&bytes), Err(EventError::Kind { found: 3 }));
    }

    #[test]
    fn strings_stop_at_nul_and_survive_bad_utf8() {
        let mut bytes = sample();
        bytes[40..44].copy_from_slice(&[b'r', 0xff, 0, b'x']);
        assert_eq!(parse(&bytes).unwrap().comm_str(), "r\u{fffd}");
    }
}
