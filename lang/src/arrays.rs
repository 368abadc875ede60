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
    let mut deleted = vec![false; maps.len()];
    for block in blocks {
        mark_deletes(&block.body, &mut deleted);
    }
    for (map, deleted) in maps.iter_mut().zip(deleted) {
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
        if let Some(slots) = slots
            && map.per_cpu
            && map.key.is_empty()
            && !deleted
        {
            map.array = true;
            map.max_entries = slots as u32;
        }
    }
}

fn mark_deletes(stmts: &[TStmt], deleted: &mut [bool]) {
    for stmt in stmts {
        match stmt {
            TStmt::Delete { map, .. } => deleted[*map] = true,
            TStmt::If {
                then, otherwise, ..
            } => {
                mark_deletes(then, deleted);
                mark_deletes(otherwise, deleted);
            }
            TStmt::While { body, .. } | TStmt::Unroll { body, .. } => mark_deletes(body, deleted),
            TStmt::AssignVar { .. }
            | TStmt::MapAssign { .. }
            | TStmt::MapAgg { .. }
            | TStmt::Emit { .. }
            | TStmt::Jump { .. } => {}
        }
    }
}
