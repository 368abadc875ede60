//! The legacy `maps` section: an array of `struct bpf_map_def`, one per map
//! symbol. Its element size is whatever struct the program declared (20 bytes
//! for libbpf's, 28 for samples/bpf's), so the stride comes from the symbols.

use super::MapDef;
use super::elf::Symbol;
use super::error::ObjError;

/// type, key_size, value_size, max_entries: the fields every variant has.
const MIN_DEF: usize = 16;
/// ... plus map_flags: `struct bpf_map_def` as libbpf declared it.
const FULL_DEF: usize = 20;
/// Generous bound for definitions with extra (zero) fields; it also keeps a
/// corrupt symbol size from allocating without limit.
const MAX_DEF: usize = 256;

/// A map and where its definition starts in `maps`.
pub(super) struct Placed {
    pub offset: u64,
    pub def: MapDef,
}

/// Decodes the definitions named by `symbols` (those in the `maps` section)
/// from the section's bytes. `size` is the section size (NOBITS sections
/// have no bytes but a size; their definitions are all zero).
pub(super) fn parse(data: &[u8], size: u64, symbols: &[Symbol]) -> Result<Vec<Placed>, ObjError> {
    let bad = |cause: String| ObjError::BadMapsSection { cause };
    let mut syms: Vec<&Symbol> = symbols.iter().collect();
    syms.sort_by_key(|s| s.value);
    if syms.is_empty() {
        return if size == 0 {
            Ok(Vec::new())
        } else {
            Err(bad(format!(
                "{size} bytes but no symbol names a map in them"
            )))
        };
    }
    let stride = stride(size, &syms).map_err(bad)?;
    if stride > MAX_DEF {
        return Err(bad(format!(
            "{stride}-byte definitions are larger than any bpf_map_def ({MAX_DEF} bytes at most)"
        )));
    }
    if stride < MIN_DEF {
        return Err(bad(format!(
            "{stride}-byte definitions are smaller than the {MIN_DEF} bytes of \
             type, key_size, value_size and max_entries"
        )));
    }
    let mut maps = Vec::with_capacity(syms.len());
    for (i, sym) in syms.iter().enumerate() {
        if i > 0 && syms[i - 1].value == sym.value {
            return Err(bad(format!(
                "maps `{}` and `{}` start at the same offset {}",
                syms[i - 1].name,
                sym.name,
                sym.value
            )));
        }
        let in_section = sym
            .value
            .checked_add(stride as u64)
            .is_some_and(|end| end <= size);
        if sym.value % stride as u64 != 0 || !in_section {
            return Err(bad(format!(
                "map `{}` at offset {} is not one of the {}-byte slots of the {size}-byte section",
                sym.name, sym.value, stride
            )));
        }
        let start = sym.value as usize;
        // Bytes past the end of a NOBITS section's (empty) data read as zero.
        let bytes: Vec<u8> = (start..start + stride)
            .map(|at| data.get(at).copied().unwrap_or(0))
            .collect();
        let extra = bytes.get(FULL_DEF..).unwrap_or(&[]);
        if let (Some(first), Some(last)) = (
            extra.iter().position(|&b| b != 0),
            extra.iter().rposition(|&b| b != 0),
        ) {
            let (from, to) = (FULL_DEF + first, FULL_DEF + last + 1);
            return Err(ObjError::MapExtraFields {
                map: sym.name.clone(),
                stride,
                from,
                to,
            });
        }
        let field = |n: usize| {
            let at = n * 4;
            bytes
                .get(at..at + 4)
                .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        maps.push(Placed {
            offset: sym.value,
            def: MapDef {
                name: sym.name.clone(),
                map_type: field(0),
                key_size: field(1),
                value_size: field(2),
                max_entries: field(3),
                map_flags: field(4),
            },
        });
    }
    Ok(maps)
}

/// The size of one definition: the symbols' size when they all agree (clang
/// records it), else the section split evenly between them (as libbpf did).
fn stride(size: u64, syms: &[&Symbol]) -> Result<usize, String> {
    let first = syms[0].size;
    if first != 0 && syms.iter().all(|s| s.size == first) {
        return usize::try_from(first).map_err(|_| format!("a map definition of {first} bytes"));
    }
    if syms.iter().any(|s| s.size != 0) {
        return Err(format!(
            "its map symbols have different sizes ({}): all maps must use one struct",
            syms.iter()
                .map(|s| format!("{} {}", s.name, s.size))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let count = syms.len() as u64;
    if !size.is_multiple_of(count) {
        return Err(format!(
            "{size} bytes do not split evenly between {count} maps"
        ));
    }
    usize::try_from(size / count).map_err(|_| format!("a {size}-byte section"))
}
