//! What a compiled program tells the loader and the printers: the maps it
//! uses and the records it writes to the perf ring, with a pure decoder from
//! a record's bytes (or a map entry's) to typed values. Formatting them the
//! way bpftrace does is the printers' job.

use std::ffi::CStr;

use thiserror::Error;

/// How a value is laid out in a record or a map key: integers take 8 bytes
/// (sign- or zero-extended by the program), strings their buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    Int {
        signed: bool,
    },
    /// NUL-padded text of at most `len` bytes.
    Str {
        len: u32,
    },
    /// `strftime(FORMAT, NSECS)`: the u64 `nsecs`, printed in user space
    /// with format `format` of [`crate::Compiled::time_formats`].
    Timestamp {
        format: u32,
    },
    /// `buf()`'s bytes for printf's `%r`: their count as a u64, then at
    /// most `max` bytes.
    Buf {
        max: u32,
    },
    /// `ntop()`'s address: the family as 8 bytes, then 16 bytes of address
    /// in network order (4 used for IPv4). Printed as text.
    Inet,
    /// A stack id or an address, 8 bytes, printed as symbols
    /// ([`crate::symbols::text`]).
    Symbol(crate::symbols::Symbolic),
}

impl ValueType {
    pub fn size(self) -> u32 {
        match self {
            ValueType::Symbol(crate::symbols::Symbolic::Usym) => crate::symbols::USYM_SIZE,
            ValueType::Int { .. } | ValueType::Timestamp { .. } | ValueType::Symbol(_) => 8,
            ValueType::Str { len } => len.next_multiple_of(8),
            ValueType::Inet => INET_SIZE,
            ValueType::Buf { max } => 8 + max.next_multiple_of(8),
        }
    }
}

/// Bytes of an [`ValueType::Inet`].
pub const INET_SIZE: u32 = 24;
/// The families `ntop()` knows (`AF_INET`, `AF_INET6`).
pub const AF_INET: u64 = 2;
pub const AF_INET6: u64 = 10;

/// An `ntop()` address as text, as `inet_ntop` writes it (an unknown
/// family as bpftrace's `ntop` writes it: empty).
pub fn inet_text(raw: &[u8]) -> String {
    let family = raw.first_chunk::<8>().map_or(0, |b| u64::from_ne_bytes(*b));
    let addr = raw.get(8..24).unwrap_or_default();
    match (family, addr.first_chunk::<4>(), addr.first_chunk::<16>()) {
        (AF_INET, Some(v4), _) => std::net::Ipv4Addr::from(*v4).to_string(),
        (AF_INET6, _, Some(v6)) => std::net::Ipv6Addr::from(*v6).to_string(),
        _ => String::new(),
    }
}

/// A decoded value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Int(i64),
    Uint(u64),
    /// The bytes before the first NUL (not necessarily UTF-8: bpftrace
    /// prints the bytes).
    Str(Vec<u8>),
    /// `buf()`'s bytes, NULs included.
    Buf(Vec<u8>),
}

/// A value at an offset in a record or key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub ty: ValueType,
    pub offset: u32,
}

/// What a map holds, which decides how its per-CPU values combine and how
/// bpftrace prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapKind {
    /// `@m = expr`: one value, not per-CPU.
    Assign(ValueType),
    /// `count()`: u64 per CPU, summed.
    Count,
    /// `sum(x)`: u64 per CPU, summed; printed signed when `x` is.
    Sum {
        signed: bool,
    },
    /// `min(x)`/`max(x)`: per CPU `[u64 value, u64 is_set]`, compared and
    /// printed signed when `x` is (bpftrace 0.23).
    Min {
        signed: bool,
    },
    Max {
        signed: bool,
    },
    /// `avg(x)`: per CPU `[u64 total, u64 count]`; bpftrace prints
    /// total/count signed whatever `x`'s sign. `stats(x)` (`stats`) keeps
    /// the same and prints the count and total too.
    Avg {
        stats: bool,
    },
    /// `hist(x)`: the key ends in a u64 bucket (bpftrace's log2 buckets:
    /// 0 for negatives, 1 for 0, `2 + floor(log2 x)` above); value u64 count.
    Hist,
    /// `lhist(x, min, max, step)`: the key ends in a u64 bucket: 0 below
    /// `min`, `1 + (x - min) / step`, `1 + (max - min) / step` at or above
    /// `max`; value u64 count.
    Lhist {
        min: i64,
        max: i64,
        step: i64,
    },
    /// `@m = (a, b)`: one tuple, laid out as [`MapSpec::tuple`] says; not
    /// per-CPU.
    Tuple,
}

