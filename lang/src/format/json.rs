//! bpftrace 0.23's `-f json` output: one JSON object per line, written with
//! its spacing (`{"type": "map", "data": {...}}`).

use super::hist::{HistParams, LhistParams};
use super::map::{Key, KeyPart, Map, MapValues, Printed, Rendered, rendered_entries};

/// Appends `bytes` as the inside of a JSON string, escaped as bpftrace
/// does: `"` `\` newline, carriage return and tab by name, other bytes
/// below 0x20 as `\u00xx`, and every byte from 0x80 up as `\uffffffxx`
/// (bpftrace tests a signed `char` and prints it as an `int`, so UTF-8
/// text comes out mangled; users' parsers see the same bytes from both).
pub fn escape_into(bytes: &[u8], out: &mut Vec<u8>) {
    // Runs of bytes with nothing to escape are copied whole.
    let mut rest = bytes;
    while let Some(at) = rest
        .iter()
        .position(|&b| !(0x20..0x80).contains(&b) || b == b'"' || b == b'\\')
    {
        out.extend_from_slice(&rest[..at]);
        escape_byte(rest[at], out);
        rest = &rest[at + 1..];
    }
    out.extend_from_slice(rest);
}

fn escape_byte(b: u8, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let hex = [HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]];
    match b {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\t' => out.extend_from_slice(b"\\t"),
        // `\u00xx`
        0..0x20 => {
            out.extend_from_slice(b"\\u00");
            out.extend_from_slice(&hex);
        }
        // `\uffffffxx`: the byte as a signed char's int, in hex.
        0x80.. => {
            out.extend_from_slice(b"\\uffffff");
            out.extend_from_slice(&hex);
        }
        _ => out.push(b),
    }
}

fn quoted(bytes: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    escape_into(bytes, out);
    out.push(b'"');
}

/// A `printf` event: `{"type": "printf", "data": "..."}` and a newline.
pub fn printf(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    printf_into(text, &mut out);
    out
}

/// [`printf`] appended to `out`.
pub fn printf_into(text: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"type\": \"printf\", \"data\": ");
    quoted(text, out);
    out.extend_from_slice(b"}\n");
}

/// A text message of another type (`time`): `{"type": "time", "data":
/// "..."}` and a newline.
pub fn message(kind: &str, text: &[u8]) -> Vec<u8> {
    let mut out = b"{\"type\": \"".to_vec();
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\", \"data\": ");
    quoted(text, &mut out);
    out.extend_from_slice(b"}\n");
    out
}

/// What the program end prints with `-f json`: two newlines (bpftrace
/// writes them in every format), then each non-empty map in name order as
/// [`map`] prints it.
pub fn exit_maps(maps: &[Map]) -> Vec<u8> {
    let mut out = b"\n\n".to_vec();
    for m in super::map::in_name_order(maps) {
        out.extend(map(m, 0, 0));
    }
    out
}

/// One map as one line, or nothing for an empty map:
/// `{"type": T, "data": {"@name": V}}` where T is `hist` for hist/lhist,
/// `stats` for avg and `map` otherwise, and V is the value of a map without
/// keys or `{"k1,k2": value, ...}` (key parts joined by `,`, always
/// quoted) in print order. String key parts are escaped twice, as bpftrace
/// 0.23 does: the key `a"b` is written `"a\\\"b"`. A histogram value is a list of
/// `{"min": a, "max": b, "count": n}` from the first to the last non-zero
/// bucket; the below-range bucket has no `min`, lhist's top one no `max`.
pub fn map(map: &Map, top: u32, div: u32) -> Vec<u8> {
    if map.values.is_empty() {
        return Vec::new();
    }
    let kind = match map.values {
        MapValues::Hist { .. } | MapValues::Lhist { .. } => "hist",
        MapValues::Avg(..) => "stats",
        _ => "map",
    };
    let keyed = map.values.is_keyed();
    let mut out = format!("{{\"type\": \"{kind}\", \"data\": {{").into_bytes();
    quoted(map.name.as_bytes(), &mut out);
    out.extend_from_slice(b": ");
    if keyed {
        out.push(b'{');
    }
    let entries = rendered_entries(&map.values, top, div);
    for (i, (key, value)) in entries.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b", ");
        }
        if keyed {
            quoted(&key_text(key), &mut out);
            out.extend_from_slice(b": ");
        }
        match value {
            Rendered::Number(n) => out.extend_from_slice(n.as_bytes()),
            Rendered::Str(s) => quoted(s, &mut out),
            Rendered::Printed(value) => printed_into(value, &mut out),
            Rendered::Stats([count, average, total]) => out.extend_from_slice(
                format!("{{\"count\": {count}, \"average\": {average}, \"total\": {total}}}")
                    .as_bytes(),
            ),
            Rendered::Hist(buckets) => match &map.values {
                MapValues::Lhist { params, .. } => out.extend(lhist(buckets, params)),
                MapValues::Hist { params, .. } => out.extend(hist(buckets, params, div)),
                _ => {}
            },
        }
    }
    if keyed {
        out.push(b'}');
    }
    out.extend_from_slice(b"}}\n");
    out
}

