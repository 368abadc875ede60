//! From what the programs wrote to what bpftrace 0.23 prints: joins
//! [`crate::output`] (records and map entries as the kernel holds them) to
//! [`crate::format`] (bpftrace's text and JSON). Pure: the loader reads the
//! perf ring and the maps, these functions give the bytes to write.
//!
//! The loader:
//! - for each perf record calls [`Records::record`] (for the events BEGIN,
//!   END and timer blocks emit, [`Records::event`]) and acts on the
//!   [`Step`]: write
//!   the bytes, print a map now ([`print_map`] with its entries), clear a
//!   map (delete every key), or stop;
//! - at exit (END, `exit()`, Ctrl-C, `-c` ending, `--duration`) runs END's
//!   events, then writes [`exit_maps`] of every map of
//!   [`crate::Compiled::maps`], each with all its entries.
//!
//! Entries are `(key bytes, per-CPU value bytes)`: one value slice per
//! possible CPU for a per-CPU map ([`MapSpec::per_cpu`]), one slice
//! otherwise. A `count()` map without keys is a hash map here where
//! bpftrace has an array, so it may have no entry: the printers show it as
//! `@c: 0`, as bpftrace does, and the loader has nothing to add.

use std::collections::HashMap;

use thiserror::Error;

use crate::Compiled;
use crate::format::time::{Clock, FixedClock};
use crate::format::{
    self, AvgState, FormatError, FormatString, HistParams, Key, KeyPart, LhistError, LhistParams,
    MapValues, Printed,
};
use crate::output::{
    DecodeError, Event, EventFormat, MapKind, MapSpec, MapValue, Shape, Value, ValueRef, ValueType,
    decode_event, event_format, slot_value,
};

/// `--format text|json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// One map's contents as the loader reads them: `(key, per-CPU values)`.
pub type Entries = [(Vec<u8>, Vec<Vec<u8>>)];

/// What an event asks of the loader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Write these bytes to the output.
    Write(Vec<u8>),
    /// Print this map now: [`print_map`] with its entries at this moment.
    PrintMap(String),
    /// `print(@m, top, div)`: the map now, its last `top` entries, values
    /// divided by `div` ([`print_map_top`]).
    PrintMapTop { map: String, top: u32, div: u32 },
    /// Delete every entry of this map.
    ClearMap(String),
    /// `cat()`: print the file at this path ([`cat`] with what it holds,
    /// at most [`MAX_CAT_BYTES`]; bpftrace's error line when it cannot be
    /// read).
    Cat(Vec<u8>),
    /// `system()`: run this command with `/bin/sh -c` and print its
    /// standard output ([`system`] with what it printed).
    System(Vec<u8>),
    /// Stop tracing: detach, run END, print [`exit_maps`].
    Exit,
}

/// The most of a file `cat()` prints (bpftrace's `max_cat_bytes`).
pub const MAX_CAT_BYTES: usize = 10240;

/// What `cat()` prints of a file's contents: the bytes as they are (no
/// newline added), or `{"type": "cat", "data": "..."}` in JSON.
pub fn cat(format: Format, contents: &[u8]) -> Vec<u8> {
    match format {
        Format::Text => contents.to_vec(),
        Format::Json => format::json::message("cat", contents),
    }
}

/// What `system()` prints of its command's output: the bytes as they are,
/// or `{"type": "syscall", "data": "..."}` in JSON (bpftrace's name).
pub fn system(format: Format, output: &[u8]) -> Vec<u8> {
    match format {
        Format::Text => output.to_vec(),
        Format::Json => format::json::message("syscall", output),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReportError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("`{map}`: {source}")]
    Lhist { map: String, source: LhistError },
    #[error("`{map}` holds histogram bucket {bucket}, beyond its {slots} buckets")]
    Bucket {
        map: String,
        bucket: u64,
        slots: usize,
    },
    #[error("`{map}` is not a map of this program")]
    UnknownMap { map: String },
}

/// One perf record's output or request; [`Records`] for a stream of them.
/// The clock stands at the epoch in UTC.
pub fn record(compiled: &Compiled, format: Format, record: &[u8]) -> Result<Step, ReportError> {
    let mut out = Vec::new();
    Ok(Records::new(compiled, format, &FixedClock::default())
        .record(record, &mut out)?
        .unwrap_or(Step::Write(out)))
}

