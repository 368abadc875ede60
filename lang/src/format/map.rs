//! A map's contents as the printers take them: decoded values per key, and
//! the order and selection bpftrace 0.17 prints them in.

use std::cmp::Ordering;

use super::hist::LhistParams;

/// One element of a map key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KeyPart {
    /// An integer key read at its size and sign-extended: bpftrace prints
    /// integer keys as signed whatever their type.
    Int(i64),
    /// A string key: the bytes before the first NUL.
    Str(Vec<u8>),
}

/// A map key; empty for a map without keys (`@name = ...`).
pub type Key = Vec<KeyPart>;

/// `avg()`'s two counters: how many values and their sum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AvgState {
    pub count: u64,
    /// The sum of the values, each sign-extended to 64 bits if signed.
    pub total: i64,
}

impl AvgState {
    /// bpftrace's average: truncating signed division, 0 when empty.
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
/// already combined (summed for counts, sums, avg and hist buckets; the
/// least or greatest for min and max).
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
    /// `min()`, decoded to the least value seen.
    Min(Vec<(Key, i64)>),
    /// `max()`. bpftrace 0.17 prints it unsigned.
    Max(Vec<(Key, u64)>),
    /// `avg()`.
    Avg(Vec<(Key, AvgState)>),
    /// String assignment (`@x = comm`).
    Str(Vec<(Key, Vec<u8>)>),
    /// `hist()`: per key, the count of each bucket index
    /// ([`super::hist::hist_bucket`]); missing trailing buckets are zero.
    Hist(Vec<(Key, Vec<u64>)>),
    /// `lhist()`: per key, the count of each bucket index
    /// ([`LhistParams::bucket`]).
    Lhist {
        params: LhistParams,
        entries: Vec<(Key, Vec<u64>)>,
    },
}

/// The bias bpftrace 0.17's `min()` stores values with: the map holds
/// `MIN_BIAS - value` and keeps the greatest (signed compare against the
/// stored value, 0 when the key is new), so the first value always lands
/// (for values up to `MIN_BIAS`) and per-CPU copies combine by maximum.
pub const MIN_BIAS: i64 = 0xffff_ffff;

/// The `min()` value of a key from its stored per-CPU copies under the
/// [`MIN_BIAS`] encoding, as bpftrace 0.17 decodes it (0 stays 0, the value
/// `zero()` leaves).
pub fn decode_min(stored_per_cpu: &[i64]) -> i64 {
    let greatest = stored_per_cpu.iter().copied().fold(0, i64::max);
    if greatest == 0 {
        0
    } else {
        MIN_BIAS.wrapping_sub(greatest)
    }
}

/// A single value as `print(expr)` shows it for a non-map expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scalar {
    Signed(i64),
    Unsigned(u64),
    Str(Vec<u8>),
}

/// One map at print time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Map {
    /// With the `@`: `@`, `@bytes`.
    pub name: String,
    pub values: MapValues,
}

/// bpftrace's key order (used where values do not order a map): by the
/// first key part, then the next; integers as unsigned, strings by bytes.
pub(crate) fn compare_keys(a: &Key, b: &Key) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        let order = match (x, y) {
            (KeyPart::Int(x), KeyPart::Int(y)) => (*x as u64).cmp(&(*y as u64)),
            (KeyPart::Str(x), KeyPart::Str(y)) => x.cmp(y),
            (KeyPart::Int(_), KeyPart::Str(_)) => Ordering::Less,
            (KeyPart::Str(_), KeyPart::Int(_)) => Ordering::Greater,
        };
        if order != Ordering::Equal {
            return order;
        }
    }
    a.len().cmp(&b.len())
}