/// One map, for the loader to create and the printers to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapSpec {
    /// As written, with the `@` (`@bytes`); also the symbolic name in code.
    pub name: String,
    pub kind: MapKind,
    /// The user's key parts (no bucket), in order.
    pub key: Vec<Slot>,
    /// Bytes of the kernel key (at least 8: a keyless map has a zero key).
    pub key_size: u32,
    pub value_size: u32,
    /// `BPF_MAP_TYPE_PERCPU_HASH` rather than `HASH`.
    pub per_cpu: bool,
    /// A per-CPU array indexed by the bucket instead of a hash
    /// ([`crate::arrays`]): its kernel key is a u32, and a slot of zeros
    /// is an absent entry.
    pub array: bool,
    pub max_entries: u32,
    /// A [`MapKind::Tuple`] value's parts and how they print.
    pub tuple: Option<TupleLayout>,
}

/// A tuple's parts in a map value: `slots` from offset 0, printed as
/// `shape` arranges them (nested tuples in parentheses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TupleLayout {
    pub shape: Shape,
    pub slots: Vec<Slot>,
}

/// Entries a map holds, as bpftrace's default.
pub const MAP_ENTRIES: u32 = 4096;

pub use probes::EVENTS_MAP;

/// What a record in the perf ring means; its first u64 is the index into
/// [`crate::Compiled::events`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventFormat {
    Printf {
        format: String,
        args: Vec<Slot>,
    },
    /// `print(@m)`: print the map now.
    Print {
        map: String,
    },
    /// `print(@m, top, div)`: print the map now, only its last `top`
    /// entries (0: all), values divided by `div` (0: 1).
    PrintTop {
        map: String,
        top: u32,
        div: u32,
    },
    /// `clear(@m)`: delete every entry (BPF cannot iterate a map).
    Clear {
        map: String,
    },
    /// `exit()`: stop tracing, print maps, run END.
    Exit,
    /// `time(FORMAT)`: print the local time when the record is read.
    Time {
        format: String,
    },
    /// `cat(FORMAT, ...)`: the file the formatted text names, read and
    /// printed by the loader when the record arrives.
    Cat {
        format: String,
        args: Vec<Slot>,
    },
    /// `system(FORMAT, ...)` (with `--unsafe`): the formatted command, run
    /// through `/bin/sh -c` by the loader when the record arrives, its
    /// output printed.
    System {
        format: String,
        args: Vec<Slot>,
    },
    /// `join(ARRAY[, DELIM])`'s argument `index` (of [`JOIN_ARGS`], one
    /// record each: the BPF stack holds one at a time): a string. The line
    /// is the arguments before the first empty one, printed at the last.
    JoinArg {
        delimiter: String,
        index: u32,
        args: Vec<Slot>,
    },
    /// `print(expr)` of a value that is not a whole map: the record's
    /// values, shown as `shape` arranges them.
    Value {
        shape: Shape,
        args: Vec<Slot>,
    },
}

/// How `print(expr)` arranges a record's values: a value, a pointer
/// (printed in hex), or a tuple of these in parentheses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// The value at this index of the record's slots.
    Value(usize),
    Pointer(usize),
    Tuple(Vec<Shape>),
}

