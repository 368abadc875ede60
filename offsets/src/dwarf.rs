//! Struct layouts and one function signature from DWARF, through `gimli`.

use std::collections::BTreeMap;

use gimli::{AttributeValue, DwAt, DwTag, EndianSlice, LittleEndian, UnitOffset, constants as dw};

use crate::error::GenError;
use crate::model::{FieldPath, FnSig, ParamType};
use profile::{Field, StructLayout};

type R<'a> = EndianSlice<'a, LittleEndian>;
type Unit<'a> = gimli::Unit<R<'a>>;
type Dwarf<'a> = gimli::Dwarf<R<'a>>;

const MAX_DEPTH: usize = 64;

fn err(e: impl std::fmt::Display) -> GenError {
    GenError::Dwarf(e.to_string())
}

/// What a scan found: each requested field (or why it failed), the
/// function's signature if some unit declares or defines it, and the
/// requested structs' layouts and enumerators' values that some unit has.
#[derive(Debug, Default)]
pub struct Found {
    pub fields: BTreeMap<FieldPath, Result<Field, String>>,
    pub function: Option<FnSig>,
    pub structs: BTreeMap<String, StructLayout>,
    pub enums: BTreeMap<String, i64>,
}

/// What a scan looks for besides the fields and the function.
#[derive(Debug, Default, Clone, Copy)]
pub struct Wanted<'a> {
    /// Structs whose size and alignment are wanted.
    pub structs: &'a [String],
    /// Enumerators whose values are wanted.
    pub enums: &'a [String],
}

/// Scan `dwarf` (sections already loaded) until every struct in `paths`,
/// `function` and everything in `wanted` are found, or the units run out.
pub fn scan(
    dwarf: &Dwarf,
    paths: &[FieldPath],
    function: &str,
    wanted: Wanted,
) -> Result<Found, GenError> {
    let mut found = Found::default();
    let mut units = dwarf.units();
    while let Some(header) = units.next().map_err(err)? {
        let unit = dwarf.unit(header).map_err(err)?;
        scan_unit(dwarf, &unit, paths, function, wanted, &mut found)?;
        if found.fields.len() == paths.len()
            && found.function.is_some()
            && found.structs.len() == wanted.structs.len()
            && found.enums.len() == wanted.enums.len()
        {
            break;
        }
    }
    Ok(found)
}

fn scan_unit(
    dwarf: &Dwarf,
    unit: &Unit,
    paths: &[FieldPath],
    function: &str,
    wanted: Wanted,
    found: &mut Found,
) -> Result<(), GenError> {
    let mut cursor = unit.entries();
    let mut depth: isize = 0;
    let mut in_enum = false;
    while let Some((delta, entry)) = cursor.next_dfs().map_err(err)? {
        depth += delta;
        if depth == 2 && in_enum && entry.tag() == dw::DW_TAG_enumerator {
            if let Some(name) = name_of(dwarf, unit, entry)?
                && wanted.enums.contains(&name)
                && !found.enums.contains_key(&name)
                && let Some(value) = entry.attr_value(dw::DW_AT_const_value).map_err(err)?
            {
                // Data forms hold the value unsigned; sdata signed.
                let value = match value {
                    AttributeValue::Sdata(v) => Some(v),
                    other => other.udata_value().map(|v| v as i64),
                };
                if let Some(value) = value {
                    found.enums.insert(name, value);
                }
            }
            continue;
        }
        if depth != 1 {
            continue;
        }
        let tag = entry.tag();
        in_enum = tag == dw::DW_TAG_enumeration_type && !wanted.enums.is_empty();
        if tag != dw::DW_TAG_structure_type && tag != dw::DW_TAG_subprogram {
            continue;
        }
        let Some(name) = name_of(dwarf, unit, entry)? else {
            continue;
        };
        if tag == dw::DW_TAG_structure_type {
            if entry.attr(dw::DW_AT_declaration).map_err(err)?.is_some() {
                continue;
            }
            if wanted.structs.contains(&name) && !found.structs.contains_key(&name) {
                let size = size_of(unit, entry.offset(), 0)?;
                let align = align_of(unit, entry.offset(), 0)?;
                if let (Ok(size), Ok(align)) = (u32::try_from(size), u32::try_from(align))
                    && size > 0
                {
                    found
                        .structs
                        .insert(name.clone(), StructLayout { size, align });
                }
            }
            for path in paths.iter().filter(|p| p.strukt == name) {
                if found.fields.contains_key(path) {
                    continue;
                }
                let result = field(dwarf, unit, entry.offset(), path);
                let result = match result {
                    Ok(f) => Ok(f),
                    Err(e @ GenError::Dwarf(_)) => return Err(e),
                    Err(e) => Err(e.to_string()),
                };
                found.fields.insert(path.clone(), result);
            }
        } else if name == function && found.function.is_none() {
            let external = entry.attr(dw::DW_AT_external).map_err(err)?.is_some();
            let code = entry.attr(dw::DW_AT_low_pc).map_err(err)?.is_some();
            let params = params(dwarf, unit, entry.offset())?;
            // A declaration with no parameter DIEs says nothing about the
            // signature; keep looking for a better one.
            if !params.is_empty() {
                found.function = Some(FnSig {
                    params,
                    symbol: external || code,
                });
            }
        }
    }
    Ok(())
}

