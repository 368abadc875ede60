//! Aggregations kept in per-CPU arrays instead of per-CPU hashes: under
//! the bench's clock a per-CPU hash lookup costs about 309 ns and an
//! array's 37 (docs/benchmarks.md, "What a map lookup costs"), and such a
//! map is looked up at every event. Two kinds of map qualify:
//! - keyless ones (`@us = hist(x)`, `@n = count()`), indexed by the
//!   histogram bucket (0 for a map without buckets);
//! - those keyed by `func` alone in programs on many functions
//!   (`kprobe:vfs_* { @[func] = count(); }`), indexed by the function's
//!   number, its link's cookie ([`crate::symbols::func_cookie`]): every
//!   number is given when the program is checked.
//!
//! An array's slots always exist, so one that is zero on every CPU is read
//! as absent ([`MapSpec::present`]): an aggregation's entry never is (a
//! count, a bucket, an average's count and a min/max's `is_set` start at
//! 1). Sums can be zero and stay hashes. A program cannot delete from an
//! array, and its write reaches one CPU's copy only: a map the program
//! deletes from stays a hash. `clear()` zeroes the slots instead (the
//! loader).

use crate::format::{HistParams, LhistParams};
use crate::output::{MapKind, MapSpec, ValueType};
use crate::symbols::Symbolic;
use crate::typed::{Builtin, TKind, TProbe, TStmt};

/// Marks the maps of `blocks` (all of the program's code) that are kept in
/// arrays, with as many slots as their index takes.
pub(crate) fn aggregations_in_arrays(blocks: &mut [&mut TProbe], maps: &mut [MapSpec]) {
    let mut deleted = vec![false; maps.len()];
    // Per map: every key written or read is `func` of a kprobe_multi program.
    let mut func_only = vec![true; maps.len()];
    for block in blocks.iter_mut() {
        mark_deletes(&block.body, &mut deleted);
        crate::func_keys::each_key(block, &mut |map, keys| {
            func_only[map] &= matches!(
                &keys[..],
                [k] if k.kind == TKind::Builtin(Builtin::FuncCookie)
            );
        });
    }
    let functions = crate::symbols::interned_count();
    for ((map, deleted), func_only) in maps.iter_mut().zip(deleted).zip(func_only) {
        let keyless = map.key.is_empty();
        let by_func = func_only
            && matches!(&map.key[..], [slot] if slot.ty == ValueType::Symbol(Symbolic::Func));
        let slots = match map.kind {
            MapKind::Count | MapKind::Min { .. } | MapKind::Max { .. } | MapKind::Avg { .. } => {
                if keyless {
                    Some(1)
                } else {
                    by_func.then_some(functions as usize)
                }
            }
            MapKind::Hist if keyless => Some(HistParams::default().slots()),
            MapKind::Lhist { min, max, step } if keyless => {
                LhistParams::new(min, max, step).ok().map(|p| p.slots())
            }
            _ => None,
        };
        if let Some(slots) = slots
            && map.per_cpu
            && !deleted
            && let Ok(slots @ 1..) = u32::try_from(slots)
        {
            map.array = true;
            map.max_entries = slots;
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
