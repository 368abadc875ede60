//! CO-RE without the kernel's BTF: a field relocation names a member path
//! in the object's own `.BTF` (root struct, then member indices); here that
//! path becomes `struct.member[.member]` names, which an offsets profile or
//! the kernel's BTF answers, and the instruction clang wrote is patched with
//! the answer as libbpf patches it (ALU immediate, load/store offset, or
//! `ld_imm64`). The registers (`struct pt_regs`, arm64's `user_pt_regs`,
//! elements of their register arrays) are answered from
//! `kernel_headers::pt_regs`.

use kernel_headers::bpf::{RawInsn, class, mode, size, source};
use kernel_headers::btf::core_kind;
use kernel_headers::pt_regs;

use crate::error::ObjError;
pub use profile::{Field, FieldPath, FieldSource, Lookup};

const LD_IMM64: u8 = class::LD | size::DW | mode::IMM;

/// The field relocations nobtf resolves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoreKind {
    ByteOffset,
    ByteSize,
    Exists,
    Signed,
    LShiftU64,
    RShiftU64,
}

impl CoreKind {
    fn from_raw(kind: u32) -> Result<CoreKind, &'static str> {
        Ok(match kind {
            core_kind::FIELD_BYTE_OFFSET => CoreKind::ByteOffset,
            core_kind::FIELD_BYTE_SIZE => CoreKind::ByteSize,
            core_kind::FIELD_EXISTS => CoreKind::Exists,
            core_kind::FIELD_SIGNED => CoreKind::Signed,
            core_kind::FIELD_LSHIFT_U64 => CoreKind::LShiftU64,
            core_kind::FIELD_RSHIFT_U64 => CoreKind::RShiftU64,
            core_kind::TYPE_ID_LOCAL | core_kind::TYPE_ID_TARGET => return Err("type id"),
            core_kind::TYPE_EXISTS | core_kind::TYPE_SIZE | core_kind::TYPE_MATCHES => {
                return Err("type");
            }
            core_kind::ENUMVAL_EXISTS | core_kind::ENUMVAL_VALUE => return Err("enum value"),
            _ => return Err("unknown"),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            CoreKind::ByteOffset => "byte offset",
            CoreKind::ByteSize => "byte size",
            CoreKind::Exists => "existence",
            CoreKind::Signed => "signedness",
            CoreKind::LShiftU64 => "left shift",
            CoreKind::RShiftU64 => "right shift",
        }
    }
}

/// A field as the program was compiled: what clang put in the instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalField {
    pub offset: u32,
    pub size: u32,
    pub signed: bool,
}

/// One CO-RE field relocation of a program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreReloc {
    /// The instruction to patch, counted from the program's start.
    pub insn: usize,
    pub kind: CoreKind,
    pub field: FieldPath,
    pub local: LocalField,
}

/// No source at all: every field is unknown, so an object with CO-RE
/// relocations is refused with the fields to add.
pub struct NoFields;

impl FieldSource for NoFields {
    fn lookup(&self, _: &str, _: &str) -> Lookup {
        Lookup::Unknown
    }
}

