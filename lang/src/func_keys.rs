//! A string map key part that every use fills with a constant (`@[func]`
//! in a kprobe: `func` is the function's name as a constant) becomes the
//! string's number in [`symbols::intern`]'s table, printed as the string
//! ([`Symbolic::Name`]): each hit then hashes and compares 8 bytes instead
//! of a 64-byte string, and builds no string on the stack, as bpftrace's
//! key of `func` (the function's address) does. Unlike an address it needs
//! no kallsyms (reading and parsing it added 1.5 s to the start of
//! `kprobe:vfs_*` under emulation). The output is the same: the printer
//! sorts and prints the part as the string it stands for.

use crate::output::{MapKind, MapSpec, ValueType};
use crate::symbols::{self, Symbolic};
use crate::typed::{Agg, TExpr, TKind, TProbe, TStmt, Ty};

/// Rewrites `maps`' key parts, and every key that fills them in `blocks`
/// (all of the program's code: probes, BEGIN, END, timers).
pub(crate) fn number_constant_keys(blocks: &mut [&mut TProbe], maps: &mut [MapSpec]) {
    // Per map, per key part: still a candidate; and whether any key was seen.
    let mut candidate: Vec<Vec<bool>> = maps
        .iter()
        .map(|m| {
            m.key
                .iter()
                .map(|s| matches!(s.ty, ValueType::Str { .. }))
                .collect()
        })
        .collect();
    let mut seen = vec![false; maps.len()];
    for block in blocks.iter_mut() {
        each_key(block, &mut |map, keys| {
            seen[map] = true;
            let parts = &mut candidate[map];
            // A tuple fills several parts: left as it is.
            if keys.len() != parts.len() {
                parts.iter_mut().for_each(|c| *c = false);
                return;
            }
            for (part, key) in parts.iter_mut().zip(keys.iter()) {
                *part &= matches!(key.kind, TKind::ConstStr(_));
            }
        });
    }
    for (map, parts) in candidate.iter_mut().enumerate() {
        if !seen[map] {
            parts.iter_mut().for_each(|c| *c = false);
        }
    }
    if candidate.iter().flatten().all(|c| !c) {
        return;
    }
    for block in blocks.iter_mut() {
        each_key(block, &mut |map, keys| {
            for (key, _) in keys.iter_mut().zip(&candidate[map]).filter(|(_, c)| **c) {
                if let TKind::ConstStr(name) = &key.kind {
                    key.kind = TKind::Const(symbols::intern(name));
                    key.ty = Ty::Symbol(Symbolic::Name);
                }
            }
        });
    }
    for (spec, parts) in maps.iter_mut().zip(&candidate) {
        if !parts.iter().any(|c| *c) {
            continue;
        }
        let mut offset = 0;
        for (slot, convert) in spec.key.iter_mut().zip(parts) {
            if *convert {
                slot.ty = ValueType::Symbol(Symbolic::Name);
            }
            slot.offset = offset;
            offset += slot.ty.size();
        }
        let bucket = matches!(spec.kind, MapKind::Hist | MapKind::Lhist { .. });
        spec.key_size = (offset + if bucket { 8 } else { 0 }).max(8);
    }
}

/// Calls `f` with every map key list in `block` (map index, keys), inner
/// ones (a map read inside a key) first.
fn each_key(block: &mut TProbe, f: &mut dyn FnMut(usize, &mut Vec<TExpr>)) {
    if let Some(p) = block.predicate.as_mut() {
        expr_keys(p, f);
    }
    stmts_keys(&mut block.body, f);
}

fn stmts_keys(stmts: &mut [TStmt], f: &mut dyn FnMut(usize, &mut Vec<TExpr>)) {
    for stmt in stmts {
        match stmt {
            TStmt::AssignVar { value, .. } => expr_keys(value, f),
            TStmt::MapAssign {
                map, keys, value, ..
            } => {
                expr_keys(value, f);
                keys.iter_mut().for_each(|k| expr_keys(k, f));
                f(*map, keys);
            }
            TStmt::MapAgg { map, keys, agg, .. } => {
                match agg {
                    Agg::Count => {}
                    Agg::Sum(e) | Agg::Min(e) | Agg::Max(e) | Agg::Avg(e) | Agg::Hist(e) => {
                        expr_keys(e, f)
                    }
                    Agg::Lhist { value, .. } => expr_keys(value, f),
                }
                keys.iter_mut().for_each(|k| expr_keys(k, f));
                f(*map, keys);
            }
            TStmt::Delete { map, keys, .. } => {
                keys.iter_mut().for_each(|k| expr_keys(k, f));
                f(*map, keys);
            }
            TStmt::Emit { args, .. } => args.iter_mut().for_each(|a| expr_keys(a, f)),
            TStmt::If {
                cond,
                then,
                otherwise,
                ..
            } => {
                expr_keys(cond, f);
                stmts_keys(then, f);
                stmts_keys(otherwise, f);
            }
            TStmt::While { cond, body, .. } => {
                expr_keys(cond, f);
                stmts_keys(body, f);
            }
            TStmt::Unroll { body, .. } => stmts_keys(body, f),
            TStmt::Jump { .. } => {}
        }
    }
}