/// One decoded record. A `strftime()` argument of a printf is its `nsecs`
/// as [`Value::Uint`] ([`crate::report::Records`] prints it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Printf {
        format: String,
        args: Vec<Value>,
    },
    Print {
        map: String,
    },
    PrintTop {
        map: String,
        top: u32,
        div: u32,
    },
    Clear {
        map: String,
    },
    Exit,
    Time {
        format: String,
    },
    Value {
        shape: Shape,
        args: Vec<Value>,
    },
    Cat {
        format: String,
        args: Vec<Value>,
    },
    System {
        format: String,
        args: Vec<Value>,
    },
    JoinArg {
        delimiter: String,
        index: u32,
        arg: Vec<u8>,
    },
}

/// Arguments `join()` reads (bpftrace's `join_argnum`).
pub const JOIN_ARGS: u32 = 16;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("record of {0} bytes is shorter than its header")]
    Short(usize),
    #[error("record names event {0}, which this program does not have")]
    UnknownEvent(u64),
    #[error("record of {len} bytes ends before its value at {offset}")]
    Truncated { len: usize, offset: u32 },
}

/// A slot's value, its string borrowed from the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueRef<'a> {
    Int(i64),
    Uint(u64),
    Str(&'a [u8]),
    /// `strftime()`'s `nsecs`, and its format's index.
    Timestamp {
        format: u32,
        nsecs: u64,
    },
    /// An [`ValueType::Inet`]'s bytes, for [`inet_text`].
    Inet(&'a [u8]),
    /// A [`ValueType::Symbol`]'s number, for [`crate::symbols::text_in`],
    /// and the process a `usym()` was taken in (0 for the others).
    Symbol {
        kind: crate::symbols::Symbolic,
        raw: u64,
        pid: u32,
    },
    /// A [`ValueType::Buf`]'s bytes.
    Buf(&'a [u8]),
}

/// The value at `slot` in `bytes`.
pub fn slot_value<'a>(bytes: &'a [u8], slot: &Slot) -> Result<ValueRef<'a>, DecodeError> {
    let start = slot.offset as usize;
    let truncated = DecodeError::Truncated {
        len: bytes.len(),
        offset: slot.offset,
    };
    let word = || -> Result<u64, DecodeError> {
        let word: [u8; 8] = bytes
            .get(start..start + 8)
            .and_then(|b| b.try_into().ok())
            .ok_or(truncated.clone())?;
        Ok(u64::from_ne_bytes(word))
    };
    match slot.ty {
        ValueType::Int { signed } => {
            let n = word()?;
            Ok(if signed {
                ValueRef::Int(n as i64)
            } else {
                ValueRef::Uint(n)
            })
        }
        ValueType::Timestamp { format } => Ok(ValueRef::Timestamp {
            format,
            nsecs: word()?,
        }),
        ValueType::Str { len } => {
            let text = bytes.get(start..start + len as usize).ok_or(truncated)?;
            // memchr finds the NUL a word at a time; byte by byte it was
            // a tenth of a printf record's instructions.
            let text = CStr::from_bytes_until_nul(text).map_or(text, CStr::to_bytes);
            Ok(ValueRef::Str(text))
        }
        ValueType::Inet => bytes
            .get(start..start + INET_SIZE as usize)
            .map(ValueRef::Inet)
            .ok_or(truncated),
        ValueType::Symbol(kind) => {
            let pid = match kind {
                crate::symbols::Symbolic::Usym => bytes
                    .get(start + 8..start + 12)
                    .and_then(|b| b.try_into().ok())
                    .map(u32::from_ne_bytes)
                    .ok_or(truncated.clone())?,
                _ => 0,
            };
            Ok(ValueRef::Symbol {
                kind,
                raw: word()?,
                pid,
            })
        }
        ValueType::Buf { max } => {
            let len = word()?.min(u64::from(max)) as usize;
            bytes
                .get(start + 8..start + 8 + len)
                .map(ValueRef::Buf)
                .ok_or(truncated)
        }
    }
}