/// Why a record cannot become a [`CoreReloc`]: refused by design, or bad.
pub(super) enum LocalError {
    Unsupported { kind: &'static str, what: String },
    Bad(String),
}

/// Resolves one record against the object's BTF: the root struct's name,
/// the member names, and the local offset, size and signedness.
pub(super) fn local_field(
    btf: &btf::Btf,
    type_id: u32,
    access: &str,
    raw_kind: u32,
) -> Result<(CoreKind, FieldPath, LocalField), LocalError> {
    let bad = |e: btf::BtfError| LocalError::Bad(e.0);
    let root = btf.strip(type_id).map_err(bad)?;
    let root_type = btf.get(root).map_err(bad)?;
    let root_name = btf.name(root_type.name_off).map_err(bad)?.to_string();
    let kind = CoreKind::from_raw(raw_kind).map_err(|kind| LocalError::Unsupported {
        kind,
        what: if root_name.is_empty() {
            format!("type {type_id}")
        } else {
            root_name.clone()
        },
    })?;
    let indices = access
        .split(':')
        .map(|n| n.parse::<u32>())
        .collect::<Result<Vec<u32>, _>>()
        .map_err(|_| LocalError::Bad(format!("access string `{access}` is not n:n:...")))?;
    let unsupported = |what: String| LocalError::Unsupported {
        kind: kind.name(),
        what,
    };
    if root_name.is_empty() {
        return Err(unsupported(format!("an anonymous struct (type {type_id})")));
    }
    let Some((&first, path)) = indices.split_first() else {
        return Err(LocalError::Bad("empty access string".into()));
    };
    if first != 0 {
        return Err(unsupported(format!(
            "element {first} of an array of `{root_name}`"
        )));
    }
    if path.is_empty() {
        return Err(unsupported(format!("the whole `{root_name}`")));
    }
    let mut field = FieldPath {
        strukt: root_name,
        members: Vec::new(),
    };
    let (mut ty, mut bits) = (root, 0u64);
    for &index in path {
        let stripped = btf.strip(ty).map_err(bad)?;
        let members = match &btf.get(stripped).map_err(bad)?.kind {
            btf::Kind::Struct { members, .. } | btf::Kind::Union { members, .. } => members,
            // A register array (arm64's `user_pt_regs.regs`, arm's
            // `pt_regs.uregs`): the element joins the member's name, as in
            // `regs[1]`, for the architecture to answer.
            &btf::Kind::Array { elem, nelems }
                if pt_regs::is_register_struct(&field.strukt) && index < nelems =>
            {
                let last = field.members.last_mut().ok_or_else(|| {
                    LocalError::Bad(format!("access `{access}` indexes no member"))
                })?;
                last.push_str(&format!("[{index}]"));
                bits += u64::from(index) * u64::from(btf.size_of(elem).map_err(bad)?) * 8;
                ty = elem;
                continue;
            }
            btf::Kind::Array { .. } => {
                return Err(unsupported(format!(
                    "an array element in `{}`",
                    field.key()
                )));
            }
            _ => {
                return Err(LocalError::Bad(format!(
                    "access `{access}` steps into a type with no members"
                )));
            }
        };
        let member = members
            .get(index as usize)
            .ok_or_else(|| LocalError::Bad(format!("access `{access}`: no member {index}")))?;
        if member.bitfield_size != 0 {
            return Err(unsupported(format!("a bit-field in `{}`", field.key())));
        }
        if member.name_off != 0 {
            field
                .members
                .push(btf.name(member.name_off).map_err(bad)?.to_string());
        }
        bits += u64::from(member.bit_offset);
        ty = member.ty;
    }
    if field.members.is_empty() {
        return Err(unsupported(format!(
            "an anonymous member of `{}`",
            field.strukt
        )));
    }
    let offset = u32::try_from(bits / 8).map_err(|_| LocalError::Bad("offset overflows".into()))?;
    let local = LocalField {
        offset,
        size: btf.size_of(ty).map_err(bad)?,
        signed: btf.is_signed(ty).map_err(bad)?,
    };
    Ok((kind, field, local))
}

/// The answer for `field` on the target, and whether it is signed where
/// that is known: the registers from the architecture's layout, everything
/// else from `source`.
fn lookup(field: &FieldPath, source: &dyn FieldSource) -> (Lookup, Option<bool>) {
    match register_lookup(pt_regs::NATIVE, field) {
        Some(found) => (found, Some(false)),
        None => {
            let member = field.member_path();
            (
                source.lookup(&field.strukt, &member),
                source.is_signed(&field.strukt, &member),
            )
        }
    }
}

/// `field` as a register of `abi`, if it names the registers' struct.
fn register_lookup(abi: &pt_regs::Abi, field: &FieldPath) -> Option<Lookup> {
    if !pt_regs::is_register_struct(&field.strukt) {
        return None;
    }
    let found = match field.members.as_slice() {
        [member] => abi.c_member(&field.strukt, member),
        _ => None,
    };
    Some(match found {
        Some(offset) => Lookup::Found(Field {
            offset: offset as u32,
            size: u32::from(abi.pointer_bytes),
            c_type: Some("unsigned long".into()),
        }),
        None => Lookup::Absent,
    })
}

/// The value clang wrote for `kind` (what the instruction must hold now).
fn value_of(kind: CoreKind, offset: u32, size: u32, signed: bool) -> Option<u64> {
    Some(match kind {
        CoreKind::ByteOffset => u64::from(offset),
        CoreKind::ByteSize => u64::from(size),
        CoreKind::Exists => 1,
        CoreKind::Signed => u64::from(signed),
        // Not a bit-field (refused): the field fills its load, so both
        // shifts are what is left of a u64 above it.
        CoreKind::LShiftU64 | CoreKind::RShiftU64 => 64u64.checked_sub(u64::from(size) * 8)?,
    })
}

/// What a relocation did, for `nobtf load -v`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub field: FieldPath,
    pub kind: CoreKind,
    pub local: u64,
    pub target: u64,
}

