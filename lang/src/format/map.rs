//! A map's contents as the printers take them: decoded values per key, and
//! the order and selection bpftrace 0.23 prints them in.

use std::cmp::Ordering;

use super::hist::{HistParams, LhistParams};

/// One element of a map key. bpftrace 0.23 keeps integer keys 64 bits wide
/// with the sign of the expression that made them, and prints them so.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KeyPart {
    /// A signed integer key (`@[-1]`, `@[$x]` of a signed type).
    Int(i64),
    /// An unsigned integer key (`@[pid]`, `@[(uint32)x]`).
    Uint(u64),
    /// A string key: the bytes before the first NUL.
    Str(Vec<u8>),
}

impl KeyPart {
    /// The 64 bits the map key holds for an integer part.
    fn bits(&self) -> Option<u64> {
        match self {
            KeyPart::Int(n) => Some(*n as u64),
            KeyPart::Uint(n) => Some(*n),
            KeyPart::Str(_) => None,
        }
    }

    /// The part as bpftrace writes it: decimal by its sign, or the text.
    pub(crate) fn text(&self) -> Vec<u8> {
        match self {
            KeyPart::Int(n) => n.to_string().into_bytes(),
            KeyPart::Uint(n) => n.to_string().into_bytes(),
            KeyPart::Str(s) => s.clone(),
        }
    }
}

/// A map key; empty for a map without keys (`@name = ...`).
pub type Key = Vec<KeyPart>;

/// `avg()`'s two counters: how many values and their sum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AvgState {
    pub count: u64,
    /// The sum of the values, each sign- or zero-extended to 64 bits as its
    /// type says (bpftrace keeps avg() signed whatever the argument).
    pub total: i64,
}

impl AvgState {
    /// bpftrace's average: truncating signed division. 0 when empty
    /// (bpftrace 0.23 dies dividing by zero there, after `zero(@m)`).
    pub fn average(&self) -> i64 {
        let count = self.count as i64;
        if count == 0 {
            0
        } else {
            self.total.wrapping_div(count)
        }
    }
}

/// The values of a map, by the function that filled it. Per-CPU copies are
/// already combined (summed for counts, sums, avg and hist buckets;
/// [`combine_min_max`] for min and max).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapValues {
    /// `count()`.
    Count(Vec<(Key, u64)>),
    /// `sum()` and plain integer assignment. `signed` is the value type's
    /// sign; a signed value is stored sign-extended.
    Int {
        signed: bool,
        entries: Vec<(Key, u64)>,
    },
    /// `min()`; `signed` is the argument's sign, as for `Int`.
    Min {
        signed: bool,
        entries: Vec<(Key, u64)>,
    },
    /// `max()`; `signed` is the argument's sign, as for `Int`.
    Max {
        signed: bool,
        entries: Vec<(Key, u64)>,
    },
    /// `avg()`, or `stats()` when the flag is set.
    Avg(bool, Vec<(Key, AvgState)>),
    /// String assignment (`@x = comm`).
    Str(Vec<(Key, Vec<u8>)>),
    /// Tuple assignment (`@x = (1, comm)`).
    Tuple(Vec<(Key, Printed)>),
    /// `hist()`: per key, the count of each bucket index
    /// ([`HistParams::bucket`]); missing trailing buckets are zero.
    Hist {
        params: HistParams,
        entries: Vec<(Key, Vec<u64>)>,
    },
    /// `lhist()`: per key, the count of each bucket index
    /// ([`LhistParams::bucket`]).
    Lhist {
        params: LhistParams,
        entries: Vec<(Key, Vec<u64>)>,
    },
}

/// The `min()`/`max()` value of a key from its per-CPU copies, as bpftrace
/// 0.23 stores them: each copy is `{ value: u64, is_set: u64 }` (16 bytes),
/// `is_set` 1 once the CPU saw a value. The least (`min`) or greatest
/// (`max`) of the set copies, compared as `signed` says; 0 when none is
/// set (after `zero()`).
pub fn combine_min_max(per_cpu: &[(u64, u64)], signed: bool, is_max: bool) -> u64 {
    let order = |a: u64, b: u64| {
        if signed {
            (a as i64).cmp(&(b as i64))
        } else {
            a.cmp(&b)
        }
    };
    per_cpu
        .iter()
        .filter(|(_, is_set)| *is_set as u32 != 0)
        .map(|(value, _)| *value)
        .reduce(|best, v| {
            let better = if is_max {
                order(v, best) == Ordering::Greater
            } else {
                order(v, best) == Ordering::Less
            };
            if better { v } else { best }
        })
        .unwrap_or(0)
}

