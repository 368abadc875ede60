//! An object adapted to one kernel: CO-RE fields resolved, helpers fallen
//! back, global data placed (a map per section on 5.2+, the stack before),
//! with every map reference listed for the loader to patch once maps exist.

use std::fmt;

use kernel_headers::bpf::{Helper, PSEUDO_MAP_FD, PSEUDO_MAP_VALUE, RawInsn, STACK_SIZE, map_type};

use crate::co_re::{self, CoreReloc, FieldSource, Resolved};
use crate::error::ObjError;
use crate::{
    DataReloc, DataSection, MapDef, ObjProgram, Object, ProbeKind, btf_ext, helpers, stack,
};

/// Bytes in one instruction slot.
const SLOT: usize = 8;
/// A global data map has one value: the whole section.
const DATA_KEY_SIZE: u32 = 4;

/// What the running kernel has, as far as preparing an object goes.
pub struct KernelFacts<'a> {
    /// Array maps as global data, addressed by `ld_imm64` with
    /// `BPF_PSEUDO_MAP_VALUE` (5.2+). Without them read-only data goes on
    /// the stack and writable data is refused.
    pub global_data: bool,
    /// Whether the kernel has a helper. Asked only about helpers that have
    /// an older form (`Helper::fallback`), each at most once per program.
    pub has_helper: &'a mut dyn FnMut(Helper) -> bool,
}

/// The object for one kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// The object's `maps` first (same indices as `Object::maps`), then one
    /// per global data section a program uses (5.2+ only).
    pub maps: Vec<MapSpec>,
    /// In `Object::programs` order.
    pub programs: Vec<ReadyProgram>,
    /// What was rewritten, for `nobtf load -v`.
    pub log: Vec<Rewrite>,
}

/// A map to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapSpec {
    pub def: MapDef,
    /// For a global data map: what to put in it before loading programs.
    pub data: Option<DataMap>,
}

/// A global data section as a one-entry array map. The loader creates it,
/// writes `initial` at key 0, and for `read_only` sections adds
/// `map_flags::F_RDONLY_PROG` at creation and freezes it (`BPF_MAP_FREEZE`)
/// after the write, where the kernel has them (5.2+).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataMap {
    pub section: String,
    pub initial: Vec<u8>,
    pub read_only: bool,
}

/// A program ready to relocate and load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadyProgram {
    pub section: String,
    pub name: String,
    pub kind: ProbeKind,
    pub function: String,
    pub insns: Vec<RawInsn>,
    /// Every `ld_imm64` that loads a map or an address in one.
    pub map_refs: Vec<MapRef>,
}

/// The `ld_imm64` at `insn` loads `Prepared::maps[map]`, or with
/// `value_offset` the address of that byte of the map's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapRef {
    pub insn: usize,
    pub map: usize,
    pub value_offset: Option<u32>,
}

/// One rewrite `prepare` made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rewrite {
    /// Calls to `from` now call `to` (libbpf's fallback before 5.5).
    Helper {
        program: String,
        from: Helper,
        to: Helper,
        calls: usize,
    },
    /// References to `section` go to its global data map.
    DataMap {
        program: String,
        section: String,
        refs: usize,
    },
    /// `len` bytes of `section` from `offset` are written to the stack at
    /// `r10 + at` by `stores` instructions at the program's start.
    Stack {
        program: String,
        section: String,
        offset: u32,
        len: usize,
        at: i16,
        stores: usize,
    },
    /// A CO-RE relocation resolved.
    Field {
        program: String,
        insn: usize,
        resolved: Resolved,
    },
}

impl fmt::Display for Rewrite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rewrite::Helper {
                program,
                from,
                to,
                calls,
            } => write!(
                f,
                "{program}: {calls} call(s) to {} now call {} (this kernel lacks the former)",
                from.name(),
                to.name()
            ),
            Rewrite::DataMap {
                program,
                section,
                refs,
            } => write!(
                f,
                "{program}: {refs} reference(s) to {section} use its global data map"
            ),
            Rewrite::Stack {
                program,
                section,
                offset,
                len,
                at,
                stores,
            } => write!(
                f,
                "{program}: {len} bytes of {section}+{offset} copied to the stack at r10{at} \
                 by {stores} store(s) (no global data maps before 5.2)"
            ),
            Rewrite::Field {
                program,
                insn,
                resolved,
            } => write!(
                f,
                "{program}: instruction {insn}: {} of {} is {} (the object had {})",
                resolved.kind.name(),
                resolved.field,
                resolved.target,
                resolved.local
            ),
        }
    }
}