/// Patches `insns[reloc.insn]` with the target's value for the relocation.
pub(super) fn apply(
    program: &str,
    insns: &mut [RawInsn],
    reloc: &CoreReloc,
    source: &dyn FieldSource,
) -> Result<Resolved, ObjError> {
    let patch_error = |cause: String| ObjError::CorePatch {
        program: program.to_string(),
        insn: reloc.insn,
        field: reloc.field.key(),
        kind: reloc.kind.name(),
        cause,
    };
    let local = &reloc.local;
    let orig = value_of(reloc.kind, local.offset, local.size, local.signed)
        .ok_or_else(|| patch_error(format!("the object's field is {} bytes", local.size)))?;
    let (found, signed) = lookup(&reloc.field, source);
    let (target, new_size) = match found {
        Lookup::Found(info) => {
            let signed = signed.unwrap_or(local.signed);
            let value = value_of(reloc.kind, info.offset, info.size, signed)
                .ok_or_else(|| patch_error(format!("the kernel's field is {} bytes", info.size)))?;
            (value, Some(info.size))
        }
        Lookup::Absent if reloc.kind == CoreKind::Exists => (0, None),
        Lookup::Absent => {
            return Err(ObjError::CoreMissingField {
                program: program.to_string(),
                insn: reloc.insn,
                field: reloc.field.key(),
                strukt: reloc.field.strukt.clone(),
            });
        }
        Lookup::Unknown => {
            return Err(ObjError::CoreUnknownField {
                program: program.to_string(),
                insn: reloc.insn,
                field: reloc.field.key(),
                kind: reloc.kind.name(),
            });
        }
    };
    let size_change = match (reloc.kind, new_size) {
        (CoreKind::ByteOffset, Some(new)) if new != local.size => Some(SizeChange {
            from: local.size,
            to: new,
            signed: local.signed,
        }),
        _ => None,
    };
    patch(insns, reloc.insn, orig, target, size_change).map_err(patch_error)?;
    Ok(Resolved {
        field: reloc.field.clone(),
        kind: reloc.kind,
        local: orig,
        target,
    })
}

/// A field whose size differs on the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SizeChange {
    pub from: u32,
    pub to: u32,
    /// A load of another size would not sign-extend a signed field, so its
    /// accesses cannot follow (libbpf refuses them too).
    pub signed: bool,
}