/// Entries in bpftrace's print order, then the last `top` of them when
/// `top` is non-zero (the largest, as `print(@m, top)` shows). bpftrace
/// leaves the order of equal values unspecified; here they follow the key
/// order.
pub(crate) fn ordered<V: Clone, S: Ord>(
    entries: &[(Key, V)],
    sort_value: impl Fn(&V) -> S,
    top: u32,
) -> Vec<(Key, V)> {
    let mut sorted = entries.to_vec();
    sorted.sort_by(|(ka, va), (kb, vb)| {
        sort_value(va)
            .cmp(&sort_value(vb))
            .then_with(|| compare_keys(ka, kb))
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
        match self {
            MapValues::Count(e) | MapValues::Max(e) => e.is_empty(),
            MapValues::Int { entries, .. } => entries.is_empty(),
            MapValues::Min(e) => e.is_empty(),
            MapValues::Avg(e) => e.is_empty(),
            MapValues::Str(e) => e.is_empty(),
            MapValues::Hist(e) | MapValues::Lhist { entries: e, .. } => e.is_empty(),
        }
    }

    /// Whether the map has keys (`@name[...]`), read from its first entry.
    pub(crate) fn is_keyed(&self) -> bool {
        fn first<V>(e: &[(Key, V)]) -> bool {
            e.first().is_some_and(|(k, _)| !k.is_empty())
        }
        match self {
            MapValues::Count(e) | MapValues::Max(e) => first(e),
            MapValues::Int { entries, .. } => first(entries),
            MapValues::Min(e) => first(e),
            MapValues::Avg(e) => first(e),
            MapValues::Str(e) => first(e),
            MapValues::Hist(e) | MapValues::Lhist { entries: e, .. } => first(e),
        }
    }
}

/// A scalar value rendered for the text and JSON printers, after sorting,
/// `top` and `div`.
pub(crate) enum Rendered {
    Number(String),
    Str(Vec<u8>),
    Hist(Vec<u64>),
}

/// The entries of `values` in print order with their values after `div`
/// (0 counts as 1). Histograms keep their raw counts: each printer applies
/// `div` where bpftrace does.
pub(crate) fn rendered_entries(values: &MapValues, top: u32, div: u32) -> Vec<(Key, Rendered)> {
    let div = u64::from(div.max(1));
    let sdiv = div as i64;
    let num = |s: String| Rendered::Number(s);
    match values {
        MapValues::Count(e) => ordered(e, |v| *v, top)
            .into_iter()
            .map(|(k, v)| (k, num((v / div).to_string())))
            .collect(),
        MapValues::Int {
            signed: true,
            entries,
        } => ordered(entries, |v| *v as i64, top)
            .into_iter()
            .map(|(k, v)| (k, num((v as i64).wrapping_div(sdiv).to_string())))
            .collect(),
        MapValues::Int {
            signed: false,
            entries,
        } => ordered(entries, |v| *v, top)
            .into_iter()
            .map(|(k, v)| (k, num((v / div).to_string())))
            .collect(),
        MapValues::Min(e) => ordered(e, |v| *v, top)
            .into_iter()
            .map(|(k, v)| (k, num(v.wrapping_div(sdiv).to_string())))
            .collect(),
        MapValues::Max(e) => ordered(e, |v| *v, top)
            .into_iter()
            .map(|(k, v)| (k, num((v / div).to_string())))
            .collect(),
        MapValues::Avg(e) => ordered(e, AvgState::average, top)
            .into_iter()
            .map(|(k, v)| (k, num(v.average().wrapping_div(sdiv).to_string())))
            .collect(),
        MapValues::Str(e) => {
            let mut sorted = e.clone();
            sorted.sort_by(|(a, _), (b, _)| compare_keys(a, b));
            let keep = top as usize;
            if keep != 0 && sorted.len() > keep {
                sorted.drain(..sorted.len() - keep);
            }
            sorted
                .into_iter()
                .map(|(k, v)| (k, Rendered::Str(v)))
                .collect()
        }
        MapValues::Hist(e) | MapValues::Lhist { entries: e, .. } => {
            ordered(e, |b| hist_total(b), top)
                .into_iter()
                .map(|(k, v)| (k, Rendered::Hist(v)))
                .collect()
        }
    }
}