impl ReadyProgram {
    /// The instructions with every map reference pointing at its map:
    /// `src_reg = PSEUDO_MAP_FD` and `imm = map_fds[map]`, or for a value
    /// `PSEUDO_MAP_VALUE` and the offset in the second slot's `imm`.
    pub fn relocated(&self, map_fds: &[i32]) -> Result<Vec<RawInsn>, ObjError> {
        let mut insns = self.insns.clone();
        for r in &self.map_refs {
            let fd = *map_fds.get(r.map).ok_or_else(|| ObjError::MissingMapFd {
                program: self.name.clone(),
                map_index: r.map,
                fds: map_fds.len(),
            })?;
            let (src, offset) = match r.value_offset {
                Some(offset) => (PSEUDO_MAP_VALUE, offset as i32),
                None => (PSEUDO_MAP_FD, 0),
            };
            if let Some(first) = insns.get_mut(r.insn) {
                *first = RawInsn::new(first.code, first.dst(), src, first.off, fd);
            }
            if let Some(second) = insns.get_mut(r.insn + 1) {
                second.imm = offset;
            }
        }
        Ok(insns)
    }
}

pub(super) fn prepare(
    object: &Object,
    kernel: &mut KernelFacts<'_>,
    fields: &dyn FieldSource,
) -> Result<Prepared, ObjError> {
    let mut maps: Vec<MapSpec> = object
        .maps
        .iter()
        .map(|def| MapSpec {
            def: def.clone(),
            data: None,
        })
        .collect();
    let mut data_maps: Vec<Option<usize>> = vec![None; object.data.len()];
    let mut programs = Vec::with_capacity(object.programs.len());
    let mut log = Vec::new();
    for program in &object.programs {
        let name = &program.name;
        let mut insns = program.insns.clone();
        for reloc in &program.core_relocs {
            let resolved = co_re::apply(name, &mut insns, reloc, fields)?;
            log.push(Rewrite::Field {
                program: name.clone(),
                insn: reloc.insn,
                resolved,
            });
        }
        for (from, to, calls) in helpers::fall_back(name, &mut insns, kernel.has_helper)? {
            log.push(Rewrite::Helper {
                program: name.clone(),
                from,
                to,
                calls,
            });
        }
        let mut map_refs: Vec<MapRef> = program
            .map_relocs
            .iter()
            .map(|r| MapRef {
                insn: r.insn,
                map: r.map,
                value_offset: None,
            })
            .collect();
        if kernel.global_data {
            let mut refs: Vec<(usize, usize)> = Vec::new();
            for r in &program.data_relocs {
                let map = *data_maps[r.data].get_or_insert_with(|| {
                    maps.push(data_map(&object.data[r.data]));
                    maps.len() - 1
                });
                map_refs.push(MapRef {
                    insn: r.insn,
                    map,
                    value_offset: Some(r.offset),
                });
                match refs.iter_mut().find(|(d, _)| *d == r.data) {
                    Some(entry) => entry.1 += 1,
                    None => refs.push((r.data, 1)),
                }
            }
            for (data, refs) in refs {
                log.push(Rewrite::DataMap {
                    program: name.clone(),
                    section: object.data[data].name.clone(),
                    refs,
                });
            }
        } else if !program.data_relocs.is_empty() {
            on_stack(
                name,
                &mut insns,
                &program.data_relocs,
                &object.data,
                &mut map_refs,
                &mut log,
            )?;
        }
        // One reference per instruction: the order is the same unstable.
        map_refs.sort_unstable_by_key(|r| r.insn);
        programs.push(ReadyProgram {
            section: program.section.clone(),
            name: name.clone(),
            kind: program.kind,
            function: program.function.clone(),
            insns,
            map_refs,
        });
    }
    Ok(Prepared {
        maps,
        programs,
        log,
    })
}

fn data_map(section: &DataSection) -> MapSpec {
    MapSpec {
        def: MapDef {
            name: section.name.clone(),
            map_type: map_type::ARRAY,
            key_size: DATA_KEY_SIZE,
            value_size: section.bytes.len() as u32,
            max_entries: 1,
            map_flags: 0,
        },
        data: Some(DataMap {
            section: section.name.clone(),
            initial: section.bytes.clone(),
            read_only: section.read_only,
        }),
    }
}

/// A run of section bytes copied to the stack.
struct Blob {
    data: usize,
    start: usize,
    end: usize,
}