/// A value as `print(expr)` shows it for a non-map expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Printed {
    Signed(i64),
    Unsigned(u64),
    Str(Vec<u8>),
    /// In hex (`0xffff...`) as text, in decimal in JSON.
    Pointer(u64),
    /// `(a, b)` as text, `[a,b]` in JSON.
    Tuple(Vec<Printed>),
}

/// One map at print time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Map {
    /// With the `@`: `@`, `@bytes`.
    pub name: String,
    pub values: MapValues,
}

/// bpftrace's key order (maps of strings are printed in it): by the first
/// key part, then the next; integers as unsigned 64-bit, strings by bytes.
pub(crate) fn compare_keys(a: &Key, b: &Key) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        let order = match (x.bits(), y.bits(), x, y) {
            (Some(x), Some(y), _, _) => x.cmp(&y),
            (_, _, KeyPart::Str(x), KeyPart::Str(y)) => x.cmp(y),
            (Some(_), None, _, _) => Ordering::Less,
            _ => Ordering::Greater,
        };
        if order != Ordering::Equal {
            return order;
        }
    }
    a.len().cmp(&b.len())
}

/// The order of the keys' bytes in the map (integers little-endian), which
/// bpftrace 0.23 lists histogram keys in before sorting them by total.
pub(crate) fn compare_key_bytes(a: &Key, b: &Key) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        let order = match (x, y) {
            (KeyPart::Str(x), KeyPart::Str(y)) => x.cmp(y),
            _ => match (x.bits(), y.bits()) {
                (Some(x), Some(y)) => x.to_le_bytes().cmp(&y.to_le_bytes()),
                (Some(_), None) => Ordering::Less,
                _ => Ordering::Greater,
            },
        };
        if order != Ordering::Equal {
            return order;
        }
    }
    a.len().cmp(&b.len())
}

/// Entries in bpftrace's print order, then the last `top` of them when
/// `top` is non-zero (the largest, as `print(@m, top)` shows). Equal values
/// follow `tie`: bpftrace sorts with `std::sort`, which keeps small maps'
/// equal values in the order it listed them (hash order for most maps, so
/// unspecified; key byte order for histograms).
pub(crate) fn ordered<V: Clone, S: Ord>(
    entries: &[(Key, V)],
    sort_value: impl Fn(&V) -> S,
    tie: fn(&Key, &Key) -> Ordering,
    top: u32,
) -> Vec<(Key, V)> {
    let mut sorted = entries.to_vec();
    sorted.sort_by(|(ka, va), (kb, vb)| {
        sort_value(va)
            .cmp(&sort_value(vb))
            .then_with(|| tie(ka, kb))
    });
    let top = top as usize;
    if top != 0 && sorted.len() > top {
        sorted.drain(..sorted.len() - top);
    }
    sorted
}

/// The sum of a histogram's buckets, which orders hist keys.
pub(crate) fn hist_total(buckets: &[u64]) -> i64 {
    buckets
        .iter()
        .fold(0i64, |sum, &c| sum.wrapping_add(c as i64))
}

impl MapValues {
    pub(crate) fn is_empty(&self) -> bool {
        self.keys().next().is_none()
    }

    /// Whether the map has keys (`@name[...]`), read from its first entry.
    pub(crate) fn is_keyed(&self) -> bool {
        self.keys().next().is_some_and(|k| !k.is_empty())
    }

    fn keys(&self) -> Box<dyn Iterator<Item = &Key> + '_> {
        fn keys<V>(e: &[(Key, V)]) -> Box<dyn Iterator<Item = &Key> + '_> {
            Box::new(e.iter().map(|(k, _)| k))
        }
        match self {
            MapValues::Count(e)
            | MapValues::Int { entries: e, .. }
            | MapValues::Min { entries: e, .. }
            | MapValues::Max { entries: e, .. } => keys(e),
            MapValues::Avg(_, e) => keys(e),
            MapValues::Str(e) => keys(e),
            MapValues::Tuple(e) => keys(e),
            MapValues::Hist { entries: e, .. } | MapValues::Lhist { entries: e, .. } => keys(e),
        }
    }
}