fn name_of(
    dwarf: &Dwarf,
    unit: &Unit,
    entry: &gimli::DebuggingInformationEntry<R>,
) -> Result<Option<String>, GenError> {
    match entry.attr_value(dw::DW_AT_name).map_err(err)? {
        Some(value) => {
            let s = dwarf.attr_string(unit, value).map_err(err)?;
            Ok(Some(String::from_utf8_lossy(s.slice()).into_owned()))
        }
        None => Ok(None),
    }
}

fn type_ref(entry: &gimli::DebuggingInformationEntry<R>) -> Result<Option<UnitOffset>, GenError> {
    match entry.attr_value(dw::DW_AT_type).map_err(err)? {
        None => Ok(None),
        Some(AttributeValue::UnitRef(off)) => Ok(Some(off)),
        Some(other) => Err(err(format!(
            "type reference form {other:?} is not supported (only unit-local references)"
        ))),
    }
}

fn udata(entry: &gimli::DebuggingInformationEntry<R>, at: DwAt) -> Result<Option<u64>, GenError> {
    Ok(entry.attr(at).map_err(err)?.and_then(|a| a.udata_value()))
}

fn is_alias(tag: DwTag) -> bool {
    matches!(
        tag,
        dw::DW_TAG_typedef
            | dw::DW_TAG_const_type
            | dw::DW_TAG_volatile_type
            | dw::DW_TAG_restrict_type
            | dw::DW_TAG_atomic_type
    )
}

/// Follow typedefs and qualifiers.
fn strip(unit: &Unit, mut off: UnitOffset) -> Result<UnitOffset, GenError> {
    for _ in 0..MAX_DEPTH {
        let entry = unit.entry(off).map_err(err)?;
        if !is_alias(entry.tag()) {
            return Ok(off);
        }
        match type_ref(&entry)? {
            Some(next) => off = next,
            None => return Ok(off), // `const void`
        }
    }
    Err(err("typedef chain does not end"))
}

fn size_of(unit: &Unit, off: UnitOffset, depth: usize) -> Result<u64, GenError> {
    if depth > MAX_DEPTH {
        return Err(err("type nesting too deep"));
    }
    let off = strip(unit, off)?;
    let entry = unit.entry(off).map_err(err)?;
    if let Some(size) = udata(&entry, dw::DW_AT_byte_size)? {
        return Ok(size);
    }
    match entry.tag() {
        dw::DW_TAG_pointer_type | dw::DW_TAG_reference_type => {
            Ok(u64::from(unit.encoding().address_size))
        }
        dw::DW_TAG_array_type => {
            let elem = type_ref(&entry)?.ok_or_else(|| err("array without element type"))?;
            let size = size_of(unit, elem, depth + 1)?;
            Ok(array_counts(unit, off)?
                .into_iter()
                .fold(size, u64::saturating_mul))
        }
        _ => Ok(0),
    }
}