/// The bytes a reference to `offset` needs: the named object there (a
/// `bpf_printk` format array), else the C string there with its NUL
/// (`.rodata.str*` merges strings without symbols), else the rest.
fn extent(section: &DataSection, offset: usize) -> (usize, usize) {
    let covering = section.symbols.iter().find(|s| {
        s.size > 0 && s.offset as usize <= offset && offset < (s.offset + s.size) as usize
    });
    if let Some(sym) = covering {
        let end = ((sym.offset + sym.size) as usize).min(section.bytes.len());
        return (sym.offset as usize, end);
    }
    let rest = &section.bytes[offset..];
    let end = rest
        .iter()
        .position(|&b| b == 0)
        .map_or(rest.len(), |n| n + 1);
    (offset, offset + end)
}

fn on_stack(
    program: &str,
    insns: &mut Vec<RawInsn>,
    relocs: &[DataReloc],
    data: &[DataSection],
    map_refs: &mut [MapRef],
    log: &mut Vec<Rewrite>,
) -> Result<(), ObjError> {
    if let Some(r) = relocs.iter().find(|r| !data[r.data].read_only) {
        return Err(ObjError::WritableGlobal {
            program: program.to_string(),
            section: data[r.data].name.clone(),
        });
    }
    // Overlapping references share one copy.
    let mut blobs: Vec<Blob> = Vec::new();
    let mut wanted: Vec<(usize, usize, usize)> = relocs
        .iter()
        .map(|r| {
            let (start, end) = extent(&data[r.data], r.offset as usize);
            (r.data, start, end)
        })
        .collect();
    wanted.sort_unstable();
    for (d, start, end) in wanted {
        match blobs.last_mut() {
            Some(last) if last.data == d && start < last.end => last.end = last.end.max(end),
            _ => blobs.push(Blob {
                data: d,
                start,
                end,
            }),
        }
    }
    let used = stack::depth(insns).next_multiple_of(SLOT);
    let mut depth = used;
    let mut prologue = Vec::new();
    let mut placed = Vec::with_capacity(blobs.len());
    for blob in &blobs {
        let section = &data[blob.data];
        depth += (blob.end - blob.start).next_multiple_of(SLOT);
        if depth > STACK_SIZE {
            return Err(ObjError::StackFull {
                program: program.to_string(),
                section: section.name.clone(),
                used,
                need: depth - used,
            });
        }
        let at = -(depth as i16);
        let stores = stack::stores(&section.bytes[blob.start..blob.end], at);
        log.push(Rewrite::Stack {
            program: program.to_string(),
            section: section.name.clone(),
            offset: blob.start as u32,
            len: blob.end - blob.start,
            at,
            stores: stores.len(),
        });
        prologue.extend(stores);
        placed.push(at);
    }
    for r in relocs {
        let offset = r.offset as usize;
        let found = blobs
            .iter()
            .zip(&placed)
            .find(|(b, _)| b.data == r.data && b.start <= offset && offset < b.end);
        // Every reference made a blob above; a miss would be a bug here.
        let Some((blob, at)) = found else {
            return Err(ObjError::Relink {
                program: program.to_string(),
                cause: format!("no stack copy holds byte {offset} of its section"),
            });
        };
        let at = at + (offset - blob.start) as i16;
        let dst = insns[r.insn].dst();
        let [mov, add] = stack::address(dst, at);
        insns[r.insn] = mov;
        insns[r.insn + 1] = add;
    }
    stack::insert(insns, 0, &prologue).map_err(|cause| ObjError::Relink {
        program: program.to_string(),
        cause,
    })?;
    for r in map_refs.iter_mut() {
        r.insn = stack::moved(r.insn, 0, prologue.len());
    }
    Ok(())
}