fn expr_keys(e: &mut TExpr, f: &mut dyn FnMut(usize, &mut Vec<TExpr>)) {
    for child in e.kind.children_mut() {
        expr_keys(child, f);
    }
    if let TKind::MapGet { map, keys } = &mut e.kind {
        f(*map, keys);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::{Checked, Target, check_program};
    use crate::fields::FieldInfo;
    use crate::kernel::Kernel;
    use crate::tracepoint::NoTracepoints;
    use kernel_headers::KernelVersion;
    use kernel_headers::pt_regs::x86_64::ABI;

    fn rewritten(source: &str) -> Checked {
        let fields: Vec<(&'static str, FieldInfo)> = Vec::new();
        let target = Target {
            fields: &fields,
            tracepoints: &NoTracepoints,
            kernel: Kernel::for_release(KernelVersion::new(5, 10, 0), &ABI),
        };
        let mut checked = check_program(source, &target, &[], false).unwrap();
        let Checked { probes, compiled } = &mut checked;
        let mut blocks: Vec<&mut TProbe> = probes
            .iter_mut()
            .map(|(_, t, _)| t)
            .chain(compiled.end.iter_mut())
            .collect();
        number_constant_keys(&mut blocks, &mut compiled.maps);
        checked
    }

    fn key_types(checked: &Checked, map: &str) -> (Vec<ValueType>, u32) {
        let spec = checked
            .compiled
            .maps
            .iter()
            .find(|m| m.name == map)
            .unwrap();
        (spec.key.iter().map(|s| s.ty).collect(), spec.key_size)
    }

    #[test]
    fn a_function_name_key_becomes_its_number() {
        let checked = rewritten(
            "kprobe:vfs_read,kprobe:vfs_write { @[func] = count(); @h[func, pid] = hist(pid); }",
        );
        let name = ValueType::Symbol(Symbolic::Name);
        assert_eq!(key_types(&checked, "@"), (vec![name], 8));
        let (types, size) = key_types(&checked, "@h");
        assert_eq!(types[0], name);
        // The number, the pid, the bucket.
        assert_eq!(size, 24);
        let TStmt::MapAgg { keys, .. } = &checked.probes[1].1.body[0] else {
            panic!("{:?}", checked.probes[1].1.body)
        };
        let TKind::Const(id) = keys[0].kind else {
            panic!("{keys:?}")
        };
        assert_eq!(symbols::text(Symbolic::Name, id), b"vfs_write");
    }

    #[test]
    fn a_key_used_otherwise_anywhere_stays_a_string() {
        for source in [
            // A read of the map with a computed key.
            "kprobe:vfs_read { @[func] = nsecs; } kprobe:vfs_write { @x = @[comm]; }",
            // Through a variable.
            "kprobe:vfs_read { @[func] = count(); } kprobe:vfs_write { $f = func; @[$f] = count(); }",
            // The key in END, through a variable.
            r#"kprobe:vfs_read { @[func] = count(); } END { $f = "vfs_read"; delete(@[$f]); }"#,
        ] {
            let checked = rewritten(source);
            let (types, _) = key_types(&checked, "@");
            assert!(
                matches!(types[0], ValueType::Str { .. }),
                "{source}: {types:?}"
            );
        }
    }

    #[test]
    fn keys_in_predicates_and_deletes_are_rewritten_too() {
        let checked = rewritten(
            "kprobe:vfs_read /@[func] > 1/ { delete(@[func]); } kprobe:vfs_write { @[func] = nsecs; }",
        );
        let Some(TExpr {
            kind: TKind::Binary { left, .. },
            ..
        }) = &checked.probes[0].1.predicate
        else {
            panic!("{:?}", checked.probes[0].1.predicate)
        };
        let TKind::MapGet { keys, .. } = &left.kind else {
            panic!("{left:?}")
        };
        let TKind::Const(id) = keys[0].kind else {
            panic!("{keys:?}")
        };
        assert_eq!(symbols::text(Symbolic::Name, id), b"vfs_read");
        let TStmt::Delete { keys, .. } = &checked.probes[0].1.body[0] else {
            panic!()
        };
        assert_eq!(keys[0].ty, Ty::Symbol(Symbolic::Name));
    }
}
