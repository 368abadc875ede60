//! From what the programs wrote to what bpftrace 0.23 prints: joins
//! [`crate::output`] (records and map entries as the kernel holds them) to
//! [`crate::format`] (bpftrace's text and JSON). Pure: the loader reads the
//! perf ring and the maps, these functions give the bytes to write.
//!
//! The loader:
//! - for each perf record calls [`record`] (for BEGIN, END and timer
//!   events, already decoded, [`event`]) and acts on the [`Step`]: write
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
use crate::format::{
    self, AvgState, FormatError, FormatString, HistParams, Key, KeyPart, LhistError, LhistParams,
    MapValues,
};
use crate::output::{
    DecodeError, Event, EventFormat, MapKind, MapSpec, MapValue, Value, ValueRef, ValueType,
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
    /// Delete every entry of this map.
    ClearMap(String),
    /// Stop tracing: detach, run END, print [`exit_maps`].
    Exit,
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

/// A perf record's output or request.
pub fn record(compiled: &Compiled, format: Format, record: &[u8]) -> Result<Step, ReportError> {
    // A printf, nearly every record of a busy trace, is formatted from the
    // record's own bytes: no decoded copy of its format and strings.
    if let EventFormat::Printf { format: text, args } = event_format(&compiled.events, record)? {
        let args = args
            .iter()
            .map(|slot| {
                Ok(match slot_value(record, slot)? {
                    ValueRef::Int(n) => format::Arg::Signed(n),
                    ValueRef::Uint(n) => format::Arg::Unsigned(n),
                    ValueRef::Str(s) => format::Arg::Str(s),
                })
            })
            .collect::<Result<Vec<_>, DecodeError>>()?;
        return printf(format, text, &args);
    }
    event(format, &decode_event(&compiled.events, record)?)
}

fn printf(format: Format, text: &str, args: &[format::Arg<'_>]) -> Result<Step, ReportError> {
    let out = FormatString::parse(text).format(args)?;
    Ok(Step::Write(match format {
        Format::Text => out,
        Format::Json => format::json::printf(&out),
    }))
}

/// A decoded event's output or request (BEGIN, END and timer events come
/// decoded in [`Compiled`]).
pub fn event(format: Format, event: &Event) -> Result<Step, ReportError> {
    Ok(match event {
        Event::Printf { format: text, args } => {
            let args: Vec<format::Arg> = args
                .iter()
                .map(|v| match v {
                    Value::Int(n) => format::Arg::Signed(*n),
                    Value::Uint(n) => format::Arg::Unsigned(*n),
                    Value::Str(s) => format::Arg::Str(s),
                })
                .collect();
            printf(format, text, &args)?
        }
        Event::Print { map } => Step::PrintMap(map.clone()),
        Event::Clear { map } => Step::ClearMap(map.clone()),
        Event::Exit => Step::Exit,
    })
}

/// `print(@m)`: the map as bpftrace prints it at that moment.
pub fn print_map(
    spec: &MapSpec,
    entries: &Entries,
    format: Format,
) -> Result<Vec<u8>, ReportError> {
    let map = contents(spec, entries)?;
    Ok(match format {
        Format::Text => format::text::map(&map, 0, 0),
        Format::Json => format::json::map(&map, 0, 0),
    })
}

/// What bpftrace prints when the program ends: every map, in its order,
/// empty ones as it shows them. `maps` pairs each of
/// [`Compiled::maps`] with its entries.
pub fn exit_maps(maps: &[(&MapSpec, &Entries)], format: Format) -> Result<Vec<u8>, ReportError> {
    let maps = maps
        .iter()
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
    }
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
        MapValue::Value(Value::Str(_)) | MapValue::Avg { .. } => 0,
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
        MapKind::Assign(ValueType::Int { signed }) => MapValues::Int {
            signed,
            entries: numbers(),
        },
        MapKind::Assign(ValueType::Str { .. }) => MapValues::Str(
            decoded
                .into_iter()
                .map(|(k, v)| match v {
                    MapValue::Value(Value::Str(s)) => (k, s),
                    _ => (k, Vec::new()),
                })
                .collect(),
        ),
        MapKind::Min { signed } => MapValues::Min {
            signed,
            entries: numbers(),
        },
        MapKind::Max { signed } => MapValues::Max {
            signed,
            entries: numbers(),
        },
        MapKind::Avg => MapValues::Avg(
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