/// A slot's value as the formatter takes it; a timestamp is formatted
/// apart (see [`Records::timestamps`]) and stands here as its `nsecs`.
fn arg(value: ValueRef<'_>) -> format::Arg<'_> {
    match value {
        ValueRef::Int(n) => format::Arg::Signed(n),
        ValueRef::Uint(n) | ValueRef::Timestamp { nsecs: n, .. } => format::Arg::Unsigned(n),
        ValueRef::Str(s) => format::Arg::Str(s),
        ValueRef::Inet(raw) => format::Arg::Inet(raw),
        ValueRef::Symbol { raw, .. } => format::Arg::Unsigned(raw),
        ValueRef::Buf(bytes) => format::Arg::Buf(bytes),
    }
}

/// A program's records, each printf's format string parsed once and its
/// arguments kept on the stack: under a storm of records, parsing it again
/// and the half-dozen allocations per record cost more than the formatting
/// (with musl's allocator, most of `nobtf trace`'s CPU). A printf, nearly
/// every record of a busy trace, is formatted from the record's own bytes:
/// no decoded copy of its format and strings.
#[derive(Debug)]
pub struct Records<'a> {
    compiled: &'a Compiled,
    format: Format,
    /// `time()` and `strftime()`'s time and zone.
    clock: &'a dyn Clock,
    /// By event id: the printf events' format strings, parsed.
    printfs: Vec<Option<FormatString>>,
    /// A JSON printf's text, before it is quoted.
    text: Vec<u8>,
    /// The `join()` line so far, and whether an empty argument ended it.
    joined: Vec<u8>,
    join_ended: bool,
    /// `max_strlen` (NUL included): a printf string this long is marked
    /// as truncated.
    max_strlen: usize,
}

/// What bpftrace 0.23 appends to a printf string argument it takes as
/// truncated (its `str_trunc_trailer` default).
const TRUNCATION_TRAILER: &[u8] = b"..";

/// Arguments of a printf kept on the stack; more take a `Vec`.
const STACK_ARGS: usize = 8;

impl<'a> Records<'a> {
    pub fn new(compiled: &'a Compiled, format: Format, clock: &'a dyn Clock) -> Records<'a> {
        let printfs = compiled
            .events
            .iter()
            .map(|event| match event {
                EventFormat::Printf { format, .. } => Some(FormatString::parse(format)),
                _ => None,
            })
            .collect();
        Records {
            compiled,
            format,
            clock,
            printfs,
            text: Vec::new(),
            joined: Vec::new(),
            join_ended: false,
            max_strlen: compiled.config.max_strlen.unwrap_or(crate::check::STR_LEN) as usize,
        }
    }

    /// A perf record's output appended to `out` (then `None`), or what it
    /// asks of the loader.
    pub fn record(
        &mut self,
        record: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<Option<Step>, ReportError> {
        let event = event_format(&self.compiled.events, record)?;
        let (EventFormat::Printf { args: slots, .. }, Some(Some(parsed))) =
            (event, self.printfs.get(event_id(record)))
        else {
            let event = decode_event(&self.compiled.events, record)?;
            if let Event::JoinArg {
                delimiter,
                index,
                arg,
            } = &event
            {
                self.join_arg(delimiter, *index, arg, out);
                return Ok(None);
            }
            return match self.event(&event)? {
                Step::Write(bytes) => {
                    out.extend_from_slice(&bytes);
                    Ok(None)
                }
                step => Ok(Some(step)),
            };
        };
        let texts = self.timestamps(record, slots)?;
        let mut stack = [format::Arg::Unsigned(0); STACK_ARGS];
        let mut heap: Vec<format::Arg<'_>>;
        let args = match stack.get_mut(..slots.len()) {
            Some(args) => {
                for (arg, slot) in args.iter_mut().zip(slots) {
                    *arg = self::arg(slot_value(record, slot)?);
                }
                args
            }
            None => {
                heap = slots
                    .iter()
                    .map(|slot| Ok(arg(slot_value(record, slot)?)))
                    .collect::<Result<_, DecodeError>>()?;
                &mut heap
            }
        };
        for (i, text) in &texts {
            args[*i] = format::Arg::Str(text);
        }
        match self.format {
            Format::Text => parsed.format_into(args, out)?,
            Format::Json => {
                self.text.clear();
                parsed.format_into(args, &mut self.text)?;
                format::json::printf_into(&self.text, out);
            }
        }
        Ok(None)
    }
}

