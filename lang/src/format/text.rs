//! bpftrace 0.23's text output: maps as `@name[key]: value`, histograms
//! with its labels and 52-column bars, and the lines around them.

use super::hist::{HistParams, LhistParams};
use super::map::{Key, Map, MapValues, Printed, Rendered, rendered_entries};

const BAR_WIDTH: usize = 52;

/// Everything printed when the program ends (END, `exit()`, Ctrl-C, `-c`
/// command exit, `--duration`): two newlines, then every map in name order
/// (by bytes: `@B` before `@_` before `@a`) as [`map`] prints it, empty
/// ones included (an empty map prints an empty line, an empty `avg()` map
/// two).
pub fn exit_maps(maps: &[Map]) -> Vec<u8> {
    let mut out = b"\n\n".to_vec();
    for m in super::map::in_name_order(maps) {
        out.extend(map(m, 0, 0));
    }
    out
}

/// One map as `print(@m, top, div)` and the end of the program print it:
/// its entries in bpftrace's order, one per line, the last `top` when
/// `top` is non-zero, values divided by `div` (0 means 1), then a newline
/// (two for `avg()`). A histogram entry is `@name[key]:` (no space, unlike
/// bpftrace 0.17), a newline, its bucket lines and an empty line.
pub fn map(map: &Map, top: u32, div: u32) -> Vec<u8> {
    let entries = rendered_entries(&map.values, top, div);
    let mut lines: Vec<Vec<u8>> = Vec::with_capacity(entries.len());
    for (key, value) in entries {
        let mut line = key_text(&map.name, &key);
        match value {
            Rendered::Number(n) => {
                line.extend_from_slice(b": ");
                line.extend_from_slice(n.as_bytes());
            }
            Rendered::Str(s) => {
                line.extend_from_slice(b": ");
                line.extend_from_slice(&s);
            }
            Rendered::Printed(value) => {
                line.extend_from_slice(b": ");
                printed_into(&value, &mut line);
            }
            Rendered::Stats([count, average, total]) => line.extend_from_slice(
                format!(": count {count}, average {average}, total {total}").as_bytes(),
            ),
            Rendered::Hist(buckets) => {
                line.extend_from_slice(b":\n");
                match &map.values {
                    MapValues::Lhist { params, .. } => line.extend(lhist(&buckets, params)),
                    MapValues::Hist { params, .. } => line.extend(hist(&buckets, params, div)),
                    _ => {}
                }
            }
        }
        lines.push(line);
    }
    let mut out = lines.join(&b'\n');
    out.push(b'\n');
    if matches!(map.values, MapValues::Avg(..)) {
        out.push(b'\n');
    }
    out
}

/// `@name` or `@name[k1, k2]`.
fn key_text(name: &str, key: &Key) -> Vec<u8> {
    let mut out = name.as_bytes().to_vec();
    if key.is_empty() {
        return out;
    }
    out.push(b'[');
    for (i, part) in key.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b", ");
        }
        out.extend(part.text());
    }
    out.push(b']');
    out
}

/// One bucket line: label left-aligned in 16 columns, count right-aligned
/// in 8, then the bar, `@` scaled to the largest bucket, in 52 columns.
fn bucket_line(label: &str, shown: u64, count: u64, largest: u64, out: &mut Vec<u8>) {
    // bpftrace computes the bar in single precision and truncates.
    let width = if largest == 0 {
        0
    } else {
        ((count as f32 / largest as f32) * BAR_WIDTH as f32) as usize
    };
    let bar = "@".repeat(width.min(BAR_WIDTH));
    let line = format!("{label:<16}{shown:>8} |{bar:<BAR_WIDTH$}|\n");
    out.extend_from_slice(line.as_bytes());
}

/// The first and last non-zero bucket, and the largest count.
fn extent(buckets: &[u64]) -> Option<(usize, usize, u64)> {
    let first = buckets.iter().position(|&c| c > 0)?;
    let last = buckets.iter().rposition(|&c| c > 0)?;
    let largest = buckets.iter().copied().max().unwrap_or(0);
    Some((first, last, largest))
}

/// A `hist()` body: the buckets from the first to the last non-zero one
/// among the `params.slots()` it can have (inner empty ones shown), counts
/// divided by `div` (0 means 1), the bars from the undivided counts.
/// All-zero buckets print nothing.
pub fn hist(buckets: &[u64], params: &HistParams, div: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let slots = &buckets[..buckets.len().min(params.slots())];
    let Some((first, last, largest)) = extent(slots) else {
        return out;
    };
    let div = u64::from(div.max(1));
    for (index, &count) in slots.iter().enumerate().take(last + 1).skip(first) {
        bucket_line(&params.label(index), count / div, count, largest, &mut out);
    }
    out
}

/// An `lhist()` body: the buckets from the first to the last non-zero one
/// among the `params.slots()` it can have. Counts are not divided: bpftrace
/// ignores `div` for lhist.
pub fn lhist(buckets: &[u64], params: &LhistParams) -> Vec<u8> {
    let mut out = Vec::new();
    let slots = &buckets[..buckets.len().min(params.slots())];
    let Some((first, last, _)) = extent(slots) else {
        return out;
    };
    let largest = buckets.iter().copied().max().unwrap_or(0);
    for (index, &count) in slots.iter().enumerate().take(last + 1).skip(first) {
        bucket_line(&params.label(index), count, count, largest, &mut out);
    }
    out
}

/// `print(expr)` of a non-map value: the value and a newline.
pub fn value(value: &Printed) -> Vec<u8> {
    let mut out = Vec::new();
    printed_into(value, &mut out);
    out.push(b'\n');
    out
}

/// A value as bpftrace 0.23 writes it: strings as their bytes, tuples as
/// `(a, b)` at any depth.
fn printed_into(value: &Printed, out: &mut Vec<u8>) {
    match value {
        Printed::Signed(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Printed::Unsigned(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Printed::Pointer(n) => out.extend_from_slice(format!("{n:#x}").as_bytes()),
        Printed::Str(s) => out.extend_from_slice(s),
        Printed::Tuple(elements) => {
            out.push(b'(');
            for (i, element) in elements.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                printed_into(element, out);
            }
            out.push(b')');
        }
    }
}

/// The line printed once the probes are attached.
pub fn attached_probes(count: u64) -> String {
    let plural = if count == 1 { "" } else { "s" };
    format!("Attaching {count} probe{plural}...\n")
}

/// The line printed when the kernel dropped events.
pub fn lost_events(count: u64) -> String {
    format!("Lost {count} events\n")
}