/// Alignment of the type at `off` as the C ABI placed it: DWARF 5's
/// `DW_AT_alignment` when given, else a record's widest member's (1 when
/// a member sits off its alignment: packed), a scalar's size (at most 8).
fn align_of(unit: &Unit, off: UnitOffset, depth: usize) -> Result<u64, GenError> {
    if depth > MAX_DEPTH {
        return Err(err("type nesting too deep"));
    }
    let off = strip(unit, off)?;
    let entry = unit.entry(off).map_err(err)?;
    if let Some(align) = udata(&entry, dw::DW_AT_alignment)? {
        return Ok(align);
    }
    Ok(match entry.tag() {
        dw::DW_TAG_pointer_type | dw::DW_TAG_reference_type => {
            u64::from(unit.encoding().address_size)
        }
        dw::DW_TAG_array_type => match type_ref(&entry)? {
            Some(elem) => align_of(unit, elem, depth + 1)?,
            None => 1,
        },
        dw::DW_TAG_structure_type | dw::DW_TAG_union_type => {
            let mut align = 1;
            let mut tree = unit.entries_tree(Some(off)).map_err(err)?;
            let mut children = tree.root().map_err(err)?.children();
            while let Some(child) = children.next().map_err(err)? {
                let e = child.entry();
                if e.tag() != dw::DW_TAG_member {
                    continue;
                }
                let Some(ty) = type_ref(e)? else { continue };
                let a = align_of(unit, ty, depth + 1)?.max(1);
                let bitfield = e.attr(dw::DW_AT_bit_size).map_err(err)?.is_some();
                if !bitfield && member_offset(e)? % a != 0 {
                    return Ok(1);
                }
                align = align.max(a);
            }
            align
        }
        _ => udata(&entry, dw::DW_AT_byte_size)?.unwrap_or(1).clamp(1, 8),
    })
}

fn member_offset(entry: &gimli::DebuggingInformationEntry<R>) -> Result<u64, GenError> {
    match entry
        .attr_value(dw::DW_AT_data_member_location)
        .map_err(err)?
    {
        None => Ok(0), // union members
        Some(AttributeValue::Exprloc(expr)) => {
            // DWARF 2/3: `DW_OP_plus_uconst N`.
            let mut r = expr.0;
            let op = gimli::Reader::read_u8(&mut r).map_err(err)?;
            if op != dw::DW_OP_plus_uconst.0 {
                return Err(err(format!(
                    "member location op {op:#x} is not plus_uconst"
                )));
            }
            gimli::Reader::read_uleb128(&mut r).map_err(err)
        }
        Some(v) => v
            .udata_value()
            .ok_or_else(|| err(format!("member location {v:?} is not a constant"))),
    }
}

struct MemberHit {
    offset: u64,
    ty: UnitOffset,
    bitfield: bool,
}

/// Find `name` among the members of struct/union `off`, looking through
/// anonymous struct/union members.
fn find_member(
    dwarf: &Dwarf,
    unit: &Unit,
    off: UnitOffset,
    name: &str,
    depth: usize,
) -> Result<Option<MemberHit>, GenError> {
    if depth > MAX_DEPTH {
        return Err(err("anonymous member nesting too deep"));
    }
    let off = strip(unit, off)?;
    let mut anonymous = Vec::new();
    let mut tree = unit.entries_tree(Some(off)).map_err(err)?;
    let root = tree.root().map_err(err)?;
    if !matches!(
        root.entry().tag(),
        dw::DW_TAG_structure_type | dw::DW_TAG_union_type
    ) {
        return Ok(None);
    }
    let mut children = root.children();
    while let Some(child) = children.next().map_err(err)? {
        let e = child.entry();
        if e.tag() != dw::DW_TAG_member {
            continue;
        }
        let Some(ty) = type_ref(e)? else { continue };
        let offset = member_offset(e)?;
        match name_of(dwarf, unit, e)? {
            Some(n) if n == name => {
                let bitfield = e.attr(dw::DW_AT_bit_size).map_err(err)?.is_some();
                return Ok(Some(MemberHit {
                    offset,
                    ty,
                    bitfield,
                }));
            }
            Some(_) => {}
            None => anonymous.push((offset, ty)),
        }
    }
    for (base, ty) in anonymous {
        if let Some(mut hit) = find_member(dwarf, unit, ty, name, depth + 1)? {
            hit.offset = hit.offset.saturating_add(base);
            return Ok(Some(hit));
        }
    }
    Ok(None)
}