impl<'a> Records<'a> {
    /// One of a `join()`'s arguments, in order (one CPU writes them one
    /// after the other): bpftrace's line is the arguments before the first
    /// empty one, printed when the last arrives.
    fn join_arg(&mut self, delimiter: &str, index: u32, arg: &[u8], out: &mut Vec<u8>) {
        if index == 0 {
            self.joined.clear();
            self.join_ended = false;
        }
        if arg.is_empty() {
            self.join_ended = true;
        }
        if !self.join_ended {
            if index > 0 {
                self.joined.extend_from_slice(delimiter.as_bytes());
            }
            self.joined.extend_from_slice(arg);
        }
        if index + 1 == crate::output::JOIN_ARGS {
            match self.format {
                Format::Text => {
                    out.extend_from_slice(&self.joined);
                    out.push(b'\n');
                }
                Format::Json => out.extend(format::json::message("join", &self.joined)),
            }
        }
    }

    /// The text of each `strftime()` and symbol argument of a printf
    /// record, and of each string that filled its `max_strlen` buffer, by
    /// argument index (none, and no allocation, for most records).
    fn timestamps(
        &self,
        record: &[u8],
        slots: &[crate::output::Slot],
    ) -> Result<Vec<(usize, Vec<u8>)>, DecodeError> {
        let mut texts = Vec::new();
        for (i, slot) in slots.iter().enumerate() {
            match slot_value(record, slot)? {
                ValueRef::Timestamp { format, nsecs } => {
                    let format = self.compiled.time_formats.get(format as usize);
                    let text = format.map_or_else(
                        || b"(?)".to_vec(),
                        |f| format::time::timestamp(f, nsecs, self.clock),
                    );
                    texts.push((i, text));
                }
                ValueRef::Symbol { kind, raw, pid } => {
                    texts.push((i, crate::symbols::text_in(kind, raw, pid)))
                }
                // bpftrace 0.23 takes a string that fills `max_strlen`
                // (its NUL included) as cut short, and marks it.
                ValueRef::Str(text) if text.len() + 1 == self.max_strlen => {
                    texts.push((i, [text, TRUNCATION_TRAILER].concat()));
                }
                _ => {}
            }
        }
        Ok(texts)
    }

    /// A decoded event's output or request (BEGIN, END and timer blocks
    /// emit these).
    pub fn event(&self, event: &Event) -> Result<Step, ReportError> {
        event_with(self.format, event, self.clock)
    }

    pub fn clock(&self) -> &'a dyn Clock {
        self.clock
    }
}

/// A record's event id, its first u64, as [`event_format`] reads it.
fn event_id(record: &[u8]) -> usize {
    record
        .first_chunk::<8>()
        .and_then(|id| usize::try_from(u64::from_ne_bytes(*id)).ok())
        .unwrap_or(usize::MAX)
}

/// A decoded event's output or request, the clock standing at the epoch in
/// UTC ([`Records::event`] takes the machine's).
pub fn event(format: Format, event: &Event) -> Result<Step, ReportError> {
    event_with(format, event, &FixedClock::default())
}

fn event_with(format: Format, event: &Event, clock: &dyn Clock) -> Result<Step, ReportError> {
    Ok(match event {
        Event::Time { format: text } => {
            let text = format::time::time(text, clock);
            Step::Write(match format {
                Format::Text => text,
                Format::Json => format::json::message("time", &text),
            })
        }
        Event::Printf { format: text, args } => {
            let text = FormatString::parse(text).format(&printf_args(args))?;
            Step::Write(match format {
                Format::Text => text,
                Format::Json => format::json::printf(&text),
            })
        }
        Event::Cat { format: text, args } => {
            Step::Cat(FormatString::parse(text).format(&printf_args(args))?)
        }
        Event::System { format: text, args } => {
            Step::System(FormatString::parse(text).format(&printf_args(args))?)
        }
        Event::Value { shape, args } => {
            let value = printed(shape, args);
            Step::Write(match format {
                Format::Text => format::text::value(&value),
                Format::Json => format::json::value(&value),
            })
        }
        // [`Records::record`] joins a join()'s records; BEGIN and END
        // cannot read the array.
        Event::JoinArg { .. } => Step::Write(Vec::new()),
        Event::Print { map } => Step::PrintMap(map.clone()),
        Event::PrintTop { map, top, div } => Step::PrintMapTop {
            map: map.clone(),
            top: *top,
            div: *div,
        },
        Event::Clear { map } => Step::ClearMap(map.clone()),
        Event::Exit => Step::Exit,
    })
}