/// Gives each CO-RE record to the program whose instruction it patches.
pub(super) fn attach_core(
    btf: &btf::Btf,
    records: &[btf_ext::CoreRecord],
    programs: &mut [ObjProgram],
) -> Result<(), ObjError> {
    for (index, record) in records.iter().enumerate() {
        let bad = |cause: String| ObjError::BadCoreRecord { index, cause };
        let section = btf.name(record.section_name_off).map_err(|e| bad(e.0))?;
        let at = u64::from(record.insn_off);
        let program = programs
            .iter_mut()
            .find(|p| {
                p.section == section
                    && p.offset <= at
                    && at < p.offset + (p.insns.len() * SLOT) as u64
            })
            .ok_or_else(|| {
                bad(format!(
                    "instruction at byte {at} of `{section}` is in no program"
                ))
            })?;
        if at % SLOT as u64 != 0 {
            return Err(bad(format!("byte {at} is not an instruction boundary")));
        }
        let insn = ((at - program.offset) / SLOT as u64) as usize;
        let access = btf.name(record.access_str_off).map_err(|e| bad(e.0))?;
        let (kind, field, local) = co_re::local_field(btf, record.type_id, access, record.kind)
            .map_err(|e| match e {
                co_re::LocalError::Unsupported { kind, what } => ObjError::CoreUnsupported {
                    program: program.name.clone(),
                    insn,
                    kind,
                    what,
                },
                co_re::LocalError::Bad(cause) => bad(cause),
            })?;
        program.core_relocs.push(CoreReloc {
            insn,
            kind,
            field,
            local,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use kernel_headers::bpf::{alu, class, jmp, mode, reg, size, source};

    use super::*;
    use crate::{DataSymbol, MapReloc, NoFields};

    const LD_IMM64: u8 = class::LD | size::DW | mode::IMM;
    const MOV_K: u8 = class::ALU64 | alu::MOV | source::K;
    const MOV_X: u8 = class::ALU64 | alu::MOV | source::X;
    const ADD_K: u8 = class::ALU64 | alu::ADD | source::K;
    const STX_W: u8 = class::STX | mode::MEM | size::W;
    const ST_W: u8 = class::ST | mode::MEM | size::W;
    const ST_DW: u8 = class::ST | mode::MEM | size::DW;
    const JEQ_K: u8 = class::JMP | jmp::JEQ | source::K;
    const CALL: u8 = class::JMP | jmp::CALL;
    const EXIT: u8 = class::JMP | jmp::EXIT;

    fn i(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> RawInsn {
        RawInsn::new(code, dst, src, off, imm)
    }

    /// `.rodata.str1.1` holding "hi %d\0" at 0 and "yes\0" at 6, and a
    /// program that prints one or the other and counts in map 0.
    fn object() -> Object {
        let insns = vec![
            /* 0 */ i(STX_W, reg::FP, reg::R1, -4, 0), // *(u32 *)(r10 - 4) = r1
            /* 1 */ i(JEQ_K, reg::R1, 0, 3, 0), // if r1 == 0 goto 5
            /* 2 */ i(LD_IMM64, reg::R1, 0, 0, 0), // r1 = .rodata.str1.1 + 0
            /* 3 */ i(0, 0, 0, 0, 0),
            /* 4 */ i(class::JMP | jmp::JA, 0, 0, 2, 0), // goto 7
            /* 5 */ i(LD_IMM64, reg::R1, 0, 0, 6), // r1 = .rodata.str1.1 + 6
            /* 6 */ i(0, 0, 0, 0, 0),
            /* 7 */ i(MOV_K, reg::R2, 0, 0, 6), // r2 = 6
            /* 8 */ i(CALL, 0, 0, 0, Helper::TracePrintk.id() as i32),
            /* 9 */ i(LD_IMM64, reg::R1, 0, 0, 0), // r1 = map 0
            /* 10 */ i(0, 0, 0, 0, 0),
            /* 11 */ i(EXIT, 0, 0, 0, 0),
        ];
        Object {
            license: "GPL".into(),
            kern_version: None,
            maps: vec![MapDef {
                name: "counts".into(),
                map_type: map_type::ARRAY,
                key_size: 4,
                value_size: 8,
                max_entries: 1,
                map_flags: 0,
            }],
            programs: vec![ObjProgram {
                section: "kprobe/f".into(),
                name: "p".into(),
                kind: ProbeKind::Kprobe,
                function: "f".into(),
                offset: 0,
                insns,
                map_relocs: vec![MapReloc { insn: 9, map: 0 }],
                data_relocs: vec![
                    DataReloc {
                        insn: 2,
                        data: 0,
                        offset: 0,
                    },
                    DataReloc {
                        insn: 5,
                        data: 0,
                        offset: 6,
                    },
                ],
                core_relocs: Vec::new(),
            }],
            data: vec![DataSection {
                name: ".rodata.str1.1".into(),
                bytes: b"hi %d\0yes\0".to_vec(),
                read_only: true,
                symbols: Vec::<DataSymbol>::new(),
            }],
        }
    }

    fn prepare_with(object: &Object, global_data: bool) -> Prepared {
        let mut has = |_| true;
        let mut kernel = KernelFacts {
            global_data,
            has_helper: &mut has,
        };
        prepare(object, &mut kernel, &NoFields).unwrap()
    }

    #[test]
    fn strings_go_below_the_used_stack_and_jumps_still_land() {
        let prepared = prepare_with(&object(), false);
        let p = &prepared.programs[0];
        // Below the 8 bytes the program uses: "hi %d\0" and padding at
        // r10-16 is no sign-extended imm32, so two words; "yes\0" padded
        // at r10-24 fits one doubleword.
        let prologue = [
            i(ST_W, reg::FP, 0, -16, i32::from_le_bytes(*b"hi %")),
            i(ST_W, reg::FP, 0, -12, i32::from_le_bytes(*b"d\0\0\0")),
            i(ST_DW, reg::FP, 0, -24, i32::from_le_bytes(*b"yes\0")),
        ];
        let body = [
            /* 3 */ i(STX_W, reg::FP, reg::R1, -4, 0),
            /* 4 */ i(JEQ_K, reg::R1, 0, 3, 0), // still -> 8
            /* 5 */ i(MOV_X, reg::R1, reg::FP, 0, 0), // r1 = r10
            /* 6 */ i(ADD_K, reg::R1, 0, 0, -16), // r1 += -16
            /* 7 */ i(class::JMP | jmp::JA, 0, 0, 2, 0), // still -> 10
            /* 8 */ i(MOV_X, reg::R1, reg::FP, 0, 0),
            /* 9 */ i(ADD_K, reg::R1, 0, 0, -24),
            /* 10 */ i(MOV_K, reg::R2, 0, 0, 6),
            /* 11 */ i(CALL, 0, 0, 0, Helper::TracePrintk.id() as i32),
            /* 12 */ i(LD_IMM64, reg::R1, 0, 0, 0),
            /* 13 */ i(0, 0, 0, 0, 0),
            /* 14 */ i(EXIT, 0, 0, 0, 0),
        ];
        let mut want = prologue.to_vec();
        want.extend(body);
        assert_eq!(p.insns, want);
        // The map reference moved with its instruction.
        assert_eq!(
            p.map_refs,
            [MapRef {
                insn: 12,
                map: 0,
                value_offset: None
            }]
        );
        assert_eq!(prepared.maps.len(), 1, "no map for the strings");
        let log: Vec<String> = prepared.log.iter().map(ToString::to_string).collect();
        assert_eq!(
            log,
            [
                "p: 6 bytes of .rodata.str1.1+0 copied to the stack at r10-16 by 2 store(s) (no global data maps before 5.2)",
                "p: 4 bytes of .rodata.str1.1+6 copied to the stack at r10-24 by 1 store(s) (no global data maps before 5.2)",
            ]
        );
    }

    #[test]
    fn the_rewritten_program_prints_from_the_stack() {
        use probes::interp::Vm;
        let prepared = prepare_with(&object(), false);
        let insns = prepared.programs[0].relocated(&[3]).unwrap();
        // r1 is the context pointer, never 0: the first string, with r3 = 0.
        let mut vm = Vm::new();
        vm.run(&insns, &[0; 8]).unwrap();
        assert_eq!(vm.trace_pipe, ["hi 0"]);
    }

    #[test]
    fn with_global_data_each_reference_gets_the_map_and_its_offset() {
        let object = object();
        let prepared = prepare_with(&object, true);
        let p = &prepared.programs[0];
        assert_eq!(p.insns, object.programs[0].insns);
        assert_eq!(
            p.map_refs,
            [
                MapRef {
                    insn: 2,
                    map: 1,
                    value_offset: Some(0)
                },
                MapRef {
                    insn: 5,
                    map: 1,
                    value_offset: Some(6)
                },
                MapRef {
                    insn: 9,
                    map: 0,
                    value_offset: None
                },
            ]
        );
        let insns = p.relocated(&[3, 4]).unwrap();
        assert_eq!(
            [
                (insns[5].src(), insns[5].imm, insns[6].imm),
                (insns[9].src(), insns[9].imm, insns[10].imm)
            ],
            [(PSEUDO_MAP_VALUE, 4, 6), (PSEUDO_MAP_FD, 3, 0)]
        );
        assert_eq!(
            prepared.maps[1].data,
            Some(DataMap {
                section: ".rodata.str1.1".into(),
                initial: b"hi %d\0yes\0".to_vec(),
                read_only: true
            })
        );
        assert_eq!(
            p.relocated(&[3]),
            Err(ObjError::MissingMapFd {
                program: "p".into(),
                map_index: 1,
                fds: 1
            })
        );
    }
}