/// The values at `slots` in `bytes`.
pub fn decode_slots(bytes: &[u8], slots: &[Slot]) -> Result<Vec<Value>, DecodeError> {
    slots
        .iter()
        .map(|slot| {
            Ok(match slot_value(bytes, slot)? {
                ValueRef::Int(n) => Value::Int(n),
                ValueRef::Uint(n) | ValueRef::Timestamp { nsecs: n, .. } => Value::Uint(n),
                ValueRef::Str(s) => Value::Str(s.to_vec()),
                ValueRef::Inet(raw) => Value::Str(inet_text(raw).into_bytes()),
                ValueRef::Symbol { kind, raw, pid } => {
                    Value::Str(crate::symbols::text_in(kind, raw, pid))
                }
                ValueRef::Buf(bytes) => Value::Buf(bytes.to_vec()),
            })
        })
        .collect()
}

/// The format of the event a perf record names.
pub fn event_format<'a>(
    events: &'a [EventFormat],
    record: &[u8],
) -> Result<&'a EventFormat, DecodeError> {
    let header: [u8; 8] = record
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or(DecodeError::Short(record.len()))?;
    let id = u64::from_ne_bytes(header);
    usize::try_from(id)
        .ok()
        .and_then(|i| events.get(i))
        .ok_or(DecodeError::UnknownEvent(id))
}

impl EventFormat {
    /// The event of a format that carries no values (all but printf).
    pub fn valueless(&self) -> Option<Event> {
        Some(match self {
            EventFormat::Printf { .. }
            | EventFormat::Value { .. }
            | EventFormat::Cat { .. }
            | EventFormat::System { .. }
            | EventFormat::JoinArg { .. } => {
                return None;
            }
            EventFormat::Print { map } => Event::Print { map: map.clone() },
            EventFormat::PrintTop { map, top, div } => Event::PrintTop {
                map: map.clone(),
                top: *top,
                div: *div,
            },
            EventFormat::Clear { map } => Event::Clear { map: map.clone() },
            EventFormat::Exit => Event::Exit,
            EventFormat::Time { format } => Event::Time {
                format: format.clone(),
            },
        })
    }
}

/// Decode one perf record against the program's event table.
pub fn decode_event(events: &[EventFormat], record: &[u8]) -> Result<Event, DecodeError> {
    let format = event_format(events, record)?;
    Ok(match format {
        EventFormat::Printf { format, args } => Event::Printf {
            format: format.clone(),
            args: decode_slots(record, args)?,
        },
        EventFormat::JoinArg {
            delimiter,
            index,
            args,
        } => Event::JoinArg {
            delimiter: delimiter.clone(),
            index: *index,
            arg: match decode_slots(record, args)?.pop() {
                Some(Value::Str(s)) => s,
                _ => Vec::new(),
            },
        },
        EventFormat::Cat { format, args } => Event::Cat {
            format: format.clone(),
            args: decode_slots(record, args)?,
        },
        EventFormat::System { format, args } => Event::System {
            format: format.clone(),
            args: decode_slots(record, args)?,
        },
        EventFormat::Value { shape, args } => Event::Value {
            shape: shape.clone(),
            args: decode_slots(record, args)?,
        },
        other => other.valueless().unwrap_or(Event::Exit),
    })
}

/// A map's value for one key, its per-CPU values combined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapValue {
    Value(Value),
    /// A [`MapKind::Tuple`]'s parts, in its layout's slot order.
    Tuple(Vec<Value>),
    Count(u64),
    Sum(i64),
    /// As `x`'s type: signed values sign-extended. `None` when no CPU set
    /// it.
    Min(Option<u64>),
    Max(Option<u64>),
    Avg {
        sum: i64,
        count: u64,
    },
}