/// `print(expr)`'s value: the record's values arranged by `shape`.
fn printed(shape: &Shape, args: &[Value]) -> Printed {
    match shape {
        Shape::Tuple(elements) => {
            Printed::Tuple(elements.iter().map(|e| printed(e, args)).collect())
        }
        Shape::Value(i) | Shape::Pointer(i) => match (shape, args.get(*i)) {
            (Shape::Pointer(_), Some(Value::Uint(n))) => Printed::Pointer(*n),
            (_, Some(Value::Int(n))) => Printed::Signed(*n),
            (_, Some(Value::Uint(n))) => Printed::Unsigned(*n),
            (_, Some(Value::Str(s))) => Printed::Str(s.clone()),
            (_, Some(Value::Buf(b))) => Printed::Str(buffer_text(b)),
            (_, None) => Printed::Str(Vec::new()),
        },
    }
}

/// Decoded values as the formatter takes them.
fn printf_args(args: &[Value]) -> Vec<format::Arg<'_>> {
    args.iter()
        .map(|v| match v {
            Value::Int(n) => format::Arg::Signed(*n),
            Value::Uint(n) => format::Arg::Unsigned(*n),
            Value::Str(s) => format::Arg::Str(s),
            Value::Buf(b) => format::Arg::Buf(b),
        })
        .collect()
}

/// `print(@m)`: the map as bpftrace prints it at that moment.
pub fn print_map(
    spec: &MapSpec,
    entries: &Entries,
    format: Format,
) -> Result<Vec<u8>, ReportError> {
    print_map_top(spec, entries, format, 0, 0)
}

/// `print(@m, top, div)`: the last `top` entries in bpftrace's order (0:
/// all), values divided by `div` (0: 1).
pub fn print_map_top(
    spec: &MapSpec,
    entries: &Entries,
    format: Format,
    top: u32,
    div: u32,
) -> Result<Vec<u8>, ReportError> {
    let map = contents(spec, entries)?;
    Ok(match format {
        Format::Text => format::text::map(&map, top, div),
        Format::Json => format::json::map(&map, top, div),
    })
}

/// What bpftrace prints when the program ends: every map, in its order,
/// empty ones as it shows them. `maps` pairs each of
/// [`Compiled::maps`] with its entries.
pub fn exit_maps(maps: &[(&MapSpec, &Entries)], format: Format) -> Result<Vec<u8>, ReportError> {
    let maps = maps
        .iter()
        // nobtf's own maps (`elapsed`'s start) have no `@`.
        .filter(|(spec, _)| spec.name.starts_with('@'))
        .map(|(spec, entries)| contents(spec, entries))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(match format {
        Format::Text => format::text::exit_maps(&maps),
        Format::Json => format::json::exit_maps(&maps),
    })
}

/// The line printed once the probes are attached.
pub fn attached_probes(count: u64, format: Format) -> String {
    match format {
        Format::Text => format::text::attached_probes(count),
        Format::Json => format::json::attached_probes(count),
    }
}

/// The line printed when the kernel dropped `count` records.
pub fn lost_events(count: u64, format: Format) -> String {
    match format {
        Format::Text => format::text::lost_events(count),
        Format::Json => format::json::lost_events(count),
    }
}

/// The spec of map `name` (as an event names it).
pub fn find_map<'a>(compiled: &'a Compiled, name: &str) -> Result<&'a MapSpec, ReportError> {
    compiled
        .maps
        .iter()
        .find(|m| m.name == name)
        .ok_or_else(|| ReportError::UnknownMap { map: name.into() })
}

/// bpftrace 0.23 prints every integer key as the signed value of its 64
/// bits, whatever the key's type: `@[(uint64)-1]` is `@[-1]`, while a
/// `uint32` key, zero-extended, stays positive.
fn key_part(value: Value) -> KeyPart {
    match value {
        Value::Int(n) => KeyPart::Int(n),
        Value::Uint(n) => KeyPart::Int(n as i64),
        Value::Str(s) => KeyPart::Str(s),
        Value::Buf(b) => KeyPart::Str(buffer_text(&b)),
    }
}

