//! Perf ring and BPF ring buffer records, parsed from bytes with no
//! wrap-around (a perf ring's copied out by `sys::PerfRing::drain_into`;
//! the ring buffer's read in place, its data mapped twice in a row, by
//! `sys::BpfRing::drain_with`), so this part is pure and tested without a
//! kernel.

use std::mem::offset_of;

use kernel_headers::bpf::ringbuf;

use kernel_headers::perf::{
    PERF_EVENT_HEADER_SIZE, PERF_RECORD_LOST, PERF_RECORD_SAMPLE, PerfEventHeader,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record<'a> {
    /// A PERF_SAMPLE_RAW sample: what the program passed to `perf_event_output`.
    /// The kernel pads it to 8 bytes, so it may be longer than what was written.
    Sample(&'a [u8]),
    /// The kernel dropped this many samples because the ring was full.
    Lost(u64),
    /// Any other record type, skipped.
    Other(u32),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RingError {
    #[error("ring buffer record at byte {at} is cut short ({left} bytes left, header says {size})")]
    RingTruncated { at: usize, left: usize, size: usize },
    #[error("perf ring record at byte {at} is cut short ({left} bytes left, header says {size})")]
    Truncated { at: usize, left: usize, size: usize },
    #[error("perf ring record at byte {at} has impossible size {size}")]
    BadSize { at: usize, size: usize },
}

#[inline(always)]
fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

#[inline(always)]
fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

#[inline(always)]
fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

/// The `perf_event_header` at `at`, field by field from the uapi struct.
#[inline(always)]
fn header_at(bytes: &[u8], at: usize) -> Option<PerfEventHeader> {
    Some(PerfEventHeader {
        type_: u32_at(bytes, at + offset_of!(PerfEventHeader, type_))?,
        misc: u16_at(bytes, at + offset_of!(PerfEventHeader, misc))?,
        size: u16_at(bytes, at + offset_of!(PerfEventHeader, size))?,
    })
}

/// Iterates the perf records in `bytes`, which holds whole records back
/// to back.
pub fn records(bytes: &[u8]) -> Records<'_> {
    Records {
        bytes,
        at: 0,
        layout: Layout::Perf,
    }
}

fn parse_one(bytes: &[u8], at: usize, left: usize) -> Result<(Record<'_>, usize), RingError> {
    let header = header_at(bytes, at).ok_or(RingError::Truncated {
        at,
        left,
        size: PERF_EVENT_HEADER_SIZE,
    })?;
    let size = usize::from(header.size);
    if size < PERF_EVENT_HEADER_SIZE {
        return Err(RingError::BadSize { at, size });
    }
    if size > left {
        return Err(RingError::Truncated { at, left, size });
    }
    let body = &bytes[at + PERF_EVENT_HEADER_SIZE..at + size];
    let record = match header.type_ {
        PERF_RECORD_SAMPLE => {
            let len = u32_at(body, 0).ok_or(RingError::BadSize { at, size })? as usize;
            let data = body
                .get(4..4 + len)
                .ok_or(RingError::BadSize { at, size })?;
            Record::Sample(data)
        }
        // Body: u64 id, u64 lost.
        PERF_RECORD_LOST => Record::Lost(u64_at(body, 8).ok_or(RingError::BadSize { at, size })?),
        other => Record::Other(other),
    };
    Ok((record, size))
}

/// Iterates the ring buffer records in `bytes` (each an 8-byte header and
/// its data, 8-aligned, all committed): `Sample` for each record, `Other`
/// for one the program discarded.
pub fn ring_buffer_records(bytes: &[u8]) -> Records<'_> {
    Records {
        bytes,
        at: 0,
        layout: Layout::RingBuffer,
    }
}

/// The records of [`records`] or [`ring_buffer_records`]. The reader's
/// loop is [`Records::try_each`]: through `iter::from_fn` each record was
/// a call (at opt-level "z") returning a 32-byte `Option<Result<..>>`
/// through memory.
#[derive(Debug, Clone)]
pub struct Records<'a> {
    bytes: &'a [u8],
    /// The next record's header; past the end after an error.
    at: usize,
    layout: Layout,
}

/// How records are laid out.
#[derive(Debug, Clone, Copy)]
enum Layout {
    /// A perf ring's: `perf_event_header` and the record's body.
    Perf,
    /// The BPF ring buffer's: an 8-byte header and the data, 8-aligned.
    RingBuffer,
}

impl<'a> Records<'a> {
    /// The record at `at`, and where the next one starts; `None` at the
    /// end (or past it), `Some(None)` for a bad record (see `error`).
    #[inline(always)]
    fn at(&self, at: usize) -> Option<Option<(Record<'a>, usize)>> {
        let bytes = self.bytes;
        if at >= bytes.len() {
            return None;
        }
        let rest = bytes.get(at..)?;
        Some(match self.layout {
            Layout::Perf => perf_record(rest).map(|(record, size)| (record, at + size)),
            Layout::RingBuffer => {
                ring_buffer_record(rest).map(|(record, size)| (record, at + size))
            }
        })
    }