impl MapSpec {
    /// `BPF_MAP_TYPE_HASH`, `PERCPU_HASH` or `PERCPU_ARRAY`; a stack map
    /// (named by [`crate::symbols::stack_map_name`]) is a `STACK_TRACE`.
    pub fn map_type(&self) -> u32 {
        use kernel_headers::bpf::map_type;
        if crate::symbols::stack_map_limit(&self.name).is_some() {
            map_type::STACK_TRACE
        } else if self.array {
            map_type::PERCPU_ARRAY
        } else if self.per_cpu {
            map_type::PERCPU_HASH
        } else {
            map_type::HASH
        }
    }

    /// Bytes of the kernel map's key: an array's index is a u32, the
    /// program's key (`key_size`) a u64 bucket.
    pub fn kernel_key_size(&self) -> u32 {
        if self.array { 4 } else { self.key_size }
    }

    /// The program's key as the kernel map takes it.
    pub fn kernel_key(&self, key: &[u8]) -> Vec<u8> {
        match (self.array, key.first_chunk::<8>()) {
            (true, Some(bucket)) => (u64::from_ne_bytes(*bucket) as u32).to_ne_bytes().to_vec(),
            _ => key.to_vec(),
        }
    }

    /// A kernel map's key as the program builds it.
    pub fn program_key(&self, key: &[u8]) -> Vec<u8> {
        match (self.array, key.first_chunk::<4>()) {
            (true, Some(index)) => u64::from(u32::from_ne_bytes(*index)).to_ne_bytes().to_vec(),
            _ => key.to_vec(),
        }
    }

    /// Whether an entry read from the kernel (every CPU's value) is in the
    /// map: an array's slot of zeros is not.
    pub fn present<V: AsRef<[u8]>>(&self, per_cpu: &[V]) -> bool {
        !self.array || per_cpu.iter().any(|v| v.as_ref().iter().any(|&b| b != 0))
    }

    /// The user's key values of a kernel key.
    pub fn decode_key(&self, key: &[u8]) -> Result<Vec<Value>, DecodeError> {
        decode_slots(key, &self.key)
    }

    /// The histogram bucket a `hist`/`lhist` key ends in.
    pub fn bucket(&self, key: &[u8]) -> Result<u64, DecodeError> {
        let offset = self.key_size - 8;
        match decode_slots(
            key,
            &[Slot {
                ty: ValueType::Int { signed: false },
                offset,
            }],
        )?[..]
        {
            [Value::Uint(b)] => Ok(b),
            _ => Err(DecodeError::Short(key.len())),
        }
    }