fn field(dwarf: &Dwarf, unit: &Unit, off: UnitOffset, path: &FieldPath) -> Result<Field, GenError> {
    let mut ty = off;
    let mut offset = 0u64;
    let mut size = 0u64;
    let mut where_ = path.strukt.clone();
    for member in &path.members {
        let hit = find_member(dwarf, unit, ty, member, 0)?.ok_or_else(|| GenError::NoMember {
            strukt: where_.clone(),
            member: member.clone(),
        })?;
        where_ = format!("{where_}.{member}");
        if hit.bitfield {
            return Err(GenError::BitField(where_));
        }
        offset = offset.saturating_add(hit.offset);
        size = size_of(unit, hit.ty, 0)?;
        ty = hit.ty;
    }
    if size == 0 {
        return Err(GenError::Unsized(path.key()));
    }
    let conv = |v: u64| u32::try_from(v).map_err(|_| err(format!("{} is too large", path.key())));
    Ok(Field {
        offset: conv(offset)?,
        size: conv(size)?,
        c_type: Some(type_text(dwarf, unit, Some(ty), 0)?),
    })
}

/// The C text of the type at `off` (None: `void`), written as
/// `btf::Btf::type_text` writes BTF's (qualifiers dropped, a typedef's name
/// kept unless it names a pointer or an array), so a profile says the same
/// whichever source it came from.
fn type_text(
    dwarf: &Dwarf,
    unit: &Unit,
    off: Option<UnitOffset>,
    depth: usize,
) -> Result<String, GenError> {
    if depth > MAX_DEPTH {
        return Err(err("type nesting too deep"));
    }
    let Some(off) = off else {
        return Ok("void".into());
    };
    let entry = unit.entry(off).map_err(err)?;
    let name =
        || -> Result<String, GenError> { Ok(name_of(dwarf, unit, &entry)?.unwrap_or_default()) };
    let inner = || type_text(dwarf, unit, type_ref(&entry)?, depth + 1);
    Ok(match entry.tag() {
        dw::DW_TAG_base_type => name()?,
        dw::DW_TAG_structure_type => format!("struct {}", name()?),
        dw::DW_TAG_union_type => format!("union {}", name()?),
        dw::DW_TAG_enumeration_type => format!("enum {}", name()?),
        dw::DW_TAG_typedef => {
            let inner = inner()?;
            if inner.ends_with('*') || inner.ends_with(']') {
                inner
            } else {
                name()?
            }
        }
        tag if is_alias(tag) => inner()?,
        dw::DW_TAG_pointer_type | dw::DW_TAG_reference_type => format!("{} *", inner()?),
        dw::DW_TAG_array_type => {
            // BTF nests one array per dimension, the outermost last:
            // `char a[2][16]` is `char[16][2]` there.
            let mut text = inner()?;
            for count in array_counts(unit, off)?.iter().rev() {
                text.push_str(&format!("[{count}]"));
            }
            text
        }
        _ => "void (*)()".into(),
    })
}

/// The element counts of array `off`, outermost first; 0 for a flexible one.
fn array_counts(unit: &Unit, off: UnitOffset) -> Result<Vec<u64>, GenError> {
    let mut counts = Vec::new();
    let mut tree = unit.entries_tree(Some(off)).map_err(err)?;
    let mut children = tree.root().map_err(err)?.children();
    while let Some(child) = children.next().map_err(err)? {
        let e = child.entry();
        if e.tag() != dw::DW_TAG_subrange_type {
            continue;
        }
        counts.push(
            match (udata(e, dw::DW_AT_count)?, udata(e, dw::DW_AT_upper_bound)?) {
                (Some(c), _) => c,
                (None, Some(u)) => u.wrapping_add(1),
                (None, None) => 0, // a flexible array
            },
        );
    }
    Ok(counts)
}

fn params(
    dwarf: &Dwarf,
    unit: &Unit,
    off: UnitOffset,
) -> Result<Vec<(String, ParamType)>, GenError> {
    let mut out = Vec::new();
    let mut tree = unit.entries_tree(Some(off)).map_err(err)?;
    let mut children = tree.root().map_err(err)?.children();
    while let Some(child) = children.next().map_err(err)? {
        let e = child.entry();
        if e.tag() != dw::DW_TAG_formal_parameter {
            continue;
        }
        let name = name_of(dwarf, unit, e)?.unwrap_or_default();
        let ty = match type_ref(e)? {
            Some(t) => param_type(dwarf, unit, t)?,
            None => ParamType::Other("?".into()),
        };
        out.push((name, ty));
    }
    Ok(out)
}