    /// The error of the bad record at `at`.
    #[cold]
    #[inline(never)]
    fn error(&self, at: usize) -> RingError {
        let left = self.bytes.len().saturating_sub(at);
        let parsed = match self.layout {
            Layout::Perf => parse_one(self.bytes, at, left),
            Layout::RingBuffer => parse_ring_buffer_one(self.bytes, at, left),
        };
        match parsed {
            Err(err) => err,
            Ok(_) => RingError::RingTruncated {
                at,
                left,
                size: ringbuf::HDR_SZ,
            },
        }
    }

    /// Hands `each` the records in turn, stopping at the first error:
    /// `each`'s, or a bad record (its [`RingError`] made into an `E` by
    /// `cut`). Nothing per record goes through memory: the loop and
    /// `each` are inlined into the caller, the error made apart.
    #[inline(always)]
    pub fn try_each<E>(
        self,
        mut each: impl FnMut(Record<'a>) -> Result<(), E>,
        cut: impl FnOnce(RingError) -> E,
    ) -> Result<(), E> {
        let mut at = self.at;
        while let Some(whole) = self.at(at) {
            let Some((record, next)) = whole else {
                return Err(cut(self.error(at)));
            };
            at = next;
            each(record)?;
        }
        Ok(())
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>, RingError>;

    fn next(&mut self) -> Option<Self::Item> {
        let Some((record, next)) = self.at(self.at)? else {
            let err = self.error(self.at);
            self.at = usize::MAX;
            return Some(Err(err));
        };
        self.at = next;
        Some(Ok(record))
    }
}

/// The perf record `rest` starts with and its size; `None` if it is bad
/// (`parse_one` says how).
#[inline(always)]
fn perf_record(rest: &[u8]) -> Option<(Record<'_>, usize)> {
    let header = header_at(rest, 0)?;
    let size = usize::from(header.size);
    let body = rest.get(PERF_EVENT_HEADER_SIZE..size)?;
    let record = match header.type_ {
        PERF_RECORD_SAMPLE => {
            let len = u32_at(body, 0)? as usize;
            Record::Sample(body.get(4..4 + len)?)
        }
        // Body: u64 id, u64 lost.
        PERF_RECORD_LOST => Record::Lost(u64_at(body, 8)?),
        other => Record::Other(other),
    };
    Some((record, size))
}

/// The ring buffer record `rest` starts with and its size, padding
/// included; `None` if it is cut short.
#[inline(always)]
fn ring_buffer_record(rest: &[u8]) -> Option<(Record<'_>, usize)> {
    let (header, after) = rest.split_first_chunk::<{ ringbuf::HDR_SZ }>()?;
    let header = u32::from_ne_bytes(*header.first_chunk::<4>()?);
    let len = (header & !(ringbuf::BUSY_BIT | ringbuf::DISCARD_BIT)) as usize;
    let data = after.get(..len)?;
    let record = if header & ringbuf::DISCARD_BIT != 0 {
        Record::Other(header)
    } else {
        Record::Sample(data)
    };
    // Records start 8-aligned: the next one too.
    const { assert!(ringbuf::HDR_SZ.is_multiple_of(8)) };
    Some((record, (ringbuf::HDR_SZ + len + 7) & !7))
}

fn parse_ring_buffer_one(
    bytes: &[u8],
    at: usize,
    left: usize,
) -> Result<(Record<'_>, usize), RingError> {
    let size = ringbuf::HDR_SZ;
    let header = u32_at(bytes, at).ok_or(RingError::RingTruncated { at, left, size })?;
    let len = (header & !(ringbuf::BUSY_BIT | ringbuf::DISCARD_BIT)) as usize;
    let size = ringbuf::HDR_SZ + len;
    if size > left {
        return Err(RingError::RingTruncated { at, left, size });
    }
    let record = if header & ringbuf::DISCARD_BIT != 0 {
        Record::Other(header)
    } else {
        Record::Sample(&bytes[at + ringbuf::HDR_SZ..at + size])
    };
    Ok((record, size.next_multiple_of(8)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(type_: u32, size: u16) -> Vec<u8> {
        let mut out = vec![0; PERF_EVENT_HEADER_SIZE];
        let type_at = offset_of!(PerfEventHeader, type_);
        out[type_at..type_at + 4].copy_from_slice(&type_.to_ne_bytes());
        let size_at = offset_of!(PerfEventHeader, size);
        out[size_at..size_at + 2].copy_from_slice(&size.to_ne_bytes());
        out
    }

    fn sample(data: &[u8]) -> Vec<u8> {
        // header + u32 size + data, padded to 8 as the kernel does.
        let raw = 4 + data.len();
        let padded = raw.div_ceil(8) * 8;
        let mut out = header(PERF_RECORD_SAMPLE, (8 + padded) as u16);
        out.extend_from_slice(&((padded - 4) as u32).to_ne_bytes());
        out.extend_from_slice(data);
        out.resize(8 + padded, 0);
        out
    }

    #[test]
    fn samples_lost_and_others() {
        let mut bytes = sample(b"hello");
        let mut lost = header(PERF_RECORD_LOST, 24);
        lost.extend_from_slice(&7u64.to_ne_bytes());
        lost.extend_from_slice(&42u64.to_ne_bytes());
        bytes.extend(lost);
        bytes.extend(header(99, 8));
        let got: Vec<_> = records(&bytes).collect::<Result<_, _>>().unwrap();
        assert_eq!(got.len(), 3);
        let Record::Sample(data) = got[0] else {
            panic!("{got:?}")
        };
        assert_eq!(&data[..5], b"hello");
        assert_eq!(got[1], Record::Lost(42));
        assert_eq!(got[2], Record::Other(99));
    }

    #[test]
    fn truncated_and_bad_records_are_errors() {
        let bytes = sample(b"hello");
        let err = records(&bytes[..bytes.len() - 1])
            .next()
            .unwrap()
            .unwrap_err();
        assert!(matches!(err, RingError::Truncated { at: 0, .. }), "{err}");
        let err = records(&header(PERF_RECORD_SAMPLE, 4))
            .next()
            .unwrap()
            .unwrap_err();
        assert_eq!(err, RingError::BadSize { at: 0, size: 4 });
        // A bad record ends the iteration instead of looping.
        assert_eq!(records(&header(PERF_RECORD_SAMPLE, 4)).count(), 1);
        // `try_each` hands over the records before it, then its error.
        let mut two = sample(b"hi");
        two.extend(&bytes[..bytes.len() - 1]);
        let mut got = Vec::new();
        let walked = records(&two).try_each(
            |record| {
                got.push(record);
                Ok(())
            },
            |cut| cut,
        );
        assert!(matches!(got[..], [Record::Sample(b"hi\0\0")]), "{got:?}");
        assert!(
            matches!(walked, Err(RingError::Truncated { at: 16, .. })),
            "{walked:?}"
        );
    }

    fn ring_record(header: u32, data: &[u8]) -> Vec<u8> {
        let mut out = header.to_ne_bytes().to_vec();
        out.extend_from_slice(&0u32.to_ne_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().next_multiple_of(8), 0);
        out
    }

    #[test]
    fn ring_buffer_records_skip_discarded_ones_and_padding() {
        let mut bytes = ring_record(5, b"hello");
        bytes.extend(ring_record(3 | ringbuf::DISCARD_BIT, b"bye"));
        bytes.extend(ring_record(8, b"12345678"));
        let got: Vec<_> = ring_buffer_records(&bytes)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            got,
            [
                Record::Sample(b"hello"),
                Record::Other(3 | ringbuf::DISCARD_BIT),
                Record::Sample(b"12345678"),
            ]
        );
        let err = ring_buffer_records(&bytes[..12])
            .next()
            .unwrap()
            .unwrap_err();
        assert_eq!(
            err,
            RingError::RingTruncated {
                at: 0,
                left: 12,
                size: 13
            }
        );
        assert_eq!(ring_buffer_records(&bytes[..12]).count(), 1);
    }

    /// What `try_each` hands over: the records, then the error if any.
    fn each(bytes: &[u8]) -> (Vec<Record<'_>>, Option<RingError>) {
        let mut got = Vec::new();
        let walked = ring_buffer_records(bytes).try_each(
            |record| {
                got.push(record);
                Ok(())
            },
            |cut| cut,
        );
        (got, walked.err())
    }

    #[test]
    fn try_each_hands_over_what_the_iterator_yields() {
        let mut bytes = ring_record(5, b"hello");
        bytes.extend(ring_record(3 | ringbuf::DISCARD_BIT, b"bye"));
        bytes.extend(ring_record(0, b""));
        bytes.extend(ring_record(8, b"12345678"));
        // Whole, cut in a header, in a record, in its padding, and empty.
        for end in [bytes.len(), 44, 36, 13, 12, 4, 0] {
            let cut = &bytes[..end];
            let iterated: Vec<_> = ring_buffer_records(cut).collect();
            let (got, err) = each(cut);
            let mut want: Vec<_> = got.into_iter().map(Ok).collect();
            want.extend(err.map(Err));
            assert_eq!(want, iterated, "{end}");
        }
        assert_eq!(each(&bytes).0.len(), 4);
        // A discarded record cut short is an error too.
        let discarded = ring_record(9 | ringbuf::DISCARD_BIT, b"x");
        assert!(matches!(
            each(&discarded).1,
            Some(RingError::RingTruncated { at: 0, .. })
        ));
        // `each`'s error stops the walk.
        let mut seen = 0;
        let walked = ring_buffer_records(&bytes).try_each(
            |_| {
                seen += 1;
                Err(None)
            },
            Some,
        );
        assert_eq!((walked, seen), (Err(None), 1));
    }
}
