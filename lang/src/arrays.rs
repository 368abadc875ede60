//! Keyless aggregations (`@us = hist(x)`, `@n = count()`) kept in per-CPU
//! arrays instead of per-CPU hashes: under the bench's clock a per-CPU
//! hash lookup costs about 309 ns and an array's 37 (docs/benchmarks.md,
//! "What a map lookup costs"), and such a map is looked up at every event.
//! The array is indexed by the histogram bucket (0 for a map without
//! buckets); an array's slots always exist, so one that is zero on every
//! CPU is read as absent ([`MapSpec::present`]): an aggregation's entry
//! never is (a count, a bucket, an average's count and a min/max's
//! `is_set` start at 1). A program cannot delete from an array, and a
//! program's write reaches one CPU's copy only: a map the program deletes
//! from stays a hash. `clear()` zeroes the slots instead (the loader).

use crate::format::{HistParams, LhistParams};
use crate::output::{MapKind, MapSpec};
use crate::typed::{TProbe, TStmt};

/// Marks the maps of `blocks` (all of the program's code) that are kept in
/// arrays, with as many slots as their buckets.
pub(crate) fn keyless_in_arrays(blocks: &[&TProbe], maps: &mut [MapSpec]) {
    for (at, map) in maps.iter_mut().enumerate() {
        let slots = match map.kind {
            MapKind::Count | MapKind::Min { .. } | MapKind::Max { .. } | MapKind::Avg { .. } => {
                Some(1)
            }
            MapKind::Hist => Some(HistParams::default().slots()),
            MapKind::Lhist { min, max, step } => {
                LhistParams::new(min, max, step).ok().map(|p| p.slots())
            }
            MapKind::Sum { .. } | MapKind::Assign(_) | MapKind::Tuple => None,
        };
        let deletes = |stmt: &TStmt| matches!(stmt, TStmt::Delete { map, .. } if *map == at);
        if let Some(slots) = slots
            && map.per_cpu
            && map.key.is_empty()
            && !blocks.iter().any(|b| TStmt::any_in(&b.body, &deletes))
        {
            map.array = true;
            map.max_entries = slots as u32;
        }
    }
}