/// A `buf()` outside printf (a map's key or value, print()): bpftrace
/// writes its bytes as `%r` does.
fn buffer_text(bytes: &[u8]) -> Vec<u8> {
    format::printf::BufferText::Escaped.render(bytes)
}

/// A map's entries decoded and their per-CPU values combined, as the
/// printers take them.
pub fn contents(spec: &MapSpec, entries: &Entries) -> Result<format::Map, ReportError> {
    let mut decoded: Vec<(Key, MapValue)> = Vec::with_capacity(entries.len());
    let mut histograms: HashMap<Vec<u8>, (Key, Vec<u64>)> = HashMap::new();
    let slots = match spec.kind {
        MapKind::Hist => HistParams::default().slots(),
        MapKind::Lhist { min, max, step } => LhistParams::new(min, max, step)
            .map_err(|source| ReportError::Lhist {
                map: spec.name.clone(),
                source,
            })?
            .slots(),
        _ => 0,
    };
    for (key, per_cpu) in entries {
        let parts: Key = spec.decode_key(key)?.into_iter().map(key_part).collect();
        let per_cpu: Vec<&[u8]> = per_cpu.iter().map(Vec::as_slice).collect();
        let value = spec.combine(&per_cpu)?;
        if matches!(spec.kind, MapKind::Hist | MapKind::Lhist { .. }) {
            let bucket = spec.bucket(key)?;
            let MapValue::Count(count) = value else {
                unreachable!("histograms combine as counts")
            };
            let index = usize::try_from(bucket)
                .ok()
                .filter(|&i| i < slots)
                .ok_or_else(|| ReportError::Bucket {
                    map: spec.name.clone(),
                    bucket,
                    slots,
                })?;
            let user_key = key[..(spec.key_size as usize - 8).min(key.len())].to_vec();
            let (_, buckets) = histograms
                .entry(user_key)
                .or_insert_with(|| (parts, Vec::new()));
            if buckets.len() <= index {
                buckets.resize(index + 1, 0);
            }
            buckets[index] = buckets[index].wrapping_add(count);
        } else {
            decoded.push((parts, value));
        }
    }
    let bits = |v: &MapValue| match v {
        MapValue::Count(n) => *n,
        MapValue::Sum(n) => *n as u64,
        MapValue::Min(n) | MapValue::Max(n) => n.unwrap_or(0),
        MapValue::Value(Value::Int(n)) => *n as u64,
        MapValue::Value(Value::Uint(n)) => *n,
        MapValue::Value(Value::Str(_) | Value::Buf(_))
        | MapValue::Tuple(_)
        | MapValue::Avg { .. } => 0,
    };
    let numbers =
        || -> Vec<(Key, u64)> { decoded.iter().map(|(k, v)| (k.clone(), bits(v))).collect() };
    let values = match spec.kind {
        MapKind::Count => {
            let mut entries = numbers();
            // bpftrace's keyless count() is an array: always one entry.
            if spec.key.is_empty() && entries.is_empty() {
                entries.push((Vec::new(), 0));
            }
            MapValues::Count(entries)
        }
        MapKind::Sum { signed } => MapValues::Int {
            signed,
            entries: numbers(),
        },
        MapKind::Assign(ValueType::Timestamp { .. }) => MapValues::Int {
            signed: false,
            entries: numbers(),
        },
        MapKind::Assign(ValueType::Int { signed }) => MapValues::Int {
            signed,
            entries: numbers(),
        },
        MapKind::Assign(
            ValueType::Str { .. } | ValueType::Inet | ValueType::Buf { .. } | ValueType::Symbol(_),
        ) => MapValues::Str(
            decoded
                .into_iter()
                .map(|(k, v)| match v {
                    MapValue::Value(Value::Str(s)) => (k, s),
                    MapValue::Value(Value::Buf(b)) => (k, buffer_text(&b)),
                    _ => (k, Vec::new()),
                })
                .collect(),
        ),
        MapKind::Tuple => {
            let shape = spec
                .tuple
                .as_ref()
                .map_or(Shape::Tuple(Vec::new()), |t| t.shape.clone());
            MapValues::Tuple(
                decoded
                    .into_iter()
                    .map(|(k, v)| match v {
                        MapValue::Tuple(parts) => (k, printed(&shape, &parts)),
                        _ => (k, Printed::Tuple(Vec::new())),
                    })
                    .collect(),
            )
        }
        MapKind::Min { signed } => MapValues::Min {
            signed,
            entries: numbers(),
        },
        MapKind::Max { signed } => MapValues::Max {
            signed,
            entries: numbers(),
        },
        MapKind::Avg { stats } => MapValues::Avg(
            stats,
            decoded
                .into_iter()
                .map(|(k, v)| match v {
                    MapValue::Avg { sum, count } => (k, AvgState { count, total: sum }),
                    _ => (k, AvgState::default()),
                })
                .collect(),
        ),
        MapKind::Hist => MapValues::Hist {
            params: HistParams::default(),
            entries: histograms.into_values().collect(),
        },
        MapKind::Lhist { min, max, step } => MapValues::Lhist {
            params: LhistParams::new(min, max, step).map_err(|source| ReportError::Lhist {
                map: spec.name.clone(),
                source,
            })?,
            entries: histograms.into_values().collect(),
        },
    };
    Ok(format::Map {
        name: spec.name.clone(),
        values,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::Slot;

    fn printf_event(format: &str, slots: &[ValueType]) -> EventFormat {
        let mut offset = 8;
        let args = slots
            .iter()
            .map(|&ty| {
                let slot = Slot { ty, offset };
                offset += ty.size();
                slot
            })
            .collect();
        EventFormat::Printf {
            format: format.into(),
            args,
        }
    }

    /// `Records` gives each record's bytes and steps as the record decoded
    /// and formatted afresh does: a printf with few arguments, one with
    /// more than the stack holds, JSON quoting, and the other events.
    #[test]
    fn records_print_as_decoded_events_do() {
        let int = ValueType::Int { signed: true };
        let uint = ValueType::Int { signed: false };
        let compiled = Compiled {
            probes: Vec::new(),
            begin: Vec::new(),
            end: Vec::new(),
            timers: Vec::new(),
            multi_refused: None,
            maps: Vec::new(),
            time_formats: Vec::new(),
            events: vec![
                printf_event("%s \"%d\" %c|\n", &[ValueType::Str { len: 16 }, int, uint]),
                printf_event("%d %d %d %d %d %d %d %d %d %x\n", &[int; 10]),
                EventFormat::Print { map: "@m".into() },
                EventFormat::Exit,
            ],
            config: Default::default(),
            listed: Vec::new(),
        };
        let make = |id: u64, values: &[&[u8]]| {
            let mut bytes = id.to_ne_bytes().to_vec();
            for value in values {
                bytes.extend_from_slice(value);
            }
            bytes
        };
        let mut path = [0u8; 16];
        path[..7].copy_from_slice(b"/tmp/\x01a");
        let records = [
            make(0, &[&path, &(-5i64).to_ne_bytes(), &65u64.to_ne_bytes()]),
            make(0, &[&path, &7i64.to_ne_bytes(), &0u64.to_ne_bytes()]),
            make(1, &[&(-1i64).to_ne_bytes()[..]; 10]),
            make(2, &[]),
            make(3, &[]),
        ];
        for format in [Format::Text, Format::Json] {
            let clock = FixedClock::default();
            let mut printer = Records::new(&compiled, format, &clock);
            for bytes in &records {
                let mut out = b"before".to_vec();
                let step = printer.record(bytes, &mut out).unwrap();
                // The other path: the record decoded into owned values, then
                // formatted with the format string parsed anew.
                let want = event(format, &decode_event(&compiled.events, bytes).unwrap()).unwrap();
                match step {
                    None => assert_eq!(Step::Write(out[6..].to_vec()), want),
                    Some(step) => assert_eq!((step, &out[..]), (want, &b"before"[..])),
                }
            }
            let short = Records::new(&compiled, format, &FixedClock::default())
                .record(&records[0][..20], &mut Vec::new());
            assert_eq!(
                short.map_err(|e| e.to_string()),
                Err(ReportError::from(
                    decode_event(&compiled.events, &records[0][..20]).unwrap_err()
                )
                .to_string())
            );
        }
    }
}