/// A scalar value rendered for the text and JSON printers, after sorting,
/// `top` and `div`.
pub(crate) enum Rendered {
    Number(String),
    /// `stats()`: count, average, total.
    Stats([i64; 3]),
    Str(Vec<u8>),
    Printed(Printed),
    Hist(Vec<u64>),
}

fn signed_text(value: u64, signed: bool, div: u64) -> String {
    if signed {
        (value as i64).wrapping_div(div as i64).to_string()
    } else {
        (value / div).to_string()
    }
}

/// The entries of `values` in print order with their values after `div`
/// (0 counts as 1). Histograms keep their raw counts: each printer applies
/// `div` where bpftrace does.
pub(crate) fn rendered_entries(values: &MapValues, top: u32, div: u32) -> Vec<(Key, Rendered)> {
    let div = u64::from(div.max(1));
    let num = |s: String| Rendered::Number(s);
    match values {
        MapValues::Count(e) => ordered(e, |v| *v, compare_keys, top)
            .into_iter()
            .map(|(k, v)| (k, num((v / div).to_string())))
            .collect(),
        MapValues::Int { signed, entries } => {
            let signed = *signed;
            ordered(
                entries,
                |v| {
                    if signed {
                        i128::from(*v as i64)
                    } else {
                        i128::from(*v)
                    }
                },
                compare_keys,
                top,
            )
            .into_iter()
            .map(|(k, v)| (k, num(signed_text(v, signed, div))))
            .collect()
        }
        // bpftrace 0.23 sorts min() and max() maps as unsigned whatever
        // their sign, so negative values come last.
        MapValues::Min { signed, entries } | MapValues::Max { signed, entries } => {
            ordered(entries, |v| *v, compare_keys, top)
                .into_iter()
                .map(|(k, v)| (k, num(signed_text(v, *signed, div))))
                .collect()
        }
        MapValues::Avg(false, e) => ordered(e, AvgState::average, compare_keys, top)
            .into_iter()
            .map(|(k, v)| (k, num(v.average().wrapping_div(div as i64).to_string())))
            .collect(),
        MapValues::Avg(true, e) => ordered(e, AvgState::average, compare_keys, top)
            .into_iter()
            .map(|(k, v)| {
                let average = v.average().wrapping_div(div as i64);
                (k, Rendered::Stats([v.count as i64, average, v.total]))
            })
            .collect(),
        MapValues::Str(e) => by_key(e, top, Rendered::Str),
        MapValues::Tuple(e) => by_key(e, top, Rendered::Printed),
        MapValues::Hist { entries: e, .. } | MapValues::Lhist { entries: e, .. } => {
            ordered(e, |b| hist_total(b), compare_key_bytes, top)
                .into_iter()
                .map(|(k, v)| (k, Rendered::Hist(v)))
                .collect()
        }
    }
}

/// The maps in name order, for the program's end in either format.
/// Names are unique, so an unstable sort gives the one order (and one
/// sort's code serves both formats: each sort call of its own costs a few
/// KB of binary).
pub(super) fn in_name_order(maps: &[Map]) -> Vec<&Map> {
    let mut sorted: Vec<&Map> = maps.iter().collect();
    sorted.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    sorted
}

/// Entries in key order (as bpftrace sorts maps of strings and tuples),
/// the last `top` when it is non-zero.
fn by_key<V: Clone>(
    entries: &[(Key, V)],
    top: u32,
    render: impl Fn(V) -> Rendered,
) -> Vec<(Key, Rendered)> {
    let mut sorted = entries.to_vec();
    // A map's keys are unique: an unstable sort gives the one order, in
    // less code than a stable one.
    sorted.sort_unstable_by(|(a, _), (b, _)| compare_keys(a, b));
    let keep = top as usize;
    if keep != 0 && sorted.len() > keep {
        sorted.drain(..sorted.len() - keep);
    }
    sorted.into_iter().map(|(k, v)| (k, render(v))).collect()
}