    /// Combine the value of one key as read from each CPU (one slice for a
    /// map that is not per-CPU). Histograms combine as counts.
    pub fn combine(&self, per_cpu: &[&[u8]]) -> Result<MapValue, DecodeError> {
        let int = |b: &[u8], offset| -> Result<u64, DecodeError> {
            match decode_slots(
                b,
                &[Slot {
                    ty: ValueType::Int { signed: false },
                    offset,
                }],
            )?[..]
            {
                [Value::Uint(n)] => Ok(n),
                _ => Err(DecodeError::Short(b.len())),
            }
        };
        let mut total: u64 = 0;
        let mut second: u64 = 0;
        let mut min_max: Vec<(u64, u64)> = Vec::new();
        for b in per_cpu {
            match self.kind {
                MapKind::Assign(ty) => {
                    let value = decode_slots(b, &[Slot { ty, offset: 0 }])?;
                    return Ok(MapValue::Value(
                        value.into_iter().next().unwrap_or(Value::Uint(0)),
                    ));
                }
                MapKind::Tuple => {
                    let slots = self.tuple.as_ref().map_or(&[][..], |t| &t.slots[..]);
                    return Ok(MapValue::Tuple(decode_slots(b, slots)?));
                }
                MapKind::Count | MapKind::Sum { .. } | MapKind::Hist | MapKind::Lhist { .. } => {
                    total = total.wrapping_add(int(b, 0)?)
                }
                MapKind::Avg { .. } => {
                    total = total.wrapping_add(int(b, 0)?);
                    second = second.wrapping_add(int(b, 8)?);
                }
                MapKind::Min { .. } | MapKind::Max { .. } => {
                    min_max.push((int(b, 0)?, int(b, 8)?));
                }
            }
        }
        let any_set = min_max.iter().any(|&(_, is_set)| is_set as u32 != 0);
        let min_max = |signed, is_max| {
            any_set.then(|| crate::format::combine_min_max(&min_max, signed, is_max))
        };
        Ok(match self.kind {
            MapKind::Sum { .. } => MapValue::Sum(total as i64),
            MapKind::Avg { .. } => MapValue::Avg {
                sum: total as i64,
                count: second,
            },
            MapKind::Min { signed } => MapValue::Min(min_max(signed, false)),
            MapKind::Max { signed } => MapValue::Max(min_max(signed, true)),
            _ => MapValue::Count(total),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: MapKind) -> MapSpec {
        MapSpec {
            name: "@m".into(),
            kind,
            key: vec![Slot {
                ty: ValueType::Str { len: 16 },
                offset: 0,
            }],
            key_size: 16,
            value_size: 16,
            per_cpu: true,
            array: false,
            max_entries: MAP_ENTRIES,
            tuple: None,
        }
    }

    fn words(values: &[u64]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_ne_bytes()).collect()
    }

    #[test]
    fn per_cpu_values_combine_as_bpftrace_prints_them() {
        let cpu0 = words(&[5, 1]);
        let cpu1 = words(&[(-3i64) as u64, 1]);
        let unset = words(&[0, 0]);
        let all: [&[u8]; 3] = [&cpu0, &cpu1, &unset];
        assert_eq!(
            spec(MapKind::Min { signed: true }).combine(&all),
            Ok(MapValue::Min(Some(-3i64 as u64)))
        );
        assert_eq!(
            spec(MapKind::Max { signed: true }).combine(&all),
            Ok(MapValue::Max(Some(5)))
        );
        assert_eq!(
            spec(MapKind::Max { signed: false }).combine(&all),
            Ok(MapValue::Max(Some(-3i64 as u64)))
        );
        assert_eq!(
            spec(MapKind::Max { signed: true }).combine(&[&unset]),
            Ok(MapValue::Max(None))
        );
        assert_eq!(
            spec(MapKind::Avg { stats: false }).combine(&all),
            Ok(MapValue::Avg { sum: 2, count: 2 })
        );
        assert_eq!(spec(MapKind::Count).combine(&all), Ok(MapValue::Count(2)));
        let mut key = b"bash".to_vec();
        key.resize(16, 0);
        assert_eq!(
            spec(MapKind::Count).decode_key(&key),
            Ok(vec![Value::Str("bash".into())])
        );
    }

    #[test]
    fn records_decode_against_the_table() {
        let events = [
            EventFormat::Exit,
            EventFormat::Printf {
                format: "%d %s\n".into(),
                args: vec![
                    Slot {
                        ty: ValueType::Int { signed: true },
                        offset: 8,
                    },
                    Slot {
                        ty: ValueType::Str { len: 8 },
                        offset: 16,
                    },
                ],
            },
        ];
        let mut record = words(&[1, (-2i64) as u64]);
        record.extend_from_slice(b"ok\0\0\0\0\0\0");
        assert_eq!(
            decode_event(&events, &record),
            Ok(Event::Printf {
                format: "%d %s\n".into(),
                args: vec![Value::Int(-2), Value::Str("ok".into())],
            })
        );
        assert_eq!(decode_event(&events, &words(&[0])), Ok(Event::Exit));
        assert_eq!(
            decode_event(&events, &words(&[7])),
            Err(DecodeError::UnknownEvent(7))
        );
        assert_eq!(decode_event(&events, &[1, 0]), Err(DecodeError::Short(2)));
        assert_eq!(
            decode_event(&events, &record[..20]),
            Err(DecodeError::Truncated {
                len: 20,
                offset: 16
            })
        );
    }
}