/// Writes `new` where the instruction holds `orig`, as libbpf does: the
/// immediate of an ALU instruction, the offset of a load or store (whose
/// access size follows the field's when a byte offset relocation sees an
/// unsigned field or pointer change size), or both halves of an `ld_imm64`.
pub(super) fn patch(
    insns: &mut [RawInsn],
    at: usize,
    orig: u64,
    new: u64,
    size_change: Option<SizeChange>,
) -> Result<(), String> {
    let insn = insns
        .get(at)
        .copied()
        .ok_or_else(|| format!("instruction {at} is past the program's end"))?;
    let code = insn.code;
    match code & class::MASK {
        class::ALU | class::ALU64 if code & source::MASK == source::K => {
            if insn.imm as u32 as u64 != orig & 0xffff_ffff {
                return Err(format!(
                    "the instruction holds {} where the object's BTF says {orig}",
                    insn.imm
                ));
            }
            let imm = i32::try_from(new).map_err(|_| format!("{new} does not fit an immediate"))?;
            insns[at].imm = imm;
        }
        class::LDX | class::ST | class::STX if code & mode::MASK == mode::MEM => {
            if i64::from(insn.off) != orig as i64 {
                return Err(format!(
                    "the instruction's offset is {} where the object's BTF says {orig}",
                    insn.off
                ));
            }
            let off = i16::try_from(new).map_err(|_| format!("{new} does not fit an offset"))?;
            insns[at].off = off;
            if let Some(change) = size_change {
                let (from, to) = (change.from, change.to);
                if change.signed {
                    return Err(format!(
                        "the signed field changes from {from} to {to} bytes: read it with \
                         BPF_CORE_READ (bpf_probe_read) instead of directly"
                    ));
                }
                let access = access_bytes(code);
                if access != from {
                    return Err(format!(
                        "the field changes from {from} to {to} bytes and the \
                         instruction accesses {access}"
                    ));
                }
                let bits =
                    size_bits(to).ok_or_else(|| format!("no load or store accesses {to} bytes"))?;
                insns[at].code = (code & !size::MASK) | bits;
            }
        }
        _ if code == LD_IMM64 => {
            let next = insns
                .get(at + 1)
                .copied()
                .ok_or("the ld_imm64 has no second slot")?;
            if insn.src() != 0 || insn.off != 0 || next.code != 0 || next.regs != 0 || next.off != 0
            {
                return Err("the ld_imm64 is not a plain 64-bit constant".into());
            }
            let held = u64::from(insn.imm as u32) | (u64::from(next.imm as u32) << 32);
            if held != orig {
                return Err(format!(
                    "the instruction holds {held} where the object's BTF says {orig}"
                ));
            }
            insns[at].imm = new as u32 as i32;
            insns[at + 1].imm = (new >> 32) as u32 as i32;
        }
        _ => {
            return Err(format!(
                "instruction opcode {code:#04x} is not one a relocation patches"
            ));
        }
    }
    Ok(())
}

fn access_bytes(code: u8) -> u32 {
    match code & size::MASK {
        size::B => 1,
        size::H => 2,
        size::W => 4,
        _ => 8,
    }
}

fn size_bits(bytes: u32) -> Option<u8> {
    Some(match bytes {
        1 => size::B,
        2 => size::H,
        4 => size::W,
        8 => size::DW,
        _ => return None,
    })
}