fn param_type(dwarf: &Dwarf, unit: &Unit, off: UnitOffset) -> Result<ParamType, GenError> {
    let off = strip(unit, off)?;
    let entry = unit.entry(off).map_err(err)?;
    if entry.tag() != dw::DW_TAG_pointer_type {
        return Ok(ParamType::Other(
            name_of(dwarf, unit, &entry)?.unwrap_or_default(),
        ));
    }
    let Some(target) = type_ref(&entry)? else {
        return Ok(ParamType::Other("void *".into()));
    };
    let target = unit.entry(strip(unit, target)?).map_err(err)?;
    let name = name_of(dwarf, unit, &target)?.unwrap_or_default();
    Ok(match target.tag() {
        dw::DW_TAG_structure_type => ParamType::StructPtr(name),
        dw::DW_TAG_base_type if name.contains("char") => ParamType::CharPtr,
        _ => ParamType::Other(format!("{name} *")),
    })
}

/// Load the DWARF sections of an ELF (through `crate::elf`) and scan them.
pub fn scan_elf(
    elf: &crate::elf::Elf,
    paths: &[FieldPath],
    function: &str,
    wanted: Wanted,
) -> Result<Found, GenError> {
    with_dwarf(elf, |dwarf| scan(dwarf, paths, function, wanted))
}

/// The C type (as [`type_text`] writes it) each pointer variable whose
/// name starts with `prefix` points at: `offsets gen --kernel-src` defines
/// one per field, to the member's type, so the compiler describes that type
/// in its DWARF.
pub fn variable_types(
    elf: &crate::elf::Elf,
    prefix: &str,
) -> Result<BTreeMap<String, String>, GenError> {
    with_dwarf(elf, |dwarf| {
        let mut out = BTreeMap::new();
        let mut units = dwarf.units();
        while let Some(header) = units.next().map_err(err)? {
            let unit = dwarf.unit(header).map_err(err)?;
            let mut cursor = unit.entries();
            let mut depth: isize = 0;
            while let Some((delta, entry)) = cursor.next_dfs().map_err(err)? {
                depth += delta;
                if depth != 1 || entry.tag() != dw::DW_TAG_variable {
                    continue;
                }
                let Some(name) = name_of(dwarf, &unit, entry)? else {
                    continue;
                };
                if !name.starts_with(prefix) {
                    continue;
                }
                let pointer = type_ref(entry)?
                    .ok_or_else(|| err(format!("variable `{name}` has no type")))?;
                let pointer = unit.entry(pointer).map_err(err)?;
                if pointer.tag() != dw::DW_TAG_pointer_type {
                    return Err(err(format!("variable `{name}` is not a pointer")));
                }
                out.insert(name, type_text(dwarf, &unit, type_ref(&pointer)?, 0)?);
            }
        }
        Ok(out)
    })
}

/// Run `f` on the DWARF sections of an ELF, loaded through `crate::elf`
/// (relocations applied in an object file).
fn with_dwarf<T>(
    elf: &crate::elf::Elf,
    f: impl FnOnce(&Dwarf) -> Result<T, GenError>,
) -> Result<T, GenError> {
    let mut owned: Vec<(gimli::SectionId, std::borrow::Cow<[u8]>)> = Vec::new();
    for id in [
        gimli::SectionId::DebugAbbrev,
        gimli::SectionId::DebugInfo,
        gimli::SectionId::DebugStr,
        gimli::SectionId::DebugLineStr,
        gimli::SectionId::DebugStrOffsets,
        gimli::SectionId::DebugAddr,
        // Parsing a unit reads its line program header and range bases.
        gimli::SectionId::DebugLine,
        gimli::SectionId::DebugRanges,
        gimli::SectionId::DebugRngLists,
    ] {
        if let Some(data) = elf.section(id.name())? {
            owned.push((id, data));
        }
    }
    if !owned
        .iter()
        .any(|(id, _)| *id == gimli::SectionId::DebugInfo)
    {
        return Err(GenError::Dwarf(
            "no .debug_info section: this file has no DWARF (build with CONFIG_DEBUG_INFO, or use --btf)".into(),
        ));
    }
    let dwarf = gimli::Dwarf::load(|id| -> Result<R, GenError> {
        let data = owned
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, d)| d.as_ref())
            .unwrap_or(&[]);
        Ok(EndianSlice::new(data, LittleEndian))
    })?;
    f(&dwarf)
}