/// Key parts joined by `,` with no space, string parts escaped (the
/// caller quotes, and so escapes, the whole once more).
fn key_text(key: &Key) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, part) in key.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match part {
            KeyPart::Str(s) => escape_into(s, &mut out),
            number => out.extend(number.text()),
        }
    }
    out
}

fn bucket_list(
    buckets: &[u64],
    range: impl Fn(usize) -> (Option<i128>, Option<i128>),
    div: u64,
) -> Vec<u8> {
    let first = buckets.iter().position(|&c| c > 0);
    let last = buckets.iter().rposition(|&c| c > 0);
    let (Some(first), Some(last)) = (first, last) else {
        return b"[]".to_vec();
    };
    let mut items = Vec::new();
    for (index, &count) in buckets.iter().enumerate().take(last + 1).skip(first) {
        let (min, max) = range(index);
        let mut item = String::from("{");
        if let Some(min) = min {
            item.push_str(&format!("\"min\": {min}, "));
        }
        if let Some(max) = max {
            item.push_str(&format!("\"max\": {max}, "));
        }
        item.push_str(&format!("\"count\": {}}}", count / div));
        items.push(item);
    }
    format!("[{}]", items.join(", ")).into_bytes()
}

/// A `hist()` value: its non-empty span of buckets, counts divided by
/// `div` (0 means 1).
pub fn hist(buckets: &[u64], params: &HistParams, div: u32) -> Vec<u8> {
    let slots = &buckets[..buckets.len().min(params.slots())];
    bucket_list(slots, |i| params.range(i), u64::from(div.max(1)))
}

/// An `lhist()` value: its non-empty span of buckets (counts not divided).
pub fn lhist(buckets: &[u64], params: &LhistParams) -> Vec<u8> {
    let slots = &buckets[..buckets.len().min(params.slots())];
    bucket_list(slots, |i| params.range(i), 1)
}

/// `print(expr)` of a non-map value: `{"type": "value", "data": V}`.
pub fn value(value: &Printed) -> Vec<u8> {
    let mut out = b"{\"type\": \"value\", \"data\": ".to_vec();
    printed_into(value, &mut out);
    out.extend_from_slice(b"}\n");
    out
}

/// A value as bpftrace 0.23 writes it in JSON: pointers in decimal, tuples
/// as arrays without spaces (`[1,"b"]`).
fn printed_into(value: &Printed, out: &mut Vec<u8>) {
    match value {
        Printed::Signed(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Printed::Unsigned(n) | Printed::Pointer(n) => {
            out.extend_from_slice(n.to_string().as_bytes())
        }
        Printed::Str(s) => quoted(s, out),
        Printed::Tuple(elements) => {
            out.push(b'[');
            for (i, element) in elements.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                printed_into(element, out);
            }
            out.push(b']');
        }
    }
}

/// `{"type": "attached_probes", "data": {"probes": N}}`.
pub fn attached_probes(count: u64) -> String {
    format!("{{\"type\": \"attached_probes\", \"data\": {{\"probes\": {count}}}}}\n")
}

/// `{"type": "lost_events", "data": {"events": N}}`.
pub fn lost_events(count: u64) -> String {
    format!("{{\"type\": \"lost_events\", \"data\": {{\"events\": {count}}}}}\n")
}