/// Every field the relocations of `relocs` need from an offsets source,
/// the registers excepted (the architecture answers those).
pub(super) fn needed<'a>(relocs: impl Iterator<Item = &'a CoreReloc>) -> Vec<FieldPath> {
    let mut out: Vec<FieldPath> = relocs
        .filter(|r| !pt_regs::is_register_struct(&r.field.strukt))
        .map(|r| r.field.clone())
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use kernel_headers::bpf::{alu, reg};

    use super::*;

    const MOV_K: u8 = class::ALU64 | alu::MOV | source::K;
    const LDX_W: u8 = class::LDX | mode::MEM | size::W;
    const LDX_DW: u8 = class::LDX | mode::MEM | size::DW;
    const STX_W: u8 = class::STX | mode::MEM | size::W;

    fn i(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> RawInsn {
        RawInsn::new(code, dst, src, off, imm)
    }

    #[test]
    fn alu_immediates_are_patched() {
        // r1 = 16 (the offset of filename.refcnt in the object) -> 24.
        let mut insns = [i(MOV_K, reg::R1, 0, 0, 16)];
        patch(&mut insns, 0, 16, 24, None).unwrap();
        assert_eq!(insns, [i(MOV_K, reg::R1, 0, 0, 24)]);
        let err = patch(&mut insns, 0, 16, 32, None).unwrap_err();
        assert_eq!(
            err,
            "the instruction holds 24 where the object's BTF says 16"
        );
        assert!(patch(&mut insns, 0, 24, 1 << 40, None).is_err());
    }

    #[test]
    fn load_and_store_offsets_are_patched_with_their_size() {
        // r2 = *(u32 *)(r1 + 16) -> *(u64 *)(r1 + 24) for a field grown to 8 bytes.
        let grown = |signed| {
            Some(SizeChange {
                from: 4,
                to: 8,
                signed,
            })
        };
        let mut insns = [i(LDX_W, reg::R2, reg::R1, 16, 0)];
        patch(&mut insns, 0, 16, 24, grown(false)).unwrap();
        assert_eq!(insns, [i(LDX_DW, reg::R2, reg::R1, 24, 0)]);
        // A signed field would lose its sign extension.
        let mut insns = [i(LDX_W, reg::R2, reg::R1, 16, 0)];
        assert!(patch(&mut insns, 0, 16, 24, grown(true)).is_err());
        let mut stores = [i(STX_W, reg::R1, reg::R2, 8, 0)];
        patch(&mut stores, 0, 8, 12, None).unwrap();
        assert_eq!(stores, [i(STX_W, reg::R1, reg::R2, 12, 0)]);
        // The access must be the field's, and the new size one a load has.
        let change = |from, to| {
            Some(SizeChange {
                from,
                to,
                signed: false,
            })
        };
        assert!(patch(&mut insns, 0, 16, 24, change(8, 4)).is_err());
        assert!(patch(&mut insns, 0, 16, 24, change(4, 3)).is_err());
        assert!(patch(&mut insns, 0, 16, 40_000, None).is_err());
    }

    #[test]
    fn ld_imm64_takes_both_halves() {
        let mut insns = [i(0x18, reg::R1, 0, 0, 16), i(0, 0, 0, 0, 0)];
        patch(&mut insns, 0, 16, 0x1_0000_0008, None).unwrap();
        assert_eq!(insns, [i(0x18, reg::R1, 0, 0, 8), i(0, 0, 0, 0, 1)]);
        assert!(patch(&mut insns[..1], 0, 0x1_0000_0008, 0, None).is_err());
        // A map reference is no constant to patch.
        let mut map = [i(0x18, reg::R1, 1, 0, 16), i(0, 0, 0, 0, 0)];
        assert!(patch(&mut map, 0, 16, 8, None).is_err());
    }

    #[test]
    fn other_instructions_are_not_patched() {
        let mut insns = [i(class::JMP | 0x90, 0, 0, 0, 0)];
        assert_eq!(
            patch(&mut insns, 0, 0, 1, None).unwrap_err(),
            "instruction opcode 0x95 is not one a relocation patches"
        );
        assert!(patch(&mut insns, 3, 0, 1, None).is_err());
    }

    fn reloc(kind: CoreKind, strukt: &str, member: &str, local: LocalField) -> CoreReloc {
        CoreReloc {
            insn: 0,
            kind,
            field: FieldPath {
                strukt: strukt.into(),
                members: vec![member.into()],
            },
            local,
        }
    }

    struct One(Lookup);
    impl FieldSource for One {
        fn lookup(&self, _: &str, _: &str) -> Lookup {
            self.0.clone()
        }
    }

    const REFCNT: LocalField = LocalField {
        offset: 16,
        size: 4,
        signed: true,
    };

    #[test]
    fn each_kind_takes_its_value_from_the_source() {
        let moved = One(Lookup::Found(Field::untyped(24, 8)));
        let value = |kind: CoreKind, orig: i32, source: &dyn FieldSource| {
            let mut insns = [i(MOV_K, reg::R1, 0, 0, orig)];
            apply(
                "p",
                &mut insns,
                &reloc(kind, "filename", "refcnt", REFCNT),
                source,
            )
            .map(|r| (r.target, insns[0].imm))
        };
        assert_eq!(value(CoreKind::ByteOffset, 16, &moved), Ok((24, 24)));
        assert_eq!(value(CoreKind::ByteSize, 4, &moved), Ok((8, 8)));
        assert_eq!(value(CoreKind::Exists, 1, &moved), Ok((1, 1)));
        // A profile does not say: the object's `int` decides.
        assert_eq!(value(CoreKind::Signed, 1, &moved), Ok((1, 1)));
        assert_eq!(value(CoreKind::LShiftU64, 32, &moved), Ok((0, 0)));
        assert_eq!(value(CoreKind::RShiftU64, 32, &moved), Ok((0, 0)));
        assert_eq!(value(CoreKind::Exists, 1, &One(Lookup::Absent)), Ok((0, 0)));
        assert!(matches!(
            value(CoreKind::ByteOffset, 16, &One(Lookup::Absent)),
            Err(ObjError::CoreMissingField { .. })
        ));
        assert!(matches!(
            value(CoreKind::Exists, 1, &One(Lookup::Unknown)),
            Err(ObjError::CoreUnknownField { .. })
        ));
    }

    #[test]
    fn pt_regs_members_come_from_the_architecture() {
        // The second argument's register on the host (`si` at +104 on
        // x86-64, `r1` at +8 on arm64): the test holds on either.
        let (name, offset) = pt_regs::NATIVE.args[1];
        let si = LocalField {
            offset: offset as u32,
            size: 8,
            signed: false,
        };
        let mut insns = [i(LDX_DW, reg::R7, reg::R1, offset as i16, 0)];
        let r = apply(
            "p",
            &mut insns,
            &reloc(CoreKind::ByteOffset, "pt_regs", name, si),
            &NoFields,
        )
        .unwrap();
        assert_eq!((r.local, r.target), (offset as u64, offset as u64));
        let err = apply(
            "p",
            &mut insns,
            &reloc(CoreKind::ByteOffset, "pt_regs", "esi", si),
            &NoFields,
        )
        .unwrap_err();
        assert!(matches!(err, ObjError::CoreMissingField { .. }), "{err}");
    }

    #[test]
    fn register_array_elements_come_from_the_architecture() {
        let path = |strukt: &str, member: &str| FieldPath {
            strukt: strukt.to_string(),
            members: vec![member.to_string()],
        };
        let found = |offset, size| {
            Some(Lookup::Found(Field {
                offset,
                size,
                c_type: Some("unsigned long".into()),
            }))
        };
        let (a64, a32) = (
            pt_regs::abi("aarch64").unwrap(),
            pt_regs::abi("arm").unwrap(),
        );
        assert_eq!(
            register_lookup(a64, &path("user_pt_regs", "regs[1]")),
            found(8, 8)
        );
        assert_eq!(
            register_lookup(a32, &path("pt_regs", "uregs[1]")),
            found(4, 4)
        );
        assert_eq!(
            register_lookup(a32, &path("pt_regs", "uregs[18]")),
            Some(Lookup::Absent)
        );
        assert_eq!(register_lookup(a64, &path("filename", "name")), None);
    }

    #[test]
    fn needed_fields_leave_out_pt_regs_and_repeat_none() {
        let relocs = [
            reloc(CoreKind::ByteOffset, "pt_regs", "si", REFCNT),
            reloc(CoreKind::ByteOffset, "user_pt_regs", "regs[1]", REFCNT),
            reloc(CoreKind::ByteOffset, "filename", "refcnt", REFCNT),
            reloc(CoreKind::ByteSize, "filename", "refcnt", REFCNT),
            reloc(CoreKind::ByteOffset, "filename", "name", REFCNT),
        ];
        let keys: Vec<String> = needed(relocs.iter()).iter().map(FieldPath::key).collect();
        assert_eq!(keys, ["filename.name", "filename.refcnt"]);
    }
}
